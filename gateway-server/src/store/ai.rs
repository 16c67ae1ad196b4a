//! The AI API proxy's tables: providers (API keys encrypted), model registrations, prices,
//! budgets, remembered Responses conversations, and spending per subject from the audit log.
//! Values are kept as JSON text; [`crate::ai`] validates them.

use chrono::{DateTime, Utc};

use super::{Pool, Store, StoreError};

/// A stored row: its key, its JSON config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiRow {
    pub key: String,
    pub config: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    key: String,
    config: String,
}

/// Which AI table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiTable {
    Providers,
    Models,
    Budgets,
}

impl AiTable {
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::Providers => ("ai_providers", "name"),
            Self::Models => ("ai_models", "id"),
            Self::Budgets => ("ai_budgets", "id"),
        }
    }
}

impl Store {
    /// Every row of `table`, oldest first.
    pub async fn ai_list(&self, table: AiTable) -> Result<Vec<AiRow>, StoreError> {
        let (t, k) = table.sql();
        let sql = format!("SELECT {k} AS key, config FROM {t} ORDER BY created_at, {k}");
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|r| AiRow { key: r.key, config: r.config }).collect())
    }

    /// Inserts a row; `Conflict` when the key exists. `name` is the model name (models only).
    pub async fn ai_insert(&self, table: AiTable, key: &str, name: Option<&str>, config: &str) -> Result<(), StoreError> {
        let now = super::now();
        let r = match table {
            AiTable::Providers => with_pool!(self, pool => sqlx::query(
                "INSERT INTO ai_providers (name, config, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(key).bind(config).bind(now).execute(pool).await.map(|_| ())),
            AiTable::Models => with_pool!(self, pool => sqlx::query(
                "INSERT INTO ai_models (id, name, config, created_at) VALUES ($1, $2, $3, $4)")
                .bind(key).bind(name.unwrap_or("")).bind(config).bind(now).execute(pool).await.map(|_| ())),
            AiTable::Budgets => with_pool!(self, pool => sqlx::query(
                "INSERT INTO ai_budgets (id, config, created_at) VALUES ($1, $2, $3)")
                .bind(key).bind(config).bind(now).execute(pool).await.map(|_| ())),
        };
        r.map_err(|e| super::map_unique(e, || format!("`{key}`")))
    }

    /// Replaces a row's config; `false` when absent.
    pub async fn ai_update(&self, table: AiTable, key: &str, name: Option<&str>, config: &str) -> Result<bool, StoreError> {
        let n = match table {
            AiTable::Providers => with_pool!(self, pool => sqlx::query(
                "UPDATE ai_providers SET config = $1, updated_at = $2 WHERE name = $3")
                .bind(config).bind(super::now()).bind(key).execute(pool).await.map(|r| r.rows_affected())),
            AiTable::Models => with_pool!(self, pool => sqlx::query("UPDATE ai_models SET config = $1, name = $2 WHERE id = $3")
                .bind(config).bind(name.unwrap_or("")).bind(key).execute(pool).await.map(|r| r.rows_affected())),
            AiTable::Budgets => with_pool!(self, pool => sqlx::query("UPDATE ai_budgets SET config = $1 WHERE id = $2")
                .bind(config).bind(key).execute(pool).await.map(|r| r.rows_affected())),
        }?;
        Ok(n > 0)
    }

    /// Deletes a row; `false` when absent.
    pub async fn ai_delete(&self, table: AiTable, key: &str) -> Result<bool, StoreError> {
        let (t, k) = table.sql();
        let sql = format!("DELETE FROM {t} WHERE {k} = $1");
        let n = with_pool!(self, pool => sqlx::query(&sql).bind(key).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Remembers a Responses conversation (replacing one with the same id); forgets those
    /// older than `keep_since`.
    pub async fn ai_put_response(&self, id: &str, user_id: &str, conversation: &str, keep_since: DateTime<Utc>) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("DELETE FROM ai_responses WHERE id = $1 OR created_at < $2")
            .bind(id).bind(keep_since).execute(pool).await.map(|_| ()))?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO ai_responses (id, user_id, conversation, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id).bind(user_id).bind(conversation).bind(super::now()).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A remembered conversation, only for the user it belongs to.
    pub async fn ai_get_response(&self, id: &str, user_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT conversation FROM ai_responses WHERE id = $1 AND user_id = $2")
            .bind(id).bind(user_id).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Cost and raw tokens of AI events since `since` of one user (by id), key (by id) or role.
    pub async fn ai_spent_since(&self, scope: &str, value: &str, since: DateTime<Utc>) -> Result<(f64, u64), StoreError> {
        let condition = match scope {
            "user" => "user_id = $1",
            "key" => "key_id = $1",
            _ => "user_id IN (SELECT id FROM users WHERE role = $1)",
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION), \
                    CAST(COALESCE(SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)), 0) AS BIGINT) \
             FROM audit_events WHERE kind = 'ai' AND {condition} AND ts >= $2"
        );
        let (usd, tokens): (f64, i64) = with_pool!(self, pool => sqlx::query_as(&sql).bind(value).bind(since).fetch_one(pool).await)?;
        Ok((usd, u64::try_from(tokens).unwrap_or(0)))
    }
}
