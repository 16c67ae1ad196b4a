//! Server→client traffic through the hub with the fixture server over stdio:
//! progress on the request's own stream, notifications on the session's GET
//! stream, and no crossing between sessions.

use std::time::Duration;

use futures::StreamExt;
use gatehouse_test_support::fixture_bin;
use serde_json::{Value, json};

use crate::support::{Client, TestHub};

async fn fixture_hub() -> TestHub {
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let hub = TestHub::start(&format!("[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n", bin.display())).await;
    hub.wait_backend("fixture").await;
    hub
}

fn progress_of(messages: &[Value]) -> Vec<&Value> {
    messages.iter().filter(|m| m["method"] == "notifications/progress").collect()
}

#[tokio::test]
async fn progress_comes_back_on_the_calls_stream_with_the_clients_token() {
    let hub = fixture_hub().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let r = c
        .request("tools/call", json!({ "name": "fixture__sleep", "arguments": { "ms": 300 }, "_meta": { "progressToken": "tok-1" } }))
        .await;
    assert!(r.is_sse, "progress needs a stream: {r:?}");
    let progress = progress_of(&r.messages);
    assert!(progress.len() >= 2, "{:?}", r.messages);
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "tok-1"), "the client's own token is restored: {progress:?}");
    assert_eq!(r.body()["result"]["content"][0]["text"], "slept 300 ms");

    // Without anything to send first, the answer is plain JSON.
    let r = c.request("tools/call", json!({ "name": "fixture__echo", "arguments": { "x": 1 } })).await;
    assert!(!r.is_sse);
    assert!(r.body()["result"].is_object(), "{:?}", r.body());
}

#[tokio::test]
async fn two_sessions_on_one_shared_backend_get_only_their_own_progress() {
    let hub = fixture_hub().await;
    let mut a = hub.client("/mcp");
    let mut b = hub.client("/mcp");
    a.initialize().await;
    b.initialize().await;
    // Same request id and same progress token in both sessions: only the hub's
    // rewriting keeps them apart.
    let call = |ms: u64| json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": "fixture__sleep", "arguments": { "ms": ms }, "_meta": { "progressToken": 1 } } });
    let (ca, cb) = (call(300), call(700));
    let (ra, rb) = tokio::join!(a.post(&ca), b.post(&cb));
    assert_eq!(ra.body()["result"]["content"][0]["text"], "slept 300 ms");
    assert_eq!(rb.body()["result"]["content"][0]["text"], "slept 700 ms");
    // The fixture reports total = ceil(ms / 100) steps.
    let totals = |msgs: &[Value]| progress_of(msgs).iter().map(|p| p["params"]["total"].as_u64().unwrap()).collect::<Vec<_>>();
    let (ta, tb) = (totals(&ra.messages), totals(&rb.messages));
    assert!(!ta.is_empty() && ta.iter().all(|t| *t == 3), "session a saw {ta:?}");
    assert!(!tb.is_empty() && tb.iter().all(|t| *t == 7), "session b saw {tb:?}");
}

#[tokio::test]
async fn list_changed_reaches_the_sessions_get_stream() {
    let hub = fixture_hub().await;
    let mut c: Client = hub.client("/mcp/fixture");
    c.initialize().await;
    let resp = reqwest::Client::new()
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {}", hub.key))
        .header("mcp-session-id", c.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let r = c.call("tools/call", json!({ "name": "trigger_list_changed", "arguments": { "kind": "tools" } })).await;
    assert!(r["content"][0]["text"].as_str().unwrap().starts_with("notified"), "{r}");
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("notifications/tools/list_changed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "GET stream got: {seen}");

    // GET without a session, or without accepting SSE, is refused.
    let no_session = reqwest::Client::new()
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {}", hub.key))
        .send()
        .await
        .unwrap();
    assert_eq!(no_session.status(), 400);
    let no_accept = reqwest::Client::new()
        .get(&c.url)
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {}", hub.key))
        .header("mcp-session-id", c.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(no_accept.status(), 406);
}
