//! The audit log: one event per MCP request, AI request and admin change,
//! redacted of secrets, written off the hot path through a bounded queue
//! (drops counted, never silent), hash-chained so tampering shows.
//!
//! Callers hand an [`AuditEvent`] to [`Audit::record`], which only enqueues
//! it. One writer task per hub takes events in batches, redacts and bounds
//! their payloads ([`redact`]), and appends each batch to the chain in one
//! transaction ([`chain`] defines what is hashed). A second task applies
//! retention hourly.

pub mod chain;
pub mod redact;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::{Config, ConfigError};
use crate::store::{AuditRow, Store};

pub use chain::{BadRecord, ChainReport, Problem};
pub use redact::Redactor;

/// Default of `audit.queue_capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Default of `audit.retention_days`.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
/// Default of `audit.max_payload_bytes`.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Most events the writer appends in one transaction.
const BATCH: usize = 256;
/// Longest kept value of the short text fields (names, ids, methods).
const MAX_FIELD_BYTES: usize = 1024;
/// At most one "queue full" warning per this interval.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Attempts at writing the last events when shutting down with a failing store.
const SHUTDOWN_WRITE_ATTEMPTS: u32 = 5;
/// Longest [`Audit::shutdown`] waits for the writer.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Backoff between failed writes.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// `[audit]`: audit log settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record events at all (default true). Off only for measurements and
    /// throwaway hubs: nothing is recorded and nothing counts as dropped.
    pub enabled: bool,
    /// Events waiting for the writer; beyond it new events are dropped (and counted).
    pub queue_capacity: usize,
    /// Records older than this many days are deleted hourly; 0 keeps them forever.
    pub retention_days: u64,
    /// Largest `arguments`, `result`, `details` or `error_message` kept, in
    /// bytes of JSON; larger ones are replaced by a truncated preview.
    pub max_payload_bytes: usize,
    /// More member names whose values are redacted (besides the built-in ones).
    pub redact_keys: Vec<String>,
    /// More regular expressions whose matches in string values are redacted.
    pub redact_patterns: Vec<String>,
    /// Store (redacted) tool arguments and results; false keeps only metadata.
    pub record_payloads: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retention_days: DEFAULT_RETENTION_DAYS,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            redact_keys: Vec::new(),
            redact_patterns: Vec::new(),
            record_payloads: true,
        }
    }
}

impl AuditConfig {
    /// Applies `GATEHOUSE_AUDIT_*` variables. `REDACT_KEYS` is comma-separated;
    /// `REDACT_PATTERNS` is a JSON array of strings (regexes contain commas),
    /// or a single pattern.
    pub(crate) fn apply_env(&mut self, l: &mut crate::config::EnvLayer<'_>) -> Result<(), ConfigError> {
        l.flag("audit.enabled", &mut self.enabled)?;
        l.number("audit.queue_capacity", &mut self.queue_capacity)?;
        l.number("audit.retention_days", &mut self.retention_days)?;
        l.number("audit.max_payload_bytes", &mut self.max_payload_bytes)?;
        l.list("audit.redact_keys", &mut self.redact_keys);
        if let Some(v) = l.get("audit.redact_patterns") {
            self.redact_patterns = if v.trim_start().starts_with('[') {
                serde_json::from_str(&v).map_err(|_| {
                    ConfigError::invalid(
                        "audit.redact_patterns",
                        "expected a JSON array of strings (set by GATEHOUSE_AUDIT_REDACT_PATTERNS)",
                    )
                })?
            } else {
                vec![v]
            };
        }
        if let Some(v) = l.get("audit.record_payloads") {
            self.record_payloads = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::invalid(
                        "audit.record_payloads",
                        "expected true or false (set by GATEHOUSE_AUDIT_RECORD_PAYLOADS)",
                    ));
                }
            };
        }
        Ok(())
    }

    /// Checks every value; the error names the offending key (`audit.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1_000_000).contains(&self.queue_capacity) {
            return Err(ConfigError::invalid("audit.queue_capacity", "must be between 1 and 1000000"));
        }
        if self.retention_days > 36_500 {
            return Err(ConfigError::invalid("audit.retention_days", "must be at most 36500 (0 keeps records forever)"));
        }
        if !(256..=16 * 1024 * 1024).contains(&self.max_payload_bytes) {
            return Err(ConfigError::invalid("audit.max_payload_bytes", "must be between 256 and 16777216"));
        }
        for (i, k) in self.redact_keys.iter().enumerate() {
            if k.trim().is_empty() {
                return Err(ConfigError::invalid(format!("audit.redact_keys[{i}]"), "must not be empty"));
            }
        }
        for (i, p) in self.redact_patterns.iter().enumerate() {
            if p.is_empty() {
                return Err(ConfigError::invalid(format!("audit.redact_patterns[{i}]"), "must not be empty"));
            }
        }
        Redactor::new(&self.redact_keys, &self.redact_patterns).map(|_| ())
    }
}

// ---------------------------------------------------------------------------
// Event model
// ---------------------------------------------------------------------------

/// Defines a lowercase string enum with `as_str`, `Display` and `FromStr`.
macro_rules! name_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown value `{other}`; use {}", [$($text),+].join(", "))),
                }
            }
        }
    };
}

name_enum!(
    /// What an event is about.
    EventKind {
        /// An MCP request through `/mcp`.
        Mcp => "mcp",
        /// An AI API request through `/v1/*`.
        Ai => "ai",
        /// A change made through the admin API or CLI.
        Admin => "admin",
    }
);

name_enum!(
    /// What policy or limits decided.
    Decision {
        Allow => "allow",
        Deny => "deny",
    }
);

name_enum!(
    /// How the request ended.
    EventStatus {
        Ok => "ok",
        Error => "error",
        /// The client went away before the end of a streamed answer (AI proxy).
        #[serde(rename = "client_abort")]
        ClientAbort => "client_abort",
    }
);

/// What callers hand to [`Audit::record`]. Everything but `kind` and `ts` is
/// optional; build one with [`AuditEvent::new`] and struct update syntax:
///
/// ```
/// # use gateway_server::audit::{AuditEvent, EventKind, Decision};
/// let ev = AuditEvent { tool: Some("fs__read".into()), decision: Some(Decision::Allow), ..AuditEvent::new(EventKind::Mcp) };
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub kind: EventKind,
    pub ts: DateTime<Utc>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub key_id: Option<String>,
    pub agent: Option<String>,
    pub client_app: Option<String>,
    pub session_id: Option<String>,
    /// E.g. `tools/call`, `chat.completions`.
    pub method: Option<String>,
    pub backend: Option<String>,
    /// Tool, prompt, resource or model name.
    pub tool: Option<String>,
    pub decision: Option<Decision>,
    /// The policy rule or limit that decided, if any.
    pub rule: Option<String>,
    pub status: Option<EventStatus>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub latency_ms: Option<f64>,
    pub request_bytes: Option<i64>,
    pub response_bytes: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// Request arguments (redacted and bounded before storage).
    pub arguments: Option<Value>,
    /// Response (redacted and bounded before storage).
    pub result: Option<Value>,
    /// For admin changes: what was done, e.g. `backend.create`.
    pub action: Option<String>,
    /// For admin changes: what it was done to, e.g. `backends/github`.
    pub target: Option<String>,
    /// For admin changes: the change itself (redacted and bounded).
    pub details: Option<Value>,
}

impl AuditEvent {
    /// An event of `kind` happening now, with nothing else set.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            ts: crate::store::now(),
            user_id: None,
            username: None,
            key_id: None,
            agent: None,
            client_app: None,
            session_id: None,
            method: None,
            backend: None,
            tool: None,
            decision: None,
            rule: None,
            status: None,
            error_code: None,
            error_message: None,
            latency_ms: None,
            request_bytes: None,
            response_bytes: None,
            input_tokens: None,
            output_tokens: None,
            cost_usd: None,
            arguments: None,
            result: None,
            action: None,
            target: None,
            details: None,
        }
    }

    /// An admin change: `action` (`backend.create`) on `target`
    /// (`backends/github`) with `details`; set who did it with [`Self::by`].
    pub fn admin(action: impl Into<String>, target: impl Into<String>, details: Value) -> Self {
        Self { action: Some(action.into()), target: Some(target.into()), details: Some(details), ..Self::new(EventKind::Admin) }
    }

    /// Sets who acted.
    #[must_use]
    pub fn by(mut self, user_id: impl Into<String>, username: impl Into<String>, key_id: Option<String>) -> Self {
        self.user_id = Some(user_id.into());
        self.username = Some(username.into());
        self.key_id = key_id;
        self
    }
}

/// A stored audit record: the event as written (redacted, bounded) plus its
/// place in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// UUID v7.
    pub id: String,
    /// Position in the chain (monotonic, gap-free).
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub kind: EventKind,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub key_id: Option<String>,
    pub agent: Option<String>,
    pub client_app: Option<String>,
    pub session_id: Option<String>,
    pub method: Option<String>,
    pub backend: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<Decision>,
    pub rule: Option<String>,
    pub status: Option<EventStatus>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub latency_ms: Option<f64>,
    pub request_bytes: Option<i64>,
    pub response_bytes: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub arguments: Option<Value>,
    pub result: Option<Value>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub details: Option<Value>,
    /// Hash of the previous record (or of the chain anchor), lowercase hex.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this record's canonical form, lowercase hex.
    pub hash: String,
}

// ---------------------------------------------------------------------------
// The handle and its writer
// ---------------------------------------------------------------------------

enum Msg {
    Event(Box<AuditEvent>),
    /// Answered once every earlier message is in the store.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the writer stops.
    Stop(oneshot::Sender<()>),
}

/// Counters shared by the handle and the writer.
struct Stats {
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    /// Milliseconds after `started` of the last drop warning, plus one (0: never).
    last_drop_warning: AtomicU64,
    started: Instant,
}

impl Stats {
    fn drop_events(&self, n: u64, why: &'static str) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last_drop_warning.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= DROP_WARN_INTERVAL.as_millis() as u64;
        if due && self.last_drop_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            tracing::warn!(dropped_total = total, reason = why, "audit events dropped");
        }
    }
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    capacity: usize,
    stats: Arc<Stats>,
    store: Store,
    config: AuditConfig,
    stop: CancellationToken,
    /// The `seq` of the newest record this hub wrote (live views wait on it).
    head: watch::Receiver<i64>,
    /// Stops the retention task once the last handle is gone.
    _stop_on_drop: DropGuard,
}

/// Handle to the audit log. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("capacity", &self.inner.capacity)
            .field("queue_depth", &self.queue_depth())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// Counters of the audit pipeline (`GET /api/v1/audit/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditStats {
    /// Events waiting for the writer.
    pub queue_depth: u64,
    pub queue_capacity: u64,
    /// Events lost since start (queue full, or the store failing at shutdown).
    pub dropped: u64,
    /// Events written since start.
    pub written: u64,
    /// Failed write attempts since start (each retried).
    pub write_errors: u64,
}

impl Audit {
    /// Starts the background writer (and retention, when configured).
    pub async fn start(config: &Config, store: &Store) -> anyhow::Result<Self> {
        Ok(Self::spawn(&config.audit, store.clone())?)
    }

    /// [`Audit::start`] from the `[audit]` section alone; must run inside a
    /// Tokio runtime.
    pub fn spawn(config: &AuditConfig, store: Store) -> Result<Self, ConfigError> {
        config.validate()?;
        let redactor = Redactor::new(&config.redact_keys, &config.redact_patterns)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let stats = Arc::new(Stats {
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            last_drop_warning: AtomicU64::new(0),
            started: Instant::now(),
        });
        let stop = CancellationToken::new();
        let (head_tx, head) = watch::channel(0);
        let writer = Writer {
            rx,
            store: store.clone(),
            stats: stats.clone(),
            redactor,
            config: config.clone(),
            stop: stop.clone(),
            gave_up: false,
            head: head_tx,
        };
        tokio::spawn(writer.run());
        if config.retention_days > 0 {
            tokio::spawn(retention_task(store.clone(), config.retention_days, stop.clone()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                capacity: config.queue_capacity,
                stats,
                store,
                config: config.clone(),
                head,
                _stop_on_drop: stop.clone().drop_guard(),
                stop,
            }),
        })
    }

    /// Enqueues `ev` for the writer. Never blocks and never waits: when the
    /// queue is full (or the log was shut down) the event is dropped and
    /// counted ([`Audit::dropped`]), with at most one warning per 10 s.
    pub fn record(&self, ev: AuditEvent) {
        if !self.inner.config.enabled {
            return;
        }
        match self.inner.tx.try_send(Msg::Event(Box::new(ev))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.inner.stats.drop_events(1, "the audit queue is full"),
            Err(mpsc::error::TrySendError::Closed(_)) => self.inner.stats.drop_events(1, "the audit log is shut down"),
        }
    }

    /// Events dropped since start.
    pub fn dropped(&self) -> u64 {
        self.inner.stats.dropped.load(Ordering::Relaxed)
    }

    /// Events (and flush markers) waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        if self.inner.tx.is_closed() {
            return 0;
        }
        self.inner.tx.max_capacity().saturating_sub(self.inner.tx.capacity())
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> AuditStats {
        let s = &self.inner.stats;
        AuditStats {
            queue_depth: self.queue_depth() as u64,
            queue_capacity: self.inner.capacity as u64,
            dropped: s.dropped.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &AuditConfig {
        &self.inner.config
    }

    /// Changes whenever this hub appended records, holding the `seq` of the
    /// newest (0 before the first write). Live views wait on it, then read
    /// the store after the `seq` they showed last.
    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.inner.head.clone()
    }

    /// The store records are written to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Returns once every event recorded before the call is in the store
    /// (or was dropped and counted). A marker travels through the same queue,
    /// so it waits for the queue, never for a timer.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.inner.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Flushes, stops the writer and the retention task. Events recorded
    /// afterwards are dropped and counted. With a failing store the writer
    /// gives up after a few attempts, and this waits at most 30 s; either
    /// way the loss is logged with its count. Calling it again does nothing.
    pub async fn shutdown(&self) {
        // Also tells a writer stuck retrying to give up soon.
        self.inner.stop.cancel();
        let (ack, done) = oneshot::channel();
        let stopped = async {
            if self.inner.tx.send(Msg::Stop(ack)).await.is_ok() {
                let _ = done.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, stopped).await.is_err() {
            let pending = self.queue_depth() as u64;
            tracing::error!(pending, "audit events lost: the audit log could not be written before shutdown");
            self.inner.stats.drop_events(pending, "the store did not answer at shutdown");
        }
    }

    /// Applies retention now: deletes records older than
    /// `audit.retention_days` and moves the chain anchor. Returns how many
    /// were deleted (0 when retention is off).
    pub async fn apply_retention(&self) -> Result<u64, crate::store::StoreError> {
        match retention_cutoff(self.inner.config.retention_days) {
            Some(cutoff) => self.inner.store.audit_delete_before(cutoff).await,
            None => Ok(0),
        }
    }

    /// Checks the hash chain ([`chain::verify`]).
    pub async fn verify(&self) -> Result<ChainReport, crate::store::StoreError> {
        chain::verify(&self.inner.store).await
    }
}

/// Records per query of [`export_stream`].
const EXPORT_PAGE: u32 = 500;

/// The records matching `filter` as JSON Lines (one [`AuditRecord`] per
/// line), oldest first, read a page at a time so memory stays flat however
/// large the log is.
pub fn export_stream(
    store: Store,
    filter: crate::store::AuditFilter,
) -> impl futures::Stream<Item = Result<bytes::Bytes, crate::store::StoreError>> + Send + 'static {
    futures::stream::try_unfold((store, filter, Some(i64::MIN)), |(store, filter, after)| async move {
        let Some(after) = after else { return Ok(None) };
        let rows = store.audit_rows_after(&filter, after, EXPORT_PAGE).await?;
        let Some(last) = rows.last().map(|r| r.seq) else { return Ok(None) };
        let more = rows.len() >= EXPORT_PAGE as usize;
        let mut buf = Vec::with_capacity(rows.len() * 512);
        for row in rows {
            serde_json::to_writer(&mut buf, &row.into_record()?).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
            buf.push(b'\n');
        }
        Ok(Some((bytes::Bytes::from(buf), (store, filter, more.then_some(last)))))
    })
}

/// The writer task's state.
struct Writer {
    rx: mpsc::Receiver<Msg>,
    store: Store,
    stats: Arc<Stats>,
    redactor: Redactor,
    config: AuditConfig,
    /// Fired by [`Audit::shutdown`] or when the last handle is gone.
    stop: CancellationToken,
    /// A write failed every attempt while stopping: the store is gone, so
    /// later batches get one attempt each instead of a full round.
    gave_up: bool,
    /// Where the newest written `seq` is announced.
    head: watch::Sender<i64>,
}

impl Writer {
    async fn run(mut self) {
        let mut msgs = Vec::with_capacity(BATCH);
        let mut rows = Vec::with_capacity(BATCH);
        let mut acks = Vec::new();
        loop {
            if self.rx.recv_many(&mut msgs, BATCH).await == 0 {
                // Every handle is gone and the queue is empty.
                return;
            }
            let mut stop = None;
            for msg in msgs.drain(..) {
                match msg {
                    Msg::Event(ev) => rows.push(self.prepare(*ev)),
                    Msg::Flush(ack) => {
                        self.write(&mut rows, stop.is_some()).await;
                        let _ = ack.send(());
                    }
                    Msg::Stop(ack) => {
                        self.write(&mut rows, true).await;
                        stop = Some(ack);
                    }
                }
            }
            match stop {
                None => self.write(&mut rows, false).await,
                Some(ack) => {
                    // No more events are accepted; write what is already queued.
                    self.rx.close();
                    while let Ok(msg) = self.rx.try_recv() {
                        match msg {
                            Msg::Event(ev) => rows.push(self.prepare(*ev)),
                            Msg::Flush(a) | Msg::Stop(a) => acks.push(a),
                        }
                    }
                    self.write(&mut rows, true).await;
                    for a in acks.drain(..).chain(std::iter::once(ack)) {
                        let _ = a.send(());
                    }
                    return;
                }
            }
        }
    }

    /// Appends `rows` (then clears it), retrying with backoff on failure. At
    /// shutdown the attempts are bounded; events that still cannot be
    /// written are counted as dropped and logged.
    async fn write(&mut self, rows: &mut Vec<AuditRow>, stopping: bool) {
        if rows.is_empty() {
            return;
        }
        let mut delay = RETRY_MIN;
        let mut attempts = 0u32;
        loop {
            let stopping = stopping || self.stop.is_cancelled();
            let outcome = self.store.audit_append(rows).await;
            let done = match &outcome {
                Ok(()) => true,
                // The commit may have gone through before the error: the ids tell.
                Err(_) => matches!(self.store.audit_has_id(&rows[0].id).await, Ok(true)),
            };
            if done {
                self.stats.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                if let Some(last) = rows.last().map(|r| r.seq) {
                    self.head.send_replace(last);
                }
                rows.clear();
                return;
            }
            attempts += 1;
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
            if stopping && (self.gave_up || attempts >= SHUTDOWN_WRITE_ATTEMPTS) {
                tracing::error!(count = rows.len(), error, "audit events lost: the store keeps failing at shutdown");
                self.stats.drop_events(rows.len() as u64, "the store failed at shutdown");
                self.gave_up = true;
                rows.clear();
                return;
            }
            tracing::warn!(
                pending = rows.len(),
                attempt = attempts,
                error,
                retry_in_ms = delay.as_millis() as u64,
                "audit write failed; retrying"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled(), if !stopping => {}
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// The row to store for `ev`: redacted, bounded, ready for hashing.
    fn prepare(&self, ev: AuditEvent) -> AuditRow {
        let max = self.config.max_payload_bytes;
        let payload = |v: Option<Value>| {
            v.map(|mut v| {
                self.redactor.redact_value(&mut v);
                redact::bounded_json(&v, max)
            })
        };
        let (arguments, result) = if self.config.record_payloads { (payload(ev.arguments), payload(ev.result)) } else { (None, None) };
        let error_message = ev.error_message.map(|m| {
            let m = self.redactor.redact_str(&m);
            let clipped = redact::clip(&m, max);
            sanitize(if clipped.len() < m.len() { format!("{clipped}…") } else { clipped.to_owned() })
        });
        AuditRow {
            id: uuid::Uuid::now_v7().to_string(),
            seq: 0,
            ts: ev.ts.trunc_subsecs(6),
            kind: ev.kind.as_str().to_owned(),
            user_id: short(ev.user_id),
            username: short(ev.username),
            key_id: short(ev.key_id),
            agent: short(ev.agent),
            client_app: short(ev.client_app),
            session_id: short(ev.session_id),
            method: short(ev.method),
            backend: short(ev.backend),
            tool: short(ev.tool),
            decision: ev.decision.map(|d| d.as_str().to_owned()),
            rule: short(ev.rule),
            status: ev.status.map(|s| s.as_str().to_owned()),
            error_code: ev.error_code,
            error_message,
            latency_ms: ev.latency_ms.filter(|f| f.is_finite()),
            request_bytes: ev.request_bytes,
            response_bytes: ev.response_bytes,
            input_tokens: ev.input_tokens,
            output_tokens: ev.output_tokens,
            cost_usd: ev.cost_usd.filter(|f| f.is_finite()),
            arguments,
            result,
            action: short(ev.action),
            target: short(ev.target),
            details: payload(ev.details),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// PostgreSQL text cannot hold NUL; a row it refuses would be retried forever.
fn sanitize(s: String) -> String {
    if s.contains('\0') { s.replace('\0', "\u{fffd}") } else { s }
}

/// A short text field, bounded and storable.
fn short(s: Option<String>) -> Option<String> {
    s.map(|s| sanitize(if s.len() > MAX_FIELD_BYTES { redact::clip(&s, MAX_FIELD_BYTES).to_owned() } else { s }))
}

fn retention_cutoff(days: u64) -> Option<DateTime<Utc>> {
    if days == 0 {
        return None;
    }
    let days = i64::try_from(days).ok()?;
    Utc::now().checked_sub_signed(chrono::Duration::try_days(days)?)
}

/// Applies retention at start and then hourly until `stop` fires.
async fn retention_task(store: Store, days: u64, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RETENTION_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(cutoff) = retention_cutoff(days) else { return };
        match store.audit_delete_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, retention_days = days, "audit retention applied"),
            Err(e) => tracing::warn!(error = %e, "audit retention failed; retrying in an hour"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn config_defaults_env_and_validation() {
        let c = AuditConfig::default();
        assert_eq!((c.queue_capacity, c.retention_days, c.max_payload_bytes, c.record_payloads), (10_000, 90, 16_384, true));
        c.validate().unwrap();

        let env = MapEnv::new()
            .with("GATEHOUSE_AUDIT_QUEUE_CAPACITY", "5")
            .with("GATEHOUSE_AUDIT_RETENTION_DAYS", "0")
            .with("GATEHOUSE_AUDIT_REDACT_KEYS", "session_id, ssn")
            .with("GATEHOUSE_AUDIT_REDACT_PATTERNS", r#"["a,b", "EMP-\\d+"]"#)
            .with("GATEHOUSE_AUDIT_RECORD_PAYLOADS", "false");
        let config = crate::config::parse("", &env).unwrap();
        let a = &config.audit;
        assert_eq!(a.queue_capacity, 5);
        assert_eq!(a.retention_days, 0);
        assert_eq!(a.redact_keys, vec!["session_id", "ssn"]);
        assert_eq!(a.redact_patterns, vec!["a,b", r"EMP-\d+"]);
        assert!(!a.record_payloads);

        let bad = crate::config::parse("[audit]\nredact_patterns = [\"ok\", \"(\"]\n", &MapEnv::new()).unwrap_err();
        assert_eq!(bad.key(), Some("audit.redact_patterns[1]"));
        let bad = crate::config::parse("[audit]\nqueue_capacity = 0\n", &MapEnv::new()).unwrap_err();
        assert_eq!(bad.key(), Some("audit.queue_capacity"));
        let bad = crate::config::parse("[audit]\nmax_payload_bytes = 10\n", &MapEnv::new()).unwrap_err();
        assert_eq!(bad.key(), Some("audit.max_payload_bytes"));
        let bad = crate::config::parse("", &MapEnv::new().with("GATEHOUSE_AUDIT_RECORD_PAYLOADS", "maybe")).unwrap_err();
        assert_eq!(bad.key(), Some("audit.record_payloads"));
    }

    #[test]
    fn enums_round_trip() {
        for k in [EventKind::Mcp, EventKind::Ai, EventKind::Admin] {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert!("MCP".parse::<EventKind>().is_err());
        assert_eq!("deny".parse::<Decision>().unwrap(), Decision::Deny);
        assert_eq!("error".parse::<EventStatus>().unwrap(), EventStatus::Error);
    }

    #[tokio::test]
    async fn writer_redacts_bounds_and_chains() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let config = AuditConfig { max_payload_bytes: 256, redact_keys: vec!["ssn".into()], ..AuditConfig::default() };
        let audit = Audit::spawn(&config, store.clone()).unwrap();
        audit.record(AuditEvent {
            tool: Some("fs__read".into()),
            arguments: Some(json!({ "path": "/x", "password": "hunter2", "ssn": "123" })),
            result: Some(json!({ "text": "x".repeat(1000) })),
            error_message: Some("upstream said: Bearer abcdefghijklmnopqrstuvwxyz".into()),
            latency_ms: Some(f64::NAN),
            session_id: Some("a\0b".into()),
            ..AuditEvent::new(EventKind::Mcp)
        });
        audit.record(AuditEvent::admin("backend.create", "backends/github", json!({ "token": "t" })).by("u1", "alice", None));
        audit.flush().await;
        assert_eq!(audit.stats().written, 2);
        let page = store.audit_query(&Default::default(), None, 10).await.unwrap();
        let [admin, mcp] = &page.items[..] else { panic!("{page:?}") };
        assert_eq!((mcp.seq, admin.seq), (1, 2));
        assert_eq!(admin.prev_hash, mcp.hash);
        assert_eq!(mcp.arguments, Some(json!({ "path": "/x", "password": "[REDACTED]", "ssn": "[REDACTED]" })));
        assert_eq!(mcp.result.as_ref().unwrap()["truncated"], json!(true));
        assert_eq!(mcp.error_message.as_deref(), Some("upstream said: [REDACTED:bearer]"));
        assert_eq!(mcp.latency_ms, None);
        assert_eq!(mcp.session_id.as_deref(), Some("a\u{fffd}b"));
        assert_eq!(admin.details, Some(json!({ "token": "[REDACTED]" })));
        assert_eq!(admin.username.as_deref(), Some("alice"));
        assert!(audit.verify().await.unwrap().ok);

        audit.shutdown().await;
        audit.record(AuditEvent::new(EventKind::Ai));
        assert_eq!(audit.dropped(), 1);
        audit.flush().await; // returns at once after shutdown
        audit.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_with_a_dead_store_counts_the_loss_and_returns() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let audit = Audit::spawn(&AuditConfig::default(), store.clone()).unwrap();
        store.close().await;
        for _ in 0..3 {
            audit.record(AuditEvent::new(EventKind::Mcp));
        }
        tokio::time::timeout(Duration::from_secs(20), audit.shutdown()).await.expect("shutdown returns");
        let stats = audit.stats();
        assert_eq!((stats.dropped, stats.written), (3, 0));
        assert!(stats.write_errors >= u64::from(SHUTDOWN_WRITE_ATTEMPTS));
    }

    #[tokio::test]
    async fn payloads_can_be_left_out() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let audit = Audit::spawn(&AuditConfig { record_payloads: false, ..AuditConfig::default() }, store.clone()).unwrap();
        audit.record(AuditEvent { arguments: Some(json!({ "a": 1 })), result: Some(json!(2)), ..AuditEvent::new(EventKind::Mcp) });
        audit.flush().await;
        let page = store.audit_query(&Default::default(), None, 10).await.unwrap();
        assert_eq!((page.items[0].arguments.clone(), page.items[0].result.clone()), (None, None));
    }
}
