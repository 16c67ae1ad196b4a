//! `gateway-agent logs [-f] [-n N]`: the agent's log file.

use std::io::Write as _;

use super::Global;

/// Options of `logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Keep printing lines as they are written.
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines to show first.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
}

/// Prints the log's tail, then follows it when asked (until ctrl-c).
pub fn run(args: &Args, global: &Global) -> anyhow::Result<u8> {
    let paths = global.paths()?;
    let path = paths.log_file();
    let lines = crate::logs::tail(&path, args.lines)
        .map_err(|e| super::exit_with(crate::exit::FAILURE, format!("cannot read the log at {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    drop(out);
    if args.follow {
        let rt = super::runtime()?;
        rt.block_on(async {
            let stop = tokio_util::sync::CancellationToken::new();
            let s = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                s.cancel();
            });
            let mut out = std::io::stdout();
            crate::logs::follow(&path, &mut out, stop).await
        })?;
    }
    Ok(0)
}
