//! The 2026-07-28 stateless era over streamable HTTP, against a fake axum
//! server that speaks it (or, for the fallback, only the session eras).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::*;
use futures::StreamExt;
use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_upstream::{CallError, CallOptions, ProtocolPreference, TransportSpec, Upstream, UpstreamEvent};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const V2026: &str = "2026-07-28";

#[derive(Debug, Clone)]
struct Post {
    method: String,
    id: Value,
    params: Value,
    protocol: Option<String>,
    mcp_method: Option<String>,
    mcp_name: Option<String>,
    session: Option<String>,
    region: Option<String>,
}

#[derive(Default)]
struct Srv {
    /// Speaks only the session eras when false.
    stateless: bool,
    posts: Mutex<Vec<Post>>,
    /// Set when the stream of the `slow` tool call was closed by the client.
    slow_closed: AtomicBool,
}

impl Srv {
    fn posts_of(&self, method: &str) -> Vec<Post> {
        self.posts.lock().iter().filter(|p| p.method == method).cloned().collect()
    }
}

fn hdr(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn reply(id: &Value, result: Value) -> Response {
    json_text(json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string())
}

/// Sets the flag when the response stream is dropped (the client closed it).
struct ClosedFlag(Arc<Srv>);

impl Drop for ClosedFlag {
    fn drop(&mut self) {
        self.0.slow_closed.store(true, Ordering::SeqCst);
    }
}

async fn on_post(State(srv): State<Arc<Srv>>, headers: HeaderMap, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap();
    let method = v["method"].as_str().unwrap_or_default().to_owned();
    let id = v["id"].clone();
    let params = v["params"].clone();
    srv.posts.lock().push(Post {
        method: method.clone(),
        id: id.clone(),
        params: params.clone(),
        protocol: hdr(&headers, "mcp-protocol-version"),
        mcp_method: hdr(&headers, "mcp-method"),
        mcp_name: hdr(&headers, "mcp-name"),
        session: hdr(&headers, "mcp-session-id"),
        region: hdr(&headers, "mcp-param-region"),
    });
    if !srv.stateless {
        return match method.as_str() {
            "initialize" => {
                let result = json!({ "protocolVersion": "2025-03-26", "capabilities": { "tools": {} }, "serverInfo": { "name": "old" } });
                let body = json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string();
                ([(header::CONTENT_TYPE, "application/json"), (header::HeaderName::from_static("mcp-session-id"), "s1")], body)
                    .into_response()
            }
            _ if hdr(&headers, "mcp-session-id").is_none() => {
                (StatusCode::BAD_REQUEST, "Bad Request: Server not initialized").into_response()
            }
            _ if id.is_null() => StatusCode::ACCEPTED.into_response(),
            _ => json_text(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{FIXED}}}"#)),
        };
    }
    let arg = |k: &str| params["inputResponses"][k]["content"]["name"].as_str().unwrap_or_default().to_owned();
    match (method.as_str(), params["name"].as_str()) {
        ("server/discover", _) => reply(
            &id,
            json!({
                "resultType": "complete",
                "supportedVersions": [V2026],
                "capabilities": { "tools": { "listChanged": true }, "resources": { "subscribe": true } },
                "serverInfo": { "name": "fake-2026", "version": "1" },
                "instructions": "be kind"
            }),
        ),
        ("tools/list", _) => reply(
            &id,
            json!({ "resultType": "complete", "tools": [
                { "name": "regional", "inputSchema": { "type": "object", "$defs": { "r": { "type": "string" } }, "properties": { "region": { "type": "string", "x-mcp-header": "Region" } } } },
                { "name": "broken", "inputSchema": { "type": "object", "properties": { "data": { "type": "object", "x-mcp-header": "Data" } } } }
            ] }),
        ),
        ("tools/call", Some("echo")) => {
            json_text(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resultType":"complete","zz": {{"b":1,"a":[1.50, 2e3]}} }}}}"#))
        }
        ("tools/call", Some("regional")) => reply(&id, json!({ "content": [] })),
        // Two rounds of elicitation, each with its own opaque state.
        ("tools/call", Some("ask")) => match params["requestState"].as_str() {
            None => reply(
                &id,
                json!({ "resultType": "input_required", "requestState": "r1",
                        "inputRequests": { "step1": { "method": "elicitation/create", "params": { "message": "name?" } } } }),
            ),
            Some("r1") if !arg("step1").is_empty() => reply(
                &id,
                json!({ "resultType": "input_required", "requestState": "r2 \u{e9}",
                        "inputRequests": { "step2": { "method": "elicitation/create", "params": { "message": "color?" } } } }),
            ),
            Some("r2 \u{e9}") => reply(
                &id,
                json!({ "resultType": "complete", "content": [{ "type": "text", "text": format!("favourite: {}", arg("step2")) }] }),
            ),
            Some(other) => reply(&id, json!({ "content": [{ "type": "text", "text": format!("bad state {other}") }], "isError": true })),
        },
        // Progress, then never an answer: the stream stays open until the client closes it.
        ("tools/call", Some("slow")) => {
            let guard = ClosedFlag(Arc::clone(&srv));
            let first =
                Event::default().data(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}"#);
            let events = futures::stream::once(async move { Ok::<_, Infallible>(first) }).chain(futures::stream::pending()).map(move |e| {
                let _ = &guard;
                e
            });
            Sse::new(events).into_response()
        }
        ("subscriptions/listen", _) => {
            let ack = Event::default().data(
                json!({ "jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": { "notifications": params["notifications"] } }).to_string(),
            );
            let changed = Event::default().data(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
            Sse::new(futures::stream::iter([Ok::<_, Infallible>(ack), Ok(changed)]).chain(futures::stream::pending())).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            json_text(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "Method not found" } }).to_string()),
        )
            .into_response(),
    }
}

async fn serve(srv: Arc<Srv>) -> SocketAddr {
    let app = Router::new().route("/mcp", post(on_post)).with_state(srv);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn spec_for(addr: SocketAddr, protocol: ProtocolPreference) -> gatehouse_upstream::UpstreamSpec {
    let mut spec = spec("modern", TransportSpec::Http { url: format!("http://{addr}/mcp"), headers: Default::default() });
    spec.protocol = protocol;
    spec
}

/// What the event consumer saw: (what, context).
type Seen = Arc<Mutex<Vec<(String, Option<u64>)>>>;

/// Answers elicitations with `{"name": <last word of the message, uppercased>}`
/// and records notifications and the contexts requests came with.
/// A stateless test server and a connector to it with `pref`, its events answered by [`answer_events`].
async fn start_stateless(pref: ProtocolPreference) -> (Arc<Srv>, Upstream, Seen) {
    let srv = Arc::new(Srv { stateless: true, ..Default::default() });
    let addr = serve(Arc::clone(&srv)).await;
    let (tx, rx) = events();
    let up = Upstream::start(spec_for(addr, pref), identity(), tx);
    (srv, up, answer_events(rx))
}

fn answer_events(mut rx: mpsc::Receiver<UpstreamEvent>) -> Seen {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                UpstreamEvent::Request { request, context, reply } => {
                    let params: Value = serde_json::from_str(request.params.as_ref().unwrap().get()).unwrap();
                    let word = params["message"].as_str().unwrap_or_default().trim_end_matches('?').to_uppercase();
                    log.lock().push((format!("request {} {}", request.method, request.id), context));
                    let _ = reply.send(Ok(to_raw(&json!({ "action": "accept", "content": { "name": word } }))));
                }
                UpstreamEvent::Notification { method, context, .. } => log.lock().push((method, context)),
                UpstreamEvent::Barrier(ack) => {
                    let _ = ack.send(());
                }
                UpstreamEvent::Health(_) => {}
            }
        }
    });
    seen
}

#[tokio::test]
async fn discover_chooses_the_stateless_era_and_requests_carry_meta_and_headers() {
    init_tracing();
    let (srv, up, seen) = start_stateless(ProtocolPreference::Auto).await;

    let init = up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(init.protocol_version, V2026);
    assert_eq!((init.server_info["name"].as_str(), init.instructions.as_deref()), (Some("fake-2026"), Some("be kind")));
    assert_eq!(init.capabilities["tools"], json!({ "listChanged": true }));

    // resultType goes, every other member stays byte for byte.
    let echo = up.request("tools/call", Some(raw(r#"{"name":"echo"}"#)), CallOptions::default()).await.unwrap();
    assert_eq!(echo.get(), r#"{"zz":{"b":1,"a":[1.50, 2e3]}}"#);

    // The tool with an invalid x-mcp-header is left out and cannot be called.
    let list = json(&up.request("tools/list", None, CallOptions::default()).await.unwrap());
    let names: Vec<&str> = list["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["regional"]);
    assert_eq!(list["tools"][0]["inputSchema"]["$defs"], json!({ "r": { "type": "string" } }));
    match up.request("tools/call", Some(raw(r#"{"name":"broken","arguments":{"data":{}}}"#)), CallOptions::default()).await {
        Err(CallError::Rpc(e)) => assert_eq!(e.code, -32602),
        other => panic!("{other:?}"),
    }
    assert!(srv.posts_of("tools/call").iter().all(|p| p.params["name"] != "broken"));

    // logging/setLevel is answered here and travels in _meta from then on.
    up.request("logging/setLevel", Some(raw(r#"{"level":"debug"}"#)), CallOptions::default()).await.unwrap();
    up.request("tools/call", Some(raw(r#"{"name":"regional","arguments":{"region":"eu west"}}"#)), CallOptions::default()).await.unwrap();
    let call = srv.posts_of("tools/call").into_iter().find(|p| p.params["name"] == "regional").unwrap();
    assert_eq!((call.mcp_name.as_deref(), call.region.as_deref()), (Some("regional"), Some("eu west")));
    assert_eq!(call.params["_meta"]["io.modelcontextprotocol/logLevel"], "debug");

    for p in srv.posts.lock().iter() {
        assert_eq!(p.protocol.as_deref(), Some(V2026), "{p:?}");
        assert_eq!(p.mcp_method.as_deref(), Some(p.method.as_str()), "{p:?}");
        assert_eq!(p.session, None, "{p:?}");
        let meta = &p.params["_meta"];
        assert_eq!(meta["io.modelcontextprotocol/protocolVersion"], V2026, "{p:?}");
        assert_eq!(meta["io.modelcontextprotocol/clientCapabilities"], identity().capabilities, "{p:?}");
        assert_eq!(meta["io.modelcontextprotocol/clientInfo"], identity().client_info, "{p:?}");
        assert!(!matches!(p.method.as_str(), "initialize" | "notifications/initialized" | "logging/setLevel"), "{p:?}");
    }

    // The listen stream asked for what the server declared; its notification arrived.
    eventually(|| seen.lock().iter().any(|(m, _)| m == "notifications/tools/list_changed").then_some(())).await;
    let listen = &srv.posts_of("subscriptions/listen")[0];
    assert_eq!(listen.params["notifications"], json!({ "toolsListChanged": true }));
    assert!(!seen.lock().iter().any(|(m, _)| m == "notifications/subscriptions/acknowledged"));

    // A resource subscription reopens it with the URI.
    up.request("resources/subscribe", Some(raw(r#"{"uri":"file:///a"}"#)), CallOptions::default()).await.unwrap();
    let reopened = eventually(|| srv.posts_of("subscriptions/listen").get(1).cloned()).await;
    assert_eq!(reopened.params["notifications"]["resourceSubscriptions"], json!(["file:///a"]));
    up.shutdown().await;
}

#[tokio::test]
async fn input_required_rounds_are_answered_through_events_and_retried() {
    init_tracing();
    let (srv, up, seen) = start_stateless(ProtocolPreference::Stateless).await;
    up.wait_ready(Duration::from_secs(10)).await.unwrap();

    let opts = CallOptions { context: Some(7), ..Default::default() };
    let result = up.request("tools/call", Some(raw(r#"{"name":"ask","arguments":{}}"#)), opts).await.unwrap();
    assert_eq!(json(&result), json!({ "content": [{ "type": "text", "text": "favourite: COLOR" }] }));

    let asks: Vec<_> = seen.lock().iter().filter(|(m, _)| m.starts_with("request")).cloned().collect();
    assert_eq!(asks, [("request elicitation/create step1".to_owned(), Some(7)), ("request elicitation/create step2".to_owned(), Some(7))]);
    let calls = srv.posts_of("tools/call");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].params.get("requestState"), None);
    assert_eq!(calls[1].params["requestState"], "r1");
    assert_eq!(calls[1].params["inputResponses"], json!({ "step1": { "action": "accept", "content": { "name": "NAME" } } }));
    assert_eq!(calls[2].params["requestState"], "r2 \u{e9}", "the state goes back unchanged");
    assert_eq!(calls[2].params["inputResponses"].as_object().unwrap().keys().collect::<Vec<_>>(), ["step2"]);
    assert!(calls[0].id != calls[1].id && calls[1].id != calls[2].id, "every round has its own id");
    up.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_call_closes_its_stream() {
    init_tracing();
    let (srv, up, seen) = start_stateless(ProtocolPreference::Auto).await;
    up.wait_ready(Duration::from_secs(10)).await.unwrap();

    let cancel = CancellationToken::new();
    let opts = CallOptions { cancel: Some(cancel.clone()), context: Some(3), ..Default::default() };
    let call = tokio::spawn({
        let up = up.clone();
        async move { up.request("tools/call", Some(raw(r#"{"name":"slow"}"#)), opts).await }
    });
    // Progress on the call's stream arrives with the call's context.
    eventually(|| seen.lock().iter().any(|(m, c)| m == "notifications/progress" && *c == Some(3)).then_some(())).await;
    assert!(!srv.slow_closed.load(Ordering::SeqCst));
    cancel.cancel();
    assert!(matches!(call.await.unwrap(), Err(CallError::Cancelled)));
    eventually(|| srv.slow_closed.load(Ordering::SeqCst).then_some(())).await;
    assert!(srv.posts_of("notifications/cancelled").is_empty(), "cancelling is closing the stream");

    // A timeout closes it too.
    srv.slow_closed.store(false, Ordering::SeqCst);
    let opts = CallOptions { timeout: Some(Duration::from_millis(200)), ..Default::default() };
    assert!(matches!(up.request("tools/call", Some(raw(r#"{"name":"slow"}"#)), opts).await, Err(CallError::Timeout(_))));
    eventually(|| srv.slow_closed.load(Ordering::SeqCst).then_some(())).await;
    up.shutdown().await;
}

#[tokio::test]
async fn a_session_era_server_gets_initialize() {
    init_tracing();
    let srv = Arc::new(Srv::default());
    let addr = serve(Arc::clone(&srv)).await;
    let (tx, _rx) = events();
    let up = Upstream::start(spec_for(addr, ProtocolPreference::Auto), identity(), tx);
    let init = up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(init.protocol_version, "2025-03-26");
    let result = up.request("tools/call", Some(raw(r#"{"name":"x"}"#)), CallOptions::default()).await.unwrap();
    assert_eq!(result.get(), FIXED);
    let methods: Vec<String> = srv.posts.lock().iter().map(|p| p.method.clone()).collect();
    assert_eq!(methods[..3], ["server/discover", "initialize", "notifications/initialized"]);
    assert_eq!(srv.posts_of("tools/call")[0].session.as_deref(), Some("s1"));
    up.shutdown().await;

    // Session only: no probe at all.
    let srv = Arc::new(Srv::default());
    let addr = serve(Arc::clone(&srv)).await;
    let (tx, _rx) = events();
    let up = Upstream::start(spec_for(addr, ProtocolPreference::Session), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert!(srv.posts_of("server/discover").is_empty());
    up.shutdown().await;
}

#[tokio::test]
async fn stateless_only_fails_without_a_2026_offer_or_over_stdio() {
    init_tracing();
    let srv = Arc::new(Srv::default());
    let addr = serve(Arc::clone(&srv)).await;
    let (tx, _rx) = events();
    let up = Upstream::start(spec_for(addr, ProtocolPreference::Stateless), identity(), tx);
    match up.wait_ready(Duration::from_millis(500)).await {
        Err(CallError::Unavailable(why)) => assert!(why.contains("server/discover"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(srv.posts_of("initialize").is_empty());
    up.shutdown().await;

    let mut stdio = spec("child", TransportSpec::Stdio { command: "true".into(), args: vec![], env: Default::default(), cwd: None });
    stdio.protocol = ProtocolPreference::Stateless;
    let (tx, _rx) = events();
    let up = Upstream::start(stdio, identity(), tx);
    match up.wait_ready(Duration::from_millis(500)).await {
        Err(CallError::Unavailable(why)) => assert!(why.contains("streamable HTTP"), "{why}"),
        other => panic!("{other:?}"),
    }
    up.shutdown().await;
}
