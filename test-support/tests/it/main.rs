//! Integration tests of the test-support crate: the fixture over its real
//! transports, and the MCP conformance suite against it.

mod conformance;
mod http;
mod stdio;
