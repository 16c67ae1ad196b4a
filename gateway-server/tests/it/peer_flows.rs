//! Server→client flows through the hub with third-party peers: the reference
//! `server-everything` behind the hub over stdio, and the official Python `mcp`
//! client in front of it, in `mode="legacy"` (initialize handshake) and
//! `mode="auto"` (probes `server/discover` first, then takes the era the hub
//! offers). The script `tests/it/peers/python_flows.py` answers sampling and
//! elicitation from its callbacks and reports what it saw as JSON; this file
//! asserts on it.
//!
//! Skips loudly without the peers (`scripts/install-peers.sh`), or fails when
//! `GATEHOUSE_REQUIRE_PEERS=1`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gatehouse_test_support::paths::{npm_package, peers_python};
use gatehouse_test_support::{node22, peers_or_skip};
use serde_json::{Value, json};

use crate::support::TestHub;

/// How long one run of the Python script may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// Every flow the script knows.
const ALL_FLOWS: [&str; 9] =
    ["sampling", "elicitation", "url_elicitation", "progress", "cancel", "list_changed", "subscribe", "logging", "metadata"];
/// The flows of a 2026-07-28 (stateless) client.
/// (`list_changed` and `subscribe` through `subscriptions/listen`; server-everything
/// logs only when subscribed to, or on a timer, neither of which belongs to a
/// request in that era, so log levels are shown with the fixture in `stateless.rs`.)
const STATELESS_FLOWS: [&str; 8] =
    ["sampling", "elicitation", "url_elicitation", "progress", "cancel", "list_changed", "subscribe", "metadata"];

struct Peers {
    node: PathBuf,
    python: PathBuf,
    everything: PathBuf,
}

impl Peers {
    fn find(test: &str) -> Option<Self> {
        if !peers_or_skip(test) {
            return None;
        }
        let package = npm_package("@modelcontextprotocol/server-everything").expect("server-everything is installed with the peers");
        let manifest: Value = serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).unwrap()).unwrap();
        let bin = match &manifest["bin"] {
            Value::String(s) => s.clone(),
            other => other["mcp-server-everything"].as_str().expect("server-everything names its bin").to_owned(),
        };
        Some(Self {
            node: node22().expect("node22 is installed with the peers"),
            python: peers_python().expect("the peers' Python venv is installed"),
            everything: package.join(bin),
        })
    }

    /// `[[backends]]` for server-everything over stdio, plus `extra` keys.
    fn everything_backend(&self, extra: &str) -> String {
        format!(
            "[[backends]]\nname = \"everything\"\ntransport = \"stdio\"\ncommand = {}\nargs = [{}, \"stdio\"]\ntimeout_secs = 60\n{extra}\n",
            toml_str(&self.node),
            toml_str(&self.everything)
        )
    }

    async fn hub(&self, extra: &str) -> TestHub {
        let hub = TestHub::start(&self.everything_backend(extra)).await;
        hub.wait_backend("everything").await;
        hub
    }

    /// Runs the flow script against `url` and parses the summary it prints.
    async fn run(&self, hub: &TestHub, url: &str, mode: &str, plan: &Value, home: &Path) -> Value {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/peers/python_flows.py");
        let out = tokio::time::timeout(
            CLIENT_TIMEOUT,
            tokio::process::Command::new(&self.python)
                .arg(script)
                .arg(url)
                .arg(mode)
                .arg(plan.to_string())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin")))
                .env("HOME", home)
                .env("LANG", "C.UTF-8")
                .env("GATEHOUSE_KEY", &hub.key)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("the Python client ({mode}) did not finish within {CLIENT_TIMEOUT:?}"))
        .expect("the Python client starts");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the Python client ({mode}) failed ({}):\n{stderr}", out.status);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{stdout}\n{stderr}"))
    }
}

fn toml_str(p: &Path) -> String {
    serde_json::to_string(p.to_str().unwrap()).unwrap()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Checks one flow's report, returning what went wrong.
fn check_flow(flow: &str, r: &Value, token: &str, era: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            bad.push(format!("{flow}: {what}: {r}"));
        }
    };
    if r.get("error").is_some() {
        expect(false, "the flow failed");
        return bad;
    }
    match flow {
        "sampling" => {
            expect(
                r["isError"] == false && text(&r["result"]).contains(&format!("sampled-for-{token}")),
                "the tool got the client's completion",
            );
            let calls = r["callbacks"].as_array().cloned().unwrap_or_default();
            expect(calls.len() == 1, "one sampling request reached the callback");
            expect(calls.iter().all(|c| text(&c["text"]).contains(&format!("prompt-{token}")) && c["maxTokens"] == 21), "params intact");
            // The client sees the hub's id, not the server's (a stateless
            // client sees the input-request key the hub chose).
            let prefix = if era == "2026-07-28" { "sampling-" } else { "gh-" };
            expect(calls.iter().all(|c| text(&c["requestId"]).starts_with(prefix)), "the request id was rewritten for this hop");
        }
        "elicitation" => {
            expect(text(&r["result"]).contains(&format!("Name: name-{token}")), "the tool got the client's form answer");
            let calls = r["callbacks"].as_array().cloned().unwrap_or_default();
            expect(calls.len() == 1, "one form elicitation reached the callback");
            expect(
                calls.iter().all(|c| c["properties"].as_array().is_some_and(|p| p.contains(&json!("name")))),
                "the schema arrived whole",
            );
        }
        "url_elicitation" => {
            let url = format!("https://example.invalid/consent/{token}");
            expect(text(&r["result"]).contains(&format!("eid-{token}")), "the tool saw the URL elicitation accepted");
            let calls = r["callbacks"].as_array().cloned().unwrap_or_default();
            expect(
                calls.len() == 1 && calls[0]["url"] == json!(url) && calls[0]["elicitationId"] == json!(format!("eid-{token}")),
                "URL mode params",
            );
            expect(r["errorPath"]["code"] == -32042, "URLElicitationRequired passes through as a JSON-RPC error");
            expect(r["errorPath"]["data"]["elicitations"][0]["mode"] == "url", "its data arrives untouched");
        }
        "progress" => {
            let p = r["progress"].as_array().cloned().unwrap_or_default();
            let values: Vec<f64> = p.iter().filter_map(|x| x["progress"].as_f64()).collect();
            expect(p.len() == 4 && p.iter().all(|x| x["total"] == 4.0), "four steps of four");
            expect(values.windows(2).all(|w| w[0] < w[1]), "progress increases");
            expect(text(&r["result"]).contains("Steps: 4"), "the call completed after its progress");
        }
        "cancel" => {
            expect(r["progressBeforeCancel"].as_u64().is_some_and(|n| n >= 2), "progress flowed before the cancel");
            expect(r["progressAfterCancel"] == 0, "no progress of the cancelled call after it");
            expect(r["secondsUntilCancel"].as_f64().is_some_and(|s| s < 25.0), "the call ended long before its 30 s");
            expect(r["outcome"].get("finished").is_none(), "the cancelled call did not finish");
            expect(text(&r["after"]).contains(&format!("after-cancel-{token}")), "the session kept working");
        }
        "list_changed" => {
            expect(r["listChanged"] == true, "resources/list_changed reached the client");
            if era == "2026-07-28" {
                expect(text(&r["event"]).contains("ResourcesListChanged"), "as a listen stream event");
            }
            expect(r["listed"] == true, "the merged catalog lists the new resource");
            let uri = format!("demo://resource/session/gatehouse-{token}.txt.gz");
            expect(r["links"][0]["uri"] == json!(uri) && r["links"][0]["type"] == "resource_link", "the resource link arrived intact");
        }
        "subscribe" => {
            expect(r["updated"] == true, "resources/updated reached the subscriber");
            if era == "2026-07-28" {
                expect(text(&r["event"]).contains("ResourceUpdated"), "as a listen stream event");
            }
        }
        "logging" => {
            expect(r["atInfo"] == true, "an info log arrived at level info");
            expect(r["atError"] == false, "an info log did not arrive at level error");
            expect(r["againAtInfo"] == true, "logs arrived again at level info");
        }
        "metadata" => {
            expect(r["title"] == "Get Structured Content Tool", "the tool's title");
            expect(r["annotations"]["readOnlyHint"] == true, "the tool's annotations");
            expect(r["outputSchema"]["properties"]["temperature"].is_object(), "the tool's outputSchema");
            expect(r["structuredContent"]["temperature"].is_number(), "structuredContent of the result");
            let links = r["links"].as_array().cloned().unwrap_or_default();
            expect(
                links.len() == 2
                    && links.iter().all(|l| l["type"] == "resource_link" && text(&l["uri"]).starts_with("demo://resource/dynamic/")),
                "resource links of the result",
            );
            expect(r["longRunningAnnotations"]["idempotentHint"] == true, "annotations of another tool");
        }
        other => expect(false, &format!("unknown flow {other}")),
    }
    bad
}

/// The official Python client, in both of its connection modes, gets every
/// server→client flow of server-everything through the hub: sampling and
/// elicitation (form and URL mode) answered by its callbacks, progress during
/// a long call, cancellation, list_changed with the merged catalog refreshed,
/// a resource subscription's updates, the logging level it set, and tool
/// metadata kept intact through aggregation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_flows_through_the_hub_in_legacy_and_auto_modes() {
    let Some(peers) = Peers::find("python_client_flows_through_the_hub_in_legacy_and_auto_modes") else { return };
    let hub = peers.hub("").await;
    let home = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    // `auto` finds the hub's 2026-07-28 stateless front door: there,
    // server→client requests are input-required round trips, and change
    // notifications and subscriptions come on `subscriptions/listen`.
    for (mode, era, flows) in [("legacy", "2025-11-25", &ALL_FLOWS[..]), ("auto", "2026-07-28", &STATELESS_FLOWS[..])] {
        let token = format!("{mode}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let plan = json!({ "who": mode, "token": token, "flows": flows });
        let report = peers.run(&hub, &format!("{}/mcp", hub.base), mode, &plan, home.path()).await;
        if report["protocolVersion"] != era {
            failures.push(format!("{mode}: negotiated {}, expected {era}", report["protocolVersion"]));
        }
        for flow in flows {
            failures.extend(check_flow(flow, &report["flows"][flow], &token, era).into_iter().map(|f| format!("[{mode}] {f}")));
        }
        println!("peer flows: mode={mode} negotiated {}, {} flows checked", report["protocolVersion"], flows.len());
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

/// Two clients at once on one shared stdio process: each gets only its own
/// progress, sampling and elicitation. Both wait at a barrier before every
/// flow, so their calls overlap; the tokens in what each callback saw would
/// show any crossing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_on_a_shared_stdio_backend_get_only_their_own_traffic() {
    let Some(peers) = Peers::find("two_clients_on_a_shared_stdio_backend_get_only_their_own_traffic") else { return };
    let hub = peers.hub("").await;
    let home = tempfile::tempdir().unwrap();
    let barrier = tempfile::tempdir().unwrap();
    let flows = ["progress", "sampling", "elicitation", "progress"];
    let plan = |who: &str, steps: u64| {
        json!({ "who": who, "token": format!("{who}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]), "steps": steps,
                "flows": flows, "barrier": barrier.path(), "peers": ["a", "b"] })
    };
    let (pa, pb) = (plan("a", 3), plan("b", 5));
    let url = format!("{}/mcp", hub.base);
    let (ra, rb) = tokio::join!(peers.run(&hub, &url, "legacy", &pa, home.path()), peers.run(&hub, &url, "legacy", &pb, home.path()));

    let mut failures = Vec::new();
    for (me, other, r) in [(&pa, &pb, &ra), (&pb, &pa, &rb)] {
        let (token, steps) = (text(&me["token"]), me["steps"].as_u64().unwrap());
        let theirs = text(&other["token"]);
        let who = text(&me["who"]);
        let mut fail = |what: String| failures.push(format!("[{who}] {what}"));
        let sampling = r["sampling"].as_array().cloned().unwrap_or_default();
        if sampling.len() != 1 || !sampling.iter().all(|c| text(&c["text"]).contains(&format!("prompt-{token}"))) {
            fail(format!("sampling requests seen: {sampling:?}"));
        }
        if r.to_string().contains(&format!("prompt-{theirs}")) || r.to_string().contains(&format!("name-{theirs}")) {
            fail(format!("saw the other client's traffic: {r}"));
        }
        if !text(&r["flows"]["sampling"]["result"]).contains(&format!("sampled-for-{token}")) {
            fail(format!("sampling result: {}", r["flows"]["sampling"]));
        }
        let elicitation = r["elicitation"].as_array().cloned().unwrap_or_default();
        if elicitation.len() != 1 || !text(&r["flows"]["elicitation"]["result"]).contains(&format!("Name: name-{token}")) {
            fail(format!("elicitation: {elicitation:?} / {}", r["flows"]["elicitation"]));
        }
        let progress = r["flows"]["progress"]["progress"].as_array().cloned().unwrap_or_default();
        if progress.len() as u64 != steps || progress.iter().any(|p| p["total"].as_f64() != Some(steps as f64)) {
            fail(format!("progress: {progress:?}"));
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

/// With `isolation = "session"` every session gets its own server-everything
/// process: state one session creates (a session resource) is not there for
/// the other, and each process stops when its session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_isolation_gives_each_session_its_own_process() {
    let Some(peers) = Peers::find("session_isolation_gives_each_session_its_own_process") else { return };
    let hub = peers.hub("isolation = \"session\"\nmax_processes = 2\n").await;
    let backend = hub.state.hub.backend("everything").unwrap();
    let mut a = hub.client("/mcp/everything");
    let mut b = hub.client("/mcp/everything");
    a.initialize().await;
    b.initialize().await;
    assert_eq!(backend.process_count(), 0, "processes start on first use");
    let made = a
        .call(
            "tools/call",
            json!({ "name": "gzip-file-as-resource", "arguments": { "name": "mine.gz", "data": "data:text/plain;base64,aGk=" } }),
        )
        .await;
    assert_eq!(made["content"][0]["uri"], "demo://resource/session/mine.gz", "{made}");
    async fn read(c: &mut crate::support::Client) -> Value {
        c.request("resources/read", json!({ "uri": "demo://resource/session/mine.gz" })).await.body().clone()
    }
    let mine = read(&mut a).await;
    assert!(mine["result"]["contents"][0]["blob"].is_string(), "{mine}");
    let theirs = read(&mut b).await;
    assert!(theirs.get("error").is_some(), "the other session's process has no such resource: {theirs}");
    assert_eq!(backend.process_count(), 2);

    // A third session is over the cap: a clear error, not a hang.
    let mut c = hub.client("/mcp/everything");
    c.initialize().await;
    let refused = c.request("tools/call", json!({ "name": "echo", "arguments": { "message": "x" } })).await;
    let err = &refused.body()["error"];
    assert_eq!(err["data"]["reason"], "max_processes", "{err}");
    assert!(err["message"].as_str().unwrap().contains("limit of 2 processes"), "{err}");

    // Ending a session stops its process.
    assert_eq!(a.delete().await, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while backend.process_count() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "the ended session's process was not stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let echo = c.call("tools/call", json!({ "name": "echo", "arguments": { "message": "room again" } })).await;
    assert_eq!(echo["content"][0]["text"], "Echo: room again");
}

/// Tasks (2025-11-25) through the aggregate endpoint: server-everything's
/// `simulate-research-query` runs as a task; its id is the backend's, prefixed
/// by the backend; only the user that created it can see, fetch or list it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_through_the_aggregate_endpoint_for_their_creator_only() {
    let Some(peers) = Peers::find("tasks_run_through_the_aggregate_endpoint_for_their_creator_only") else { return };
    let hub = peers.hub("").await;
    let mut alice = hub.client("/mcp");
    let init = alice.initialize().await;
    assert!(init["capabilities"]["tasks"]["requests"]["tools"]["call"].is_object(), "the hub offers tasks: {init}");
    let tools = alice.call("tools/list", json!({})).await;
    let research = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == "everything__simulate-research-query").cloned();
    assert_eq!(research.expect("the task tool is listed")["execution"]["taskSupport"], "required");

    let created = alice
        .call(
            "tools/call",
            json!({ "name": "everything__simulate-research-query", "arguments": { "topic": "gateways" }, "task": { "ttl": 60000 } }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().expect("a CreateTaskResult").to_owned();
    assert!(id.starts_with("everything__"), "{created}");
    let got = alice.call("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(got["taskId"], id.as_str(), "{got}");
    assert!(["working", "completed"].contains(&got["status"].as_str().unwrap()), "{got}");
    let listed = alice.call("tasks/list", json!({})).await;
    assert!(listed["tasks"].as_array().unwrap().iter().any(|t| t["taskId"] == id.as_str()), "{listed}");

    // Another user cannot see it, even knowing its id.
    let bob_key = crate::support::create_key(&hub.state, "bob").await;
    let mut bob = crate::support::Client::new(format!("{}/mcp", hub.base), Some(bob_key));
    bob.initialize().await;
    let r = bob.request("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(r.body()["error"]["code"], -32602, "{:?}", r.body());
    let r = bob.request("tasks/cancel", json!({ "taskId": id })).await;
    assert_eq!(r.body()["error"]["code"], -32602, "{:?}", r.body());
    let theirs = bob.call("tasks/list", json!({})).await;
    assert_eq!(theirs["tasks"], json!([]), "{theirs}");
    let r = alice.request("tasks/get", json!({ "taskId": "everything__not-a-task" })).await;
    assert_eq!(r.body()["error"]["code"], -32602, "{:?}", r.body());

    // tasks/result waits for the outcome and ties it to the exposed id.
    let result = alice.call("tasks/result", json!({ "taskId": id })).await;
    assert!(text(&result["content"][0]["text"]).contains("Research Report: gateways"), "{result}");
    assert_eq!(result["_meta"]["io.modelcontextprotocol/related-task"]["taskId"], id.as_str(), "{result}");
    let done = alice.call("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(done["status"], "completed", "{done}");
}
