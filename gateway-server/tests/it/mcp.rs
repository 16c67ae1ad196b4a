//! The MCP front door end to end: sessions, aggregation, routing, and every
//! kind of bad input, against real stdio backends.

use serde_json::{Value, json};

use crate::support::{Client, TestHub, fixture_file};

fn misbehaving(name: &str, timeout_secs: u64) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\ntransport = \"stdio\"\ncommand = \"python3\"\nargs = [\"{}\"]\ntimeout_secs = {timeout_secs}\n",
        fixture_file("misbehaving.py").display()
    )
}

async fn hub_with_two() -> TestHub {
    let hub = TestHub::start(&format!("{}{}", misbehaving("alpha", 2), misbehaving("beta", 2))).await;
    hub.wait_backend("alpha").await;
    hub.wait_backend("beta").await;
    hub
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn aggregates_namespaces_and_routes() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    let init = c.initialize().await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(init["serverInfo"]["name"], "gatehouse");
    assert!(init["capabilities"]["tools"].is_object());

    let tools = c.call("tools/list", json!({})).await;
    let mut got = names(&tools, "tools");
    got.sort();
    assert!(got.contains(&"alpha__ok".to_owned()) && got.contains(&"beta__ok".to_owned()), "{got:?}");
    assert!(tools.get("nextCursor").is_none());

    let r = c.call("tools/call", json!({ "name": "beta__ok", "arguments": {}, "_meta": { "vendor/x": [1, 2] } })).await;
    assert_eq!(r["content"][0]["text"], "fine");

    // A name no backend owns is a JSON-RPC error, not an HTTP error.
    let r = c.request("tools/call", json!({ "name": "gamma__ok", "arguments": {} })).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body()["error"]["code"], -32602, "{:?}", r.body());
    assert!(r.body()["error"]["message"].as_str().unwrap().contains("gamma__ok"));

    // Unknown methods.
    let r = c.request("nope/nothing", json!({})).await;
    assert_eq!(r.body()["error"]["code"], -32601);

    // ping is answered by the hub.
    assert_eq!(c.call("ping", json!({})).await, json!({}));
}

#[tokio::test]
async fn single_backend_endpoint_is_not_namespaced() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp/alpha");
    let init = c.initialize().await;
    assert_eq!(init["serverInfo"]["name"], "misbehaving", "the backend's own initialize result passes through");
    let tools = c.call("tools/list", json!({})).await;
    assert!(names(&tools, "tools").contains(&"ok".to_owned()));
    let r = c.call("tools/call", json!({ "name": "ok", "arguments": {} })).await;
    assert_eq!(r["content"][0]["text"], "fine");

    // A session of /mcp/alpha is not valid on /mcp/beta or /mcp.
    let mut other = hub.client("/mcp/beta");
    other.session = c.session.clone();
    assert_eq!(other.request("ping", json!({})).await.status, 404);

    let unknown = hub.client("/mcp/nosuch");
    assert_eq!(unknown.post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})).await.status, 404);
}

#[tokio::test]
async fn sessions_notifications_and_delete() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    // Notifications and responses get 202 with no body.
    let r = c.post(&json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 99 } })).await;
    assert_eq!((r.status, r.messages.len()), (202, 0));
    // Missing session id on a non-initialize request: 400.
    let mut anon = hub.client("/mcp");
    assert_eq!(anon.request("tools/list", json!({})).await.status, 400);
    // Unknown session: 404.
    anon.session = Some("0123456789abcdef0123456789abcdef".into());
    let r = anon.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404);
    assert!(r.body()["error"]["message"].as_str().unwrap().contains("Session not found"));
    // DELETE ends it; then it is unknown.
    assert_eq!(c.delete().await, 200);
    assert_eq!(c.request("tools/list", json!({})).await.status, 404);
    assert_eq!(c.delete().await, 404);
}

#[tokio::test]
async fn another_users_session_is_not_found() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let bob_key = crate::support::create_key(&hub.state, "bob").await;
    let mut bob = Client::new(format!("{}/mcp", hub.base), Some(bob_key));
    bob.session = c.session.clone();
    assert_eq!(bob.request("tools/list", json!({})).await.status, 404);
}

#[tokio::test]
async fn batches_only_for_2025_03_26() {
    let hub = hub_with_two().await;
    let batch = json!([
        { "jsonrpc": "2.0", "id": 1, "method": "ping" },
        { "jsonrpc": "2.0", "method": "notifications/initialized" },
        { "jsonrpc": "2.0", "id": 2, "method": "tools/list" },
        { "bad": true }
    ]);
    let mut old = hub.client("/mcp");
    old.version = "2025-03-26".into();
    old.initialize().await;
    let r = old.post(&batch).await;
    assert_eq!(r.status, 200, "{r:?}");
    let replies = r.body().as_array().unwrap().clone();
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(replies.iter().any(|m| m["id"] == 1 && m["result"] == json!({})));
    assert!(replies.iter().any(|m| m["id"] == 2 && m["result"]["tools"].is_array()));
    assert!(replies.iter().any(|m| m["error"]["code"] == -32600));

    let mut new = hub.client("/mcp");
    new.initialize().await;
    let r = new.post(&batch).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body()["error"]["code"], -32600);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_hub_keeps_serving() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;

    // Malformed JSON.
    let r = c.post_raw("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ", &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body()["error"]["code"], -32700);
    assert_eq!(r.body()["id"], Value::Null);
    // A JSON-RPC envelope with missing fields.
    let r = c.post(&json!({ "id": 5, "method": "ping" })).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body()["error"]["code"], -32600);
    let r = c.post(&json!({ "jsonrpc": "2.0", "id": 5 })).await;
    assert_eq!(r.status, 400);
    // A huge body: 413.
    let huge = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}", "a".repeat(5 * 1024 * 1024));
    let r = c.post_raw(huge, &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body()["error"]["code"], -32600);
    // Wrong content type.
    let r = c.post_raw("{}", &[("content-type", "text/plain")]).await;
    assert_eq!(r.status, 415);
    // Unsupported protocol version header.
    let r = c.post_raw(json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(), &[("mcp-protocol-version", "1999-01-01")]).await;
    assert_eq!(r.status, 400);
    // Params of the wrong type.
    let r = c.request("tools/call", json!([1, 2])).await;
    assert_eq!(r.body()["error"]["code"], -32602);
    let r = c.request("tools/call", json!({ "name": 7 })).await;
    assert_eq!(r.body()["error"]["code"], -32602);
    // Initialize with bad params.
    let mut fresh = hub.client("/mcp");
    let r = fresh.request("initialize", json!({ "capabilities": {} })).await;
    assert_eq!(r.body()["error"]["code"], -32602);

    // Still serving.
    assert_eq!(c.call("ping", json!({})).await, json!({}));
    let r = c.call("tools/call", json!({ "name": "alpha__ok", "arguments": {} })).await;
    assert_eq!(r["content"][0]["text"], "fine");
}

#[tokio::test]
async fn auth_host_and_origin() {
    let hub = hub_with_two().await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "x", "version": "1" } } });
    // No key.
    let r = Client::new(format!("{}/mcp", hub.base), None).post(&init).await;
    assert_eq!(r.status, 401);
    let challenge = r.headers.get("www-authenticate").expect("WWW-Authenticate").to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    // Wrong key (well-formed and malformed).
    for bad in ["gk_0000000000000000000000000000000000000000000", "nonsense"] {
        let r = Client::new(format!("{}/mcp", hub.base), Some(bad.into())).post(&init).await;
        assert_eq!(r.status, 401, "{bad}");
        assert!(r.headers.get("www-authenticate").unwrap().to_str().unwrap().contains("invalid_token"));
        assert!(!format!("{:?}", r.messages).contains(bad), "the key is never echoed");
    }
    // Bad Origin (a browser page of another site) and bad Host (DNS rebinding).
    let c = hub.client("/mcp");
    assert_eq!(c.post_raw(init.to_string(), &[("origin", "https://evil.example")]).await.status, 403);
    assert_eq!(c.post_raw(init.to_string(), &[("host", "evil.example")]).await.status, 403);
    // A loopback Origin is fine.
    assert_eq!(c.post_raw(init.to_string(), &[("origin", "http://localhost:6274")]).await.status, 200);
}

#[tokio::test]
async fn dead_and_silent_upstreams_give_json_rpc_errors() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;

    // Never answers: the per-request timeout (2 s here) gives a JSON-RPC error.
    let started = std::time::Instant::now();
    let r = c.request("tools/call", json!({ "name": "alpha__hang", "arguments": {} })).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body()["error"]["code"], -32011, "{:?}", r.body());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Crashes mid-call: a JSON-RPC error at once, not a hang.
    let r = c.request("tools/call", json!({ "name": "beta__crash", "arguments": {} })).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body()["error"]["code"], -32010, "{:?}", r.body());
    assert!(r.body()["error"]["message"].as_str().unwrap().contains("beta"));

    // The other backend is unaffected, and the crashed one comes back.
    let r = c.call("tools/call", json!({ "name": "alpha__ok", "arguments": {} })).await;
    assert_eq!(r["content"][0]["text"], "fine");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = c.request("tools/call", json!({ "name": "beta__ok", "arguments": {} })).await;
        if r.body()["result"]["content"][0]["text"] == "fine" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "beta did not come back: {:?}", r.body());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(hub.state.hub.backend("beta").unwrap().status().restarts >= 1);
}

#[tokio::test]
async fn a_backend_that_cannot_start_does_not_stop_the_hub() {
    let toml = format!(
        "{}[[backends]]\nname = \"broken\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/definitely-not-here\"\n",
        misbehaving("alpha", 5)
    );
    let hub = TestHub::start(&toml).await;
    hub.wait_backend("alpha").await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let tools = c.call("tools/list", json!({})).await;
    assert!(names(&tools, "tools").iter().all(|n| !n.starts_with("broken__")));
    let st = hub.state.hub.backend("broken").unwrap().status();
    assert!(matches!(st.health, gatehouse_upstream::Health::Unhealthy { .. } | gatehouse_upstream::Health::Starting), "{st:?}");
    // /health/ready reports it.
    let ready: Value = reqwest::get(format!("{}/health/ready", hub.base)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["store"], true);
    assert!(ready["backends"]["broken"]["health"].as_str().unwrap() != "ready", "{ready}");
    // Its single-backend endpoint answers initialize with a clear error.
    let mut b = hub.client("/mcp/broken");
    let r = b
        .request(
            "initialize",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "x", "version": "1" } }),
        )
        .await;
    assert_eq!(r.body()["error"]["code"], -32010, "{:?}", r.body());
}

#[tokio::test]
async fn large_results_pass_through() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let r = c.call("tools/call", json!({ "name": "alpha__big", "arguments": {} })).await;
    assert_eq!(r["content"][0]["text"].as_str().unwrap().len(), 2_000_000);
}

#[tokio::test]
async fn answers_never_overtake_the_progress_sent_before_them() {
    let hub = hub_with_two().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    for round in 0..5 {
        let r = c.request("tools/call", json!({ "name": "alpha__burst", "arguments": {}, "_meta": { "progressToken": round } })).await;
        assert!(r.is_sse, "{r:?}");
        let progress: Vec<_> = r.messages.iter().filter(|m| m["method"] == "notifications/progress").collect();
        assert_eq!(progress.len(), 50, "round {round}: every progress notification arrives before the answer");
        assert!(progress.iter().enumerate().all(|(i, p)| p["params"]["progress"] == i && p["params"]["progressToken"] == round));
        assert_eq!(r.body()["result"]["content"][0]["text"], "burst");
    }
}

/// Reads SSE events (`event`, `data`) from a streaming response.
struct Events {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> (String, String) {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut event = "message".to_owned();
                let mut data = Vec::new();
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.trim_start().to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return (event, data.join("\n"));
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), self.stream.next()).await.expect("an event in time");
            self.buf.push_str(&String::from_utf8_lossy(&chunk.expect("stream open").unwrap()));
        }
    }

    async fn next_json(&mut self) -> Value {
        let (event, data) = self.next().await;
        assert_eq!(event, "message");
        serde_json::from_str(&data).unwrap()
    }
}

#[tokio::test]
async fn legacy_sse_transport_serves_the_merged_catalog() {
    let hub = hub_with_two().await;
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", hub.key);
    // Without a key: 401.
    assert_eq!(http.get(format!("{}/sse", hub.base)).send().await.unwrap().status(), 401);
    let resp =
        http.get(format!("{}/sse", hub.base)).header("authorization", &auth).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = Events { stream: Box::pin(resp.bytes_stream()), buf: String::new() };
    let (event, endpoint) = events.next().await;
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");
    let post = |body: Value| {
        http.post(format!("{}{endpoint}", hub.base))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    // Before initialize, requests are refused on the stream.
    assert_eq!(post(json!({ "jsonrpc": "2.0", "id": 0, "method": "tools/list" })).await.unwrap().status(), 202);
    assert_eq!(events.next_json().await["error"]["code"], -32600);
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": { "name": "old", "version": "1" } } });
    assert_eq!(post(init).await.unwrap().status(), 202);
    let r = events.next_json().await;
    assert_eq!(r["id"], 1);
    assert_eq!(r["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await.unwrap().status(), 202);
    assert_eq!(post(json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" })).await.unwrap().status(), 202);
    let r = events.next_json().await;
    assert!(names(&r["result"], "tools").contains(&"beta__ok".to_owned()), "{r}");
    assert_eq!(
        post(json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "beta__ok", "arguments": {} } }))
            .await
            .unwrap()
            .status(),
        202
    );
    let r = events.next_json().await;
    assert_eq!((r["id"].clone(), r["result"]["content"][0]["text"].clone()), (json!(3), json!("fine")));
    // Malformed JSON: 400; an unknown session id or another user's: 404.
    let bad = http
        .post(format!("{}{endpoint}", hub.base))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown =
        http.post(format!("{}/messages?sessionId=nope", hub.base)).header("authorization", &auth).body("{}").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let bob = crate::support::create_key(&hub.state, "bob").await;
    let other =
        http.post(format!("{}{endpoint}", hub.base)).header("authorization", format!("Bearer {bob}")).body("{}").send().await.unwrap();
    assert_eq!(other.status(), 404);
    // Closing the stream ends the session.
    let sessions = hub.state.hub.sessions.len();
    drop(events);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hub.state.hub.sessions.len() >= sessions {
        assert!(std::time::Instant::now() < deadline, "the session outlived its stream");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_typescript_v1_sse_client_lists_and_calls_tools_through_sse() {
    if !gatehouse_test_support::peers_or_skip("the_typescript_v1_sse_client_lists_and_calls_tools_through_sse") {
        return;
    }
    let hub = hub_with_two().await;
    let node = gatehouse_test_support::node22().unwrap();
    let node_modules = gatehouse_test_support::peers_dir().unwrap().join("npm/node_modules");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/peers/ts_sse_client.mjs");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(node)
            .arg(script)
            .arg(format!("{}/sse", hub.base))
            .arg("alpha__ok")
            .env("GATEHOUSE_KEY", &hub.key)
            .env("PEERS_NODE_MODULES", node_modules)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finished in time")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(summary["server"]["name"], "gatehouse", "{summary}");
    let tools: Vec<&str> = summary["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tools.contains(&"alpha__ok") && tools.contains(&"beta__ok"), "{tools:?}");
    assert_eq!(summary["result"]["content"][0]["text"], "fine", "{summary}");
}
