//! Integration tests of the hub, one binary with a module per area.

mod audit;
mod cli;
mod config;
mod conformance;
mod flows;
mod governance;
mod identity;
mod mcp;
mod peers;
mod policy;
mod schemathesis;
mod store;
mod support;
