//! `gateway-server`: parses the command line and hands over to the
//! subcommand; failures print one `error: ...` line and exit non-zero.

use std::process::ExitCode;

use clap::Parser;
use gateway_server::commands::{self, Cli, Command};

/// mimalloc instead of the system allocator: the hub allocates many small,
/// short-lived buffers per request from several threads, where glibc's
/// malloc spent about a sixth of the hub's CPU time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    let config = config.as_deref();
    let result = match command {
        None => commands::serve::run(config, Default::default()).await,
        Some(Command::Serve(args)) => commands::serve::run(config, args).await,
        Some(Command::Check(args)) => commands::check::run(config, args),
        Some(Command::Init(args)) => commands::init::run(config, args),
        Some(Command::Keys(command)) => commands::keys::run(config, command).await,
        Some(Command::Admin(command)) => commands::admin::run(config, command).await,
        Some(Command::Audit(command)) => commands::audit::run(config, command).await,
        Some(Command::Agents(command)) => commands::agents::run(config, command).await,
        Some(Command::Top(args)) => commands::top::run(config, args).await,
        Some(Command::Version) => commands::version::run(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", commands::error_line(&err));
            ExitCode::FAILURE
        }
    }
}
