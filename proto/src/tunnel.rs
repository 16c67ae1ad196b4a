//! The hub↔agent tunnel: versioned frames carried as JSON in WebSocket text
//! messages.
//!
//! The agent dials `GET /agent/ws` with `Authorization: Bearer ga_…` and the
//! WebSocket subprotocol [`SUBPROTOCOL`]; the hub authenticates before it
//! upgrades and refuses other versions, so both ends agree on these frames.
//!
//! ```text
//! agent → hub   hello            who I am, my servers and their catalogs
//! hub → agent   welcome          accepted; liveness settings
//! both          mcp              one JSON-RPC message for one server, either direction
//! agent → hub   servers_changed  my servers or their catalogs changed
//! both          ping / pong      round-trip time and liveness
//! hub → agent   drain            the hub is going away: reconnect (elsewhere) after a pause
//! both          error            a problem with the connection; `fatal` ends it for good
//! ```
//!
//! MCP messages keep their JSON-RPC ids: requests the hub sends are numbered by
//! the hub, requests the agent's servers send are numbered by the agent, and
//! each side answers with the id it was given, so the two id spaces never meet.
//! Cancellation is the MCP `notifications/cancelled` notification inside an
//! `mcp` frame, like any other message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Version of the frames below. A change that an older peer cannot read
/// takes a new version (and a new subprotocol name).
pub const VERSION: u32 = 1;

/// WebSocket subprotocol naming the tunnel version.
pub const SUBPROTOCOL: &str = "gatehouse-tunnel.v1";

/// Path of the tunnel endpoint on the hub.
pub const PATH: &str = "/agent/ws";

/// How often each side sends a ping when the link is otherwise quiet.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// A connection with no frame for this long is dead (both sides).
pub const DEAD_AFTER: Duration = Duration::from_secs(50);

/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// One local MCP server of an agent, as the hub should see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's name in the agent's config (unique per agent).
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// `starting`, `ready`, `degraded` or `down`.
    pub status: String,
    /// Why the server is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The server's `initialize` result (protocolVersion, capabilities, serverInfo, instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialize: Option<Value>,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub prompts: Vec<Value>,
    #[serde(default)]
    pub resources: Vec<Value>,
    #[serde(default, rename = "resourceTemplates")]
    pub resource_templates: Vec<Value>,
}

/// One tunnel frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First frame of the agent.
    Hello {
        /// The agent's name; must match the name its token was enrolled with.
        agent: String,
        /// The agent's version (for the dashboard and updates).
        version: String,
        /// `linux-x86_64`, `macos-aarch64`, ...
        #[serde(default)]
        platform: String,
        servers: Vec<ServerInfo>,
    },
    /// The hub accepted the agent.
    Welcome {
        hub_version: String,
        /// Seconds between pings when quiet.
        ping_interval_secs: u64,
        /// Seconds without a frame after which the link is dead.
        dead_after_secs: u64,
    },
    /// One JSON-RPC message (request, notification or response) of `server`.
    Mcp {
        server: String,
        message: Box<RawValue>,
    },
    /// The agent's servers changed (added, removed, restarted, new catalog).
    ServersChanged {
        servers: Vec<ServerInfo>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// The hub is shutting down: reconnect after this pause.
    Drain {
        reconnect_after_ms: u64,
    },
    /// A problem with the connection. `fatal` errors (bad token, name taken by
    /// a hub backend, version) must not be retried.
    Error {
        code: String,
        message: String,
        #[serde(default)]
        fatal: bool,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl Frame {
    /// The frame as the text of one WebSocket message.
    pub fn encode(&self) -> String {
        // Serializing these types cannot fail: keys are strings, numbers are integers.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads one WebSocket text message.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(text.len()));
        }
        // serde buffers internally tagged enums, which a raw value cannot come
        // out of: `mcp` frames (the hot path) are read field by field instead.
        #[derive(Deserialize)]
        struct Peek<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
            server: Option<String>,
            #[serde(borrow)]
            message: Option<&'a RawValue>,
        }
        let peek: Peek<'_> = serde_json::from_str(text)?;
        if peek.kind == "mcp" {
            return match (peek.server, peek.message) {
                (Some(server), Some(message)) => Ok(Self::Mcp { server, message: message.to_owned() }),
                _ => Err(FrameError::Malformed(serde::de::Error::custom("an mcp frame needs `server` and `message`"))),
            };
        }
        Ok(serde_json::from_str(text)?)
    }

    /// An `mcp` frame.
    pub fn mcp(server: impl Into<String>, message: &crate::Message) -> Self {
        let raw = RawValue::from_string(message.to_json()).unwrap_or_else(|_| crate::jsonrpc::to_raw(&Value::Null));
        Self::Mcp { server: server.into(), message: raw }
    }

    /// Short name of the frame type, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Welcome { .. } => "welcome",
            Self::Mcp { .. } => "mcp",
            Self::ServersChanged { .. } => "servers_changed",
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
            Self::Drain { .. } => "drain",
            Self::Error { .. } => "error",
        }
    }
}

/// Stable `code`s of [`Frame::Error`].
pub mod error_code {
    /// The token is unknown, revoked or does not belong to this agent name.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The agent tried to register a server under a name it does not own.
    pub const NAME_CONFLICT: &str = "name_conflict";
    /// The first frame was not a valid `hello`.
    pub const BAD_HELLO: &str = "bad_hello";
    /// Another connection with the same token replaced this one.
    pub const REPLACED: &str = "replaced";
    /// The agent's token was revoked while connected.
    pub const REVOKED: &str = "revoked";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Request, RequestId};

    #[test]
    fn frames_round_trip_with_a_type_tag() {
        let hello = Frame::Hello {
            agent: "alice-laptop".into(),
            version: "0.1.0".into(),
            platform: "linux-x86_64".into(),
            servers: vec![ServerInfo {
                name: "fs".into(),
                transport: "stdio".into(),
                status: "ready".into(),
                error: None,
                initialize: None,
                tools: vec![serde_json::json!({ "name": "read_file", "inputSchema": { "type": "object" } })],
                prompts: vec![],
                resources: vec![],
                resource_templates: vec![],
            }],
        };
        let text = hello.encode();
        assert!(text.starts_with(r#"{"type":"hello""#), "{text}");
        let back = Frame::decode(&text).unwrap();
        assert_eq!(back.kind(), "hello");
        let Frame::Hello { servers, .. } = back else { panic!() };
        assert_eq!(servers[0].tools[0]["name"], "read_file");
    }

    #[test]
    fn mcp_frames_carry_the_message_byte_for_byte() {
        let msg = Message::Request(Request {
            id: RequestId::Number(7),
            method: "tools/call".into(),
            params: Some(crate::jsonrpc::to_raw(&serde_json::json!({ "name": "x", "_meta": { "vendor": { "k": [1, 2] } } }))),
        });
        let frame = Frame::mcp("fs", &msg);
        let Frame::Mcp { server, message } = Frame::decode(&frame.encode()).unwrap() else { panic!() };
        assert_eq!(server, "fs");
        assert_eq!(message.get(), msg.to_json());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(matches!(Frame::decode("{"), Err(FrameError::Malformed(_))));
        assert!(matches!(Frame::decode(r#"{"type":"nope"}"#), Err(FrameError::Malformed(_))));
        assert!(matches!(Frame::decode(&" ".repeat(MAX_FRAME_BYTES + 1)), Err(FrameError::TooLarge(_))));
        let e = Frame::decode(r#"{"type":"error","code":"unauthorized","message":"bad token"}"#).unwrap();
        assert!(matches!(e, Frame::Error { fatal: false, .. }));
    }
}
