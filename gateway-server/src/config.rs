//! Hub configuration: typed, layered, validated.
//!
//! Layers, later ones win:
//!
//! 1. built-in defaults,
//! 2. a TOML file (`--config FILE`, else `./gatehouse.toml` when present),
//! 3. `GATEHOUSE_<SECTION>_<KEY>` environment variables for the scalar and
//!    list keys of `[server]`, `[database]`, `[auth]`, `[mcp]` and `[log]`
//!    (lists are comma-separated; an empty variable counts as unset).
//!
//! Every string value in the file may reference the environment as `${VAR}`
//! (`$$` is a literal `$`); an unset variable is an error naming the key.
//! Values coming from `GATEHOUSE_*` variables are taken literally.
//!
//! Relative paths in the file (`database.url` for SQLite, `auth.secret_file`,
//! `backends[].cwd`) are resolved against the directory holding the file, so
//! the hub and every CLI subcommand given the same `--config` act on the same
//! store wherever they are started from.
//!
//! The environment is read through [`EnvSource`] so tests can supply a map
//! instead of mutating the process environment.
//!
//! Every error is one line and starts with the offending key path, e.g.
//! `backends[1].url: ...` or `server.listen: invalid socket address`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use gatehouse_upstream::{TransportSpec, UpstreamSpec};
use serde::{Deserialize, Serialize};

/// The commented example configuration printed by `gateway-server init`.
pub const EXAMPLE: &str = include_str!("../gatehouse.example.toml");

/// File read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "gatehouse.toml";

/// Prefix of every environment variable that overrides a config key.
pub const ENV_PREFIX: &str = "GATEHOUSE_";

/// How long a backend may take to connect and finish `initialize`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Environment access
// ---------------------------------------------------------------------------

/// Where environment variables come from.
pub trait EnvSource {
    /// The value of `key`, or `None` when unset (or not valid UTF-8).
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed set of variables, for tests and embedding.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(BTreeMap<String, String>);

impl MapEnv {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the environment with `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl EnvSource for MapEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a configuration could not be loaded. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax { origin: String, line: usize, column: usize, message: String },
    /// A key has a bad value, is unknown, or is missing.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), message: message.into() }
    }

    /// The key path this error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// The typed configuration
// ---------------------------------------------------------------------------

/// The whole hub configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub mcp: McpConfig,
    /// Static MCP backends.
    pub backends: Vec<BackendConfig>,
    pub ai: AiConfig,
    pub log: LogConfig,
    pub console: crate::auth::console::ConsoleConfig,
    pub audit: crate::audit::AuditConfig,
    pub policy: crate::policy::PolicyConfig,
    pub limits: crate::limits::LimitsConfig,
    pub metrics: crate::metrics::MetricsConfig,
    pub agents: crate::agents::AgentsConfig,
}

/// `[server]`: the listening socket and what the front door accepts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Socket address to bind, e.g. `127.0.0.1:3200`.
    pub listen: String,
    /// The URL clients use to reach the hub (install scripts, OAuth metadata,
    /// links). Defaults to `http://` + `listen`; stored without a trailing `/`.
    // Field-level default: an absent key deserializes as "" so the loader can
    // tell it apart and derive it from the final `listen`.
    #[serde(default)]
    pub public_url: String,
    /// Extra browser `Origin`s allowed on `/mcp` (`*` allows any). The origin
    /// of `public_url` and loopback origins are always allowed.
    pub allowed_origins: Vec<String>,
    /// Extra `Host` header values accepted (a name matches any port; a
    /// `name:port` entry only that port). Loopback names and the host of
    /// `public_url` are always accepted.
    pub allowed_hosts: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long shutdown waits for requests and sessions to drain.
    pub shutdown_grace_secs: u64,
    /// Whether the admin API may create (and test) stdio backends, i.e. run
    /// any command on the hub's machine with the hub's rights. Off by
    /// default: an admin API key would otherwise amount to a shell.
    pub allow_runtime_stdio_backends: bool,
    /// Refuse backend URLs given at runtime that resolve to loopback or
    /// private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, ...).
    /// Off by default: a gateway usually fronts internal servers.
    pub block_private_urls: bool,
    /// Accept backend URLs given at runtime that resolve to link-local or
    /// cloud metadata addresses (169.254/16, fe80::/10, 100.100.100.200, ...).
    /// Off by default: those hand out cloud credentials.
    pub allow_link_local_urls: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let listen = "127.0.0.1:3200".to_owned();
        Self {
            public_url: format!("http://{listen}"),
            listen,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_grace_secs: 10,
            allow_runtime_stdio_backends: false,
            block_private_urls: false,
            allow_link_local_urls: false,
        }
    }
}

/// Names that always count as the local machine in `Host` and `Origin`.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1", "[::1]"];

impl ServerConfig {
    /// The parsed `listen` address (valid after [`Config::validate`]).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| ConfigError::invalid("server.listen", "invalid socket address"))
    }

    /// Whether a request's `Host` header value is acceptable (DNS-rebinding
    /// protection): loopback names, the host of `public_url`, and
    /// `allowed_hosts`.
    pub fn is_host_allowed(&self, host_header: &str) -> bool {
        let host_header = host_header.trim().to_ascii_lowercase();
        if host_header.is_empty() {
            return false;
        }
        let name = host_without_port(&host_header);
        if is_loopback_name(name) || self.allowed_hosts.iter().any(|h| h == "*") {
            return true;
        }
        if let Some(public) = url::Url::parse(&self.public_url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            && public == name
        {
            return true;
        }
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.trim().to_ascii_lowercase();
            allowed == host_header || allowed == name
        })
    }

    /// Whether a browser `Origin` header value may call `/mcp`: same origin as
    /// `public_url`, any loopback origin, or one of `allowed_origins`.
    pub fn is_origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim();
        if self.allowed_origins.iter().any(|o| o == "*") {
            return true;
        }
        let Ok(parsed) = url::Url::parse(origin) else {
            return false;
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return false;
        }
        let Some(host) = parsed.host_str() else {
            return false;
        };
        if is_loopback_name(&host.to_ascii_lowercase()) {
            return true;
        }
        let candidate = parsed.origin();
        if url::Url::parse(&self.public_url).is_ok_and(|p| p.origin() == candidate) {
            return true;
        }
        self.allowed_origins.iter().filter_map(|o| url::Url::parse(o).ok()).any(|o| o.origin() == candidate)
    }
}

/// Loopback names and addresses: `localhost`, `*.localhost`, 127.0.0.0/8, `::1`.
fn is_loopback_name(name: &str) -> bool {
    LOOPBACK_HOSTS.contains(&name) || name.ends_with(".localhost") || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host part of a `Host` header value (`[::1]:80` → `[::1]`, `a:1` → `a`).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `[database]`: where users, keys and settings live.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://user@host/db`.
    pub url: String,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://gatehouse.db".to_owned(), max_connections: 10 }
    }
}

impl fmt::Debug for DatabaseConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// `url` with any password replaced by `***`, for logs and debug output.
pub fn redact_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Cannot fail: the URL already has a password, so it has a host.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `[auth]`: how API keys are hashed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// File holding the key-hashing secret (hex, created with 32 random bytes
    /// and mode 0600 when missing). When unset the secret lives in the store,
    /// shared by every hub and CLI using it.
    pub secret_file: Option<PathBuf>,
    /// When set, MCP callers without a key act as this user (created when
    /// missing). Meant for local development and for test suites that cannot
    /// send credentials; never enable it on a shared hub. Off by default.
    pub anonymous_user: Option<String>,
}

/// `[mcp]`: the MCP front door.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Default time a backend has to answer one request.
    pub request_timeout_secs: u64,
    /// A client session with no traffic for this long is closed.
    pub session_idle_timeout_secs: u64,
    /// Upper bound on concurrent client sessions.
    pub max_sessions: usize,
    /// A POST whose answer takes longer than this is answered with a
    /// resumable SSE stream (0: every POST the client lets have a stream).
    pub sse_after_ms: u64,
    /// For 2025-11-25 clients: close a POST's SSE stream this long after it
    /// opened when the answer is still pending; the client resumes it with
    /// GET and `Last-Event-ID` (SEP-1699 polling). 0: streams stay open.
    pub sse_close_after_ms: u64,
    /// Messages each SSE stream keeps for replay with `Last-Event-ID`.
    pub sse_replay_events: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            request_timeout_secs: 60,
            session_idle_timeout_secs: 1800,
            max_sessions: 10_000,
            sse_after_ms: 1000,
            sse_close_after_ms: 0,
            sse_replay_events: 256,
        }
    }
}

impl McpConfig {
    /// [`McpConfig::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// [`McpConfig::session_idle_timeout_secs`] as a duration.
    pub fn session_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.session_idle_timeout_secs)
    }
}

/// How a stdio backend's processes are shared between client sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One process serves every session.
    #[default]
    Shared,
    /// One process per client session, stopped when the session ends.
    Session,
    /// One process per user, stopped when the user's last session ends.
    User,
}

impl Isolation {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Session => "session",
            Self::User => "user",
        }
    }
}

/// How the hub reaches a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendTransport {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Legacy HTTP+SSE; `url` is the GET SSE endpoint.
    Sse,
}

impl BackendTransport {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
            Self::Sse => "sse",
        }
    }
}

/// One `[[backends]]` entry: a static MCP server behind the hub.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique name; tools appear as `{name}__{tool}`.
    pub name: String,
    pub transport: BackendTransport,
    /// stdio: the program to run.
    #[serde(default)]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: its environment (it starts from a cleared environment).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: its working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// http/sse: the endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// http/sse: headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout; defaults to `mcp.request_timeout_secs`.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// A disabled backend is validated but not started.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// stdio: share one process between sessions (default), or run one per
    /// session or per user.
    #[serde(default, skip_serializing_if = "is_shared")]
    pub isolation: Isolation,
    /// stdio with isolation: most processes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_processes: Option<usize>,
    /// stdio with isolation: a process with no call for this long is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_idle_secs: Option<u64>,
}

fn is_shared(i: &Isolation) -> bool {
    *i == Isolation::Shared
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for BackendConfig {
    // Header and environment values commonly hold credentials: show keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConfig")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("url", &self.url.as_deref().map(redact_url_password))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_secs", &self.timeout_secs)
            .field("enabled", &self.enabled)
            .field("isolation", &self.isolation)
            .field("max_processes", &self.max_processes)
            .field("process_idle_secs", &self.process_idle_secs)
            .finish()
    }
}

impl BackendConfig {
    /// How the hub shares this backend's processes between sessions.
    pub fn options(&self) -> crate::mcp::pool::BackendOptions {
        let d = crate::mcp::pool::BackendOptions::default();
        crate::mcp::pool::BackendOptions {
            isolation: self.isolation,
            max_processes: self.max_processes.unwrap_or(d.max_processes),
            process_idle: self.process_idle_secs.map_or(d.process_idle, Duration::from_secs),
        }
    }

    /// How to reach this backend, for [`gatehouse_upstream::Upstream::start`].
    /// `default_timeout` applies when `timeout_secs` is unset.
    pub fn to_upstream_spec(&self, default_timeout: Duration) -> UpstreamSpec {
        // Validation guarantees `command` (stdio) and `url` (http/sse) are
        // present; an unvalidated config yields an empty value, which fails to
        // connect with a clear error rather than panicking here.
        let transport = match self.transport {
            BackendTransport::Stdio => TransportSpec::Stdio {
                command: self.command.clone().unwrap_or_default(),
                args: self.args.clone(),
                env: self.env.clone(),
                cwd: self.cwd.clone(),
            },
            BackendTransport::Http => TransportSpec::Http { url: self.url.clone().unwrap_or_default(), headers: self.headers.clone() },
            BackendTransport::Sse => TransportSpec::Sse { url: self.url.clone().unwrap_or_default(), headers: self.headers.clone() },
        };
        UpstreamSpec {
            name: self.name.clone(),
            transport,
            request_timeout: self.timeout_secs.map(Duration::from_secs).unwrap_or(default_timeout),
            connect_timeout: CONNECT_TIMEOUT,
            protocol: gatehouse_upstream::ProtocolPreference::Auto,
        }
    }
}

/// `[ai]`: the AI API proxy: providers, model registrations and prices, budgets, resilience.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AiConfig {
    pub providers: Vec<ProviderConfig>,
    /// Explicit model registrations (several entries with one name are several deployments).
    pub models: Vec<crate::ai::router::ModelConfig>,
    /// Spending and token budgets.
    pub budgets: Vec<crate::ai::budgets::BudgetConfig>,
    /// Replace e-mail addresses, phone numbers, card numbers, IBANs and US SSNs in what is
    /// sent to providers by placeholders, restored in the answers.
    pub redact_pii: bool,
    /// Longest wait for a TCP/TLS connection to a provider, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest wait for a provider's first byte (headers, then the first stream chunk), in seconds.
    pub first_byte_timeout_secs: u64,
    /// Longest a whole provider call may take, in seconds.
    pub total_timeout_secs: u64,
    /// Retries after the first try, on 429, 5xx and connection errors, across deployments.
    pub max_retries: u32,
    /// First retry backoff in milliseconds; doubles per retry.
    pub retry_base_ms: u64,
    /// Longest backoff (and longest `Retry-After` honoured) in milliseconds.
    pub retry_max_ms: u64,
    /// Consecutive failures that open a deployment's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe is let through, in seconds.
    pub breaker_cooldown_secs: u64,
    /// Responses kept in memory for `previous_response_id` (older ones are read from the store).
    pub response_cache: usize,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            models: Vec::new(),
            budgets: Vec::new(),
            redact_pii: false,
            connect_timeout_ms: 5_000,
            first_byte_timeout_secs: 120,
            total_timeout_secs: 600,
            max_retries: 2,
            retry_base_ms: 200,
            retry_max_ms: 10_000,
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
            response_cache: 10_000,
        }
    }
}

impl AiConfig {
    pub(crate) fn apply_env(&mut self, l: &mut EnvLayer<'_>) -> Result<(), ConfigError> {
        l.flag("ai.redact_pii", &mut self.redact_pii)?;
        l.number("ai.connect_timeout_ms", &mut self.connect_timeout_ms)?;
        l.number("ai.first_byte_timeout_secs", &mut self.first_byte_timeout_secs)?;
        l.number("ai.total_timeout_secs", &mut self.total_timeout_secs)?;
        l.number("ai.max_retries", &mut self.max_retries)?;
        l.number("ai.retry_base_ms", &mut self.retry_base_ms)?;
        l.number("ai.retry_max_ms", &mut self.retry_max_ms)?;
        l.number("ai.breaker_failures", &mut self.breaker_failures)?;
        l.number("ai.breaker_cooldown_secs", &mut self.breaker_cooldown_secs)?;
        l.number("ai.response_cache", &mut self.response_cache)?;
        Ok(())
    }
}

/// Which API dialect a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "anthropic")]
    Anthropic,
    #[serde(rename = "gemini")]
    Gemini,
    #[serde(rename = "azure")]
    Azure,
    #[serde(rename = "bedrock")]
    Bedrock,
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// The name used in config and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Azure => "azure",
            Self::Bedrock => "bedrock",
            Self::OpenAiCompatible => "openai_compatible",
        }
    }
}

/// One `[[ai.providers]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name.
    pub name: String,
    pub kind: ProviderKind,
    /// API base URL, e.g. `https://api.openai.com`.
    pub base_url: String,
    /// Name of the environment variable holding the API key (never the key). For `bedrock`
    /// the variable holds `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Model name globs routed to this provider.
    #[serde(default)]
    pub models: Vec<String>,
    /// `azure`: the `api-version` query parameter (default `2024-10-21`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `bedrock`: the AWS region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
}

/// `[log]`: diagnostics output (always stderr).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `gateway_server=debug,info`); `RUST_LOG`
    /// takes precedence.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: "text".to_owned() }
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Loads the configuration: defaults, then `path` (or `./gatehouse.toml` when
/// `path` is `None` and that file exists), then `GATEHOUSE_*` variables from
/// `env`; expands `${VAR}`, resolves relative paths and validates.
pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    let path = match path {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            default.is_file().then_some(default)
        }
    };
    let Some(path) = path else {
        return build(None, "defaults", None, env);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    build(Some(&text), &path.display().to_string(), Some(&base), env)
}

/// Parses a configuration from TOML text (no file: relative paths stay
/// relative to the current directory), applying `GATEHOUSE_*` variables and
/// validating.
pub fn parse(text: &str, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    build(Some(text), "config", None, env)
}

fn build(text: Option<&str>, origin: &str, base_dir: Option<&Path>, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    let mut config = match text {
        Some(text) => from_toml(text, origin, env)?,
        None => Config::default(),
    };
    let from_env = apply_env(&mut config, env)?;
    config.finish_defaults();
    if let Some(base) = base_dir {
        config.resolve_paths(base);
    }
    config.validate().map_err(|e| match e {
        // Point at the variable when the bad value came from one.
        ConfigError::Invalid { key, message } if from_env.contains(&key) => {
            let var = env_var_name(&key);
            ConfigError::Invalid { key, message: format!("{message} (set by {var})") }
        }
        other => other,
    })?;
    Ok(config)
}

fn from_toml(text: &str, origin: &str, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|span| line_col(text, span.start)).unwrap_or((1, 1));
        ConfigError::Syntax { origin: origin.to_owned(), line, column, message: one_line(e.message()) }
    })?;
    expand_value(&mut value, &mut String::new(), env)?;
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = one_line(e.inner().message());
        serde_error_to_config(&path, &message)
    })
}

/// Turns serde's "unknown field `x`" / "missing field `x`" into an error on
/// the key itself rather than on its parent table.
fn serde_error_to_config(parent: &str, message: &str) -> ConfigError {
    let join = |field: &str| {
        // For unknown keys the path already ends at the key itself.
        if parent == field || parent.ends_with(&format!(".{field}")) {
            parent.to_owned()
        } else if parent.is_empty() {
            field.to_owned()
        } else {
            format!("{parent}.{field}")
        }
    };
    for (prefix, what) in [("unknown field `", "unknown key"), ("missing field `", "required key is missing")] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((field, tail)) = rest.split_once('`')
        {
            let tail = tail.trim_start_matches([',', ' ']);
            let message = if tail.is_empty() || tail == "there are no fields" { what.to_owned() } else { format!("{what}; {tail}") };
            return ConfigError::invalid(join(field), message);
        }
    }
    let key = if parent.is_empty() { "(root)".to_owned() } else { parent.to_owned() };
    ConfigError::invalid(key, message)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// ${VAR} expansion
// ---------------------------------------------------------------------------

fn expand_value(value: &mut toml::Value, path: &mut String, env: &dyn EnvSource) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            *s = expand_str(s, env).map_err(|message| ConfigError::invalid(path.clone(), message))?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                expand_value(item, path, env)?;
                path.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                expand_value(item, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` from `env`; `$$` is a literal `$`, and a `$` followed by
/// anything else is kept as is.
pub fn expand_str(input: &str, env: &dyn EnvSource) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err("unterminated `${` (write `$$` for a literal `$`)".to_owned());
            };
            let name = &tail[..end];
            if !is_env_name(name) {
                return Err(format!("invalid variable reference `${{{name}}}`"));
            }
            match env.var(name) {
                Some(value) => out.push_str(&value),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `[A-Za-z_][A-Za-z0-9_]*`
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

// ---------------------------------------------------------------------------
// GATEHOUSE_* overrides
// ---------------------------------------------------------------------------

/// The variable overriding `key`: `server.max_body_bytes` →
/// `GATEHOUSE_SERVER_MAX_BODY_BYTES`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

pub(crate) struct EnvLayer<'a> {
    env: &'a dyn EnvSource,
    /// Keys whose value came from a variable.
    applied: BTreeSet<String>,
}

impl EnvLayer<'_> {
    pub(crate) fn get(&mut self, key: &str) -> Option<String> {
        let value = self.env.var(&env_var_name(key)).filter(|v| !v.is_empty())?;
        self.applied.insert(key.to_owned());
        Some(value)
    }

    pub(crate) fn string(&mut self, key: &str, slot: &mut String) {
        if let Some(v) = self.get(key) {
            *slot = v;
        }
    }

    pub(crate) fn list(&mut self, key: &str, slot: &mut Vec<String>) {
        if let Some(v) = self.get(key) {
            *slot = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        }
    }

    pub(crate) fn path(&mut self, key: &str, slot: &mut Option<PathBuf>) {
        if let Some(v) = self.get(key) {
            *slot = Some(PathBuf::from(v));
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub(crate) fn flag(&mut self, key: &str, slot: &mut bool) -> Result<(), ConfigError> {
        if let Some(v) = self.get(key) {
            *slot = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(ConfigError::invalid(key, format!("expected true or false (set by {})", env_var_name(key)))),
            };
        }
        Ok(())
    }

    pub(crate) fn number<T: FromStr>(&mut self, key: &str, slot: &mut T) -> Result<(), ConfigError> {
        if let Some(v) = self.get(key) {
            *slot =
                v.trim().parse().map_err(|_| ConfigError::invalid(key, format!("not a valid number (set by {})", env_var_name(key))))?;
        }
        Ok(())
    }
}

/// Applies `GATEHOUSE_*` variables; returns the keys they set.
fn apply_env(config: &mut Config, env: &dyn EnvSource) -> Result<BTreeSet<String>, ConfigError> {
    let mut l = EnvLayer { env, applied: BTreeSet::new() };
    let s = &mut config.server;
    l.string("server.listen", &mut s.listen);
    l.string("server.public_url", &mut s.public_url);
    l.list("server.allowed_origins", &mut s.allowed_origins);
    l.list("server.allowed_hosts", &mut s.allowed_hosts);
    l.number("server.max_body_bytes", &mut s.max_body_bytes)?;
    l.number("server.shutdown_grace_secs", &mut s.shutdown_grace_secs)?;
    l.flag("server.allow_runtime_stdio_backends", &mut s.allow_runtime_stdio_backends)?;
    l.flag("server.block_private_urls", &mut s.block_private_urls)?;
    l.flag("server.allow_link_local_urls", &mut s.allow_link_local_urls)?;
    let d = &mut config.database;
    l.string("database.url", &mut d.url);
    l.number("database.max_connections", &mut d.max_connections)?;
    l.path("auth.secret_file", &mut config.auth.secret_file);
    if let Some(v) = l.get("auth.anonymous_user") {
        config.auth.anonymous_user = Some(v);
    }
    let m = &mut config.mcp;
    l.number("mcp.request_timeout_secs", &mut m.request_timeout_secs)?;
    l.number("mcp.session_idle_timeout_secs", &mut m.session_idle_timeout_secs)?;
    l.number("mcp.max_sessions", &mut m.max_sessions)?;
    l.number("mcp.sse_after_ms", &mut m.sse_after_ms)?;
    l.number("mcp.sse_close_after_ms", &mut m.sse_close_after_ms)?;
    l.number("mcp.sse_replay_events", &mut m.sse_replay_events)?;
    l.string("log.level", &mut config.log.level);
    l.string("log.format", &mut config.log.format);
    // Sections owned by their modules: each reads its own `GATEHOUSE_<SECTION>_*` keys.
    config.console.apply_env(&mut l)?;
    config.audit.apply_env(&mut l)?;
    config.policy.apply_env(&mut l)?;
    config.limits.apply_env(&mut l)?;
    config.metrics.apply_env(&mut l)?;
    config.agents.apply_env(&mut l)?;
    config.ai.apply_env(&mut l)?;
    Ok(l.applied)
}

// ---------------------------------------------------------------------------
// Derived defaults, paths, validation
// ---------------------------------------------------------------------------

impl Config {
    /// Fills values whose default depends on other keys.
    fn finish_defaults(&mut self) {
        let s = &mut self.server;
        if s.public_url.trim().is_empty() {
            s.public_url = format!("http://{}", s.listen);
        }
        while s.public_url.ends_with('/') {
            s.public_url.pop();
        }
    }

    /// Resolves relative file paths against `base` (the config file's folder).
    fn resolve_paths(&mut self, base: &Path) {
        self.database.url = resolve_sqlite_url(&self.database.url, base);
        if let Some(file) = &mut self.auth.secret_file
            && file.is_relative()
        {
            *file = base.join(&*file);
        }
        if let Some(file) = &mut self.metrics.bearer_token_file
            && file.is_relative()
        {
            *file = base.join(&*file);
        }
        self.agents.resolve_paths(base);
        for backend in &mut self.backends {
            if let Some(cwd) = &mut backend.cwd
                && cwd.is_relative()
            {
                *cwd = base.join(&*cwd);
            }
        }
    }

    /// Checks every value; the error names the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server()?;
        validate_database(&self.database)?;
        if let Some(file) = &self.auth.secret_file
            && file.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid("auth.secret_file", "must not be empty"));
        }
        let m = &self.mcp;
        positive("mcp.request_timeout_secs", m.request_timeout_secs)?;
        positive("mcp.session_idle_timeout_secs", m.session_idle_timeout_secs)?;
        positive("mcp.max_sessions", m.max_sessions as u64)?;
        positive("mcp.sse_replay_events", m.sse_replay_events as u64)?;
        let mut names = BTreeSet::new();
        for (i, backend) in self.backends.iter().enumerate() {
            validate_backend(i, backend)?;
            if !names.insert(backend.name.as_str()) {
                return Err(ConfigError::invalid(format!("backends[{i}].name"), format!("duplicate backend name `{}`", backend.name)));
            }
        }
        let mut names = BTreeSet::new();
        for (i, provider) in self.ai.providers.iter().enumerate() {
            validate_provider(i, provider)?;
            if !names.insert(provider.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("ai.providers[{i}].name"),
                    format!("duplicate provider name `{}`", provider.name),
                ));
            }
        }
        crate::ai::validate_config(&self.ai)?;
        validate_log(&self.log)?;
        self.console.validate()?;
        self.audit.validate()?;
        self.policy.validate()?;
        self.limits.validate()?;
        self.metrics.validate()?;
        self.agents.validate()
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        s.listen_addr()?;
        http_url("server.public_url", &s.public_url)?;
        for (i, origin) in s.allowed_origins.iter().enumerate() {
            if origin == "*" {
                continue;
            }
            let key = format!("server.allowed_origins[{i}]");
            let url = http_url(&key, origin)?;
            if url.path() != "/" || url.query().is_some() {
                return Err(ConfigError::invalid(key, "an origin is scheme://host[:port] without a path"));
            }
        }
        for (i, host) in s.allowed_hosts.iter().enumerate() {
            if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(ConfigError::invalid(format!("server.allowed_hosts[{i}]"), "expected a host name, optionally with :port"));
            }
        }
        positive("server.max_body_bytes", s.max_body_bytes as u64)
    }
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

/// Parses an absolute `http`/`https` URL with a host.
fn http_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value).map_err(|e| ConfigError::invalid(key, format!("invalid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(key, "must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, "URL has no host"));
    }
    Ok(url)
}

/// The store a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    /// Which backend `url` names, by scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

fn validate_database(d: &DatabaseConfig) -> Result<(), ConfigError> {
    match DatabaseKind::from_url(&d.url) {
        Some(DatabaseKind::Sqlite) => {
            if sqlite_path_part(&d.url).0.is_empty() {
                return Err(ConfigError::invalid("database.url", "SQLite URL has no file path"));
            }
        }
        // Never echo the URL: it may hold a password.
        Some(DatabaseKind::Postgres) => {
            let url = url::Url::parse(&d.url).map_err(|e| ConfigError::invalid("database.url", format!("invalid PostgreSQL URL: {e}")))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid("database.url", "PostgreSQL URL has no host"));
            }
        }
        None => {
            return Err(ConfigError::invalid("database.url", "unsupported scheme; use sqlite://PATH or postgres://USER@HOST/DB"));
        }
    }
    positive("database.max_connections", u64::from(d.max_connections))
}

/// Splits a SQLite URL into its path and its `?query` suffix (with the `?`).
fn sqlite_path_part(url: &str) -> (&str, &str) {
    let rest = &url["sqlite:".len().min(url.len())..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q..]),
        None => (rest, ""),
    }
}

/// Makes a relative SQLite file path absolute against `base`; other URLs are
/// returned unchanged.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    if DatabaseKind::from_url(url) != Some(DatabaseKind::Sqlite) {
        return url.to_owned();
    }
    let (path, query) = sqlite_path_part(url);
    if path.is_empty() || path == ":memory:" || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    format!("sqlite://{}{query}", base.join(path).display())
}

/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$` without `__` (the namespace separator).
pub fn is_valid_backend_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        && !name.contains("__")
}

pub(crate) fn validate_backend(i: usize, b: &BackendConfig) -> Result<(), ConfigError> {
    let key = |field: &str| format!("backends[{i}].{field}");
    if !is_valid_backend_name(&b.name) {
        return Err(ConfigError::invalid(
            key("name"),
            "must be 1-32 characters of A-Z a-z 0-9 _ -, start with a letter or digit, and not contain `__`",
        ));
    }
    if b.timeout_secs == Some(0) {
        return Err(ConfigError::invalid(key("timeout_secs"), "must be greater than 0"));
    }
    if b.isolation != Isolation::Shared && b.transport != BackendTransport::Stdio {
        return Err(ConfigError::invalid(key("isolation"), "only stdio backends run a process per session or user"));
    }
    if b.isolation == Isolation::Shared {
        for (field, set) in [("max_processes", b.max_processes.is_some()), ("process_idle_secs", b.process_idle_secs.is_some())] {
            if set {
                return Err(ConfigError::invalid(key(field), "only used with isolation = \"session\" or \"user\""));
            }
        }
    }
    if b.max_processes == Some(0) {
        return Err(ConfigError::invalid(key("max_processes"), "must be greater than 0"));
    }
    if b.process_idle_secs == Some(0) {
        return Err(ConfigError::invalid(key("process_idle_secs"), "must be greater than 0"));
    }
    let transport = b.transport.as_str();
    let unused = |field: &str| ConfigError::invalid(key(field), format!("not used with transport = \"{transport}\""));
    match b.transport {
        BackendTransport::Stdio => {
            match &b.command {
                None => {
                    return Err(ConfigError::invalid(key("command"), "required with transport = \"stdio\""));
                }
                Some(c) if c.trim().is_empty() => {
                    return Err(ConfigError::invalid(key("command"), "must not be empty"));
                }
                Some(_) => {}
            }
            if b.url.is_some() {
                return Err(unused("url"));
            }
            if !b.headers.is_empty() {
                return Err(unused("headers"));
            }
            for (name, value) in &b.env {
                if !is_valid_child_env_name(name) {
                    return Err(ConfigError::invalid(format!("backends[{i}].env.{name}"), "invalid environment variable name"));
                }
                if value.contains('\0') {
                    return Err(ConfigError::invalid(format!("backends[{i}].env.{name}"), "value contains a NUL byte"));
                }
            }
        }
        BackendTransport::Http | BackendTransport::Sse => {
            let Some(url) = &b.url else {
                return Err(ConfigError::invalid(key("url"), format!("required with transport = \"{transport}\"")));
            };
            http_url(&key("url"), url)?;
            if b.command.is_some() {
                return Err(unused("command"));
            }
            if !b.args.is_empty() {
                return Err(unused("args"));
            }
            if !b.env.is_empty() {
                return Err(unused("env"));
            }
            if b.cwd.is_some() {
                return Err(unused("cwd"));
            }
            for (name, value) in &b.headers {
                let hkey = format!("backends[{i}].headers.{name}");
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ConfigError::invalid(hkey, "invalid header name"));
                }
                // Never echo the value: headers usually carry credentials.
                if http::HeaderValue::from_str(value).is_err() {
                    return Err(ConfigError::invalid(hkey, "invalid header value"));
                }
            }
        }
    }
    Ok(())
}

/// Names a child environment accepts: non-empty, no `=` and no NUL.
fn is_valid_child_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// Checks one provider entry given through the admin API (keys named `ai.providers[0].…`).
pub fn validate_provider_entry(p: &ProviderConfig) -> Result<(), ConfigError> {
    validate_provider(0, p)
}

fn validate_provider(i: usize, p: &ProviderConfig) -> Result<(), ConfigError> {
    let key = |field: &str| format!("ai.providers[{i}].{field}");
    if !is_valid_backend_name(&p.name) {
        return Err(ConfigError::invalid(
            key("name"),
            "must be 1-32 characters of A-Z a-z 0-9 _ -, start with a letter or digit, and not contain `__`",
        ));
    }
    http_url(&key("base_url"), &p.base_url)?;
    if let Some(var) = &p.api_key_env
        && !is_env_name(var)
    {
        return Err(ConfigError::invalid(key("api_key_env"), "must be an environment variable name (the variable holds the key)"));
    }
    for (j, model) in p.models.iter().enumerate() {
        if model.trim().is_empty() {
            return Err(ConfigError::invalid(format!("ai.providers[{i}].models[{j}]"), "must not be empty"));
        }
    }
    Ok(())
}

fn validate_log(log: &LogConfig) -> Result<(), ConfigError> {
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() || log.level.trim().is_empty() {
        return Err(ConfigError::invalid("log.level", "invalid filter; use e.g. `info` or `gateway_server=debug,info`"));
    }
    if !matches!(log.format.as_str(), "text" | "json") {
        return Err(ConfigError::invalid("log.format", "must be \"text\" or \"json\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn defaults_are_valid() {
        let config = parse("", &MapEnv::new()).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:3200");
        assert_eq!(config.server.public_url, "http://127.0.0.1:3200");
        assert_eq!(config.server.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(config.database.url, "sqlite://gatehouse.db");
        assert_eq!(config.mcp.request_timeout_secs, 60);
        assert_eq!(config.log.format, "text");
        Config::default().validate().unwrap();
        assert_eq!(Config::default().server.public_url, config.server.public_url);
    }

    #[test]
    fn example_parses_and_validates() {
        let env = MapEnv::new();
        let config = parse(EXAMPLE, &env).unwrap();
        assert!(!config.backends.is_empty());
        assert!(!config.ai.providers.is_empty());
    }

    #[test]
    fn expand_rules() {
        let env = MapEnv::new().with("A", "x").with("B_2", "y$z");
        assert_eq!(expand_str("${A}-${B_2}", &env).unwrap(), "x-y$z");
        assert_eq!(expand_str("$${A}", &env).unwrap(), "${A}");
        assert_eq!(expand_str("pa$word$", &env).unwrap(), "pa$word$");
        assert!(expand_str("${MISSING}", &env).unwrap_err().contains("MISSING"));
        assert!(expand_str("${A", &env).unwrap_err().contains("unterminated"));
        assert!(expand_str("${1A}", &env).unwrap_err().contains("invalid"));
    }

    #[test]
    fn host_without_port_handles_ipv6() {
        assert_eq!(host_without_port("[::1]:3200"), "[::1]");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("example.com:80"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
    }

    #[test]
    fn sqlite_urls_resolve_against_base() {
        let base = Path::new("/etc/gatehouse");
        assert_eq!(resolve_sqlite_url("sqlite://gatehouse.db", base), "sqlite:///etc/gatehouse/gatehouse.db");
        assert_eq!(resolve_sqlite_url("sqlite:data/g.db?mode=rwc", base), "sqlite:///etc/gatehouse/data/g.db?mode=rwc");
        assert_eq!(resolve_sqlite_url("sqlite:///abs.db", base), "sqlite:///abs.db");
        assert_eq!(resolve_sqlite_url("sqlite::memory:", base), "sqlite::memory:");
        assert_eq!(resolve_sqlite_url("postgres://u@h/db", base), "postgres://u@h/db");
    }

    /// Records every variable looked up.
    struct Recorder(RefCell<Vec<String>>);

    impl EnvSource for Recorder {
        fn var(&self, key: &str) -> Option<String> {
            self.0.borrow_mut().push(key.to_owned());
            None
        }
    }

    /// Every scalar/list key of the single-table sections has a variable, so
    /// a new key cannot be added without one.
    #[test]
    fn every_section_key_has_an_env_override() {
        let recorder = Recorder(RefCell::new(Vec::new()));
        apply_env(&mut Config::default(), &recorder).unwrap();
        let looked_up: BTreeSet<String> = recorder.0.into_inner().into_iter().collect();

        let mut config = Config::default();
        config.auth.secret_file = Some(PathBuf::from("x"));
        config.auth.anonymous_user = Some("a".into());
        config.metrics.bearer_token = Some("t".into());
        config.metrics.bearer_token_file = Some(PathBuf::from("t"));
        config.agents.releases_dir = Some(PathBuf::from("r"));
        let value = toml::Value::try_from(&config).unwrap();
        let table = value.as_table().unwrap();
        let mut expected = BTreeSet::new();
        for (section, content) in table {
            if let toml::Value::Table(keys) = content {
                for key in keys.keys() {
                    if section == "ai" && ["providers", "models", "budgets"].contains(&key.as_str()) {
                        continue; // arrays of tables have no variable
                    }
                    expected.insert(env_var_name(&format!("{section}.{key}")));
                }
            }
        }
        assert_eq!(looked_up, expected);
    }
}
