//! `gateway-server init`: print (or write) the commented example config.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::config::EXAMPLE;

/// Arguments of `init`.
#[derive(Debug, Clone, Default, Args)]
pub struct InitArgs {
    /// Write the example to FILE instead of stdout (never overwrites)
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Prints the example config, or writes it to `--output`.
pub fn run(_config_path: Option<&Path>, args: InitArgs) -> anyhow::Result<()> {
    let Some(path) = args.output else {
        return super::print_stdout(EXAMPLE);
    };
    write_new(&path, EXAMPLE)?;
    eprintln!("wrote {0}; check it with: gateway-server check --config {0}", path.display());
    Ok(())
}

/// Creates `path` with `contents`, refusing to replace an existing file. The
/// file is private (0600) because configs often end up holding credentials.
fn write_new(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!("{} already exists; not overwriting it", path.display())
        }
        other => other.with_context(|| format!("cannot create {}", path.display()))?,
    };
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
