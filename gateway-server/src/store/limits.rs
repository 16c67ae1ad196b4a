//! Rate limit rules added at run time (table `limit_rules`). The store keeps
//! them as plain strings; [`crate::limits`] validates and compiles them.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use super::{Pool, Store, StoreError, execute};

/// One stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredLimitRule {
    pub id: String,
    /// `user`, `key`, `backend` or `tool`.
    pub scope: String,
    /// The one subject (or tool glob) the rule is about; `None`: every subject separately.
    pub match_value: Option<String>,
    /// `minute`, `hour` or `day`.
    pub window: String,
    /// `requests` or `tokens`.
    pub unit: String,
    /// The maximum, in `unit` per window.
    pub max_requests: u64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LimitRow {
    id: String,
    scope: String,
    match_value: Option<String>,
    time_window: String,
    unit: String,
    max_requests: i64,
    enabled: bool,
    created_at: DateTime<Utc>,
}

impl From<LimitRow> for StoredLimitRule {
    fn from(r: LimitRow) -> Self {
        Self {
            id: r.id,
            scope: r.scope,
            match_value: r.match_value,
            window: r.time_window,
            unit: r.unit,
            max_requests: u64::try_from(r.max_requests).unwrap_or(0),
            enabled: r.enabled,
            created_at: r.created_at,
        }
    }
}

fn max_as_i64(max: u64) -> Result<i64, StoreError> {
    i64::try_from(max).map_err(|_| StoreError::Invalid { field: "max_requests", reason: "too large".to_owned() })
}

impl Store {
    /// Every stored rule, oldest first.
    pub async fn list_limit_rules(&self) -> Result<Vec<StoredLimitRule>, StoreError> {
        let rows: Vec<LimitRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT id, scope, match_value, time_window, unit, max_requests, enabled, created_at FROM limit_rules ORDER BY id",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(StoredLimitRule::from).collect())
    }

    /// Stores a new rule (`id` and `created_at` as given).
    pub async fn insert_limit_rule(&self, rule: &StoredLimitRule) -> Result<(), StoreError> {
        let max = max_as_i64(rule.max_requests)?;
        execute!(
            self,
            "INSERT INTO limit_rules (id, scope, match_value, time_window, unit, max_requests, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &rule.id,
            &rule.scope,
            &rule.match_value,
            &rule.window,
            &rule.unit,
            max,
            rule.enabled,
            rule.created_at.trunc_subsecs(6)
        )
        .map_err(|e| super::map_unique(e, || format!("limit rule `{}`", rule.id)))?;
        Ok(())
    }

    /// Replaces rule `rule.id` (keeping its `created_at`); `false` when absent.
    pub async fn update_limit_rule(&self, rule: &StoredLimitRule) -> Result<bool, StoreError> {
        let max = max_as_i64(rule.max_requests)?;
        let n = execute!(
            self,
            "UPDATE limit_rules SET scope = $1, match_value = $2, time_window = $3, unit = $4, max_requests = $5, enabled = $6 \
             WHERE id = $7",
            &rule.scope,
            &rule.match_value,
            &rule.window,
            &rule.unit,
            max,
            rule.enabled,
            &rule.id
        )?;
        Ok(n > 0)
    }

    /// Deletes rule `id`; `false` when absent.
    pub async fn delete_limit_rule(&self, id: &str) -> Result<bool, StoreError> {
        let n = execute!(self, "DELETE FROM limit_rules WHERE id = $1", id)?;
        Ok(n > 0)
    }
}
