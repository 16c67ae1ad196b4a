//! Legacy HTTP+SSE transport (2024-11-05) against a fake axum server.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::*;
use futures::StreamExt;
use gatehouse_upstream::{CallError, CallOptions, Health, TransportSpec, Upstream, UpstreamEvent};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Default)]
struct Legacy {
    /// Data of the `endpoint` event; `{port}` is replaced by the server's port.
    endpoint: String,
    port: Mutex<u16>,
    stream: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    gets: Mutex<Vec<Option<String>>>,
    posts: Mutex<Vec<(Option<String>, Value)>>,
}

impl Legacy {
    fn push(&self, text: String) {
        if let Some(tx) = self.stream.lock().as_ref() {
            let _ = tx.send(Event::default().data(text));
        }
    }
}

async fn on_get(State(srv): State<Arc<Legacy>>, headers: HeaderMap) -> Response {
    srv.gets.lock().push(headers.get("accept").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let (tx, rx) = mpsc::unbounded_channel();
    *srv.stream.lock() = Some(tx);
    let endpoint = Event::default().event("endpoint").data(srv.endpoint.replace("{port}", &srv.port.lock().to_string()));
    let rest = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let stream = futures::stream::once(async move { endpoint }).chain(rest).map(Ok::<_, Infallible>);
    Sse::new(stream).into_response()
}

async fn on_post(State(srv): State<Arc<Legacy>>, Query(q): Query<BTreeMap<String, String>>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap();
    srv.posts.lock().push((q.get("sessionId").cloned(), v.clone()));
    if q.get("sessionId").map(String::as_str) != Some("abc") {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    }
    let (Some(method), Some(id)) = (v.get("method").and_then(Value::as_str), v.get("id")) else {
        return StatusCode::ACCEPTED.into_response();
    };
    match method {
        "initialize" => srv.push(
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2024-11-05",
                "capabilities": {},
                "serverInfo": {"name": "legacy-fake", "version": "0"},
            }})
            .to_string(),
        ),
        "echo" => srv.push(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{FIXED}}}"#)),
        "notify_me" => {
            srv.push(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}"#.into());
            srv.push(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#));
        }
        "roots" => {
            srv.push(r#"{"jsonrpc":"2.0","id":7,"method":"roots/list"}"#.into());
            srv.push(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#));
        }
        "hang" => {}
        "bye" => {
            srv.stream.lock().take();
        }
        "post_fails" => return (StatusCode::INTERNAL_SERVER_ERROR, "nope").into_response(),
        _ => srv.push(format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#)),
    }
    StatusCode::ACCEPTED.into_response()
}

async fn serve(endpoint: &str) -> (SocketAddr, Arc<Legacy>) {
    let srv = Arc::new(Legacy { endpoint: endpoint.into(), ..Default::default() });
    let app = Router::new().route("/sse", get(on_get)).route("/messages", post(on_post)).with_state(Arc::clone(&srv));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *srv.port.lock() = addr.port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, srv)
}

fn sse_spec(addr: SocketAddr) -> gatehouse_upstream::UpstreamSpec {
    spec("legacy", TransportSpec::Sse { url: format!("http://{addr}/sse"), headers: BTreeMap::new() })
}

#[tokio::test]
async fn legacy_round_trip() {
    init_tracing();
    let (addr, srv) = serve("/messages?sessionId=abc").await;
    let (tx, mut rx) = events();
    let up = Upstream::start(sse_spec(addr), identity(), tx);
    let init = up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(init.protocol_version, "2024-11-05");
    assert_eq!(srv.gets.lock()[0].as_deref(), Some("text/event-stream"));
    // initialize, then notifications/initialized, both to the endpoint.
    let methods: Vec<_> = srv.posts.lock().iter().map(|(_, v)| v["method"].as_str().unwrap().to_owned()).collect();
    assert_eq!(methods, ["initialize", "notifications/initialized"]);

    assert_eq!(up.request("echo", Some(raw(r#"{"x": 1}"#)), CallOptions::default()).await.unwrap().get(), FIXED);

    up.request("notify_me", None, CallOptions { context: Some(3), ..Default::default() }).await.unwrap();
    let (method, context) = next_event(&mut rx, |e| match e {
        UpstreamEvent::Notification { method, context, .. } => Some((method, context)),
        _ => None,
    })
    .await;
    assert_eq!((method.as_str(), context), ("notifications/message", None));

    up.request("roots", None, CallOptions::default()).await.unwrap();
    let reply = next_event(&mut rx, |e| match e {
        UpstreamEvent::Request { request, reply, .. } if request.method == "roots/list" => Some(reply),
        _ => None,
    })
    .await;
    reply.send(Ok(raw(r#"{"roots":[{"uri":"file:///x"}]}"#))).unwrap();
    let answer = eventually(|| srv.posts.lock().iter().find(|(_, v)| v.get("result").is_some()).map(|(_, v)| v.clone())).await;
    assert_eq!(answer, json!({"jsonrpc": "2.0", "id": 7, "result": {"roots": [{"uri": "file:///x"}]}}));

    match up.request("post_fails", None, CallOptions::default()).await {
        Err(CallError::Unavailable(why)) => assert_eq!(why, "HTTP 500 Internal Server Error: nope"),
        other => panic!("{other:?}"),
    }
    up.shutdown().await;
}

#[tokio::test]
async fn stream_end_fails_calls_in_flight_and_reconnects() {
    init_tracing();
    let (addr, srv) = serve("/messages?sessionId=abc").await;
    let (tx, mut rx) = events();
    let up = Upstream::start(sse_spec(addr), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;

    let hanging = tokio::spawn({
        let up = up.clone();
        async move { up.request("hang", None, CallOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = up.request("bye", None, CallOptions::default()).await.unwrap_err();
    assert!(matches!(&err, CallError::Unavailable(w) if w == "the SSE stream ended"), "{err:?}");
    let err = hanging.await.unwrap().unwrap_err();
    assert!(matches!(&err, CallError::Unavailable(w) if w == "the SSE stream ended"), "{err:?}");
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Unhealthy { .. })).then_some(())).await;

    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;
    assert_eq!(up.request("echo", None, CallOptions::default()).await.unwrap().get(), FIXED);
    assert_eq!(up.status().restarts, 1);
    assert_eq!(srv.gets.lock().len(), 2);
    up.shutdown().await;
}

#[tokio::test]
async fn endpoint_on_another_origin_is_refused() {
    // Same port, other host name: another origin.
    let (addr, srv) = serve("http://localhost:{port}/messages?sessionId=abc").await;
    let (tx, _rx) = events();
    let up = Upstream::start(sse_spec(addr), identity(), tx);
    let err = up.wait_ready(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(&err, CallError::Unavailable(w) if w.contains("refusing the SSE endpoint")), "{err:?}");
    assert!(srv.posts.lock().is_empty(), "nothing may be posted to a foreign endpoint");
    up.shutdown().await;
}
