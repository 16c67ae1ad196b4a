//! `gateway-server [serve]`: load the config and run the hub until shutdown.

use std::path::Path;

use clap::Args;

use crate::config::{self, ProcessEnv, redact_url_password};

/// Arguments of `serve` (everything else comes from the config).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {}

/// Runs the hub with the config at `config_path` (see [`config::load`]).
pub async fn run(config_path: Option<&Path>, _args: ServeArgs) -> anyhow::Result<()> {
    let config = config::load(config_path, &ProcessEnv)?;
    super::init_tracing(&config.log);
    tracing::info!(
        config = %config_path.map_or_else(|| "(default)".to_owned(), |p| p.display().to_string()),
        database = %redact_url_password(&config.database.url),
        backends = config.backends.len(),
        "configuration loaded"
    );
    crate::server::run(config).await
}
