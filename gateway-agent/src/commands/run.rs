//! `gateway-agent run [--config FILE] [--no-tui] [--insecure]`: connect to
//! the hub and serve the local servers until stopped.
//!
//! With a terminal on stdin and stdout the dashboard runs in-process (logs go
//! to the log file only); otherwise, or with `--no-tui`, logs also go to
//! stderr. SIGHUP reconnects at once, SIGINT/SIGTERM stop. The config file is
//! watched: server changes apply within a second. Under a service
//! (`GATEHOUSE_AGENT_SERVICE=1`) the agent also checks the hub for a newer
//! release every six hours and exits with 75 after replacing itself.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Global, exit_with, load_config, load_token};
use crate::paths::{ENV_SERVICE, Env as _, ProcessEnv};
use crate::servers::{ManagerOptions, ServerManager};
use crate::state::AgentState;
use crate::tui::{App, TerminalGuard, UiCommand, state_feed};
use crate::tunnel::{BackoffSettings, ConnectError, Control, RunCtx, SessionSettings, WsConnector};

/// Options of `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Plain logs instead of the dashboard, even on a terminal.
    #[arg(long)]
    pub no_tui: bool,
    /// Allow plain ws:// to a hub that is not on this machine (the token then crosses the network unencrypted).
    #[arg(long)]
    pub insecure: bool,
}

/// Runs the agent; the exit code says why it stopped ([`crate::exit`]).
pub fn run(args: &Args, global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    let config = load_config(&paths)?;
    let token = load_token(&paths)?;
    let tui = !args.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let state = AgentState::new(&config.agent.name, &config.agent.hub_url);
    paths.ensure_state_dir()?;
    crate::logs::init(crate::logs::LogSetup { file: Some(paths.log_file()), stderr: !tui, state: Some(state.clone()) })?;
    let hub = url::Url::parse(&config.agent.hub_url)?;
    let connector = match WsConnector::new(&hub, token, args.insecure) {
        Ok(c) => c,
        Err(ConnectError::Insecure(why)) => return Err(exit_with(crate::exit::FATAL, why)),
        Err(e) => return Err(exit_with(crate::exit::FAILURE, e.to_string())),
    };
    let rt = super::runtime()?;
    rt.block_on(agent(paths, config, connector, state, tui))
}

async fn agent(
    paths: crate::paths::Paths,
    config: crate::config::Config,
    connector: WsConnector,
    state: AgentState,
    tui: bool,
) -> anyhow::Result<u8> {
    let (control_tx, mut control_rx) = mpsc::channel::<Control>(8);
    let control = crate::control::serve(&paths, state.clone(), control_tx.clone())
        .await
        .map_err(|e| exit_with(crate::exit::FAILURE, e.to_string()))?;
    tracing::info!(agent = %config.agent.name, hub = %config.agent.hub_url, version = crate::VERSION, "gateway-agent starting");

    let (servers, mut events) = ServerManager::new(state.clone(), Arc::new(ProcessEnv), ManagerOptions::default());
    servers.apply(&config.servers).await;

    // Hot reload of the servers.
    let (cfg_tx, mut cfg_rx) = mpsc::channel(4);
    tokio::spawn(crate::config::watch(paths.config.clone(), Duration::from_secs(1), cfg_tx));
    let reload_servers = servers.clone();
    let agent_section = config.agent.clone();
    tokio::spawn(async move {
        while let Some(new) = cfg_rx.recv().await {
            if new.agent != agent_section {
                tracing::warn!("[agent] changed in the config: restart the agent to use the new name or hub");
            }
            reload_servers.apply(&new.servers).await;
        }
    });

    spawn_signals(control_tx.clone());
    let updated = Arc::new(AtomicBool::new(false));
    if ProcessEnv.var(ENV_SERVICE).as_deref() == Some("1") {
        spawn_auto_update(url::Url::parse(&config.agent.hub_url)?, control_tx.clone(), Arc::clone(&updated));
    }

    let tunnel_servers = servers.clone();
    let tunnel_state = state.clone();
    let settings = SessionSettings::new(&config.agent.name);
    let mut tunnel = tokio::spawn(async move {
        let ctx = RunCtx {
            settings,
            backoff: BackoffSettings::default(),
            servers: &tunnel_servers,
            events: &mut events,
            control: &mut control_rx,
            state: &tunnel_state,
        };
        crate::tunnel::run(&connector, ctx).await
    });

    let exit = if tui {
        let mut guard = TerminalGuard::enter()?;
        let (ui_tx, mut ui_rx) = mpsc::unbounded_channel();
        let fwd = control_tx.clone();
        tokio::spawn(async move {
            while let Some(UiCommand::Reconnect) = ui_rx.recv().await {
                let _ = fwd.send(Control::Reconnect).await;
            }
        });
        let app = App::new("this process");
        let ended = tokio::select! {
            r = app.run(&mut guard.terminal, state_feed(state.clone()), ui_tx) => { r?; None }
            exit = &mut tunnel => Some(exit),
        };
        drop(guard);
        match ended {
            Some(exit) => exit?,
            None => {
                let _ = control_tx.send(Control::Shutdown).await;
                tunnel.await?
            }
        }
    } else {
        tunnel.await?
    };
    tracing::info!("stopping local servers");
    servers.shutdown().await;
    control.stop().await;
    if updated.load(Ordering::SeqCst) {
        tracing::info!("updated; exiting so the service manager starts the new binary");
        return Ok(crate::exit::UPDATED);
    }
    let code = exit.exit_code();
    if code != 0 {
        return Err(exit_with(code, exit.message()));
    }
    Ok(0)
}

fn spawn_signals(control: mpsc::Sender<Control>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return;
            };
            loop {
                let cmd = tokio::select! {
                    _ = hup.recv() => Control::Reconnect,
                    _ = term.recv() => Control::Shutdown,
                    _ = int.recv() => Control::Shutdown,
                };
                tracing::info!(?cmd, "signal received");
                if control.send(cmd).await.is_err() || cmd == Control::Shutdown {
                    return;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            let _ = control.send(Control::Shutdown).await;
        }
    });
}

/// Under a service: check for a release now and then; install it and stop so the service manager restarts us.
fn spawn_auto_update(hub: url::Url, control: mpsc::Sender<Control>, updated: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let Ok(updater) = crate::update::Updater::new(&hub) else { return };
        let mut delay = Duration::from_secs(60);
        loop {
            tokio::time::sleep(delay).await;
            delay = Duration::from_secs(6 * 3600);
            match updater.check().await {
                Ok(check) => {
                    let Some(asset) = check.asset else { continue };
                    let Ok(exe) = std::env::current_exe() else { continue };
                    match updater.install(&asset, &exe).await {
                        Ok(()) => {
                            tracing::info!(from = %check.current, to = %check.latest, "updated the agent binary");
                            updated.store(true, Ordering::SeqCst);
                            let _ = control.send(Control::Shutdown).await;
                            return;
                        }
                        Err(e) => tracing::warn!("self-update to {} failed: {e}", check.latest),
                    }
                }
                Err(e) => tracing::debug!("update check failed: {e}"),
            }
        }
    });
}
