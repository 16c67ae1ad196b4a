//! The 2026-07-28 stateless era on `/mcp` and `/mcp/{backend}`, in front of
//! a session-era backend (the fixture over stdio negotiates 2025-11-25): the
//! per-request era choice, header validation, `server/discover`,
//! `resultType`, input-required round trips standing in for the backend's
//! sampling requests, a closed stream cancelling the backend call,
//! `subscriptions/listen`, and governance applying as in the session eras.

use std::time::Duration;

use futures::StreamExt;
use gatehouse_test_support::fixture_bin;
use serde_json::{Value, json};

use crate::support::{Reply, TestHub, decode};

const V: &str = "2026-07-28";

async fn hub_with_fixture() -> TestHub {
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let hub = TestHub::start(&format!("[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n", bin.display())).await;
    hub.wait_backend("fixture").await;
    hub
}

/// `params` with the `_meta` every stateless request carries.
fn with_meta(params: Value, capabilities: Value) -> Value {
    let mut p = params;
    let meta = p.as_object_mut().unwrap().entry("_meta").or_insert_with(|| json!({}));
    let m = meta.as_object_mut().unwrap();
    m.insert("io.modelcontextprotocol/protocolVersion".into(), json!(V));
    m.insert("io.modelcontextprotocol/clientCapabilities".into(), capabilities);
    m.insert("io.modelcontextprotocol/clientInfo".into(), json!({ "name": "stateless-it", "version": "1" }));
    p
}

/// A stateless client: no session, every request self-describing.
struct Stateless {
    url: String,
    key: String,
    http: reqwest::Client,
    next: i64,
}

impl Stateless {
    fn new(hub: &TestHub, path: &str, key: &str) -> Self {
        Self { url: format!("{}{path}", hub.base), key: key.to_owned(), http: reqwest::Client::new(), next: 1 }
    }

    /// The request with the headers a conforming client sends, then `extra` (which overrides).
    fn build(&mut self, method: &str, params: &Value, extra: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let id = self.next;
        self.next += 1;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let mut headers = vec![
            ("authorization".to_owned(), format!("Bearer {}", self.key)),
            ("content-type".to_owned(), "application/json".to_owned()),
            ("accept".to_owned(), "application/json, text/event-stream".to_owned()),
            ("mcp-protocol-version".to_owned(), V.to_owned()),
            ("mcp-method".to_owned(), method.to_owned()),
        ];
        if let Some(name) = params.get("name").or_else(|| params.get("uri")).and_then(Value::as_str) {
            headers.push(("mcp-name".to_owned(), name.to_owned()));
        }
        for (k, v) in extra {
            headers.retain(|(h, _)| h != k);
            headers.push(((*k).to_owned(), (*v).to_owned()));
        }
        let mut req = self.http.post(&self.url).body(body.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req
    }

    async fn send(&mut self, method: &str, params: Value, extra: &[(&str, &str)]) -> Reply {
        decode(self.build(method, &params, extra).send().await.expect("hub answers")).await
    }

    /// A request with `_meta` declaring `capabilities`.
    async fn request(&mut self, method: &str, params: Value, capabilities: Value) -> Reply {
        self.send(method, with_meta(params, capabilities), &[]).await
    }

    async fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params, json!({})).await;
        assert_eq!(r.status, 200, "{method}: {r:?}");
        assert!(r.body().get("error").is_none(), "{method}: {r:?}");
        r.body()["result"].clone()
    }
}

fn error_code(r: &Reply) -> i64 {
    r.body()["error"]["code"].as_i64().unwrap_or_else(|| panic!("an error: {r:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_headers_are_refused_with_400() {
    let hub = hub_with_fixture().await;
    let mut c = Stateless::new(&hub, "/mcp", &hub.key);
    let list = with_meta(json!({}), json!({}));
    let call = with_meta(json!({ "name": "fixture__test_simple_text", "arguments": {} }), json!({}));
    for (method, params, extra) in [
        ("tools/list", &list, vec![("mcp-protocol-version", "2025-11-25")]),
        ("tools/list", &list, vec![("mcp-method", "prompts/list")]),
        ("tools/call", &call, vec![("mcp-name", "fixture__test_error_handling")]),
    ] {
        let r = c.send(method, params.clone(), &extra).await;
        assert_eq!((r.status, error_code(&r)), (400, -32020), "{extra:?}: {r:?}");
        assert!(r.body()["id"].is_i64(), "the error names the request: {r:?}");
    }
    // An empty Mcp-Method, and none at all.
    let r = c.send("tools/list", list.clone(), &[("mcp-method", "")]).await;
    assert_eq!((r.status, error_code(&r)), (400, -32020), "{r:?}");
    let bare = reqwest::Client::new()
        .post(&c.url)
        .bearer_auth(&hub.key)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V)
        .body(json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": list }).to_string())
        .send()
        .await
        .unwrap();
    let r = decode(bare).await;
    assert_eq!((r.status, error_code(&r)), (400, -32020), "{r:?}");
    // A version nobody speaks: 400 with the supported ones.
    let mut odd = list.clone();
    odd["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("v999");
    let r = c.send("tools/list", odd, &[("mcp-protocol-version", "v999")]).await;
    assert_eq!((r.status, error_code(&r)), (400, -32022), "{r:?}");
    assert_eq!(r.body()["error"]["data"]["supported"], json!([V]));
    // Missing _meta fields: 400 with -32602.
    let r = c.send("tools/list", json!({ "_meta": { "io.modelcontextprotocol/protocolVersion": V } }), &[]).await;
    assert_eq!((r.status, error_code(&r)), (400, -32602), "{r:?}");
    // The session eras are untouched on the same endpoint.
    let mut s = hub.client("/mcp");
    s.initialize().await;
    assert!(!s.call("tools/list", json!({})).await["tools"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_removed_methods_are_404() {
    let hub = hub_with_fixture().await;
    for path in ["/mcp", "/mcp/fixture"] {
        let mut c = Stateless::new(&hub, path, &hub.key);
        for m in ["unknown/method", "initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"] {
            let r = c.request(m, json!({}), json!({})).await;
            assert_eq!((r.status, error_code(&r)), (404, -32601), "{path} {m}: {r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_and_result_types() {
    let hub = hub_with_fixture().await;
    let mut agg = Stateless::new(&hub, "/mcp", &hub.key);
    let d = agg.result("server/discover", json!({})).await;
    assert_eq!(d["supportedVersions"], json!([V]));
    assert_eq!(d["resultType"], "complete");
    assert!(d["capabilities"]["tools"].is_object(), "{d}");
    assert_eq!(d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "gatehouse");
    assert!(d.get("protocolVersion").is_none(), "{d}");

    let mut one = Stateless::new(&hub, "/mcp/fixture", &hub.key);
    let d = one.result("server/discover", json!({})).await;
    assert_eq!(d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "gatehouse-fixture", "the backend's identity: {d}");

    let tools = agg.result("tools/list", json!({})).await;
    assert_eq!((tools["resultType"].as_str(), tools["cacheScope"].as_str()), (Some("complete"), Some("private")), "{tools}");
    assert!(tools["ttlMs"].is_u64(), "{tools}");
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "fixture__test_simple_text"));
    let called = agg.result("tools/call", json!({ "name": "fixture__test_simple_text", "arguments": {} })).await;
    assert_eq!(called["resultType"], "complete");
    assert_eq!(called["content"][0]["text"], "This is a simple text response for testing.");
    // An unknown resource is -32602 from this revision on.
    let r = one.request("resources/read", json!({ "uri": "test://nope" }), json!({})).await;
    assert_eq!((r.status, error_code(&r)), (200, -32602), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_from_a_session_era_backend_is_an_input_required_round_trip() {
    let hub = hub_with_fixture().await;
    let backend_era = hub.state.hub.backend("fixture").unwrap().status().init.unwrap().protocol_version.clone();
    assert_eq!(backend_era, "2025-11-25", "the backend hop stays in the session era");
    let mut c = Stateless::new(&hub, "/mcp", &hub.key);
    let call = json!({ "name": "fixture__test_sampling", "arguments": { "prompt": "Capital of France?" } });
    let r = c.request("tools/call", call.clone(), json!({ "sampling": {} })).await;
    assert_eq!(r.status, 200, "{r:?}");
    let first = r.body()["result"].clone();
    assert_eq!(first["resultType"], "input_required", "{first}");
    let requests = first["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{first}");
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["method"], "sampling/createMessage");
    assert_eq!(asked["params"]["messages"][0]["content"]["text"], "Capital of France?");
    let state = first["requestState"].as_str().unwrap().to_owned();

    // An altered state is refused, and the parked call is still there afterwards.
    let mut tampered = call.clone();
    tampered["requestState"] = json!(format!("{state}-TAMPERED"));
    tampered["inputResponses"] = json!({});
    let r = c.request("tools/call", tampered, json!({ "sampling": {} })).await;
    assert_eq!(error_code(&r), -32602, "{r:?}");
    // Another user cannot resume it.
    let other = crate::support::create_key(&hub.state, "mallory").await;
    let mut m = Stateless::new(&hub, "/mcp", &other);
    let mut stolen = call.clone();
    stolen["requestState"] = json!(state);
    stolen["inputResponses"] = json!({ key.as_str(): { "role": "assistant", "content": { "type": "text", "text": "x" }, "model": "m" } });
    assert_eq!(error_code(&m.request("tools/call", stolen, json!({ "sampling": {} })).await), -32602);

    let mut retry = call.clone();
    retry["requestState"] = json!(state);
    retry["inputResponses"] = json!({
        key.as_str(): { "role": "assistant", "content": { "type": "text", "text": "Paris" }, "model": "test-model", "stopReason": "endTurn" },
        "unknown_extra": { "action": "accept" }
    });
    let r = c.request("tools/call", retry.clone(), json!({ "sampling": {} })).await;
    let done = r.body()["result"].clone();
    assert_eq!(done["resultType"], "complete", "{r:?}");
    assert_eq!(done["content"][0]["text"], "LLM response: Paris");
    // The state is used up.
    assert_eq!(error_code(&c.request("tools/call", retry, json!({ "sampling": {} })).await), -32602);
    assert!(hub.state.hub.stateless.is_empty());

    // Without the capability the backend's request is refused and the tool says so.
    let r = c.request("tools/call", call, json!({})).await;
    assert_eq!(r.body()["result"]["isError"], true, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_stream_cancels_the_backend_call() {
    let hub = hub_with_fixture().await;
    let mut c = Stateless::new(&hub, "/mcp", &hub.key);
    let params =
        with_meta(json!({ "name": "fixture__sleep", "arguments": { "ms": 60000 }, "_meta": { "progressToken": "p1" } }), json!({}));
    let resp = c.build("tools/call", &params, &[]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("progress in time").unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"), "{first:?}");
    drop(stream);

    // The call ends long before the 60 s sleep would: cancelled by the hub.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        hub.state.audit.flush().await;
        let (status, body) = hub.api("GET", "/audit?tool=fixture__sleep", None).await;
        assert_eq!(status, 200, "{body}");
        if let Some(item) = body["items"].as_array().and_then(|a| a.first()) {
            assert_eq!(item["status"], "error", "{item}");
            assert!(item["error_message"].as_str().unwrap_or("").contains("cancelled"), "{item}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the backend call was not cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_applies_to_stateless_calls() {
    let hub = hub_with_fixture().await;
    let (status, body) =
        hub.api("POST", "/keys", Some(json!({ "name": "narrow", "user": "alice", "tools": ["fixture__test_simple_text"] }))).await;
    assert_eq!(status, 201, "{body}");
    let mut c = Stateless::new(&hub, "/mcp", body["key"].as_str().unwrap());
    let tools = c.result("tools/list", json!({})).await;
    let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["fixture__test_simple_text"]);
    let r = c.request("tools/call", json!({ "name": "fixture__test_error_handling", "arguments": {} }), json!({})).await;
    assert_eq!((r.status, error_code(&r)), (200, -32012), "{r:?}");
    assert_eq!(r.body()["error"]["data"]["reason"], "key_allowlist");
    // Without a key: 401, as in every era.
    let r = reqwest::Client::new()
        .post(format!("{}/mcp", hub.base))
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V)
        .header("mcp-method", "tools/list")
        .body(json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": with_meta(json!({}), json!({})) }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_carry_the_requested_change_notifications() {
    let hub = hub_with_fixture().await;
    let mut c = Stateless::new(&hub, "/mcp/fixture", &hub.key);
    let params = with_meta(json!({ "notifications": { "toolsListChanged": true } }), json!({}));
    let resp = c.build("subscriptions/listen", &params, &[]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = resp.bytes_stream();
    let mut buf = String::new();
    let mut next = async || -> Value {
        loop {
            if let Some(end) = buf.find("\n\n") {
                let raw: String = buf.drain(..end + 2).collect();
                if let Some(data) = raw.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), events.next()).await.expect("an event in time");
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
    };
    let ack = next().await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");
    assert_eq!(ack["params"]["notifications"], json!({ "toolsListChanged": true }));
    let sub = ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"].clone();
    assert!(!sub.is_null(), "{ack}");

    let mut other = Stateless::new(&hub, "/mcp/fixture", &hub.key);
    other.result("tools/call", json!({ "name": "test_trigger_prompt_change", "arguments": {} })).await;
    other.result("tools/call", json!({ "name": "test_trigger_tool_change", "arguments": {} })).await;
    // Only the requested type arrives (the prompt change is filtered out).
    let n = next().await;
    assert_eq!(n["method"], "notifications/tools/list_changed", "{n}");
    assert_eq!(n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], sub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_input_are_bounded() {
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let hub = TestHub::start(&format!(
        "[mcp]\nmax_sessions = 1\n[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n",
        bin.display()
    ))
    .await;
    hub.wait_backend("fixture").await;
    let mut c = Stateless::new(&hub, "/mcp", &hub.key);
    let call = json!({ "name": "fixture__test_sampling", "arguments": { "prompt": "?" } });
    let first = c.request("tools/call", call.clone(), json!({ "sampling": {} })).await;
    assert_eq!(first.body()["result"]["resultType"], "input_required", "{first:?}");
    let second = c.request("tools/call", call, json!({ "sampling": {} })).await;
    assert_eq!(second.body()["error"]["data"]["reason"], "too_many_waiting", "{second:?}");
    assert_eq!(hub.state.hub.stateless.len(), 1);
}

/// The other direction: a session-era client (2025-11-25) in front of a
/// backend the hub reaches in the stateless era (the fixture over HTTP offers
/// 2026-07-28). The backend's input-required round trip becomes a real
/// `sampling/createMessage` request on the client's stream, and the client's
/// answer goes back as the retry's `inputResponses`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_era_client_reaches_a_stateless_backend() {
    let (_fixture, url) = gatehouse_test_support::spawn_fixture_http(&[]).await.unwrap();
    let hub = TestHub::start(&format!("[[backends]]\nname = \"modern\"\ntransport = \"http\"\nurl = \"{url}\"\n")).await;
    hub.wait_backend("modern").await;
    let init = hub.state.hub.backend("modern").unwrap().status().init.unwrap();
    assert_eq!(init.protocol_version, V, "the backend hop runs in the stateless era");

    let mut c = hub.client("/mcp");
    c.initialize_with(json!({ "sampling": {} })).await;
    let r = c.call("tools/call", json!({ "name": "modern__echo", "arguments": { "x": 1 } })).await;
    assert!(r["content"].is_array() && r.get("resultType").is_none(), "a session-era answer: {r}");

    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "modern__test_input_required_result_sampling", "arguments": {} } });
    let resp = c.post_streaming(&call).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let mut answered = false;
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let chunk = body.next().await.expect("the stream stays open until the answer").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
            for msg in seen.split("\n\n").filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data:"))) {
                let Ok(m) = serde_json::from_str::<Value>(msg.trim()) else { continue };
                if m["method"] == "sampling/createMessage" && !answered {
                    assert_eq!(m["params"]["messages"][0]["content"]["text"], "What is the capital of France?", "{m}");
                    let reply = json!({ "jsonrpc": "2.0", "id": m["id"].clone(),
                        "result": { "role": "assistant", "content": { "type": "text", "text": "Paris" }, "model": "m", "stopReason": "endTurn" } });
                    assert_eq!(c.post(&reply).await.status, 202);
                    answered = true;
                }
                if m["id"] == 7 {
                    return m;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no answer; the stream carried: {seen}"));
    assert!(answered, "the backend's input request reached the client: {seen}");
    assert_eq!(done["result"]["content"][0]["text"], "LLM response: Paris", "{done}");
    assert!(done["result"].get("resultType").is_none(), "{done}");
}
