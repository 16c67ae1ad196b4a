//! Runtime backends through the admin API: create against a real fixture
//! server, list, test, SSRF refusals, permissions, delete, and survival of a
//! hub restart on the same database with secrets encrypted at rest.

use std::time::Duration;

use gatehouse_upstream::TransportSpec;
use gateway_server::server::AppState;
use gateway_server::store::{NewApiKey, Role};
use serde_json::{Value, json};

use crate::support::TestHub;

/// What [`call`] needs of a running hub.
pub(crate) trait Hub {
    fn base(&self) -> &str;
}

impl Hub for TestHub {
    fn base(&self) -> &str {
        &self.base
    }
}

/// A hub with extra `[server]` keys (which `TestHub::start` cannot add, as it
/// writes that table itself).
pub(crate) struct ServerHub {
    pub base: String,
    pub key: String,
    pub state: AppState,
    stop: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for ServerHub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Hub for ServerHub {
    fn base(&self) -> &str {
        &self.base
    }
}

impl ServerHub {
    pub(crate) async fn start(server_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\n{server_toml}\n[database]\nurl = \"sqlite://{}\"\n",
            dir.path().join("gatehouse.db").display()
        );
        let config = gateway_server::config::parse(&text, &gateway_server::config::MapEnv::new()).unwrap();
        let state = AppState::build(config).await.unwrap();
        let key = crate::support::create_key(&state, "alice").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(gateway_server::server::serve_on(listener, state.clone(), stop.clone()));
        Self { base, key, state, stop, _dir: dir }
    }
}

/// A user with `role` and an API key of theirs.
pub(crate) async fn key_with_role(state: &AppState, username: &str, role: Role) -> String {
    use gateway_server::auth::keys;
    let key = keys::generate_api_key();
    let user = state.store.ensure_user(username, role).await.unwrap();
    state
        .store
        .insert_api_key(NewApiKey {
            user_id: user.id,
            name: "test".into(),
            prefix: keys::key_prefix(&key),
            key_hash: keys::hash_key(state.auth.secret(), &key),
            surfaces: vec![],
            tools: vec![],
            expires_at: None,
        })
        .await
        .unwrap();
    key
}

pub(crate) async fn call(hub: &impl Hub, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}/api/v1{path}", hub.base())).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// Polls `GET /backends/{name}` until `done` holds, for up to 30 s.
async fn wait_for(hub: &TestHub, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, b) = call(hub, &hub.key, reqwest::Method::GET, &format!("/backends/{name}"), None).await;
        if status == 200 && done(&b) {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "backend {name} never got there: {status} {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn runtime_http_backend_lifecycle() {
    let (_fixture, url) = gatehouse_test_support::spawn_fixture_http(&[]).await.unwrap();
    let hub = TestHub::start("").await;
    let def = json!({ "name": "remote", "transport": "http", "url": url, "headers": { "X-Api-Token": "tok-very-secret" } });

    // A developer may not add backends.
    let dev = key_with_role(&hub.state, "dev", Role::Developer).await;
    let (status, body) = call(&hub, &dev, reqwest::Method::POST, "/backends", Some(def.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    let (status, created) = call(&hub, &hub.key, reqwest::Method::POST, "/backends", Some(def.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "runtime");
    assert_eq!(created["created_by"], "alice");
    assert_eq!(created["headers"]["X-Api-Token"], "***");
    assert!(!created.to_string().contains("tok-very-secret"));

    // It connects and its tools show up.
    let ready = wait_for(&hub, "remote", |b| b["health"] == "ready" && b["tools"].as_u64().unwrap_or(0) > 0).await;
    assert_eq!(ready["transport"], "http");
    let (status, list) = call(&hub, &hub.key, reqwest::Method::GET, "/backends", None).await;
    assert_eq!(status, 200);
    let listed = list.as_array().unwrap().iter().find(|b| b["name"] == "remote").cloned().unwrap();
    assert!(listed["tools"].as_u64().unwrap() > 0, "{listed}");
    assert!(!list.to_string().contains("tok-very-secret"));
    // Developers may read.
    assert_eq!(call(&hub, &dev, reqwest::Method::GET, "/backends", None).await.0, 200);
    // The hub serves its tools.
    let mut c = hub.client("/mcp/remote");
    c.initialize().await;
    let tools = c.call("tools/list", json!({})).await;
    assert!(!tools["tools"].as_array().unwrap().is_empty());

    // Same name again: 409.
    let (status, body) = call(&hub, &hub.key, reqwest::Method::POST, "/backends", Some(def.clone())).await;
    assert_eq!(status, 409, "{body}");

    // Tests: a stored backend, and a definition.
    let (status, t) = call(&hub, &hub.key, reqwest::Method::POST, "/backends/remote/test", None).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}");
    let (status, t) =
        call(&hub, &hub.key, reqwest::Method::POST, "/backend-tests", Some(json!({ "name": "probe", "transport": "http", "url": url })))
            .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}");
    assert!(t["tools"].as_array().unwrap().iter().any(|n| n == "echo"), "{t}");
    assert!(t["server_info"]["name"].is_string(), "{t}");
    assert!(t["latency_ms"].is_u64());
    // A test of a dead endpoint is a failed test, not a failed request.
    let (status, t) = call(
        &hub,
        &hub.key,
        reqwest::Method::POST,
        "/backend-tests",
        Some(json!({ "name": "dead", "transport": "http", "url": "http://127.0.0.1:9/mcp" })),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["ok"], false, "{t}");
    assert!(t["error"].is_string());

    // The record survives a restart of the hub on the same database, secret decrypted.
    let again = AppState::build((*hub.state.config).clone()).await.unwrap();
    let b = again.hub.backend("remote").expect("the stored backend is started at hub start");
    match &b.upstream.spec().transport {
        TransportSpec::Http { url: u, headers } => {
            assert_eq!(u, &url);
            assert_eq!(headers.get("X-Api-Token").map(String::as_str), Some("tok-very-secret"));
        }
        other => panic!("{other:?}"),
    }
    again.hub.shutdown().await;
    // ...while the database holds only ciphertext.
    let db = hub.state.config.database.url.trim_start_matches("sqlite://").to_owned();
    let raw = std::fs::read(&db).unwrap();
    let wal = std::fs::read(format!("{db}-wal")).unwrap_or_default();
    let needle = b"tok-very-secret";
    assert!(!raw.windows(needle.len()).any(|w| w == needle) && !wal.windows(needle.len()).any(|w| w == needle));

    // Replace: "***" keeps the stored header; the backend restarts with the new definition.
    let (status, body) = call(
        &hub,
        &hub.key,
        reqwest::Method::PUT,
        "/backends/remote",
        Some(json!({ "name": "remote", "transport": "http", "url": url, "headers": { "X-Api-Token": "***" }, "timeout_secs": 7 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timeout_secs"], 7);
    let live = hub.state.hub.backend("remote").unwrap();
    match &live.upstream.spec().transport {
        TransportSpec::Http { headers, .. } => assert_eq!(headers["X-Api-Token"], "tok-very-secret"),
        other => panic!("{other:?}"),
    }
    assert_eq!(live.upstream.spec().request_timeout, Duration::from_secs(7));

    // Delete stops and removes it.
    let (status, _) = call(&hub, &hub.key, reqwest::Method::DELETE, "/backends/remote", None).await;
    assert_eq!(status, 204);
    assert!(hub.state.hub.backend("remote").is_none());
    assert_eq!(call(&hub, &hub.key, reqwest::Method::GET, "/backends/remote", None).await.0, 404);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::DELETE, "/backends/remote", None).await.0, 404);
}

#[tokio::test]
async fn refused_definitions() {
    let hub = TestHub::start(&format!(
        "[[backends]]\nname = \"fixed\"\ntransport = \"stdio\"\ncommand = \"{}\"\n",
        gatehouse_test_support::fixture_bin().display()
    ))
    .await;
    let post = |path: &'static str, body: Value| {
        let hub = &hub;
        async move { call(hub, &hub.key, reqwest::Method::POST, path, Some(body)).await }
    };
    // SSRF: metadata and link-local addresses, also spelled as numbers or mapped IPv6.
    for url in
        ["http://169.254.169.254/", "http://2852039166/", "http://0xA9FEA9FE/", "http://[::ffff:169.254.169.254]/", "http://[fe80::1]/"]
    {
        for path in ["/backend-tests", "/backends"] {
            let (status, body) = post(path, json!({ "name": "meta", "transport": "http", "url": url })).await;
            assert_eq!(status, 400, "{path} {url}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains("link-local") || msg.contains("metadata"), "{msg}");
        }
    }
    let (status, body) =
        post("/backends", json!({ "name": "meta", "transport": "sse", "url": "http://metadata.google.internal/sse" })).await;
    assert_eq!(status, 400, "{body}");
    // Runtime stdio backends are off by default.
    let (status, body) = post("/backends", json!({ "name": "shell", "transport": "stdio", "command": "/bin/sh" })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("allow_runtime_stdio_backends"));
    // Config validation applies, naming the field.
    for (bad, field) in [
        (json!({ "name": "a__b", "transport": "http", "url": "http://127.0.0.1:9/" }), "name"),
        (json!({ "name": "x", "transport": "http" }), "url"),
        (json!({ "name": "x", "transport": "http", "url": "ftp://127.0.0.1/" }), "url"),
        (json!({ "name": "x", "transport": "http", "url": "http://127.0.0.1:9/", "command": "ls" }), "command"),
        (json!({ "name": "x", "transport": "http", "url": "http://127.0.0.1:9/", "headers": { "Bad Name": "v" } }), "headers"),
    ] {
        let (status, body) = post("/backends", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().starts_with(field), "{bad}: {body}");
    }
    let (status, _) = post("/backends", json!({ "name": "x", "transport": "carrier-pigeon" })).await;
    assert_eq!(status, 400);
    // Config-file backends: listed, read-only, name taken.
    let (status, list) = call(&hub, &hub.key, reqwest::Method::GET, "/backends", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "fixed");
    assert_eq!(list[0]["source"], "config");
    let (status, _) = post("/backends", json!({ "name": "fixed", "transport": "http", "url": "http://127.0.0.1:9/" })).await;
    assert_eq!(status, 409);
    let (status, _) = call(
        &hub,
        &hub.key,
        reqwest::Method::PUT,
        "/backends/fixed",
        Some(json!({ "name": "fixed", "transport": "http", "url": "http://127.0.0.1:9/" })),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::DELETE, "/backends/fixed", None).await.0, 409);
    assert_eq!(call(&hub, &hub.key, reqwest::Method::GET, "/backends/nope", None).await.0, 404);
}

#[tokio::test]
async fn runtime_stdio_backends_when_allowed() {
    let hub = ServerHub::start("allow_runtime_stdio_backends = true").await;
    let bin = gatehouse_test_support::fixture_bin().display().to_string();
    let def = json!({ "name": "local", "transport": "stdio", "command": bin, "env": { "TOKEN": "env-secret" } });
    let (status, body) = call(&hub, &hub.key, reqwest::Method::POST, "/backends", Some(def)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["env"]["TOKEN"], "***");
    assert_eq!(body["isolation"], "shared");
    let (status, body) = call(
        &hub,
        &hub.key,
        reqwest::Method::POST,
        "/backend-tests",
        Some(json!({ "name": "local", "transport": "stdio", "command": "relative/cwd", "cwd": "not/absolute" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, t) = call(&hub, &hub.key, reqwest::Method::POST, "/backends/local/test", None).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["ok"], true, "{t}");

    // Process isolation is part of a runtime definition, and is checked.
    for (bad, why) in [
        (json!({ "name": "iso", "transport": "http", "url": "http://127.0.0.1:9/mcp", "isolation": "session" }), "only stdio"),
        (json!({ "name": "iso", "transport": "stdio", "command": bin, "isolation": "per-call" }), "isolation"),
        (json!({ "name": "iso", "transport": "stdio", "command": bin, "max_processes": 3 }), "max_processes"),
    ] {
        let (status, body) = call(&hub, &hub.key, reqwest::Method::POST, "/backends", Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{why}: {body}");
    }
    let def = json!({ "name": "iso", "transport": "stdio", "command": bin, "isolation": "session", "max_processes": 2 });
    let (status, body) = call(&hub, &hub.key, reqwest::Method::POST, "/backends", Some(def)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["isolation"].as_str(), body["max_processes"].as_u64()), (Some("session"), Some(2)), "{body}");
    let backend = hub.state.hub.backend("iso").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !hub.state.hub.backend("iso").unwrap().catalog().tools.iter().any(|t| t["name"] == "echo") {
        assert!(tokio::time::Instant::now() < deadline, "the isolated backend never listed its tools");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..2 {
        let mut c = crate::support::Client::new(format!("{}/mcp/iso", hub.base), Some(hub.key.clone()));
        c.initialize().await;
        let r = c.call("tools/call", json!({ "name": "echo", "arguments": { "x": 1 } })).await;
        assert!(r["content"].is_array(), "{r}");
    }
    assert_eq!(backend.process_count(), 2, "one process per session");
}

#[tokio::test]
async fn private_urls_can_be_blocked() {
    let hub = ServerHub::start("block_private_urls = true").await;
    let (status, body) = call(
        &hub,
        &hub.key,
        reqwest::Method::POST,
        "/backends",
        Some(json!({ "name": "x", "transport": "http", "url": "http://127.0.0.1:9/mcp" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("loopback"), "{body}");
    assert!(hub.state.hub.backend("x").is_none());
}
