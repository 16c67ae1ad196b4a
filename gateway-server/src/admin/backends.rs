//! Admin API: MCP backends, from the config file and added at run time.
//!
//! Config-file backends are listed and tested but read-only here (409 on
//! change). Runtime backends are stored (secrets encrypted, see
//! [`crate::store::SecretCipher`]), started at once, and started again by
//! every hub using the store when it starts. Header and env values are never
//! returned: they read `"***"`, and a `PUT` that sends `"***"` back keeps the
//! stored value.
//!
//! Safety of runtime definitions: http/sse URLs pass the SSRF check of
//! [`crate::net::ssrf`] (create, update, test); stdio backends run a command
//! on the hub's machine with the hub's rights, so the API accepts them only
//! when `server.allow_runtime_stdio_backends = true`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gatehouse_proto::{ErrorObject, mcp};
use gatehouse_upstream::{CallOptions, ClientIdentity, Health, Status, Upstream, UpstreamEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::roles::Permission;
use crate::config::{BackendConfig, BackendTransport, ConfigError, Isolation, redact_url_password};
use crate::mcp::hub::Backend;
use crate::net::ssrf::{SsrfPolicy, check_url};
use crate::server::AppState;
use crate::store::{SecretCipher, StoredBackend};

/// What replaces secret values in answers.
pub const MASK: &str = "***";
/// How long a connection test may take, in total.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Bounds on definition sizes (a definition is an admin's input, but still input).
const MAX_STR: usize = 4096;
const MAX_ITEMS: usize = 256;
const MAX_TIMEOUT_SECS: u64 = 3600;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backends, create_backend))
        .routes(routes!(get_backend, update_backend, delete_backend))
        .routes(routes!(test_existing))
        .routes(routes!(test_definition))
}

/// How the hub reaches a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    Http,
    Sse,
}

impl From<Transport> for BackendTransport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Stdio => Self::Stdio,
            Transport::Http => Self::Http,
            Transport::Sse => Self::Sse,
        }
    }
}

impl From<BackendTransport> for Transport {
    fn from(t: BackendTransport) -> Self {
        match t {
            BackendTransport::Stdio => Self::Stdio,
            BackendTransport::Http => Self::Http,
            BackendTransport::Sse => Self::Sse,
        }
    }
}

/// Where a backend is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendSource {
    /// `[[backends]]` in the config file: read-only here.
    Config,
    /// Added through this API.
    Runtime,
}

/// A backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendHealth {
    /// Connecting for the first time.
    Starting,
    /// Connected; calls are forwarded.
    Ready,
    /// Connection lost after it had served: its tools are still listed but
    /// calls fail until the supervisor reconnects (with backoff).
    Degraded,
    /// Never came up, stopped, or disabled.
    Down,
}

impl BackendHealth {
    /// The health of a running backend.
    pub fn of(status: &Status, catalog_loaded: bool) -> Self {
        match status.health {
            Health::Starting => Self::Starting,
            Health::Ready => Self::Ready,
            Health::Unhealthy { .. } if catalog_loaded => Self::Degraded,
            Health::Unhealthy { .. } | Health::Stopped => Self::Down,
        }
    }

    /// The health of `b` now.
    pub fn of_backend(b: &Backend) -> Self {
        let cat = b.catalog();
        let loaded = !(cat.tools.is_empty() && cat.prompts.is_empty() && cat.resources.is_empty() && cat.templates.is_empty());
        Self::of(&b.status(), loaded)
    }
}

/// A backend definition: the fields of a `[[backends]]` config entry.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendDefinition {
    /// 1-32 of `A-Z a-z 0-9 _ -`, starting with a letter or digit, without `__`.
    pub name: String,
    pub transport: Transport,
    /// stdio: the program to run.
    #[serde(default)]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: its environment (encrypted at rest, never returned).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: its working directory (absolute).
    #[serde(default)]
    pub cwd: Option<String>,
    /// http/sse: the endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// http/sse: headers sent with every request (encrypted at rest, never returned).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout, 1-3600 s; default `mcp.request_timeout_secs`.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// A disabled backend is kept but not started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// stdio: `shared` (default) runs one process for every session;
    /// `session` one per client session; `user` one per user.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "session")]
    pub isolation: Option<Isolation>,
    /// stdio with isolation: most processes at once (default 32).
    #[serde(default)]
    pub max_processes: Option<usize>,
    /// stdio with isolation: a process with no call for this long is stopped (default 300).
    #[serde(default)]
    pub process_idle_secs: Option<u64>,
}

fn yes() -> bool {
    true
}

impl BackendDefinition {
    fn into_config(self) -> BackendConfig {
        BackendConfig {
            name: self.name,
            transport: self.transport.into(),
            command: self.command,
            args: self.args,
            env: self.env,
            cwd: self.cwd.map(PathBuf::from),
            url: self.url,
            headers: self.headers,
            timeout_secs: self.timeout_secs,
            enabled: self.enabled,
            isolation: self.isolation.unwrap_or_default(),
            max_processes: self.max_processes,
            process_idle_secs: self.process_idle_secs,
        }
    }
}

/// A backend as the API shows it. Header and env values read `"***"`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackendInfo {
    pub name: String,
    pub transport: Transport,
    pub source: BackendSource,
    pub enabled: bool,
    pub health: BackendHealth,
    /// Counts from the backend's latest catalog.
    pub tools: usize,
    pub prompts: usize,
    pub resources: usize,
    /// Reconnections (child restarts) since it was started.
    pub restarts: u64,
    pub last_error: Option<String>,
    /// http/sse: the endpoint, any password replaced by `***`.
    pub url: Option<String>,
    /// stdio: the program.
    pub command: Option<String>,
    pub args: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub timeout_secs: Option<u64>,
    /// stdio: `shared`, `session` or `user`.
    pub isolation: String,
    pub max_processes: Option<usize>,
    pub process_idle_secs: Option<u64>,
    /// `serverInfo` from the backend's `initialize` answer, while connected.
    #[schema(value_type = Option<Object>)]
    pub server_info: Option<Value>,
    /// Runtime backends: when added and changed, and by whom.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
}

fn masked(m: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.keys().map(|k| (k.clone(), MASK.to_owned())).collect()
}

fn info(st: &AppState, cfg: &BackendConfig, source: BackendSource, stored: Option<&StoredBackend>) -> BackendInfo {
    let live = st.hub.backend(&cfg.name);
    let (health, status, cat) = match &live {
        Some(b) => (BackendHealth::of_backend(b), Some(b.status()), Some(b.catalog())),
        None => (BackendHealth::Down, None, None),
    };
    BackendInfo {
        name: cfg.name.clone(),
        transport: cfg.transport.into(),
        source,
        enabled: cfg.enabled,
        health,
        tools: cat.as_ref().map_or(0, |c| c.tools.len()),
        prompts: cat.as_ref().map_or(0, |c| c.prompts.len()),
        resources: cat.as_ref().map_or(0, |c| c.resources.len() + c.templates.len()),
        restarts: status.as_ref().map_or(0, |s| s.restarts),
        last_error: status.as_ref().and_then(|s| s.last_error.clone()),
        url: cfg.url.as_deref().map(redact_url_password),
        command: cfg.command.clone(),
        args: cfg.args.clone(),
        headers: masked(&cfg.headers),
        env: masked(&cfg.env),
        timeout_secs: cfg.timeout_secs,
        isolation: cfg.isolation.as_str().to_owned(),
        max_processes: cfg.max_processes,
        process_idle_secs: cfg.process_idle_secs,
        server_info: status.and_then(|s| s.init.map(|i| i.server_info.clone())),
        created_at: stored.map(|s| s.created_at),
        updated_at: stored.map(|s| s.updated_at),
        created_by: stored.and_then(|s| s.created_by.clone()),
    }
}

fn config_backend<'a>(st: &'a AppState, name: &str) -> Option<&'a BackendConfig> {
    st.config.backends.iter().find(|b| b.name == name)
}

fn cipher(st: &AppState) -> SecretCipher {
    SecretCipher::new(st.auth.secret())
}

fn bad_config(e: ConfigError) -> ApiError {
    match e {
        ConfigError::Invalid { key, message } => {
            let key = key.strip_prefix("backends[0].").unwrap_or(&key);
            ApiError::BadRequest(format!("{key}: {message}"))
        }
        other => ApiError::BadRequest(other.to_string()),
    }
}

fn name_param(name: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !crate::config::is_valid_backend_name(&name) {
        return Err(ApiError::NotFound(format!("no backend `{}`", name.chars().take(64).collect::<String>())));
    }
    Ok(name)
}

/// Validates a definition the way the config file is validated, plus the
/// runtime rules: sizes, stdio permission, absolute cwd, SSRF.
async fn check_definition(st: &AppState, cfg: &BackendConfig) -> Result<(), ApiError> {
    let too_long = |what: &str| ApiError::BadRequest(format!("{what}: too long"));
    if cfg.command.as_ref().is_some_and(|c| c.len() > MAX_STR) {
        return Err(too_long("command"));
    }
    if cfg.url.as_ref().is_some_and(|u| u.len() > MAX_STR) {
        return Err(too_long("url"));
    }
    if cfg.args.len() > MAX_ITEMS || cfg.args.iter().any(|a| a.len() > MAX_STR || a.contains('\0')) {
        return Err(ApiError::BadRequest(format!("args: at most {MAX_ITEMS} arguments of at most {MAX_STR} bytes, without NUL")));
    }
    if cfg.env.len() > MAX_ITEMS || cfg.headers.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!("env, headers: at most {MAX_ITEMS} entries")));
    }
    if cfg.env.iter().chain(cfg.headers.iter()).any(|(k, v)| k.len() > MAX_STR || v.len() > MAX_STR) {
        return Err(ApiError::BadRequest(format!("env, headers: names and values of at most {MAX_STR} bytes")));
    }
    if cfg.timeout_secs.is_some_and(|t| t > MAX_TIMEOUT_SECS) {
        return Err(ApiError::BadRequest(format!("timeout_secs: at most {MAX_TIMEOUT_SECS}")));
    }
    crate::config::validate_backend(0, cfg).map_err(bad_config)?;
    match cfg.transport {
        BackendTransport::Stdio => {
            if !st.config.server.allow_runtime_stdio_backends {
                return Err(ApiError::BadRequest(
                    "transport: stdio backends run a command on the hub's machine and cannot be added through the API \
                     unless server.allow_runtime_stdio_backends = true"
                        .to_owned(),
                ));
            }
            if cfg.cwd.as_ref().is_some_and(|c| !c.is_absolute()) {
                return Err(ApiError::BadRequest("cwd: must be an absolute path".to_owned()));
            }
        }
        BackendTransport::Http | BackendTransport::Sse => {
            let url = cfg.url.as_deref().unwrap_or_default();
            check_url(url, &SsrfPolicy::from_config(&st.config.server)).await.map_err(|e| ApiError::BadRequest(format!("url: {e}")))?;
        }
    }
    Ok(())
}

fn read_body(body: Result<Json<BackendDefinition>, JsonRejection>) -> Result<BackendDefinition, ApiError> {
    body.map(|Json(d)| d).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Every backend, config and runtime, with its live state.
#[utoipa::path(get, path = "/backends", tag = "backends",
    responses((status = 200, body = Vec<BackendInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_backends(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<Vec<BackendInfo>>, ApiError> {
    ctx.require(Permission::BackendsRead)?;
    let mut out: Vec<BackendInfo> = st.config.backends.iter().map(|b| info(&st, b, BackendSource::Config, None)).collect();
    for stored in st.store.list_backends(&cipher(&st)).await? {
        if config_backend(&st, &stored.config.name).is_none() {
            out.push(info(&st, &stored.config, BackendSource::Runtime, Some(&stored)));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

/// One backend.
#[utoipa::path(get, path = "/backends/{name}", tag = "backends",
    params(("name" = String, Path, description = "Backend name")),
    responses((status = 200, body = BackendInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_backend(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<BackendInfo>, ApiError> {
    ctx.require(Permission::BackendsRead)?;
    let name = name_param(name)?;
    if let Some(cfg) = config_backend(&st, &name) {
        return Ok(Json(info(&st, cfg, BackendSource::Config, None)));
    }
    let stored = st.store.backend_by_name(&name, &cipher(&st)).await?.ok_or_else(|| ApiError::NotFound(format!("no backend `{name}`")))?;
    Ok(Json(info(&st, &stored.config, BackendSource::Runtime, Some(&stored))))
}

/// Adds a backend and starts it (it connects in the background).
#[utoipa::path(post, path = "/backends", tag = "backends", request_body = BackendDefinition,
    responses((status = 201, body = BackendInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "A backend with this name exists"),
        (status = 503, body = ErrorBody)))]
async fn create_backend(
    ctx: AdminCtx,
    State(st): State<AppState>,
    body: Result<Json<BackendDefinition>, JsonRejection>,
) -> Result<(StatusCode, Json<BackendInfo>), ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let cfg = read_body(body)?.into_config();
    check_definition(&st, &cfg).await?;
    if config_backend(&st, &cfg.name).is_some() || st.hub.backend(&cfg.name).is_some() {
        return Err(ApiError::Conflict(format!("backend `{}` already exists", cfg.name)));
    }
    let stored = st.store.insert_backend(&cfg, &cipher(&st), Some(&ctx.username)).await?;
    if cfg.enabled {
        st.hub.add_backend_with(cfg.to_upstream_spec(st.config.mcp.request_timeout()), cfg.options());
    }
    tracing::info!(actor = %ctx.username, backend = %cfg.name, transport = cfg.transport.as_str(), "backend added");
    Ok((StatusCode::CREATED, Json(info(&st, &stored.config, BackendSource::Runtime, Some(&stored)))))
}

/// Keeps the stored value of every header/env entry sent back as `"***"`.
fn unmask(field: &str, new: &mut BTreeMap<String, String>, old: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (k, v) in new.iter_mut() {
        if v == MASK {
            *v = old
                .get(k)
                .cloned()
                .ok_or_else(|| ApiError::BadRequest(format!("{field}.{k}: `{MASK}` stands for a stored value, and there is none")))?;
        }
    }
    Ok(())
}

/// Replaces a runtime backend and restarts it.
#[utoipa::path(put, path = "/backends/{name}", tag = "backends", request_body = BackendDefinition,
    params(("name" = String, Path, description = "Backend name")),
    responses((status = 200, body = BackendInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A config-file backend"), (status = 503, body = ErrorBody)))]
async fn update_backend(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<BackendDefinition>, JsonRejection>,
) -> Result<Json<BackendInfo>, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let name = name_param(name)?;
    let mut cfg = read_body(body)?.into_config();
    if config_backend(&st, &name).is_some() {
        return Err(ApiError::Conflict(format!("backend `{name}` comes from the config file and is read-only")));
    }
    if cfg.name != name {
        return Err(ApiError::BadRequest(format!("name: `{}` differs from the path; backends cannot be renamed", cfg.name)));
    }
    let c = cipher(&st);
    let old = st.store.backend_by_name(&name, &c).await?.ok_or_else(|| ApiError::NotFound(format!("no backend `{name}`")))?;
    unmask("headers", &mut cfg.headers, &old.config.headers)?;
    unmask("env", &mut cfg.env, &old.config.env)?;
    check_definition(&st, &cfg).await?;
    if !st.store.update_backend(&cfg, &c).await? {
        return Err(ApiError::NotFound(format!("no backend `{name}`")));
    }
    st.hub.remove_backend(&name).await;
    if cfg.enabled {
        st.hub.add_backend_with(cfg.to_upstream_spec(st.config.mcp.request_timeout()), cfg.options());
    }
    tracing::info!(actor = %ctx.username, backend = %name, "backend replaced and restarted");
    let stored = st.store.backend_by_name(&name, &c).await?.unwrap_or(StoredBackend { config: cfg, ..old });
    Ok(Json(info(&st, &stored.config, BackendSource::Runtime, Some(&stored))))
}

/// Stops and deletes a runtime backend.
#[utoipa::path(delete, path = "/backends/{name}", tag = "backends",
    params(("name" = String, Path, description = "Backend name")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A config-file backend"), (status = 503, body = ErrorBody)))]
async fn delete_backend(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let name = name_param(name)?;
    if config_backend(&st, &name).is_some() {
        return Err(ApiError::Conflict(format!("backend `{name}` comes from the config file and is read-only")));
    }
    if !st.store.delete_backend(&name).await? {
        return Err(ApiError::NotFound(format!("no backend `{name}`")));
    }
    st.hub.remove_backend(&name).await;
    tracing::info!(actor = %ctx.username, backend = %name, "backend deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The outcome of a connection test.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    /// From the start of the test to the end of `tools/list`.
    pub latency_ms: u64,
    /// The backend's `serverInfo`.
    #[schema(value_type = Option<Object>)]
    pub server_info: Option<Value>,
    /// Names of the tools it lists.
    pub tools: Vec<String>,
    pub error: Option<String>,
}

/// Tests a configured or stored backend with a throwaway connection (the
/// running one is left alone).
#[utoipa::path(post, path = "/backends/{name}/test", tag = "backends",
    params(("name" = String, Path, description = "Backend name")),
    responses((status = 200, body = TestResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn test_existing(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TestResult>, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let name = name_param(name)?;
    let cfg = match config_backend(&st, &name) {
        Some(cfg) => cfg.clone(),
        None => {
            st.store.backend_by_name(&name, &cipher(&st)).await?.ok_or_else(|| ApiError::NotFound(format!("no backend `{name}`")))?.config
        }
    };
    Ok(Json(run_test(&st, &cfg).await))
}

/// Tests a definition without saving it: starts a throwaway connection, runs
/// `initialize` and `tools/list`, and shuts it down.
#[utoipa::path(post, path = "/backend-tests", tag = "backends", request_body = BackendDefinition,
    responses((status = 200, body = TestResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn test_definition(
    ctx: AdminCtx,
    State(st): State<AppState>,
    body: Result<Json<BackendDefinition>, JsonRejection>,
) -> Result<Json<TestResult>, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let cfg = read_body(body)?.into_config();
    check_definition(&st, &cfg).await?;
    Ok(Json(run_test(&st, &cfg).await))
}

/// Connects to `cfg` on the side, within [`TEST_TIMEOUT`].
pub async fn run_test(st: &AppState, cfg: &BackendConfig) -> TestResult {
    let mut spec = cfg.to_upstream_spec(st.config.mcp.request_timeout());
    spec.connect_timeout = TEST_TIMEOUT;
    spec.request_timeout = TEST_TIMEOUT;
    let identity = ClientIdentity {
        client_info: json!({ "name": "gatehouse", "title": "Gatehouse connection test", "version": env!("CARGO_PKG_VERSION") }),
        capabilities: json!({}),
        protocol_version: mcp::LATEST_VERSION.to_owned(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    // No client is attached: answer what the server asks and drop the rest.
    let drain = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                UpstreamEvent::Request { reply, .. } => {
                    let _ = reply.send(Err(ErrorObject::new(mcp::code::INTERNAL_ERROR, "no client during a connection test")));
                }
                UpstreamEvent::Barrier(ack) => {
                    let _ = ack.send(());
                }
                _ => {}
            }
        }
    });
    let started = Instant::now();
    let up = Upstream::start(spec, identity, tx);
    let outcome = probe(&up, started).await;
    up.shutdown().await;
    drain.abort();
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok((server_info, tools)) => TestResult { ok: true, latency_ms, server_info: Some(server_info), tools, error: None },
        Err(error) => TestResult { ok: false, latency_ms, server_info: None, tools: vec![], error: Some(error) },
    }
}

async fn probe(up: &Upstream, started: Instant) -> Result<(Value, Vec<String>), String> {
    // The supervisor retries failures forever: stop at the first one.
    let init = loop {
        let status = up.status();
        match (&status.health, status.init) {
            (Health::Ready, Some(init)) => break init,
            (Health::Unhealthy { error }, _) => return Err(error.clone()),
            (Health::Stopped, _) => return Err("the connection was closed".to_owned()),
            _ => {}
        }
        if started.elapsed() >= TEST_TIMEOUT {
            return Err(format!("no answer to initialize within {} s", TEST_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut tools = Vec::new();
    if init.capabilities.get("tools").is_some_and(|v| !v.is_null()) {
        let left = TEST_TIMEOUT.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
        let raw = up
            .request(mcp::method::TOOLS_LIST, None, CallOptions { timeout: Some(left), ..Default::default() })
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        let page: Value = serde_json::from_str(raw.get()).map_err(|e| format!("tools/list answered invalid JSON: {e}"))?;
        tools =
            page["tools"].as_array().map(|a| a.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    }
    Ok((init.server_info.clone(), tools))
}
