//! The 2026-07-28 stateless front door: `POST /mcp` and `/mcp/{backend}`
//! without a session.
//!
//! The era is chosen per request ([`is_stateless`]): no `Mcp-Session-Id`, and
//! a stateless `MCP-Protocol-Version` header or a protocol version in
//! `params._meta`. Such a request must carry its version and the client's
//! capabilities in `_meta`, and its `MCP-Protocol-Version`, `Mcp-Method` and
//! `Mcp-Name` headers must repeat what the body says (400 with `-32020`
//! otherwise). `server/discover` replaces the handshake; the removed methods
//! (`initialize`, `ping`, `logging/setLevel`, `resources/subscribe`,
//! `resources/unsubscribe`) and unknown ones get 404 with `-32601`.
//!
//! Everything else runs through the same router as the session eras, on a
//! throw-away [`Session`] built from the request's `_meta`, so catalog,
//! routing, governance and audit are the session eras' own (see
//! [`super::era`] for the translation). A backend's server→client requests
//! during a call (sampling, elicitation, roots) become an
//! `InputRequiredResult`: the call is parked under an unguessable
//! `requestState`, and the client's retry with `inputResponses` answers the
//! backend's pending requests and resumes it. Closing the response stream
//! (or never retrying) cancels the backend call (`notifications/cancelled`).
//! `subscriptions/listen` opens a registered session whose stream carries
//! only the change notifications the client opted in to.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use gatehouse_proto::jsonrpc::{Body, to_raw};
use gatehouse_proto::mcp::{self, code, method};
use gatehouse_proto::{ErrorObject, Message, Notification, RawObject, Request, RequestId};
use rand::RngCore;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::era::{self, RequestMeta, RoundTrip};
use super::guard::Caller;
use super::hub::Hub;
use super::session::{Scope, Session};
use crate::server::AppState;

/// Capacity of a call's message channel (progress, logging, server→client requests).
const CALL_CHANNEL: usize = 64;
/// Capacity of a listen stream.
const LISTEN_STREAM: usize = 256;
/// How long the hub waits, after a backend's first server→client request of
/// a round, for further ones it sends at once (so one `InputRequiredResult`
/// asks for all of them).
const INPUT_GATHER: Duration = Duration::from_millis(50);

/// Methods the 2026-07-28 revision removed.
const REMOVED: &[&str] =
    &[method::INITIALIZE, method::PING, method::LOGGING_SET_LEVEL, method::RESOURCES_SUBSCRIBE, method::RESOURCES_UNSUBSCRIBE];

/// Methods the router serves for the aggregate endpoint.
const ROUTED: &[&str] = &[
    method::TOOLS_LIST,
    method::TOOLS_CALL,
    method::PROMPTS_LIST,
    method::PROMPTS_GET,
    method::RESOURCES_LIST,
    method::RESOURCES_TEMPLATES_LIST,
    method::RESOURCES_READ,
    method::COMPLETION_COMPLETE,
];

/// Methods whose answer may be an `InputRequiredResult` (SEP-2322).
fn may_ask(m: &str) -> bool {
    matches!(m, method::TOOLS_CALL | method::PROMPTS_GET | method::RESOURCES_READ)
}

/// True when a POST speaks the stateless era: no session header, and a
/// stateless `MCP-Protocol-Version` or a protocol version in `params._meta`.
pub fn is_stateless(headers: &HeaderMap, body: &Body) -> bool {
    if headers.contains_key(mcp::header::SESSION_ID) {
        return false;
    }
    let version = headers.get(mcp::header::PROTOCOL_VERSION).and_then(|v| v.to_str().ok());
    if version.is_some_and(mcp::is_stateless_version) {
        return true;
    }
    match body {
        Body::Single(Message::Request(r)) => era::meta_version(r.params.as_deref()).is_some(),
        _ => false,
    }
}

/// HTTP status of a JSON-RPC error in this era.
fn status_for(code: i64) -> StatusCode {
    match code {
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        code::HEADER_MISMATCH | code::MISSING_CLIENT_CAPABILITY | code::UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

fn json(status: StatusCode, msg: &Message) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], msg.to_json()).into_response()
}

fn fail(status: StatusCode, id: &RequestId, e: ErrorObject) -> Response {
    json(status, &Message::Response(gatehouse_proto::Response::err(Some(id.clone()), e)))
}

/// The answer as a response: status from the error code, when it is one.
fn answer(resp: gatehouse_proto::Response) -> Response {
    let status = resp.payload.as_ref().err().map_or(StatusCode::OK, |e| status_for(e.code));
    json(status, &Message::Response(resp))
}

fn sse(messages: impl Stream<Item = Message> + Send + 'static) -> Response {
    let events = messages.map(|m| Ok::<_, Infallible>(Event::default().data(m.to_json())));
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/event-stream") || v.contains("*/*"))
}

/// The tool or prompt name, or the resource URI, a request names.
fn named(req: &Request) -> Option<String> {
    let key = match req.method.as_str() {
        method::TOOLS_CALL | method::PROMPTS_GET => "name",
        method::RESOURCES_READ => "uri",
        _ => return None,
    };
    RawObject::parse(req.params.as_deref()).ok()?.get_str(key)
}

/// SEP-2243: `Mcp-Method` repeats the body's method, `Mcp-Name` the name it
/// names (values compared after trimming optional whitespace).
fn check_routing_headers(headers: &HeaderMap, req: &Request) -> Result<(), ErrorObject> {
    let value = |name: &str| headers.get(name).map(|v| v.to_str().map(str::trim).map_err(|_| ()));
    let mismatch = |h: &str| ErrorObject::new(code::HEADER_MISMATCH, format!("The {h} header does not match the request body"));
    if value(mcp::header::METHOD) != Some(Ok(req.method.as_str())) {
        return Err(mismatch("Mcp-Method"));
    }
    if let Some(name) = named(req)
        && value(mcp::header::NAME) != Some(Ok(name.as_str()))
    {
        return Err(mismatch("Mcp-Name"));
    }
    Ok(())
}

/// Calls parked on an `InputRequiredResult`, by `requestState`.
#[derive(Default)]
pub struct Parked {
    calls: DashMap<String, Call>,
}

impl Parked {
    /// How many calls wait for a client's input now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// True when the call of throw-away session `session_id` is parked.
    pub fn holds(&self, session_id: &str) -> bool {
        self.calls.iter().any(|c| c.session.id == session_id)
    }

    /// Drops calls whose client never came back (which cancels them).
    fn sweep(&self) {
        let now = Instant::now();
        self.calls.retain(|_, c| c.expires > now);
    }

    /// Parks `call` under a new unguessable state for `ttl` from now (the
    /// client's time to answer); `None` (and the call cancelled) when `max`
    /// calls wait already.
    fn park(&self, mut call: Call, max: usize, ttl: Duration) -> Option<String> {
        self.sweep();
        call.expires = Instant::now() + ttl;
        if self.calls.len() >= max {
            return None;
        }
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        let state = hex::encode(b);
        self.calls.insert(state.clone(), call);
        Some(state)
    }

    /// The call parked under `state`, when it belongs to this caller and
    /// request; it stays parked otherwise.
    fn resume(&self, state: &str, owner: &str, req: &Request) -> Option<Call> {
        self.sweep();
        let target = named(req);
        let (_, call) = self
            .calls
            .remove_if(state, |_, c| c.owner == owner && c.method == req.method && c.target == target && c.expires > Instant::now())?;
        Some(call)
    }
}

/// One router call of a stateless client, alive across its round trips.
struct Call {
    owner: String,
    method: String,
    target: Option<String>,
    /// The throw-away session the router runs the call on.
    session: Arc<Session>,
    /// The router's answer.
    done: oneshot::Receiver<gatehouse_proto::Response>,
    /// Messages on the call's path: progress, logging, server→client requests.
    events: mpsc::Receiver<Message>,
    /// Server→client requests waiting for the client, by input key.
    asked: BTreeMap<String, Request>,
    next_key: u64,
    wants_logs: bool,
    expires: Instant,
}

impl Drop for Call {
    fn drop(&mut self) {
        // Ends the backend call if it is still running (the upstream sends
        // notifications/cancelled) and releases its waiting requests.
        self.session.closed.cancel();
        for r in self.asked.values() {
            self.session.forget_reply(&r.id);
        }
    }
}

/// Answers one stateless POST.
pub async fn handle(st: AppState, caller: Caller, scope: Scope, headers: HeaderMap, body: Body) -> Response {
    let req = match body {
        Body::Single(Message::Request(r)) => r,
        // Notifications and responses have nobody to go to without a session.
        Body::Single(_) => return StatusCode::ACCEPTED.into_response(),
        Body::Batch(_) => {
            let e = ErrorObject::invalid_request("JSON-RPC batches are not part of protocol revision 2026-07-28");
            return json(StatusCode::BAD_REQUEST, &Message::Response(gatehouse_proto::Response::err(None, e)));
        }
    };
    let Some(header_version) = headers.get(mcp::header::PROTOCOL_VERSION).map(|v| v.to_str().unwrap_or("")) else {
        return fail(
            StatusCode::BAD_REQUEST,
            &req.id,
            ErrorObject::new(code::HEADER_MISMATCH, "The MCP-Protocol-Version header is required"),
        );
    };
    let meta = match era::request_meta(req.params.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &req.id, e),
    };
    if meta.version != header_version {
        let e = ErrorObject::new(code::HEADER_MISMATCH, "The MCP-Protocol-Version header does not match _meta protocolVersion");
        return fail(StatusCode::BAD_REQUEST, &req.id, e);
    }
    if !mcp::is_stateless_version(&meta.version) {
        let e = ErrorObject::new(code::UNSUPPORTED_VERSION, format!("Unsupported protocol version {:?}", meta.version))
            .with_data(json!({ "supported": mcp::STATELESS_VERSIONS, "requested": meta.version }));
        return fail(StatusCode::BAD_REQUEST, &req.id, e);
    }
    if let Err(e) = check_routing_headers(&headers, &req) {
        return fail(StatusCode::BAD_REQUEST, &req.id, e);
    }
    let m = req.method.as_str();
    if REMOVED.contains(&m)
        || (scope == Scope::Aggregate && !ROUTED.contains(&m) && m != method::SERVER_DISCOVER && m != method::SUBSCRIPTIONS_LISTEN)
    {
        return fail(StatusCode::NOT_FOUND, &req.id, ErrorObject::method_not_found(m));
    }
    if let Scope::Backend(name) = &scope
        && !st.hub.gate.backend_visible(super::gate::Asker { principal: &caller.principal, client_app: None }, name)
    {
        let e = ErrorObject::new(code::INVALID_PARAMS, format!("Unknown backend: {name}"));
        return fail(StatusCode::OK, &req.id, e);
    }
    match m {
        method::SERVER_DISCOVER => {
            let resp = match discover(&st.hub, &scope).await {
                Ok(r) => gatehouse_proto::Response::ok(req.id, r),
                Err(e) => gatehouse_proto::Response::err(Some(req.id), e),
            };
            answer(resp)
        }
        method::SUBSCRIPTIONS_LISTEN => listen(&st, &caller, scope, req, meta).await,
        _ => call(&st, &caller, scope, req, meta, accepts_sse(&headers)).await,
    }
}

/// The `server/discover` result of an endpoint.
async fn discover(hub: &Hub, scope: &Scope) -> Result<Box<RawValue>, ErrorObject> {
    let init = hub.initialize_result(scope, mcp::V2026_07_28).await?;
    era::discover_result(&init, mcp::STATELESS_VERSIONS)
}

/// Runs a request through the router, or resumes the call its
/// `requestState` names, and answers with JSON or an SSE stream.
async fn call(st: &AppState, caller: &Caller, scope: Scope, req: Request, meta: RequestMeta, sse_ok: bool) -> Response {
    let id = req.id.clone();
    let (session_req, round) = match era::to_session_request(req) {
        Ok(x) => x,
        Err(e) => return fail(StatusCode::OK, &id, e),
    };
    let mut call = match &round.state {
        Some(state) => match st.hub.stateless.resume(state, &caller.owner(), &session_req) {
            Some(c) => c,
            None => {
                let e =
                    ErrorObject::invalid_params("Unknown, expired or altered requestState").with_data(json!({ "reason": "request_state" }));
                return fail(StatusCode::OK, &id, e);
            }
        },
        None => start(&st.hub, caller, scope, session_req, &meta),
    };
    call.expires = Instant::now() + st.hub.settings().request_timeout;
    if round.state.is_some() {
        st.hub.resume_seats(&call.session.id).await;
    }
    let RoundTrip { responses, .. } = round;
    for (key, value) in responses {
        if let Some(r) = call.asked.remove(&key) {
            call.session.deliver_reply(&r.id, Ok(to_raw(&value)));
        }
        // Keys the hub did not ask for are ignored, as SEP-2322 recommends.
    }

    let (out_tx, mut out_rx) = mpsc::channel::<Message>(CALL_CHANNEL);
    let hub = st.hub.clone();
    tokio::spawn(drive(hub, call, id.clone(), out_tx, sse_ok));
    // Plain JSON when the answer comes first; a stream as soon as a
    // notification has to go out before it.
    let Some(first) = out_rx.recv().await else {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, &id, ErrorObject::internal("The request ended without a response"));
    };
    match first {
        Message::Response(resp) => answer(resp),
        other => sse(futures::stream::once(async move { other }).chain(tokio_stream::wrappers::ReceiverStream::new(out_rx))),
    }
}

/// Starts the router on a new call.
fn start(hub: &Arc<Hub>, caller: &Caller, scope: Scope, req: Request, meta: &RequestMeta) -> Call {
    let session = Session::detached(
        caller.principal.clone(),
        scope,
        mcp::V2026_07_28.to_owned(),
        meta.client_info.clone(),
        meta.capabilities.clone(),
    );
    if let Some(level) = &meta.log_level {
        session.set_log_level(level.clone());
    }
    let (done_tx, done) = oneshot::channel();
    let (sink, events) = mpsc::channel(CALL_CHANNEL);
    let (h, s, p) = (hub.clone(), session.clone(), caller.principal.clone());
    let (m, target) = (req.method.clone(), named(&req));
    tokio::spawn(async move {
        let resp = h.handle_request(&s, &p, req, &sink).await;
        let _ = done_tx.send(resp);
    });
    Call {
        owner: caller.owner(),
        method: m,
        target,
        session,
        done,
        events,
        asked: BTreeMap::new(),
        next_key: 1,
        wants_logs: meta.log_level.is_some(),
        expires: Instant::now() + hub.settings().request_timeout,
    }
}

/// Follows a call until it answers, asks the client for input, or the client
/// goes away (which cancels it). Every message for the client goes to `out`;
/// notifications only when the client takes an SSE stream (`sse_ok`).
async fn drive(hub: Arc<Hub>, mut call: Call, id: RequestId, out: mpsc::Sender<Message>, sse_ok: bool) {
    if !call.asked.is_empty() {
        // The retry left some of the backend's requests unanswered: ask again.
        return ask(&hub, call, id, &out).await;
    }
    let mut gather: Option<tokio::time::Instant> = None;
    let mut events_open = true;
    loop {
        let deadline = gather.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            // Messages first: the router flushes a backend's progress and
            // logging before it answers, and the client sees them in that order.
            biased;
            msg = call.events.recv(), if events_open => match msg {
                Some(Message::Request(r)) => {
                    if !may_ask(&call.method) {
                        // SEP-2322: only tools/call, prompts/get and resources/read may need input.
                        let e = ErrorObject::method_not_found(&r.method).with_data(json!({ "reason": "no input round trips for this request" }));
                        call.session.deliver_reply(&r.id, Err(e));
                        continue;
                    }
                    let key = era::input_key(&r.method, call.next_key);
                    call.next_key += 1;
                    call.asked.insert(key, r);
                    gather.get_or_insert_with(|| tokio::time::Instant::now() + INPUT_GATHER);
                }
                Some(Message::Notification(n)) => {
                    // A client that cannot take a stream gets only the answer.
                    if !sse_ok || (n.method == method::MESSAGE && !call.wants_logs) {
                        continue;
                    }
                    if out.send(Message::Notification(n)).await.is_err() {
                        return;
                    }
                }
                Some(Message::Response(_)) => {}
                None => events_open = false,
            },
            resp = &mut call.done => {
                let resp = match resp {
                    Ok(r) => r,
                    Err(_) => gatehouse_proto::Response::err(Some(id.clone()), ErrorObject::internal("The call ended without an answer")),
                };
                let payload = match resp.payload {
                    Ok(raw) => Ok(era::complete(&call.method, raw)),
                    Err(e) => Err(era::error(e)),
                };
                let _ = out.send(Message::Response(gatehouse_proto::Response { id: Some(id), payload })).await;
                return;
            }
            () = tokio::time::sleep_until(deadline), if gather.is_some() => {
                return ask(&hub, call, id, &out).await;
            }
            () = out.closed() => {
                tracing::debug!(method = %call.method, "stateless client closed its stream; cancelling the call");
                return;
            }
        }
    }
}

/// Parks the call and answers with an `InputRequiredResult` for its open requests.
async fn ask(hub: &Hub, call: Call, id: RequestId, out: &mpsc::Sender<Message>) {
    let requests = call.asked.clone();
    let session_id = call.session.id.clone();
    // Each parked call holds a backend call open: as many as sessions at most.
    let Some(state) = hub.stateless.park(call, hub.settings().max_sessions, hub.settings().request_timeout) else {
        let e = ErrorObject::new(code::INTERNAL_ERROR, "Too many requests are waiting for their client's input; try again later")
            .with_data(json!({ "reason": "too_many_waiting" }));
        let _ = out.send(Message::Response(gatehouse_proto::Response::err(Some(id), e))).await;
        return;
    };
    // The backend waits for this client now: others may use the connection.
    hub.suspend_seats(&session_id);
    let result = era::input_required(&requests, &state);
    if out.send(Message::Response(gatehouse_proto::Response::ok(id, result))).await.is_err() {
        // Nobody will retry with this state.
        hub.stateless.calls.remove(&state);
    }
}

/// `subscriptions/listen`: a registered session whose stream carries the
/// notifications the client opted in to, tagged with the subscription id,
/// after an acknowledgement; it ends when the client closes it.
async fn listen(st: &AppState, caller: &Caller, scope: Scope, req: Request, meta: RequestMeta) -> Response {
    let params = RawObject::parse(req.params.as_deref()).unwrap_or_default();
    let Some(requested) = params.get_as::<Map<String, Value>>("notifications") else {
        return fail(StatusCode::OK, &req.id, ErrorObject::invalid_params("\"notifications\" must be an object"));
    };
    let capabilities = match discover(&st.hub, &scope).await {
        Ok(d) => serde_json::from_str::<Value>(d.get()).map(|v| v["capabilities"].clone()).unwrap_or(Value::Null),
        Err(e) => return fail(StatusCode::OK, &req.id, e),
    };
    let mut honoured = era::honoured_filter(&requested, &capabilities);
    let session =
        match st.hub.sessions.create(caller.principal.clone(), scope, mcp::V2026_07_28.to_owned(), meta.client_info, meta.capabilities) {
            Ok(s) => s,
            Err(e) => return fail(StatusCode::SERVICE_UNAVAILABLE, &req.id, ErrorObject::internal(e)),
        };
    let (tx, rx) = mpsc::channel(LISTEN_STREAM);
    session.attach_stream(tx);
    // Resource subscriptions go through the router like resources/subscribe
    // did: routed, visibility-checked, forwarded to the backend.
    if let Some(Value::Array(uris)) = honoured.get("resourceSubscriptions").cloned() {
        let (sink, _drop) = mpsc::channel(1);
        let mut kept = Vec::new();
        for uri in uris {
            let sub = Request::new(0, method::RESOURCES_SUBSCRIBE, Some(to_raw(&json!({ "uri": uri }))));
            if st.hub.handle_request(&session, &caller.principal, sub, &sink).await.payload.is_ok() {
                kept.push(uri);
            }
        }
        honoured.insert("resourceSubscriptions".into(), Value::Array(kept));
    }

    let sub_id = to_raw(&req.id);
    let ack = Notification::new(
        method::SUBSCRIPTIONS_ACKNOWLEDGED,
        Some(era::tag_subscription(Some(&to_raw(&json!({ "notifications": honoured }))), &sub_id)),
    );
    let guard = ListenGuard { hub: st.hub.clone(), session: session.clone() };
    let keepalive = st.hub.settings().session_idle_timeout / 4;
    spawn_toucher(session.clone(), keepalive);
    let closed = session.closed.clone();
    let filter = honoured;
    let tag = sub_id.clone();
    let notifications = tokio_stream::wrappers::ReceiverStream::new(rx)
        .filter_map(move |m| {
            let out = match m {
                Message::Notification(n) if era::filter_admits(&filter, &n.method) => {
                    Some(Message::Notification(Notification::new(n.method, Some(era::tag_subscription(n.params.as_deref(), &tag)))))
                }
                _ => None,
            };
            futures::future::ready(out)
        })
        .take_until(async move { closed.cancelled().await });
    // A graceful end (hub shutdown) closes with an empty result naming the subscription.
    let id = req.id;
    let end = futures::stream::once(async move {
        drop(guard);
        let result = to_raw(&json!({ "resultType": "complete", "_meta": { mcp::meta::SUBSCRIPTION_ID: sub_id } }));
        Message::Response(gatehouse_proto::Response::ok(id, result))
    });
    sse(futures::stream::once(async move { Message::Notification(ack) }).chain(notifications).chain(end))
}

/// Ends a listen session when its stream goes away.
struct ListenGuard {
    hub: Arc<Hub>,
    session: Arc<Session>,
}

impl Drop for ListenGuard {
    fn drop(&mut self) {
        self.hub.sessions.remove(&self.session.id, &self.session.owner);
    }
}

/// Keeps a listen session from being reaped as idle while its stream is open.
fn spawn_toucher(session: Arc<Session>, every: Duration) {
    let every = every.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = session.closed.cancelled() => break,
                _ = tick.tick() => session.touch(),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn body(v: Value) -> Body {
        Body::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_era_is_chosen_per_request() {
        let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": { "_meta": { mcp::meta::PROTOCOL_VERSION: "2026-07-28" } } });
        let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25" } });
        assert!(is_stateless(&headers(&[("mcp-protocol-version", "2026-07-28")]), &body(init.clone())));
        assert!(is_stateless(&headers(&[]), &body(call.clone())));
        assert!(!is_stateless(&headers(&[]), &body(init)));
        assert!(!is_stateless(&headers(&[("mcp-session-id", "abc")]), &body(call)));
        assert!(!is_stateless(
            &headers(&[("mcp-protocol-version", "2025-11-25")]),
            &body(json!([{ "jsonrpc": "2.0", "method": "notifications/initialized" }]))
        ));
    }

    #[test]
    fn routing_headers_must_repeat_the_body() {
        let req = Request::new(1, "tools/call", Some(to_raw(&json!({ "name": "a__b" }))));
        assert!(check_routing_headers(&headers(&[("mcp-method", "tools/call"), ("mcp-name", " a__b ")]), &req).is_ok());
        for h in [
            vec![],
            vec![("mcp-method", "tools/list"), ("mcp-name", "a__b")],
            vec![("mcp-method", "tools/call"), ("mcp-name", "x")],
            vec![("mcp-method", "tools/call")],
        ] {
            assert_eq!(check_routing_headers(&headers(&h), &req).unwrap_err().code, code::HEADER_MISMATCH, "{h:?}");
        }
        let list = Request::new(1, "tools/list", None);
        assert!(check_routing_headers(&headers(&[("mcp-method", "tools/list")]), &list).is_ok());
        assert_eq!(status_for(code::HEADER_MISMATCH), StatusCode::BAD_REQUEST);
        assert_eq!(status_for(code::METHOD_NOT_FOUND), StatusCode::NOT_FOUND);
        assert_eq!(status_for(code::POLICY_DENIED), StatusCode::OK);
    }
}
