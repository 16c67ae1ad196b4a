//! Enrolled agents (table `agents`): each belongs to a user, has a name
//! unique in the hub, and authenticates with a `ga_…` token of which only
//! the keyed hash is kept.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::{Pool, Store, StoreError, execute};

/// Who besides its owner sees an agent's tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AgentSharing {
    /// Usernames.
    pub users: Vec<String>,
    /// Role names.
    pub roles: Vec<String>,
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub user_id: String,
    /// The owner's username.
    pub username: String,
    #[serde(skip)]
    pub token_hash: String,
    /// The first characters of the token, for display.
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The agent version last reported.
    pub last_version: Option<String>,
    pub shared_with: AgentSharing,
}

impl Agent {
    /// False once revoked: a revoked agent's token must be refused.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// What [`Store::insert_agent`] needs.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub user_id: String,
    pub token_hash: String,
    pub token_prefix: String,
}

/// Agent names follow the backend name rule: an agent's tools are exposed
/// as `{agent}__{server}__{tool}`.
pub fn validate_agent_name(name: &str) -> Result<(), StoreError> {
    if crate::config::is_valid_backend_name(name) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "agent name",
            reason: "use 1-32 characters of A-Z a-z 0-9 _ -, starting with a letter or digit, without `__`".to_owned(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: String,
    name: String,
    user_id: String,
    username: String,
    token_hash: String,
    token_prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
    last_version: Option<String>,
    shared_with: String,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;

    fn try_from(r: AgentRow) -> Result<Self, StoreError> {
        let shared_with =
            serde_json::from_str(&r.shared_with).map_err(|e| StoreError::Corrupt(format!("agents.shared_with of {}: {e}", r.name)))?;
        Ok(Agent {
            id: r.id,
            name: r.name,
            user_id: r.user_id,
            username: r.username,
            token_hash: r.token_hash,
            token_prefix: r.token_prefix,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            last_seen_at: r.last_seen_at,
            last_version: r.last_version,
            shared_with,
        })
    }
}

const AGENT_SELECT: &str = "SELECT a.id, a.name, a.user_id, u.username, a.token_hash, a.token_prefix, a.created_at, a.revoked_at, \
     a.last_seen_at, a.last_version, a.shared_with FROM agents a JOIN users u ON u.id = a.user_id";

fn sharing_json(s: &AgentSharing) -> String {
    // Two lists of strings always serialize.
    serde_json::to_string(s).unwrap_or_else(|_| r#"{"users":[],"roles":[]}"#.to_owned())
}

impl Store {
    /// Enrolls an agent. A revoked agent of the same name is replaced; an
    /// active one is a [`StoreError::Conflict`] unless `replace` is set, in
    /// which case it is removed (its token stops working at once).
    pub async fn insert_agent(&self, new: NewAgent, replace: bool) -> Result<Agent, StoreError> {
        validate_agent_name(&new.name)?;
        let id = super::new_id();
        let created_at = super::now();
        let name = new.name.clone();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Write first: a read-then-write SQLite transaction fails outright
            // (SQLITE_BUSY, no retry) when another connection wrote in between.
            sqlx::query("DELETE FROM agents WHERE name = $1 AND (revoked_at IS NOT NULL OR $2)")
                .bind(&new.name)
                .bind(replace)
                .execute(&mut *tx)
                .await?;
            // An active agent of this name (or a token hash collision) violates a unique index.
            sqlx::query(
                "INSERT INTO agents (id, name, user_id, token_hash, token_prefix, created_at, shared_with) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&new.name)
            .bind(&new.user_id)
            .bind(&new.token_hash)
            .bind(&new.token_prefix)
            .bind(created_at)
            .bind(sharing_json(&AgentSharing::default()))
            .execute(&mut *tx)
            .await
            .map_err(|e| super::map_unique(e, || format!("agent `{}`", new.name)))?;
            tx.commit().await?;
        });
        self.agent_by_name(&name).await?.ok_or_else(|| StoreError::Corrupt(format!("agent `{name}` vanished after insert")))
    }

    /// The agent whose token hashes to `hash`, revoked or not (check
    /// [`Agent::is_active`]).
    pub async fn agent_by_token_hash(&self, hash: &str) -> Result<Option<Agent>, StoreError> {
        let sql = format!("{AGENT_SELECT} WHERE a.token_hash = $1");
        let row: Option<AgentRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(hash).fetch_optional(pool).await)?;
        row.map(Agent::try_from).transpose()
    }

    /// The agent called `name`, if any.
    pub async fn agent_by_name(&self, name: &str) -> Result<Option<Agent>, StoreError> {
        let sql = format!("{AGENT_SELECT} WHERE a.name = $1");
        let row: Option<AgentRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(name).fetch_optional(pool).await)?;
        row.map(Agent::try_from).transpose()
    }

    /// Every agent (of `user_id` when given), by name, revoked ones included.
    pub async fn list_agents(&self, user_id: Option<&str>) -> Result<Vec<Agent>, StoreError> {
        let rows: Vec<AgentRow> = match user_id {
            Some(uid) => {
                let sql = format!("{AGENT_SELECT} WHERE a.user_id = $1 ORDER BY a.name");
                with_pool!(self, pool => sqlx::query_as(&sql).bind(uid).fetch_all(pool).await)?
            }
            None => {
                let sql = format!("{AGENT_SELECT} ORDER BY a.name");
                with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?
            }
        };
        rows.into_iter().map(Agent::try_from).collect()
    }

    /// Revokes the agent `name`; `false` when no such active agent exists.
    pub async fn revoke_agent(&self, name: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "UPDATE agents SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL", super::now(), name)?;
        Ok(n > 0)
    }

    /// Records that agent `id` was seen at `at`, running `version` when known.
    pub async fn touch_agent(&self, id: &str, at: DateTime<Utc>, version: Option<&str>) -> Result<(), StoreError> {
        execute!(
            self,
            "UPDATE agents SET last_seen_at = $1, last_version = COALESCE($2, last_version) WHERE id = $3",
            at.trunc_subsecs(6),
            version,
            id
        )?;
        Ok(())
    }

    /// Sets who else sees agent `name`'s tools; `false` when absent.
    pub async fn set_agent_sharing(&self, name: &str, sharing: &AgentSharing) -> Result<bool, StoreError> {
        let n = execute!(self, "UPDATE agents SET shared_with = $1 WHERE name = $2", sharing_json(sharing), name)?;
        Ok(n > 0)
    }
}
