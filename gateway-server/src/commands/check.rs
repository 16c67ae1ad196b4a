//! `gateway-server check`: validate a config without starting anything.

use std::path::Path;

use clap::Args;

use crate::config::{self, EnvSource, ProcessEnv};

/// Arguments of `check` (the file is the global `--config`).
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {}

/// Prints `ok: N backend(s)` when the config is valid; otherwise fails with the
/// offending key.
pub fn run(config_path: Option<&Path>, _args: CheckArgs) -> anyhow::Result<()> {
    super::print_stdout(&summary(config_path, &ProcessEnv)?)
}

/// The line `check` prints for a valid config.
pub fn summary(config_path: Option<&Path>, env: &dyn EnvSource) -> anyhow::Result<String> {
    let config = config::load(config_path, env)?;
    let n = config.backends.len();
    Ok(format!("ok: {n} backend{}\n", if n == 1 { "" } else { "s" }))
}
