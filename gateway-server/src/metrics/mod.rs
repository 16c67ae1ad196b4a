//! Prometheus metrics for `/metrics`.
//!
//! One [`Metrics`] value owns its own [`Registry`] (no global state, so
//! several hubs in one test process do not mix their numbers). Counters and
//! histograms are fed by typed helpers called from the request paths;
//! gauges that mirror state (backends, sessions, connected agents) are
//! refreshed from [`AppState`] when `/metrics` is scraped, so they are never
//! stale and cost nothing between scrapes.
//!
//! Label values come from fixed sets: a value outside its set is recorded as
//! `other`. Callers can therefore pass what they have (a JSON-RPC method
//! name from a client, say) without letting a client create new time series.
//! Backend names are bounded by the admin who configures them.
//!
//! `/metrics` can require `Authorization: Bearer <token>`
//! (`metrics.bearer_token` or `metrics.bearer_token_file`); the comparison
//! is constant-time over SHA-256 digests, so neither the token's content nor
//! its length leaks through timing.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::server::AppState;

/// `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request duration histogram, in seconds (0.5 ms to 30 s).
pub const DURATION_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The label value for anything outside a label's set.
pub const OTHER: &str = "other";

/// Surfaces: the MCP front door, the AI proxy, the admin API, the agent tunnel.
pub const SURFACES: &[&str] = &["mcp", "ai", "admin", "agent"];

/// Method labels: every MCP method the hub knows, and the AI proxy's endpoints.
pub const METHODS: &[&str] = &[
    "initialize",
    "notifications/initialized",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "server/discover",
    "subscriptions/listen",
    "chat/completions",
    "responses",
    "messages",
    "messages/count_tokens",
    "models",
];

/// Outcome labels of AI requests.
pub const AI_STATUSES: &[&str] = &["ok", "error", "client_abort", "rate_limited", "budget_exceeded", "bad_request", "not_found"];

/// Kinds of AI failures.
pub const AI_ERROR_KINDS: &[&str] =
    &["connect", "timeout", "status_429", "status_4xx", "status_5xx", "stream_error", "bad_response", "circuit_open", "client_abort"];

/// Outcome labels besides HTTP status codes (`100`–`599`).
pub const STATUSES: &[&str] =
    &["ok", "error", "denied", "rate_limited", "timeout", "unavailable", "cancelled", "unauthorized", "bad_request"];

/// Error kinds.
pub const ERROR_KINDS: &[&str] = &[
    "upstream_unavailable",
    "upstream_timeout",
    "upstream_error",
    "policy_denied",
    "rate_limited",
    "unauthorized",
    "bad_request",
    "not_found",
    "session",
    "cancelled",
    "internal",
];

/// Limit scopes.
pub const SCOPES: &[&str] = &["user", "key", "backend", "tool"];

/// `value` when it is one of `allowed`, else [`OTHER`].
fn bounded<'a>(value: &'a str, allowed: &[&str]) -> &'a str {
    if allowed.contains(&value) { value } else { OTHER }
}

/// An outcome label: one of [`STATUSES`] or a three-digit HTTP status.
fn status_label(value: &str) -> &str {
    let http = value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()) && ("100"..="599").contains(&value);
    if http { value } else { bounded(value, STATUSES) }
}

/// `[metrics]`: the `/metrics` endpoint.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` (404 when false).
    pub enabled: bool,
    /// Require `Authorization: Bearer <this>` on `/metrics`. Prefer
    /// `bearer_token_file` or `${VAR}` to keep it out of the file.
    pub bearer_token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored), read at start.
    pub bearer_token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, bearer_token: None, bearer_token_file: None }
    }
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("bearer_token_file", &self.bearer_token_file)
            .finish()
    }
}

impl MetricsConfig {
    /// Applies `GATEHOUSE_METRICS_*` variables.
    pub(crate) fn apply_env(&mut self, l: &mut crate::config::EnvLayer<'_>) -> Result<(), crate::config::ConfigError> {
        l.flag("metrics.enabled", &mut self.enabled)?;
        if let Some(v) = l.get("metrics.bearer_token") {
            self.bearer_token = Some(v);
        }
        l.path("metrics.bearer_token_file", &mut self.bearer_token_file);
        Ok(())
    }

    /// Checks every value; the error names the offending key (`metrics.…`).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(ConfigError::invalid("metrics.bearer_token", "set either bearer_token or bearer_token_file, not both"));
        }
        if let Some(t) = &self.bearer_token {
            // Never echo the value.
            check_token(t).map_err(|why| ConfigError::invalid("metrics.bearer_token", why))?;
        }
        if let Some(f) = &self.bearer_token_file
            && f.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid("metrics.bearer_token_file", "must not be empty"));
        }
        Ok(())
    }

    /// The token in force: `bearer_token`, else the content of `bearer_token_file`.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.bearer_token {
            return Ok(Some(t.clone()));
        }
        let Some(path) = &self.bearer_token_file else { return Ok(None) };
        let text = std::fs::read_to_string(path).with_context(|| format!("metrics.bearer_token_file: cannot read {}", path.display()))?;
        let token = text.trim().to_owned();
        check_token(&token).map_err(|why| anyhow::anyhow!("metrics.bearer_token_file: {why}"))?;
        Ok(Some(token))
    }
}

fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() {
        return Err("the token is empty");
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token contains whitespace or control characters");
    }
    Ok(())
}

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot encode metrics: {0}")]
    Encode(#[from] prometheus::Error),
}

struct Inner {
    registry: Registry,
    enabled: bool,
    /// SHA-256 of the bearer token, when one is required.
    token_digest: Option<[u8; 32]>,
    requests: IntCounterVec,
    duration: HistogramVec,
    errors: IntCounterVec,
    policy: IntCounterVec,
    rate_limited: IntCounterVec,
    audit_depth: IntGauge,
    audit_dropped: IntCounter,
    backend_up: IntGaugeVec,
    backend_restarts: IntCounterVec,
    backend_tools: IntGaugeVec,
    agents_connected: IntGauge,
    sessions_active: IntGauge,
    ai_requests: IntCounterVec,
    ai_tokens: IntCounterVec,
    ai_cost: CounterVec,
    ai_ttft: HistogramVec,
    ai_upstream: HistogramVec,
    ai_errors: IntCounterVec,
    ai_budget_alerts: IntCounterVec,
    /// Serialises refresh + encode so concurrent scrapes see consistent gauges.
    scrape: Mutex<()>,
}

/// The hub's metric families. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("enabled", &self.inner.enabled).field("protected", &self.inner.token_digest.is_some()).finish()
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> anyhow::Result<T> {
    registry.register(Box::new(metric.clone())).context("cannot register a metric family")?;
    Ok(metric)
}

impl Metrics {
    /// Registers every metric family and reads the bearer token.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let token = config.metrics.token()?;
        let registry = Registry::new();
        let r = &registry;
        let requests = register(
            r,
            IntCounterVec::new(
                Opts::new("gatehouse_requests_total", "Requests handled, by surface, method and outcome."),
                &["surface", "method", "status"],
            )?,
        )?;
        let duration = register(
            r,
            HistogramVec::new(
                HistogramOpts::new("gatehouse_request_duration_seconds", "Time to answer a request, by surface and method.")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["surface", "method"],
            )?,
        )?;
        let errors = register(
            r,
            IntCounterVec::new(Opts::new("gatehouse_errors_total", "Failed requests, by surface and kind."), &["surface", "kind"])?,
        )?;
        let policy = register(
            r,
            IntCounterVec::new(Opts::new("gatehouse_policy_decisions_total", "Policy decisions, allow or deny."), &["decision"])?,
        )?;
        let rate_limited = register(
            r,
            IntCounterVec::new(Opts::new("gatehouse_rate_limited_total", "Requests refused by a rate limit, by scope."), &["scope"])?,
        )?;
        let audit_depth = register(r, IntGauge::new("gatehouse_audit_queue_depth", "Audit events waiting to be written.")?)?;
        let audit_dropped =
            register(r, IntCounter::new("gatehouse_audit_dropped_total", "Audit events dropped because the queue was full.")?)?;
        let backend_up =
            register(r, IntGaugeVec::new(Opts::new("gatehouse_backend_up", "1 when the backend is connected and ready."), &["backend"])?)?;
        let backend_restarts = register(
            r,
            IntCounterVec::new(
                Opts::new("gatehouse_backend_restarts_total", "Reconnections (child restarts) of the backend."),
                &["backend"],
            )?,
        )?;
        let backend_tools =
            register(r, IntGaugeVec::new(Opts::new("gatehouse_backend_tools", "Tools the backend offers."), &["backend"])?)?;
        let agents_connected = register(r, IntGauge::new("gatehouse_agents_connected", "Agents connected to this hub.")?)?;
        let sessions_active = register(r, IntGauge::new("gatehouse_sessions_active", "Open MCP client sessions.")?)?;
        let build_info =
            register(r, IntGaugeVec::new(Opts::new("gatehouse_build_info", "Always 1; the version is a label."), &["version"])?)?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let ai_requests = register(
            r,
            IntCounterVec::new(
                Opts::new("gatehouse_ai_requests_total", "AI proxy requests, by provider, model and outcome."),
                &["provider", "model", "status"],
            )?,
        )?;
        let ai_tokens = register(
            r,
            IntCounterVec::new(
                Opts::new("gatehouse_ai_tokens_total", "AI tokens, by provider, model and kind (input, output, cache_read, cache_write)."),
                &["provider", "model", "kind"],
            )?,
        )?;
        let ai_cost = register(
            r,
            CounterVec::new(
                Opts::new("gatehouse_ai_cost_usd_total", "AI spending in USD, by provider and model."),
                &["provider", "model"],
            )?,
        )?;
        let ai_ttft = register(
            r,
            HistogramVec::new(
                HistogramOpts::new("gatehouse_ai_time_to_first_token_seconds", "Time from request to the first streamed content.")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["provider"],
            )?,
        )?;
        let ai_upstream = register(
            r,
            HistogramVec::new(
                HistogramOpts::new("gatehouse_ai_upstream_seconds", "Duration of provider calls, until the answer ended.")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["provider"],
            )?,
        )?;
        let ai_errors = register(
            r,
            IntCounterVec::new(Opts::new("gatehouse_ai_errors_total", "AI proxy failures, by provider and kind."), &["provider", "kind"])?,
        )?;
        let ai_budget_alerts = register(
            r,
            IntCounterVec::new(Opts::new("gatehouse_ai_budget_alerts_total", "AI budget thresholds crossed, by percent."), &["threshold"])?,
        )?;
        for t in ["50", "80", "95", "100"] {
            ai_budget_alerts.with_label_values(&[t]);
        }
        // Series of small fixed label sets exist from the start, at 0, so
        // rates and alerts work before the first event.
        for scope in SCOPES {
            rate_limited.with_label_values(&[*scope]);
        }
        for decision in ["allow", "deny"] {
            policy.with_label_values(&[decision]);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                enabled: config.metrics.enabled,
                token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
                requests,
                duration,
                errors,
                policy,
                rate_limited,
                audit_depth,
                audit_dropped,
                backend_up,
                backend_restarts,
                backend_tools,
                agents_connected,
                sessions_active,
                ai_requests,
                ai_tokens,
                ai_cost,
                ai_ttft,
                ai_upstream,
                ai_errors,
                ai_budget_alerts,
                scrape: Mutex::new(()),
            }),
        })
    }

    /// Counts one request and its duration. `surface`, `method` and `status`
    /// outside their sets ([`SURFACES`], [`METHODS`], [`STATUSES`] or an HTTP
    /// status) are recorded as `other`.
    pub fn observe_request(&self, surface: &str, method: &str, status: &str, elapsed: Duration) {
        let surface = bounded(surface, SURFACES);
        let method = bounded(method, METHODS);
        self.inner.requests.with_label_values(&[surface, method, status_label(status)]).inc();
        self.inner.duration.with_label_values(&[surface, method]).observe(elapsed.as_secs_f64());
    }

    /// Counts one failure of kind `kind` (one of [`ERROR_KINDS`], else `other`).
    pub fn error(&self, surface: &str, kind: &str) {
        self.inner.errors.with_label_values(&[bounded(surface, SURFACES), bounded(kind, ERROR_KINDS)]).inc();
    }

    /// Counts one AI request. `model` must already be bounded (a configured name or `other`).
    pub fn ai_request(&self, provider: &str, model: &str, status: &str) {
        self.inner.ai_requests.with_label_values(&[provider, model, bounded(status, AI_STATUSES)]).inc();
    }

    /// Adds one AI answer's tokens and cost.
    pub fn ai_usage(&self, provider: &str, model: &str, usage: &gatehouse_ai::Usage, cost_usd: f64) {
        for (kind, n) in
            [("input", usage.input), ("output", usage.output), ("cache_read", usage.cache_read), ("cache_write", usage.cache_write)]
        {
            if n > 0 {
                self.inner.ai_tokens.with_label_values(&[provider, model, kind]).inc_by(n);
            }
        }
        if cost_usd > 0.0 && cost_usd.is_finite() {
            self.inner.ai_cost.with_label_values(&[provider, model]).inc_by(cost_usd);
        }
    }

    /// Time to the first streamed content.
    pub fn ai_ttft(&self, provider: &str, elapsed: Duration) {
        self.inner.ai_ttft.with_label_values(&[provider]).observe(elapsed.as_secs_f64());
    }

    /// Duration of a provider call.
    pub fn ai_upstream(&self, provider: &str, elapsed: Duration) {
        self.inner.ai_upstream.with_label_values(&[provider]).observe(elapsed.as_secs_f64());
    }

    /// Counts one AI failure of `kind` (one of [`AI_ERROR_KINDS`], else `other`).
    pub fn ai_error(&self, provider: &str, kind: &str) {
        self.inner.ai_errors.with_label_values(&[provider, bounded(kind, AI_ERROR_KINDS)]).inc();
    }

    /// Counts one budget threshold crossed.
    pub fn ai_budget_alert(&self, threshold: u32) {
        let t = match threshold {
            50 => "50",
            80 => "80",
            95 => "95",
            100 => "100",
            _ => OTHER,
        };
        self.inner.ai_budget_alerts.with_label_values(&[t]).inc();
    }

    /// Counts one policy decision.
    pub fn policy_decision(&self, allowed: bool) {
        self.inner.policy.with_label_values(&[if allowed { "allow" } else { "deny" }]).inc();
    }

    /// Counts one request refused by a rate limit of `scope`.
    pub fn rate_limited(&self, scope: &str) {
        self.inner.rate_limited.with_label_values(&[bounded(scope, SCOPES)]).inc();
    }

    /// Mirrors the audit queue: its current depth and the total of dropped events.
    pub fn set_audit(&self, depth: usize, dropped: u64) {
        self.inner.audit_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        let seen = self.inner.audit_dropped.get();
        if dropped > seen {
            self.inner.audit_dropped.inc_by(dropped - seen);
        }
    }

    /// Whether `/metrics` is served at all.
    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Whether an `Authorization` header value lets the caller scrape.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(want) = &self.inner.token_digest else { return true };
        let presented = authorization
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or("");
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(got.ct_eq(want)) && !presented.is_empty()
    }

    /// Updates the gauges that mirror the hub's state.
    pub fn refresh(&self, st: &AppState) {
        let i = &self.inner;
        i.backend_up.reset();
        i.backend_restarts.reset();
        i.backend_tools.reset();
        for b in st.hub.backends() {
            let status = b.status();
            let name = [&*b.name];
            i.backend_up.with_label_values(&name).set(i64::from(status.health == gatehouse_upstream::Health::Ready));
            i.backend_restarts.with_label_values(&name).inc_by(status.restarts);
            i.backend_tools.with_label_values(&name).set(i64::try_from(b.catalog().tools.len()).unwrap_or(i64::MAX));
        }
        i.sessions_active.set(i64::try_from(st.hub.sessions.len()).unwrap_or(i64::MAX));
        i.agents_connected.set(i64::try_from(st.agents.online_count()).unwrap_or(i64::MAX));
        self.set_audit(st.audit.queue_depth(), st.audit.dropped());
    }

    /// Every family in the text exposition format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.inner.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Refreshes the state gauges from `st` and renders, as one step.
    pub fn scrape(&self, st: &AppState) -> Result<String, MetricsError> {
        let _one_at_a_time = self.inner.scrape.lock();
        self.refresh(st);
        self.render()
    }
}

/// `GET /metrics`.
pub async fn serve(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let m = &st.metrics;
    if !m.enabled() {
        return (StatusCode::NOT_FOUND, "metrics are disabled (metrics.enabled = false)\n").into_response();
    }
    if !m.authorized(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())) {
        let mut r = (StatusCode::UNAUTHORIZED, "a valid bearer token is required\n").into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="gatehouse-metrics""#));
        return r;
    }
    match m.scrape(&st) {
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(toml: &str) -> Metrics {
        let config = crate::config::parse(toml, &crate::config::MapEnv::new()).unwrap();
        Metrics::new(&config).unwrap()
    }

    #[test]
    fn labels_are_bounded() {
        let m = metrics("");
        m.observe_request("mcp", "tools/call", "ok", Duration::from_millis(3));
        m.observe_request("mcp", "evil/{injected}", "200", Duration::from_millis(3));
        m.observe_request("web", "tools/list", "I am free text", Duration::from_millis(3));
        m.error("mcp", "whatever");
        m.rate_limited("user");
        m.rate_limited("nonsense");
        m.policy_decision(false);
        m.set_audit(4, 2);
        m.set_audit(1, 5);
        let text = m.render().unwrap();
        assert!(text.contains(r#"gatehouse_requests_total{method="tools/call",status="ok",surface="mcp"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_requests_total{method="other",status="200",surface="mcp"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_requests_total{method="tools/list",status="other",surface="other"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_errors_total{kind="other",surface="mcp"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_rate_limited_total{scope="other"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_policy_decisions_total{decision="deny"} 1"#), "{text}");
        assert!(text.contains("gatehouse_audit_queue_depth 1"), "{text}");
        assert!(text.contains("gatehouse_audit_dropped_total 5"), "{text}");
        assert!(text.contains(r#"gatehouse_request_duration_seconds_bucket{method="tools/call",surface="mcp",le="0.0005"} 0"#), "{text}");
        assert!(text.contains(r#"le="30"}"#), "{text}");
        assert!(!text.contains("injected") && !text.contains("free text"));
    }

    #[test]
    fn bearer_check() {
        assert!(metrics("").authorized(None));
        let m = metrics("[metrics]\nbearer_token = \"s3cret\"\n");
        assert!(m.authorized(Some("Bearer s3cret")));
        assert!(m.authorized(Some("bearer  s3cret ")));
        for bad in [None, Some(""), Some("Bearer"), Some("Bearer "), Some("Bearer s3cre"), Some("Basic s3cret"), Some("s3cret")] {
            assert!(!m.authorized(bad), "{bad:?}");
        }
        assert!(
            !format!(
                "{:?}",
                crate::config::parse("[metrics]\nbearer_token = \"s3cret\"\n", &crate::config::MapEnv::new()).unwrap().metrics
            )
            .contains("s3cret")
        );
    }

    #[test]
    fn token_config_is_validated() {
        let env = crate::config::MapEnv::new();
        let e = crate::config::parse("[metrics]\nbearer_token = \"a b\"\n", &env).unwrap_err();
        assert_eq!(e.key(), Some("metrics.bearer_token"));
        assert!(!e.to_string().contains("a b"));
        let e = crate::config::parse("[metrics]\nbearer_token = \"x\"\nbearer_token_file = \"f\"\n", &env).unwrap_err();
        assert_eq!(e.key(), Some("metrics.bearer_token"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let m = metrics(&format!("[metrics]\nbearer_token_file = \"{}\"\n", file.display()));
        assert!(m.authorized(Some("Bearer from-file")));
        let env = crate::config::MapEnv::new().with("GATEHOUSE_METRICS_ENABLED", "false");
        assert!(!crate::config::parse("", &env).unwrap().metrics.enabled);
    }
}
