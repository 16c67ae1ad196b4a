//! Integration tests of the hub, one binary with a module per area.

mod cli;
mod config;
mod conformance;
mod flows;
mod mcp;
mod peers;
mod store;
mod support;
