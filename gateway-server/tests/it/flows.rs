//! Server→client traffic through the hub with the fixture server over stdio:
//! progress on the request's own stream, notifications on the session's GET
//! stream, no crossing between sessions, resumable streams (priming event,
//! early close, replay with `Last-Event-ID`), and per-user process isolation.

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
    let resp = c.open_get_stream().await;
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

/// One SSE event as sent: its `id`, `retry` and `data` fields.
#[derive(Debug, Default)]
struct SseEvent {
    id: Option<String>,
    retry: Option<u64>,
    data: String,
}

fn parse_sse(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| !l.starts_with(':') && !l.is_empty()))
        .map(|block| {
            let mut ev = SseEvent::default();
            for line in block.lines() {
                let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
                match field {
                    "id" => ev.id = Some(value.to_owned()),
                    "retry" => ev.retry = value.parse().ok(),
                    "data" => ev.data.push_str(value),
                    _ => {}
                }
            }
            ev
        })
        .collect()
}

async fn resume(c: &Client, last_event_id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {}", c.key.clone().unwrap()))
        .header("mcp-session-id", c.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last_event_id)
        .send()
        .await
        .unwrap()
}

/// A 2025-11-25 POST stream opens with a priming event (id, retry, empty
/// data); when the hub closes it before the answer, GET with `Last-Event-ID`
/// replays what the client missed and then the answer. Ids the session
/// cannot resume get a clear refusal.
#[tokio::test]
async fn post_streams_are_primed_closed_early_and_resumed_with_last_event_id() {
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let hub = TestHub::start(&format!(
        "[mcp]\nsse_after_ms = 0\nsse_close_after_ms = 150\nsse_replay_events = 64\n[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n",
        bin.display()
    ))
    .await;
    hub.wait_backend("fixture").await;
    let mut c = hub.client("/mcp/fixture");
    c.initialize().await;
    let resp = c
        .post_streaming(&json!({ "jsonrpc": "2.0", "id": 42, "method": "tools/call",
            "params": { "name": "sleep", "arguments": { "ms": 1200 }, "_meta": { "progressToken": "q" } } }))
        .await;
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = parse_sse(&resp.text().await.unwrap());
    let priming = &events[0];
    assert!(priming.id.is_some() && priming.data.is_empty(), "the stream opens with a priming event: {events:?}");
    assert_eq!(priming.retry, Some(500));
    assert!(
        !events.iter().any(|e| e.data.contains("\"id\":42")),
        "the hub closed the stream before the answer (sse_close_after_ms): {events:?}"
    );
    let last = events.iter().rev().find_map(|e| e.id.clone()).unwrap();

    let resumed = resume(&c, &last).await;
    assert_eq!(resumed.status(), 200);
    let rest = parse_sse(&resumed.text().await.unwrap());
    let messages: Vec<Value> = rest.iter().filter(|e| !e.data.is_empty()).map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let answer = messages.last().expect("the answer arrives on the resumed stream");
    assert_eq!(answer["id"], 42, "{messages:?}");
    assert_eq!(answer["result"]["content"][0]["text"], "slept 1200 ms");
    let progress = progress_of(&messages);
    assert!(!progress.is_empty() && progress.iter().all(|p| p["params"]["progressToken"] == "q"), "missed progress replayed: {messages:?}");
    assert!(rest.iter().all(|e| e.id.is_some()), "every event has an id: {rest:?}");

    // A stream read to its end cannot be resumed again; neither can one that never existed.
    assert_eq!(resume(&c, &last).await.status(), 404);
    let unknown = resume(&c, "999_1").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("Last-Event-ID names no stream"));
    assert_eq!(resume(&c, "garbage").await.status(), 400);
}

/// With `isolation = "user"` the sessions of one user share a process of their
/// own, another user gets another, and a user's process stops when that
/// user's last session ends; the shared process keeps serving the catalog.
#[tokio::test]
async fn user_isolation_runs_one_process_per_user_until_their_last_session_ends() {
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let hub = TestHub::start(&format!(
        "[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\nisolation = \"user\"\nmax_processes = 4\n",
        bin.display()
    ))
    .await;
    hub.wait_backend("fixture").await;
    let backend = hub.state.hub.backend("fixture").unwrap();
    let bob_key = crate::support::create_key(&hub.state, "bob").await;
    let mut alice1 = hub.client("/mcp");
    let mut alice2 = hub.client("/mcp");
    let mut bob = Client::new(format!("{}/mcp", hub.base), Some(bob_key));
    for c in [&mut alice1, &mut alice2, &mut bob] {
        c.initialize().await;
        let tools = c.call("tools/list", json!({})).await;
        assert!(
            tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "fixture__echo"),
            "the catalog needs no process of one's own"
        );
    }
    assert_eq!(backend.process_count(), 0);
    for c in [&mut alice1, &mut alice2, &mut bob] {
        let r = c.call("tools/call", json!({ "name": "fixture__echo", "arguments": { "x": 1 } })).await;
        assert!(r["content"].is_array(), "{r}");
    }
    assert_eq!(backend.process_count(), 2, "one process for alice, one for bob");

    assert_eq!(alice1.delete().await, 200);
    assert_eq!(bob.delete().await, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while backend.process_count() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "bob's process outlived his last session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Alice still has a session: her process serves it.
    let r = alice2.call("tools/call", json!({ "name": "fixture__echo", "arguments": { "x": 2 } })).await;
    assert!(r["content"].is_array(), "{r}");
    assert_eq!(backend.process_count(), 1);
}

#[tokio::test]
async fn a_call_the_client_cancels_gets_no_answer_and_its_stream_ends() {
    let hub = fixture_hub().await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    let call = json!({ "jsonrpc": "2.0", "id": 41, "method": "tools/call",
        "params": { "name": "fixture__sleep", "arguments": { "ms": 20000 }, "_meta": { "progressToken": "p" } } });
    let resp = c.post_streaming(&call).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    // The call is running once its first progress notification arrived.
    while !seen.contains("notifications/progress") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("progress in time");
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream open").unwrap()));
    }
    let r =
        c.post(&json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 41, "reason": "user" } })).await;
    assert_eq!(r.status, 202);
    // The stream ends long before the 20 s sleep would have, and carries no answer.
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await
    .expect("the stream ended after the cancellation");
    let answers: Vec<Value> = parse_sse(&seen)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter(|m| m.get("id") == Some(&json!(41)))
        .collect();
    assert!(answers.is_empty(), "a cancelled call was answered: {answers:?}");
    // The session goes on.
    let r = c.call("tools/call", json!({ "name": "fixture__echo", "arguments": { "x": 2 } })).await;
    assert!(r["content"].is_array(), "{r}");
}
