//! Streamable HTTP transport against a fake axum MCP server.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::*;
use futures::StreamExt;
use gatehouse_upstream::{CallError, CallOptions, HTTP_FAILURE_THRESHOLD, Health, TransportSpec, Upstream, UpstreamEvent};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
struct Post {
    method: Option<String>,
    id: Option<Value>,
    session: Option<String>,
    protocol: Option<String>,
    custom: Option<String>,
    accept: Option<String>,
    content_type: Option<String>,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum GetMode {
    /// 405: no GET stream.
    #[default]
    Refuse,
    /// One event, then the stream stays open.
    Forever,
    /// One event with an id, then the stream ends.
    OnceThenEnd,
}

#[derive(Debug, Clone, PartialEq)]
struct Get {
    session: Option<String>,
    accept: Option<String>,
    last_event_id: Option<String>,
}

#[derive(Default)]
struct Srv {
    get_mode: GetMode,
    inits: AtomicUsize,
    sessions: Mutex<HashSet<String>>,
    expire_next: AtomicBool,
    posts: Mutex<Vec<Post>>,
    gets: Mutex<Vec<Get>>,
    deletes: Mutex<Vec<Option<String>>>,
    client_replies: Mutex<Vec<Value>>,
}

impl Srv {
    fn posts_of(&self, method: &str) -> Vec<Post> {
        self.posts.lock().iter().filter(|p| p.method.as_deref() == Some(method)).cloned().collect()
    }
}

fn hdr(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn json_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

async fn on_post(State(srv): State<Arc<Srv>>, headers: HeaderMap, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap();
    let method = v.get("method").and_then(Value::as_str).map(str::to_owned);
    srv.posts.lock().push(Post {
        method: method.clone(),
        id: v.get("id").cloned(),
        session: hdr(&headers, "mcp-session-id"),
        protocol: hdr(&headers, "mcp-protocol-version"),
        custom: hdr(&headers, "x-custom"),
        accept: hdr(&headers, "accept"),
        content_type: hdr(&headers, "content-type"),
    });
    if method.as_deref() == Some("initialize") {
        let n = srv.inits.fetch_add(1, Ordering::SeqCst) + 1;
        let sid = format!("s{n}");
        srv.sessions.lock().insert(sid.clone());
        let result = json!({
            "protocolVersion": "2025-03-26",
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "axum-fake", "version": "1" },
        });
        let body = json!({ "jsonrpc": "2.0", "id": v["id"], "result": result }).to_string();
        return ([(header::CONTENT_TYPE, "application/json".to_owned()), (header::HeaderName::from_static("mcp-session-id"), sid)], body)
            .into_response();
    }
    let known = hdr(&headers, "mcp-session-id").is_some_and(|s| srv.sessions.lock().contains(&s));
    if !known {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    }
    let Some(method) = method else {
        // A response to one of our server→client requests.
        srv.client_replies.lock().push(v);
        return StatusCode::ACCEPTED.into_response();
    };
    let Some(id) = v.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    if srv.expire_next.swap(false, Ordering::SeqCst) {
        srv.sessions.lock().clear();
        return (StatusCode::NOT_FOUND, "session expired").into_response();
    }
    match method.as_str() {
        "echo" => json_response(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{FIXED}}}"#)),
        "rpcerr" => {
            json_response(format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32042,"message":"nope","data":{{"x":[1]}}}}}}"#))
        }
        "rpcerr400" => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: no"}}"#,
        )
            .into_response(),
        "fail500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom\n").into_response(),
        "stream" => {
            let events = vec![
                Event::default().data(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#),
                Event::default().data(r#"{"jsonrpc":"2.0","id":"srv-1","method":"roots/list"}"#),
                Event::default().data(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{FIXED}}}"#)),
            ];
            Sse::new(futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>))).into_response()
        }
        "stream_no_answer" => {
            let events = vec![Event::default().data(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#)];
            Sse::new(futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>))).into_response()
        }
        _ => json_response(format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#)),
    }
}

async fn on_get(State(srv): State<Arc<Srv>>, headers: HeaderMap) -> Response {
    let n = {
        let mut gets = srv.gets.lock();
        gets.push(Get {
            session: hdr(&headers, "mcp-session-id"),
            accept: hdr(&headers, "accept"),
            last_event_id: hdr(&headers, "last-event-id"),
        });
        gets.len()
    };
    let first = Event::default().id(format!("g{n}")).data(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
    let first = futures::stream::once(async move { Ok::<_, Infallible>(first) });
    match srv.get_mode {
        GetMode::Refuse => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        GetMode::Forever => Sse::new(first.chain(futures::stream::pending())).into_response(),
        GetMode::OnceThenEnd => Sse::new(first).into_response(),
    }
}

async fn on_delete(State(srv): State<Arc<Srv>>, headers: HeaderMap) -> StatusCode {
    srv.deletes.lock().push(hdr(&headers, "mcp-session-id"));
    StatusCode::OK
}

/// Serves the fake on 127.0.0.1:0; the sender stops it (gracefully).
async fn serve(srv: Arc<Srv>) -> (SocketAddr, oneshot::Sender<()>) {
    let app = Router::new().route("/mcp", post(on_post).get(on_get).delete(on_delete)).with_state(srv);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop)
}

fn http_spec(addr: SocketAddr) -> gatehouse_upstream::UpstreamSpec {
    let headers = BTreeMap::from([("X-Custom".to_owned(), "yes".to_owned())]);
    spec("web", TransportSpec::Http { url: format!("http://{addr}/mcp"), headers })
}

#[tokio::test]
async fn json_answers_sessions_headers_errors_and_delete() {
    init_tracing();
    let srv = Arc::new(Srv::default());
    let (addr, _stop) = serve(Arc::clone(&srv)).await;
    let (tx, mut rx) = events();
    let up = Upstream::start(http_spec(addr), identity(), tx);

    let init = up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(init.protocol_version, "2025-03-26", "the negotiated version is the server's");
    assert_eq!(init.server_info["name"], "axum-fake");
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;

    let result = up.request("echo", Some(raw(r#"{"a": 1}"#)), CallOptions::default()).await.unwrap();
    assert_eq!(result.get(), FIXED);

    // The 2026-07-28 probe came first (the 404 sent the connector to
    // initialize); initialize goes without session headers; everything after
    // carries them.
    assert_eq!(srv.posts.lock()[0].method.as_deref(), Some("server/discover"));
    let init_post = &srv.posts_of("initialize")[0];
    assert_eq!((init_post.session.as_deref(), init_post.protocol.as_deref()), (None, None));
    for p in srv.posts.lock().iter() {
        assert_eq!(p.accept.as_deref(), Some("application/json, text/event-stream"));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(p.custom.as_deref(), Some("yes"));
        if !matches!(p.method.as_deref(), Some("initialize" | "server/discover")) {
            assert_eq!(p.session.as_deref(), Some("s1"), "{p:?}");
            assert_eq!(p.protocol.as_deref(), Some("2025-03-26"), "{p:?}");
        }
    }
    assert_eq!(srv.posts_of("notifications/initialized").len(), 1);

    // JSON-RPC errors, in a 200 or in a 4xx body, are forwarded untouched.
    match up.request("rpcerr", None, CallOptions::default()).await {
        Err(CallError::Rpc(e)) => assert_eq!((e.code, e.message.as_str(), e.data), (-32042, "nope", Some(json!({"x": [1]})))),
        other => panic!("{other:?}"),
    }
    match up.request("rpcerr400", None, CallOptions::default()).await {
        Err(CallError::Rpc(e)) => assert_eq!((e.code, e.message.as_str()), (-32600, "Bad Request: no")),
        other => panic!("{other:?}"),
    }
    // Other non-2xx answers are Unavailable with status and an excerpt.
    match up.request("fail500", None, CallOptions::default()).await {
        Err(CallError::Unavailable(why)) => assert_eq!(why, "HTTP 500 Internal Server Error: boom"),
        other => panic!("{other:?}"),
    }
    // An SSE answer that ends without the response.
    match up.request("stream_no_answer", None, CallOptions::default()).await {
        Err(CallError::Unavailable(why)) => assert!(why.contains("ended before the answer"), "{why}"),
        other => panic!("{other:?}"),
    }
    // None of that took the connection down.
    assert_eq!(up.status().health, Health::Ready);

    // The GET stream was tried once: 405 means no stream, no retries.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gets = srv.gets.lock().clone();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0], Get { session: Some("s1".into()), accept: Some("text/event-stream".into()), last_event_id: None });

    up.notify("notifications/roots/list_changed", None).await.unwrap();
    assert_eq!(srv.posts_of("notifications/roots/list_changed")[0].session.as_deref(), Some("s1"));

    up.shutdown().await;
    assert_eq!(*srv.deletes.lock(), [Some("s1".to_owned())]);
    assert_eq!(up.status().health, Health::Stopped);
}

#[tokio::test]
async fn sse_answers_route_messages_with_the_call_context() {
    init_tracing();
    let srv = Arc::new(Srv { get_mode: GetMode::Forever, ..Default::default() });
    let (addr, _stop) = serve(Arc::clone(&srv)).await;
    let (tx, mut rx) = events();
    let up = Upstream::start(http_spec(addr), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();

    // The GET stream delivers server-initiated messages, without a context.
    let (method, context) = next_event(&mut rx, |e| match e {
        UpstreamEvent::Notification { method, context, .. } => Some((method, context)),
        _ => None,
    })
    .await;
    assert_eq!((method.as_str(), context), ("notifications/tools/list_changed", None));

    let call = tokio::spawn({
        let up = up.clone();
        async move { up.request("stream", None, CallOptions { context: Some(42), ..Default::default() }).await }
    });
    let (method, params, context) = next_event(&mut rx, |e| match e {
        UpstreamEvent::Notification { method, params, context } => Some((method, params, context)),
        _ => None,
    })
    .await;
    assert_eq!(method, "notifications/progress");
    assert_eq!(params.unwrap().get(), r#"{"progressToken":"t","progress":1}"#);
    assert_eq!(context, Some(42));
    let (request, context, reply) = next_event(&mut rx, |e| match e {
        UpstreamEvent::Request { request, context, reply } => Some((request, context, reply)),
        _ => None,
    })
    .await;
    assert_eq!((request.method.as_str(), context), ("roots/list", Some(42)));
    reply.send(Ok(raw(r#"{"roots":[]}"#))).unwrap();
    assert_eq!(call.await.unwrap().unwrap().get(), FIXED);

    // The reply went back to the server as a POST, with the server's id.
    let replies = eventually(|| {
        let r = srv.client_replies.lock().clone();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(replies[0], json!({"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": []}}));
    up.shutdown().await;
}

#[tokio::test]
async fn expired_session_reinitializes_once_and_retries() {
    init_tracing();
    let srv = Arc::new(Srv::default());
    let (addr, _stop) = serve(Arc::clone(&srv)).await;
    let (tx, _rx) = events();
    let up = Upstream::start(http_spec(addr), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(up.request("echo", None, CallOptions::default()).await.unwrap().get(), FIXED);

    srv.expire_next.store(true, Ordering::SeqCst);
    assert_eq!(up.request("echo", None, CallOptions::default()).await.unwrap().get(), FIXED);
    assert_eq!(srv.inits.load(Ordering::SeqCst), 2);
    let echoes = srv.posts_of("echo");
    let sessions: Vec<_> = echoes.iter().map(|p| p.session.clone().unwrap()).collect();
    assert_eq!(sessions, ["s1", "s1", "s2"], "the retry uses the new session");
    // The retry is the same request: same id.
    assert_eq!(echoes[1].id, echoes[2].id);
    assert_eq!(srv.posts_of("notifications/initialized").len(), 2);
    assert_eq!(up.status().health, Health::Ready);
    assert_eq!(up.status().restarts, 0, "a transparent re-initialization is no restart");

    up.shutdown().await;
    assert_eq!(*srv.deletes.lock(), [Some("s2".to_owned())]);
}

#[tokio::test]
async fn refused_connection_is_unavailable_and_unhealthy() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (tx, mut rx) = events();
    let up = Upstream::start(http_spec(addr), identity(), tx);
    let error = next_event(&mut rx, |e| match e {
        UpstreamEvent::Health(Health::Unhealthy { error }) => Some(error),
        _ => None,
    })
    .await;
    assert!(error.starts_with("initialize failed: upstream unavailable:"), "{error}");
    assert!(error.to_lowercase().contains("connect"), "{error}");
    let started = Instant::now();
    assert!(matches!(up.request("echo", None, CallOptions::default()).await, Err(CallError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_millis(500));
    let err = up.wait_ready(Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, CallError::Unavailable(_)), "{err:?}");
    up.shutdown().await;
}

#[tokio::test]
async fn repeated_transport_failures_take_the_connection_down() {
    init_tracing();
    let srv = Arc::new(Srv::default());
    let (addr, stop) = serve(Arc::clone(&srv)).await;
    let (tx, mut rx) = events();
    let up = Upstream::start(http_spec(addr), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    next_event(&mut rx, |e| matches!(e, UpstreamEvent::Health(Health::Ready)).then_some(())).await;

    stop.send(()).unwrap();
    // Wait until the port refuses connections.
    eventually(|| std::net::TcpStream::connect(addr).is_err().then_some(())).await;

    // Single failures only fail their call...
    for _ in 1..HTTP_FAILURE_THRESHOLD {
        let err = up.request("echo", None, CallOptions::default()).await.unwrap_err();
        assert!(matches!(&err, CallError::Unavailable(w) if w.contains("error sending request")), "{err:?}");
        assert_eq!(up.status().health, Health::Ready);
    }
    // ...repeated ones mark the upstream unhealthy.
    let _ = up.request("echo", None, CallOptions::default()).await.unwrap_err();
    let error = next_event(&mut rx, |e| match e {
        UpstreamEvent::Health(Health::Unhealthy { error }) => Some(error),
        _ => None,
    })
    .await;
    assert!(error.contains("consecutive transport failures"), "{error}");
    up.shutdown().await;
}

#[tokio::test]
async fn get_stream_reconnects_with_last_event_id() {
    let srv = Arc::new(Srv { get_mode: GetMode::OnceThenEnd, ..Default::default() });
    let (addr, _stop) = serve(Arc::clone(&srv)).await;
    let (tx, mut rx) = events();
    let up = Upstream::start(http_spec(addr), identity(), tx);
    up.wait_ready(Duration::from_secs(10)).await.unwrap();
    for _ in 0..2 {
        next_event(&mut rx, |e| match e {
            UpstreamEvent::Notification { method, context: None, .. } if method == "notifications/tools/list_changed" => Some(()),
            _ => None,
        })
        .await;
    }
    let gets = eventually(|| {
        let g = srv.gets.lock().clone();
        (g.len() >= 2).then_some(g)
    })
    .await;
    assert_eq!(gets[0].last_event_id, None);
    assert_eq!(gets[1].last_event_id.as_deref(), Some("g1"));
    assert_eq!(gets[1].session.as_deref(), Some("s1"));
    assert_eq!(up.status().health, Health::Ready, "a GET stream that ends is no failure");
    up.shutdown().await;
}
