//! `gateway-agent`: runs on laptops and dev boxes, dials out to a Gatehouse
//! hub over one authenticated WebSocket and brings local MCP servers behind
//! the hub's front door. This file only parses the command line; every
//! subcommand lives in `gateway_agent::commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway_agent::commands::{self, Global};

#[derive(Parser)]
#[command(name = "gateway-agent", version, about = "Bring local MCP servers behind a Gatehouse hub")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Configure the hub, the agent's name and its token (interactive unless --non-interactive).
    Setup(commands::setup::Args),
    /// Connect to the hub and serve the local servers (a dashboard on a terminal, plain logs otherwise).
    Run(commands::run::Args),
    /// Attach the dashboard to the agent already running.
    Dashboard,
    /// Manage the local MCP servers.
    #[command(subcommand)]
    Servers(commands::servers::Cmd),
    /// Run the agent as a background service (systemd / launchd / Windows logon task).
    Service(commands::service::Args),
    /// Update the agent from the hub (signature-verified).
    Update(commands::update::Args),
    /// Show the agent's log.
    Logs(commands::logs::Args),
    /// Check the config, the token, the hub and each local server.
    Doctor(commands::doctor::Args),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    let result = match &cli.command {
        Command::Setup(a) => commands::setup::run(a, g),
        Command::Run(a) => commands::run::run(a, g),
        Command::Dashboard => commands::dashboard::run(g),
        Command::Servers(c) => commands::servers::run(c, g),
        Command::Service(a) => commands::service::run(a, g),
        Command::Update(a) => commands::update::run(a, g),
        Command::Logs(a) => commands::logs::run(a, g),
        Command::Doctor(a) => commands::doctor::run(a, g),
        Command::Version => commands::version::run(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let (code, message) = commands::describe(&e);
            eprintln!("gateway-agent: {message}");
            ExitCode::from(code)
        }
    }
}
