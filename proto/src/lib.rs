//! Wire types only, no I/O.
//!
//! The hub, the agent and the upstream connectors all speak these types, so the
//! JSON-RPC envelope, the MCP protocol constants and the hub↔agent tunnel frames
//! are defined exactly once and can never drift apart.
//!
//! The envelope is deliberately thin: `params`, `result` and `error.data` stay as
//! raw JSON so that a gateway forwards what it does not understand byte for byte.

pub mod jsonrpc;
pub mod mcp;
pub mod raw;
pub mod tunnel;

pub use jsonrpc::{ErrorObject, Message, Notification, Request, RequestId, Response};
pub use raw::RawObject;
