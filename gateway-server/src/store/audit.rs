//! The audit log's tables: `audit_events` (the hash-chained records) and
//! `audit_anchor` (where the chain starts once retention removed its head).
//!
//! Appends serialise on a lock taken inside the transaction (an advisory lock
//! on PostgreSQL, the write lock on SQLite) and read the chain head after
//! taking it, so several hubs sharing one database extend a single chain.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Pool, Store, StoreError};
use crate::audit::chain::{self, Anchor};
use crate::audit::{AuditRecord, Decision, EventKind, EventStatus};

/// Key of the PostgreSQL advisory lock that serialises chain appends
/// (ASCII `GHAUDIT1`); shared by every hub on the database.
const CHAIN_LOCK_KEY: i64 = 0x4748_4155_4449_5431;

/// Largest page [`Store::audit_query`] returns.
pub const AUDIT_MAX_PAGE: u32 = 500;

/// Page size of [`Store::audit_query`] when none is asked for.
pub const AUDIT_DEFAULT_PAGE: u32 = 50;

/// Most groups [`Store::audit_usage`] returns.
pub const USAGE_MAX_ROWS: usize = 10_000;

/// Rows per `INSERT` when appending (31 parameters each; within the
/// parameter limits of SQLite and PostgreSQL).
const ROWS_PER_INSERT: usize = 64;

const AUDIT_COLUMNS: &str = "id, seq, ts, kind, user_id, username, key_id, agent, client_app, session_id, method, backend, tool, \
     decision, rule, status, error_code, error_message, latency_ms, request_bytes, response_bytes, input_tokens, output_tokens, \
     cost_usd, arguments, result, action, target, details, prev_hash, hash";

/// One `audit_events` row as stored: enums as their names, payloads as the
/// JSON text that was hashed. [`chain::record_hash`] works on this form, so
/// verification sees exactly the bytes in the database.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub kind: String,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub key_id: Option<String>,
    pub agent: Option<String>,
    pub client_app: Option<String>,
    pub session_id: Option<String>,
    pub method: Option<String>,
    pub backend: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub status: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub latency_ms: Option<f64>,
    pub request_bytes: Option<i64>,
    pub response_bytes: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub arguments: Option<String>,
    pub result: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub details: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The API form: enums parsed, payloads parsed back into JSON values.
    pub fn into_record(self) -> Result<AuditRecord, StoreError> {
        let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("audit_events.{what} of record {}: `{value}`", self.seq));
        let kind: EventKind = self.kind.parse().map_err(|_| corrupt("kind", &self.kind))?;
        let decision = self.decision.as_deref().map(|d| d.parse::<Decision>().map_err(|_| corrupt("decision", d))).transpose()?;
        let status = self.status.as_deref().map(|s| s.parse::<EventStatus>().map_err(|_| corrupt("status", s))).transpose()?;
        // Text that is not JSON (only possible after tampering) is shown as a string.
        let json = |text: Option<String>| text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)));
        Ok(AuditRecord {
            id: self.id,
            seq: self.seq,
            ts: self.ts,
            kind,
            user_id: self.user_id,
            username: self.username,
            key_id: self.key_id,
            agent: self.agent,
            client_app: self.client_app,
            session_id: self.session_id,
            method: self.method,
            backend: self.backend,
            tool: self.tool,
            decision,
            rule: self.rule,
            status,
            error_code: self.error_code,
            error_message: self.error_message,
            latency_ms: self.latency_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
            arguments: json(self.arguments),
            result: json(self.result),
            action: self.action,
            target: self.target,
            details: json(self.details),
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Which records a query or export covers. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// User id or username.
    pub user: Option<String>,
    pub key_id: Option<String>,
    /// Exact name, or a glob where `*` matches any run of characters.
    pub tool: Option<String>,
    pub backend: Option<String>,
    pub decision: Option<Decision>,
    pub kind: Option<EventKind>,
    pub status: Option<EventStatus>,
    /// Inclusive lower bound on `ts`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `ts`.
    pub to: Option<DateTime<Utc>>,
}

/// One page of records, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// Pass as `cursor` to get the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroupBy {
    #[default]
    User,
    Key,
    /// MCP events by tool (or prompt/resource) name.
    Tool,
    Backend,
    /// AI events by model.
    Model,
}

/// Time buckets of a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageBucket {
    Hour,
    Day,
}

/// A usage aggregation over `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    pub group_by: UsageGroupBy,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: Option<UsageBucket>,
    /// Only this user's events.
    pub user_id: Option<String>,
    /// Only AI proxy events (`kind = 'ai'`).
    pub ai_only: bool,
}

/// One group (and bucket) of a usage report. Admin changes are not usage and
/// never counted.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UsageRow {
    /// The user id, key id, tool, backend or model; `null` when the events had none.
    pub group: Option<String>,
    /// The username, when grouping by user.
    pub label: Option<String>,
    /// Start of the hour or day (RFC 3339, UTC) when bucketed.
    pub bucket: Option<String>,
    pub requests: i64,
    pub errors: i64,
    pub denials: i64,
    pub avg_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

/// Most samples [`Store::audit_samples`] returns.
pub const SAMPLES_MAX_ROWS: u32 = 200_000;

/// The measurements of one MCP or AI request, for live charts.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditSample {
    pub ts: DateTime<Utc>,
    pub kind: String,
    pub backend: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
    pub status: Option<String>,
    pub latency_ms: Option<f64>,
    pub cost_usd: Option<f64>,
}

/// The opaque cursor for "records older than `seq`".
pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

/// The `seq` a cursor from [`encode_cursor`] stands for.
pub fn decode_cursor(cursor: &str) -> Result<i64, StoreError> {
    let invalid = || StoreError::Invalid { field: "cursor", reason: "not a cursor returned by this API".to_owned() };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    text.strip_prefix("seq:").and_then(|n| n.parse::<i64>().ok()).ok_or_else(invalid)
}

/// A value bound to a placeholder of a query built at run time.
enum Arg {
    Text(String),
    Int(i64),
    Ts(DateTime<Utc>),
}

/// Binds every `Arg` in order (the body is compiled once per backend).
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Ts(t) => q.bind(*t),
            };
        }
        q
    }};
}

/// Pushes `arg` and returns its placeholder.
fn push(args: &mut Vec<Arg>, arg: Arg) -> String {
    args.push(arg);
    format!("${}", args.len())
}

/// `pattern` (where `*` is a wildcard) as a GLOB pattern for SQLite, whose
/// LIKE ignores case, unlike PostgreSQL's.
fn sqlite_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// `pattern` (where `*` is a wildcard) as a LIKE pattern with `\` escapes.
fn postgres_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('%'),
            c => out.push(c),
        }
    }
    out
}

impl AuditFilter {
    /// The SQL conditions (joined with AND), pushing their values onto `args`.
    fn conditions(&self, sqlite: bool, args: &mut Vec<Arg>) -> Vec<String> {
        let mut c = Vec::new();
        if let Some(user) = &self.user {
            let a = push(args, Arg::Text(user.clone()));
            let b = push(args, Arg::Text(user.clone()));
            c.push(format!("(user_id = {a} OR username = {b})"));
        }
        if let Some(key) = &self.key_id {
            c.push(format!("key_id = {}", push(args, Arg::Text(key.clone()))));
        }
        if let Some(tool) = &self.tool {
            if !tool.contains('*') {
                c.push(format!("tool = {}", push(args, Arg::Text(tool.clone()))));
            } else if sqlite {
                c.push(format!("tool GLOB {}", push(args, Arg::Text(sqlite_glob(tool)))));
            } else {
                c.push(format!("tool LIKE {} ESCAPE '\\'", push(args, Arg::Text(postgres_like(tool)))));
            }
        }
        if let Some(backend) = &self.backend {
            c.push(format!("backend = {}", push(args, Arg::Text(backend.clone()))));
        }
        if let Some(d) = self.decision {
            c.push(format!("decision = {}", push(args, Arg::Text(d.as_str().to_owned()))));
        }
        if let Some(k) = self.kind {
            c.push(format!("kind = {}", push(args, Arg::Text(k.as_str().to_owned()))));
        }
        if let Some(s) = self.status {
            c.push(format!("status = {}", push(args, Arg::Text(s.as_str().to_owned()))));
        }
        if let Some(from) = self.from {
            c.push(format!("ts >= {}", push(args, Arg::Ts(from))));
        }
        if let Some(to) = self.to {
            c.push(format!("ts < {}", push(args, Arg::Ts(to))));
        }
        c
    }
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

impl Store {
    fn is_sqlite(&self) -> bool {
        matches!(self.pool, Pool::Sqlite(_))
    }

    /// The statement that makes a transaction the only chain writer: the
    /// advisory lock on PostgreSQL; on SQLite a write, which takes the
    /// database write lock before anything is read (a read first could see a
    /// head another connection is about to replace).
    fn chain_lock_sql(&self) -> String {
        if self.is_sqlite() {
            "UPDATE audit_anchor SET seq = seq WHERE id = 1".to_owned()
        } else {
            format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})")
        }
    }

    /// Appends `rows` to the chain in one transaction, in order: assigns each
    /// its `seq`, `prev_hash` and `hash` (overwriting whatever they held).
    /// On error nothing was written and the rows may be passed again.
    pub async fn audit_append(&self, rows: &mut [AuditRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let lock = self.chain_lock_sql();
        let insert = format!("INSERT INTO audit_events ({AUDIT_COLUMNS}) ");
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&lock).execute(&mut *tx).await?;
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
            let head = match head {
                Some(head) => head,
                None => sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or_else(|| (0, chain::GENESIS_HASH.to_owned())),
            };
            let (mut seq, mut prev) = head;
            for row in rows.iter_mut() {
                seq += 1;
                row.seq = seq;
                row.prev_hash = prev;
                row.hash = chain::record_hash(row);
                prev = row.hash.clone();
            }
            // Many rows per statement: each statement is a round trip to the
            // database (for SQLite, to its worker thread).
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::new(&insert);
                q.push_values(chunk, |mut b, row| {
                    b.push_bind(&row.id)
                        .push_bind(row.seq)
                        .push_bind(row.ts)
                        .push_bind(&row.kind)
                        .push_bind(&row.user_id)
                        .push_bind(&row.username)
                        .push_bind(&row.key_id)
                        .push_bind(&row.agent)
                        .push_bind(&row.client_app)
                        .push_bind(&row.session_id)
                        .push_bind(&row.method)
                        .push_bind(&row.backend)
                        .push_bind(&row.tool)
                        .push_bind(&row.decision)
                        .push_bind(&row.rule)
                        .push_bind(&row.status)
                        .push_bind(row.error_code)
                        .push_bind(&row.error_message)
                        .push_bind(row.latency_ms)
                        .push_bind(row.request_bytes)
                        .push_bind(row.response_bytes)
                        .push_bind(row.input_tokens)
                        .push_bind(row.output_tokens)
                        .push_bind(row.cost_usd)
                        .push_bind(&row.arguments)
                        .push_bind(&row.result)
                        .push_bind(&row.action)
                        .push_bind(&row.target)
                        .push_bind(&row.details)
                        .push_bind(&row.prev_hash)
                        .push_bind(&row.hash);
                });
                q.build().persistent(chunk.len() == ROWS_PER_INSERT).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// True when a record with this id exists (to tell, after an error, whether
    /// a commit went through).
    pub async fn audit_has_id(&self, id: &str) -> Result<bool, StoreError> {
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await)?;
        Ok(n > 0)
    }

    /// Where the chain starts.
    pub async fn audit_anchor(&self) -> Result<Anchor, StoreError> {
        let row: Option<(i64, String)> = with_pool!(self, pool => sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
            .fetch_optional(pool)
            .await)?;
        Ok(row.map_or_else(Anchor::genesis, |(seq, hash)| Anchor { seq, hash }))
    }

    /// Records matching `filter`, newest first, `limit` (1..=[`AUDIT_MAX_PAGE`]) at a
    /// time, starting after `cursor` (from a previous page's `next_cursor`).
    pub async fn audit_query(&self, filter: &AuditFilter, cursor: Option<&str>, limit: u32) -> Result<AuditPage, StoreError> {
        if !(1..=AUDIT_MAX_PAGE).contains(&limit) {
            return Err(StoreError::Invalid { field: "limit", reason: format!("must be between 1 and {AUDIT_MAX_PAGE}") });
        }
        let mut args = Vec::new();
        let mut conditions = filter.conditions(self.is_sqlite(), &mut args);
        if let Some(cursor) = cursor {
            let before = decode_cursor(cursor)?;
            conditions.push(format!("seq < {}", push(&mut args, Arg::Int(before))));
        }
        let lim = push(&mut args, Arg::Int(i64::from(limit) + 1));
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events{} ORDER BY seq DESC LIMIT {lim}", where_clause(&conditions));
        let mut rows: Vec<AuditRow> = with_pool!(self, pool => bind_args!(sqlx::query_as(&sql), &args).fetch_all(pool).await)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| encode_cursor(r.seq)) } else { None };
        let items = rows.into_iter().map(AuditRow::into_record).collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage { items, next_cursor })
    }

    /// The record with this id.
    pub async fn audit_get(&self, id: &str) -> Result<Option<AuditRecord>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id = $1");
        let row: Option<AuditRow> = with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(AuditRow::into_record).transpose()
    }

    /// Up to `limit` stored rows matching `filter` with `seq > after_seq`, in
    /// `seq` order: the building block of verification and export, which walk
    /// the table page by page instead of holding it in memory.
    pub async fn audit_rows_after(&self, filter: &AuditFilter, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let mut args = Vec::new();
        let mut conditions = filter.conditions(self.is_sqlite(), &mut args);
        conditions.push(format!("seq > {}", push(&mut args, Arg::Int(after_seq))));
        let lim = push(&mut args, Arg::Int(i64::from(limit.max(1))));
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events{} ORDER BY seq ASC LIMIT {lim}", where_clause(&conditions));
        Ok(with_pool!(self, pool => bind_args!(sqlx::query_as(&sql), &args).fetch_all(pool).await)?)
    }

    /// The `(seq, id)` of a record whose hash is `hash`, other than `except_id`.
    pub async fn audit_find_by_hash(&self, hash: &str, except_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        Ok(with_pool!(self, pool => sqlx::query_as(
            "SELECT seq, id FROM audit_events WHERE hash = $1 AND id <> $2 ORDER BY seq LIMIT 1",
        )
        .bind(hash)
        .bind(except_id)
        .fetch_optional(pool)
        .await)?)
    }

    /// Retention: deletes the oldest records, up to (not including) the
    /// first one at or after `cutoff`, and moves the anchor to the last
    /// deleted record in the same transaction, so the chain still verifies.
    /// Only a prefix of the chain is removed, even when a later record
    /// carries an older timestamp. Returns how many records were deleted.
    pub async fn audit_delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let lock = self.chain_lock_sql();
        let deleted = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&lock).execute(&mut *tx).await?;
            let anchor: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_anchor WHERE id = 1").fetch_optional(&mut *tx).await?;
            let anchor = anchor.unwrap_or(0);
            let first_kept: Option<i64> =
                sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE ts >= $1").bind(cutoff).fetch_one(&mut *tx).await?;
            let bound = match first_kept {
                Some(seq) => Some(seq - 1),
                None => sqlx::query_scalar("SELECT MAX(seq) FROM audit_events").fetch_one(&mut *tx).await?,
            };
            let last: Option<(i64, String)> = match bound {
                Some(bound) if bound > anchor => {
                    sqlx::query_as("SELECT seq, hash FROM audit_events WHERE seq <= $1 ORDER BY seq DESC LIMIT 1")
                        .bind(bound)
                        .fetch_optional(&mut *tx)
                        .await?
                }
                _ => None,
            };
            match last {
                Some((seq, hash)) => {
                    let n = sqlx::query("DELETE FROM audit_events WHERE seq <= $1").bind(seq).execute(&mut *tx).await?.rows_affected();
                    let moved = sqlx::query("UPDATE audit_anchor SET seq = $1, hash = $2 WHERE id = 1")
                        .bind(seq)
                        .bind(&hash)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if moved == 0 {
                        sqlx::query("INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2)")
                            .bind(seq)
                            .bind(&hash)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    n
                }
                None => 0,
            }
        });
        Ok(deleted)
    }

    /// The MCP and AI requests at or after `from`, oldest first, at most
    /// [`SAMPLES_MAX_ROWS`] (the newest when there are more).
    pub async fn audit_samples(&self, from: DateTime<Utc>) -> Result<Vec<AuditSample>, StoreError> {
        let mut args = Vec::new();
        let since = push(&mut args, Arg::Ts(from));
        let lim = push(&mut args, Arg::Int(i64::from(SAMPLES_MAX_ROWS)));
        let sql = format!(
            "SELECT ts, kind, backend, tool, decision, status, latency_ms, cost_usd FROM audit_events \
             WHERE ts >= {since} AND kind <> 'admin' ORDER BY seq DESC LIMIT {lim}"
        );
        let mut rows: Vec<AuditSample> = with_pool!(self, pool => bind_args!(sqlx::query_as(&sql), &args).fetch_all(pool).await)?;
        rows.reverse();
        Ok(rows)
    }

    /// How many records the table holds.
    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(pool).await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Requests, errors, denials, latency, tokens and cost grouped as `q`
    /// asks, over `[q.from, q.to)`; buckets oldest first, then the busiest
    /// groups first. At most [`USAGE_MAX_ROWS`] rows, plus whether more existed.
    pub async fn audit_usage(&self, q: &UsageQuery) -> Result<(Vec<UsageRow>, bool), StoreError> {
        let sqlite = self.is_sqlite();
        let mut args = Vec::new();
        let mut conditions =
            vec![format!("ts >= {}", push(&mut args, Arg::Ts(q.from))), format!("ts < {}", push(&mut args, Arg::Ts(q.to)))];
        let (group, label) = match q.group_by {
            UsageGroupBy::User => ("user_id", "MAX(username)"),
            UsageGroupBy::Key => ("key_id", "CAST(NULL AS TEXT)"),
            UsageGroupBy::Tool => ("tool", "CAST(NULL AS TEXT)"),
            UsageGroupBy::Backend => ("backend", "CAST(NULL AS TEXT)"),
            UsageGroupBy::Model => ("tool", "CAST(NULL AS TEXT)"),
        };
        conditions.push(
            match q.group_by {
                UsageGroupBy::Tool => "kind = 'mcp'",
                UsageGroupBy::Model => "kind = 'ai'",
                _ if q.ai_only => "kind = 'ai'",
                _ => "kind <> 'admin'",
            }
            .to_owned(),
        );
        if let Some(user) = &q.user_id {
            conditions.push(format!("user_id = {}", push(&mut args, Arg::Text(user.clone()))));
        }
        // SQLite keeps `ts` as RFC 3339 text in UTC, so the hour and day are prefixes.
        let bucket = match (q.bucket, sqlite) {
            (None, _) => "CAST(NULL AS TEXT)",
            (Some(UsageBucket::Hour), true) => "substr(ts, 1, 13) || ':00:00Z'",
            (Some(UsageBucket::Day), true) => "substr(ts, 1, 10) || 'T00:00:00Z'",
            (Some(UsageBucket::Hour), false) => "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\":00:00Z\"')",
            (Some(UsageBucket::Day), false) => "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T00:00:00Z\"')",
        };
        // PostgreSQL refuses a constant in GROUP BY, so the bucket joins it only when there is one.
        let group_by = if q.bucket.is_some() { format!("{group}, {bucket}") } else { group.to_owned() };
        let lim = push(&mut args, Arg::Int(i64::try_from(USAGE_MAX_ROWS).unwrap_or(i64::MAX) + 1));
        let sql = format!(
            "SELECT grp AS \"group\", label, bucket, requests, errors, denials, avg_latency_ms, max_latency_ms, \
                    input_tokens, output_tokens, cost_usd FROM ( \
               SELECT {group} AS grp, {label} AS label, {bucket} AS bucket, COUNT(*) AS requests, \
                 CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
                 CAST(SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) AS BIGINT) AS denials, \
                 CAST(AVG(latency_ms) AS DOUBLE PRECISION) AS avg_latency_ms, \
                 CAST(MAX(latency_ms) AS DOUBLE PRECISION) AS max_latency_ms, \
                 CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
                 CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
                 CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd \
               FROM audit_events{} GROUP BY {group_by} \
             ) u ORDER BY bucket, requests DESC, grp LIMIT {lim}",
            where_clause(&conditions)
        );
        let mut rows: Vec<UsageRow> = with_pool!(self, pool => bind_args!(sqlx::query_as(&sql), &args).fetch_all(pool).await)?;
        let truncated = rows.len() > USAGE_MAX_ROWS;
        rows.truncate(USAGE_MAX_ROWS);
        Ok((rows, truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(seq)).unwrap(), seq);
        }
        for bad in ["", "x", "c2VxOg", "!!!", &URL_SAFE_NO_PAD.encode("seq:abc"), &URL_SAFE_NO_PAD.encode("id:4")] {
            assert!(matches!(decode_cursor(bad), Err(StoreError::Invalid { field: "cursor", .. })), "{bad:?}");
        }
    }

    #[test]
    fn glob_translation_escapes_everything_but_star() {
        assert_eq!(sqlite_glob("fs__*"), "fs__*");
        assert_eq!(sqlite_glob("a?b[c]*"), "a[?]b[[]c]*");
        assert_eq!(postgres_like("fs__*"), "fs\\_\\_%");
        assert_eq!(postgres_like("50%\\*"), "50\\%\\\\%");
    }
}
