//! `gateway-agent doctor`: one line per check, `ok` or `FAIL`, exit 1 when
//! any fails. Checks the config, the token file, the hub's health endpoint,
//! the tunnel handshake, and that each local server starts and lists tools.

use std::time::Duration;

use super::Global;
use crate::paths::ProcessEnv;
use crate::servers::{ManagerOptions, client_identity, list_all, upstream_spec};

/// Options of `doctor`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Allow plain ws:// to a hub that is not on this machine.
    #[arg(long)]
    pub insecure: bool,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, ok: bool, what: &str, detail: impl std::fmt::Display) {
        self.failed |= !ok;
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    }
}

/// Runs every check.
pub fn run(args: &Args, global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    let mut r = Report { failed: false };
    let config = match crate::config::load(&paths.config) {
        Ok(c) => {
            r.line(true, "config", format!("{} ({} servers)", paths.config.display(), c.servers.len()));
            Some(c)
        }
        Err(e) => {
            r.line(false, "config", e);
            None
        }
    };
    let token = match crate::config::read_token(&paths.token) {
        Ok(t) => {
            r.line(true, "token", format!("{} (private)", paths.token.display()));
            Some(t)
        }
        Err(e) => {
            r.line(false, "token", e);
            None
        }
    };
    let Some(config) = config else { return Ok(crate::exit::FAILURE) };
    super::runtime()?.block_on(async {
        let hub = url::Url::parse(&config.agent.hub_url)?;
        let health = format!("{}/health/live", config.agent.hub_url.trim_end_matches('/'));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        match client.get(&health).send().await {
            Ok(resp) if resp.status().is_success() => r.line(true, "hub", format!("{health} answered {}", resp.status())),
            Ok(resp) => r.line(false, "hub", format!("{health} answered {}", resp.status())),
            Err(e) => r.line(false, "hub", format!("{health}: {e}")),
        }
        // A running agent already holds the tunnel: dialing again would replace its connection.
        let running = match crate::control::ControlClient::connect(&paths).await {
            Ok(mut c) => c.status().await.ok(),
            Err(_) => None,
        };
        match (running, token) {
            (Some(s), _) if s.connection.state == crate::state::ConnState::Connected => {
                r.line(true, "tunnel", "the running agent is connected");
            }
            (_, Some(token)) => match crate::tunnel::WsConnector::new(&hub, token, args.insecure) {
                Ok(conn) => match crate::tunnel::probe(&conn, &config.agent.name, Duration::from_secs(15)).await {
                    Ok(v) => r.line(true, "tunnel", format!("{} welcomed {} (hub {v})", conn.url(), config.agent.name)),
                    Err(e) => r.line(false, "tunnel", e.message()),
                },
                Err(e) => r.line(false, "tunnel", e),
            },
            (_, None) => r.line(false, "tunnel", "not checked: no usable token"),
        }
        let opts = ManagerOptions { connect_timeout: Duration::from_secs(30), ..ManagerOptions::default() };
        for s in &config.servers {
            let (spec, problems) = upstream_spec(s, &ProcessEnv, &opts);
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            // Nothing routes server-initiated messages here; drop them.
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let up = gatehouse_upstream::Upstream::start(spec, client_identity(), tx);
            let what = format!("server {}", s.name);
            // A server that fails to start is reported at its first failure, not after the whole timeout.
            let first_failure = async {
                loop {
                    if let gatehouse_upstream::Health::Unhealthy { error } = up.status().health {
                        return error;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let ready = tokio::select! {
                r = up.wait_ready(Duration::from_secs(30)) => r.map_err(|e| e.to_string()),
                e = first_failure => Err(e),
            };
            match ready {
                Ok(init) if init.capabilities.get("tools").is_none() => r.line(true, &what, "started (offers no tools)"),
                Ok(_) => match list_all(&up, gatehouse_proto::mcp::method::TOOLS_LIST, "tools").await {
                    Ok(tools) => r.line(
                        problems.is_empty(),
                        &what,
                        format!("started, {} tools{}", tools.len(), problems.first().map(|p| format!("; {p}")).unwrap_or_default()),
                    ),
                    Err(e) => r.line(false, &what, format!("started but tools/list failed: {e}")),
                },
                Err(e) => r.line(false, &what, e),
            }
            up.shutdown().await;
        }
        anyhow::Ok(())
    })?;
    Ok(if r.failed { crate::exit::FAILURE } else { 0 })
}
