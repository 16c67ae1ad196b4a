//! The MCP data plane: front doors (session eras and the 2026-07-28
//! stateless era), sessions, routing and aggregation.
//!
//! Hand-rolled on the thin envelope of `gatehouse_proto`: only what routing
//! needs is decoded, gateway-owned names are rewritten, and everything else
//! passes through untouched.

pub mod catalog;
pub mod era;
pub mod floor;
pub mod gate;
pub mod guard;
pub mod http;
pub mod hub;
pub mod legacy;
pub mod naming;
pub mod pool;
pub mod session;
pub mod stateless;
pub mod stream;
pub mod tasks;

pub use hub::{Hub, HubSettings};
