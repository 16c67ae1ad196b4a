//! Rate limits: requests (or, for the AI API, tokens) per minute/hour/day
//! per user, key, backend and tool over sliding windows.
//!
//! Rules come from the config file (`[[limits.rules]]`, read-only) and from
//! the store (table `limit_rules`, managed through the admin API). Each rule
//! has a scope (`user`, `key`, `backend`, `tool`), an optional `match` (one
//! username, key id or backend name, or a tool name glob), a window and a
//! maximum. Without `match` a rule applies to every subject of its scope
//! separately (every user gets their own 100 per minute); with one it
//! applies to that subject only, and a tool glob shares one counter among
//! all the tools it matches.
//!
//! [`Limits::check`] is called by the MCP data path and the AI proxy for
//! every request. It first looks at every applicable rule without counting,
//! and only when all allow does it count the request against each, so a
//! refused request never uses up quota. With no rule in force it takes a
//! read lock and returns, allocating nothing; otherwise it costs one counter
//! lookup per applicable rule. Counters live in a [`LimitStore`]; the
//! in-process [`MemoryStore`] is described, with its accuracy and the design
//! of a Redis store for several hubs, in [`window`].
//!
//! A rule counts requests (`max_requests`) or tokens (`max_tokens`). Token
//! rules apply to the AI API only (`backend` is the provider, `tool` the
//! model): a request is admitted while the window holds fewer tokens than the
//! maximum, and its tokens are counted when its usage is known
//! ([`Limits::record_tokens`]), so one large answer can overshoot the window
//! once; the next request then waits until enough tokens expired.
//!
//! Runtime rules are re-read after every change made through this hub and
//! every [`RELOAD_INTERVAL`], so changes made on another hub sharing the
//! store apply within that time.

pub mod window;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Config, ConfigError};
use crate::store::{Store, StoreError, StoredLimitRule};
pub use window::{CounterKey, HitResult, LimitStore, MemoryStore};

/// How often runtime rules are re-read and idle counters evicted.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// Largest `max_requests` accepted.
pub const MAX_REQUESTS: u64 = 1_000_000_000;
/// Longest `match` value accepted.
pub const MAX_MATCH_LEN: usize = 256;
/// Default of `limits.max_counters`.
pub const DEFAULT_MAX_COUNTERS: usize = 100_000;

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    User,
    Key,
    Backend,
    Tool,
}

impl Scope {
    /// The name used in config, API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Key => "key",
            Self::Backend => "backend",
            Self::Tool => "tool",
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Self::User),
            "key" => Ok(Self::Key),
            "backend" => Ok(Self::Backend),
            "tool" => Ok(Self::Tool),
            other => Err(format!("unknown scope `{other}`; use user, key, backend or tool")),
        }
    }
}

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Requests (every surface).
    #[default]
    Requests,
    /// Tokens used (the AI API only).
    Tokens,
}

impl Unit {
    /// The name used in config, API and refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
        }
    }
}

impl FromStr for Unit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "requests" => Ok(Self::Requests),
            "tokens" => Ok(Self::Tokens),
            other => Err(format!("unknown unit `{other}`; use requests or tokens")),
        }
    }
}

/// A rule's maximum: `max_requests` or `max_tokens`, exactly one.
fn rule_max(max_requests: Option<u64>, max_tokens: Option<u64>) -> Result<(Unit, u64), (&'static str, String)> {
    match (max_requests, max_tokens) {
        (Some(n), None) => Ok((Unit::Requests, n)),
        (None, Some(n)) => Ok((Unit::Tokens, n)),
        (Some(_), Some(_)) => Err(("max_tokens", "give max_requests or max_tokens, not both".to_owned())),
        (None, None) => Err(("max_requests", "give max_requests (or max_tokens for AI token limits)".to_owned())),
    }
}

/// `(max_requests, max_tokens)` for a maximum in `unit`.
fn split_max(unit: Unit, max: u64) -> (Option<u64>, Option<u64>) {
    match unit {
        Unit::Requests => (Some(max), None),
        Unit::Tokens => (None, Some(max)),
    }
}

/// The length of a rule's sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Minute,
    Hour,
    Day,
}

impl Window {
    /// The name used in config and API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The window's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        })
    }

    /// The length of one of its [`window::SLOTS`] slots.
    pub fn slot_len(self) -> Duration {
        self.duration() / window::SLOTS as u32
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minute" => Ok(Self::Minute),
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            other => Err(format!("unknown window `{other}`; use minute, hour or day")),
        }
    }
}

/// One `[[limits.rules]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRuleConfig {
    /// Names the rule in refusals and the API; default `config-N` (N from 1).
    #[serde(default)]
    pub id: Option<String>,
    pub scope: Scope,
    /// One username, key id or backend name, or a tool name glob; absent:
    /// every user/key/backend/tool separately.
    #[serde(default, rename = "match")]
    pub match_value: Option<String>,
    pub window: Window,
    /// Requests per window.
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Tokens per window (AI API only); instead of `max_requests`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `[limits]`: rate limit settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most sliding-window counters kept in memory (one per rule and subject
    /// seen within its window).
    pub max_counters: usize,
    /// Rules from the file; read-only through the API.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<LimitRuleConfig>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_counters: DEFAULT_MAX_COUNTERS, rules: Vec::new() }
    }
}

impl LimitsConfig {
    /// Applies `GATEHOUSE_LIMITS_*` variables (rules come from the file only).
    pub(crate) fn apply_env(&mut self, l: &mut crate::config::EnvLayer<'_>) -> Result<(), ConfigError> {
        l.number("limits.max_counters", &mut self.max_counters)
    }

    /// Checks every value; the error names the offending key (`limits.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_counters == 0 {
            return Err(ConfigError::invalid("limits.max_counters", "must be greater than 0"));
        }
        let mut ids = BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = |f: &str| format!("limits.rules[{i}].{f}");
            let id = config_rule_id(i, r);
            if let Some(given) = &r.id
                && !is_valid_rule_id(given)
            {
                return Err(ConfigError::invalid(key("id"), "use 1-64 characters of A-Z a-z 0-9 _ -"));
            }
            if !ids.insert(id.clone()) {
                return Err(ConfigError::invalid(key("id"), format!("duplicate rule id `{id}`")));
            }
            let (_, max) = rule_max(r.max_requests, r.max_tokens).map_err(|(field, why)| ConfigError::invalid(key(field), why))?;
            validate_rule(r.scope, r.match_value.as_deref(), max).map_err(|(field, why)| ConfigError::invalid(key(field), why))?;
        }
        Ok(())
    }
}

fn config_rule_id(i: usize, r: &LimitRuleConfig) -> String {
    r.id.clone().unwrap_or_else(|| format!("config-{}", i + 1))
}

fn is_valid_rule_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a rule's values; the error names the field (`match`, `max_requests`).
fn validate_rule(scope: Scope, match_value: Option<&str>, max: u64) -> Result<(), (&'static str, String)> {
    if max == 0 || max > MAX_REQUESTS {
        return Err(("max_requests", format!("must be between 1 and {MAX_REQUESTS}")));
    }
    if let Some(m) = match_value {
        if m.is_empty() || m.len() > MAX_MATCH_LEN {
            return Err((
                "match",
                format!("must be 1-{MAX_MATCH_LEN} characters (omit it to apply to each {} separately)", scope.as_str()),
            ));
        }
        if m.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(("match", "must not contain whitespace or control characters".to_owned()));
        }
        if scope == Scope::Tool {
            Glob::new(m).map_err(|e| ("match", format!("invalid tool glob: {}", e.kind())))?;
        }
    }
    Ok(())
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// The config file: read-only.
    Config,
    /// The store, managed through the admin API.
    Runtime,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LimitRule {
    pub id: String,
    pub source: RuleSource,
    pub scope: Scope,
    /// One subject or tool glob; absent: each subject separately.
    #[serde(rename = "match")]
    pub match_value: Option<String>,
    pub window: Window,
    /// What the rule counts.
    pub unit: Unit,
    /// Requests per window (request rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
    /// Tokens per window (token rules, AI API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    pub enabled: bool,
    /// When it was added (runtime rules).
    pub created_at: Option<DateTime<Utc>>,
}

/// A rule to create or the new content of one (`PUT`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLimitRule {
    pub scope: Scope,
    /// One username, key id or backend name, or a tool glob; omit for each subject separately.
    #[serde(default, rename = "match")]
    pub match_value: Option<String>,
    pub window: Window,
    /// Requests per window, 1 to 1 000 000 000.
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Tokens per window (AI API only), 1 to 1 000 000 000; instead of `max_requests`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl NewLimitRule {
    /// The store row for this content under `id`; creating and replacing a
    /// rule write the same columns.
    fn into_stored(self, id: String, created_at: DateTime<Utc>) -> Result<StoredLimitRule, LimitsError> {
        let (unit, max) = rule_max(self.max_requests, self.max_tokens).map_err(|(field, reason)| LimitsError::Invalid { field, reason })?;
        validate_rule(self.scope, self.match_value.as_deref(), max).map_err(|(field, reason)| LimitsError::Invalid { field, reason })?;
        Ok(StoredLimitRule {
            id,
            scope: self.scope.as_str().to_owned(),
            match_value: self.match_value,
            window: self.window.as_str().to_owned(),
            unit: unit.as_str().to_owned(),
            max_requests: max,
            enabled: self.enabled,
            created_at,
        })
    }
}

/// Who and what one request is, for [`Limits::check`].
#[derive(Debug, Clone, Copy)]
pub struct LimitInput<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub key_id: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub tool: Option<&'a str>,
    /// An AI API request: token rules apply.
    pub ai: bool,
}

/// Why a request was refused: which rule, for whom, and when to retry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LimitRefusal {
    pub rule_id: String,
    pub scope: String,
    /// The counted subject: a username, key id, backend or tool name, or the rule's match value.
    pub subject: String,
    pub window: String,
    /// `requests` or `tokens`.
    pub unit: String,
    /// The rule's maximum, in `unit` per window.
    pub max: u64,
    pub retry_after_secs: u64,
}

impl LimitRefusal {
    /// One line for people, e.g. `rate limit exceeded: 10 requests per
    /// minute per user (rule r1); retry in 12 s`.
    pub fn message(&self) -> String {
        let unit = self.unit.strip_suffix('s').unwrap_or(&self.unit);
        format!(
            "rate limit exceeded: {} {unit}{} per {} per {} (rule {}); retry in {} s",
            self.max,
            if self.max == 1 { "" } else { "s" },
            self.window,
            self.scope,
            self.rule_id,
            self.retry_after_secs
        )
    }

    /// The JSON-RPC error an MCP client gets: code `RATE_LIMITED` (-32013),
    /// the refusal itself as `data`.
    pub fn to_error_object(&self) -> gatehouse_proto::ErrorObject {
        gatehouse_proto::ErrorObject::new(gatehouse_proto::mcp::code::RATE_LIMITED, self.message())
            .with_data(serde_json::to_value(self).unwrap_or_default())
    }
}

impl fmt::Display for LimitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// One rule's current count for a subject (`GET /limits/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LimitStatus {
    pub rule_id: String,
    pub scope: Scope,
    pub subject: String,
    pub window: Window,
    pub unit: Unit,
    /// The maximum, in `unit` per window.
    pub max: u64,
    /// Requests or tokens counted in the current window.
    pub count: u64,
    pub remaining: u64,
}

/// Why a limits operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// A value is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// No rule with this id.
    #[error("no limit rule `{0}`")]
    NotFound(String),
    /// The rule comes from the config file.
    #[error("limit rule `{0}` comes from the config file and is read-only")]
    ReadOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Matcher {
    /// Every subject separately.
    Each,
    /// One subject.
    Exact(Box<str>),
    /// Tools matching a glob, counted together under the glob.
    Glob(Box<str>, GlobMatcher),
}

struct Compiled {
    id: Box<str>,
    scope: Scope,
    matcher: Matcher,
    window: Window,
    unit: Unit,
    max: u64,
}

impl Compiled {
    fn new(rule: &LimitRule) -> Option<Self> {
        let matcher = match (&rule.match_value, rule.scope) {
            (None, _) => Matcher::Each,
            (Some(glob), Scope::Tool) => Matcher::Glob(glob.as_str().into(), Glob::new(glob).ok()?.compile_matcher()),
            (Some(v), _) => Matcher::Exact(v.as_str().into()),
        };
        let (unit, max) = rule_max(rule.max_requests, rule.max_tokens).ok()?;
        Some(Self { id: rule.id.as_str().into(), scope: rule.scope, matcher, window: rule.window, unit, max })
    }

    /// The subject this rule counts `input` under, when it applies.
    fn subject<'a>(&'a self, input: &LimitInput<'a>) -> Option<&'a str> {
        if self.unit == Unit::Tokens && !input.ai {
            return None;
        }
        let value = match self.scope {
            Scope::User => Some(input.username),
            Scope::Key => input.key_id,
            Scope::Backend => input.backend,
            Scope::Tool => input.tool,
        }?;
        match &self.matcher {
            Matcher::Each => Some(value),
            Matcher::Exact(want) => (**want == *value).then_some(&**want),
            Matcher::Glob(glob, m) => m.is_match(value).then_some(&**glob),
        }
    }

    fn key<'a>(&'a self, subject: &'a str) -> CounterKey<'a> {
        CounterKey { rule: &self.id, subject }
    }

    fn refusal(&self, subject: &str, retry_after: Duration) -> LimitRefusal {
        // Round up: retrying early would be refused again.
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        LimitRefusal {
            rule_id: self.id.to_string(),
            scope: self.scope.as_str().to_owned(),
            subject: subject.to_owned(),
            window: self.window.as_str().to_owned(),
            unit: self.unit.as_str().to_owned(),
            max: self.max,
            retry_after_secs: secs.max(1),
        }
    }
}

struct Inner {
    store: Store,
    config_rules: Vec<LimitRule>,
    runtime_rules: RwLock<Vec<LimitRule>>,
    /// Enabled rules, config first; swapped whole on reload.
    compiled: RwLock<Arc<Vec<Compiled>>>,
    counters: Box<dyn LimitStore>,
    metrics: OnceLock<crate::metrics::Metrics>,
}

/// The limiter. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits").field("rules", &self.inner.compiled.read().len()).field("counters", &self.inner.counters.len()).finish()
    }
}

impl Limits {
    /// Loads the configured and stored rules and starts the background
    /// reload/eviction task (it ends when the last clone is dropped).
    pub async fn start(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let counters = MemoryStore::new(Instant::now(), config.limits.max_counters);
        let limits = Self::with_store(config, store, Box::new(counters));
        limits.reload().await?;
        let weak = Arc::downgrade(&limits.inner);
        tokio::spawn(maintain(weak));
        Ok(limits)
    }

    /// A limiter over `counters`, with only the config rules loaded (call
    /// [`Limits::reload`] for the stored ones).
    pub fn with_store(config: &Config, store: &Store, counters: Box<dyn LimitStore>) -> Self {
        let config_rules: Vec<LimitRule> = config
            .limits
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| LimitRule {
                id: config_rule_id(i, r),
                source: RuleSource::Config,
                scope: r.scope,
                match_value: r.match_value.clone(),
                window: r.window,
                // Validated at load: exactly one maximum is set.
                unit: rule_max(r.max_requests, r.max_tokens).map_or(Unit::Requests, |(unit, _)| unit),
                max_requests: r.max_requests,
                max_tokens: r.max_tokens,
                enabled: r.enabled,
                created_at: None,
            })
            .collect();
        let limits = Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                config_rules,
                runtime_rules: RwLock::new(Vec::new()),
                compiled: RwLock::new(Arc::new(Vec::new())),
                counters,
                metrics: OnceLock::new(),
            }),
        };
        limits.recompile();
        limits
    }

    /// Counts refusals in `metrics` (`gatehouse_rate_limited_total`).
    #[must_use]
    pub fn with_metrics(self, metrics: crate::metrics::Metrics) -> Self {
        let _ = self.inner.metrics.set(metrics);
        self
    }

    /// Admits or refuses one request now; see [`Limits::check_at`].
    pub fn check(&self, input: &LimitInput<'_>) -> Result<(), LimitRefusal> {
        self.check_at(input, Instant::now())
    }

    /// Admits one request at `now` and counts it against every applicable
    /// rule, or refuses it (counting nothing) naming the first rule it would
    /// exceed. Refusals are counted in the attached metrics.
    pub fn check_at(&self, input: &LimitInput<'_>, now: Instant) -> Result<(), LimitRefusal> {
        let rules = self.inner.compiled.read().clone();
        if rules.is_empty() {
            return Ok(());
        }
        let counters = &*self.inner.counters;
        // Look first: a request refused by any rule must not use up the others.
        for r in rules.iter() {
            if let Some(subject) = r.subject(input)
                && let HitResult::Refused { retry_after, .. } = counters.peek(r.key(subject), r.window, r.max, now)
            {
                return Err(self.refused(r, subject, retry_after));
            }
        }
        for (i, r) in rules.iter().enumerate() {
            // Tokens are counted once the answer's usage is known.
            if r.unit == Unit::Tokens {
                continue;
            }
            let Some(subject) = r.subject(input) else { continue };
            if let HitResult::Refused { retry_after, .. } = counters.hit(r.key(subject), r.window, r.max, now) {
                // A concurrent request took the last slot since we looked: take back ours.
                for earlier in &rules[..i] {
                    if let Some(s) = earlier.subject(input)
                        && earlier.unit == Unit::Requests
                    {
                        counters.undo(earlier.key(s), earlier.window, now);
                    }
                }
                return Err(self.refused(r, subject, retry_after));
            }
        }
        Ok(())
    }

    /// Counts `tokens` used by an admitted AI request against every token
    /// rule that applies to it.
    pub fn record_tokens(&self, input: &LimitInput<'_>, tokens: u64) {
        self.record_tokens_at(input, tokens, Instant::now());
    }

    /// [`Limits::record_tokens`] at `now`.
    pub fn record_tokens_at(&self, input: &LimitInput<'_>, tokens: u64, now: Instant) {
        if tokens == 0 {
            return;
        }
        let rules = self.inner.compiled.read().clone();
        for r in rules.iter().filter(|r| r.unit == Unit::Tokens) {
            if let Some(subject) = r.subject(input) {
                self.inner.counters.add(r.key(subject), r.window, tokens, now);
            }
        }
    }

    fn refused(&self, rule: &Compiled, subject: &str, retry_after: Duration) -> LimitRefusal {
        if let Some(m) = self.inner.metrics.get() {
            m.rate_limited(rule.scope.as_str());
        }
        rule.refusal(subject, retry_after)
    }

    /// The counts of every enabled rule that applies to `input`.
    pub fn status_at(&self, input: &LimitInput<'_>, now: Instant) -> Vec<LimitStatus> {
        let rules = self.inner.compiled.read().clone();
        rules
            .iter()
            .filter_map(|r| {
                let subject = r.subject(input)?;
                let count = self.inner.counters.count(r.key(subject), r.window, now);
                Some(LimitStatus {
                    rule_id: r.id.to_string(),
                    scope: r.scope,
                    subject: subject.to_owned(),
                    window: r.window,
                    unit: r.unit,
                    max: r.max,
                    count,
                    remaining: r.max.saturating_sub(count),
                })
            })
            .collect()
    }

    /// Every rule, config ones first.
    pub fn list(&self) -> Vec<LimitRule> {
        let mut all = self.inner.config_rules.clone();
        all.extend(self.inner.runtime_rules.read().iter().cloned());
        all
    }

    /// The rule `id`, if any.
    pub fn rule(&self, id: &str) -> Option<LimitRule> {
        self.list().into_iter().find(|r| r.id == id)
    }

    /// Re-reads the stored rules and swaps in the new rule set. Stored rows
    /// that are no longer valid are skipped with a warning.
    pub async fn reload(&self) -> Result<(), LimitsError> {
        let rows = self.inner.store.list_limit_rules().await?;
        let rules: Vec<LimitRule> = rows
            .into_iter()
            .filter_map(|row| match runtime_rule(&row) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(rule = %row.id, error = %e, "skipping an invalid stored limit rule");
                    None
                }
            })
            .collect();
        let before: BTreeSet<String> = self.inner.runtime_rules.read().iter().map(|r| r.id.clone()).collect();
        let after: BTreeSet<String> = rules.iter().map(|r| r.id.clone()).collect();
        *self.inner.runtime_rules.write() = rules;
        self.recompile();
        for gone in before.difference(&after) {
            self.inner.counters.forget_rule(gone);
        }
        Ok(())
    }

    fn recompile(&self) {
        let compiled: Vec<Compiled> = self
            .inner
            .config_rules
            .iter()
            .chain(self.inner.runtime_rules.read().iter())
            .filter(|r| r.enabled)
            .filter_map(Compiled::new)
            .collect();
        *self.inner.compiled.write() = Arc::new(compiled);
    }

    /// Adds a runtime rule.
    pub async fn create(&self, new: NewLimitRule) -> Result<LimitRule, LimitsError> {
        let row = new.into_stored(uuid::Uuid::now_v7().to_string(), crate::store::now())?;
        self.inner.store.insert_limit_rule(&row).await?;
        self.reload().await?;
        runtime_rule(&row)
    }

    /// Replaces runtime rule `id` (its counters start over).
    pub async fn update(&self, id: &str, new: NewLimitRule) -> Result<LimitRule, LimitsError> {
        self.writable(id)?;
        let created_at = self.rule(id).and_then(|r| r.created_at).unwrap_or_else(crate::store::now);
        let row = new.into_stored(id.to_owned(), created_at)?;
        if !self.inner.store.update_limit_rule(&row).await? {
            return Err(LimitsError::NotFound(id.to_owned()));
        }
        self.inner.counters.forget_rule(id);
        self.reload().await?;
        runtime_rule(&row)
    }

    /// Deletes runtime rule `id`.
    pub async fn delete(&self, id: &str) -> Result<(), LimitsError> {
        self.writable(id)?;
        if !self.inner.store.delete_limit_rule(id).await? {
            return Err(LimitsError::NotFound(id.to_owned()));
        }
        self.reload().await
    }

    fn writable(&self, id: &str) -> Result<(), LimitsError> {
        if self.inner.config_rules.iter().any(|r| r.id == id) {
            return Err(LimitsError::ReadOnly(id.to_owned()));
        }
        Ok(())
    }
}

fn runtime_rule(row: &StoredLimitRule) -> Result<LimitRule, LimitsError> {
    let scope: Scope = row.scope.parse().map_err(|reason| LimitsError::Invalid { field: "scope", reason })?;
    let window: Window = row.window.parse().map_err(|reason| LimitsError::Invalid { field: "window", reason })?;
    let unit: Unit = row.unit.parse().map_err(|reason| LimitsError::Invalid { field: "unit", reason })?;
    validate_rule(scope, row.match_value.as_deref(), row.max_requests).map_err(|(field, reason)| LimitsError::Invalid { field, reason })?;
    let (max_requests, max_tokens) = split_max(unit, row.max_requests);
    Ok(LimitRule {
        id: row.id.clone(),
        source: RuleSource::Runtime,
        scope,
        match_value: row.match_value.clone(),
        window,
        unit,
        max_requests,
        max_tokens,
        enabled: row.enabled,
        created_at: Some(row.created_at),
    })
}

/// Re-reads rules and evicts idle counters until the limiter is dropped.
async fn maintain(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { break };
        let limits = Limits { inner };
        if let Err(e) = limits.reload().await {
            tracing::warn!(error = %e, "could not re-read limit rules; keeping the current ones");
        }
        limits.inner.counters.evict_idle(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn limits(toml: &str) -> Limits {
        let config = crate::config::parse(toml, &crate::config::MapEnv::new()).unwrap();
        let store = Store::connect("sqlite::memory:").await.unwrap();
        Limits::start(&config, &store).await.unwrap()
    }

    fn input<'a>(user: &'a str, key: Option<&'a str>, tool: Option<&'a str>) -> LimitInput<'a> {
        LimitInput { user_id: user, username: user, key_id: key, backend: tool.and_then(|t| t.split("__").next()), tool, ai: false }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn per_user_rule_refuses_then_recovers() {
        let l = limits("[[limits.rules]]\nid = \"r1\"\nscope = \"user\"\nwindow = \"minute\"\nmax_requests = 2\n").await;
        let t0 = Instant::now();
        let alice = input("alice", Some("k1"), None);
        l.check_at(&alice, t0).unwrap();
        l.check_at(&alice, t0 + Duration::from_secs(1)).unwrap();
        let refusal = l.check_at(&alice, t0 + Duration::from_secs(2)).unwrap_err();
        assert_eq!(refusal.rule_id, "r1");
        assert_eq!(refusal.subject, "alice");
        assert_eq!(refusal.scope, "user");
        assert!(refusal.retry_after_secs > 0 && refusal.retry_after_secs <= 60, "{refusal:?}");
        assert_eq!(
            refusal.message(),
            format!("rate limit exceeded: 2 requests per minute per user (rule r1); retry in {} s", refusal.retry_after_secs)
        );
        let e = refusal.to_error_object();
        assert_eq!(e.code, gatehouse_proto::mcp::code::RATE_LIMITED);
        assert_eq!(e.data.unwrap()["rule_id"], "r1");
        // Bob has his own counter.
        l.check_at(&input("bob", None, None), t0 + Duration::from_secs(2)).unwrap();
        // Refusals did not count: once the window passed, two more are allowed.
        let later = t0 + MIN + Duration::from_secs(2);
        l.check_at(&alice, later).unwrap();
        l.check_at(&alice, later).unwrap();
        assert!(l.check_at(&alice, later).is_err());
    }

    #[tokio::test]
    async fn a_refusal_by_one_rule_uses_up_no_other() {
        let l = limits(
            "[[limits.rules]]\nid = \"per-user\"\nscope = \"user\"\nwindow = \"hour\"\nmax_requests = 3\n\
             [[limits.rules]]\nid = \"fs-tools\"\nscope = \"tool\"\nmatch = \"fs__*\"\nwindow = \"minute\"\nmax_requests = 1\n",
        )
        .await;
        let t0 = Instant::now();
        l.check_at(&input("alice", None, Some("fs__read")), t0).unwrap();
        // The glob counts all fs tools together, for everyone.
        let r = l.check_at(&input("bob", None, Some("fs__write")), t0).unwrap_err();
        assert_eq!((r.rule_id.as_str(), r.subject.as_str()), ("fs-tools", "fs__*"));
        for _ in 0..5 {
            assert!(l.check_at(&input("alice", None, Some("fs__write")), t0).is_err());
        }
        // Those refusals did not use alice's hourly quota: two calls left.
        l.check_at(&input("alice", None, Some("git__log")), t0).unwrap();
        l.check_at(&input("alice", None, Some("git__log")), t0).unwrap();
        assert_eq!(l.check_at(&input("alice", None, Some("git__log")), t0).unwrap_err().rule_id, "per-user");
        let st = l.status_at(&input("alice", None, Some("fs__read")), t0);
        assert_eq!(st.len(), 2);
        assert_eq!((st[0].count, st[0].remaining), (3, 0));
        assert_eq!((st[1].count, st[1].remaining), (1, 0));
    }

    #[tokio::test]
    async fn key_scope_and_exact_matches() {
        let l = limits(
            "[[limits.rules]]\nscope = \"key\"\nwindow = \"minute\"\nmax_requests = 1\n\
             [[limits.rules]]\nscope = \"user\"\nmatch = \"carol\"\nwindow = \"day\"\nmax_requests = 1\n",
        )
        .await;
        let t0 = Instant::now();
        l.check_at(&input("alice", Some("k1"), None), t0).unwrap();
        assert_eq!(l.check_at(&input("alice", Some("k1"), None), t0).unwrap_err().rule_id, "config-1");
        // Another key of the same user has its own counter; no key, no key rule.
        l.check_at(&input("alice", Some("k2"), None), t0).unwrap();
        l.check_at(&input("alice", None, None), t0).unwrap();
        l.check_at(&input("alice", None, None), t0).unwrap();
        // The exact user rule applies to carol only.
        l.check_at(&input("carol", None, None), t0).unwrap();
        assert_eq!(l.check_at(&input("carol", None, None), t0).unwrap_err().rule_id, "config-2");
    }

    #[tokio::test]
    async fn runtime_rules_crud() {
        let l = limits("[[limits.rules]]\nid = \"fixed\"\nscope = \"backend\"\nwindow = \"minute\"\nmax_requests = 100\n").await;
        let new = |max| NewLimitRule {
            scope: Scope::Backend,
            match_value: Some("fs".into()),
            window: Window::Minute,
            max_requests: Some(max),
            max_tokens: None,
            enabled: true,
        };
        let r = l.create(new(1)).await.unwrap();
        assert_eq!(r.source, RuleSource::Runtime);
        assert_eq!(l.list().len(), 2);
        let t0 = Instant::now();
        let call = LimitInput { user_id: "u", username: "u", key_id: None, backend: Some("fs"), tool: Some("fs__x"), ai: false };
        l.check_at(&call, t0).unwrap();
        assert!(l.check_at(&call, t0).is_err());
        l.update(&r.id, new(2)).await.unwrap();
        l.check_at(&call, t0).unwrap();
        l.delete(&r.id).await.unwrap();
        assert!(matches!(l.delete(&r.id).await, Err(LimitsError::NotFound(_))));
        assert!(matches!(l.delete("fixed").await, Err(LimitsError::ReadOnly(_))));
        assert!(matches!(l.update("fixed", new(1)).await, Err(LimitsError::ReadOnly(_))));
        assert!(matches!(l.create(new(0)).await, Err(LimitsError::Invalid { field: "max_requests", .. })));
        let bad_glob = NewLimitRule {
            scope: Scope::Tool,
            match_value: Some("a[".into()),
            window: Window::Day,
            max_requests: Some(1),
            max_tokens: None,
            enabled: true,
        };
        assert!(matches!(l.create(bad_glob).await, Err(LimitsError::Invalid { field: "match", .. })));
    }

    #[tokio::test]
    async fn token_rules_admit_until_the_window_is_used_and_skip_mcp() {
        let l = limits("[[limits.rules]]\nid = \"tpm\"\nscope = \"user\"\nwindow = \"minute\"\nmax_tokens = 100\n").await;
        assert_eq!(l.rule("tpm").unwrap().unit, Unit::Tokens);
        let t0 = Instant::now();
        let ai = LimitInput { ai: true, ..input("alice", Some("k1"), Some("gpt-4o")) };
        // Admitted without counting: tokens are unknown until the answer.
        l.check_at(&ai, t0).unwrap();
        l.check_at(&ai, t0).unwrap();
        l.record_tokens_at(&ai, 60, t0);
        l.check_at(&ai, t0).unwrap();
        // One answer may overshoot; the next request waits for the window.
        l.record_tokens_at(&ai, 70, t0);
        let r = l.check_at(&ai, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!((r.rule_id.as_str(), r.unit.as_str(), r.max), ("tpm", "tokens", 100));
        assert!(r.message().starts_with("rate limit exceeded: 100 tokens per minute per user (rule tpm)"), "{}", r.message());
        let st = l.status_at(&ai, t0 + Duration::from_secs(1));
        assert_eq!((st[0].count, st[0].remaining), (130, 0));
        // MCP calls are not subject to token rules; others have their own counter.
        l.check_at(&input("alice", Some("k1"), Some("fs__read")), t0).unwrap();
        l.check_at(&LimitInput { ai: true, ..input("bob", None, None) }, t0).unwrap();
        l.check_at(&ai, t0 + MIN + Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn config_rules_are_validated() {
        let env = crate::config::MapEnv::new();
        for (toml, key) in [
            ("[[limits.rules]]\nscope = \"user\"\nwindow = \"minute\"\nmax_requests = 0\n", "limits.rules[0].max_requests"),
            ("[[limits.rules]]\nscope = \"tool\"\nmatch = \"a[\"\nwindow = \"minute\"\nmax_requests = 1\n", "limits.rules[0].match"),
            ("[[limits.rules]]\nid = \"x y\"\nscope = \"user\"\nwindow = \"minute\"\nmax_requests = 1\n", "limits.rules[0].id"),
            (
                "[[limits.rules]]\nid = \"a\"\nscope = \"user\"\nwindow = \"minute\"\nmax_requests = 1\n\
                 [[limits.rules]]\nid = \"a\"\nscope = \"key\"\nwindow = \"hour\"\nmax_requests = 1\n",
                "limits.rules[1].id",
            ),
            ("[[limits.rules]]\nscope = \"team\"\nwindow = \"minute\"\nmax_requests = 1\n", "limits.rules[0].scope"),
            ("[limits]\nmax_counters = 0\n", "limits.max_counters"),
            ("[[limits.rules]]\nscope = \"user\"\nwindow = \"minute\"\n", "limits.rules[0].max_requests"),
            ("[[limits.rules]]\nscope = \"user\"\nwindow = \"minute\"\nmax_requests = 1\nmax_tokens = 5\n", "limits.rules[0].max_tokens"),
        ] {
            let e = crate::config::parse(toml, &env).unwrap_err();
            assert_eq!(e.key(), Some(key), "{toml}: {e}");
        }
    }
}
