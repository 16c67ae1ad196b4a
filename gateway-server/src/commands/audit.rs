//! `gateway-server audit ...`: check and export the audit log of the store
//! the config names.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use futures::TryStreamExt;

use crate::audit::{Decision, EventKind, EventStatus, chain};
use crate::config::{self, ProcessEnv};
use crate::store::{AuditFilter, Store};

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exit 0 when intact, non-zero naming the first bad record
    Verify,
    /// Write the records as JSON Lines, oldest first
    Export(ExportArgs),
}

/// Arguments of `audit export`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExportArgs {
    /// Write to this new file (mode 0600) instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only this user (id or name)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only this API key id
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
    /// Only this tool (or prompt, resource, model); `*` is a wildcard
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Only this backend
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Only this decision (allow, deny)
    #[arg(long)]
    pub decision: Option<Decision>,
    /// Only this kind (mcp, ai, admin)
    #[arg(long)]
    pub kind: Option<EventKind>,
    /// Only this status (ok, error)
    #[arg(long)]
    pub status: Option<EventStatus>,
    /// Records at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub from: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub to: Option<DateTime<Utc>>,
}

impl ExportArgs {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            user: self.user.clone(),
            key_id: self.key_id.clone(),
            tool: self.tool.clone(),
            backend: self.backend.clone(),
            decision: self.decision,
            kind: self.kind,
            status: self.status,
            from: self.from,
            to: self.to,
        }
    }
}

/// Runs an `audit` subcommand.
pub async fn run(config_path: Option<&Path>, command: AuditCommand) -> anyhow::Result<()> {
    let config = config::load(config_path, &ProcessEnv)?;
    let store = Store::from_config(&config.database).await.context("cannot open the database")?;
    let result = match command {
        AuditCommand::Verify => verify(&store).await,
        AuditCommand::Export(args) => export(&store, &args).await,
    };
    store.close().await;
    result
}

/// Prints the chain report's line; a broken chain is an error.
async fn verify(store: &Store) -> anyhow::Result<()> {
    let report = chain::verify(store).await.context("cannot read the audit log")?;
    super::print_stdout(&format!("{}\n", report.summary()))?;
    match report.first_bad {
        None => Ok(()),
        Some(bad) => anyhow::bail!("the audit chain is broken at record seq={}", bad.seq),
    }
}

async fn export(store: &Store, args: &ExportArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(create_private(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut lines = std::pin::pin!(crate::audit::export_stream(store.clone(), args.filter()));
    while let Some(chunk) = lines.try_next().await.context("cannot read the audit log")? {
        match out.write_all(&chunk) {
            // A closed pipe (`| head`) ends the export quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.context("cannot write the export")?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r.context("cannot write the export")?),
    }
}

/// A new file readable by its owner only: audit records name people and
/// what they did.
fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).with_context(|| format!("--output: cannot create {} (it must not exist yet)", path.display()))
}
