//! The Gatehouse hub: one front door for every MCP server and AI API an
//! organisation uses.
//!
//! `main.rs` only parses the command line; everything else lives here, one
//! module per concern, so integration tests can build a hub in-process.

pub mod admin;
pub mod agents;
pub mod ai;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod registry;
pub mod server;
pub mod store;
pub mod top;
pub mod web;
