//! Opening the PostgreSQL store, for deployments with several hubs.
//!
//! Migrations take a database-wide advisory lock, so hubs starting together
//! do not race each other.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreError;

/// How long to wait for a pooled connection (and for the first connect).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    // The parse error may quote parts of the URL but not the password.
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let pool = PgPoolOptions::new().max_connections(max_connections).acquire_timeout(ACQUIRE_TIMEOUT).connect_with(options).await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}
