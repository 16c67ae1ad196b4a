//! `gateway-agent servers add|remove|list`: edit the `[[servers]]` of the
//! config file in place (comments and layout kept). A running agent picks
//! the change up within a second.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Global, exit_with};
use crate::config::{ConfigDoc, ServerConfig, Transport};

/// `servers` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Add a local server: `servers add NAME [--env K=V]... --stdio CMD [ARGS...]` or `servers add NAME --url URL`.
    Add(AddArgs),
    /// Remove a local server.
    Remove {
        /// The server's name.
        name: String,
    },
    /// List the configured servers (and their live status when the agent runs).
    List,
}

/// Options of `servers add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The server's name: letters, digits, '-' and '_'.
    pub name: String,
    /// Variable for a stdio server's environment (repeatable); put these before --stdio.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_pair)]
    pub env: Vec<(String, String)>,
    /// HTTP header for an http server (repeatable), e.g. `Authorization=Bearer ${TOKEN}`.
    #[arg(long = "header", value_name = "K=V", value_parser = parse_pair)]
    pub headers: Vec<(String, String)>,
    /// Working directory of a stdio server.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint of the server.
    #[arg(long, conflicts_with = "stdio", required_unless_present = "stdio")]
    pub url: Option<String>,
    /// Command of a stdio server; everything after it is its arguments.
    #[arg(long, value_name = "CMD")]
    pub stdio: Option<String>,
    /// Arguments of the stdio command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, requires = "stdio", value_name = "ARGS")]
    pub args: Vec<String>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Runs a `servers` subcommand.
pub fn run(cmd: &Cmd, global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    let fail = |e: crate::config::ConfigError| exit_with(crate::exit::FAILURE, e.to_string());
    match cmd {
        Cmd::Add(a) => {
            let mut doc = ConfigDoc::load(&paths.config).map_err(fail)?;
            let server = ServerConfig {
                name: a.name.clone(),
                transport: if a.url.is_some() { Transport::Http } else { Transport::Stdio },
                command: a.stdio.clone(),
                args: a.args.clone(),
                env: a.env.iter().cloned().collect::<BTreeMap<_, _>>(),
                cwd: a.cwd.clone(),
                url: a.url.clone(),
                headers: a.headers.iter().cloned().collect::<BTreeMap<_, _>>(),
            };
            doc.add_server(&server).map_err(fail)?;
            doc.save(&paths.config).map_err(fail)?;
            println!("added server {:?} to {}", a.name, paths.config.display());
        }
        Cmd::Remove { name } => {
            let mut doc = ConfigDoc::load(&paths.config).map_err(fail)?;
            if !doc.remove_server(name) {
                return Err(exit_with(crate::exit::FAILURE, format!("no server called {name:?} in {}", paths.config.display())));
            }
            doc.save(&paths.config).map_err(fail)?;
            println!("removed server {name:?} from {}", paths.config.display());
        }
        Cmd::List => {
            let config = super::load_config(&paths)?;
            let live = super::runtime()?.block_on(async {
                let mut c = crate::control::ControlClient::connect(&paths).await.ok()?;
                c.status().await.ok()
            });
            if config.servers.is_empty() {
                println!("no servers; add one with `gateway-agent servers add NAME --stdio CMD [ARGS...]`");
            }
            for s in &config.servers {
                let what = match s.transport {
                    Transport::Stdio => {
                        std::iter::once(s.command.clone().unwrap_or_default()).chain(s.args.iter().cloned()).collect::<Vec<_>>().join(" ")
                    }
                    Transport::Http => s.url.clone().unwrap_or_default(),
                };
                let status = live
                    .as_ref()
                    .and_then(|snap| snap.servers.iter().find(|r| r.name == s.name))
                    .map(|r| format!("  [{}, {} tools]", r.status, r.tools))
                    .unwrap_or_default();
                println!("{:<16} {:<5} {what}{status}", s.name, s.transport.as_str());
            }
        }
    }
    Ok(0)
}
