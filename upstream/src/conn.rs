//! One connection to the server, from connect until it goes down.
//!
//! A [`Conn`] owns what every transport shares: the map of calls in flight
//! (keyed by the connector's own integer ids), the routing of what the server
//! sends (answers to their callers, notifications and server→client requests
//! to the event channel, `ping` answered here), and the "down" signal. When a
//! connection goes down every call in flight fails at once with
//! [`CallError::Unavailable`] carrying the reason, and no new call is taken.
//! The transport itself is a [`Link`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gatehouse_proto::jsonrpc::{Body, to_raw};
use gatehouse_proto::mcp::{code, method};
use gatehouse_proto::{ErrorObject, Message, Notification, Request, RequestId, Response};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::stateless::{self, Outcome, Retry};
use crate::supervisor::Shared;
use crate::{CallError, InitializeInfo, UpstreamEvent, channel, http, sse, stdio};

/// A message on its way to the server.
pub(crate) enum Outgoing {
    /// One of our requests. `abort` fires once the caller stopped waiting
    /// (answered, timed out, cancelled, dropped). `headers` are extra HTTP
    /// headers (the stateless era's routing headers).
    Request { id: i64, method: String, body: String, headers: stateless::Headers, context: Option<u64>, abort: CancellationToken },
    /// A notification, or an answer to a server→client request.
    Oneway { body: String },
}

/// The transport of one connection.
pub(crate) enum Link {
    Stdio(stdio::StdioLink),
    Http(Arc<http::HttpLink>),
    Sse(sse::SseLink),
    Channel(channel::ChannelLink),
}

impl Link {
    /// Sends a message. For requests, the answer arrives through
    /// [`Conn::route`] (or the transport resolves the call with an error).
    async fn send(&self, conn: &Arc<Conn>, msg: Outgoing) -> Result<(), CallError> {
        match self {
            Self::Stdio(l) => l.send(msg),
            Self::Http(l) => l.send(conn, msg).await,
            Self::Sse(l) => l.send(conn, msg).await,
            Self::Channel(l) => l.send(msg),
        }
    }

    /// Sends a one-way message without waiting (stdio queues it at once, so
    /// its order relative to later messages is kept).
    fn send_detached(&self, conn: &Arc<Conn>, body: String) {
        match self {
            Self::Stdio(l) => {
                let _ = l.send(Outgoing::Oneway { body });
            }
            Self::Http(l) => l.send_detached(conn, body),
            Self::Sse(l) => l.send_detached(conn, body),
            Self::Channel(l) => {
                let _ = l.send(Outgoing::Oneway { body });
            }
        }
    }

    /// Called once `initialize` succeeded, before `notifications/initialized`.
    pub(crate) fn after_initialize(&self, info: &InitializeInfo) {
        if let Self::Http(l) = self {
            l.after_initialize(info);
        }
    }

    /// Called once the connection is ready (streamable HTTP opens its GET
    /// stream, or in the stateless era its `subscriptions/listen` stream).
    pub(crate) fn start_background(&self, conn: &Arc<Conn>) {
        if let Self::Http(l) = self {
            l.start_background(conn);
        }
    }

    async fn close(&self) {
        match self {
            Self::Stdio(l) => l.close().await,
            Self::Http(l) => l.close().await,
            Self::Sse(l) => l.close().await,
            Self::Channel(l) => l.close().await,
        }
    }
}

type Answer = Result<Box<RawValue>, CallError>;

#[derive(Default)]
struct Pending {
    /// Set once the connection is down: the reason every later call gets.
    closed: Option<String>,
    calls: HashMap<i64, oneshot::Sender<Answer>>,
}

pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    link: OnceLock<Link>,
    pending: Mutex<Pending>,
    down: CancellationToken,
    /// Set once `server/discover` chose the 2026-07-28 stateless era.
    stateless: OnceLock<Arc<stateless::State>>,
}

impl Conn {
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            link: OnceLock::new(),
            pending: Mutex::default(),
            down: CancellationToken::new(),
            stateless: OnceLock::new(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.spec.name
    }

    pub(crate) fn set_link(&self, link: Link) {
        let _ = self.link.set(link);
    }

    pub(crate) fn link(&self) -> Option<&Link> {
        self.link.get()
    }

    /// Switches the connection to the stateless era (after `server/discover`).
    pub(crate) fn set_stateless(&self, state: Arc<stateless::State>) {
        let _ = self.stateless.set(state);
    }

    pub(crate) fn stateless(&self) -> Option<&Arc<stateless::State>> {
        self.stateless.get()
    }

    /// Marks the connection down: every call in flight fails now with
    /// `Unavailable(reason)`. The first reason wins; later calls are no-ops.
    pub(crate) fn fail(&self, reason: impl Into<String>) {
        let drained = {
            let mut p = self.pending.lock();
            if p.closed.is_some() {
                return;
            }
            let reason = reason.into();
            tracing::debug!(backend = %self.name(), %reason, "connection down");
            p.closed = Some(reason);
            std::mem::take(&mut p.calls)
        };
        let reason = self.reason().unwrap_or_default();
        for (_, tx) in drained {
            let _ = tx.send(Err(CallError::Unavailable(reason.clone())));
        }
        self.down.cancel();
    }

    /// Why the connection went down, once it did.
    pub(crate) fn reason(&self) -> Option<String> {
        self.pending.lock().closed.clone()
    }

    /// `Unavailable` with the reason the connection went down, else `otherwise`.
    fn unavailable(&self, otherwise: &str) -> CallError {
        CallError::Unavailable(self.reason().unwrap_or_else(|| otherwise.to_owned()))
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.is_cancelled()
    }

    /// Resolves when the connection went down.
    pub(crate) async fn down(&self) {
        self.down.cancelled().await;
    }

    /// Fails calls in flight, then closes the transport (kills the child,
    /// ends the HTTP session) and waits for that.
    pub(crate) async fn close(&self, reason: &str) {
        self.fail(reason);
        if let Some(link) = self.link() {
            link.close().await;
        }
    }

    fn register(&self, id: i64) -> Result<oneshot::Receiver<Answer>, CallError> {
        let mut p = self.pending.lock();
        if let Some(reason) = &p.closed {
            return Err(CallError::Unavailable(reason.clone()));
        }
        let (tx, rx) = oneshot::channel();
        p.calls.insert(id, tx);
        Ok(rx)
    }

    /// Delivers the outcome of call `id`; false when nobody waits for it.
    pub(crate) fn resolve(&self, id: i64, answer: Answer) -> bool {
        let tx = self.pending.lock().calls.remove(&id);
        match tx {
            Some(tx) => {
                let _ = tx.send(answer);
                true
            }
            None => false,
        }
    }

    pub(crate) fn has_pending(&self, id: i64) -> bool {
        self.pending.lock().calls.contains_key(&id)
    }

    fn forget(&self, id: i64) {
        self.pending.lock().calls.remove(&id);
    }

    /// Sends request `method` and waits for its answer, at most `timeout`,
    /// in the era of the connection.
    pub(crate) async fn call(
        self: &Arc<Self>,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
        context: Option<u64>,
    ) -> Result<Box<RawValue>, CallError> {
        match self.stateless() {
            Some(state) => self.call_stateless(&Arc::clone(state), method, params, timeout, cancel, context).await,
            None => self.call_session(method, params, timeout, cancel, context).await,
        }
    }

    /// A call of the session eras. On timeout or when `cancel` fires, tells
    /// the server with `notifications/cancelled` (never for `initialize`,
    /// which must not be cancelled).
    async fn call_session(
        self: &Arc<Self>,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
        context: Option<u64>,
    ) -> Result<Box<RawValue>, CallError> {
        let Some(link) = self.link() else {
            return Err(self.unavailable("not connected"));
        };
        let id = self.shared.next_id();
        let rx = self.register(id)?;
        let abort = CancellationToken::new();
        let mut guard = CallGuard { conn: self, id, abort: abort.clone(), tell_server: method != method::INITIALIZE };
        let body = Message::Request(Request::new(id, method, params)).to_json();
        let msg = Outgoing::Request { id, method: method.to_owned(), body, headers: Vec::new(), context, abort };
        let exchange = async {
            link.send(self, msg).await?;
            match rx.await {
                Ok(answer) => answer,
                Err(_) => Err(self.unavailable("connection closed")),
            }
        };
        let cancelled = cancelled(cancel);
        tokio::select! {
            biased;
            answer = exchange => {
                guard.tell_server = false;
                answer
            }
            () = cancelled => {
                guard.cancel_upstream("cancelled by the client");
                Err(CallError::Cancelled)
            }
            () = tokio::time::sleep(timeout) => {
                guard.cancel_upstream(&format!("timed out after {} ms", timeout.as_millis()));
                Err(CallError::Timeout(timeout))
            }
        }
    }

    /// A call of the 2026-07-28 stateless era: `_meta` and routing headers on
    /// every request, `InputRequiredResult` rounds answered through the event
    /// channel and retried, the session-era methods the era removed answered
    /// here (`ping` becomes `server/discover`). Cancellation, timeout and
    /// dropping the future close the request's HTTP stream, which is how this
    /// era cancels; no `notifications/cancelled` is sent.
    pub(crate) async fn call_stateless(
        self: &Arc<Self>,
        state: &Arc<stateless::State>,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
        context: Option<u64>,
    ) -> Result<Box<RawValue>, CallError> {
        if let Some(answer) = state.answer_locally(method, params.as_deref()) {
            return answer.map_err(CallError::Rpc);
        }
        let (method, ping) = if method == method::PING { (method::SERVER_DISCOVER, true) } else { (method, false) };
        let rounds = async {
            let mut retry: Option<Retry> = None;
            for _ in 0..stateless::MAX_ROUNDS {
                let sent =
                    stateless::request_params(&self.shared.identity, state.log_level().as_deref(), params.as_deref(), retry.as_ref())
                        .map_err(CallError::Rpc)?;
                let headers = state.headers(method, Some(&sent)).map_err(CallError::Rpc)?;
                let raw = self.exchange_stateless(method, sent, headers, context).await?;
                match stateless::outcome(raw).map_err(CallError::Unavailable)? {
                    Outcome::Complete(_) if ping => return Ok(to_raw(&serde_json::json!({}))),
                    Outcome::Complete(raw) if method == method::TOOLS_LIST => return Ok(state.learn_tools(raw)),
                    Outcome::Complete(raw) => return Ok(raw),
                    Outcome::InputRequired { requests, state } => {
                        let responses = self.ask_client(requests, context).await?;
                        retry = Some(Retry { responses, state });
                    }
                }
            }
            Err(CallError::Unavailable(format!("the server asked for input more than {} times", stateless::MAX_ROUNDS)))
        };
        let cancelled = cancelled(cancel);
        tokio::select! {
            biased;
            answer = rounds => answer,
            () = cancelled => Err(CallError::Cancelled),
            () = tokio::time::sleep(timeout) => Err(CallError::Timeout(timeout)),
        }
    }

    /// One POST of a stateless call, under a fresh id. Dropping the future
    /// aborts the POST (its stream closes).
    async fn exchange_stateless(
        self: &Arc<Self>,
        method: &str,
        params: Box<RawValue>,
        headers: stateless::Headers,
        context: Option<u64>,
    ) -> Result<Box<RawValue>, CallError> {
        let Some(link) = self.link() else {
            return Err(self.unavailable("not connected"));
        };
        let id = self.shared.next_id();
        let rx = self.register(id)?;
        let abort = CancellationToken::new();
        let _guard = CallGuard { conn: self, id, abort: abort.clone(), tell_server: false };
        let body = Message::Request(Request::new(id, method, Some(params))).to_json();
        link.send(self, Outgoing::Request { id, method: method.to_owned(), body, headers, context, abort }).await?;
        match rx.await {
            Ok(answer) => answer,
            Err(_) => Err(self.unavailable("connection closed")),
        }
    }

    /// Asks the caller side for the answers an `InputRequiredResult` wants,
    /// all at once, as [`UpstreamEvent::Request`]s carrying the call's context.
    /// A refused request fails the call with that error.
    async fn ask_client(
        self: &Arc<Self>,
        requests: Vec<stateless::InputRequest>,
        context: Option<u64>,
    ) -> Result<Vec<(String, Box<RawValue>)>, CallError> {
        let asks = requests.into_iter().map(|r| {
            let (reply, rx) = oneshot::channel();
            let request = Request { id: RequestId::String(r.key.clone()), method: r.method, params: r.params };
            self.shared.emit(UpstreamEvent::Request { request, context, reply });
            async move {
                let answer = rx.await.unwrap_or_else(|_| Err(ErrorObject::new(code::INTERNAL_ERROR, "no client available")));
                answer.map(|v| (r.key, v)).map_err(CallError::Rpc)
            }
        });
        tokio::select! {
            answers = futures::future::join_all(asks) => answers.into_iter().collect(),
            () = self.down() => Err(self.unavailable("connection closed")),
        }
    }

    /// Runs request `id`, already serialized and sent by `send`, without the
    /// cancellation bookkeeping of [`Conn::call`] (used for `initialize`).
    pub(crate) async fn call_with<F, Fut>(self: &Arc<Self>, id: i64, timeout: Duration, send: F) -> Result<Box<RawValue>, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), CallError>>,
    {
        let rx = self.register(id)?;
        let exchange = async {
            send().await?;
            match rx.await {
                Ok(answer) => answer,
                Err(_) => Err(self.unavailable("connection closed")),
            }
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        self.forget(id);
        result.unwrap_or(Err(CallError::Timeout(timeout)))
    }

    /// Sends a notification.
    pub(crate) async fn notify(self: &Arc<Self>, method: &str, params: Option<Box<RawValue>>) -> Result<(), CallError> {
        let Some(link) = self.link() else {
            return Err(self.unavailable("not connected"));
        };
        if let Some(reason) = self.reason() {
            return Err(CallError::Unavailable(reason));
        }
        if self.stateless().is_some() {
            // The stateless era has no client→server notifications: a
            // cancellation closes the request's stream, and roots are asked for.
            tracing::debug!(backend = %self.name(), %method, "not sending a notification in protocol revision 2026-07-28");
            return Ok(());
        }
        let body = Message::Notification(Notification::new(method, params)).to_json();
        link.send(self, Outgoing::Oneway { body }).await
    }

    fn send_detached(self: &Arc<Self>, body: String) {
        if self.is_down() {
            return;
        }
        if let Some(link) = self.link() {
            link.send_detached(self, body);
        }
    }

    /// Routes JSON text the server sent (one message or a batch). `context`
    /// is the tag of the call whose response stream carried it.
    pub(crate) fn route_text(self: &Arc<Self>, text: &str, context: Option<u64>) {
        match Body::parse(text.as_bytes()) {
            Ok(Body::Single(msg)) => self.route(msg, context),
            Ok(Body::Batch(items)) => {
                for item in items {
                    match item {
                        Ok(msg) => self.route(msg, context),
                        Err((_, e)) => tracing::warn!(backend = %self.name(), error = %e, "skipping an invalid message in a batch"),
                    }
                }
            }
            Err(e) => tracing::warn!(
                backend = %self.name(),
                error = %e,
                "skipping a message that is not JSON-RPC: {}",
                excerpt(text, 200)
            ),
        }
    }

    pub(crate) fn route(self: &Arc<Self>, msg: Message, context: Option<u64>) {
        match msg {
            Message::Response(Response { id: Some(id), payload }) => {
                let ours = match &id {
                    RequestId::Number(n) => Some(*n),
                    RequestId::String(s) => s.parse().ok(),
                };
                let delivered = ours.is_some_and(|n| self.resolve(n, payload.map_err(CallError::Rpc)));
                if !delivered {
                    tracing::debug!(backend = %self.name(), %id, "answer to an unknown or abandoned request");
                }
            }
            Message::Response(Response { id: None, payload }) => {
                if let Err(e) = payload {
                    tracing::warn!(backend = %self.name(), error = %e, "the server reported an error about a message it could not read");
                }
            }
            Message::Notification(n) if n.method == method::SUBSCRIPTIONS_ACKNOWLEDGED => {
                tracing::debug!(backend = %self.name(), "the listen stream is acknowledged");
            }
            Message::Notification(n) => {
                self.shared.emit(UpstreamEvent::Notification { method: n.method, params: n.params, context });
            }
            Message::Request(request) if request.method == method::PING => {
                self.answer(request.id, Ok(to_raw(&serde_json::json!({}))));
            }
            Message::Request(request) => {
                let id = request.id.clone();
                let (reply, rx) = oneshot::channel();
                self.shared.emit(UpstreamEvent::Request { request, context, reply });
                let conn = Arc::clone(self);
                tokio::spawn(async move {
                    let answer = tokio::select! {
                        answer = rx => answer.unwrap_or_else(|_| Err(ErrorObject::new(code::INTERNAL_ERROR, "no client available"))),
                        () = conn.down() => return,
                    };
                    conn.answer(id, answer);
                });
            }
        }
    }

    /// Answers a server→client request with the server's own id.
    fn answer(self: &Arc<Self>, id: RequestId, payload: Result<Box<RawValue>, ErrorObject>) {
        self.send_detached(Message::Response(Response { id: Some(id), payload }).to_json());
    }
}

/// Cleans up after a call however it ends; tells the server when the caller
/// gave up without an answer.
struct CallGuard<'a> {
    conn: &'a Arc<Conn>,
    id: i64,
    abort: CancellationToken,
    tell_server: bool,
}

impl CallGuard<'_> {
    fn cancel_upstream(&mut self, reason: &str) {
        if std::mem::take(&mut self.tell_server) {
            self.conn.forget(self.id);
            let params = to_raw(&serde_json::json!({ "requestId": self.id, "reason": reason }));
            self.conn.send_detached(Message::Notification(Notification::new(method::CANCELLED, Some(params))).to_json());
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.conn.forget(self.id);
        self.abort.cancel();
        // The caller dropped the future mid-call.
        if self.tell_server && tokio::runtime::Handle::try_current().is_ok() {
            self.cancel_upstream("abandoned by the client");
        }
    }
}

/// The first `max` characters of `text`, on one line, for logs and errors.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max).collect();
        out.push('…');
    }
    out
}

/// Resolves when `token` is cancelled; never without one.
async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}
