//! The hub end of the agent tunnel: `GET /agent/ws`.
//!
//! * The upgrade is authenticated first: Host and Origin as on `/mcp` (a
//!   browser page cannot open the tunnel), then `Authorization: Bearer ga_…`
//!   against the enrolled agents (401 otherwise), then the subprotocol
//!   [`SUBPROTOCOL`] (400 naming the supported one otherwise).
//! * The agent's first frame must be `hello` within [`HANDSHAKE_TIMEOUT`],
//!   naming the agent its token was enrolled for; the hub answers `welcome`.
//!   A second connection of the same agent replaces the first, which gets a
//!   non-fatal `replaced` error; the agent's servers pass to the new
//!   connection without leaving the catalog.
//! * Each of the agent's ready servers becomes a hub backend
//!   `{agent}__{server}` reached over [`TransportSpec::Channel`]: the
//!   upstream crate's channel transport speaks MCP with it, and this module
//!   carries each message as an `mcp` frame. Routing of progress, sampling,
//!   elicitation and cancellation, catalogs, policy and audit are those of
//!   any other backend. A server whose name is invalid or taken gets a
//!   non-fatal `name_conflict` error and is skipped.
//! * When the connection ends every channel closes, so calls in flight fail
//!   at once ("agent '…' disconnected", JSON-RPC -32010), and the agent's
//!   backends leave the hub (`list_changed` fans out).
//! * Liveness: a quiet link is pinged every `ping_interval`; a link with no
//!   frame for `dead_after` is dead. Revocation, replacement and hub
//!   shutdown end connections through [`AgentRegistry`].
//!
//! [`run_connection`] is generic over the socket (a `Sink` of [`WsOut`] and a
//! `Stream` of [`WsIn`]) so it can be driven by channels.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures::{Sink, SinkExt, Stream, StreamExt};
use gatehouse_proto::mcp::code;
use gatehouse_proto::tunnel::{self, Frame, MAX_FRAME_BYTES, SUBPROTOCOL, ServerInfo, error_code};
use gatehouse_proto::{ErrorObject, Message as RpcMessage, Response as RpcResponse};
use gatehouse_upstream::{ChannelPair, Connector, TransportSpec, UpstreamSpec};
use parking_lot::Mutex;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{AgentRegistry, AgentSlot, ConnHandle, EndReason};
use crate::mcp::Hub;
use crate::mcp::hub::Backend;
use crate::server::AppState;
use crate::store::{Agent, Store};

/// Time the agent has to say `hello` after the upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames waiting for the socket writer of one connection.
const WRITER_QUEUE: usize = 256;
/// Read and write buffer of each agent's WebSocket. Tunnels sit idle most of
/// the time, and tungstenite's 128 KiB defaults would cost every connected
/// agent a quarter of a megabyte; larger frames still pass (the buffers grow).
const WS_BUFFER_BYTES: usize = 8 * 1024;
/// Messages from the agent waiting for one server's channel reader.
const INCOMING_QUEUE: usize = 256;
/// Longest server name an agent may register.
pub const MAX_SERVER_NAME: usize = 32;
/// Time allowed for the `initialize` handshake with an agent's server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The route of the tunnel endpoint.
pub fn routes() -> Router<AppState> {
    Router::new().route(tunnel::PATH, get(upgrade))
}

fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message.into() } }))).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut r = refusal(StatusCode::UNAUTHORIZED, "unauthorized", message);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="gatehouse-agent""#));
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether the request offers the tunnel's subprotocol.
fn offers_subprotocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// `GET /agent/ws`: checks everything, then upgrades.
async fn upgrade(State(st): State<AppState>, headers: HeaderMap, ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if host.is_some_and(|h| !st.config.server.is_host_allowed(h)) {
        return refusal(StatusCode::FORBIDDEN, "forbidden", "Host header is not allowed");
    }
    // Agents send no Origin; a browser always does, and is refused unless the origin is allowed.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| st.config.server.is_origin_allowed(o));
        if !allowed {
            return refusal(StatusCode::FORBIDDEN, "forbidden", "Origin is not allowed");
        }
    }
    let Some(token) = bearer(&headers) else {
        return unauthorized("an agent token is required: Authorization: Bearer ga_…");
    };
    if !token.starts_with(crate::auth::keys::AGENT_TOKEN_PREFIX) {
        return unauthorized("not an agent token");
    }
    let hash = crate::auth::hash_key(st.auth.secret(), token);
    let agent = match st.store.agent_by_token_hash(&hash).await {
        Ok(Some(a)) if a.is_active() => a,
        Ok(Some(_)) => return unauthorized("this agent token was revoked"),
        Ok(None) => return unauthorized("unknown agent token"),
        Err(e) => {
            tracing::error!(error = %e, "agent token lookup failed");
            return refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "authentication is unavailable; try again");
        }
    };
    if !offers_subprotocol(&headers) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "unsupported_version",
            format!("this hub speaks the tunnel protocol {SUBPROTOCOL}: offer it in Sec-WebSocket-Protocol"),
        );
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return refusal(StatusCode::BAD_REQUEST, "bad_request", format!("not a WebSocket upgrade: {}", rejection.body_text()));
        }
    };
    let ctx = TunnelCtx::from_state(&st);
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "agent WebSocket upgrade failed"))
        .on_upgrade(move |socket| serve_socket(ctx, agent, socket))
}

async fn serve_socket(ctx: TunnelCtx, agent: Agent, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let sink = sink.with(|m: WsOut| async move {
        Ok::<_, axum::Error>(match m {
            WsOut::Text(t) => Message::Text(t.into()),
            WsOut::Close => Message::Close(None),
        })
    });
    let stream = stream.map(|m| match m {
        Ok(Message::Text(t)) => WsIn::Text(t.as_str().to_owned()),
        Ok(Message::Close(_)) | Err(_) => WsIn::Close,
        Ok(_) => WsIn::Other,
    });
    run_connection(ctx, agent, Box::pin(sink), Box::pin(stream)).await;
}

/// A WebSocket message from the agent, as the tunnel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsIn {
    Text(String),
    /// A close frame or a broken socket.
    Close,
    /// Binary, ping or pong: proof of life, nothing more.
    Other,
}

/// A WebSocket message to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    Text(String),
    Close,
}

/// Liveness timers of the hub's side.
#[derive(Debug, Clone, Copy)]
pub struct TunnelSettings {
    pub ping_interval: Duration,
    pub dead_after: Duration,
    pub handshake_timeout: Duration,
    /// Default per-request timeout of the agent's backends.
    pub request_timeout: Duration,
}

/// What a connection needs from the hub.
#[derive(Clone)]
pub struct TunnelCtx {
    pub hub: Arc<Hub>,
    pub registry: AgentRegistry,
    pub store: Store,
    pub settings: TunnelSettings,
}

impl TunnelCtx {
    /// The context of the hub in `st`.
    pub fn from_state(st: &AppState) -> Self {
        let a = &st.config.agents;
        Self {
            hub: st.hub.clone(),
            registry: st.agents.clone(),
            store: st.store.clone(),
            settings: TunnelSettings {
                ping_interval: Duration::from_secs(a.ping_interval_secs),
                dead_after: Duration::from_secs(a.dead_after_secs),
                handshake_timeout: HANDSHAKE_TIMEOUT,
                request_timeout: Duration::from_secs(st.config.mcp.request_timeout_secs),
            },
        }
    }
}

/// Whether `name` may name an agent's server: `[a-z0-9][a-z0-9_-]*`, at
/// most [`MAX_SERVER_NAME`] characters, without `__` (the namespace separator).
pub fn validate_server_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_SERVER_NAME
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
        && !name.contains("__");
    if ok { Ok(()) } else { Err(format!("use 1-{MAX_SERVER_NAME} of a-z 0-9 _ -, starting with a letter or digit, without `__`")) }
}

/// A server takes calls when it is ready (or ready with a partial catalog).
fn serving(info: &ServerInfo) -> bool {
    matches!(info.status.as_str(), "ready" | "degraded")
}

/// Where frames for the agent go, with a bound on how long a stalled socket may block.
async fn send<S>(sink: &mut S, frame: &Frame, limit: Duration) -> Result<(), String>
where
    S: Sink<WsOut> + Unpin,
    S::Error: std::fmt::Display,
{
    match tokio::time::timeout(limit, sink.send(WsOut::Text(frame.encode()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the agent did not take a frame for {limit:?}")),
    }
}

async fn first_text<R: Stream<Item = WsIn> + Unpin>(stream: &mut R) -> Option<String> {
    loop {
        match stream.next().await? {
            WsIn::Text(t) => return Some(t),
            WsIn::Close => return None,
            WsIn::Other => {}
        }
    }
}

/// Ends a connection that never got going: one fatal error frame, then close.
async fn refuse<S>(mut sink: S, code: &str, message: String, limit: Duration)
where
    S: Sink<WsOut> + Unpin,
    S::Error: std::fmt::Display,
{
    let _ = send(&mut sink, &Frame::Error { code: code.to_owned(), message, fatal: true }, limit).await;
    let _ = sink.send(WsOut::Close).await;
    let _ = sink.close().await;
}

/// Runs one authenticated tunnel connection of `agent` until it ends.
pub async fn run_connection<S, R>(ctx: TunnelCtx, agent: Agent, mut sink: S, mut stream: R)
where
    S: Sink<WsOut> + Unpin,
    S::Error: std::fmt::Display,
    R: Stream<Item = WsIn> + Unpin,
{
    let limit = ctx.settings.dead_after;
    let hello = match tokio::time::timeout(ctx.settings.handshake_timeout, first_text(&mut stream)).await {
        Err(_) => {
            let why = format!("no hello within {:?}", ctx.settings.handshake_timeout);
            return refuse(sink, error_code::BAD_HELLO, why, limit).await;
        }
        Ok(None) => return,
        Ok(Some(text)) => Frame::decode(&text),
    };
    let (name, version, servers) = match hello {
        Ok(Frame::Hello { agent, version, servers, .. }) => (agent, version, servers),
        Ok(other) => return refuse(sink, error_code::BAD_HELLO, format!("expected hello, got {}", other.kind()), limit).await,
        Err(e) => return refuse(sink, error_code::BAD_HELLO, format!("expected hello: {e}"), limit).await,
    };
    if name != agent.name {
        let shown: String = name.chars().take(64).collect();
        tracing::warn!(agent = %agent.name, claimed = %shown, "agent hello names another agent; refused");
        let why = format!("this token belongs to agent '{}', not '{shown}'", agent.name);
        return refuse(sink, error_code::UNAUTHORIZED, why, limit).await;
    }
    let (writer, mut outbox) = mpsc::channel(WRITER_QUEUE);
    let (slot, conn) = ctx.registry.connect(&agent.name, &agent.user_id, &agent.shared_with, writer);
    let welcome = Frame::Welcome {
        hub_version: env!("CARGO_PKG_VERSION").to_owned(),
        ping_interval_secs: ctx.settings.ping_interval.as_secs(),
        dead_after_secs: ctx.settings.dead_after.as_secs(),
    };
    let version = version.chars().take(64).collect::<String>();
    touch(&ctx.store, &agent.id, Some(version.clone()));
    tracing::info!(agent = %agent.name, version = %version, conn = conn.id, servers = servers.len(), "agent connected");
    let mut c = Connection { ctx: ctx.clone(), slot, conn, reported: BTreeSet::new() };
    let mut end = match send(&mut sink, &welcome, limit).await {
        Err(e) => format!("sending welcome failed: {e}"),
        Ok(()) => String::new(),
    };
    if end.is_empty() {
        end = c.serve(&mut sink, &mut stream, &mut outbox, servers).await;
    }
    let _ = sink.send(WsOut::Close).await;
    let _ = sink.close().await;
    drop(outbox);
    c.finish(&end);
    touch(&ctx.store, &agent.id, None);
}

fn touch(store: &Store, id: &str, version: Option<String>) {
    let store = store.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        if let Err(e) = store.touch_agent(&id, chrono::Utc::now(), version.as_deref()).await {
            tracing::warn!(error = %e, "could not record the agent's last contact");
        }
    });
}

struct Connection {
    ctx: TunnelCtx,
    slot: Arc<AgentSlot>,
    conn: ConnHandle,
    /// Server names already refused on this connection (reported once).
    reported: BTreeSet<String>,
}

impl Connection {
    /// The main loop; returns why the connection ended.
    async fn serve<S, R>(&mut self, sink: &mut S, stream: &mut R, outbox: &mut mpsc::Receiver<Frame>, servers: Vec<ServerInfo>) -> String
    where
        S: Sink<WsOut> + Unpin,
        S::Error: std::fmt::Display,
        R: Stream<Item = WsIn> + Unpin,
    {
        let TunnelSettings { ping_interval, dead_after, .. } = self.ctx.settings;
        for f in self.apply(servers) {
            if let Err(e) = send(sink, &f, dead_after).await {
                return e;
            }
        }
        let mut last_rx = Instant::now();
        let mut last_ping = Instant::now();
        let mut nonce = 0u64;
        let end_signal = self.conn.end.clone();
        loop {
            let ping_at = last_rx.max(last_ping) + ping_interval;
            let dead_at = last_rx + dead_after;
            let mut out: Vec<Frame> = Vec::new();
            tokio::select! {
                biased;
                () = end_signal.cancelled() => {
                    let why = *self.conn.why.lock();
                    let (frame, text) = match why {
                        Some(EndReason::Replaced) | None => (Frame::Error {
                            code: error_code::REPLACED.into(),
                            message: "another connection with this agent's token replaced this one".into(),
                            fatal: false,
                        }, "replaced by a newer connection"),
                        Some(EndReason::Revoked) => (Frame::Error {
                            code: error_code::REVOKED.into(),
                            message: "this agent's token was revoked".into(),
                            fatal: true,
                        }, "token revoked"),
                        Some(EndReason::Drain(ms)) => (Frame::Drain { reconnect_after_ms: ms }, "the hub is shutting down"),
                    };
                    let _ = send(sink, &frame, dead_after.min(Duration::from_secs(5))).await;
                    return text.to_owned();
                }
                msg = stream.next() => {
                    last_rx = Instant::now();
                    match msg {
                        None | Some(WsIn::Close) => return "the agent closed the connection".to_owned(),
                        Some(WsIn::Other) => {}
                        Some(WsIn::Text(text)) => match Frame::decode(&text) {
                            Ok(frame) => self.on_frame(frame, &mut out).await,
                            Err(e) => tracing::warn!(agent = %self.slot.name, error = %e, "ignoring a bad frame from the agent"),
                        },
                    }
                }
                Some(frame) = outbox.recv() => out.push(frame),
                () = tokio::time::sleep_until(dead_at) => return format!("no frame from the agent for {dead_after:?}; the link is dead"),
                () = tokio::time::sleep_until(ping_at) => {
                    nonce += 1;
                    last_ping = Instant::now();
                    out.push(Frame::Ping { nonce });
                }
            }
            for f in &out {
                if let Err(e) = send(sink, f, dead_after).await {
                    return format!("sending to the agent failed: {e}");
                }
            }
        }
    }

    async fn on_frame(&mut self, frame: Frame, out: &mut Vec<Frame>) {
        match frame {
            Frame::Mcp { server, message } => {
                let port = self.slot.servers.lock().get(&server).cloned();
                match port {
                    Some(p) if p.deliver(self.conn.id, message.get().to_owned()).await => {}
                    _ => {
                        // A request for a server that is not (or no longer) a backend
                        // is answered, so the agent's server does not wait for ever.
                        if let Ok(RpcMessage::Request(req)) = RpcMessage::parse(message.get()) {
                            let e =
                                ErrorObject::new(code::UPSTREAM_UNAVAILABLE, format!("the hub has no backend for server '{server}' now"));
                            out.push(Frame::mcp(server, &RpcMessage::Response(RpcResponse { id: Some(req.id), payload: Err(e) })));
                        }
                    }
                }
            }
            Frame::ServersChanged { servers } => out.extend(self.apply(servers)),
            Frame::Ping { nonce } => out.push(Frame::Pong { nonce }),
            Frame::Pong { .. } => {}
            Frame::Error { code, message, .. } => {
                tracing::warn!(agent = %self.slot.name, code = %code, message = %message, "the agent reported a problem");
            }
            other => tracing::debug!(agent = %self.slot.name, frame = other.kind(), "ignoring an unexpected frame"),
        }
    }

    fn conflict(&mut self, server: &str, why: &str, out: &mut Vec<Frame>) {
        let shown: String = server.chars().take(64).collect();
        if self.reported.insert(shown.clone()) {
            tracing::warn!(agent = %self.slot.name, server = %shown, "agent server refused: {why}");
            out.push(Frame::Error {
                code: error_code::NAME_CONFLICT.into(),
                message: format!("server '{shown}' was not added: {why}"),
                fatal: false,
            });
        }
    }

    /// Makes the hub's backends match the agent's servers; returns the
    /// error frames for the servers refused.
    fn apply(&mut self, infos: Vec<ServerInfo>) -> Vec<Frame> {
        let mut errors = Vec::new();
        let agent = self.slot.name.clone();
        let hub = self.ctx.hub.clone();
        // A hub backend named like the agent would expose `{agent}__{server}__{tool}` too.
        let shadowed = hub.backend(&agent).is_some_and(|b| b.agent.is_none());
        let mut wanted: BTreeMap<String, ServerInfo> = BTreeMap::new();
        for info in infos {
            let why = if let Err(why) = validate_server_name(&info.name) {
                Some(why)
            } else if wanted.contains_key(&info.name) {
                Some("the agent listed it twice".to_owned())
            } else if shadowed {
                Some(format!("the hub has a backend named '{agent}' whose tools would share these names"))
            } else {
                None
            };
            match why {
                Some(why) => self.conflict(&info.name, &why, &mut errors),
                None => {
                    wanted.insert(info.name.clone(), info);
                }
            }
        }
        let mut ports = self.slot.servers.lock();
        let gone: Vec<String> = ports.keys().filter(|n| !wanted.get(*n).is_some_and(serving)).cloned().collect();
        for name in gone {
            if let Some(p) = ports.remove(&name) {
                tracing::info!(agent = %agent, server = %name, "agent server left");
                p.retire(&hub, &self.ctx.registry, &self.slot);
            }
        }
        let mut refused = Vec::new();
        for (name, info) in wanted.into_iter().filter(|(_, i)| serving(i)) {
            if let Some(p) = ports.get(&name) {
                if p.update_info(info) {
                    p.request_refresh();
                }
                continue;
            }
            let backend: Arc<str> = Arc::from(format!("{agent}__{name}"));
            if !self.ctx.registry.bind_backend(&backend, &self.slot) {
                refused.push((name, format!("backend '{backend}' belongs to another agent")));
                continue;
            }
            let port = Arc::new(ServerPort::new(agent.clone(), name.clone(), Arc::downgrade(&self.slot), info));
            let spec = UpstreamSpec {
                name: backend.to_string(),
                transport: TransportSpec::Channel(port.clone()),
                request_timeout: self.ctx.settings.request_timeout,
                connect_timeout: CONNECT_TIMEOUT,
                protocol: gatehouse_upstream::ProtocolPreference::Auto,
            };
            match hub.add_agent_backend(spec, agent.clone()) {
                Ok(b) => {
                    tracing::info!(agent = %agent, server = %name, backend = %b.name, "agent server added");
                    *port.backend.lock() = Some(b);
                    ports.insert(name, port);
                }
                Err(existing) => {
                    if existing.agent.as_deref() != Some(&*agent) {
                        self.ctx.registry.unbind_backend(&backend, &self.slot);
                    }
                    refused.push((name, format!("a backend named '{backend}' exists already")));
                }
            }
        }
        drop(ports);
        for (name, why) in refused {
            self.conflict(&name, &why, &mut errors);
        }
        errors
    }

    /// After the loop: hand the servers over, or take them out of the hub.
    fn finish(&self, why: &str) {
        let id = self.conn.id;
        let (hub, registry, slot) = (&self.ctx.hub, &self.ctx.registry, &self.slot);
        let offline = registry.disconnect(slot, id, || {
            let ports: Vec<Arc<ServerPort>> = std::mem::take(&mut *slot.servers.lock()).into_values().collect();
            for p in ports {
                p.retire(hub, registry, slot);
            }
        });
        // The agent's calls in flight on this connection fail now, whoever holds the servers next.
        for p in slot.servers.lock().values() {
            p.close(id);
        }
        if offline {
            tracing::info!(agent = %slot.name, conn = id, "agent disconnected: {why}");
        } else {
            tracing::info!(agent = %slot.name, conn = id, "agent connection replaced: {why}");
        }
    }
}

/// One server of a connected agent, as the hub's upstream crate reaches it:
/// each [`Connector::connect`] opens channels bound to the agent's live
/// connection.
pub struct ServerPort {
    agent: Arc<str>,
    server: String,
    slot: Weak<AgentSlot>,
    info: Mutex<ServerInfo>,
    /// The channel of the current upstream connection, with the tunnel connection it is bound to.
    incoming: Mutex<Option<(u64, mpsc::Sender<String>)>>,
    backend: Mutex<Option<Arc<Backend>>>,
}

impl std::fmt::Debug for ServerPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPort").field("agent", &self.agent).field("server", &self.server).finish_non_exhaustive()
    }
}

impl ServerPort {
    fn new(agent: Arc<str>, server: String, slot: Weak<AgentSlot>, info: ServerInfo) -> Self {
        Self { agent, server, slot, info: Mutex::new(info), incoming: Mutex::new(None), backend: Mutex::new(None) }
    }

    /// Records the server's latest description; true when it changed.
    fn update_info(&self, info: ServerInfo) -> bool {
        let mut cur = self.info.lock();
        if *cur == info {
            return false;
        }
        *cur = info;
        true
    }

    fn request_refresh(&self) {
        if let Some(b) = &*self.backend.lock() {
            b.request_refresh();
        }
    }

    /// Hands one message from the agent to the upstream connection bound
    /// to tunnel connection `conn`; false when none is.
    async fn deliver(&self, conn: u64, text: String) -> bool {
        let tx = match &*self.incoming.lock() {
            Some((id, tx)) if *id == conn => tx.clone(),
            _ => return false,
        };
        tx.send(text).await.is_ok()
    }

    /// Closes the channel bound to tunnel connection `conn`: the calls in flight on it fail at once.
    fn close(&self, conn: u64) {
        let mut incoming = self.incoming.lock();
        if incoming.as_ref().is_some_and(|(id, _)| *id == conn) {
            *incoming = None;
        }
    }

    /// Takes the server out of the hub.
    fn retire(&self, hub: &Hub, registry: &AgentRegistry, slot: &Arc<AgentSlot>) {
        *self.incoming.lock() = None;
        if let Some(b) = self.backend.lock().take() {
            hub.detach_backend(&b);
            registry.unbind_backend(&b.name, slot);
        }
    }
}

impl Connector for ServerPort {
    fn connect(&self) -> Result<ChannelPair, String> {
        let conn = self.slot.upgrade().and_then(|s| s.current()).ok_or_else(|| format!("agent '{}' is not connected", self.agent))?;
        let (in_tx, in_rx) = mpsc::channel(INCOMING_QUEUE);
        *self.incoming.lock() = Some((conn.id, in_tx));
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let server = self.server.clone();
        let writer = conn.writer;
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                let message = match RawValue::from_string(text) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(server = %server, error = %e, "dropping a message that is not JSON");
                        continue;
                    }
                };
                if writer.send(Frame::Mcp { server: server.clone(), message }).await.is_err() {
                    break;
                }
            }
        });
        Ok(ChannelPair { outgoing: out_tx, incoming: in_rx, close_reason: format!("agent '{}' disconnected", self.agent) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for ok in ["fs", "memory", "a", "0x", "my-server_2", &"a".repeat(32)] {
            validate_server_name(ok).unwrap();
        }
        for bad in ["", "Fs", "_x", "-x", "a__b", "a b", "é", &"a".repeat(33), "a/b"] {
            assert!(validate_server_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subprotocol_offers_are_read_from_every_header_and_list() {
        let mut h = HeaderMap::new();
        assert!(!offers_subprotocol(&h));
        h.append(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("other.v9"));
        assert!(!offers_subprotocol(&h));
        h.append(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(&format!("x, {SUBPROTOCOL}")).unwrap());
        assert!(offers_subprotocol(&h));
    }
}
