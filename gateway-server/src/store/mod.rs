//! Persistent state: users, API keys, hub-wide settings and the audit log.
//!
//! One [`Store`] type over either an embedded SQLite file (the default) or
//! PostgreSQL (for several hubs sharing state), chosen by the URL scheme.
//! Both backends run the same SQL (`$N` placeholders work in both), written
//! once here; the per-backend modules only open and tune the pool. Schema
//! migrations are embedded in the binary and run on connect.
//!
//! Queries are built at run time (`sqlx::query`), not with the compile-time
//! checked macros, so building needs no database.

mod postgres;
mod sqlite;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, SqlitePool};

use crate::config::{DatabaseConfig, DatabaseKind};

/// Pool size used by [`Store::connect`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// Why a store operation failed. Messages never contain the database URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL; use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl,
    /// The URL could not be parsed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The SQLite file could not be prepared.
    #[error("cannot create the database file: {0}")]
    Io(#[from] std::io::Error),
    /// Bringing the schema up to date failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A unique value (user name, key hash) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// An argument was rejected before reaching the database.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A stored value could not be decoded.
    #[error("unexpected stored value: {0}")]
    Corrupt(String),
}

/// What a user may do in the hub: one of the built-in roles or a custom
/// role defined by an admin (its permissions live in the `roles` table).
/// What each role permits is in [`crate::auth::roles`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages everything: users, roles, keys, backends, policy.
    Admin,
    /// Runs the hub: backends, tools, agents and limits; reads the rest.
    Operator,
    /// Uses the hub through its own keys.
    Developer,
    /// Reads dashboards and the audit log; changes nothing.
    Viewer,
    /// An admin-defined role.
    Custom(String),
}

impl Role {
    /// The built-in roles.
    pub const BUILT_IN: [Role; 4] = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer];

    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Developer => "developer",
            Self::Viewer => "viewer",
            Self::Custom(name) => name,
        }
    }

    /// True for `admin`, `operator`, `developer` and `viewer`.
    pub fn is_built_in(&self) -> bool {
        !matches!(self, Self::Custom(_))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    /// A built-in name, else a custom role name (1-64 of `a-z 0-9 _ -`,
    /// starting with a letter).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "admin" => Self::Admin,
            "operator" => Self::Operator,
            "developer" => Self::Developer,
            "viewer" => Self::Viewer,
            other => {
                let ok = !other.is_empty()
                    && other.len() <= 64
                    && other.as_bytes()[0].is_ascii_lowercase()
                    && other.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
                if !ok {
                    return Err(format!("invalid role `{other}`: use 1-64 characters of a-z 0-9 _ -, starting with a letter"));
                }
                Self::Custom(other.to_owned())
            }
        })
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A person (or automation account) known to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A stored API key. The key itself is never stored, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, for display.
    pub prefix: String,
    #[serde(skip)]
    pub key_hash: String,
    /// Surfaces the key may use (`mcp`, `ai`); empty means all.
    pub surfaces: Vec<String>,
    /// Tool name globs the key may call; empty means all.
    pub tools: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What [`Store::insert_api_key`] needs.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub surfaces: Vec<String>,
    pub tools: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the database. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("kind", &self.kind()).finish()
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool. The body is compiled
/// once per backend, which is what lets one SQL text serve both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

// Areas with their own file: an `impl Store` block and its row types each.
mod policy;
mod registry;

pub use policy::{BackendVisibility, PolicyRule};
pub use registry::{StoredTool, ToolSyncWrites};

// After `with_pool!`, which it uses.
mod identity;
pub use identity::{ConsoleSession, Credentials, CustomRole, GuardedChange, NewConsoleSession, RoleRemoval, UserAccount, UserChanges};

// Area modules come after `with_pool!` so they can use it.
mod audit;

pub use audit::{
    AUDIT_DEFAULT_PAGE, AUDIT_MAX_PAGE, AuditFilter, AuditPage, AuditRow, AuditSample, SAMPLES_MAX_ROWS, USAGE_MAX_ROWS, UsageBucket,
    UsageGroupBy, UsageQuery, UsageRow, decode_cursor, encode_cursor,
};

// Areas with their own file: an `impl Store` block plus row types each.
mod agents;
mod ai;
mod backends;
mod limits;

pub use ai::{AiRow, AiTable};

pub use agents::{Agent, AgentSharing, NewAgent, validate_agent_name};
pub use backends::{SecretCipher, StoredBackend};
pub use limits::StoredLimitRule;

/// Now, at the precision both backends keep (PostgreSQL stores microseconds),
/// so a value reads back exactly as written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Rejects names that would be awkward in URLs, logs and the CLI.
fn validate_username(username: &str) -> Result<(), StoreError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username.as_bytes()[0].is_ascii_alphanumeric()
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "username",
            reason: "use 1-64 characters of A-Z a-z 0-9 . _ - @, starting with a letter or digit".to_owned(),
        })
    }
}

fn map_unique(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Database(err),
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User { role: row.role.parse().map_err(StoreError::Corrupt)?, id: row.id, username: row.username, created_at: row.created_at })
    }
}

const KEY_COLUMNS: &str = "k.id, k.user_id, k.name, k.prefix, k.key_hash, k.surfaces, k.tools, \
     k.expires_at, k.last_used_at, k.revoked_at, k.created_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    key_hash: String,
    surfaces: String,
    tools: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        let list = |text: &str, what: &str| {
            serde_json::from_str::<Vec<String>>(text).map_err(|e| StoreError::Corrupt(format!("api_keys.{what} of key {}: {e}", row.id)))
        };
        Ok(ApiKey {
            surfaces: list(&row.surfaces, "surfaces")?,
            tools: list(&row.tools, "tools")?,
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            prefix: row.prefix,
            key_hash: row.key_hash,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct KeyUserRow {
    #[sqlx(flatten)]
    key: KeyRow,
    u_username: String,
    u_role: String,
    u_created_at: DateTime<Utc>,
}

impl Store {
    /// Opens the database `url` names (`sqlite:PATH`, `sqlite://PATH`,
    /// `postgres://…`, `postgresql://…`) and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`Store::connect`] with the pool size from the config.
    pub async fn from_config(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Self::connect_with(&config.url, config.max_connections).await
    }

    /// [`Store::connect`] with an explicit pool size.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let max_connections = max_connections.max(1);
        let pool = match DatabaseKind::from_url(url) {
            Some(DatabaseKind::Sqlite) => Pool::Sqlite(sqlite::connect(url, max_connections).await?),
            Some(DatabaseKind::Postgres) => Pool::Postgres(postgres::connect(url, max_connections).await?),
            None => return Err(StoreError::UnsupportedUrl),
        };
        Ok(Store { pool })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Checks the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }

    /// Creates a user; [`StoreError::Conflict`] when the name is taken.
    pub async fn create_user(&self, username: &str, role: Role) -> Result<User, StoreError> {
        validate_username(username)?;
        let user = User { id: new_id(), username: username.to_owned(), role: role.clone(), created_at: now() };
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO users (id, username, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(role.as_str())
        .bind(user.created_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| map_unique(e, || format!("user `{username}`")))?;
        Ok(user)
    }

    /// The user called `username`, if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, username, role, created_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(pool)
        .await)?;
        row.map(User::try_from).transpose()
    }

    /// The user called `username`, created with `role` when absent. Safe
    /// against concurrent callers: all get the same user.
    pub async fn ensure_user(&self, username: &str, role: Role) -> Result<User, StoreError> {
        validate_username(username)?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO users (id, username, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(new_id())
        .bind(username)
        .bind(role.as_str())
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.user_by_name(username).await?.ok_or_else(|| StoreError::Corrupt(format!("user `{username}` vanished after insert")))
    }

    /// How many users exist.
    pub async fn count_users(&self) -> Result<u64, StoreError> {
        let count: i64 = with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Stores a new key.
    pub async fn insert_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        if new.name.trim().is_empty() {
            return Err(StoreError::Invalid { field: "key name", reason: "must not be empty".to_owned() });
        }
        let to_json = |v: &Vec<String>| {
            // Serializing a list of strings cannot fail.
            serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
        };
        let key = ApiKey {
            id: new_id(),
            surfaces: new.surfaces,
            tools: new.tools,
            user_id: new.user_id,
            name: new.name,
            prefix: new.prefix,
            key_hash: new.key_hash,
            expires_at: new.expires_at.map(|t| t.trunc_subsecs(6)),
            last_used_at: None,
            revoked_at: None,
            created_at: now(),
        };
        let surfaces = to_json(&key.surfaces);
        let tools = to_json(&key.tools);
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, surfaces, tools, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.key_hash)
        .bind(&surfaces)
        .bind(&tools)
        .bind(key.expires_at)
        .bind(key.created_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| map_unique(e, || "an API key with this hash".to_owned()))?;
        Ok(key)
    }

    /// The key with this hash and its owner, unless the owner is disabled.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, u.username AS u_username, u.role AS u_role, u.created_at AS u_created_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1 AND u.disabled = $2"
        );
        // A disabled user's keys do not authenticate (they come back when the user is enabled again).
        let row: Option<KeyUserRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(key_hash)
            .bind(false)
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        let user = User {
            id: row.key.user_id.clone(),
            username: row.u_username,
            role: row.u_role.parse().map_err(StoreError::Corrupt)?,
            created_at: row.u_created_at,
        };
        Ok(Some((ApiKey::try_from(row.key)?, user)))
    }

    /// Records that key `id` was used at `at`.
    pub async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at.trunc_subsecs(6))
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Revokes key `id`; `false` when no such unrevoked key exists.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Every key of `user_id`, oldest first, revoked ones included.
    pub async fn list_api_keys(&self, user_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        // UUID v7 ids sort by creation time.
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.user_id = $1 ORDER BY k.id");
        let rows: Vec<KeyRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    /// The setting `key`, if set.
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self, pool => sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await)?)
    }

    /// Sets `key` to `value` unless it already has a value, and returns the
    /// value in force. Concurrent callers (other processes included) all get
    /// the same winner.
    pub async fn set_setting_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.get_setting(key).await?.ok_or_else(|| StoreError::Corrupt(format!("setting `{key}` vanished after insert")))
    }
}

/// Runs one statement with its binds, in order, on whichever database the
/// store has, and returns how many rows it affected (callers that only need
/// to know whether anything matched compare it with zero).
macro_rules! execute {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        with_pool!($store, pool => sqlx::query($sql)$(.bind($bind))*.execute(pool).await.map(|r| r.rows_affected()))
    };
}
// A path import lets the area modules, declared above, reach it.
pub(crate) use execute;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips() {
        for role in Role::BUILT_IN {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!("auditor".parse::<Role>().unwrap(), Role::Custom("auditor".into()));
        assert!("Root".parse::<Role>().is_err());
        assert!("".parse::<Role>().is_err());
    }

    #[test]
    fn usernames() {
        for ok in ["alice", "a", "bob.smith@example.com", "ci-bot_2"] {
            validate_username(ok).unwrap();
        }
        for bad in ["", "-x", "has space", "x/y", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn unsupported_scheme_is_rejected() {
        let err = Store::connect("mysql://u@h/db").await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl));
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_state_across_connections() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.create_user("alice", Role::Admin).await.unwrap();
        // Several concurrent reads may use different pool connections; all
        // must see the same in-memory database.
        let results = futures::future::join_all((0..4).map(|_| store.user_by_name("alice"))).await;
        for r in results {
            assert_eq!(r.unwrap().unwrap().username, "alice");
        }
    }
}
