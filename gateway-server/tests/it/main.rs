//! Integration tests of the hub, one binary with a module per area.

mod agents_api;
mod ai;
mod ai_peers;
mod audit;
mod backends_api;
mod cli;
mod config;
mod conformance;
mod dashboard;
mod flows;
mod governance;
mod identity;
mod install;
mod limits;
mod mcp;
mod peer_flows;
mod peers;
mod policy;
mod schemathesis;
mod stateless;
mod store;
mod support;
mod top;
mod tunnel;
