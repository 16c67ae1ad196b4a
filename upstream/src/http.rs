//! Streamable HTTP transport (2025-03-26 and later).
//!
//! Every message is a POST to the endpoint. A request's POST answers with
//! one JSON message or an SSE stream that carries the answer plus whatever
//! the server sends meanwhile (routed with the call's context). After
//! `initialize` every message carries `Mcp-Session-Id` (when the server gave
//! one) and `MCP-Protocol-Version`. A 404 on a POST that carried a session
//! means the session expired: the link re-initializes once, transparently,
//! and retries. The optional GET stream carries server-initiated messages.
//!
//! Health: a single failed POST only fails its own call. The connection is
//! declared down (the supervisor then reconnects with backoff) after
//! [`FAILURE_THRESHOLD`] consecutive transport failures (connection errors
//! and 502/503/504 answers, on POSTs or on the GET stream) with no success in
//! between, or when re-initializing an expired session fails.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use gatehouse_proto::jsonrpc::{Body, to_raw};
use gatehouse_proto::mcp::{header, method};
use gatehouse_proto::{Message, Notification, Request, Response};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::backoff::Backoff;
use crate::conn::{Conn, Outgoing, excerpt};
use crate::stateless;
use crate::supervisor::{Shared, initialize_params};
use crate::{CallError, InitializeInfo};

/// Consecutive transport failures that take the connection down.
pub const FAILURE_THRESHOLD: u32 = 3;
/// Attempts at resuming a POST's SSE stream that ended before the answer.
const MAX_RESUMES: u32 = 5;

pub(crate) struct HttpLink {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    session: parking_lot::Mutex<Session>,
    /// Carries the session generation; the GET stream reopens when it moves.
    session_changed: watch::Sender<u64>,
    reinit: tokio::sync::Mutex<()>,
    failures: AtomicU32,
    stop: CancellationToken,
    tasks: TaskTracker,
    connect_timeout: Duration,
    /// Bounds one-way POSTs (notifications, answers), whose 202 should be quick.
    oneway_timeout: Duration,
}

#[derive(Default)]
struct Session {
    id: Option<String>,
    protocol_version: Option<String>,
    generation: u64,
}

enum Failure {
    /// 404 on a POST that carried a session.
    SessionExpired {
        generation: u64,
    },
    Call(CallError),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Json,
    Sse,
    Other,
}

fn kind(resp: &reqwest::Response) -> Kind {
    let ct = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Kind::Json,
        "text/event-stream" => Kind::Sse,
        _ => Kind::Other,
    }
}

pub(crate) fn build_client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| format!("building the HTTP client failed: {}", describe(&e)))
}

/// The configured headers as a header map.
pub(crate) fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name `{k}`"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("invalid value for header `{k}`"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// An error with its causes, e.g. "error sending request for url (...): client
/// error (Connect): tcp connect error: Connection refused (os error 111)".
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// The error for a non-2xx answer: the JSON-RPC error when the body is one,
/// else `Unavailable("HTTP <status>: <excerpt>")`.
pub(crate) async fn error_from_response(resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    if let Ok(Body::Single(Message::Response(Response { payload: Err(e), .. }))) = Body::parse(&body) {
        return CallError::Rpc(e);
    }
    let text = excerpt(&String::from_utf8_lossy(&body), 200);
    if text.is_empty() {
        CallError::Unavailable(format!("HTTP {status}"))
    } else {
        CallError::Unavailable(format!("HTTP {status}: {text}"))
    }
}

fn is_gateway_failure(status: StatusCode) -> bool {
    matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
}

/// Reads SSE events, routing each JSON-RPC message with `context`. Stops at
/// the end of the stream, or once call `until_answered` got its answer.
pub(crate) async fn read_events<S>(
    conn: &Arc<Conn>,
    events: S,
    context: Option<u64>,
    until_answered: Option<i64>,
    last_id: &mut Option<String>,
    retry: &mut Option<Duration>,
) -> Result<(), String>
where
    S: Stream<Item = Result<Event, EventStreamError<reqwest::Error>>>,
{
    let mut events = pin!(events);
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| match e {
            EventStreamError::Transport(e) => describe(&e),
            e => e.to_string(),
        })?;
        if !event.id.is_empty() {
            *last_id = Some(event.id.clone());
        }
        if let Some(r) = event.retry {
            *retry = Some(r);
        }
        if event.event != "message" {
            tracing::debug!(backend = %conn.name(), event = %event.event, "ignoring an SSE event of another type");
            continue;
        }
        if event.data.trim().is_empty() {
            continue;
        }
        conn.route_text(&event.data, context);
        if until_answered.is_some_and(|id| !conn.has_pending(id)) {
            break;
        }
    }
    Ok(())
}

impl HttpLink {
    pub(crate) fn new(shared: &Shared, url: &str, headers: &BTreeMap<String, String>) -> Result<Arc<Self>, String> {
        let url = Url::parse(url).map_err(|e| format!("invalid URL `{url}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("unsupported URL scheme `{}`", url.scheme()));
        }
        Ok(Arc::new(Self {
            client: build_client(shared.spec.connect_timeout)?,
            url,
            headers: header_map(headers)?,
            session: parking_lot::Mutex::default(),
            session_changed: watch::channel(0).0,
            reinit: tokio::sync::Mutex::new(()),
            failures: AtomicU32::new(0),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            connect_timeout: shared.spec.connect_timeout,
            oneway_timeout: shared.spec.request_timeout,
        }))
    }

    /// The session id the server gave, if any.
    pub(crate) fn session_id(&self) -> Option<String> {
        self.session.lock().id.clone()
    }

    /// A request with the configured headers plus, unless `bare`, the session
    /// headers. Returns the session generation and whether a session id was sent.
    fn builder(&self, method: Method, bare: bool) -> (reqwest::RequestBuilder, u64, bool) {
        self.builder_with(method, bare, &[])
    }

    /// [`HttpLink::builder`] plus `extra` headers (replacing any of the same name).
    fn builder_with(&self, method: Method, bare: bool, extra: &[(HeaderName, HeaderValue)]) -> (reqwest::RequestBuilder, u64, bool) {
        let mut headers = self.headers.clone();
        let (generation, had_session) = {
            let s = self.session.lock();
            if !bare {
                if let Some(v) = s.id.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.insert(header::SESSION_ID, v);
                }
                if let Some(v) = s.protocol_version.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.insert(header::PROTOCOL_VERSION, v);
                }
            }
            (s.generation, !bare && s.id.is_some())
        };
        if method == Method::GET {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        } else if method == Method::POST {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        (self.client.request(method, self.url.clone()).headers(headers), generation, had_session)
    }

    fn transport_ok(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn transport_failed(&self, conn: &Conn, error: &str) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(backend = %conn.name(), failures = n, %error, "HTTP transport failure");
        if n >= FAILURE_THRESHOLD {
            conn.fail(format!("{n} consecutive transport failures; last: {error}"));
        }
    }

    /// Counts the outcome of an HTTP exchange toward the failure threshold.
    fn observe(&self, conn: &Conn, result: &Result<reqwest::Response, reqwest::Error>) -> Option<String> {
        match result {
            Err(e) => {
                let msg = describe(e);
                self.transport_failed(conn, &msg);
                Some(msg)
            }
            Ok(r) if is_gateway_failure(r.status()) => {
                self.transport_failed(conn, &format!("HTTP {}", r.status()));
                None
            }
            Ok(_) => {
                self.transport_ok();
                None
            }
        }
    }

    pub(crate) async fn send(self: &Arc<Self>, conn: &Arc<Conn>, msg: Outgoing) -> Result<(), CallError> {
        match msg {
            Outgoing::Request { id, method, body, headers, context, abort } => {
                let (this, conn) = (Arc::clone(self), Arc::clone(conn));
                let init = method == method::INITIALIZE;
                self.tasks.spawn(async move {
                    tokio::select! {
                        () = this.run_call(&conn, id, init, &body, &headers, context) => {}
                        () = abort.cancelled() => {}
                        () = conn.down() => {}
                        () = this.stop.cancelled() => {}
                    }
                });
                Ok(())
            }
            Outgoing::Oneway { body } => self.post_oneway(conn, &body, true).await,
        }
    }

    pub(crate) fn send_detached(self: &Arc<Self>, conn: &Arc<Conn>, body: String) {
        let (this, conn) = (Arc::clone(self), Arc::clone(conn));
        self.tasks.spawn(async move {
            tokio::select! {
                r = this.post_oneway(&conn, &body, true) => if let Err(e) = r {
                    tracing::debug!(backend = %conn.name(), error = %e, "sending a message upstream failed");
                },
                () = this.stop.cancelled() => {}
            }
        });
    }

    /// Runs one request: POST, follow the answer, re-initialize once on an
    /// expired session. The outcome reaches the caller through the pending map.
    async fn run_call(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: i64,
        init: bool,
        body: &str,
        headers: &[(HeaderName, HeaderValue)],
        context: Option<u64>,
    ) {
        let mut retried = false;
        loop {
            let failure = match self.exchange(conn, id, body, headers, init, context).await {
                Ok(()) => return,
                Err(f) => f,
            };
            let error = match failure {
                Failure::SessionExpired { generation } if !retried => {
                    retried = true;
                    match self.reinit(conn, generation).await {
                        Ok(()) => continue,
                        Err(e) => CallError::Unavailable(format!("the session expired and re-initializing failed: {e}")),
                    }
                }
                Failure::SessionExpired { .. } => {
                    CallError::Unavailable("the session expired again right after re-initializing (HTTP 404)".into())
                }
                Failure::Call(e) => e,
            };
            conn.resolve(id, Err(error));
            return;
        }
    }

    /// POSTs request `id` and routes everything the answer carries.
    async fn exchange(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: i64,
        body: &str,
        headers: &[(HeaderName, HeaderValue)],
        init: bool,
        context: Option<u64>,
    ) -> Result<(), Failure> {
        let (builder, generation, had_session) = self.builder_with(Method::POST, init, headers);
        let result = builder.body(body.to_owned()).send().await;
        if let Some(error) = self.observe(conn, &result) {
            return Err(CallError::Unavailable(error).into());
        }
        let resp = result.map_err(|e| CallError::Unavailable(describe(&e)))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && had_session {
            return Err(Failure::SessionExpired { generation });
        }
        if !status.is_success() {
            return Err(error_from_response(resp).await.into());
        }
        if init {
            let id = resp.headers().get(header::SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
            self.session.lock().id = id;
        }
        match kind(&resp) {
            Kind::Sse => self.follow_sse(conn, resp, id, context).await,
            k => {
                let bytes =
                    resp.bytes().await.map_err(|e| CallError::Unavailable(format!("reading the answer failed: {}", describe(&e))))?;
                let text = String::from_utf8_lossy(&bytes);
                let text = text.trim();
                if text.is_empty() {
                    // 202 or an empty body: the answer may come on the GET stream.
                    return Ok(());
                }
                if k == Kind::Json || text.starts_with('{') || text.starts_with('[') {
                    conn.route_text(text, context);
                }
                if conn.has_pending(id) {
                    return Err(CallError::Unavailable(format!(
                        "the HTTP answer (HTTP {status}) did not carry the response: {}",
                        excerpt(text, 200)
                    ))
                    .into());
                }
                Ok(())
            }
        }
    }

    /// Follows a POST's SSE stream until the answer; when it ends early after
    /// events with ids, resumes it with a GET carrying `Last-Event-ID`.
    async fn follow_sse(&self, conn: &Arc<Conn>, resp: reqwest::Response, id: i64, context: Option<u64>) -> Result<(), Failure> {
        let mut last_id = None;
        let mut retry = None;
        let mut resp = resp;
        let mut resumes = 0;
        loop {
            let read = read_events(conn, resp.bytes_stream().eventsource(), context, Some(id), &mut last_id, &mut retry).await;
            if !conn.has_pending(id) {
                return Ok(());
            }
            if let Err(e) = &read {
                self.transport_failed(conn, e);
            }
            let ended = match read {
                Ok(()) => "the response stream ended before the answer".to_owned(),
                Err(e) => format!("the response stream failed before the answer: {e}"),
            };
            let Some(event_id) = last_id.clone() else {
                return Err(CallError::Unavailable(ended).into());
            };
            resumes += 1;
            if resumes > MAX_RESUMES {
                return Err(CallError::Unavailable(format!("{ended} (gave up resuming it)")).into());
            }
            tokio::time::sleep(retry.unwrap_or(Duration::from_millis(200)).min(Duration::from_secs(5))).await;
            let (builder, _, _) = self.builder(Method::GET, false);
            let result = builder.header(header::LAST_EVENT_ID, event_id).send().await;
            if let Some(error) = self.observe(conn, &result) {
                return Err(CallError::Unavailable(format!("{ended}; resuming it failed: {error}")).into());
            }
            let next = result.map_err(|e| CallError::Unavailable(describe(&e)))?;
            if !next.status().is_success() || kind(&next) != Kind::Sse {
                return Err(CallError::Unavailable(format!("{ended}; resuming it failed: HTTP {}", next.status())).into());
            }
            resp = next;
        }
    }

    /// POSTs a notification or a response: 202 (or any 2xx) expected.
    async fn post_oneway(self: &Arc<Self>, conn: &Arc<Conn>, body: &str, may_reinit: bool) -> Result<(), CallError> {
        let mut retried = !may_reinit;
        loop {
            let (builder, generation, had_session) = self.builder(Method::POST, false);
            let result = builder.timeout(self.oneway_timeout).body(body.to_owned()).send().await;
            if let Some(error) = self.observe(conn, &result) {
                return Err(CallError::Unavailable(error));
            }
            let resp = result.map_err(|e| CallError::Unavailable(describe(&e)))?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && had_session && !retried {
                retried = true;
                Box::pin(self.reinit(conn, generation))
                    .await
                    .map_err(|e| CallError::Unavailable(format!("the session expired and re-initializing failed: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(error_from_response(resp).await);
            }
            return Ok(());
        }
    }

    /// Re-initializes after the session `seen` expired (once, however many
    /// calls noticed it).
    async fn reinit(self: &Arc<Self>, conn: &Arc<Conn>, seen: u64) -> Result<(), String> {
        let _one_at_a_time = self.reinit.lock().await;
        if self.session.lock().generation != seen {
            return Ok(());
        }
        tracing::info!(backend = %conn.name(), "the HTTP session expired; re-initializing");
        let outcome = self.reinit_now(conn).await;
        if let Err(e) = &outcome {
            // Nothing works without a session: take the connection down so
            // the supervisor reconnects with backoff.
            conn.fail(format!("the session expired and re-initializing failed: {e}"));
        }
        outcome
    }

    async fn reinit_now(self: &Arc<Self>, conn: &Arc<Conn>) -> Result<(), String> {
        let shared = &conn.shared;
        let id = shared.next_id();
        let body = Message::Request(Request::new(id, method::INITIALIZE, Some(initialize_params(&shared.identity)))).to_json();
        let raw = conn
            .call_with(id, self.connect_timeout, || async {
                match self.exchange(conn, id, &body, &[], true, None).await {
                    Ok(()) => Ok(()),
                    Err(Failure::Call(e)) => Err(e),
                    Err(Failure::SessionExpired { .. }) => Err(CallError::Unavailable("HTTP 404".into())),
                }
            })
            .await
            .map_err(|e| format!("initialize failed: {e}"))?;
        let info = InitializeInfo::from_raw(raw, &shared.identity.protocol_version)?;
        let generation = {
            let mut s = self.session.lock();
            s.protocol_version = Some(info.protocol_version.clone());
            s.generation += 1;
            s.generation
        };
        let initialized = Message::Notification(Notification::new(method::INITIALIZED, None)).to_json();
        self.post_oneway(conn, &initialized, false).await.map_err(|e| format!("sending notifications/initialized failed: {e}"))?;
        self.session_changed.send_replace(generation);
        shared.reinitialized(conn, info);
        Ok(())
    }

    pub(crate) fn after_initialize(&self, info: &InitializeInfo) {
        self.session.lock().protocol_version = Some(info.protocol_version.clone());
    }

    pub(crate) fn start_background(self: &Arc<Self>, conn: &Arc<Conn>) {
        let (this, conn) = (Arc::clone(self), Arc::clone(conn));
        self.tasks.spawn(async move {
            let background = async {
                match conn.stateless() {
                    Some(state) => this.run_listen(&conn, state).await,
                    None => this.run_get_stream(&conn).await,
                }
            };
            tokio::select! {
                () = background => {}
                () = conn.down() => {}
                () = this.stop.cancelled() => {}
            }
        });
    }

    /// The GET stream for server-initiated messages. 405 (or a non-SSE
    /// answer) means the server has none: not retried. Otherwise it is
    /// reopened with backoff, with `Last-Event-ID` when known.
    async fn run_get_stream(self: &Arc<Self>, conn: &Arc<Conn>) {
        let mut backoff = Backoff::default();
        let mut last_id: Option<String> = None;
        let mut changed = self.session_changed.subscribe();
        let mut seen_generation = *changed.borrow_and_update();
        loop {
            let generation = *changed.borrow_and_update();
            if generation != seen_generation {
                seen_generation = generation;
                last_id = None;
            }
            let (mut builder, generation, had_session) = self.builder(Method::GET, false);
            if let Some(id) = &last_id {
                builder = builder.header(header::LAST_EVENT_ID, id.as_str());
            }
            let result = builder.send().await;
            self.observe(conn, &result);
            match result {
                Err(_) => {}
                Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!(backend = %conn.name(), "the server offers no GET stream (405)");
                    return;
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND && had_session => {
                    if let Err(e) = Box::pin(self.reinit(conn, generation)).await {
                        tracing::warn!(backend = %conn.name(), error = %e, "re-initializing for the GET stream failed");
                    }
                }
                Ok(resp) if !resp.status().is_success() => {
                    tracing::debug!(backend = %conn.name(), status = %resp.status(), "the GET stream was refused");
                }
                Ok(resp) if kind(&resp) != Kind::Sse => {
                    tracing::debug!(backend = %conn.name(), "the GET answer is no event stream; not retrying");
                    return;
                }
                Ok(resp) => {
                    let opened = Instant::now();
                    let mut retry = None;
                    let events = resp.bytes_stream().eventsource();
                    tokio::select! {
                        r = read_events(conn, events, None, None, &mut last_id, &mut retry) => {
                            if let Err(e) = r {
                                self.transport_failed(conn, &e);
                            }
                        }
                        _ = changed.changed() => {
                            tracing::debug!(backend = %conn.name(), "new session; reopening the GET stream");
                        }
                    }
                    backoff.connected_for(opened.elapsed());
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// The 2026-07-28 notification stream: a `subscriptions/listen` POST
    /// asking for the list changes the server declared and the resources
    /// subscribed to. Reopened with backoff when it ends and at once when the
    /// subscriptions change; when the server refuses it (or there is nothing
    /// to listen for) it waits for the subscriptions to change.
    async fn run_listen(self: &Arc<Self>, conn: &Arc<Conn>, state: &Arc<stateless::State>) {
        let mut backoff = Backoff::default();
        let mut subscriptions = state.subscriptions();
        loop {
            let filter = stateless::listen_filter(&state.capabilities(), &subscriptions.borrow_and_update());
            let Some(filter) = filter else {
                if subscriptions.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let shared = &conn.shared;
            let params = stateless::request_params(&shared.identity, state.log_level().as_deref(), Some(&to_raw(&filter)), None)
                .expect("the listen filter is an object");
            let headers = state.headers(method::SUBSCRIPTIONS_LISTEN, Some(&params)).unwrap_or_default();
            let body = Message::Request(Request::new(shared.next_id(), method::SUBSCRIPTIONS_LISTEN, Some(params))).to_json();
            let (builder, _, _) = self.builder_with(Method::POST, true, &headers);
            let result = builder.body(body).send().await;
            self.observe(conn, &result);
            let refused = match result {
                Err(_) => false,
                Ok(resp) if resp.status().is_success() && kind(&resp) == Kind::Sse => {
                    let opened = Instant::now();
                    let (mut last_id, mut retry) = (None, None);
                    let events = resp.bytes_stream().eventsource();
                    tokio::select! {
                        r = read_events(conn, events, None, None, &mut last_id, &mut retry) => {
                            if let Err(e) = r {
                                self.transport_failed(conn, &e);
                            }
                        }
                        _ = subscriptions.changed() => {
                            tracing::debug!(backend = %conn.name(), "resource subscriptions changed; reopening the listen stream");
                            continue;
                        }
                    }
                    backoff.connected_for(opened.elapsed());
                    false
                }
                Ok(resp) if is_gateway_failure(resp.status()) => false,
                Ok(resp) => {
                    let status = resp.status();
                    let why = if status.is_success() { "no event stream".to_owned() } else { error_from_response(resp).await.to_string() };
                    tracing::debug!(backend = %conn.name(), %status, reason = %why, "the server refused subscriptions/listen");
                    true
                }
            };
            if refused {
                if subscriptions.changed().await.is_err() {
                    return;
                }
                continue;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Stops background work and ends the session with DELETE (errors ignored).
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        self.tasks.close();
        if self.session_id().is_some() {
            let (builder, _, _) = self.builder(Method::DELETE, false);
            match tokio::time::timeout(Duration::from_secs(3), builder.send()).await {
                Ok(Ok(resp)) => tracing::debug!(status = %resp.status(), "ended the HTTP session"),
                Ok(Err(e)) => tracing::debug!(error = %describe(&e), "ending the HTTP session failed"),
                Err(_) => tracing::debug!("ending the HTTP session timed out"),
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.tasks.wait()).await;
    }
}
