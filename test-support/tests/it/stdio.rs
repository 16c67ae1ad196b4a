//! The fixture over the stdio transport, driven through an in-memory pipe.

use std::time::Duration;

use gatehouse_test_support::fixture::{FixtureOptions, serve_io};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

struct Client {
    tx: tokio::io::WriteHalf<DuplexStream>,
    rx: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
}

impl Client {
    async fn send(&mut self, v: Value) {
        self.tx.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.rx.next_line()).await.expect("timed out").unwrap();
        serde_json::from_str(&line.expect("stream ended")).unwrap()
    }
}

fn start() -> (Client, tokio::task::JoinHandle<()>) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (r, w) = tokio::io::split(theirs);
    let server = tokio::spawn(async move { serve_io(r, w, &FixtureOptions::default()).await.unwrap() });
    let (r, w) = tokio::io::split(ours);
    (Client { tx: w, rx: BufReader::new(r).lines() }, server)
}

async fn initialized(capabilities: Value) -> (Client, tokio::task::JoinHandle<()>) {
    let (mut c, server) = start();
    c.send(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":capabilities,"clientInfo":{"name":"t","version":"1"}}})).await;
    let init = c.recv().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "gatehouse-fixture");
    c.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    (c, server)
}

#[tokio::test]
async fn sampling_round_trip_over_stdio() {
    let (mut c, _server) = initialized(json!({"sampling": {}})).await;
    c.send(json!({"jsonrpc":"2.0","id":"call","method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"}}})).await;
    let req = c.recv().await;
    assert_eq!(req["method"], "sampling/createMessage");
    assert_eq!(req["params"]["messages"][0]["content"]["text"], "hi");
    c.send(json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":"hello back"},"model":"m"}}))
        .await;
    let resp = c.recv().await;
    assert_eq!(resp["id"], "call");
    assert_eq!(resp["result"]["content"][0]["text"], "LLM response: hello back");
}

#[tokio::test]
async fn bad_input_gets_json_rpc_errors_and_the_server_keeps_going() {
    let (mut c, _server) = initialized(json!({})).await;
    c.send(json!("not an object")).await;
    assert_eq!(c.recv().await["error"]["code"], -32600);
    c.tx.write_all(b"{nope\n").await.unwrap();
    let e = c.recv().await;
    assert_eq!((e["id"].clone(), e["error"]["code"].clone()), (Value::Null, json!(-32700)));
    c.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"no_such_tool"}})).await;
    assert_eq!(c.recv().await["error"]["code"], -32602);
    c.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"x"}}})).await;
    let r = c.recv().await;
    assert_eq!(r["result"]["isError"], true, "no sampling capability: a tool error, not a hang: {r}");
    c.send(json!({"jsonrpc":"2.0","id":3,"method":"ping"})).await;
    assert_eq!(c.recv().await, json!({"jsonrpc":"2.0","id":3,"result":{}}));
}

#[tokio::test]
async fn cancelled_calls_get_no_response_and_logs_follow_the_level() {
    let (mut c, _server) = initialized(json!({})).await;
    c.send(json!({"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"sleep","arguments":{"ms":30000}}})).await;
    c.send(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow"}})).await;
    c.send(json!({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"warning"}})).await;
    assert_eq!(c.recv().await["id"], 1, "the cancelled call must not answer");
    c.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_tool_with_logging"}})).await;
    // Info logs are below "warning": the next message is the result itself.
    let r = c.recv().await;
    assert_eq!(r["id"], 2, "{r}");
}

#[tokio::test]
async fn end_of_input_stops_the_server() {
    let (c, server) = initialized(json!({})).await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server did not stop").unwrap();
}

#[tokio::test]
async fn requests_pipelined_behind_initialize_are_served() {
    let (mut c, _server) = start();
    c.send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}})).await;
    c.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}})).await;
    assert_eq!(c.recv().await["id"], 1);
    let r = c.recv().await;
    assert_eq!(r["result"]["content"][0]["text"], r#"{"a":1}"#, "{r}");
}
