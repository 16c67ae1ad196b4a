//! One module per subcommand, each with a `run` that returns the process
//! exit code. `main.rs` only parses the command line and calls these.

pub mod dashboard;
pub mod doctor;
pub mod logs;
pub mod run;
pub mod servers;
pub mod service;
pub mod setup;
pub mod update;
pub mod version;

use std::path::PathBuf;

use crate::paths::{Paths, ProcessEnv};

/// Options every subcommand takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Global {
    /// The config file (default: `GATEHOUSE_AGENT_CONFIG`, else the platform config directory).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Global {
    /// The agent's file locations.
    pub fn paths(&self) -> anyhow::Result<Paths> {
        Ok(Paths::resolve(self.config.as_deref(), &ProcessEnv)?)
    }
}

/// A failure with a specific exit code and a one-line message.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// An error that makes the process exit with `code`.
pub fn exit_with(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit { code, message: message.into() })
}

/// The exit code and message for an error returned by a command.
pub fn describe(e: &anyhow::Error) -> (u8, String) {
    match e.downcast_ref::<Exit>() {
        Some(x) => (x.code, x.message.clone()),
        None => (crate::exit::FAILURE, format!("{e:#}")),
    }
}

/// A runtime for the async commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Loads the config, with a hint when there is none.
pub fn load_config(paths: &Paths) -> anyhow::Result<crate::config::Config> {
    if !paths.config.exists() {
        return Err(exit_with(
            crate::exit::FAILURE,
            format!("no config at {}: run `gateway-agent setup` first (or pass --config)", paths.config.display()),
        ));
    }
    crate::config::load(&paths.config).map_err(|e| exit_with(crate::exit::FAILURE, format!("invalid config: {e}")))
}

/// Reads the token file, with a hint when it is missing.
pub fn load_token(paths: &Paths) -> anyhow::Result<crate::config::Token> {
    if !paths.token.exists() {
        return Err(exit_with(crate::exit::FAILURE, format!("no token file at {}: run `gateway-agent setup`", paths.token.display())));
    }
    crate::config::read_token(&paths.token).map_err(|e| exit_with(crate::exit::FAILURE, e.to_string()))
}
