//! `gateway-server version`: print the version.

use std::path::Path;

/// The version line.
pub fn line() -> String {
    format!("gateway-server {}\n", env!("CARGO_PKG_VERSION"))
}

/// Prints `gateway-server X.Y.Z`.
pub fn run(_config_path: Option<&Path>) -> anyhow::Result<()> {
    super::print_stdout(&line())
}
