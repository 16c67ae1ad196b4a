//! Opening the embedded SQLite store.
//!
//! The file is created when missing (mode 0600 on Unix: it holds the
//! key-hashing secret unless `auth.secret_file` is set), and every connection
//! runs in WAL mode with foreign keys on and a busy timeout, so the hub and a
//! CLI command can use the same file at once.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn connect(url: &str, max_connections: u32) -> Result<SqlitePool, StoreError> {
    let in_memory = is_in_memory(url);
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let options = if in_memory {
        options
    } else {
        create_private_file(options.get_filename())?;
        // NORMAL is durable in WAL mode except for the last transactions on
        // power loss, and much faster than FULL.
        options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal)
    };
    let pool_options = if in_memory {
        // An in-memory database lives as long as one connection to it does.
        SqlitePoolOptions::new().max_connections(max_connections).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(max_connections)
    };
    let pool = pool_options.connect_with(options).await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

fn is_in_memory(url: &str) -> bool {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || query.split('&').any(|p| p == "mode=memory")
}

/// Creates the database file readable by its owner only, unless it exists.
/// SQLite gives the `-wal` and `-shm` files the same permissions.
fn create_private_file(path: &std::path::Path) -> Result<(), std::io::Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://x.db?mode=memory"));
        assert!(!is_in_memory("sqlite://x.db"));
        assert!(!is_in_memory("sqlite:///tmp/x.db?mode=rwc"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn new_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let url = format!("sqlite://{}", path.display());
        let pool = connect(&url, 2).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
        assert_eq!(journal, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&pool).await.unwrap();
        assert_eq!(fk, 1);
    }
}
