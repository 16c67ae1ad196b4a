//! The agent tunnel end to end: the real `gateway-agent` binary (and raw
//! WebSocket clients where a test needs to misbehave) against an in-process
//! hub, with real MCP servers behind the agent, all on loopback.
//!
//! Links are cut and blackholed with an in-test TCP forwarder between the
//! agent and the hub ([`Proxy`]), which also lets a restarted hub come back
//! on a new port while the agent keeps dialing the same address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use gatehouse_proto::tunnel::{Frame, SUBPROTOCOL};
use gatehouse_test_support::paths::{agent_bin, npm_package, peers_python};
use gatehouse_test_support::{ChildGuard, fixture_bin, node22};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::support::{Client, TestHub, api_as, create_key};

/// Fast liveness for tests: ping every second, dead after two.
const FAST: &str = "[agents]\nping_interval_secs = 1\ndead_after_secs = 2\ndrain_reconnect_after_ms = 200\n";

fn agent_bin_or_panic() -> PathBuf {
    let bin = agent_bin();
    assert!(bin.is_file(), "{} is missing: run `cargo build -p gateway-agent` first", bin.display());
    bin
}

/// Enrolls agent `name` for the hub's admin user and returns its token.
async fn enroll(hub: &TestHub, name: &str) -> String {
    let (status, body) = hub.api("POST", "/agents", Some(json!({ "name": name }))).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Polls `f` every 20 ms until it holds or `limit` passes.
async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Names of the tools `/mcp` lists for `key`.
async fn tool_names(base: &str, key: &str) -> Vec<String> {
    let mut c = Client::new(format!("{base}/mcp"), Some(key.to_owned()));
    c.initialize().await;
    let r = c.call("tools/list", json!({})).await;
    r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

// ---- an in-test TCP forwarder ------------------------------------------------------------

/// Forwards loopback TCP connections to a target that can change; can stop
/// forwarding without closing anything (a blackholed link).
struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    blackhole: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let blackhole = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let (t, b, s) = (target.clone(), blackhole.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let sock = tokio::select! {
                    () = s.cancelled() => return,
                    r = listener.accept() => match r { Ok((sock, _)) => sock, Err(_) => return },
                };
                let to = *t.lock();
                let (b, s) = (b.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(to).await else { return };
                    let (cr, cw) = sock.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::join!(pipe(cr, uw, b.clone(), s.clone()), pipe(ur, cw, b, s));
                });
            }
        });
        Self { addr, target, blackhole, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn retarget(&self, to: SocketAddr) {
        *self.target.lock() = to;
    }
}

/// Copies bytes one way; once blackholed it swallows everything and keeps
/// both sockets open until the proxy is dropped.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hole: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            () = stop.cancelled() => return,
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
        };
        if hole.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if !hole.load(Ordering::SeqCst) {
        let _ = to.shutdown().await;
        return;
    }
    stop.cancelled().await;
}

// ---- the real agent --------------------------------------------------------------------

/// A `gateway-agent run` process with its own config, token and state.
struct Agent {
    child: ChildGuard<tokio::process::Child>,
    dir: tempfile::TempDir,
}

impl Agent {
    /// Starts agent `name` for `hub_url` serving `servers` (TOML `[[servers]]` tables).
    fn start(name: &str, hub_url: &str, token: &str, servers: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, format!("[agent]\nname = \"{name}\"\nhub_url = \"{hub_url}\"\n\n{servers}")).unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = tokio::process::Command::new(agent_bin_or_panic());
        cmd.args(["run", "--no-tui", "--config"])
            .arg(&config)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("xdg"))
            .env("GATEHOUSE_AGENT_STATE_DIR", dir.path().join("state"))
            .env("RUST_LOG", "info")
            .env_remove("GATEHOUSE_AGENT_TOKEN_FILE")
            .env_remove("GATEHOUSE_AGENT_SERVICE")
            .env_remove("GATEHOUSE_AGENT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        // The agent and its servers: killing the group leaves nothing behind.
        let child = ChildGuard::new_group(cmd.spawn().unwrap());
        Self { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

/// A `[[servers]]` table for the repository's fixture server over stdio.
fn fixture_server(name: &str) -> String {
    let bin = fixture_bin();
    assert!(bin.is_file(), "{} is missing: run `cargo build -p gatehouse-test-support --bins`", bin.display());
    format!("[[servers]]\nname = \"{name}\"\ntransport = \"stdio\"\ncommand = {}\n", toml_str(bin.to_str().unwrap()))
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Waits until backend `name` serves tools in `hub`.
async fn wait_tools(hub: &TestHub, backend: &str, limit: Duration, agent: Option<&Agent>) {
    let deadline = Instant::now() + limit;
    loop {
        if hub.state.hub.backend(backend).is_some_and(|b| !b.catalog().tools.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend {backend} has no tools after {limit:?}; backends: {:?}\nagent log:\n{}",
            hub.state.hub.backends().iter().map(|b| b.name.to_string()).collect::<Vec<_>>(),
            agent.map(Agent::log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- a streaming MCP call ------------------------------------------------------------

/// Starts a `tools/call` on `client`'s session and returns every message of
/// its answer as it arrives (the SSE stream, or one JSON body).
async fn stream_call(client: &Client, id: i64, name: &str, arguments: Value) -> mpsc::Receiver<Value> {
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": name, "arguments": arguments, "_meta": { "progressToken": format!("p{id}") } } });
    let resp = reqwest::Client::new()
        .post(&client.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", client.key.as_deref().unwrap()))
        .header("mcp-session-id", client.session.clone().unwrap())
        .header("mcp-protocol-version", client.version.clone())
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let sse = resp.headers().get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        if !sse {
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            let _ = tx.send(v).await;
            return;
        }
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if let Ok(v) = serde_json::from_str::<Value>(&data.join("\n"))
                    && tx.send(v).await.is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

// ---- raw WebSocket agents --------------------------------------------------------------

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Dials the tunnel with `token` and extra headers.
async fn dial(base: &str, token: Option<&str>, protocol: Option<&str>, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let url = format!("{}/agent/ws", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    if let Some(t) = token {
        h.insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    }
    if let Some(p) = protocol {
        h.insert("sec-websocket-protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(o) = origin {
        h.insert("origin", HeaderValue::from_str(o).unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

async fn recv_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("no frame within 20 s")? {
            Ok(Message::Text(t)) => return Some(Frame::decode(t.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn server_info(name: &str) -> Value {
    json!({ "name": name, "transport": "stdio", "status": "ready", "tools": [] })
}

/// A hand-written agent: says hello with `servers`, then answers the hub's
/// MCP requests for them (one tool, `whoami`, answering `label`) and its
/// pings. Every other frame it gets, but MCP notifications, is passed on.
struct RawAgent {
    frames: mpsc::Receiver<Frame>,
    stop: CancellationToken,
}

impl Drop for RawAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RawAgent {
    async fn connect(base: &str, token: &str, name: &str, servers: Value, label: &str) -> Self {
        let mut ws = dial(base, Some(token), Some(SUBPROTOCOL), None).await.expect("the hub upgrades");
        let hello = json!({ "type": "hello", "agent": name, "version": "0.0.1-test", "platform": "test", "servers": servers });
        ws.send(Message::text(hello.to_string())).await.unwrap();
        let first = recv_frame(&mut ws).await.expect("welcome");
        assert_eq!(first.kind(), "welcome", "{first:?}");
        let (tx, frames) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let label = label.to_owned();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    () = s.cancelled() => { let _ = ws.close(None).await; return; }
                    m = ws.next() => m,
                };
                let frame = match msg {
                    Some(Ok(Message::Text(t))) => Frame::decode(t.as_str()).unwrap(),
                    Some(Ok(_)) => continue,
                    _ => return,
                };
                let reply = match &frame {
                    Frame::Ping { nonce } => Some(json!({ "type": "pong", "nonce": nonce })),
                    Frame::Mcp { server, message } => {
                        let m: Value = serde_json::from_str(message.get()).unwrap();
                        let result = match m["method"].as_str() {
                            Some("initialize") => Some(json!({ "protocolVersion": "2025-11-25",
                                "capabilities": { "tools": { "listChanged": true } }, "serverInfo": { "name": "raw", "version": "1" } })),
                            Some("tools/list") => Some(
                                json!({ "tools": [{ "name": "whoami", "inputSchema": { "type": "object" }, "annotations": { "readOnlyHint": true } }] }),
                            ),
                            Some("tools/call") => Some(json!({ "content": [{ "type": "text", "text": label }] })),
                            Some("ping") => Some(json!({})),
                            _ => None,
                        };
                        match (result, m.get("id")) {
                            (Some(r), Some(id)) => {
                                Some(json!({ "type": "mcp", "server": server, "message": { "jsonrpc": "2.0", "id": id, "result": r } }))
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                };
                match reply {
                    Some(r) => {
                        if ws.send(Message::text(r.to_string())).await.is_err() {
                            return;
                        }
                    }
                    // MCP notifications from the hub need no answer.
                    None if matches!(frame, Frame::Mcp { .. }) => {}
                    None => {
                        let _ = tx.send(frame).await;
                    }
                }
            }
        });
        Self { frames, stop }
    }

    /// The next frame other than a ping or an MCP request, or `None` once closed.
    async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(20), self.frames.recv()).await.expect("no frame within 20 s")
    }
}

// ---- the tests -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_is_refused_before_it_happens() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let status = |r: Result<Ws, tungstenite::Error>| match r {
        Err(tungstenite::Error::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            (resp.status().as_u16(), resp.headers().get("www-authenticate").is_some(), body)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the hub upgraded"),
    };
    let (s, challenge, body) = status(dial(&hub.base, None, Some(SUBPROTOCOL), None).await);
    assert_eq!((s, challenge), (401, true), "{body}");
    assert!(body.contains("\"unauthorized\""), "{body}");
    let (s, challenge, _) = status(dial(&hub.base, Some("ga_not_a_real_token_000000"), Some(SUBPROTOCOL), None).await);
    assert_eq!((s, challenge), (401, true));
    // A user API key is not an agent token.
    let (s, _, _) = status(dial(&hub.base, Some(&hub.key), Some(SUBPROTOCOL), None).await);
    assert_eq!(s, 401);
    let (s, _, body) = status(dial(&hub.base, Some(&token), Some("gatehouse-tunnel.v0"), None).await);
    assert_eq!(s, 400);
    assert!(body.contains(SUBPROTOCOL), "the refusal names the supported version: {body}");
    let (s, _, _) = status(dial(&hub.base, Some(&token), None, None).await);
    assert_eq!(s, 400);
    // A browser page elsewhere cannot open the tunnel.
    let (s, _, _) = status(dial(&hub.base, Some(&token), Some(SUBPROTOCOL), Some("https://evil.example")).await);
    assert_eq!(s, 403);
    // The right token and version upgrade, echoing the subprotocol.
    let url = format!("{}/agent/ws", hub.base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], SUBPROTOCOL);
    // A hello naming another agent is refused for good.
    ws.send(Message::text(json!({ "type": "hello", "agent": "someone-else", "version": "1", "servers": [] }).to_string())).await.unwrap();
    match recv_frame(&mut ws).await {
        Some(Frame::Error { code, fatal, .. }) => assert_eq!((code.as_str(), fatal), ("unauthorized", true)),
        other => panic!("expected an unauthorized error, got {other:?}"),
    }
    assert!(recv_frame(&mut ws).await.is_none(), "the hub closes after a fatal error");
    assert!(!hub.state.agents.is_online("laptop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_uses_memory_and_filesystem_servers_behind_an_agent() {
    let (Some(node), Some(python), Some(fs_pkg), Some(mem_pkg)) = (
        node22(),
        peers_python(),
        npm_package("@modelcontextprotocol/server-filesystem"),
        npm_package("@modelcontextprotocol/server-memory"),
    ) else {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_PEERS").as_deref() != Ok("1"),
            "GATEHOUSE_REQUIRE_PEERS=1 but the peers are missing: run scripts/install-peers.sh"
        );
        eprintln!(
            "\n*** SKIPPED: python_client_uses_memory_and_filesystem_servers_behind_an_agent: peers not installed; run scripts/install-peers.sh ***\n"
        );
        return;
    };
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let secret_text = format!("agent file {}", uuid::Uuid::new_v4().simple());
    std::fs::write(files.join("note.txt"), &secret_text).unwrap();
    let script = |pkg: &Path| -> PathBuf {
        let manifest: Value = serde_json::from_str(&std::fs::read_to_string(pkg.join("package.json")).unwrap()).unwrap();
        let rel = match &manifest["bin"] {
            Value::String(s) => s.clone(),
            Value::Object(m) => m.values().next().unwrap().as_str().unwrap().to_owned(),
            other => panic!("no bin: {other}"),
        };
        pkg.join(rel)
    };
    let servers = format!(
        "[[servers]]\nname = \"fs\"\ntransport = \"stdio\"\ncommand = {node}\nargs = [{fs}, {files}]\n\n\
         [[servers]]\nname = \"mem\"\ntransport = \"stdio\"\ncommand = {node}\nargs = [{mem}]\nenv = {{ MEMORY_FILE_PATH = {memfile} }}\n",
        node = toml_str(node.to_str().unwrap()),
        fs = toml_str(script(&fs_pkg).to_str().unwrap()),
        files = toml_str(files.to_str().unwrap()),
        mem = toml_str(script(&mem_pkg).to_str().unwrap()),
        memfile = toml_str(work.path().join("memory.jsonl").to_str().unwrap()),
    );
    let agent = Agent::start("laptop", &hub.base, &token, &servers);
    wait_tools(&hub, "laptop__fs", Duration::from_secs(60), Some(&agent)).await;
    wait_tools(&hub, "laptop__mem", Duration::from_secs(60), Some(&agent)).await;

    let entity = format!("tunnel-{}", uuid::Uuid::new_v4().simple());
    let plan = json!([
        { "tool": "laptop__fs__read_text_file", "arguments": { "path": files.join("note.txt") } },
        { "tool": "laptop__fs__list_directory", "arguments": { "path": files } },
        { "tool": "laptop__mem__create_entities", "arguments": { "entities": [{ "name": entity, "entityType": "test", "observations": ["seen through the tunnel"] }] } },
        { "tool": "laptop__mem__open_nodes", "arguments": { "names": [entity] } },
    ]);
    let client_script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/peers/python_client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(&client_script)
            .arg(format!("{}/mcp", hub.base))
            .arg(plan.to_string())
            .env("GATEHOUSE_KEY", &hub.key)
            .env("HOME", work.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finished in time")
    .unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tools: Vec<&str> = summary["tools"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for t in ["laptop__fs__read_text_file", "laptop__fs__list_directory", "laptop__mem__create_entities", "laptop__mem__read_graph"] {
        assert!(tools.contains(&t), "{t} not listed: {tools:?}");
    }
    assert!(tools.iter().all(|t| t.len() <= 64), "{tools:?}");
    let steps = summary["steps"].as_array().unwrap();
    let text = |i: usize| steps[i].to_string();
    assert!(steps.iter().all(|s| s.get("result").is_some() && s["result"]["isError"] != json!(true)), "{steps:?}");
    assert!(text(0).contains(&secret_text), "{}", text(0));
    assert!(text(1).contains("note.txt"), "{}", text(1));
    assert!(text(3).contains("seen through the tunnel"), "{}", text(3));

    // The audit log names the agent's backends.
    let (status, audit) = hub.api("GET", "/audit?limit=50", None).await;
    assert_eq!(status, 200);
    assert!(audit.to_string().contains("laptop__mem"), "{audit}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_from_a_server_behind_an_agent_reaches_the_client() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let agent = Agent::start("laptop", &hub.base, &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    let mut client = hub.client("/mcp");
    client.initialize_with(json!({ "sampling": {} })).await;
    let mut rx = stream_call(&client, 7, "laptop__fx__test_sampling", json!({ "prompt": "What is the capital of France?" })).await;
    let mut answered = false;
    let result = loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("the call progresses").expect("an answer");
        if msg["method"] == "sampling/createMessage" {
            assert_eq!(msg["params"]["messages"][0]["content"]["text"], "What is the capital of France?", "{msg}");
            let reply = json!({ "jsonrpc": "2.0", "id": msg["id"], "result": {
                "role": "assistant", "content": { "type": "text", "text": "Paris, from the test" }, "model": "test-model", "stopReason": "endTurn" } });
            assert_eq!(client.post(&reply).await.status, 202);
            answered = true;
            continue;
        }
        if msg.get("id") == Some(&json!(7)) {
            break msg;
        }
    };
    assert!(answered, "the sampling request never reached the client");
    assert!(result["result"]["content"][0]["text"].as_str().unwrap().contains("Paris, from the test"), "{result}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_fails_at_once_when_the_agent_dies() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let mut agent = Agent::start("laptop", &hub.base, &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    let mut client = hub.client("/mcp");
    client.initialize().await;
    let mut rx = stream_call(&client, 3, "laptop__fx__sleep", json!({ "ms": 30_000 })).await;
    // The first progress notification proves the call runs on the agent's server.
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap().unwrap();
    assert_eq!(first["method"], "notifications/progress", "{first}");
    let killed = Instant::now();
    agent.child.kill();
    let answer = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an answer well before the timeout").unwrap();
        if msg.get("id") == Some(&json!(3)) {
            break msg;
        }
    };
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(5), "the error took {took:?}");
    assert_eq!(answer["error"]["code"], -32010, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("agent 'laptop' disconnected"), "{message}");
    // The agent's tools are gone, and come back with the agent.
    wait_for("the agent's backend to leave", Duration::from_secs(5), || hub.state.hub.backend("laptop__fx").is_none()).await;
    assert!(!tool_names(&hub.base, &hub.key).await.iter().any(|t| t.starts_with("laptop__")));
    let agent = Agent::start("laptop", &hub.base, &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    assert!(tool_names(&hub.base, &hub.key).await.iter().any(|t| t == "laptop__fx__echo"));
}

/// The tunnel's buffers start small; a message of megabytes still crosses it whole, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_cross_the_tunnel_whole() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let agent = Agent::start("laptop", &hub.base, &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let big: String = (0..3 * 1024 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let r = c.call("tools/call", json!({ "name": "laptop__fx__echo", "arguments": { "big": big } })).await;
    let echoed: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(echoed["big"] == json!(big), "3 MiB went through the agent and back intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_comes_back_after_the_hub_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_at(dir.path(), FAST).await;
    let token = enroll(&hub, "laptop").await;
    let proxy = Proxy::start(hub.base.trim_start_matches("http://").parse().unwrap()).await;
    let agent = Agent::start("laptop", &proxy.url(), &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    assert!(tool_names(&hub.base, &hub.key).await.iter().any(|t| t == "laptop__fx__echo"));
    let (status, agents) = hub.api("GET", "/agents", None).await;
    assert_eq!(status, 200);
    assert_eq!(agents[0]["online"], true, "{agents}");
    assert!(agents[0]["version"].is_string(), "the hub recorded the agent's version: {agents}");

    drop(hub);
    let hub = TestHub::start_at(dir.path(), FAST).await;
    proxy.retarget(hub.base.trim_start_matches("http://").parse().unwrap());
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let r = c.call("tools/call", json!({ "name": "laptop__fx__echo", "arguments": { "after": "restart" } })).await;
    assert!(r["content"][0]["text"].as_str().unwrap().contains("restart"), "{r}");
    assert!(agent.log().contains("draining") || agent.log().contains("drain"), "the agent was told to drain:\n{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_link_is_declared_dead_within_dead_after() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let proxy = Proxy::start(hub.base.trim_start_matches("http://").parse().unwrap()).await;
    let agent = Agent::start("laptop", &proxy.url(), &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    proxy.blackhole.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    wait_for("the hub to drop the silent agent", Duration::from_secs(6), || hub.state.hub.backend("laptop__fx").is_none()).await;
    let took = cut.elapsed();
    // dead_after is 2 s; the last frame came at most one ping interval before the cut.
    assert!(took <= Duration::from_millis(2_800), "took {took:?}");
    assert!(!hub.state.agents.is_online("laptop"));
    assert!(!tool_names(&hub.base, &hub.key).await.iter().any(|t| t.starts_with("laptop__")));
    // The link heals: the agent reconnects and its tools return.
    proxy.blackhole.store(false, Ordering::SeqCst);
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_replaces_the_first_and_keeps_the_servers() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "raw").await;
    let mut first = RawAgent::connect(&hub.base, &token, "raw", json!([server_info("s1")]), "first").await;
    wait_tools(&hub, "raw__s1", Duration::from_secs(10), None).await;
    let backend = hub.state.hub.backend("raw__s1").unwrap();
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let r = c.call("tools/call", json!({ "name": "raw__s1__whoami", "arguments": {} })).await;
    assert_eq!(r["content"][0]["text"], "first");

    let _second = RawAgent::connect(&hub.base, &token, "raw", json!([server_info("s1")]), "second").await;
    match first.next().await {
        Some(Frame::Error { code, fatal, .. }) => assert_eq!((code.as_str(), fatal), ("replaced", false)),
        other => panic!("expected `replaced`, got {other:?}"),
    }
    assert!(first.next().await.is_none(), "the replaced connection is closed");
    // Same backend, handed over: calls now reach the second connection.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c.request("tools/call", json!({ "name": "raw__s1__whoami", "arguments": {} })).await;
        if r.body()["result"]["content"][0]["text"] == "second" {
            break;
        }
        assert!(Instant::now() < deadline, "calls never reached the new connection: {:?}", r.body());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = hub.state.hub.backend("raw__s1").unwrap();
    assert!(Arc::ptr_eq(&backend, &now), "the backend was handed over, not re-created");
    assert!(hub.state.agents.is_online("raw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_take_a_hub_backends_names() {
    let bin = fixture_bin();
    let hub = TestHub::start(&format!(
        "{FAST}[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = {}\n",
        toml_str(bin.to_str().unwrap())
    ))
    .await;
    hub.wait_backend("fixture").await;
    let before = hub.state.hub.backend("fixture").unwrap();
    // An agent named like the hub backend would expose `fixture__x__…` next to the backend's own tools.
    let token = enroll(&hub, "fixture").await;
    let mut raw = RawAgent::connect(&hub.base, &token, "fixture", json!([server_info("x")]), "raw").await;
    match raw.next().await {
        Some(Frame::Error { code, message, fatal }) => {
            assert_eq!((code.as_str(), fatal), ("name_conflict", false));
            assert!(message.contains("'x'"), "{message}");
        }
        other => panic!("expected name_conflict, got {other:?}"),
    }
    let now = hub.state.hub.backend("fixture").unwrap();
    assert!(Arc::ptr_eq(&before, &now) && now.agent.is_none(), "the hub backend is untouched");
    assert!(hub.state.hub.backend("fixture__x").is_none());
    drop(raw);

    // Invalid server names are refused the same way, the valid ones added.
    let token = enroll(&hub, "box").await;
    let mut raw = RawAgent::connect(&hub.base, &token, "box", json!([server_info("Bad__Name"), server_info("ok")]), "raw").await;
    match raw.next().await {
        Some(Frame::Error { code, message, .. }) => {
            assert_eq!(code, "name_conflict");
            assert!(message.contains("Bad__Name"), "{message}");
        }
        other => panic!("expected name_conflict, got {other:?}"),
    }
    wait_tools(&hub, "box__ok", Duration::from_secs(10), None).await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let r = c.call("tools/call", json!({ "name": "fixture__echo", "arguments": { "still": "here" } })).await;
    assert!(r["content"][0]["text"].as_str().unwrap().contains("here"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_servers_are_visible_to_the_owner_and_shares_only() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "raw").await;
    let _raw = RawAgent::connect(&hub.base, &token, "raw", json!([server_info("s1")]), "hi").await;
    wait_tools(&hub, "raw__s1", Duration::from_secs(10), None).await;
    // Another admin: not the owner, not shared with.
    let other = create_key(&hub.state, "bob").await;
    assert!(tool_names(&hub.base, &hub.key).await.contains(&"raw__s1__whoami".to_owned()));
    assert!(!tool_names(&hub.base, &other).await.iter().any(|t| t.starts_with("raw__")));
    let mut c = Client::new(format!("{}/mcp", hub.base), Some(other.clone()));
    c.initialize().await;
    let r = c.request("tools/call", json!({ "name": "raw__s1__whoami", "arguments": {} })).await;
    assert!(r.body()["error"].is_object(), "{:?}", r.body());
    let (status, _) = api_as(&hub.base, &hub.key, "PUT", "/agents/raw/sharing", Some(json!({ "users": ["bob"] }))).await;
    assert_eq!(status, 200);
    assert!(tool_names(&hub.base, &other).await.contains(&"raw__s1__whoami".to_owned()));
    let r = c.call("tools/call", json!({ "name": "raw__s1__whoami", "arguments": {} })).await;
    assert_eq!(r["content"][0]["text"], "hi");
    // The registry knows the tool as the agent's.
    let (status, tools) = hub.api("GET", "/tools", None).await;
    assert_eq!(status, 200);
    assert!(tools.to_string().contains("\"raw\""), "{tools}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_disconnects_the_agent_for_good() {
    let hub = TestHub::start(FAST).await;
    let token = enroll(&hub, "laptop").await;
    let mut agent = Agent::start("laptop", &hub.base, &token, &fixture_server("fx"));
    wait_tools(&hub, "laptop__fx", Duration::from_secs(30), Some(&agent)).await;
    let (status, body) = hub.api("DELETE", "/agents/laptop", None).await;
    assert_eq!(status, 204, "{body}");
    let exit = tokio::time::timeout(Duration::from_secs(10), agent.child.wait()).await.expect("the agent exits").unwrap();
    assert_eq!(exit.code(), Some(3), "{}", agent.log());
    assert!(agent.log().contains("revoked"), "{}", agent.log());
    wait_for("the agent's backend to leave", Duration::from_secs(5), || hub.state.hub.backend("laptop__fx").is_none()).await;
    match dial(&hub.base, Some(&token), Some(SUBPROTOCOL), None).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a revoked token was let in"),
    }
}
