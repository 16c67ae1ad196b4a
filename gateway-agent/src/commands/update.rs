//! `gateway-agent update [--check]`: self-update from the hub.

use super::{Global, exit_with, load_config};
use crate::paths::{ENV_SERVICE, Env as _, ProcessEnv};

/// Options of `update`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only report whether a newer release is available.
    #[arg(long)]
    pub check: bool,
}

/// Checks (and installs) a newer release. Exit 75 after an update under a service.
pub fn run(args: &Args, global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    let config = load_config(&paths)?;
    let hub = url::Url::parse(&config.agent.hub_url)?;
    let fail = |e: crate::update::UpdateError| exit_with(crate::exit::FAILURE, e.to_string());
    super::runtime()?.block_on(async {
        let updater = crate::update::Updater::new(&hub).map_err(fail)?;
        let check = updater.check().await.map_err(fail)?;
        let Some(asset) = check.asset else {
            println!("gateway-agent {} is up to date (the hub offers {})", check.current, check.latest);
            return Ok(0);
        };
        if args.check {
            println!("gateway-agent {} is available (running {}); run `gateway-agent update` to install it", check.latest, check.current);
            return Ok(0);
        }
        let exe = std::env::current_exe()?;
        updater.install(&asset, &exe).await.map_err(fail)?;
        println!("updated gateway-agent {} → {}", check.current, check.latest);
        if ProcessEnv.var(ENV_SERVICE).as_deref() == Some("1") {
            return Ok(crate::exit::UPDATED);
        }
        println!("restart the agent to use it (as a service: `gateway-agent service stop && gateway-agent service start`)");
        Ok(0)
    })
}
