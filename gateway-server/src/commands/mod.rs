//! The `gateway-server` command line: clap definitions and one module per
//! subcommand, each with its own `run`.
//!
//! Every subcommand accepts `--config FILE` before or after its own arguments
//! (or `GATEHOUSE_CONFIG`), and acts on the store that config names.

pub mod admin;
pub mod agents;
pub mod audit;
pub mod check;
pub mod init;
pub mod keys;
pub mod serve;
pub mod top;
pub mod version;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// `gateway-server`: one front door for MCP servers and AI APIs.
#[derive(Debug, Parser)]
#[command(name = "gateway-server", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [default: ./gatehouse.toml when present, else built-in defaults]
    #[arg(long, global = true, value_name = "FILE", env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do [default: serve]
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The `--config` path, if one was given.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }
}

/// The subcommands. Adding one is one variant here plus a module.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default)
    Serve(serve::ServeArgs),
    /// Validate a config: exit 0, or non-zero naming the offending key
    Check(check::CheckArgs),
    /// Print a commented example config (or write it with --output)
    Init(init::InitArgs),
    /// Manage API keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage console administrators
    #[command(subcommand)]
    Admin(admin::AdminCommand),

    /// Check or export the audit log
    #[command(subcommand)]
    Audit(audit::AuditCommand),

    /// Enroll, list and revoke agents
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// Watch a running hub: traffic, backends, agents and the live audit (admin API key)
    Top(top::TopArgs),
    /// Print the version
    Version,
}

/// Sets up diagnostics on stderr: the filter comes from `RUST_LOG` when set
/// and valid, else from `log.level`; the format from `log.format`. Calling it
/// again is harmless (the first set-up stays).
pub fn init_tracing(log: &LogConfig) {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let from_env = rust_log.as_deref().map(EnvFilter::try_new);
    let bad_rust_log = matches!(from_env, Some(Err(_)));
    let filter = match from_env {
        Some(Ok(filter)) => filter,
        // `log.level` is validated with the config; `info` is a last resort.
        _ => EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colours only on a terminal: escape codes garble log files and journals.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // Reporting a failed log write goes through eprintln!, which panics
        // when stderr is a closed pipe; a lost log line must not stop the hub.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let installed = if log.format == "json" { builder.json().try_init().is_ok() } else { builder.try_init().is_ok() };
    if installed && bad_rust_log {
        tracing::warn!("RUST_LOG is not a valid filter; using log.level instead");
    }
}

/// The one-line form of an error for `error: ...` on stderr: the context
/// chain joined with `: `, with any line breaks flattened.
pub fn error_line(err: &anyhow::Error) -> String {
    format!("{err:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_is_accepted_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from(["gateway-server", "--config", "a.toml", "check"]).unwrap();
        let after = Cli::try_parse_from(["gateway-server", "check", "--config", "a.toml"]).unwrap();
        for cli in [before, after] {
            assert_eq!(cli.config_path(), Some(Path::new("a.toml")));
            assert!(matches!(cli.command, Some(Command::Check(_))));
        }
        let nested = Cli::try_parse_from(["gateway-server", "keys", "create", "--user", "u", "--config", "b.toml", "--name", "n"]).unwrap();
        assert_eq!(nested.config_path(), Some(Path::new("b.toml")));
        let audit = Cli::try_parse_from(["gateway-server", "audit", "verify", "--config", "c.toml"]).unwrap();
        assert_eq!(audit.config_path(), Some(Path::new("c.toml")));
        assert!(matches!(audit.command, Some(Command::Audit(audit::AuditCommand::Verify))));
        let export = Cli::try_parse_from(["gateway-server", "audit", "export", "--kind", "mcp", "--decision", "deny"]).unwrap();
        assert!(matches!(export.command, Some(Command::Audit(audit::AuditCommand::Export(_)))));
        assert!(Cli::try_parse_from(["gateway-server", "audit", "export", "--kind", "web"]).is_err());
    }

    #[test]
    fn admin_create_takes_no_password_argument() {
        let cli = Cli::try_parse_from(["gateway-server", "admin", "create", "--username", "root", "--password-stdin"]).unwrap();
        let Some(Command::Admin(admin::AdminCommand::Create(args))) = cli.command else { panic!("admin create") };
        assert_eq!(args.username, "root");
        assert!(args.password_stdin && !args.force);
        assert!(Cli::try_parse_from(["gateway-server", "admin", "create", "--username", "root", "--password", "x"]).is_err());
    }

    #[test]
    fn top_takes_no_key_argument() {
        let cli = Cli::try_parse_from(["gateway-server", "top", "--url", "http://h:1", "--interval", "5", "--minutes", "15"]).unwrap();
        let Some(Command::Top(args)) = cli.command else { panic!("top") };
        assert_eq!((args.url.as_deref(), args.interval, args.minutes), (Some("http://h:1"), 5, 15));
        assert!(Cli::try_parse_from(["gateway-server", "top", "--key", "gk_x"]).is_err());
        assert!(Cli::try_parse_from(["gateway-server", "top", "--interval", "0"]).is_err());
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["gateway-server"]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn error_line_is_one_line() {
        let err = anyhow::anyhow!("inner\nsecond line").context("outer");
        assert_eq!(error_line(&err), "outer: inner second line");
    }
}
