//! "Talk to one MCP server."
//!
//! An [`Upstream`] is a cheap, clonable handle to one MCP server reached over
//! stdio (a child process), streamable HTTP, or the legacy HTTP+SSE transport.
//! A supervisor task behind the handle connects, runs the handshake
//! (`server/discover` or `initialize`, see [Eras](#eras)), keeps the connection alive, and reconnects (restarts the child)
//! with full-jitter exponential backoff ([`Backoff`]: 0.5 s doubling up to
//! 60 s, reset after 30 s connected) when it fails. Callers send requests
//! and notifications through the handle; everything the server sends on its
//! own (notifications and server→client requests) arrives as
//! [`UpstreamEvent`]s on the channel given at start.
//!
//! Used by the hub for its own backends and by the agent for local servers.
//!
//! # Calls
//!
//! The connector numbers its requests itself (monotonic integers, never
//! reused across reconnections), so callers' ids never reach the server.
//! Params go out and results come back as raw JSON, byte for byte. A JSON-RPC
//! error answer is [`CallError::Rpc`], untouched. A call times out after
//! [`CallOptions::timeout`] (else [`UpstreamSpec::request_timeout`]) with
//! [`CallError::Timeout`]; when [`CallOptions::cancel`] fires it returns
//! [`CallError::Cancelled`]; both send `notifications/cancelled` upstream (so
//! does dropping the call's future). While the upstream is Starting a call
//! waits up to the connect timeout for it; while Unhealthy or Stopped it fails
//! at once with [`CallError::Unavailable`]. When the connection goes down
//! every call in flight fails at once with `Unavailable` and the reason
//! ("process exited with status 1", "the SSE stream ended", ...).
//!
//! # Server→client traffic
//!
//! Notifications surface as [`UpstreamEvent::Notification`], requests
//! (sampling, elicitation, roots/list) as [`UpstreamEvent::Request`] whose
//! reply goes back to the server under the server's own id. If the event
//! channel is closed or the reply sender is dropped the server gets a
//! JSON-RPC error (-32603, "no client available"). `ping` is answered here.
//! Events keep the order in which the server sent them; an internal queue
//! keeps a slow event consumer from stalling the connection. `context` is the
//! [`CallOptions::context`] of the call whose HTTP response stream carried the
//! message; `None` on stdio, legacy SSE and the streamable HTTP GET stream.
//!
//! # Transports
//!
//! * **Stdio**: newline-delimited JSON on stdin/stdout (non-JSON stdout lines
//!   are logged and skipped; lines of many megabytes are fine), stderr logged
//!   line by line under the target `gatehouse_upstream::stderr` with a
//!   `backend` field. The child gets a cleared environment: [`BASELINE_ENV`]
//!   (plus [`BASELINE_ENV_WINDOWS`] on Windows) copied from ours when set,
//!   then the configured variables. On unix it leads its own process group;
//!   shutdown and restart close its stdin, SIGTERM the whole group, SIGKILL
//!   what is left after a grace period and reap the child, so neither zombies
//!   nor orphaned grandchildren (node under npx) remain.
//! * **Streamable HTTP**: every message is a POST; answers are JSON or SSE.
//!   After `initialize` each message carries `Mcp-Session-Id` (when given)
//!   and `MCP-Protocol-Version` (the negotiated one). A 404 on a POST that
//!   carried a session re-initializes once, transparently (emitting
//!   `Health(Ready)` with the new `initialize` result), and retries. The GET
//!   stream for server-initiated messages is opened after the handshake
//!   (405: not offered, not retried; else reopened with backoff and
//!   `Last-Event-ID`). Shutdown sends DELETE with the session id. Non-2xx
//!   answers fail the call with `Unavailable("HTTP <status>: <excerpt>")`, or
//!   `Rpc` when the body is a JSON-RPC error. A failed POST fails only its
//!   call; the connection is declared down, and the supervisor reconnects,
//!   after [`HTTP_FAILURE_THRESHOLD`] consecutive transport failures
//!   (connection errors, 502/503/504) with no success in between, or when
//!   re-initializing an expired session fails.
//! * **Legacy HTTP+SSE**: a GET stream whose first `endpoint` event names the
//!   POST URL (resolved against the stream's URL and refused when it is not
//!   on the configured URL's origin, see [`resolve_sse_endpoint`]); every
//!   message from the server is a `message` event on that stream, and when
//!   it ends the connection is down.
//!
//! # Eras
//!
//! [`UpstreamSpec::protocol`] picks the era. With [`ProtocolPreference::Auto`]
//! (the default) a streamable HTTP connection first POSTs `server/discover`
//! as a 2026-07-28 request; when the answer lists `2026-07-28` among
//! `supportedVersions` the connection runs in the stateless era, otherwise
//! (any HTTP error, a JSON-RPC error, a result without 2026-07-28) it
//! `initialize`s as before. An "unsupported protocol version" error (-32022)
//! whose `supported` names 2026-07-28 is tried once more. Stdio, legacy SSE
//! and channels always use the session eras (no 2026-07-28 framing exists
//! for them here); [`ProtocolPreference::Stateless`] on them, or against a
//! server without a 2026-07-28 offer, fails the connection attempt, and
//! [`ProtocolPreference::Session`] never probes. The negotiated version is
//! [`InitializeInfo::protocol_version`]: the server's `initialize` answer,
//! or `2026-07-28` with the `server/discover` result as
//! [`InitializeInfo::raw`] (server info from `serverInfo` or `_meta`).
//!
//! In the stateless era:
//!
//! * Every request carries in `params._meta` the protocol version, the
//!   `clientCapabilities` and `clientInfo` of [`ClientIdentity`] and, once
//!   `logging/setLevel` was called, the log level; and the headers
//!   `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` (tools/call and
//!   prompts/get: the name; resources/read: the URI) and, for tools/call, an
//!   `Mcp-Param-<Name>` header per argument the tool's input schema marks
//!   with `x-mcp-header` (strings as is when plain visible ASCII, else
//!   `=?base64?…?=`; numbers and booleans as JSON; null or missing: none).
//!   No session, no `initialize`, no `notifications/initialized`.
//! * `tools/list` results are passed through byte for byte, except that a
//!   tool whose `x-mcp-header` annotations are invalid (empty, not a header
//!   token, repeated ignoring case, or on a property that is not a string,
//!   integer or boolean) is left out, and calling it fails with -32602.
//!   Schemas are never dereferenced.
//! * A result with `resultType: "input_required"` turns each `inputRequests`
//!   entry into an [`UpstreamEvent::Request`] (id: the entry's key; context:
//!   the call's), and the request is sent again, under a new id, with
//!   `inputResponses` and the `requestState` exactly as received (none when
//!   none came), for as many rounds as the server needs (at most 16). A
//!   refused entry fails the call with that error. The caller sees only the
//!   final result, with `resultType` taken out (every other member byte for
//!   byte) so the session-era code above sees a plain result.
//! * `logging/setLevel`, `resources/subscribe` and `resources/unsubscribe`
//!   are answered by the connector (they set the `_meta` log level and the
//!   listen stream's resources); `ping` becomes a `server/discover`;
//!   notifications to the server are dropped (the era has none).
//! * Cancelling, timing out or dropping a call closes its HTTP stream, which
//!   is how this era cancels; no `notifications/cancelled` is sent.
//! * Instead of the GET stream, a `subscriptions/listen` stream asks for the
//!   list changes the server declared (`listChanged`) and the subscribed
//!   resources (when it declared `subscribe`); what arrives on it surfaces as
//!   [`UpstreamEvent::Notification`] with no context (the acknowledgement
//!   is consumed). It is reopened with backoff when it ends, and at once when
//!   the subscriptions change; when the server refuses it, only a change of
//!   subscriptions reopens it. Health is the success of the HTTP requests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_proto::{ErrorObject, Request};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod backoff;
mod channel;
mod conn;
mod http;
mod sse;
mod stateless;
mod stdio;
mod supervisor;

pub use backoff::Backoff;
pub use channel::{ChannelPair, Connector};
pub use http::FAILURE_THRESHOLD as HTTP_FAILURE_THRESHOLD;
pub use sse::resolve_endpoint as resolve_sse_endpoint;
pub use stdio::{BASELINE_ENV, BASELINE_ENV_WINDOWS};

/// How to reach one MCP server.
#[derive(Clone, Debug)]
pub struct UpstreamSpec {
    /// Backend name, used in logs and error messages.
    pub name: String,
    pub transport: TransportSpec,
    /// Default per-request timeout (a call may override it).
    pub request_timeout: Duration,
    /// Time allowed for connecting plus the `initialize` handshake.
    pub connect_timeout: Duration,
    /// Which protocol era to speak (streamable HTTP only; the other
    /// transports always use the session eras).
    pub protocol: ProtocolPreference,
}

/// Which MCP era the connector speaks with a streamable HTTP server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtocolPreference {
    /// Ask with `server/discover` first and speak 2026-07-28 when the server
    /// offers it; otherwise `initialize` as in the session eras.
    #[default]
    Auto,
    /// Always `initialize` (2025-03-26 … 2025-11-25).
    Session,
    /// Only 2026-07-28: connecting fails when `server/discover` does not
    /// offer it, or when the transport is not streamable HTTP.
    Stateless,
}

#[derive(Clone, Debug)]
pub enum TransportSpec {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    /// It starts with a cleared environment: only a small non-secret baseline
    /// (PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ, TMPDIR and the Windows
    /// equivalents) plus `env`.
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, String>, cwd: Option<PathBuf> },
    /// Streamable HTTP (2025-03-26 and later).
    Http { url: String, headers: BTreeMap<String, String> },
    /// Legacy HTTP+SSE (2024-11-05): `url` is the GET SSE endpoint.
    Sse { url: String, headers: BTreeMap<String, String> },
    /// Messages over in-process channels the program provides (an agent's
    /// server reached through its tunnel).
    Channel(Arc<dyn Connector>),
}

/// What the gateway says about itself in `initialize`.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// `clientInfo` object.
    pub client_info: serde_json::Value,
    /// `capabilities` object (the hub declares roots/sampling/elicitation so it can route them).
    pub capabilities: serde_json::Value,
    /// Protocol version to request.
    pub protocol_version: String,
}

/// The server's answer to `initialize`, kept whole.
#[derive(Clone, Debug)]
pub struct InitializeInfo {
    /// The raw `result` object as the server sent it.
    pub raw: Box<RawValue>,
    /// Negotiated protocol version.
    pub protocol_version: String,
    /// `result.capabilities` (empty object when absent).
    pub capabilities: serde_json::Value,
    /// `result.serverInfo` (empty object when absent).
    pub server_info: serde_json::Value,
    /// `result.instructions`, when present.
    pub instructions: Option<String>,
}

/// Connection health as the supervisor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Starting,
    Ready,
    /// Down; the supervisor retries after the backoff.
    Unhealthy {
        error: String,
    },
    /// Shut down on purpose.
    Stopped,
}

/// A snapshot for status pages and health checks.
#[derive(Clone, Debug)]
pub struct Status {
    pub health: Health,
    /// How many times the supervisor reconnected (restarted the child) after
    /// its first attempt, whether or not that attempt succeeded.
    pub restarts: u64,
    pub last_error: Option<String>,
    /// Present while connected.
    pub init: Option<Arc<InitializeInfo>>,
}

/// Something the server sent on its own.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// A server notification (list_changed, progress, message, resources/updated, cancelled, ...).
    /// `context` is the [`CallOptions::context`] of the in-flight call it arrived
    /// with, when the transport tells (streamable HTTP: the call's response stream).
    Notification { method: String, params: Option<Box<RawValue>>, context: Option<u64> },
    /// A server→client request (sampling, elicitation, roots/list). `ping` is
    /// answered by the connector itself and never surfaces here. The answer
    /// sent on `reply` goes back to the server with the server's own id.
    Request { request: Request, context: Option<u64>, reply: oneshot::Sender<Result<Box<RawValue>, ErrorObject>> },
    /// The connection came up (with a possibly new `initialize` result) or went down.
    Health(Health),
    /// Asked for by [`Upstream::flush_events`]: every event emitted before
    /// this one has been delivered. Answer on the sender once they are handled.
    Barrier(oneshot::Sender<()>),
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Overrides [`UpstreamSpec::request_timeout`].
    pub timeout: Option<Duration>,
    /// When cancelled, the connector sends `notifications/cancelled` upstream
    /// and the call returns [`CallError::Cancelled`].
    pub cancel: Option<CancellationToken>,
    /// Opaque tag echoed in events that belong to this call.
    pub context: Option<u64>,
}

/// Why a call did not produce a result.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with a JSON-RPC error: forward it as is.
    #[error("{0}")]
    Rpc(ErrorObject),
    /// Not connected, crashed mid-call, or a transport failure.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("call cancelled")]
    Cancelled,
}

impl CallError {
    /// The JSON-RPC error a client should see for this failure of `backend`.
    pub fn to_error_object(&self, backend: &str) -> ErrorObject {
        use gatehouse_proto::mcp::code;
        use serde_json::json;
        match self {
            Self::Rpc(e) => e.clone(),
            Self::Unavailable(why) => ErrorObject::new(code::UPSTREAM_UNAVAILABLE, format!("Backend '{backend}' is unavailable: {why}"))
                .with_data(json!({ "backend": backend, "reason": "unavailable" })),
            Self::Timeout(d) => {
                ErrorObject::new(code::UPSTREAM_TIMEOUT, format!("Backend '{backend}' did not answer within {} ms", d.as_millis()))
                    .with_data(json!({ "backend": backend, "reason": "timeout", "timeoutMs": d.as_millis() as u64 }))
            }
            Self::Cancelled => {
                ErrorObject::new(code::INTERNAL_ERROR, "Request cancelled").with_data(json!({ "backend": backend, "reason": "cancelled" }))
            }
        }
    }
}

/// Handle to one MCP server. Clones share the connection; when the last
/// clone is dropped the supervisor shuts the connection down in the
/// background (call [`Upstream::shutdown`] to wait for that).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Handle>,
}

struct Handle {
    shared: Arc<supervisor::Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("name", &self.name()).field("health", &self.status().health).finish()
    }
}

impl Upstream {
    /// How many events this upstream has emitted so far. A caller compares it
    /// before and after a call to learn whether [`Upstream::flush_events`] is needed.
    pub fn events_emitted(&self) -> u64 {
        self.inner.shared.events_emitted()
    }

    /// Waits until every event emitted so far has been handled by the
    /// consumer (it acknowledges the [`UpstreamEvent::Barrier`]), or `timeout`.
    ///
    /// Responses reach callers directly while events travel through a queue, so
    /// a notification the server sent *before* a response (progress, logging)
    /// can otherwise be handled after it. Awaiting this between receiving a
    /// result and passing it on keeps the server's order.
    pub async fn flush_events(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        self.inner.shared.emit_barrier(UpstreamEvent::Barrier(tx));
        let _ = tokio::time::timeout(timeout, rx).await;
    }

    /// Starts the supervisor and returns at once; the connection comes up in
    /// the background (watch [`Upstream::status`] or [`Upstream::wait_ready`]).
    /// Must be called inside a Tokio runtime.
    pub fn start(spec: UpstreamSpec, identity: ClientIdentity, events: mpsc::Sender<UpstreamEvent>) -> Self {
        let shared = supervisor::Shared::new(spec, identity, events);
        tokio::spawn(supervisor::run(Arc::clone(&shared)));
        Self { inner: Arc::new(Handle { shared }) }
    }

    pub fn name(&self) -> &str {
        self.inner.shared.name()
    }

    /// The spec this upstream was started with.
    pub fn spec(&self) -> &UpstreamSpec {
        &self.inner.shared.spec
    }

    /// The default per-request timeout ([`UpstreamSpec::request_timeout`]).
    pub fn request_timeout(&self) -> Duration {
        self.inner.shared.spec.request_timeout
    }

    /// Sends a request and waits for its result (the raw `result`, untouched).
    ///
    /// While the upstream is Starting the call waits up to the connect
    /// timeout for it to come up; while Unhealthy or Stopped it fails at once
    /// with [`CallError::Unavailable`]. A JSON-RPC error answer is
    /// [`CallError::Rpc`]; after the timeout ([`CallOptions::timeout`], else
    /// the spec's) it is [`CallError::Timeout`], and when
    /// [`CallOptions::cancel`] fires [`CallError::Cancelled`] (both also send
    /// `notifications/cancelled` upstream).
    pub async fn request(&self, method: &str, params: Option<Box<RawValue>>, opts: CallOptions) -> Result<Box<RawValue>, CallError> {
        let shared = &self.inner.shared;
        if opts.cancel.as_ref().is_some_and(CancellationToken::is_cancelled) {
            return Err(CallError::Cancelled);
        }
        let (conn, _) = shared.ready_conn(shared.spec.connect_timeout, false, opts.cancel.as_ref()).await?;
        let timeout = opts.timeout.unwrap_or(shared.spec.request_timeout);
        conn.call(method, params, timeout, opts.cancel.as_ref(), opts.context).await
    }

    /// Sends a notification (same readiness rules as [`Upstream::request`]).
    pub async fn notify(&self, method: &str, params: Option<Box<RawValue>>) -> Result<(), CallError> {
        let shared = &self.inner.shared;
        let (conn, _) = shared.ready_conn(shared.spec.connect_timeout, false, None).await?;
        conn.notify(method, params).await
    }

    pub fn status(&self) -> Status {
        self.inner.shared.status()
    }

    /// Waits until connected (or `timeout`), returning the `initialize` result.
    /// Keeps waiting through reconnection attempts; fails with
    /// [`CallError::Unavailable`] (the last error) when the deadline passes
    /// after a failure, [`CallError::Timeout`] when it passes before any
    /// attempt finished, and `Unavailable` at once when shut down.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Arc<InitializeInfo>, CallError> {
        self.inner.shared.ready_conn(timeout, true, None).await.map(|(_, init)| init)
    }

    /// Stops the supervisor, ends the session (HTTP DELETE) or kills the child
    /// (and its process group), and fails calls in flight. Returns once all
    /// that is done; Health is then [`Health::Stopped`] for good.
    pub async fn shutdown(&self) {
        self.inner.shared.shutdown.cancel();
        self.inner.shared.stopped().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub spawns these futures: they must be Send, the handle Send + Sync.
    #[allow(dead_code)]
    fn futures_are_send(up: &Upstream) {
        fn is_send<T: Send>(_: T) {}
        fn is_send_sync<T: Send + Sync>() {}
        is_send(up.request("x", None, CallOptions::default()));
        is_send(up.notify("x", None));
        is_send(up.wait_ready(Duration::ZERO));
        is_send(up.shutdown());
        is_send_sync::<Upstream>();
        is_send_sync::<UpstreamEvent>();
    }

    #[test]
    fn initialize_info_reads_the_result_and_keeps_it_whole() {
        let text = r#"{"protocolVersion":"2025-03-26","capabilities":{"tools":{}},"serverInfo":{"name":"s"},"instructions":"hi","x-vendor":[1, 2]}"#;
        let info = InitializeInfo::from_raw(RawValue::from_string(text.into()).unwrap(), "2025-06-18").unwrap();
        assert_eq!(info.raw.get(), text);
        assert_eq!(info.protocol_version, "2025-03-26");
        assert_eq!(info.capabilities, serde_json::json!({"tools": {}}));
        assert_eq!(info.server_info, serde_json::json!({"name": "s"}));
        assert_eq!(info.instructions.as_deref(), Some("hi"));

        let bare = InitializeInfo::from_raw(RawValue::from_string("{}".into()).unwrap(), "2025-06-18").unwrap();
        assert_eq!(bare.protocol_version, "2025-06-18");
        assert_eq!(bare.capabilities, serde_json::json!({}));
        assert_eq!(bare.server_info, serde_json::json!({}));
        assert!(InitializeInfo::from_raw(RawValue::from_string("[]".into()).unwrap(), "x").is_err());
    }
}
