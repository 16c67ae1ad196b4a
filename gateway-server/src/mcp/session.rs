//! Client sessions of the streamable HTTP front door.
//!
//! A session is created by `initialize`, named by an unguessable
//! `Mcp-Session-Id`, owned by the principal that created it, and ends on
//! `DELETE`, after sitting idle too long, or when the hub shuts down. It holds
//! what the gateway must remember between requests: the negotiated protocol
//! version, what the client can do, its server→client streams (resumable, see
//! [`super::stream`]), the server→client requests waiting for the client's
//! answer, and its calls in flight (so `notifications/cancelled` can reach them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use gatehouse_proto::{ErrorObject, Message, RequestId};
use parking_lot::Mutex;
use rand::RngCore;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::stream::EventStream;
use crate::auth::Principal;

/// Default number of messages each stream keeps for replay.
pub const DEFAULT_REPLAY_EVENTS: usize = 256;
/// Most finished answer streams a session keeps for a client that has not
/// read their end yet; older ones are forgotten first.
const MAX_UNREAD_STREAMS: usize = 64;

/// What a session can see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `/mcp`: every backend, names namespaced.
    Aggregate,
    /// `/mcp/{backend}`: one backend, names as the backend has them.
    Backend(Arc<str>),
}

impl Scope {
    /// True when this scope shows `backend`.
    pub fn sees(&self, backend: &str) -> bool {
        match self {
            Self::Aggregate => true,
            Self::Backend(b) => &**b == backend,
        }
    }
}

/// The answer to a server→client request, as the client sent it.
pub type ClientReply = Result<Box<RawValue>, ErrorObject>;

/// One client session.
pub struct Session {
    pub id: String,
    /// The user that created it; only that user may use it.
    pub owner: String,
    /// Who created it, as authenticated then: decides which backends the
    /// session hears about (`list_changed` goes only where it can see).
    pub principal: Arc<Principal>,
    pub scope: Scope,
    pub protocol_version: String,
    pub client_info: Value,
    pub client_capabilities: Value,
    last_seen: Mutex<Instant>,
    /// The one stream of a 2024-11-05 session.
    legacy: Mutex<Option<mpsc::Sender<Message>>>,
    /// Stream 0: the standalone server→client stream (`GET`).
    standalone: Arc<EventStream>,
    /// Answer streams of POSTs, kept until their end was read.
    streams: Mutex<BTreeMap<u64, Arc<EventStream>>>,
    next_stream: AtomicU64,
    replay: usize,
    pending: Mutex<HashMap<RequestId, oneshot::Sender<ClientReply>>>,
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Calls the client cancelled while in flight: their answers are not sent.
    withdrawn: Mutex<HashSet<RequestId>>,
    subscriptions: Mutex<HashSet<String>>,
    log_level: Mutex<Option<String>>,
    next_id: AtomicI64,
    /// Cancelled when the session ends.
    pub closed: CancellationToken,
}

/// Replay log of a detached session's streams: its one call answers on its own stream.
const DETACHED_REPLAY: usize = 16;

impl Session {
    fn new(
        principal: Arc<Principal>,
        scope: Scope,
        protocol_version: String,
        client_info: Value,
        client_capabilities: Value,
        replay: usize,
    ) -> Self {
        Self {
            id: new_session_id(),
            owner: principal.user_id.clone(),
            principal,
            scope,
            protocol_version,
            client_info,
            client_capabilities,
            last_seen: Mutex::new(Instant::now()),
            legacy: Mutex::new(None),
            standalone: Arc::new(EventStream::new(0, false, replay)),
            streams: Mutex::new(BTreeMap::new()),
            next_stream: AtomicU64::new(1),
            replay,
            pending: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            withdrawn: Mutex::new(HashSet::new()),
            subscriptions: Mutex::new(HashSet::new()),
            log_level: Mutex::new(None),
            next_id: AtomicI64::new(1),
            closed: CancellationToken::new(),
        }
    }

    /// A session outside the registry: it carries one stateless (2026-07-28)
    /// call through the router, with the capabilities that request declared,
    /// and receives no broadcasts.
    pub fn detached(
        principal: Arc<Principal>,
        scope: Scope,
        protocol_version: String,
        client_info: Value,
        client_capabilities: Value,
    ) -> Arc<Self> {
        Arc::new(Self::new(principal, scope, protocol_version, client_info, client_capabilities, DETACHED_REPLAY))
    }

    pub fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        self.last_seen.lock().elapsed()
    }

    /// `clientInfo.name`, the client application, when the client sent one.
    pub fn client_app(&self) -> Option<&str> {
        self.client_info.get("name").and_then(Value::as_str)
    }

    /// True when the client declared capability `name` (e.g. `sampling`).
    pub fn client_can(&self, name: &str) -> bool {
        self.client_capabilities.get(name).is_some_and(|v| !v.is_null())
    }

    /// True when the client's protocol revision lets the hub prime streams
    /// and close them early for the client to resume (2025-11-25 and later;
    /// older clients may not expect events with empty data).
    pub fn resumable(&self) -> bool {
        self.protocol_version.as_str() >= gatehouse_proto::mcp::V2025_11_25
    }

    /// The standalone server→client stream (stream 0).
    pub fn standalone(&self) -> &Arc<EventStream> {
        &self.standalone
    }

    /// A new answer stream for one POST.
    pub fn new_request_stream(&self) -> Arc<EventStream> {
        let n = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(EventStream::new(n, true, self.replay));
        let mut streams = self.streams.lock();
        streams.retain(|_, s| !s.is_done());
        let unread: Vec<u64> = streams.iter().filter(|(_, s)| s.is_finished()).map(|(n, _)| *n).collect();
        for old in unread.iter().take(unread.len().saturating_sub(MAX_UNREAD_STREAMS - 1)) {
            streams.remove(old);
        }
        streams.insert(n, stream.clone());
        stream
    }

    /// Stream `number` of this session, while it can still be resumed.
    pub fn stream(&self, number: u64) -> Option<Arc<EventStream>> {
        if number == 0 {
            return Some(self.standalone.clone());
        }
        self.streams.lock().get(&number).filter(|s| !s.is_done()).cloned()
    }

    /// Uses `tx` as the one server→client stream (the 2024-11-05 transport
    /// has one stream that carries everything).
    pub fn attach_stream(&self, tx: mpsc::Sender<Message>) {
        *self.legacy.lock() = Some(tx);
    }

    /// Sends a message on the standalone stream. On the streamable HTTP
    /// transport it is kept for replay when no connection reads the stream;
    /// on the 2024-11-05 transport it is dropped when the client is not
    /// keeping up (false), as that transport allows for unsolicited messages.
    pub fn push(&self, msg: Message) -> bool {
        let mut guard = self.legacy.lock();
        let Some(tx) = guard.as_ref() else {
            drop(guard);
            return self.standalone.send(&msg);
        };
        match tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *guard = None;
                false
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(session = %self.id, "client stream is full; dropping a server notification");
                false
            }
        }
    }

    /// Registers a server→client request and returns the id to send it with.
    pub fn expect_reply(&self) -> (RequestId, oneshot::Receiver<ClientReply>) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("gh-{n}"));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id.clone(), tx);
        (id, rx)
    }

    /// Forgets a server→client request that will not be answered.
    pub fn forget_reply(&self, id: &RequestId) {
        self.pending.lock().remove(id);
    }

    /// Delivers the client's answer to a server→client request; false when
    /// nothing was waiting for it.
    pub fn deliver_reply(&self, id: &RequestId, reply: ClientReply) -> bool {
        match self.pending.lock().remove(id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    pub fn begin_call(&self, id: RequestId) -> CancellationToken {
        let token = self.closed.child_token();
        self.inflight.lock().insert(id, token.clone());
        token
    }

    pub fn end_call(&self, id: &RequestId) {
        self.inflight.lock().remove(id);
    }

    /// Cancels the client's call `id`; false when it is not in flight. Its
    /// answer is then not sent: "the receiver of a cancellation SHOULD NOT
    /// send a response for the cancelled request".
    pub fn cancel_call(&self, id: &RequestId) -> bool {
        let token = self.inflight.lock().remove(id);
        match token {
            Some(t) => {
                self.withdrawn.lock().insert(id.clone());
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// True (once) when the client cancelled call `id` while it was in flight.
    pub fn take_withdrawn(&self, id: &RequestId) -> bool {
        self.withdrawn.lock().remove(id)
    }

    pub fn subscribe(&self, uri: &str) {
        self.subscriptions.lock().insert(uri.to_owned());
    }

    pub fn unsubscribe(&self, uri: &str) {
        self.subscriptions.lock().remove(uri);
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions.lock().contains(uri)
    }

    pub fn set_log_level(&self, level: String) {
        *self.log_level.lock() = Some(level);
    }

    /// True when a log message of `level` passes the level the client set
    /// (everything passes when it set none).
    pub fn wants_log(&self, level: &str) -> bool {
        match self.log_level.lock().as_deref() {
            // 2026-07-28 clients get log messages only when they asked for a level.
            None => !gatehouse_proto::mcp::is_stateless_version(&self.protocol_version),
            Some(min) => severity(level) >= severity(min),
        }
    }
}

/// RFC 5424 severity order used by MCP logging.
fn severity(level: &str) -> u8 {
    match level {
        "debug" => 0,
        "info" => 1,
        "notice" => 2,
        "warning" => 3,
        "error" => 4,
        "critical" => 5,
        "alert" => 6,
        "emergency" => 7,
        _ => 1,
    }
}

/// 128 random bits, hex: unguessable and within the visible-ASCII rule of the spec.
fn new_session_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
#[error("too many sessions (limit {0})")]
pub struct TooManySessions(pub usize);

/// Every live session.
pub struct Sessions {
    map: DashMap<String, Arc<Session>>,
    max: usize,
    idle_timeout: Duration,
    replay: usize,
}

impl Sessions {
    pub fn new(max: usize, idle_timeout: Duration) -> Self {
        Self { map: DashMap::new(), max, idle_timeout, replay: DEFAULT_REPLAY_EVENTS }
    }

    /// Keeps `events` messages per stream for replay (instead of [`DEFAULT_REPLAY_EVENTS`]).
    #[must_use]
    pub fn with_replay(mut self, events: usize) -> Self {
        self.replay = events.max(1);
        self
    }

    pub fn create(
        &self,
        principal: Arc<Principal>,
        scope: Scope,
        protocol_version: String,
        client_info: Value,
        client_capabilities: Value,
    ) -> Result<Arc<Session>, TooManySessions> {
        if self.map.len() >= self.max {
            self.reap();
            if self.map.len() >= self.max {
                return Err(TooManySessions(self.max));
            }
        }
        let s = Arc::new(Session::new(principal, scope, protocol_version, client_info, client_capabilities, self.replay));
        self.map.insert(s.id.clone(), s.clone());
        Ok(s)
    }

    /// The session `id` if it exists and belongs to `owner`.
    pub fn get(&self, id: &str, owner: &str) -> Option<Arc<Session>> {
        let s = self.map.get(id)?.clone();
        (s.owner == owner).then(|| {
            s.touch();
            s
        })
    }

    /// Ends session `id` of `owner`; false when there was none.
    pub fn remove(&self, id: &str, owner: &str) -> bool {
        let Some(s) = self.map.remove_if(id, |_, s| s.owner == owner).map(|(_, s)| s) else { return false };
        s.closed.cancel();
        true
    }

    /// Ends sessions idle longer than the timeout; returns how many.
    pub fn reap(&self) -> usize {
        let before = self.map.len();
        let timeout = self.idle_timeout;
        self.map.retain(|_, s| {
            let keep = s.idle_for() < timeout;
            if !keep {
                s.closed.cancel();
            }
            keep
        });
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A snapshot of the sessions matching `pred`.
    pub fn filter(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        self.map.iter().filter(|e| pred(e.value())).map(|e| e.value().clone()).collect()
    }

    /// Ends every session (hub shutdown).
    pub fn close_all(&self) {
        for e in &self.map {
            e.value().closed.cancel();
        }
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str) -> Arc<Principal> {
        Arc::new(Principal {
            user_id: user.into(),
            username: user.into(),
            role: crate::store::Role::Developer,
            key_id: String::new(),
            key_name: String::new(),
            surfaces: vec![],
            tools: vec![],
        })
    }

    #[test]
    fn sessions_belong_to_their_owner_and_end() {
        let s = Sessions::new(10, Duration::from_secs(60));
        let a = s.create(who("alice"), Scope::Aggregate, "2025-11-25".into(), Value::Null, serde_json::json!({"sampling":{}})).unwrap();
        assert_eq!(a.id.len(), 32);
        assert!(s.get(&a.id, "bob").is_none());
        assert!(s.get(&a.id, "alice").is_some());
        assert!(a.client_can("sampling"));
        assert!(!a.client_can("elicitation"));
        assert!(!s.remove(&a.id, "bob"));
        assert!(s.remove(&a.id, "alice"));
        assert!(a.closed.is_cancelled());
        assert!(s.get(&a.id, "alice").is_none());
    }

    #[test]
    fn limit_and_idle_reaping() {
        let s = Sessions::new(1, Duration::ZERO);
        s.create(who("a"), Scope::Aggregate, "v".into(), Value::Null, Value::Null).unwrap();
        // The idle one is reaped to make room.
        s.create(who("a"), Scope::Aggregate, "v".into(), Value::Null, Value::Null).unwrap();
        let s = Sessions::new(1, Duration::from_secs(3600));
        s.create(who("a"), Scope::Aggregate, "v".into(), Value::Null, Value::Null).unwrap();
        assert!(s.create(who("a"), Scope::Aggregate, "v".into(), Value::Null, Value::Null).is_err());
    }

    #[test]
    fn replies_and_cancellation() {
        let s = Sessions::new(4, Duration::from_secs(60));
        let a = s.create(who("a"), Scope::Aggregate, "v".into(), Value::Null, Value::Null).unwrap();
        let (id, mut rx) = a.expect_reply();
        assert!(a.deliver_reply(&id, Err(ErrorObject::internal("x"))));
        assert!(rx.try_recv().unwrap().is_err());
        assert!(!a.deliver_reply(&id, Err(ErrorObject::internal("again"))));
        let t = a.begin_call(RequestId::Number(1));
        assert!(a.cancel_call(&RequestId::Number(1)));
        assert!(t.is_cancelled());
        assert!(!a.cancel_call(&RequestId::Number(1)));
        assert!(a.take_withdrawn(&RequestId::Number(1)), "a cancelled call's answer is withheld");
        assert!(!a.take_withdrawn(&RequestId::Number(1)));
    }

    #[test]
    fn log_levels() {
        let s = Sessions::new(4, Duration::from_secs(60));
        let a = s.create(who("a"), Scope::Aggregate, "v".into(), Value::Null, Value::Null).unwrap();
        assert!(a.wants_log("debug"));
        a.set_log_level("warning".into());
        assert!(!a.wants_log("info"));
        assert!(a.wants_log("error"));
    }
}
