//! The supervisor: one task per upstream that connects, runs the
//! `initialize` handshake, watches the connection and reconnects with
//! [`Backoff`] until shut down. Also the state shared by the handle, the
//! supervisor and the connection tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse_proto::jsonrpc::to_raw;
use gatehouse_proto::mcp::method;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::channel;
use crate::conn::{Conn, Link};
use crate::{
    CallError, ClientIdentity, Health, InitializeInfo, ProtocolPreference, Status, TransportSpec, UpstreamEvent, UpstreamSpec, http, sse,
    stateless, stdio,
};

pub(crate) struct State {
    pub health: Health,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub init: Option<Arc<InitializeInfo>>,
    pub conn: Option<Arc<Conn>>,
}

pub(crate) struct Shared {
    pub spec: UpstreamSpec,
    pub identity: ClientIdentity,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    state: Mutex<State>,
    /// Bumped on every state change; wakes `wait_ready`, waiting calls and `shutdown`.
    changed: watch::Sender<u64>,
    pub shutdown: CancellationToken,
    next_id: AtomicI64,
    /// Events emitted so far (barriers excluded).
    emitted: AtomicU64,
}

impl Shared {
    pub(crate) fn new(spec: UpstreamSpec, identity: ClientIdentity, events: mpsc::Sender<UpstreamEvent>) -> Arc<Self> {
        // Events go through an unbounded queue and a forwarder task, so the
        // readers of the connection never block on a slow consumer (which
        // could otherwise wait on an answer that those readers must deliver),
        // while the order of events is kept. When the consumer is gone the
        // forwarder drops events; a dropped `Request` event drops its reply
        // sender, which answers the server with "no client available".
        let (tx, mut rx) = mpsc::unbounded_channel::<UpstreamEvent>();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let _ = events.send(event).await;
            }
        });
        Arc::new(Self {
            spec,
            identity,
            events: tx,
            state: Mutex::new(State { health: Health::Starting, restarts: 0, last_error: None, init: None, conn: None }),
            changed: watch::channel(0).0,
            shutdown: CancellationToken::new(),
            next_id: AtomicI64::new(1),
            emitted: AtomicU64::new(0),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// A fresh upstream-side request id (monotonic across reconnections).
    pub(crate) fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn emit(&self, event: UpstreamEvent) {
        self.emitted.fetch_add(1, Ordering::Release);
        let _ = self.events.send(event);
    }

    /// Queues a barrier behind every event emitted so far, without counting it.
    pub(crate) fn emit_barrier(&self, barrier: UpstreamEvent) {
        let _ = self.events.send(barrier);
    }

    pub(crate) fn events_emitted(&self) -> u64 {
        self.emitted.load(Ordering::Acquire)
    }

    pub(crate) fn status(&self) -> Status {
        let s = self.state.lock();
        Status { health: s.health.clone(), restarts: s.restarts, last_error: s.last_error.clone(), init: s.init.clone() }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn set_ready(&self, conn: Arc<Conn>, init: Arc<InitializeInfo>) {
        {
            let mut s = self.state.lock();
            s.health = Health::Ready;
            s.conn = Some(conn);
            s.init = Some(init);
        }
        self.bump();
        self.emit(UpstreamEvent::Health(Health::Ready));
    }

    fn set_unhealthy(&self, error: String) {
        let changed = {
            let mut s = self.state.lock();
            if s.health == Health::Stopped {
                return;
            }
            let health = Health::Unhealthy { error: error.clone() };
            let changed = s.health != health;
            s.health = health.clone();
            s.last_error = Some(error);
            s.conn = None;
            s.init = None;
            changed.then_some(health)
        };
        self.bump();
        if let Some(h) = changed {
            self.emit(UpstreamEvent::Health(h));
        }
    }

    fn set_stopped(&self) {
        {
            let mut s = self.state.lock();
            if s.health == Health::Stopped {
                return;
            }
            s.health = Health::Stopped;
            s.conn = None;
            s.init = None;
        }
        self.bump();
        self.emit(UpstreamEvent::Health(Health::Stopped));
    }

    /// A streamable HTTP session was re-established transparently.
    pub(crate) fn reinitialized(&self, conn: &Arc<Conn>, init: InitializeInfo) {
        {
            let mut s = self.state.lock();
            if !s.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                return;
            }
            s.init = Some(Arc::new(init));
        }
        self.bump();
        self.emit(UpstreamEvent::Health(Health::Ready));
    }

    /// The live connection. While Starting, waits up to `wait` for it
    /// (`wait_unhealthy`: also while Unhealthy); otherwise fails fast.
    pub(crate) async fn ready_conn(
        &self,
        wait: Duration,
        wait_unhealthy: bool,
        cancel: Option<&CancellationToken>,
    ) -> Result<(Arc<Conn>, Arc<InitializeInfo>), CallError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.changed.subscribe();
        loop {
            {
                let s = self.state.lock();
                match &s.health {
                    Health::Ready => {
                        if let (Some(conn), Some(init)) = (&s.conn, &s.init) {
                            return Ok((Arc::clone(conn), Arc::clone(init)));
                        }
                    }
                    Health::Stopped => return Err(CallError::Unavailable("the upstream has been shut down".into())),
                    Health::Unhealthy { error } if !wait_unhealthy => return Err(CallError::Unavailable(error.clone())),
                    Health::Unhealthy { .. } | Health::Starting => {}
                }
            }
            let cancelled = async {
                match cancel {
                    Some(t) => t.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() {
                    return Err(CallError::Unavailable("the upstream has been shut down".into()));
                },
                () = cancelled => return Err(CallError::Cancelled),
                () = tokio::time::sleep_until(deadline) => {
                    let s = self.state.lock();
                    return Err(match (&s.health, &s.last_error) {
                        (Health::Unhealthy { error }, _) => CallError::Unavailable(error.clone()),
                        (_, Some(error)) => CallError::Unavailable(format!("not connected yet (last error: {error})")),
                        _ => CallError::Timeout(wait),
                    });
                }
            }
        }
    }

    /// Waits until the supervisor has stopped.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            if self.state.lock().health == Health::Stopped {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Marks the upstream stopped even when the supervisor task ends abnormally
/// (panic, runtime shutdown).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set_stopped();
    }
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let _stop = StopOnDrop(Arc::clone(&shared));
    let mut backoff = Backoff::default();
    let mut first = true;
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        if !std::mem::take(&mut first) {
            shared.state.lock().restarts += 1;
        }
        let conn = Conn::new(Arc::clone(&shared));
        let attempt = tokio::select! {
            r = tokio::time::timeout(shared.spec.connect_timeout, connect(&conn)) => r.unwrap_or_else(|_| {
                Err(format!("connecting and initializing took longer than {} ms", shared.spec.connect_timeout.as_millis()))
            }),
            () = shared.shutdown.cancelled() => {
                conn.close("the upstream is shutting down").await;
                break;
            }
        };
        match attempt {
            Ok(info) => {
                let up_since = Instant::now();
                tracing::info!(backend = %shared.name(), protocol = %info.protocol_version, "upstream ready");
                shared.set_ready(Arc::clone(&conn), Arc::new(info));
                tokio::select! {
                    () = conn.down() => {}
                    () = shared.shutdown.cancelled() => {
                        conn.close("the upstream is shutting down").await;
                        break;
                    }
                }
                let reason = conn.reason().unwrap_or_else(|| "connection lost".into());
                tracing::warn!(backend = %shared.name(), %reason, "upstream connection lost");
                shared.set_unhealthy(reason.clone());
                conn.close(&reason).await;
                backoff.connected_for(up_since.elapsed());
            }
            Err(error) => {
                tracing::warn!(backend = %shared.name(), %error, "connecting to the upstream failed");
                shared.set_unhealthy(error.clone());
                conn.close(&error).await;
            }
        }
        let delay = backoff.next_delay();
        tracing::debug!(backend = %shared.name(), delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.shutdown.cancelled() => break,
        }
    }
    shared.set_stopped();
}

/// Opens the transport and runs the handshake: `server/discover` first
/// when the era may be 2026-07-28, else (or when the server does not offer
/// it) `initialize`.
async fn connect(conn: &Arc<Conn>) -> Result<InitializeInfo, String> {
    let shared = &conn.shared;
    let http = matches!(shared.spec.transport, TransportSpec::Http { .. });
    let discover = match shared.spec.protocol {
        ProtocolPreference::Session => false,
        ProtocolPreference::Auto => http,
        ProtocolPreference::Stateless if http => true,
        ProtocolPreference::Stateless => return Err("protocol revision 2026-07-28 needs the streamable HTTP transport".into()),
    };
    let link = match &shared.spec.transport {
        TransportSpec::Stdio { command, args, env, cwd } => Link::Stdio(stdio::spawn(conn, command, args, env, cwd.as_deref())?),
        TransportSpec::Http { url, headers } => Link::Http(http::HttpLink::new(shared, url, headers)?),
        TransportSpec::Sse { url, headers } => Link::Sse(sse::connect(conn, url, headers).await?),
        TransportSpec::Channel(connector) => Link::Channel(channel::connect(conn, connector.as_ref())?),
    };
    conn.set_link(link);
    if discover {
        match discover_stateless(conn).await {
            Ok((info, state)) => {
                conn.set_stateless(state);
                let link = conn.link().ok_or("the connection has no transport")?;
                link.after_initialize(&info);
                link.start_background(conn);
                return Ok(info);
            }
            Err(e) if shared.spec.protocol == ProtocolPreference::Stateless => return Err(e),
            Err(e) => tracing::debug!(backend = %shared.name(), reason = %e, "no 2026-07-28 offer; initializing"),
        }
    }
    let raw = conn
        .call(method::INITIALIZE, Some(initialize_params(&shared.identity)), shared.spec.connect_timeout, None, None)
        .await
        .map_err(|e| match e {
            CallError::Rpc(e) => format!("initialize failed: {e}"),
            e => format!("initialize failed: {e}"),
        })?;
    let info = InitializeInfo::from_raw(raw, &shared.identity.protocol_version)?;
    let link = conn.link().ok_or("the connection has no transport")?;
    link.after_initialize(&info);
    conn.notify(method::INITIALIZED, None).await.map_err(|e| format!("sending notifications/initialized failed: {e}"))?;
    if let Some(reason) = conn.reason() {
        return Err(reason);
    }
    link.start_background(conn);
    Ok(info)
}

/// Asks `server/discover` whether the server speaks 2026-07-28. An
/// "unsupported version" error naming 2026-07-28 among the supported ones is
/// worth one more try; any other error or answer means no.
async fn discover_stateless(conn: &Arc<Conn>) -> Result<(InitializeInfo, Arc<stateless::State>), String> {
    // Half the connect time, so a server that never answers an unknown
    // method leaves time for `initialize`.
    let timeout = conn.shared.spec.connect_timeout / 2;
    let state = Arc::new(stateless::State::new());
    let mut retried = false;
    loop {
        match conn.call_stateless(&state, method::SERVER_DISCOVER, None, timeout, None, None).await {
            Ok(raw) => {
                let info = stateless::discover_info(raw)?.ok_or("server/discover does not offer 2026-07-28")?;
                state.set_capabilities(info.capabilities.clone());
                return Ok((info, state));
            }
            Err(CallError::Rpc(e)) if !retried && stateless::offers_stateless(&e) => retried = true,
            Err(e) => return Err(format!("server/discover failed: {e}")),
        }
    }
}

pub(crate) fn initialize_params(identity: &ClientIdentity) -> Box<RawValue> {
    to_raw(&serde_json::json!({
        "protocolVersion": identity.protocol_version,
        "capabilities": identity.capabilities,
        "clientInfo": identity.client_info,
    }))
}

impl InitializeInfo {
    /// Reads the parts of an `initialize` result the gateway needs, keeping
    /// the raw text whole. A missing `protocolVersion` falls back to `requested`.
    pub fn from_raw(raw: Box<RawValue>, requested: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(raw.get()).map_err(|e| format!("initialize result is not JSON: {e}"))?;
        let obj = value.as_object().ok_or("initialize result is not an object")?;
        let protocol_version = match obj.get("protocolVersion") {
            Some(serde_json::Value::String(v)) => v.clone(),
            None => requested.to_owned(),
            Some(_) => return Err("initialize result has a non-string protocolVersion".into()),
        };
        let object_or_empty = |key: &str| match obj.get(key) {
            Some(v @ serde_json::Value::Object(_)) => v.clone(),
            _ => serde_json::Value::Object(serde_json::Map::new()),
        };
        Ok(Self {
            capabilities: object_or_empty("capabilities"),
            server_info: object_or_empty("serverInfo"),
            instructions: obj.get("instructions").and_then(|v| v.as_str()).map(str::to_owned),
            protocol_version,
            raw,
        })
    }
}
