//! The Gatehouse agent: runs on laptops and dev boxes, dials out to the hub
//! over one authenticated WebSocket and brings local MCP servers behind the
//! hub's front door.
//!
//! This build carries the command-line surface only; the tunnel, the terminal
//! UI, the service integration and self-update come next.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gateway-agent", version, about = "Bring local MCP servers behind a Gatehouse hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version.
    Version,
}

fn main() {
    match Cli::parse().command {
        Command::Version => println!("gateway-agent {}", env!("CARGO_PKG_VERSION")),
    }
}
