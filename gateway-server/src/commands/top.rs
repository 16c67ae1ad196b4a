//! `gateway-server top`: a running hub's traffic, backends, agents and live
//! audit in the terminal, read from its admin API with an admin API key.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::{self, ProcessEnv, ServerConfig};
use crate::top::api::HubClient;
use crate::top::app::{App, Event};
use crate::top::{self as view, BACKFILL, now_ms, plain};

/// The variable holding the admin API key.
pub const KEY_ENV: &str = "GATEHOUSE_API_KEY";

/// Arguments of `top`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "The API key comes from GATEHOUSE_API_KEY or --key-file, never from the command line; it needs \
    the `audit:read` permission (an admin, operator or viewer key).\n\n\
    When stdout is not a terminal, top prints one plain-text snapshot (overview, top tools, backends, agents, \
    recent audit) and exits 0, like `top -b -n 1`: `gateway-server top | cat`.")]
pub struct TopArgs {
    /// The hub [default: `server.public_url` of the config, else the default listen address]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Read the admin API key from this file (instead of GATEHOUSE_API_KEY)
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Seconds between polls
    #[arg(long, value_name = "SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// Minutes of history in the overview
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub minutes: u32,
}

/// The admin API key: from `key_file` when given, else from `env_key`.
pub fn api_key(key_file: Option<&Path>, env_key: Option<String>) -> anyhow::Result<String> {
    let key = match key_file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?,
        None => env_key.unwrap_or_default(),
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        let from = key_file.map_or_else(|| format!("{KEY_ENV} is not set"), |p| format!("{} is empty", p.display()));
        anyhow::bail!(
            "no admin API key ({from}): set {KEY_ENV}=gk_... or pass --key-file PATH \
             (create one with `gateway-server keys create --user USER --name top`)"
        );
    }
    Ok(key)
}

/// The hub's URL: `--url`, else the config's `server.public_url`, else the default.
fn hub_url(config_path: Option<&Path>, url: Option<String>) -> anyhow::Result<String> {
    if let Some(u) = url {
        return Ok(u);
    }
    match config::load(config_path, &ProcessEnv) {
        Ok(c) => Ok(c.server.public_url),
        // An explicit config must load; without one, the defaults will do.
        Err(e) if config_path.is_some() => Err(e.into()),
        Err(_) => Ok(ServerConfig::default().public_url),
    }
}

/// Runs `top`.
pub async fn run(config_path: Option<&Path>, args: TopArgs) -> anyhow::Result<()> {
    let key = api_key(args.key_file.as_deref(), std::env::var(KEY_ENV).ok())?;
    let url = hub_url(config_path, args.url)?;
    url::Url::parse(&url).with_context(|| format!("--url {url:?} is not a URL"))?;
    let client = HubClient::new(&url, key)?;

    // The first poll decides: a wrong key or an unreachable hub is an error now.
    let mut app = App::new(client.base(), args.minutes, now_ms());
    let first = client.fetch(args.minutes, now_ms()).await?;
    app.apply(Event::Fetched(Box::new(first)));
    app.apply(Event::Audit(client.recent_audit(BACKFILL).await?));

    if !std::io::stdout().is_terminal() {
        return super::print_stdout(&plain::snapshot(&app));
    }
    let mut guard = gatehouse_tui::TerminalGuard::enter().context("cannot take over the terminal")?;
    view::run(&mut guard.terminal, app, client, Duration::from_secs(args.interval)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "  gk_file\n").unwrap();
        assert_eq!(api_key(Some(&file), Some("gk_env".into())).unwrap(), "gk_file");
        assert_eq!(api_key(None, Some("gk_env\n".into())).unwrap(), "gk_env");
        let missing = api_key(None, None).unwrap_err().to_string();
        assert!(missing.contains("GATEHOUSE_API_KEY") && missing.contains("--key-file"), "{missing}");
        std::fs::write(&file, "\n").unwrap();
        assert!(api_key(Some(&file), None).unwrap_err().to_string().contains("is empty"));
        assert!(api_key(Some(&dir.path().join("nope")), None).unwrap_err().to_string().contains("cannot read the key file"));
    }

    #[test]
    fn an_explicit_url_wins() {
        assert_eq!(hub_url(None, Some("http://hub:1".into())).unwrap(), "http://hub:1");
    }
}
