//! Third-party MCP peers through the aggregated `/mcp` endpoint.
//!
//! One hub fronts five upstreams nobody on the team wrote: the reference
//! `server-everything`, `server-filesystem` and `server-memory` over stdio,
//! `server-everything` again over streamable HTTP (`remote`) and over the
//! legacy HTTP+SSE transport (`legacy`). Three official clients then talk to
//! the hub's `/mcp`: the Python `mcp` SDK, the TypeScript client SDK and the
//! Inspector CLI. Each one lists tools, prompts, resources and templates,
//! calls tools on every backend, reads resources and gets prompts; the client
//! scripts under `tests/it/peers/` only report what they saw as JSON and this
//! file asserts on it, so a feature the hub drops fails the test.
//!
//! The peers come from `scripts/install-peers.sh`; without them the test says
//! loudly that it skipped, or fails when `GATEHOUSE_REQUIRE_PEERS=1`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use gatehouse_test_support::paths::{npm_package, peers_python};
use gatehouse_test_support::{ChildGuard, node22, peers_dir};
use gateway_server::mcp::catalog::COLLISION_SCHEME;
use serde_json::{Value, json};

use crate::support::TestHub;

const SKIP_NOTICE: &str = "*** SKIPPED: third-party peers not installed; run scripts/install-peers.sh ***";

/// npm packages the test needs from `.peers/npm`.
const NPM_PEERS: [&str; 5] = [
    "@modelcontextprotocol/server-everything",
    "@modelcontextprotocol/server-filesystem",
    "@modelcontextprotocol/server-memory",
    "@modelcontextprotocol/client",
    "@modelcontextprotocol/inspector",
];

/// How long one client run (a script, or one Inspector invocation) may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The installed peers.
struct Peers {
    node: PathBuf,
    python: PathBuf,
    node_modules: PathBuf,
}

impl Peers {
    /// The peers, or `None` after printing the skip notice. Panics instead
    /// when `GATEHOUSE_REQUIRE_PEERS=1`.
    fn find() -> Option<Self> {
        let found = (|| {
            let node = node22()?;
            let python = peers_python()?;
            if NPM_PEERS.iter().any(|p| npm_package(p).is_none()) {
                return None;
            }
            Some(Self { node, python, node_modules: peers_dir()?.join("npm/node_modules") })
        })();
        if found.is_none() {
            assert!(
                std::env::var("GATEHOUSE_REQUIRE_PEERS").as_deref() != Ok("1"),
                "GATEHOUSE_REQUIRE_PEERS=1 but the third-party peers are missing (node22, the venv's python, or one of {NPM_PEERS:?}): run scripts/install-peers.sh"
            );
            eprintln!("\n{SKIP_NOTICE}\n");
        }
        found
    }

    /// The script an npm package installs as `bin`, from its `package.json`.
    fn npm_bin(&self, package: &str, bin: &str) -> PathBuf {
        let dir = self.node_modules.join(package);
        let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
        let rel = match &manifest["bin"] {
            Value::String(s) => s.clone(),
            other => other[bin].as_str().unwrap_or_else(|| panic!("{package} has no bin {bin}: {other}")).to_owned(),
        };
        let path = dir.join(rel);
        assert!(path.is_file(), "{} is missing", path.display());
        path
    }

    /// A command with a clean environment: `PATH`, a private `HOME`, `LANG`.
    fn command(&self, program: &Path, home: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin")))
            .env("HOME", home)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

/// A port nothing listens on right now (bound on loopback, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `server-everything` in `mode` (`streamableHttp` or `sse`) on a free port,
/// once it accepts connections. It binds every interface; the hub and the
/// test only ever reach it through 127.0.0.1.
async fn spawn_everything(peers: &Peers, mode: &str, role: &str, dir: &Path) -> (ChildGuard<tokio::process::Child>, u16) {
    let script = peers.npm_bin("@modelcontextprotocol/server-everything", "mcp-server-everything");
    let port = free_port();
    let log_path = dir.join(format!("{role}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = peers.command(&peers.node, dir);
    cmd.arg(&script)
        .arg(mode)
        .env("PORT", port.to_string())
        .env("GATEHOUSE_PEER_ROLE", role)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    let mut child = ChildGuard::new_group(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, port);
        }
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server-everything {mode} exited early ({status}):\n{}", log());
        }
        assert!(Instant::now() < deadline, "server-everything {mode} did not listen on port {port} in time:\n{}", log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A TOML string literal (JSON string escapes are valid TOML basic-string escapes).
fn toml_str(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).unwrap()
}

fn stdio_backend(name: &str, node: &Path, args: &[&Path], arg_tail: &[&str], env: &[(&str, String)]) -> String {
    let args: Vec<String> = args.iter().map(|a| toml_str(a.to_str().unwrap())).chain(arg_tail.iter().map(toml_str)).collect();
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k} = {}", toml_str(v))).collect();
    format!(
        "[[backends]]\nname = \"{name}\"\ntransport = \"stdio\"\ncommand = {}\nargs = [{}]\nenv = {{ {} }}\ntimeout_secs = 60\n",
        toml_str(node.to_str().unwrap()),
        args.join(", "),
        env.join(", ")
    )
}

/// Everything one test run shares: the upstream servers, the hub and the files.
struct World {
    hub: TestHub,
    dir: tempfile::TempDir,
    fs_root: PathBuf,
    known_file: PathBuf,
    known_text: String,
    memory_file: PathBuf,
    _remote: ChildGuard<tokio::process::Child>,
    _legacy: ChildGuard<tokio::process::Child>,
}

const BACKENDS: [&str; 5] = ["everything", "fs", "memory", "remote", "legacy"];

impl World {
    async fn start(peers: &Peers) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fs_root = dir.path().join("files");
        std::fs::create_dir_all(fs_root.join("notes")).unwrap();
        let known_text = format!("known file for the peers test {}\n", uuid::Uuid::new_v4().simple());
        let known_file = fs_root.join("notes/known.txt");
        std::fs::write(&known_file, &known_text).unwrap();
        let memory_file = dir.path().join("memory.jsonl");

        let ((remote, remote_port), (legacy, legacy_port)) = tokio::join!(
            spawn_everything(peers, "streamableHttp", "remote", dir.path()),
            spawn_everything(peers, "sse", "legacy", dir.path()),
        );

        let everything = peers.npm_bin("@modelcontextprotocol/server-everything", "mcp-server-everything");
        let filesystem = peers.npm_bin("@modelcontextprotocol/server-filesystem", "mcp-server-filesystem");
        let memory = peers.npm_bin("@modelcontextprotocol/server-memory", "mcp-server-memory");
        let config = [
            stdio_backend("everything", &peers.node, &[&everything], &["stdio"], &[("GATEHOUSE_PEER_ROLE", "stdio".into())]),
            stdio_backend("fs", &peers.node, &[&filesystem, &fs_root], &[], &[]),
            stdio_backend("memory", &peers.node, &[&memory], &[], &[("MEMORY_FILE_PATH", memory_file.to_str().unwrap().to_owned())]),
            format!(
                "[[backends]]\nname = \"remote\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{remote_port}/mcp\"\ntimeout_secs = 60\n"
            ),
            format!(
                "[[backends]]\nname = \"legacy\"\ntransport = \"sse\"\nurl = \"http://127.0.0.1:{legacy_port}/sse\"\ntimeout_secs = 60\n"
            ),
        ]
        .concat();
        let hub = TestHub::start(&config).await;
        for b in BACKENDS {
            hub.wait_backend(b).await;
        }
        Self { hub, dir, fs_root, known_file, known_text, memory_file, _remote: remote, _legacy: legacy }
    }

    fn url(&self) -> String {
        format!("{}/mcp", self.hub.base)
    }

    /// A private home directory for one client (the Inspector writes its state there).
    fn home(&self, who: &str) -> PathBuf {
        let home = self.dir.path().join(format!("home-{who}"));
        std::fs::create_dir_all(&home).unwrap();
        home
    }

    fn entity(who: &str) -> String {
        format!("gatehouse-peer-{who}")
    }

    fn written_file(&self, who: &str) -> PathBuf {
        self.fs_root.join(format!("written-by-{who}.txt"))
    }
}

/// What one step must produce.
enum Expect {
    /// A successful result (not `isError`) whose text holds every string, and
    /// whose JSON has `value` at `pointer` when given.
    Ok { contains: Vec<String>, pointer: Option<(&'static str, Value)> },
    /// A JSON-RPC error with this code whose message holds the string.
    Error { code: i64, contains: String },
}

fn ok(contains: &[&str]) -> Expect {
    Expect::Ok { contains: contains.iter().map(|s| (*s).to_owned()).collect(), pointer: None }
}

/// One step of a client's run: the request the client script makes, and what must come back.
struct Step {
    request: Value,
    expect: Expect,
}

/// The steps every client runs, in order, after listing everything.
fn plan(world: &World, who: &str) -> Vec<Step> {
    let token = format!("{who}-{}", uuid::Uuid::new_v4().simple());
    let entity = World::entity(who);
    let known = world.known_file.to_str().unwrap();
    let written = world.written_file(who);
    let features = "demo://resource/static/document/features.md";
    vec![
        // stdio: server-everything
        Step {
            request: json!({ "tool": "everything__echo", "arguments": { "message": token } }),
            expect: ok(&[&format!("Echo: {token}")]),
        },
        Step { request: json!({ "tool": "everything__get-env", "arguments": {} }), expect: ok(&["\"GATEHOUSE_PEER_ROLE\": \"stdio\""]) },
        // stdio: server-filesystem
        Step {
            request: json!({ "tool": "fs__read_text_file", "arguments": { "path": known } }),
            expect: Expect::Ok {
                contains: vec![world.known_text.clone()],
                pointer: Some(("/structuredContent/content", json!(world.known_text))),
            },
        },
        Step {
            request: json!({ "tool": "fs__list_directory", "arguments": { "path": world.fs_root.join("notes") } }),
            expect: ok(&["[FILE] known.txt"]),
        },
        Step {
            request: json!({ "tool": "fs__write_file", "arguments": { "path": written, "content": token } }),
            expect: ok(&["written-by-"]),
        },
        // stdio: server-memory, create then read back two ways
        Step {
            request: json!({ "tool": "memory__create_entities", "arguments": {
                "entities": [{ "name": entity, "entityType": "peer-client", "observations": [token] }]
            } }),
            expect: ok(&[&entity]),
        },
        Step { request: json!({ "tool": "memory__open_nodes", "arguments": { "names": [entity] } }), expect: ok(&[&entity, &token]) },
        Step { request: json!({ "resource": "memory://knowledge-graph" }), expect: ok(&[&entity, &token]) },
        // resources of server-everything: a listed one, the same URI of the
        // HTTP upstream under the hub's collision scheme, and a templated one.
        Step {
            request: json!({ "resource": features }),
            expect: Expect::Ok {
                contains: vec!["# Everything Server - Features".into()],
                pointer: Some(("/contents/0/uri", json!(features))),
            },
        },
        Step {
            request: json!({ "resource": format!("{COLLISION_SCHEME}remote:{features}") }),
            expect: ok(&["# Everything Server - Features"]),
        },
        Step {
            request: json!({ "resource": "demo://resource/dynamic/text/7" }),
            expect: Expect::Ok {
                contains: vec!["Resource 7:".into()],
                pointer: Some(("/contents/0/uri", json!("demo://resource/dynamic/text/7"))),
            },
        },
        // prompts, from the stdio, HTTP and SSE upstreams
        Step {
            request: json!({ "prompt": "everything__simple-prompt", "arguments": {} }),
            expect: Expect::Ok {
                contains: vec!["This is a simple prompt without arguments.".into()],
                pointer: Some(("/messages/0/role", json!("user"))),
            },
        },
        Step {
            request: json!({ "prompt": "remote__args-prompt", "arguments": { "city": "Reykjavik", "state": "Hofudborgarsvaedid" } }),
            expect: ok(&["Reykjavik", "Hofudborgarsvaedid"]),
        },
        Step {
            request: json!({ "prompt": "legacy__simple-prompt", "arguments": {} }),
            expect: ok(&["This is a simple prompt without arguments."]),
        },
        // streamable HTTP upstream
        Step { request: json!({ "tool": "remote__echo", "arguments": { "message": token } }), expect: ok(&[&format!("Echo: {token}")]) },
        Step {
            request: json!({ "tool": "remote__get-sum", "arguments": { "a": 19, "b": 23 } }),
            expect: ok(&["The sum of 19 and 23 is 42."]),
        },
        Step { request: json!({ "tool": "remote__get-env", "arguments": {} }), expect: ok(&["\"GATEHOUSE_PEER_ROLE\": \"remote\""]) },
        // legacy HTTP+SSE upstream
        Step { request: json!({ "tool": "legacy__echo", "arguments": { "message": token } }), expect: ok(&[&format!("Echo: {token}")]) },
        Step { request: json!({ "tool": "legacy__get-env", "arguments": {} }), expect: ok(&["\"GATEHOUSE_PEER_ROLE\": \"legacy\""]) },
        // a name no backend owns: a JSON-RPC error naming it
        Step {
            request: json!({ "tool": "nobody__missing-tool", "arguments": {} }),
            expect: Expect::Error { code: -32602, contains: "nobody__missing-tool".into() },
        },
    ]
}

/// Every string under a `text` key, in document order, joined by newlines.
fn all_text(v: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("text", Value::String(s)) => out.push(s.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.join("\n")
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 600 { format!("{}…", s.chars().take(600).collect::<String>()) } else { s }
}

/// Checks one step's outcome (`{"result": …}` or `{"error": {"code", "message"}}`).
/// `numeric_codes` is false for the Inspector, which reports its own error codes.
fn check_step(step: &Step, got: &Value, numeric_codes: bool) -> Result<(), String> {
    match &step.expect {
        Expect::Ok { contains, pointer } => {
            let Some(result) = got.get("result") else { return Err(format!("expected a result, got {}", short(got))) };
            if result.get("isError") == Some(&Value::Bool(true)) {
                return Err(format!("isError result: {}", short(result)));
            }
            let text = all_text(result);
            for c in contains {
                if !text.contains(c.as_str()) {
                    return Err(format!("result text lacks {c:?}: {}", short(result)));
                }
            }
            if let Some((p, want)) = pointer
                && result.pointer(p) != Some(want)
            {
                return Err(format!("{p} is {:?}, expected {want}", result.pointer(p)));
            }
            Ok(())
        }
        Expect::Error { code, contains } => {
            let Some(err) = got.get("error") else { return Err(format!("expected an error, got {}", short(got))) };
            if numeric_codes && err["code"].as_i64() != Some(*code) {
                return Err(format!("error code {}, expected {code}: {}", err["code"], short(err)));
            }
            if !err["message"].as_str().unwrap_or_default().contains(contains.as_str()) {
                return Err(format!("error message lacks {contains:?}: {}", short(err)));
            }
            Ok(())
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Checks what a client listed and every step's outcome; returns the
/// failures and how many steps passed.
fn check_summary(who: &str, summary: &Value, steps: &[Step], numeric_codes: bool) -> (Vec<String>, usize) {
    let mut fails = Vec::new();
    let mut fail = |what: String| fails.push(format!("[{who}] {what}"));

    if summary["serverInfo"]["name"] != "gatehouse" {
        fail(format!("serverInfo is {}", summary["serverInfo"]));
    }
    if !summary["protocolVersion"].as_str().is_some_and(|v| v.starts_with("20")) {
        fail(format!("no negotiated protocol version: {}", summary["protocolVersion"]));
    }
    for cap in ["tools", "resources", "prompts"] {
        if !summary["capabilities"][cap].is_object() {
            fail(format!("capability {cap} missing: {}", summary["capabilities"]));
        }
    }

    let tools = strings(&summary["tools"]);
    let unique: BTreeSet<&String> = tools.iter().collect();
    if unique.len() != tools.len() {
        fail(format!("tools/list has duplicate names: {tools:?}"));
    }
    for t in &tools {
        if !BACKENDS.iter().any(|b| t.strip_prefix(b).is_some_and(|rest| rest.starts_with("__"))) {
            fail(format!("tool {t} is not namespaced by a backend"));
        }
    }
    for want in [
        "everything__echo",
        "everything__get-env",
        "fs__read_text_file",
        "fs__list_directory",
        "fs__write_file",
        "memory__create_entities",
        "memory__open_nodes",
        "remote__echo",
        "remote__get-sum",
        "legacy__echo",
        "legacy__get-env",
    ] {
        if !tools.iter().any(|t| t == want) {
            fail(format!("tools/list lacks {want} (got {} tools)", tools.len()));
        }
    }
    // The three server-everything upstreams expose the same tool set whatever the transport.
    let per = |b: &str| {
        let mut v: Vec<&str> = tools.iter().filter_map(|t| t.strip_prefix(b)?.strip_prefix("__")).collect();
        v.sort_unstable();
        v
    };
    if per("everything").len() < 10 || per("everything") != per("remote") || per("everything") != per("legacy") {
        fail(format!("everything/remote/legacy tool sets differ: {:?} / {:?} / {:?}", per("everything"), per("remote"), per("legacy")));
    }

    let prompts = strings(&summary["prompts"]);
    for want in ["everything__simple-prompt", "everything__args-prompt", "remote__args-prompt", "legacy__simple-prompt"] {
        if !prompts.iter().any(|p| p == want) {
            fail(format!("prompts/list lacks {want}: {prompts:?}"));
        }
    }
    let resources = strings(&summary["resources"]);
    for want in [
        "demo://resource/static/document/features.md".to_owned(),
        "memory://knowledge-graph".to_owned(),
        format!("{COLLISION_SCHEME}remote:demo://resource/static/document/features.md"),
        format!("{COLLISION_SCHEME}legacy:demo://resource/static/document/features.md"),
    ] {
        if !resources.contains(&want) {
            fail(format!("resources/list lacks {want}: {resources:?}"));
        }
    }
    let templates = strings(&summary["resourceTemplates"]);
    if !templates.iter().any(|t| t == "demo://resource/dynamic/text/{resourceId}") {
        fail(format!("resources/templates/list lacks the dynamic text template: {templates:?}"));
    }

    let got = summary["steps"].as_array().cloned().unwrap_or_default();
    if got.len() != steps.len() {
        fail(format!("{} step results for {} steps", got.len(), steps.len()));
    }
    let mut passed = 0;
    for (step, outcome) in steps.iter().zip(&got) {
        match check_step(step, outcome, numeric_codes) {
            Ok(()) => passed += 1,
            Err(e) => fail(format!("{}: {e}", step.request)),
        }
    }
    (fails, passed)
}

/// Runs a client process to the end and parses its stdout as one JSON object.
async fn run_json(mut cmd: tokio::process::Command, what: &str) -> Result<Value, String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{what} did not finish within {CLIENT_TIMEOUT:?}"))?
        .map_err(|e| format!("{what} did not start: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{what} failed ({}):\n{stderr}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| format!("{what} printed no JSON summary ({e}):\n{stdout}\n{stderr}"))
}

fn requests(steps: &[Step]) -> String {
    Value::Array(steps.iter().map(|s| s.request.clone()).collect()).to_string()
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/peers").join(name)
}

async fn run_python(peers: &Peers, world: &World, steps: &[Step]) -> Result<Value, String> {
    let mut cmd = peers.command(&peers.python, &world.home("python"));
    cmd.arg(script("python_client.py")).arg(world.url()).arg(requests(steps)).env("GATEHOUSE_KEY", &world.hub.key);
    run_json(cmd, "the Python mcp client").await
}

async fn run_typescript(peers: &Peers, world: &World, steps: &[Step]) -> Result<Value, String> {
    let mut cmd = peers.command(&peers.node, &world.home("typescript"));
    cmd.arg(script("ts_client.mjs"))
        .arg(world.url())
        .arg(requests(steps))
        .env("GATEHOUSE_KEY", &world.hub.key)
        .env("PEERS_NODE_MODULES", &peers.node_modules);
    run_json(cmd, "the TypeScript client SDK").await
}

/// One Inspector CLI invocation against the hub: `Ok(result)` on exit 0,
/// `Err(error)` with the error envelope it printed otherwise.
async fn inspector(peers: &Peers, world: &World, home: &Path, args: Vec<String>) -> Result<Value, Value> {
    let cli = peers.npm_bin("@modelcontextprotocol/inspector", "mcp-inspector");
    let mut cmd = peers.command(&peers.node, home);
    cmd.arg(cli)
        .args(["--cli", &world.url(), "--transport", "http", "--format", "json"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", world.hub.key))
        .args(&args)
        .env("MCP_AUTO_OPEN_ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("mcp-inspector {}", args.join(" "));
    let out = match tokio::time::timeout(CLIENT_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(json!({ "code": null, "message": format!("{what} did not start: {e}") })),
        Err(_) => return Err(json!({ "code": null, "message": format!("{what} timed out") })),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The JSON envelope is the last line that parses as JSON.
    let envelope = |text: &str| text.lines().rev().find_map(|l| serde_json::from_str::<Value>(l.trim()).ok());
    if out.status.success() {
        match envelope(&stdout) {
            Some(v) if v.get("result").is_some() => Ok(v["result"].clone()),
            _ => Err(json!({ "code": null, "message": format!("{what}: no JSON result on stdout:\n{stdout}\n{stderr}") })),
        }
    } else {
        let err = envelope(&stderr).or_else(|| envelope(&stdout)).and_then(|v| v.get("error").cloned());
        Err(err.unwrap_or_else(|| json!({ "code": null, "message": format!("{what} failed ({}):\n{stdout}\n{stderr}", out.status) })))
    }
}

/// The Inspector CLI arguments for one step of the plan.
fn inspector_args(r: &Value) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if let Some(tool) = r["tool"].as_str() {
        a.extend(["--method", "tools/call", "--tool-name", tool, "--tool-args-json"].map(String::from));
        a.push(r["arguments"].to_string());
    } else if let Some(uri) = r["resource"].as_str() {
        a.extend(["--method", "resources/read", "--uri", uri].map(String::from));
    } else {
        a.extend(["--method", "prompts/get", "--prompt-name", r["prompt"].as_str().unwrap()].map(String::from));
        let pairs = r["arguments"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap()));
        let pairs: Vec<String> = pairs.collect();
        if !pairs.is_empty() {
            a.push("--prompt-args".into());
            a.extend(pairs);
        }
    }
    a
}

/// Runs the plan through the Inspector CLI, one invocation per method, and
/// builds the same summary the SDK scripts print.
async fn run_inspector(peers: &Peers, world: &World, steps: &[Step]) -> Result<Value, String> {
    let home = world.home("inspector");
    let method = |m: &str| vec!["--method".to_owned(), m.to_owned()];
    let (init, tools, prompts, resources, templates) = tokio::join!(
        inspector(peers, world, &home, method("initialize")),
        inspector(peers, world, &home, method("tools/list")),
        inspector(peers, world, &home, method("prompts/list")),
        inspector(peers, world, &home, method("resources/list")),
        inspector(peers, world, &home, method("resources/templates/list")),
    );
    let listed = |r: Result<Value, Value>, what: &str, key: &str, field: &str| -> Result<Value, String> {
        let v = r.map_err(|e| format!("mcp-inspector {what}: {e}"))?;
        Ok(Value::Array(v[key].as_array().into_iter().flatten().map(|x| x[field].clone()).collect()))
    };
    let init = init.map_err(|e| format!("mcp-inspector initialize: {e}"))?;
    let manifest = std::fs::read_to_string(peers.node_modules.join("@modelcontextprotocol/inspector/package.json")).unwrap();
    let version = serde_json::from_str::<Value>(&manifest).unwrap()["version"].clone();
    let mut summary = json!({
        "client": { "name": "@modelcontextprotocol/inspector cli", "version": version },
        "protocolVersion": init["protocolVersion"],
        "serverInfo": init["serverInfo"],
        "capabilities": init["capabilities"],
        "tools": listed(tools, "tools/list", "tools", "name")?,
        "prompts": listed(prompts, "prompts/list", "prompts", "name")?,
        "resources": listed(resources, "resources/list", "resources", "uri")?,
        "resourceTemplates": listed(templates, "resources/templates/list", "resourceTemplates", "uriTemplate")?,
    });
    // Each invocation starts a Node process, so steps run two at a time, except
    // the server-memory ones: they run in order (the reads need the create).
    let stateful = |s: &Step| {
        s.request["tool"].as_str().is_some_and(|t| t.starts_with("memory__"))
            || s.request["resource"].as_str().is_some_and(|u| u.starts_with("memory://"))
    };
    let run = |i: usize| {
        let home = home.clone();
        async move {
            let outcome = match inspector(peers, world, &home, inspector_args(&steps[i].request)).await {
                Ok(result) => json!({ "result": result }),
                Err(error) => json!({ "error": error }),
            };
            (i, outcome)
        }
    };
    let in_order = async {
        let mut done = Vec::new();
        for i in (0..steps.len()).filter(|&i| stateful(&steps[i])) {
            done.push(run(i).await);
        }
        done
    };
    let others = stream::iter((0..steps.len()).filter(|&i| !stateful(&steps[i]))).map(run).buffer_unordered(2).collect::<Vec<_>>();
    let (a, b) = tokio::join!(in_order, others);
    let mut outcomes = vec![Value::Null; steps.len()];
    for (i, outcome) in a.into_iter().chain(b) {
        outcomes[i] = outcome;
    }
    summary["steps"] = Value::Array(outcomes);
    Ok(summary)
}

/// The Python `mcp` SDK, the TypeScript client SDK and the Inspector CLI each
/// list, call tools on all five backends (three stdio, streamable HTTP, legacy
/// SSE), read resources and get prompts through the hub's aggregated `/mcp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_use_reference_servers_through_the_hub() {
    let Some(peers) = Peers::find() else { return };
    let started = Instant::now();
    let world = World::start(&peers).await;
    println!("peers: hub and five upstreams ready in {:.1?}", started.elapsed());

    let mut failures = Vec::new();
    let clients = ["python", "typescript", "inspector"];
    // One client at a time: server-memory keeps its graph in one file and
    // does not serialise concurrent writers.
    for who in clients {
        let t = Instant::now();
        let steps = plan(&world, who);
        let summary = match who {
            "python" => run_python(&peers, &world, &steps).await,
            "typescript" => run_typescript(&peers, &world, &steps).await,
            _ => run_inspector(&peers, &world, &steps).await,
        };
        match summary {
            Ok(summary) => {
                let (fails, passed) = check_summary(who, &summary, &steps, who != "inspector");
                println!(
                    "peers: {who} ({}) negotiated {} and listed {} tools, {} prompts, {} resources; {}/{} steps as expected, in {:.1?}",
                    summary["client"]["version"].as_str().unwrap_or("-"),
                    summary["protocolVersion"],
                    summary["tools"].as_array().map_or(0, Vec::len),
                    summary["prompts"].as_array().map_or(0, Vec::len),
                    summary["resources"].as_array().map_or(0, Vec::len),
                    passed,
                    steps.len(),
                    t.elapsed()
                );
                failures.extend(fails);
            }
            Err(e) => failures.push(format!("[{who}] {e}")),
        }
    }

    // What the clients wrote through the hub reached the upstreams' own storage.
    for who in clients {
        let written = std::fs::read_to_string(world.written_file(who)).unwrap_or_default();
        if !written.starts_with(&format!("{who}-")) {
            failures.push(format!("[{who}] fs__write_file left {:?} on disk", written));
        }
    }
    let graph = std::fs::read_to_string(&world.memory_file).unwrap_or_default();
    for who in clients {
        if !graph.contains(&World::entity(who)) {
            failures.push(format!("[{who}] entity missing from server-memory's file: {graph}"));
        }
    }

    println!("peers: done in {:.1?}", started.elapsed());
    assert!(failures.is_empty(), "{} failure(s) with third-party peers:\n{}", failures.len(), failures.join("\n"));
}
