//! Identity records: user accounts (password hash, disabled flag), custom
//! roles, console sessions, and the few settings helpers the one-time setup
//! link needs.
//!
//! Changes that could leave the hub without an active admin run in a
//! transaction serialized on one settings row, so two concurrent demotions
//! (on PostgreSQL, from two hubs) cannot both pass the "another admin
//! remains" check.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use super::{ApiKey, KEY_COLUMNS, KeyRow, Pool, Role, Store, StoreError, execute, map_unique, new_id, now, validate_username};

/// Settings row locked by changes guarded by the last-admin rule.
const ADMIN_LOCK_SETTING: &str = "identity.admin_lock";

/// A user with the account state the admin API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAccount {
    pub id: String,
    pub username: String,
    pub role: Role,
    /// A disabled user can neither sign in nor use their keys.
    pub disabled: bool,
    /// False for API-key-only accounts.
    pub has_password: bool,
    pub created_at: DateTime<Utc>,
}

/// An account with its password hash, for verifying a sign-in.
#[derive(Clone)]
pub struct Credentials {
    pub account: UserAccount,
    /// PHC string (argon2id), `None` for API-key-only accounts.
    pub password_hash: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("account", &self.account).field("password_hash", &"**redacted**").finish()
    }
}

/// What [`Store::update_user`] may change.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// The outcome of a change guarded by the last-admin rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardedChange {
    /// Done; the account as it is now (or was, for a deletion).
    Done(UserAccount),
    /// No such user.
    NotFound,
    /// Refused: the user is the last active admin.
    LastAdmin,
}

/// An admin-defined role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomRole {
    pub name: String,
    pub description: String,
    /// `area:verb` names, as stored (unknown names are ignored by readers).
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The outcome of [`Store::delete_custom_role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleRemoval {
    Deleted,
    NotFound,
    /// Refused: this many users still have the role.
    InUse(u64),
}

/// A signed-in console session. The cookie token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleSession {
    pub id: String,
    pub user_id: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What [`Store::insert_console_session`] needs.
#[derive(Debug, Clone)]
pub struct NewConsoleSession {
    pub user_id: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

const ACCOUNT_COLUMNS: &str = "u.id, u.username, u.role, u.password_hash, u.disabled, u.created_at";

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    username: String,
    role: String,
    password_hash: Option<String>,
    disabled: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Credentials {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        Ok(Credentials {
            account: UserAccount {
                role: row.role.parse().map_err(StoreError::Corrupt)?,
                has_password: row.password_hash.is_some(),
                id: row.id,
                username: row.username,
                disabled: row.disabled,
                created_at: row.created_at,
            },
            password_hash: row.password_hash,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RoleRow {
    name: String,
    description: String,
    permissions: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<RoleRow> for CustomRole {
    type Error = StoreError;

    fn try_from(row: RoleRow) -> Result<Self, StoreError> {
        let permissions = serde_json::from_str::<Vec<String>>(&row.permissions)
            .map_err(|e| StoreError::Corrupt(format!("roles.permissions of role {}: {e}", row.name)))?;
        Ok(CustomRole { name: row.name, description: row.description, permissions, created_at: row.created_at })
    }
}

const SESSION_COLUMNS: &str = "s.id, s.user_id, s.token_hash, s.created_at, s.last_seen, s.expires_at, s.ip, s.user_agent";

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    token_hash: String,
    created_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<SessionRow> for ConsoleSession {
    fn from(r: SessionRow) -> Self {
        ConsoleSession {
            id: r.id,
            user_id: r.user_id,
            token_hash: r.token_hash,
            created_at: r.created_at,
            last_seen: r.last_seen,
            expires_at: r.expires_at,
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    u_username: String,
    u_role: String,
    u_password_hash: Option<String>,
    u_disabled: bool,
    u_created_at: DateTime<Utc>,
}

fn permissions_json(permissions: &[String]) -> String {
    // Serializing a list of strings cannot fail.
    serde_json::to_string(permissions).unwrap_or_else(|_| "[]".to_owned())
}

fn is_active_admin(role: &Role, disabled: bool) -> bool {
    *role == Role::Admin && !disabled
}

impl Store {
    /// Every user, oldest first.
    pub async fn list_user_accounts(&self) -> Result<Vec<UserAccount>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users u ORDER BY u.created_at, u.id");
        let rows: Vec<AccountRow> = with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(|r| Credentials::try_from(r).map(|c| c.account)).collect()
    }

    /// The account with id `id`.
    pub async fn user_account(&self, id: &str) -> Result<Option<UserAccount>, StoreError> {
        Ok(self.credentials_by_id(id).await?.map(|c| c.account))
    }

    /// The account called `username`.
    pub async fn user_account_by_name(&self, username: &str) -> Result<Option<UserAccount>, StoreError> {
        Ok(self.credentials_by_name(username).await?.map(|c| c.account))
    }

    /// The account with id `id` and its password hash.
    pub async fn credentials_by_id(&self, id: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.id = $1");
        let row: Option<AccountRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(Credentials::try_from).transpose()
    }

    /// The account called `username` and its password hash.
    pub async fn credentials_by_name(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.username = $1");
        let row: Option<AccountRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(username).fetch_optional(pool).await)?;
        row.map(Credentials::try_from).transpose()
    }

    /// Creates a user with an optional password hash; [`StoreError::Conflict`]
    /// when the name is taken.
    pub async fn create_account(&self, username: &str, role: Role, password_hash: Option<&str>) -> Result<UserAccount, StoreError> {
        validate_username(username)?;
        let account = UserAccount {
            id: new_id(),
            username: username.to_owned(),
            role,
            disabled: false,
            has_password: password_hash.is_some(),
            created_at: now(),
        };
        execute!(
            self,
            "INSERT INTO users (id, username, role, password_hash, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &account.id,
            &account.username,
            account.role.as_str(),
            password_hash,
            false,
            account.created_at
        )
        .map_err(|e| map_unique(e, || format!("user `{username}`")))?;
        Ok(account)
    }

    /// Sets (or, with `None`, removes) a user's password hash; `false` when
    /// no such user exists.
    pub async fn set_password_hash(&self, id: &str, password_hash: Option<&str>) -> Result<bool, StoreError> {
        let n = execute!(self, "UPDATE users SET password_hash = $1 WHERE id = $2", password_hash, id)?;
        Ok(n > 0)
    }

    /// Makes user `id` an enabled admin with this password hash (never
    /// reduces the number of admins, so needs no guard).
    pub async fn make_admin(&self, id: &str, password_hash: &str) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE users SET role = $1, disabled = $2, password_hash = $3 WHERE id = $4",
            Role::Admin.as_str(),
            false,
            password_hash,
            id
        )?;
        Ok(n > 0)
    }

    /// Whether an enabled admin who can sign in (has a password) exists.
    pub async fn active_admin_with_password_exists(&self) -> Result<bool, StoreError> {
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = $1 AND disabled = $2 AND password_hash IS NOT NULL",
        )
        .bind(Role::Admin.as_str())
        .bind(false)
        .fetch_one(pool)
        .await)?;
        Ok(n > 0)
    }

    /// How many users have the role called `role`.
    pub async fn count_users_with_role(&self, role: &str) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = $1")
            .bind(role)
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Changes a user's role and/or disabled flag, unless that would leave
    /// no enabled admin.
    pub async fn update_user(&self, id: &str, changes: &UserChanges) -> Result<GuardedChange, StoreError> {
        self.guarded_change(id, Some(changes)).await
    }

    /// Deletes a user (their keys and sessions go with them), unless they are
    /// the last enabled admin.
    pub async fn delete_user(&self, id: &str) -> Result<GuardedChange, StoreError> {
        self.guarded_change(id, None).await
    }

    /// One transaction: lock, read the user, check the last-admin rule, then
    /// update (`Some`) or delete (`None`).
    async fn guarded_change(&self, id: &str, changes: Option<&UserChanges>) -> Result<GuardedChange, StoreError> {
        let select = format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.id = $1");
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Writing first takes SQLite's write lock at once and a row lock on
            // PostgreSQL: concurrent guarded changes run one after the other.
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(ADMIN_LOCK_SETTING)
                .bind("")
                .execute(&mut *tx)
                .await?;
            let row: Option<AccountRow> = sqlx::query_as(&select).bind(id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                return Ok(GuardedChange::NotFound);
            };
            let mut account = Credentials::try_from(row)?.account;
            let was_admin = is_active_admin(&account.role, account.disabled);
            let role = changes.and_then(|c| c.role.clone()).unwrap_or_else(|| account.role.clone());
            let disabled = changes.and_then(|c| c.disabled).unwrap_or(account.disabled);
            let stays_admin = changes.is_some() && is_active_admin(&role, disabled);
            if was_admin && !stays_admin {
                let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = $1 AND disabled = $2 AND id <> $3")
                    .bind(Role::Admin.as_str())
                    .bind(false)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                if others == 0 {
                    return Ok(GuardedChange::LastAdmin);
                }
            }
            if changes.is_some() {
                sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE id = $3")
                    .bind(role.as_str())
                    .bind(disabled)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                account.role = role;
                account.disabled = disabled;
            } else {
                sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(GuardedChange::Done(account))
        })
    }

    /// Every custom role, by name.
    pub async fn list_custom_roles(&self) -> Result<Vec<CustomRole>, StoreError> {
        let rows: Vec<RoleRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT name, description, permissions, created_at FROM roles ORDER BY name",
        )
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(CustomRole::try_from).collect()
    }

    /// The custom role `name`.
    pub async fn custom_role(&self, name: &str) -> Result<Option<CustomRole>, StoreError> {
        let row: Option<RoleRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT name, description, permissions, created_at FROM roles WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await)?;
        row.map(CustomRole::try_from).transpose()
    }

    /// Stores a new custom role; [`StoreError::Conflict`] when the name is taken.
    /// The caller checks the name is not a built-in one.
    pub async fn insert_custom_role(&self, name: &str, description: &str, permissions: &[String]) -> Result<CustomRole, StoreError> {
        let role =
            CustomRole { name: name.to_owned(), description: description.to_owned(), permissions: permissions.to_vec(), created_at: now() };
        execute!(
            self,
            "INSERT INTO roles (name, description, permissions, created_at) VALUES ($1, $2, $3, $4)",
            &role.name,
            &role.description,
            permissions_json(&role.permissions),
            role.created_at
        )
        .map_err(|e| map_unique(e, || format!("role `{name}`")))?;
        Ok(role)
    }

    /// Replaces a custom role's description and permissions; `None` when no
    /// such role exists.
    pub async fn update_custom_role(
        &self,
        name: &str,
        description: &str,
        permissions: &[String],
    ) -> Result<Option<CustomRole>, StoreError> {
        let n = execute!(
            self,
            "UPDATE roles SET description = $1, permissions = $2 WHERE name = $3",
            description,
            permissions_json(permissions),
            name
        )?;
        if n == 0 {
            return Ok(None);
        }
        self.custom_role(name).await
    }

    /// Deletes a custom role nobody has.
    pub async fn delete_custom_role(&self, name: &str) -> Result<RoleRemoval, StoreError> {
        let n = execute!(self, "DELETE FROM roles WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM users WHERE role = $2)", name, name)?;
        if n > 0 {
            return Ok(RoleRemoval::Deleted);
        }
        if self.custom_role(name).await?.is_none() {
            return Ok(RoleRemoval::NotFound);
        }
        Ok(RoleRemoval::InUse(self.count_users_with_role(name).await?))
    }

    /// Stores a new console session.
    pub async fn insert_console_session(&self, new: NewConsoleSession) -> Result<ConsoleSession, StoreError> {
        let at = now();
        let session = ConsoleSession {
            id: new_id(),
            user_id: new.user_id,
            token_hash: new.token_hash,
            created_at: at,
            last_seen: at,
            expires_at: new.expires_at.trunc_subsecs(6),
            ip: new.ip,
            user_agent: new.user_agent,
        };
        execute!(
            self,
            "INSERT INTO console_sessions (id, user_id, token_hash, created_at, last_seen, expires_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &session.id,
            &session.user_id,
            &session.token_hash,
            session.created_at,
            session.last_seen,
            session.expires_at,
            &session.ip,
            &session.user_agent
        )
        .map_err(|e| map_unique(e, || "a console session with this token".to_owned()))?;
        Ok(session)
    }

    /// The session with this token hash and its user's account.
    pub async fn console_session_by_hash(&self, token_hash: &str) -> Result<Option<(ConsoleSession, UserAccount)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, u.username AS u_username, u.role AS u_role, u.password_hash AS u_password_hash, \
             u.disabled AS u_disabled, u.created_at AS u_created_at \
             FROM console_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
        );
        let row: Option<SessionUserRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(token_hash).fetch_optional(pool).await)?;
        let Some(row) = row else { return Ok(None) };
        let account = UserAccount {
            id: row.session.user_id.clone(),
            username: row.u_username,
            role: row.u_role.parse().map_err(StoreError::Corrupt)?,
            disabled: row.u_disabled,
            has_password: row.u_password_hash.is_some(),
            created_at: row.u_created_at,
        };
        Ok(Some((row.session.into(), account)))
    }

    /// Every session of `user_id`, oldest first.
    pub async fn list_console_sessions(&self, user_id: &str) -> Result<Vec<ConsoleSession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM console_sessions s WHERE s.user_id = $1 ORDER BY s.id");
        let rows: Vec<SessionRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(ConsoleSession::from).collect())
    }

    /// Records activity on session `id`.
    pub async fn touch_console_session(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        execute!(self, "UPDATE console_sessions SET last_seen = $1 WHERE id = $2", at.trunc_subsecs(6), id)?;
        Ok(())
    }

    /// Ends session `id`; `false` when it did not exist.
    pub async fn delete_console_session(&self, id: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "DELETE FROM console_sessions WHERE id = $1", id)?;
        Ok(n > 0)
    }

    /// Ends every session of `user_id` except `keep`; returns how many ended.
    pub async fn delete_console_sessions_of(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        // No session id is empty, so "" keeps nothing.
        let n = execute!(self, "DELETE FROM console_sessions WHERE user_id = $1 AND id <> $2", user_id, keep.unwrap_or(""))?;
        Ok(n)
    }

    /// Deletes sessions past their absolute lifetime or idle since before
    /// `idle_before`; returns how many.
    pub async fn purge_console_sessions(&self, expired_before: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let n = execute!(
            self,
            "DELETE FROM console_sessions WHERE expires_at < $1 OR last_seen < $2",
            expired_before.trunc_subsecs(6),
            idle_before.trunc_subsecs(6)
        )?;
        Ok(n)
    }

    /// The API key with id `id` (revoked or not).
    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1");
        let row: Option<KeyRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(ApiKey::try_from).transpose()
    }

    /// Sets `key` to `value`, replacing any value.
    pub async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        execute!(
            self,
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value
        )?;
        Ok(())
    }

    /// Removes `key`; `false` when it was not set.
    pub async fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "DELETE FROM settings WHERE key = $1", key)?;
        Ok(n > 0)
    }

    /// Removes `key` only while it still holds `value`: of concurrent callers
    /// exactly one gets `true` (single-use tokens).
    pub async fn take_setting(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "DELETE FROM settings WHERE key = $1 AND value = $2", key, value)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Store {
        Store::connect("sqlite::memory:").await.unwrap()
    }

    #[tokio::test]
    async fn last_admin_is_guarded() {
        let s = store().await;
        let a = s.create_account("a", Role::Admin, Some("h")).await.unwrap();
        let b = s.create_account("b", Role::Admin, None).await.unwrap();
        let demote = UserChanges { role: Some(Role::Viewer), disabled: None };
        assert!(matches!(s.update_user(&b.id, &demote).await.unwrap(), GuardedChange::Done(u) if u.role == Role::Viewer));
        assert_eq!(s.update_user(&a.id, &demote).await.unwrap(), GuardedChange::LastAdmin);
        let disable = UserChanges { role: None, disabled: Some(true) };
        assert_eq!(s.update_user(&a.id, &disable).await.unwrap(), GuardedChange::LastAdmin);
        assert_eq!(s.delete_user(&a.id).await.unwrap(), GuardedChange::LastAdmin);
        // A disabled admin does not count as the other admin.
        let c = s.create_account("c", Role::Admin, None).await.unwrap();
        s.update_user(&c.id, &disable).await.unwrap();
        assert_eq!(s.delete_user(&a.id).await.unwrap(), GuardedChange::LastAdmin);
        assert!(matches!(s.delete_user(&b.id).await.unwrap(), GuardedChange::Done(_)));
        assert_eq!(s.delete_user(&b.id).await.unwrap(), GuardedChange::NotFound);
        assert!(s.user_account(&b.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn roles_in_use_are_kept() {
        let s = store().await;
        s.insert_custom_role("auditor", "reads audit", &["audit:read".into()]).await.unwrap();
        assert!(matches!(s.insert_custom_role("auditor", "", &[]).await, Err(StoreError::Conflict(_))));
        let u = s.create_account("u", Role::Custom("auditor".into()), None).await.unwrap();
        assert_eq!(s.delete_custom_role("auditor").await.unwrap(), RoleRemoval::InUse(1));
        s.delete_user(&u.id).await.unwrap();
        assert_eq!(s.delete_custom_role("auditor").await.unwrap(), RoleRemoval::Deleted);
        assert_eq!(s.delete_custom_role("auditor").await.unwrap(), RoleRemoval::NotFound);
    }

    #[tokio::test]
    async fn settings_can_be_taken_once() {
        let s = store().await;
        s.put_setting("k", "v1").await.unwrap();
        s.put_setting("k", "v2").await.unwrap();
        assert!(!s.take_setting("k", "v1").await.unwrap());
        assert!(s.take_setting("k", "v2").await.unwrap());
        assert!(!s.take_setting("k", "v2").await.unwrap());
    }
}
