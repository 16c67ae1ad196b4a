//! The fixture over streamable HTTP, in-process, driven with reqwest.

use std::time::Duration;

use futures::StreamExt;
use gatehouse_test_support::fixture::{FixtureHandle, FixtureOptions, serve_http};
use serde_json::{Value, json};

async fn start(opts: FixtureOptions) -> FixtureHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_http(listener, opts).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn post(c: &reqwest::Client, url: &str, session: Option<&str>, body: Value) -> reqwest::RequestBuilder {
    let mut r = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    r
}

/// POSTs `body` and decodes the JSON answer.
async fn post_json(c: &reqwest::Client, url: &str, session: Option<&str>, body: Value) -> Value {
    post(c, url, session, body).send().await.unwrap().json().await.unwrap()
}

async fn initialize(c: &reqwest::Client, url: &str, caps: Value) -> String {
    let resp = post(c, url, None, json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":caps,"clientInfo":{"name":"t","version":"1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-11-25");
    let n = post(c, url, Some(&sid), json!({"jsonrpc":"2.0","method":"notifications/initialized"})).send().await.unwrap();
    assert_eq!(n.status(), 202);
    sid
}

/// Reads SSE `data:` payloads (skipping priming events with empty data).
struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        Self { stream: resp.bytes_stream().boxed(), buf: String::new() }
    }

    async fn next(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if !data.is_empty() {
                    return Some(serde_json::from_str(&data).unwrap());
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next()).await.expect("SSE timed out")?;
            self.buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }
}

#[tokio::test]
async fn elicitation_travels_on_the_call_stream() {
    let fx = start(FixtureOptions::default()).await;
    let c = client();
    let sid = initialize(&c, &fx.url(), json!({"elicitation": {}})).await;
    let resp = post(
        &c,
        &fx.url(),
        Some(&sid),
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader::new(resp);
    let req = sse.next().await.unwrap();
    assert_eq!(req["method"], "elicitation/create");
    assert_eq!(req["params"]["mode"], "form");
    let ack = post(
        &c,
        &fx.url(),
        Some(&sid),
        json!({"jsonrpc":"2.0","id":req["id"],"result":{"action":"accept","content":{"username":"u","email":"e@x"}}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(ack.status(), 202);
    let result = sse.next().await.unwrap();
    assert_eq!(result["id"], 7);
    let text = result["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("User response: action=accept"), "{text}");
    assert!(sse.next().await.is_none(), "the stream ends after the response");
    fx.shutdown().await.unwrap();
}

#[tokio::test]
async fn session_rules_and_dns_rebinding_protection() {
    let fx = start(FixtureOptions::default()).await;
    let c = client();
    let url = fx.url();
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    assert_eq!(post(&c, &url, None, list.clone()).send().await.unwrap().status(), 400);
    assert_eq!(post(&c, &url, Some("nope"), list.clone()).send().await.unwrap().status(), 404);
    let evil = post(&c, &url, None, json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}))
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let garbage = c.post(&url).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(garbage.json::<Value>().await.unwrap()["error"]["code"], -32700);

    let sid = initialize(&c, &url, json!({})).await;
    let tools: Value = post_json(&c, &url, Some(&sid), list.clone()).await;
    assert!(tools["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "test_simple_text"));
    let del = c.delete(&url).header("mcp-session-id", &sid).send().await.unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(post(&c, &url, Some(&sid), list).send().await.unwrap().status(), 404);
    fx.shutdown().await.unwrap();
}

#[tokio::test]
async fn standalone_stream_carries_resource_updates() {
    let fx = start(FixtureOptions::default()).await;
    let c = client();
    let url = fx.url();
    let watcher = initialize(&c, &url, json!({})).await;
    let sub = post(
        &c,
        &url,
        Some(&watcher),
        json!({"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"test://watched-resource"}}),
    );
    assert_eq!(sub.send().await.unwrap().status(), 200);
    let get = c.get(&url).header("accept", "text/event-stream").header("mcp-session-id", &watcher).send().await.unwrap();
    assert_eq!(get.status(), 200);
    let mut sse = SseReader::new(get);
    let second = c.get(&url).header("accept", "text/event-stream").header("mcp-session-id", &watcher).send().await.unwrap();
    assert_eq!(second.status(), 409, "one standalone stream per session");

    let other = initialize(&c, &url, json!({})).await;
    let call = post(
        &c,
        &url,
        Some(&other),
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"trigger_resource_update","arguments":{"uri":"test://watched-resource"}}}),
    );
    let r: Value = call.send().await.unwrap().json().await.unwrap();
    assert_eq!(r["result"]["content"][0]["text"], "notified 1 session(s)");
    let note = sse.next().await.unwrap();
    assert_eq!(note, json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://watched-resource"}}));
    fx.shutdown().await.unwrap();
}

#[tokio::test]
async fn echo_mode_is_stateless() {
    let fx = start(FixtureOptions { echo_only: true, ..FixtureOptions::default() }).await;
    let c = client();
    let r: Value = post_json(
        &c,
        &fx.url(),
        None,
        json!({"jsonrpc":"2.0","id":"e","method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo \"x\""}}}),
    )
    .await;
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), json!({"text":"héllo \"x\""}));
    let r: Value = post_json(&c, &fx.url(), None, json!({"jsonrpc":"2.0","id":1,"method":"resources/list"})).await;
    assert_eq!(r["error"]["code"], -32601);
    fx.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_binary_reports_its_url_and_serves_echo_mode() {
    let (mut child, url) = gatehouse_test_support::spawn_fixture_http(&["--json-only"]).await.unwrap();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"), "{url}");
    let r: Value =
        post_json(&client(), &url, None, json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}))
            .await;
    assert_eq!(r["result"]["content"][0]["text"], "{}");
    child.kill();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("the killed fixture exits").unwrap();
    assert!(!status.success(), "the guard killed the fixture");
}
