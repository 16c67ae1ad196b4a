//! `gateway-agent dashboard`: the TUI attached to an agent already running
//! (e.g. as a service), through its control socket. Without a terminal it
//! prints the agent's status once instead.

use std::io::IsTerminal as _;

use tokio::sync::mpsc;

use super::{Global, exit_with};
use crate::control::ControlClient;
use crate::tui::{App, TerminalGuard, UiCommand};

/// Runs the dashboard until `q`.
pub fn run(global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    super::runtime()?.block_on(async move {
        let fail = |e: crate::control::ControlError| exit_with(crate::exit::FAILURE, e.to_string());
        let mut client = ControlClient::connect(&paths).await.map_err(fail)?;
        if !std::io::stdout().is_terminal() {
            let s = client.status().await.map_err(fail)?;
            println!("agent {} → {}: {}", s.connection.agent, s.connection.hub, s.connection.state.label());
            for srv in &s.servers {
                println!("  {} ({}): {}, {} tools", srv.name, srv.transport, srv.status, srv.tools);
            }
            return Ok(0);
        }
        let snapshots = client.subscribe().await.map_err(fail)?;
        let (ui_tx, mut ui_rx) = mpsc::unbounded_channel();
        let cmd_paths = paths.clone();
        tokio::spawn(async move {
            while let Some(UiCommand::Reconnect) = ui_rx.recv().await {
                if let Ok(mut c) = ControlClient::connect(&cmd_paths).await {
                    let _ = c.reconnect().await;
                }
            }
        });
        let mut guard = TerminalGuard::enter()?;
        let result = App::new(format!("attached to {}", paths.control_socket().display())).run(&mut guard.terminal, snapshots, ui_tx).await;
        drop(guard);
        result?;
        Ok(0)
    })
}
