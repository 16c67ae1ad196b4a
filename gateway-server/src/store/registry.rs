//! Store methods of the tool registry: the `tools` table.
//!
//! Definitions are JSON text in both backends. Writes that follow a backend
//! sync run in one transaction, so a sync of many tools costs one commit.
//! No method here ever changes `enabled` or `risk_override` except the two
//! that exist for that: admin decisions survive every sync.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Pool, Store, StoreError, execute, map_unique};
use crate::registry::{Risk, ToolStatus};

/// One row of `tools`: a tool of a backend with its pinned definition.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTool {
    pub id: String,
    /// The backend's name (`{agent}__{server}` for an agent's server).
    pub backend: String,
    /// The backend's own tool name.
    pub name: String,
    pub agent: Option<String>,
    /// Pinned definition: title, description, schemas, annotations.
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
    pub risk_auto: Risk,
    pub risk_override: Option<Risk>,
    pub enabled: bool,
    /// Hash of the latest definition seen.
    pub definition_hash: String,
    /// Hash of the approved definition.
    pub pinned_hash: String,
    /// The latest definition when it differs from the pinned one.
    pub pending_definition: Option<Value>,
    pub status: ToolStatus,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
}

const TOOL_COLUMNS: &str = "id, backend, name, agent, title, description, input_schema, output_schema, annotations, \
     risk_auto, risk_override, enabled, definition_hash, pinned_hash, pending_definition, status, first_seen, last_seen, \
     approved_by, approved_at";

#[derive(sqlx::FromRow)]
struct ToolRow {
    id: String,
    backend: String,
    name: String,
    agent: Option<String>,
    title: Option<String>,
    description: Option<String>,
    input_schema: Option<String>,
    output_schema: Option<String>,
    annotations: Option<String>,
    risk_auto: String,
    risk_override: Option<String>,
    enabled: bool,
    definition_hash: String,
    pinned_hash: String,
    pending_definition: Option<String>,
    status: String,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
}

impl TryFrom<ToolRow> for StoredTool {
    type Error = StoreError;

    fn try_from(row: ToolRow) -> Result<Self, StoreError> {
        let id = row.id;
        let json = |text: Option<String>, what: &str| -> Result<Option<Value>, StoreError> {
            text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("tools.{what} of tool {id}: {e}")))).transpose()
        };
        let risk = |text: &str, what: &str| -> Result<Risk, StoreError> {
            text.parse().map_err(|e: String| StoreError::Corrupt(format!("tools.{what} of tool {id}: {e}")))
        };
        Ok(StoredTool {
            input_schema: json(row.input_schema, "input_schema")?,
            output_schema: json(row.output_schema, "output_schema")?,
            annotations: json(row.annotations, "annotations")?,
            pending_definition: json(row.pending_definition, "pending_definition")?,
            risk_auto: risk(&row.risk_auto, "risk_auto")?,
            risk_override: row.risk_override.as_deref().map(|r| risk(r, "risk_override")).transpose()?,
            status: row.status.parse().map_err(|e: String| StoreError::Corrupt(format!("tools.status of tool {id}: {e}")))?,
            id,
            backend: row.backend,
            name: row.name,
            agent: row.agent,
            title: row.title,
            description: row.description,
            enabled: row.enabled,
            definition_hash: row.definition_hash,
            pinned_hash: row.pinned_hash,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            approved_by: row.approved_by,
            approved_at: row.approved_at,
        })
    }
}

fn json_text(v: Option<&Value>) -> Option<String> {
    v.map(Value::to_string)
}

/// The writes one backend sync produces.
#[derive(Debug, Default, Clone)]
pub struct ToolSyncWrites {
    /// Tools seen for the first time.
    pub inserts: Vec<StoredTool>,
    /// Tools whose definition state changed (definition columns, hashes,
    /// status, pending definition, risk, last seen).
    pub updates: Vec<StoredTool>,
    /// Ids of tools seen again unchanged: only `last_seen` moves.
    pub touched: Vec<String>,
    /// When the sync happened.
    pub at: Option<DateTime<Utc>>,
}

macro_rules! bind_definition {
    ($q:expr, $t:expr) => {
        $q.bind(&$t.agent)
            .bind(&$t.title)
            .bind(&$t.description)
            .bind(json_text($t.input_schema.as_ref()))
            .bind(json_text($t.output_schema.as_ref()))
            .bind(json_text($t.annotations.as_ref()))
            .bind($t.risk_auto.as_str())
            .bind(&$t.definition_hash)
            .bind(&$t.pinned_hash)
            .bind(json_text($t.pending_definition.as_ref()))
            .bind($t.status.as_str())
            .bind($t.last_seen)
            .bind(&$t.approved_by)
            .bind($t.approved_at)
    };
}

const UPDATE_DEFINITION: &str = "UPDATE tools SET agent = $1, title = $2, description = $3, input_schema = $4, \
     output_schema = $5, annotations = $6, risk_auto = $7, definition_hash = $8, pinned_hash = $9, \
     pending_definition = $10, status = $11, last_seen = $12, approved_by = $13, approved_at = $14 WHERE id = $15";

impl Store {
    /// Every registered tool, by backend then name.
    pub async fn tools_all(&self) -> Result<Vec<StoredTool>, StoreError> {
        let sql = format!("SELECT {TOOL_COLUMNS} FROM tools ORDER BY backend, name");
        let rows: Vec<ToolRow> = with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(StoredTool::try_from).collect()
    }

    /// The tools registered for `backend`.
    pub async fn tools_of_backend(&self, backend: &str) -> Result<Vec<StoredTool>, StoreError> {
        let sql = format!("SELECT {TOOL_COLUMNS} FROM tools WHERE backend = $1 ORDER BY name");
        let rows: Vec<ToolRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(backend).fetch_all(pool).await)?;
        rows.into_iter().map(StoredTool::try_from).collect()
    }

    /// The tool with this id.
    pub async fn tool_by_id(&self, id: &str) -> Result<Option<StoredTool>, StoreError> {
        let sql = format!("SELECT {TOOL_COLUMNS} FROM tools WHERE id = $1");
        let row: Option<ToolRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(StoredTool::try_from).transpose()
    }

    /// Applies one sync in a transaction. A tool inserted meanwhile by another
    /// hub (same backend and name) is left alone.
    pub async fn tools_apply_sync(&self, w: &ToolSyncWrites) -> Result<(), StoreError> {
        let at = w.at.unwrap_or_else(super::now);
        let insert_sql = format!(
            "INSERT INTO tools ({TOOL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20) ON CONFLICT (backend, name) DO NOTHING"
        );
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for t in &w.inserts {
                sqlx::query(&insert_sql)
                    .bind(&t.id)
                    .bind(&t.backend)
                    .bind(&t.name)
                    .bind(&t.agent)
                    .bind(&t.title)
                    .bind(&t.description)
                    .bind(json_text(t.input_schema.as_ref()))
                    .bind(json_text(t.output_schema.as_ref()))
                    .bind(json_text(t.annotations.as_ref()))
                    .bind(t.risk_auto.as_str())
                    .bind(t.risk_override.map(Risk::as_str))
                    .bind(t.enabled)
                    .bind(&t.definition_hash)
                    .bind(&t.pinned_hash)
                    .bind(json_text(t.pending_definition.as_ref()))
                    .bind(t.status.as_str())
                    .bind(t.first_seen)
                    .bind(t.last_seen)
                    .bind(&t.approved_by)
                    .bind(t.approved_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_unique(e, || format!("tool `{}` of backend `{}`", t.name, t.backend)))?;
            }
            for t in &w.updates {
                bind_definition!(sqlx::query(UPDATE_DEFINITION), t).bind(&t.id).execute(&mut *tx).await?;
            }
            for id in &w.touched {
                sqlx::query("UPDATE tools SET last_seen = $1 WHERE id = $2").bind(at).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// Rewrites the definition state of one tool (approval): everything but
    /// `enabled`, `risk_override`, `first_seen` and the identity columns.
    /// `false` when no such tool exists.
    pub async fn tool_update_definition(&self, t: &StoredTool) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => bind_definition!(sqlx::query(UPDATE_DEFINITION), t)
            .bind(&t.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Sets the admin's enabled flag; `false` when no such tool exists.
    pub async fn tool_set_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        let n = execute!(self, "UPDATE tools SET enabled = $1 WHERE id = $2", enabled, id)?;
        Ok(n > 0)
    }

    /// Sets or clears the admin's risk override; `false` when no such tool exists.
    pub async fn tool_set_risk_override(&self, id: &str, risk: Option<Risk>) -> Result<bool, StoreError> {
        let n = execute!(self, "UPDATE tools SET risk_override = $1 WHERE id = $2", risk.map(Risk::as_str), id)?;
        Ok(n > 0)
    }
}
