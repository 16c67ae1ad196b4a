//! `gateway-agent service install|uninstall|start|stop|status [--system]`.

use super::{Global, exit_with, load_config, load_token};
use crate::service::{Flavor, Plan, ServiceSpec};

/// `service` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Register the agent to start at login (`--system`: at boot) and restart on failure.
    Install {
        /// Show what would be written, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop and unregister the service.
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the service.
    Stop,
    /// Show whether the service is installed and running.
    Status,
}

/// Options of `service`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// A system-wide service (root) instead of a per-user one.
    #[arg(long, global = true)]
    pub system: bool,
}

fn spec(args: &Args, global: &Global) -> anyhow::Result<(ServiceSpec, Option<std::path::PathBuf>)> {
    let paths = global.paths()?;
    // Refuse to install something that cannot start.
    load_config(&paths)?;
    load_token(&paths)?;
    let program = std::env::current_exe()?.canonicalize()?;
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).ok();
    let spec =
        ServiceSpec { program, config: paths.config.clone(), system: args.system, user, stdio_log: paths.state_dir.join("service.log") };
    let dirs = directories::BaseDirs::new().ok_or_else(|| exit_with(crate::exit::FAILURE, "cannot find the home directory"))?;
    let path = crate::service::unit_path(Flavor::native(), args.system, dirs.home_dir(), dirs.config_dir());
    Ok((spec, path))
}

/// Runs a `service` subcommand.
pub fn run(args: &Args, global: &Global) -> anyhow::Result<u8> {
    let fail = |e: crate::service::ServiceError| exit_with(crate::exit::FAILURE, e.to_string());
    match &args.cmd {
        Cmd::Install { dry_run } => {
            let (spec, path) = spec(args, global)?;
            let flavor = Flavor::native();
            let contents = crate::service::render(flavor, &spec);
            if *dry_run {
                match (&path, &contents) {
                    (Some(p), Some(c)) => {
                        let verb = match crate::service::plan(p, c) {
                            Plan::Create => "would create",
                            Plan::Update => "would update",
                            Plan::Unchanged => "unchanged",
                        };
                        println!("{verb}: {}", p.display());
                        print!("{c}");
                    }
                    _ => println!("would register a logon task running: {} {}", spec.program.display(), spec.args().join(" ")),
                }
                return Ok(0);
            }
            match crate::service::install(&spec, path.as_deref()).map_err(fail)? {
                Plan::Unchanged => println!("the service is already installed and up to date"),
                Plan::Update => println!("updated the service{}", path.map(|p| format!(" ({})", p.display())).unwrap_or_default()),
                Plan::Create => println!("installed the service{}", path.map(|p| format!(" ({})", p.display())).unwrap_or_default()),
            }
            println!("start it with `gateway-agent service start`; watch it with `gateway-agent dashboard`");
        }
        Cmd::Uninstall => {
            crate::service::uninstall(args.system).map_err(fail)?;
            println!("the service is removed");
        }
        Cmd::Start => {
            crate::service::start(args.system).map_err(fail)?;
            println!("started");
        }
        Cmd::Stop => {
            crate::service::stop(args.system).map_err(fail)?;
            println!("stopped");
        }
        Cmd::Status => println!("{}", crate::service::status(args.system).map_err(fail)?),
    }
    Ok(0)
}
