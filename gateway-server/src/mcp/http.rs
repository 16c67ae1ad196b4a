//! The streamable HTTP front door: `POST/GET/DELETE /mcp` and `/mcp/{backend}`
//! for the 2025-03-26, 2025-06-18 and 2025-11-25 protocol revisions; a
//! session-less POST of the 2026-07-28 revision goes to [`super::stateless`].
//!
//! Every request passes the same guard first: Host and Origin validation
//! (DNS-rebinding protection), then the caller's key. A POST answers with
//! plain JSON when the reply is a single message, and switches to an SSE
//! stream only when the gateway has something to send before the response
//! (progress, logging, sampling, elicitation) or the answer is slow in coming:
//! the client pays for a stream only when it gets one. Those streams and the
//! `GET` stream are resumable ([`super::stream`]): event ids, a priming event
//! for 2025-11-25 clients, and replay on `GET` with `Last-Event-ID`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::{Stream, StreamExt};
use gatehouse_proto::jsonrpc::Body;
use gatehouse_proto::mcp::{self, code, method};
use gatehouse_proto::{ErrorObject, Message, Request};
use tokio::sync::mpsc;

use super::guard::Caller;
use super::hub::{Hub, InitError};
use super::session::{Scope, Session};
use super::stream::{AttachError, EventStream, parse_event_id, sse_body};
use crate::auth::Principal;
use crate::server::AppState;

/// Capacity of a request's message channel (intermediate messages + responses).
const REQUEST_CHANNEL: usize = 64;
/// The `retry` hint of priming events: how long a client waits before it resumes.
const RETRY_HINT: Duration = Duration::from_millis(500);

/// Routes of the streamable HTTP transport.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp", post(post_aggregate).get(get_aggregate).delete(delete_aggregate))
        .route("/mcp/{backend}", post(post_backend).get(get_backend).delete(delete_backend))
}

/// A JSON-RPC error as an HTTP response (`id: null`).
pub fn rpc_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    let body = Message::Response(gatehouse_proto::Response::err(None, ErrorObject::new(code, message)));
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_json()).into_response()
}

/// The request body, or the JSON-RPC error answer for one that could not be
/// read (413 past `limit` bytes).
pub fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Response> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::INVALID_REQUEST,
                format!("Request body is larger than the limit of {limit} bytes"),
            )
        } else {
            rpc_error(StatusCode::BAD_REQUEST, code::PARSE_ERROR, format!("Could not read the request body: {rej}"))
        }
    })
}

fn json_response(body: String, session: Option<&str>) -> Response {
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        resp.headers_mut().insert(mcp::header::SESSION_ID, id);
    }
    resp
}

fn backend_scope(hub: &Hub, name: &str) -> Result<Scope, Response> {
    match hub.backend(name) {
        Some(b) => Ok(Scope::Backend(b.name.clone())),
        None => Err(rpc_error(StatusCode::NOT_FOUND, code::INVALID_REQUEST, format!("No backend named '{name}'"))),
    }
}

async fn post_aggregate(State(st): State<AppState>, caller: Caller, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    handle_post(st, caller, Scope::Aggregate, headers, body).await
}

async fn post_backend(
    State(st): State<AppState>,
    caller: Caller,
    Path(backend): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match backend_scope(&st.hub, &backend) {
        Ok(scope) => handle_post(st, caller, scope, headers, body).await,
        Err(r) => r,
    }
}

async fn get_aggregate(State(st): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    handle_get(&st, &caller, &Scope::Aggregate, &headers)
}

async fn get_backend(State(st): State<AppState>, caller: Caller, Path(backend): Path<String>, headers: HeaderMap) -> Response {
    match backend_scope(&st.hub, &backend) {
        Ok(scope) => handle_get(&st, &caller, &scope, &headers),
        Err(r) => r,
    }
}

async fn delete_aggregate(State(st): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    handle_delete(&st, &caller, &headers)
}

async fn delete_backend(State(st): State<AppState>, caller: Caller, Path(_backend): Path<String>, headers: HeaderMap) -> Response {
    handle_delete(&st, &caller, &headers)
}

fn session_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(mcp::header::SESSION_ID).and_then(|v| v.to_str().ok())
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/event-stream") || v.contains("*/*"))
}

/// Validates `MCP-Protocol-Version` when present.
fn check_version_header(headers: &HeaderMap) -> Result<(), Response> {
    match headers.get(mcp::header::PROTOCOL_VERSION).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(v)) if mcp::is_supported(v) => Ok(()),
        Some(v) => Err(rpc_error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("Unsupported MCP-Protocol-Version {:?}; supported: {}", v.unwrap_or("<not text>"), mcp::SUPPORTED_VERSIONS.join(", ")),
        )),
    }
}

/// Finds the caller's session for this endpoint.
fn find_session(st: &AppState, caller: &Caller, scope: &Scope, headers: &HeaderMap) -> Result<Arc<Session>, Response> {
    let Some(id) = session_header(headers) else {
        return Err(rpc_error(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"));
    };
    match st.hub.sessions.get(id, &caller.owner()) {
        Some(s) if &s.scope == scope => Ok(s),
        _ => Err(rpc_error(
            StatusCode::NOT_FOUND,
            code::SESSION_NOT_FOUND,
            "Session not found: it ended or never existed; initialize a new one",
        )),
    }
}

async fn handle_post(st: AppState, caller: Caller, scope: Scope, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match read_body(body, st.config.server.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return rpc_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, code::INVALID_REQUEST, "Content-Type must be application/json");
    }
    let parsed = match Body::parse(&body) {
        Ok(p) => p,
        Err(e) => {
            let body = Message::Response(gatehouse_proto::Response::err(None, e)).to_json();
            return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
        }
    };
    // The era is chosen per request: a session-less request naming the
    // 2026-07-28 revision belongs to the stateless front door.
    if super::stateless::is_stateless(&headers, &parsed) {
        return super::stateless::handle(st, caller, scope, headers, parsed).await;
    }
    if let Err(r) = check_version_header(&headers) {
        return r;
    }

    // A new session starts with a lone `initialize` request.
    if let Body::Single(Message::Request(req)) = &parsed
        && req.method == method::INITIALIZE
    {
        let Body::Single(Message::Request(req)) = parsed else { unreachable!("matched above") };
        return initialize(&st, &caller, scope, req).await;
    }

    let session = match find_session(&st, &caller, &scope, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (items, batch) = match parsed {
        Body::Single(m) => (vec![Ok(m)], false),
        Body::Batch(items) => {
            if session.protocol_version != mcp::V2025_03_26 {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    code::INVALID_REQUEST,
                    format!("JSON-RPC batches are not part of protocol version {}", session.protocol_version),
                );
            }
            (items, true)
        }
    };

    let hub = st.hub.clone();
    let mut requests: Vec<Request> = Vec::new();
    let mut immediate: Vec<Message> = Vec::new();
    for item in items {
        match item {
            Ok(Message::Request(r)) if r.method == method::INITIALIZE => immediate.push(Message::Response(gatehouse_proto::Response::err(
                Some(r.id),
                ErrorObject::invalid_request("the session is already initialized"),
            ))),
            Ok(Message::Request(r)) => requests.push(r),
            Ok(Message::Notification(n)) => hub.handle_notification(&session, n).await,
            Ok(Message::Response(r)) => hub.handle_response(&session, r),
            Err((id, e)) => immediate.push(Message::Response(gatehouse_proto::Response::err(id, e))),
        }
    }
    if requests.is_empty() && immediate.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    if requests.is_empty() {
        return json_response(encode_replies(&immediate, batch), None);
    }
    respond(hub, session, caller.principal, requests, immediate, batch, accepts_sse(&headers)).await
}

fn encode_replies(replies: &[Message], batch: bool) -> String {
    if batch { serde_json::to_string(replies).unwrap_or_default() } else { replies.first().map(Message::to_json).unwrap_or_default() }
}

/// Runs the requests and answers with JSON, or with an SSE stream as soon as
/// there is something to send before the responses, or (a single request)
/// when its answer takes longer than `sse_after`.
async fn respond(
    hub: Arc<Hub>,
    session: Arc<Session>,
    principal: Arc<Principal>,
    requests: Vec<Request>,
    mut replies: Vec<Message>,
    batch: bool,
    sse_ok: bool,
) -> Response {
    let expected = replies.len() + requests.len();
    let settings = hub.settings().clone();
    let (tx, mut rx) = mpsc::channel::<Message>(REQUEST_CHANNEL);
    let worker_session = session.clone();
    tokio::spawn(async move {
        let session = worker_session;
        let work = requests.into_iter().map(|r| {
            let (hub, session, principal, tx) = (hub.clone(), session.clone(), principal.clone(), tx.clone());
            async move {
                if let Some(resp) = hub.answer(&session, &principal, r, &tx).await {
                    let _ = tx.send(Message::Response(resp)).await;
                }
            }
        });
        futures::future::join_all(work).await;
    });
    let resumable = sse_ok && !batch;
    let slow = async {
        match settings.sse_after {
            Some(d) if resumable => tokio::time::sleep(d).await,
            _ => std::future::pending().await,
        }
    };
    tokio::pin!(slow);
    loop {
        let msg = tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            () = &mut slow => return resumable_stream(&session, Vec::new(), rx, &settings),
        };
        match msg {
            Message::Response(_) => {
                replies.push(msg);
                if replies.len() == expected {
                    return json_response(encode_replies(&replies, batch), None);
                }
            }
            other if resumable => return resumable_stream(&session, vec![other], rx, &settings),
            other if sse_ok => {
                let done = replies.len();
                let head = futures::stream::iter(replies.into_iter().chain(std::iter::once(other)));
                let rest = futures::stream::unfold((rx, done), move |(mut rx, done)| async move {
                    if done >= expected {
                        return None;
                    }
                    let m = rx.recv().await?;
                    let done = done + usize::from(matches!(m, Message::Response(_)));
                    Some((m, (rx, done)))
                });
                return sse(head.chain(rest));
            }
            // The client cannot take a stream: intermediate messages have nowhere to go.
            _ => {}
        }
    }
    // Every request ended; the client cancelled the ones without an answer.
    if replies.is_empty() { StatusCode::ACCEPTED.into_response() } else { json_response(encode_replies(&replies, batch), None) }
}

/// Answers one request with a resumable SSE stream: `head` first, then what
/// `rx` brings until the response. The messages go through the session's
/// stream log, so the client can resume with `Last-Event-ID` if the
/// connection drops, or when the hub closes it after `sse_close_after`.
fn resumable_stream(
    session: &Arc<Session>,
    head: Vec<Message>,
    mut rx: mpsc::Receiver<Message>,
    settings: &super::HubSettings,
) -> Response {
    let stream = session.new_request_stream();
    let primed = session.resumable();
    let frames = match stream.attach(None, primed.then_some(RETRY_HINT)) {
        Ok(f) => f,
        Err(e) => return rpc_error(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL_ERROR, format!("Cannot open a stream: {e}")),
    };
    for m in &head {
        stream.send(m);
    }
    let close_after = settings.sse_close_after.filter(|_| primed);
    let pump_stream = stream.clone();
    tokio::spawn(async move { pump(&pump_stream, &mut rx, close_after).await });
    event_stream_response(frames, session.closed.clone())
}

/// Copies a request's messages into its stream until the response.
async fn pump(stream: &EventStream, rx: &mut mpsc::Receiver<Message>, close_after: Option<Duration>) {
    let close = async {
        match close_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(close);
    let mut closed = false;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = &mut close, if !closed => {
                // SEP-1699 polling: the client comes back with GET and Last-Event-ID.
                stream.close_connection();
                closed = true;
                continue;
            }
        };
        let Some(msg) = msg else {
            stream.finish();
            return;
        };
        stream.send(&msg);
        if stream.is_finished() {
            return;
        }
    }
}

fn event_stream_response(frames: mpsc::Receiver<Bytes>, closed: tokio_util::sync::CancellationToken) -> Response {
    let mut resp = sse_body(frames, closed).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn sse(messages: impl Stream<Item = Message> + Send + 'static) -> Response {
    let events = messages.map(|m| Ok::<_, Infallible>(Event::default().data(m.to_json())));
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

async fn initialize(st: &AppState, caller: &Caller, scope: Scope, req: Request) -> Response {
    let reply = |payload, session: Option<&str>| {
        json_response(Message::Response(gatehouse_proto::Response { id: Some(req.id.clone()), payload }).to_json(), session)
    };
    match st.hub.start_session(&caller.principal, scope, &req).await {
        Ok((session, result)) => reply(Ok(result), Some(&session.id)),
        Err(InitError::Rpc(e)) => reply(Err(e), None),
        Err(InitError::Full(e)) => rpc_error(StatusCode::SERVICE_UNAVAILABLE, code::INTERNAL_ERROR, format!("Cannot start a session: {e}")),
    }
}

fn handle_get(st: &AppState, caller: &Caller, scope: &Scope, headers: &HeaderMap) -> Response {
    if !accepts_sse(headers) {
        return rpc_error(StatusCode::NOT_ACCEPTABLE, code::INVALID_REQUEST, "GET needs Accept: text/event-stream");
    }
    if let Err(r) = check_version_header(headers) {
        return r;
    }
    let session = match find_session(st, caller, scope, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let resume = headers.get(mcp::header::LAST_EVENT_ID).map(|v| v.to_str().ok().and_then(parse_event_id));
    let attached = match resume {
        None => session.standalone().attach(None, session.resumable().then_some(RETRY_HINT)),
        Some(None) => return rpc_error(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, "Bad Request: malformed Last-Event-ID"),
        Some(Some((number, seq))) => match session.stream(number) {
            Some(stream) => stream.attach(Some(seq), None),
            None => {
                return rpc_error(
                    StatusCode::NOT_FOUND,
                    code::INVALID_REQUEST,
                    "Last-Event-ID names no stream this session can resume: it was read to its end, expired, or never existed",
                );
            }
        },
    };
    match attached {
        Ok(frames) => event_stream_response(frames, session.closed.clone()),
        Err(e @ AttachError::Expired(_)) => {
            rpc_error(StatusCode::NOT_FOUND, code::INVALID_REQUEST, format!("Cannot resume the stream: {e}"))
        }
        Err(AttachError::Closed) => rpc_error(StatusCode::NOT_FOUND, code::SESSION_NOT_FOUND, "Session not found"),
    }
}

fn handle_delete(st: &AppState, caller: &Caller, headers: &HeaderMap) -> Response {
    let Some(id) = session_header(headers) else {
        return rpc_error(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required");
    };
    if st.hub.sessions.remove(id, &caller.owner()) {
        StatusCode::OK.into_response()
    } else {
        rpc_error(StatusCode::NOT_FOUND, code::SESSION_NOT_FOUND, "Session not found")
    }
}
