//! Store methods of the policy engine: `policy_rules` and `backend_visibility`.
//!
//! Rule positions are kept dense (1, 2, 3, …): every write that inserts,
//! moves or deletes a rule renumbers the others in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Pool, Store, StoreError, execute, map_unique, new_id, now};
use crate::policy::{Effect, RuleSpec};
use crate::registry::Risk;

/// A stored policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PolicyRule {
    pub id: String,
    /// 1-based place in the evaluation order.
    pub position: i64,
    pub name: String,
    pub description: String,
    pub effect: Effect,
    pub enabled: bool,
    /// Role names; empty = any role.
    pub roles: Vec<String>,
    /// Usernames; empty = any user.
    pub users: Vec<String>,
    /// API key ids or names; empty = any key (or none).
    pub keys: Vec<String>,
    /// Agent names; empty = any (or none).
    pub agents: Vec<String>,
    /// Globs over the client's `clientInfo.name`; empty = any.
    pub client_apps: Vec<String>,
    /// Globs over backend names; empty = every backend.
    pub backends: Vec<String>,
    /// Globs over the backend's own tool names; empty = every tool.
    pub tools: Vec<String>,
    /// Risk levels; empty = any.
    pub risks: Vec<Risk>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who may see a backend. Without a stored row a backend is visible to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackendVisibility {
    pub backend: String,
    /// Roles that see the backend.
    pub roles: Vec<String>,
    /// Usernames that see the backend.
    pub users: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

const RULE_COLUMNS: &str = "id, position, name, description, effect, enabled, roles, users, keys, agents, client_apps, backends, tools, risks, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    position: i64,
    name: String,
    description: String,
    effect: String,
    enabled: bool,
    roles: String,
    users: String,
    keys: String,
    agents: String,
    client_apps: String,
    backends: String,
    tools: String,
    risks: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn decode_list<T: serde::de::DeserializeOwned>(text: &str, table: &str, column: &str, id: &str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{table}.{column} of {id}: {e}")))
}

fn encode_list<T: Serialize>(v: &[T]) -> String {
    // Lists of strings and unit enums always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

impl TryFrom<RuleRow> for PolicyRule {
    type Error = StoreError;

    fn try_from(r: RuleRow) -> Result<Self, StoreError> {
        let id = r.id.as_str();
        let list = |text: &str, column: &str| decode_list::<String>(text, "policy_rules", column, id);
        Ok(PolicyRule {
            effect: r.effect.parse().map_err(|e: String| StoreError::Corrupt(format!("policy_rules.effect of {id}: {e}")))?,
            roles: list(&r.roles, "roles")?,
            users: list(&r.users, "users")?,
            keys: list(&r.keys, "keys")?,
            agents: list(&r.agents, "agents")?,
            client_apps: list(&r.client_apps, "client_apps")?,
            backends: list(&r.backends, "backends")?,
            tools: list(&r.tools, "tools")?,
            risks: decode_list(&r.risks, "policy_rules", "risks", id)?,
            position: r.position,
            name: r.name,
            description: r.description,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            id: r.id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VisibilityRow {
    backend: String,
    roles: String,
    users: String,
    updated_at: DateTime<Utc>,
}

impl TryFrom<VisibilityRow> for BackendVisibility {
    type Error = StoreError;

    fn try_from(r: VisibilityRow) -> Result<Self, StoreError> {
        Ok(BackendVisibility {
            roles: decode_list(&r.roles, "backend_visibility", "roles", &r.backend)?,
            users: decode_list(&r.users, "backend_visibility", "users", &r.backend)?,
            backend: r.backend,
            updated_at: r.updated_at,
        })
    }
}

/// Binds a rule's settings and conditions (`name` through `risks`) in the
/// column order both the insert and the update list them in.
macro_rules! bind_spec {
    ($q:expr, $spec:expr) => {
        $q.bind(&$spec.name)
            .bind(&$spec.description)
            .bind($spec.effect.as_str())
            .bind($spec.enabled)
            .bind(encode_list(&$spec.roles))
            .bind(encode_list(&$spec.users))
            .bind(encode_list(&$spec.keys))
            .bind(encode_list(&$spec.agents))
            .bind(encode_list(&$spec.client_apps))
            .bind(encode_list(&$spec.backends))
            .bind(encode_list(&$spec.tools))
            .bind(encode_list(&$spec.risks))
    };
}

/// Where a rule goes in an ordered list of `len` ids: a 1-based `position`,
/// clamped to the end; `None` appends.
fn slot(position: Option<i64>, len: usize) -> usize {
    match position {
        Some(p) if p >= 1 => usize::try_from(p - 1).unwrap_or(usize::MAX).min(len),
        _ => len,
    }
}

impl Store {
    /// Every rule, in evaluation order.
    pub async fn policy_rules(&self) -> Result<Vec<PolicyRule>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM policy_rules ORDER BY position, id");
        let rows: Vec<RuleRow> = with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(PolicyRule::try_from).collect()
    }

    /// The rule with this id.
    pub async fn policy_rule(&self, id: &str) -> Result<Option<PolicyRule>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM policy_rules WHERE id = $1");
        let row: Option<RuleRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(PolicyRule::try_from).transpose()
    }

    /// Inserts a rule at the 1-based `position` (later rules move down), or
    /// at the end when `position` is `None` or past the end.
    /// [`StoreError::Conflict`] when the name is taken.
    pub async fn policy_rule_insert(&self, spec: &RuleSpec, position: Option<i64>) -> Result<PolicyRule, StoreError> {
        let at = now();
        let id = new_id();
        let insert = format!(
            "INSERT INTO policy_rules ({RULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Writing first takes SQLite's write lock at once, so two
            // inserts never deadlock upgrading a read lock.
            sqlx::query("UPDATE policy_rules SET position = position WHERE 1 = 0").execute(&mut *tx).await?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM policy_rules").fetch_one(&mut *tx).await?;
            let len = usize::try_from(count).unwrap_or(0);
            let place = i64::try_from(slot(position, len)).unwrap_or(i64::MAX - 1) + 1;
            sqlx::query("UPDATE policy_rules SET position = position + 1 WHERE position >= $1").bind(place).execute(&mut *tx).await?;
            bind_spec!(sqlx::query(&insert).bind(&id).bind(place), spec)
                .bind(at)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || format!("a policy rule named `{}`", spec.name)))?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.policy_rule(&id).await?.ok_or_else(|| StoreError::Corrupt(format!("policy rule {id} vanished after insert")))
    }

    /// Replaces the settings and conditions of rule `id`, and moves it to
    /// `position` when given. `None` when no such rule exists.
    pub async fn policy_rule_update(&self, id: &str, spec: &RuleSpec, position: Option<i64>) -> Result<Option<PolicyRule>, StoreError> {
        let found = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = bind_spec!(
                sqlx::query(
                    "UPDATE policy_rules SET name = $1, description = $2, effect = $3, enabled = $4, roles = $5, users = $6, keys = $7, \
                     agents = $8, client_apps = $9, backends = $10, tools = $11, risks = $12, updated_at = $13 WHERE id = $14",
                ),
                spec
            )
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, || format!("a policy rule named `{}`", spec.name)))?
            .rows_affected();
            if n > 0 && position.is_some() {
                let mut ids: Vec<String> =
                    sqlx::query_scalar("SELECT id FROM policy_rules ORDER BY position, id").fetch_all(&mut *tx).await?;
                ids.retain(|x| x != id);
                let place = slot(position, ids.len());
                ids.insert(place, id.to_owned());
                for (i, rid) in ids.iter().enumerate() {
                    sqlx::query("UPDATE policy_rules SET position = $1 WHERE id = $2 AND position <> $1")
                        .bind(i64::try_from(i).unwrap_or(i64::MAX - 1) + 1)
                        .bind(rid)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok::<bool, StoreError>(n > 0)
        })?;
        if !found {
            return Ok(None);
        }
        self.policy_rule(id).await
    }

    /// Deletes rule `id` and closes the gap; `false` when no such rule exists.
    pub async fn policy_rule_delete(&self, id: &str) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let pos: Option<i64> = sqlx::query_scalar("DELETE FROM policy_rules WHERE id = $1 RETURNING position")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(pos) = pos {
                sqlx::query("UPDATE policy_rules SET position = position - 1 WHERE position > $1").bind(pos).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<bool, StoreError>(pos.is_some())
        })
    }

    /// Sets the evaluation order: `ids` must name every rule exactly once.
    pub async fn policy_rules_reorder(&self, ids: &[String]) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // A no-op write first takes SQLite's write lock before the read.
            sqlx::query("UPDATE policy_rules SET position = position WHERE 1 = 0").execute(&mut *tx).await?;
            let mut current: Vec<String> = sqlx::query_scalar("SELECT id FROM policy_rules").fetch_all(&mut *tx).await?;
            let mut wanted = ids.to_vec();
            current.sort();
            wanted.sort();
            let before = wanted.len();
            wanted.dedup();
            if wanted.len() != before {
                return Err(StoreError::Invalid { field: "ids", reason: "a rule id is listed more than once".to_owned() });
            }
            if wanted != current {
                return Err(StoreError::Invalid { field: "ids", reason: "must list every policy rule id exactly once".to_owned() });
            }
            for (i, id) in ids.iter().enumerate() {
                sqlx::query("UPDATE policy_rules SET position = $1 WHERE id = $2 AND position <> $1")
                    .bind(i64::try_from(i).unwrap_or(i64::MAX - 1) + 1)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// Inserts `rules` in order when the table is empty; `false` (nothing
    /// written) when it already holds rules.
    pub async fn policy_rules_seed(&self, rules: &[RuleSpec]) -> Result<bool, StoreError> {
        if !self.policy_rules().await?.is_empty() {
            return Ok(false);
        }
        for spec in rules {
            self.policy_rule_insert(spec, None).await?;
        }
        Ok(true)
    }

    /// Every backend with restricted visibility.
    pub async fn backend_visibilities(&self) -> Result<Vec<BackendVisibility>, StoreError> {
        let rows: Vec<VisibilityRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT backend, roles, users, updated_at FROM backend_visibility ORDER BY backend",
        )
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(BackendVisibility::try_from).collect()
    }

    /// Who may see `backend`; `None` when everyone may.
    pub async fn backend_visibility(&self, backend: &str) -> Result<Option<BackendVisibility>, StoreError> {
        let row: Option<VisibilityRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT backend, roles, users, updated_at FROM backend_visibility WHERE backend = $1",
        )
        .bind(backend)
        .fetch_optional(pool)
        .await)?;
        row.map(BackendVisibility::try_from).transpose()
    }

    /// Restricts `backend` to these roles and users (replacing any earlier restriction).
    pub async fn set_backend_visibility(&self, backend: &str, roles: &[String], users: &[String]) -> Result<BackendVisibility, StoreError> {
        let v = BackendVisibility { backend: backend.to_owned(), roles: roles.to_vec(), users: users.to_vec(), updated_at: now() };
        execute!(
            self,
            "INSERT INTO backend_visibility (backend, roles, users, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (backend) DO UPDATE SET roles = excluded.roles, users = excluded.users, updated_at = excluded.updated_at",
            &v.backend,
            encode_list(&v.roles),
            encode_list(&v.users),
            v.updated_at
        )?;
        Ok(v)
    }

    /// Makes `backend` visible to everyone again; `false` when it was already.
    pub async fn clear_backend_visibility(&self, backend: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "DELETE FROM backend_visibility WHERE backend = $1", backend)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_clamp_to_the_end() {
        assert_eq!(slot(None, 3), 3);
        assert_eq!(slot(Some(1), 3), 0);
        assert_eq!(slot(Some(3), 3), 2);
        assert_eq!(slot(Some(4), 3), 3);
        assert_eq!(slot(Some(99), 3), 3);
        assert_eq!(slot(Some(0), 3), 3);
        assert_eq!(slot(Some(i64::MAX), 0), 0);
    }
}
