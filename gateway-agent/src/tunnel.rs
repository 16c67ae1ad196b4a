//! The tunnel client: one outbound WebSocket to the hub carrying every local
//! server's MCP traffic (frames in [`gatehouse_proto::tunnel`]).
//!
//! * [`WsConnector`] dials `{hub}/agent/ws` (`wss://` with rustls and the
//!   webpki roots; plain `ws://` only to loopback hosts unless `insecure`)
//!   with `Authorization: Bearer <token>` and the subprotocol
//!   [`SUBPROTOCOL`]. An HTTP 401/403 at the upgrade is final.
//! * [`run_session`] drives one connection over any `Sink`/`Stream` of
//!   WebSocket messages (tests use channels): `hello` → `welcome`, then it
//!   multiplexes. Hub requests go to the named server with the hub's id and
//!   are answered with it; `notifications/cancelled` cancels the matching
//!   local call; the servers' notifications and server→client requests go to
//!   the hub, the latter under agent-numbered ids whose answers come back as
//!   responses. Quiet links are pinged; a link with no frame for `dead_after`
//!   is dead. When the session ends every local call it started is cancelled
//!   and every server→client request it carried is failed.
//! * [`run`] reconnects forever with full-jitter exponential backoff (reset
//!   after 30 s connected), at once on [`Control::Reconnect`], after the
//!   hub's pause on `drain`, and stops for good on a refused token or a
//!   fatal error frame ([`TunnelExit`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Sink, SinkExt, Stream, StreamExt};
use gatehouse_proto::mcp::{code, method};
use gatehouse_proto::tunnel::{self, Frame, SUBPROTOCOL};
use gatehouse_proto::{ErrorObject, Message as RpcMessage, Notification, Request, RequestId, Response};
use gatehouse_upstream::{Backoff, CallError, CallOptions};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::config::{Token, is_loopback_host};
use crate::servers::{ServerEvent, ServerManager};
use crate::state::{AgentState, CallRecord, ConnState, now_ms};

/// Liveness timers: ping when nothing arrived for `ping_interval`, give up
/// after `dead_after` without any frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub ping_interval: Duration,
    pub dead_after: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self { ping_interval: tunnel::PING_INTERVAL, dead_after: tunnel::DEAD_AFTER }
    }
}

/// Reconnect delays (full jitter, doubling from `base` to `cap`, reset after `reset_after` connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    pub base: Duration,
    pub cap: Duration,
    pub reset_after: Duration,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        Self { base: Backoff::BASE, cap: Backoff::CAP, reset_after: Backoff::RESET_AFTER }
    }
}

impl BackoffSettings {
    /// A fresh backoff sequence with these bounds.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.base, self.cap, self.reset_after)
    }
}

/// What the session needs besides the socket.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The agent's name, sent in `hello`.
    pub agent: String,
    /// Used until `welcome` says otherwise (a zero in `welcome` keeps these).
    pub liveness: Liveness,
    /// Time allowed for `welcome` after `hello`.
    pub handshake_timeout: Duration,
    /// How long a finished call waits for its server's earlier notifications to go out first.
    pub flush_timeout: Duration,
}

impl SessionSettings {
    /// Defaults for agent `agent`.
    pub fn new(agent: &str) -> Self {
        Self {
            agent: agent.to_owned(),
            liveness: Liveness::default(),
            handshake_timeout: Duration::from_secs(20),
            flush_timeout: Duration::from_secs(5),
        }
    }
}

/// Commands to a running tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Drop the connection and dial again at once (SIGHUP, `r` in the dashboard, the control socket).
    Reconnect,
    /// Close the connection and stop.
    Shutdown,
}

/// Why the tunnel stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelExit {
    /// Asked to stop.
    Shutdown,
    /// The hub refused the token; retrying cannot help.
    TokenRefused(String),
    /// Another final refusal (version, name conflict, insecure URL).
    Fatal { code: String, message: String },
}

impl TunnelExit {
    /// The process exit code for this outcome ([`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Shutdown => 0,
            Self::TokenRefused(_) => crate::exit::TOKEN_REFUSED,
            Self::Fatal { .. } => crate::exit::FATAL,
        }
    }

    /// A one-line explanation for the user.
    pub fn message(&self) -> String {
        match self {
            Self::Shutdown => "stopped".to_owned(),
            Self::TokenRefused(why) => format!(
                "the hub refused this agent's token ({why}); enroll a new one with `gateway-server agents enroll` and run `gateway-agent setup`"
            ),
            Self::Fatal { code, message } => format!("the hub ended the connection for good ({code}): {message}"),
        }
    }
}

/// Why dialing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("the hub refused the token (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("the hub does not speak tunnel protocol {SUBPROTOCOL}: {0}")]
    Version(String),
    #[error("{0}")]
    Insecure(String),
    #[error("{0}")]
    Transport(String),
}

/// The write half of a tunnel connection.
pub type BoxSink = Pin<Box<dyn Sink<Message, Error = tungstenite::Error> + Send>>;
/// The read half of a tunnel connection.
pub type BoxStream = Pin<Box<dyn Stream<Item = Result<Message, tungstenite::Error>> + Send>>;

/// Something that opens tunnel connections.
pub trait Connector: Send + Sync {
    /// Dials once.
    fn connect(&self) -> BoxFuture<'_, Result<(BoxSink, BoxStream), ConnectError>>;
}

/// `{hub}/agent/ws` with the scheme turned into `ws`/`wss` (a path prefix on the hub URL is kept).
pub fn tunnel_url(hub: &url::Url) -> Result<url::Url, ConnectError> {
    let mut url = hub.clone();
    let scheme = match hub.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        other => return Err(ConnectError::Insecure(format!("unsupported hub URL scheme {other:?}"))),
    };
    url.set_scheme(scheme).map_err(|()| ConnectError::Insecure("cannot build the tunnel URL".into()))?;
    let path = format!("{}{}", hub.path().trim_end_matches('/'), tunnel::PATH);
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Dials the hub over a real WebSocket.
pub struct WsConnector {
    url: url::Url,
    token: Token,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnector").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

/// rustls with the ring provider and the webpki root certificates.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Transport(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl WsConnector {
    /// A connector for `hub` (its base URL). Plain `ws://` to anything but a
    /// loopback host is refused unless `insecure`: the bearer token would
    /// cross the network in clear text.
    pub fn new(hub: &url::Url, token: Token, insecure: bool) -> Result<Self, ConnectError> {
        let url = tunnel_url(hub)?;
        if url.scheme() == "ws" && !insecure && !is_loopback_host(&url) {
            return Err(ConnectError::Insecure(format!(
                "refusing to send the token over plain http to {}; use https, or pass --insecure if you really mean it",
                url.host_str().unwrap_or("?")
            )));
        }
        Ok(Self { url, token, tls: tls_config()?, timeout: Duration::from_secs(20) })
    }

    /// The URL this connector dials.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    async fn dial(&self) -> Result<(BoxSink, BoxStream), ConnectError> {
        use tungstenite::client::IntoClientRequest;
        use tungstenite::http::header::{AUTHORIZATION, HeaderValue, SEC_WEBSOCKET_PROTOCOL, USER_AGENT};
        let mut req = self.url.as_str().into_client_request().map_err(|e| ConnectError::Transport(e.to_string()))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.token.expose()))
            .map_err(|_| ConnectError::Transport("the token cannot be sent in a header".into()))?;
        auth.set_sensitive(true);
        let headers = req.headers_mut();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
        if let Ok(ua) = HeaderValue::from_str(&format!("gateway-agent/{}", crate::VERSION)) {
            headers.insert(USER_AGENT, ua);
        }
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(tunnel::MAX_FRAME_BYTES))
            .max_frame_size(Some(tunnel::MAX_FRAME_BYTES));
        let connector = tokio_tungstenite::Connector::Rustls(Arc::clone(&self.tls));
        let dial = tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, Some(connector));
        let (ws, _resp) = match tokio::time::timeout(self.timeout, dial).await {
            Err(_) => return Err(ConnectError::Transport(format!("no answer from {} within {:?}", self.url, self.timeout))),
            Ok(r) => r.map_err(classify)?,
        };
        let (sink, stream) = ws.split();
        Ok((Box::pin(sink), Box::pin(stream)))
    }
}

fn classify(e: tungstenite::Error) -> ConnectError {
    match e {
        tungstenite::Error::Http(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
            ConnectError::Unauthorized { status: resp.status().as_u16() }
        }
        tungstenite::Error::Http(resp) => {
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let excerpt: String = body.chars().take(200).collect();
            ConnectError::Transport(format!("the hub answered HTTP {} instead of upgrading: {}", resp.status(), excerpt.trim()))
        }
        tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(e)) => {
            ConnectError::Version(e.to_string())
        }
        other => ConnectError::Transport(other.to_string()),
    }
}

impl Connector for WsConnector {
    fn connect(&self) -> BoxFuture<'_, Result<(BoxSink, BoxStream), ConnectError>> {
        Box::pin(self.dial())
    }
}

/// Dials once, says `hello` without servers and waits for `welcome`:
/// checks the URL, the token and the protocol version without serving
/// anything (`setup` and `doctor`). Returns the hub's version.
pub async fn probe(connector: &dyn Connector, agent: &str, timeout: Duration) -> Result<String, TunnelExit> {
    let fatal = |code: &str, message: String| TunnelExit::Fatal { code: code.to_owned(), message };
    let (mut sink, mut stream) = match tokio::time::timeout(timeout, connector.connect()).await {
        Err(_) => return Err(fatal("timeout", format!("no answer within {timeout:?}"))),
        Ok(Err(ConnectError::Unauthorized { status })) => return Err(TunnelExit::TokenRefused(format!("HTTP {status}"))),
        Ok(Err(e)) => return Err(fatal("connect", e.to_string())),
        Ok(Ok(pair)) => pair,
    };
    let hello =
        Frame::Hello { agent: agent.to_owned(), version: crate::VERSION.to_owned(), platform: crate::platform(), servers: Vec::new() };
    if let Err(e) = sink.send(text(&hello)).await {
        return Err(fatal("connect", e.to_string()));
    }
    let first = tokio::time::timeout(timeout, next_frame(&mut stream)).await;
    let _ = sink.send(Message::Close(None)).await;
    match first {
        Err(_) => Err(fatal("handshake", format!("no welcome within {timeout:?}"))),
        Ok(Ok(Frame::Welcome { hub_version, .. })) => Ok(hub_version),
        Ok(Ok(Frame::Error { code, message, fatal: f })) => Err(match error_end(code, message, f) {
            SessionEnd::TokenRefused(why) => TunnelExit::TokenRefused(why),
            SessionEnd::Fatal { code, message } => TunnelExit::Fatal { code, message },
            other => fatal("handshake", format!("{other:?}")),
        }),
        Ok(Ok(other)) => Err(fatal("handshake", format!("expected welcome, got {}", other.kind()))),
        Ok(Err(end)) => Err(fatal("handshake", format!("{end:?}"))),
    }
}

/// How one session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The socket closed or failed.
    Closed(String),
    /// No frame for `dead_after`.
    Dead,
    /// The hub asked us to come back after a pause.
    Drain(Duration),
    /// The hub refused the token in an error frame.
    TokenRefused(String),
    /// A fatal error frame.
    Fatal { code: String, message: String },
    /// Asked to reconnect.
    Reconnect,
    /// Asked to stop.
    Shutdown,
    /// `welcome` did not come.
    HandshakeFailed(String),
}

/// The outcome of [`run_session`].
#[derive(Debug)]
pub struct SessionOutcome {
    pub end: SessionEnd,
    /// When `welcome` arrived, if it did.
    pub welcomed_at: Option<Instant>,
}

/// What a session shares with the rest of the agent.
pub struct SessionCtx<'a> {
    pub settings: &'a SessionSettings,
    pub servers: &'a ServerManager,
    pub events: &'a mut mpsc::Receiver<ServerEvent>,
    pub control: &'a mut mpsc::Receiver<Control>,
    pub state: &'a AgentState,
}

enum Outgoing {
    /// A finished hub call: forget its cancel token and send its answer (if any).
    Done { key: (String, RequestId), frame: Option<Frame> },
}

struct Pending {
    server: String,
    server_id: RequestId,
    reply: oneshot::Sender<Result<Box<RawValue>, ErrorObject>>,
}

fn text(frame: &Frame) -> Message {
    Message::text(frame.encode())
}

/// Runs one connection until it ends. Generic over the socket so tests can
/// drive it with channels.
pub async fn run_session<S, R, SE, RE>(mut sink: S, mut stream: R, ctx: SessionCtx<'_>) -> SessionOutcome
where
    S: Sink<Message, Error = SE> + Unpin,
    SE: std::fmt::Display,
    R: Stream<Item = Result<Message, RE>> + Unpin,
    RE: std::fmt::Display,
{
    let SessionCtx { settings, servers, events, control, state } = ctx;
    let mut infos = servers.watch_infos();
    let hello = Frame::Hello {
        agent: settings.agent.clone(),
        version: crate::VERSION.to_owned(),
        platform: crate::platform(),
        servers: infos.borrow_and_update().clone(),
    };
    if let Err(e) = sink.send(text(&hello)).await {
        return SessionOutcome { end: SessionEnd::Closed(format!("sending hello failed: {e}")), welcomed_at: None };
    }

    // Handshake: the first frame must be `welcome` (or an error saying why not).
    let first = tokio::select! {
        biased;
        c = control.recv() => match c {
            Some(Control::Shutdown) => return outcome(SessionEnd::Shutdown, None),
            Some(Control::Reconnect) => return outcome(SessionEnd::Reconnect, None),
            None => return outcome(SessionEnd::Shutdown, None),
        },
        r = tokio::time::timeout(settings.handshake_timeout, next_frame(&mut stream)) => r,
    };
    let liveness = match first {
        Err(_) => return outcome(SessionEnd::HandshakeFailed(format!("no welcome within {:?}", settings.handshake_timeout)), None),
        Ok(Err(end)) => return outcome(end, None),
        Ok(Ok(Frame::Welcome { hub_version, ping_interval_secs, dead_after_secs })) => {
            tracing::info!(hub_version = %hub_version, "connected to the hub");
            Liveness {
                ping_interval: if ping_interval_secs > 0 {
                    Duration::from_secs(ping_interval_secs)
                } else {
                    settings.liveness.ping_interval
                },
                dead_after: if dead_after_secs > 0 { Duration::from_secs(dead_after_secs) } else { settings.liveness.dead_after },
            }
        }
        Ok(Ok(Frame::Error { code, message, fatal })) => return outcome(error_end(code, message, fatal), None),
        Ok(Ok(other)) => return outcome(SessionEnd::HandshakeFailed(format!("expected welcome, got {}", other.kind())), None),
    };
    let welcomed_at = Instant::now();
    state.update_connection(|c| {
        c.state = ConnState::Connected;
        c.connected_since_ms = Some(now_ms());
        c.last_error = None;
        c.connections += 1;
        c.reconnects = c.connections - 1;
    });

    let mut session = Session {
        servers,
        state,
        flush_timeout: settings.flush_timeout,
        inflight: HashMap::new(),
        pending: HashMap::new(),
        next_id: 1,
        out: mpsc::unbounded_channel(),
    };
    let mut last_rx = Instant::now();
    let mut last_ping = Instant::now();
    let mut ping_out: Option<(u64, Instant)> = None;
    let mut nonce: u64 = 0;

    let end = loop {
        let ping_at = last_rx.max(last_ping) + liveness.ping_interval;
        let dead_at = last_rx + liveness.dead_after;
        let mut to_send: Vec<Frame> = Vec::new();
        tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Reconnect) => break SessionEnd::Reconnect,
                Some(Control::Shutdown) | None => break SessionEnd::Shutdown,
            },
            msg = stream.next() => {
                let Some(msg) = msg else { break SessionEnd::Closed("the hub closed the connection".into()) };
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => break SessionEnd::Closed(e.to_string()),
                };
                last_rx = Instant::now();
                let frame = match msg {
                    Message::Text(t) => match Frame::decode(t.as_str()) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!("ignoring a bad frame from the hub: {e}");
                            continue;
                        }
                    },
                    Message::Close(reason) => {
                        break SessionEnd::Closed(reason.map_or_else(|| "the hub closed the connection".into(), |r| format!("the hub closed the connection: {} {}", u16::from(r.code), r.reason)));
                    }
                    // WebSocket-level pings are answered by tungstenite; binary frames are not part of the protocol.
                    _ => continue,
                };
                match frame {
                    Frame::Mcp { server, message } => session.on_hub_message(server, &message, &mut to_send),
                    Frame::Ping { nonce } => to_send.push(Frame::Pong { nonce }),
                    Frame::Pong { nonce: n } => {
                        if let Some((want, sent)) = ping_out
                            && want == n
                        {
                            let rtt = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
                            state.update_connection(|c| c.rtt_ms = Some(rtt));
                            ping_out = None;
                        }
                    }
                    Frame::Drain { reconnect_after_ms } => break SessionEnd::Drain(Duration::from_millis(reconnect_after_ms)),
                    Frame::Error { code, message, fatal } => {
                        let end = error_end(code, message, fatal);
                        if let SessionEnd::Closed(why) = &end {
                            tracing::warn!("the hub reported a problem: {why}");
                        } else {
                            break end;
                        }
                    }
                    other => tracing::debug!(frame = other.kind(), "ignoring an unexpected frame"),
                }
            }
            Some(out) = session.out.1.recv() => match out {
                Outgoing::Done { key, frame } => {
                    session.inflight.remove(&key);
                    to_send.extend(frame);
                }
            },
            Some(ev) = events.recv() => session.on_server_event(ev, &mut to_send),
            Ok(()) = infos.changed() => {
                to_send.push(Frame::ServersChanged { servers: infos.borrow_and_update().clone() });
            }
            () = tokio::time::sleep_until(dead_at) => break SessionEnd::Dead,
            () = tokio::time::sleep_until(ping_at) => {
                nonce += 1;
                last_ping = Instant::now();
                ping_out = Some((nonce, last_ping));
                to_send.push(Frame::Ping { nonce });
            }
        }
        let mut failed = None;
        for f in &to_send {
            if let Err(e) = sink.send(text(f)).await {
                failed = Some(e.to_string());
                break;
            }
        }
        if let Some(e) = failed {
            break SessionEnd::Closed(format!("sending to the hub failed: {e}"));
        }
    };
    session.abandon();
    if matches!(end, SessionEnd::Shutdown) {
        let _ = sink.send(Message::Close(None)).await;
    }
    let _ = sink.close().await;
    outcome(end, Some(welcomed_at))
}

fn outcome(end: SessionEnd, welcomed_at: Option<Instant>) -> SessionOutcome {
    SessionOutcome { end, welcomed_at }
}

fn error_end(code: String, message: String, fatal: bool) -> SessionEnd {
    use tunnel::error_code::{REVOKED, UNAUTHORIZED};
    match (fatal, code.as_str()) {
        (_, UNAUTHORIZED | REVOKED) => SessionEnd::TokenRefused(format!("{code}: {message}")),
        (true, _) => SessionEnd::Fatal { code, message },
        (false, _) => SessionEnd::Closed(format!("{code}: {message}")),
    }
}

/// Reads frames until one decodes (skipping what is not a text frame).
async fn next_frame<R, RE>(stream: &mut R) -> Result<Frame, SessionEnd>
where
    R: Stream<Item = Result<Message, RE>> + Unpin,
    RE: std::fmt::Display,
{
    loop {
        match stream.next().await {
            None => return Err(SessionEnd::Closed("the hub closed the connection during the handshake".into())),
            Some(Err(e)) => return Err(SessionEnd::Closed(e.to_string())),
            Some(Ok(Message::Text(t))) => {
                return Frame::decode(t.as_str()).map_err(|e| SessionEnd::HandshakeFailed(format!("bad frame from the hub: {e}")));
            }
            Some(Ok(Message::Close(_))) => return Err(SessionEnd::Closed("the hub closed the connection during the handshake".into())),
            Some(Ok(_)) => {}
        }
    }
}

struct Session<'a> {
    servers: &'a ServerManager,
    state: &'a AgentState,
    flush_timeout: Duration,
    /// Hub calls running on local servers, by (server, hub id).
    inflight: HashMap<(String, RequestId), CancellationToken>,
    /// Server→client requests sent to the hub, by agent id.
    pending: HashMap<i64, Pending>,
    next_id: i64,
    out: (mpsc::UnboundedSender<Outgoing>, mpsc::UnboundedReceiver<Outgoing>),
}

fn reply_frame(server: &str, id: RequestId, payload: Result<Box<RawValue>, ErrorObject>) -> Frame {
    Frame::mcp(server, &RpcMessage::Response(Response { id: Some(id), payload }))
}

/// The target of a call, for the dashboard: `params.name` or `params.uri`.
fn call_target(params: Option<&RawValue>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct P {
        name: Option<String>,
        uri: Option<String>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    p.name.or(p.uri)
}

impl Session<'_> {
    /// One MCP message from the hub for `server`.
    fn on_hub_message(&mut self, server: String, raw: &RawValue, to_send: &mut Vec<Frame>) {
        let msg = match RpcMessage::parse(raw.get()) {
            Ok(m) => m,
            Err((id, e)) => {
                tracing::warn!(server = %server, "bad MCP message from the hub: {}", e.message);
                if let Some(id) = id {
                    to_send.push(reply_frame(&server, id, Err(e)));
                }
                return;
            }
        };
        match msg {
            RpcMessage::Request(req) => self.hub_request(server, req, to_send),
            RpcMessage::Notification(n) => self.hub_notification(&server, n),
            RpcMessage::Response(resp) => self.hub_response(&server, resp),
        }
    }

    fn hub_request(&mut self, server: String, req: Request, to_send: &mut Vec<Frame>) {
        let Some(up) = self.servers.upstream(&server) else {
            let e = ErrorObject::new(code::UPSTREAM_UNAVAILABLE, format!("agent has no local server named '{server}'"))
                .with_data(serde_json::json!({ "backend": server, "reason": "unknown_server" }));
            to_send.push(reply_frame(&server, req.id, Err(e)));
            return;
        };
        match req.method.as_str() {
            method::PING => {
                to_send.push(reply_frame(&server, req.id, Ok(gatehouse_proto::jsonrpc::to_raw(&serde_json::json!({})))));
                return;
            }
            // The agent initialized the server itself; the hub gets that handshake's result.
            method::INITIALIZE => {
                let payload = match up.status().init {
                    Some(init) => Ok(init.raw.clone()),
                    None => Err(CallError::Unavailable("the server is not running".into()).to_error_object(&server)),
                };
                to_send.push(reply_frame(&server, req.id, payload));
                return;
            }
            _ => {}
        }
        let key = (server.clone(), req.id.clone());
        let cancel = CancellationToken::new();
        if let Some(old) = self.inflight.insert(key.clone(), cancel.clone()) {
            // A reused id would orphan the first call's cancel token; cancel it instead of leaking it.
            old.cancel();
        }
        let out = self.out.0.clone();
        let state = self.state.clone();
        let flush = self.flush_timeout;
        tokio::spawn(async move {
            let started = Instant::now();
            let at_ms = now_ms();
            let target = call_target(req.params.as_deref());
            let before = up.events_emitted();
            let result = up.request(&req.method, req.params, CallOptions { cancel: Some(cancel), ..CallOptions::default() }).await;
            if up.events_emitted() != before {
                // Progress and logging the server sent before its answer go out first.
                up.flush_events(flush).await;
            }
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            state.record_call(CallRecord {
                at_ms,
                server: server.clone(),
                method: req.method.clone(),
                target,
                duration_ms,
                ok: result.is_ok(),
                error: result.as_ref().err().map(ToString::to_string),
            });
            // A cancelled request gets no answer (MCP: the sender has already given up on it).
            let frame = match result {
                Err(CallError::Cancelled) => None,
                other => Some(reply_frame(&server, req.id, other.map_err(|e| e.to_error_object(&server)))),
            };
            let _ = out.send(Outgoing::Done { key, frame });
        });
    }

    fn hub_notification(&mut self, server: &str, n: Notification) {
        match n.method.as_str() {
            method::CANCELLED => {
                #[derive(serde::Deserialize)]
                struct P {
                    #[serde(rename = "requestId")]
                    request_id: RequestId,
                }
                match n.params_as::<P>() {
                    Ok(p) => {
                        if let Some(token) = self.inflight.get(&(server.to_owned(), p.request_id.clone())) {
                            tracing::debug!(server = %server, id = %p.request_id, "the hub cancelled a call");
                            token.cancel();
                        }
                    }
                    Err(e) => tracing::debug!("ignoring a malformed cancellation: {}", e.message),
                }
            }
            // The agent completed the handshake with its servers itself.
            method::INITIALIZED => {}
            _ => {
                let Some(up) = self.servers.upstream(server) else { return };
                let server = server.to_owned();
                tokio::spawn(async move {
                    if let Err(e) = up.notify(&n.method, n.params).await {
                        tracing::debug!(server = %server, method = %n.method, "notification not delivered: {e}");
                    }
                });
            }
        }
    }

    fn hub_response(&mut self, server: &str, resp: Response) {
        let Some(RequestId::Number(id)) = resp.id else {
            tracing::debug!(server = %server, "ignoring a response with an id the agent never used");
            return;
        };
        match self.pending.remove(&id) {
            Some(p) if p.server == server => {
                let _ = p.reply.send(resp.payload);
            }
            Some(p) => {
                tracing::warn!(server = %server, "the hub answered request {id} for the wrong server");
                self.pending.insert(id, p);
            }
            None => tracing::debug!(server = %server, id, "ignoring an answer to an unknown or finished request"),
        }
    }

    /// Something a local server sent on its own.
    fn on_server_event(&mut self, ev: ServerEvent, to_send: &mut Vec<Frame>) {
        match ev {
            ServerEvent::Notification { server, method, mut params } => {
                if method == method::CANCELLED {
                    // The server gave up on one of its own requests: name it by the id the hub knows.
                    params = self.rewrite_cancel(&server, params);
                }
                let msg = RpcMessage::Notification(Notification { method, params });
                to_send.push(Frame::mcp(server, &msg));
            }
            ServerEvent::Request { server, request, reply } => {
                let id = self.next_id;
                self.next_id += 1;
                let msg = RpcMessage::Request(Request { id: RequestId::Number(id), method: request.method, params: request.params });
                to_send.push(Frame::mcp(server.clone(), &msg));
                self.pending.insert(id, Pending { server, server_id: request.id, reply });
            }
            ServerEvent::Barrier(ack) => {
                let _ = ack.send(());
            }
        }
    }

    fn rewrite_cancel(&mut self, server: &str, params: Option<Box<RawValue>>) -> Option<Box<RawValue>> {
        let mut value: serde_json::Value = params.as_ref().and_then(|p| serde_json::from_str(p.get()).ok())?;
        let server_id: RequestId = serde_json::from_value(value.get("requestId")?.clone()).ok()?;
        let agent_id = self.pending.iter().find(|(_, p)| p.server == server && p.server_id == server_id).map(|(id, _)| *id)?;
        self.pending.remove(&agent_id);
        value["requestId"] = serde_json::json!(agent_id);
        Some(gatehouse_proto::jsonrpc::to_raw(&value))
    }

    /// The connection is gone: stop the local work it started and fail what it carried.
    fn abandon(&mut self) {
        for (_, token) in self.inflight.drain() {
            token.cancel();
        }
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(ErrorObject::new(code::UPSTREAM_UNAVAILABLE, "the connection to the hub was lost")));
        }
    }
}

/// Everything [`run`] needs.
pub struct RunCtx<'a> {
    pub settings: SessionSettings,
    pub backoff: BackoffSettings,
    pub servers: &'a ServerManager,
    pub events: &'a mut mpsc::Receiver<ServerEvent>,
    pub control: &'a mut mpsc::Receiver<Control>,
    pub state: &'a AgentState,
}

/// Keeps the tunnel up until told to stop or refused for good.
pub async fn run(connector: &dyn Connector, ctx: RunCtx<'_>) -> TunnelExit {
    let RunCtx { settings, backoff, servers, events, control, state } = ctx;
    let mut backoff = backoff.backoff();
    loop {
        state.update_connection(|c| c.state = ConnState::Connecting);
        let dialed = tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Reconnect) => continue,
                Some(Control::Shutdown) | None => return stopped(state),
            },
            r = connector.connect() => r,
        };
        let delay = match dialed {
            Err(ConnectError::Unauthorized { status }) => return fail(state, TunnelExit::TokenRefused(format!("HTTP {status}"))),
            Err(ConnectError::Version(why)) => {
                return fail(
                    state,
                    TunnelExit::Fatal { code: "version".into(), message: format!("the hub does not speak {SUBPROTOCOL}: {why}") },
                );
            }
            Err(ConnectError::Insecure(why)) => return fail(state, TunnelExit::Fatal { code: "insecure".into(), message: why }),
            Err(ConnectError::Transport(why)) => {
                tracing::warn!("cannot reach the hub: {why}");
                state.update_connection(|c| c.last_error = Some(why));
                backoff.next_delay()
            }
            Ok((sink, stream)) => {
                let session = SessionCtx { settings: &settings, servers, events: &mut *events, control: &mut *control, state };
                let out = run_session(sink, stream, session).await;
                if let Some(at) = out.welcomed_at {
                    backoff.connected_for(at.elapsed());
                }
                state.update_connection(|c| {
                    c.connected_since_ms = None;
                    c.rtt_ms = None;
                });
                match out.end {
                    SessionEnd::Shutdown => return stopped(state),
                    SessionEnd::TokenRefused(why) => return fail(state, TunnelExit::TokenRefused(why)),
                    SessionEnd::Fatal { code, message } => return fail(state, TunnelExit::Fatal { code, message }),
                    SessionEnd::Reconnect => {
                        tracing::info!("reconnecting now");
                        continue;
                    }
                    SessionEnd::Drain(pause) => {
                        tracing::info!("the hub is draining; reconnecting in {} ms", pause.as_millis());
                        // A hub asking for longer than the backoff cap would strand us; cap it the same way.
                        pause.min(Backoff::CAP)
                    }
                    end => {
                        let why = match end {
                            SessionEnd::Dead => "no frame from the hub for too long; the connection is dead".to_owned(),
                            SessionEnd::Closed(w) | SessionEnd::HandshakeFailed(w) => w,
                            _ => String::new(),
                        };
                        tracing::warn!("tunnel down: {why}");
                        state.update_connection(|c| c.last_error = Some(why));
                        backoff.next_delay()
                    }
                }
            }
        };
        state.update_connection(|c| c.state = ConnState::Backoff { retry_at_ms: now_ms() + u64::try_from(delay.as_millis()).unwrap_or(0) });
        tracing::debug!(delay_ms = delay.as_millis(), "waiting before the next attempt");
        if !wait(delay, events, control).await {
            return stopped(state);
        }
    }
}

fn stopped(state: &AgentState) -> TunnelExit {
    state.update_connection(|c| c.state = ConnState::Stopped);
    TunnelExit::Shutdown
}

fn fail(state: &AgentState, exit: TunnelExit) -> TunnelExit {
    let msg = exit.message();
    tracing::error!("{msg}");
    state.update_connection(|c| {
        c.state = ConnState::Failed { reason: msg.clone() };
        c.last_error = Some(msg);
    });
    exit
}

/// Sleeps `delay` while no hub is there to take the servers' traffic: their
/// requests fail at once instead of waiting, barriers are acknowledged.
/// Returns false when asked to stop; ends early when asked to reconnect.
async fn wait(delay: Duration, events: &mut mpsc::Receiver<ServerEvent>, control: &mut mpsc::Receiver<Control>) -> bool {
    let until = Instant::now() + delay;
    loop {
        tokio::select! {
            biased;
            c = control.recv() => return matches!(c, Some(Control::Reconnect)),
            Some(ev) = events.recv() => discard(ev),
            () = tokio::time::sleep_until(until) => return true,
        }
    }
}

fn discard(ev: ServerEvent) {
    match ev {
        ServerEvent::Request { reply, .. } => {
            let _ = reply.send(Err(ErrorObject::new(code::UPSTREAM_UNAVAILABLE, "the agent is not connected to the hub")));
        }
        ServerEvent::Barrier(ack) => {
            let _ = ack.send(());
        }
        ServerEvent::Notification { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_urls_keep_a_prefix_and_switch_schemes() {
        let u = |s: &str| tunnel_url(&url::Url::parse(s).unwrap()).unwrap().to_string();
        assert_eq!(u("https://hub.example.com"), "wss://hub.example.com/agent/ws");
        assert_eq!(u("http://127.0.0.1:3200/"), "ws://127.0.0.1:3200/agent/ws");
        assert_eq!(u("https://example.com/gatehouse/"), "wss://example.com/gatehouse/agent/ws");
    }

    #[test]
    fn plain_ws_only_to_loopback_unless_insecure() {
        let tok = Token::new("ga_0123456789").unwrap();
        let remote = url::Url::parse("http://hub.example.com").unwrap();
        let e = WsConnector::new(&remote, tok.clone(), false).unwrap_err();
        assert!(matches!(e, ConnectError::Insecure(_)), "{e}");
        assert!(!e.to_string().contains("ga_"), "no token in errors");
        WsConnector::new(&remote, tok.clone(), true).unwrap();
        WsConnector::new(&url::Url::parse("http://localhost:1").unwrap(), tok.clone(), false).unwrap();
        WsConnector::new(&url::Url::parse("https://hub.example.com").unwrap(), tok, false).unwrap();
    }

    #[test]
    fn exit_codes_are_distinct() {
        assert_eq!(TunnelExit::Shutdown.exit_code(), 0);
        assert_eq!(TunnelExit::TokenRefused("x".into()).exit_code(), 3);
        assert_eq!(TunnelExit::Fatal { code: "c".into(), message: "m".into() }.exit_code(), 4);
        assert!(matches!(error_end("unauthorized".into(), "m".into(), true), SessionEnd::TokenRefused(_)));
        assert!(matches!(error_end("name_conflict".into(), "m".into(), true), SessionEnd::Fatal { .. }));
        assert!(matches!(error_end("busy".into(), "m".into(), false), SessionEnd::Closed(_)));
    }

    #[test]
    fn call_targets() {
        let raw = |s: &str| RawValue::from_string(s.into()).unwrap();
        assert_eq!(call_target(Some(&raw(r#"{"name":"echo","arguments":{}}"#))).as_deref(), Some("echo"));
        assert_eq!(call_target(Some(&raw(r#"{"uri":"file:///x"}"#))).as_deref(), Some("file:///x"));
        assert_eq!(call_target(None), None);
    }
}
