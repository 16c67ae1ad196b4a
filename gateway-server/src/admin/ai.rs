//! Admin API: the AI proxy's providers, model registrations (with prices), budgets and usage.
//!
//! Config-file entries are listed with `source: "config"` and are read-only (409 on change).
//! Provider API keys are write-only: stored encrypted, shown as `***`. Providers and models
//! need `backends:write` to change and `backends:read` to list; budgets go with limits
//! (`limits:write` / `limits:read`); usage needs `usage:read` (only the caller's own usage
//! without `audit:read`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::usage::UsageReport;
use super::{AdminCtx, ApiError, ErrorBody};
use crate::ai::StoredProvider;
use crate::ai::budgets::BudgetConfig;
use crate::ai::router::ModelConfig;
use crate::auth::roles::Permission;
use crate::config::{ProviderConfig, ProviderKind};
use crate::net::ssrf::{SsrfPolicy, check_url};
use crate::server::AppState;
use crate::store::{AiTable, UsageBucket, UsageGroupBy, UsageQuery};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers, create_provider))
        .routes(routes!(update_provider, delete_provider))
        .routes(routes!(list_models, create_model))
        .routes(routes!(update_model, delete_model))
        .routes(routes!(list_budgets, create_budget))
        .routes(routes!(update_budget, delete_budget))
        .routes(routes!(ai_usage))
}

const MAX_PARAM_LEN: usize = 256;

fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(v) = p.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if v.is_empty() || v.len() > MAX_PARAM_LEN {
        return Err(ApiError::BadRequest(format!("path parameter: 1-{MAX_PARAM_LEN} characters")));
    }
    Ok(v)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::BadRequest(e.body_text()))
}

async fn reload(st: &AppState) -> Result<(), ApiError> {
    st.ai.reload().await.map_err(ApiError::from)
}

// ---------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------

/// A provider as the API shows it; the key is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub models: Vec<String>,
    pub api_key_env: Option<String>,
    /// `***` when a key is set, else null.
    pub api_key: Option<String>,
    pub api_version: Option<String>,
    pub region: Option<String>,
    /// `config` (read-only) or `store`.
    pub source: String,
}

impl ProviderView {
    fn new(c: &ProviderConfig, has_key: bool, source: &str) -> Self {
        Self {
            name: c.name.clone(),
            kind: c.kind,
            base_url: c.base_url.clone(),
            models: c.models.clone(),
            api_key_env: c.api_key_env.clone(),
            api_key: has_key.then(|| "***".to_owned()),
            api_version: c.api_version.clone(),
            region: c.region.clone(),
            source: source.to_owned(),
        }
    }
}

/// A provider to add or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    #[serde(default)]
    pub models: Vec<String>,
    /// Environment variable holding the key (on the hub's machine).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The key itself; stored encrypted, never shown. On update, absent keeps the stored key
    /// and an empty string removes it.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

impl ProviderInput {
    fn config(&self) -> ProviderConfig {
        ProviderConfig {
            name: self.name.clone(),
            kind: self.kind,
            base_url: self.base_url.clone(),
            api_key_env: self.api_key_env.clone(),
            models: self.models.clone(),
            api_version: self.api_version.clone(),
            region: self.region.clone(),
        }
    }
}

async fn check_provider(st: &AppState, c: &ProviderConfig) -> Result<(), ApiError> {
    crate::config::validate_provider_entry(c).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    check_url(&c.base_url, &SsrfPolicy::from_config(&st.config.server))
        .await
        .map_err(|e| ApiError::BadRequest(format!("base_url: {e}")))?;
    Ok(())
}

async fn save_provider(st: &AppState, c: ProviderConfig, key: Option<String>, insert: bool) -> Result<(), ApiError> {
    let sealed = match key.filter(|k| !k.is_empty()) {
        Some(k) => Some(st.ai.cipher().seal(&k, &format!("ai_providers.{}.api_key", c.name))?),
        None => None,
    };
    let name = c.name.clone();
    let text = serde_json::to_string(&StoredProvider { config: c, api_key: sealed }).map_err(ApiError::internal)?;
    if insert {
        st.store.ai_insert(AiTable::Providers, &name, None, &text).await?;
    } else if !st.store.ai_update(AiTable::Providers, &name, None, &text).await? {
        return Err(ApiError::NotFound(format!("no stored provider `{name}`")));
    }
    reload(st).await
}

/// Every provider, config-file ones first.
#[utoipa::path(get, path = "/ai/providers", tag = "ai",
    responses((status = 200, body = Vec<ProviderView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_providers(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<Vec<ProviderView>>, ApiError> {
    ctx.require(Permission::BackendsRead)?;
    let mut out: Vec<ProviderView> = st
        .config
        .ai
        .providers
        .iter()
        .map(|p| ProviderView::new(p, p.api_key_env.as_deref().is_some_and(|v| std::env::var(v).is_ok_and(|k| !k.is_empty())), "config"))
        .collect();
    for p in st.ai.stored_providers().await? {
        out.push(ProviderView::new(&p.config, p.api_key.is_some(), "store"));
    }
    Ok(Json(out))
}

/// Adds a provider.
#[utoipa::path(post, path = "/ai/providers", tag = "ai", request_body = ProviderInput,
    responses((status = 201, body = ProviderView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_provider(
    ctx: AdminCtx,
    State(st): State<AppState>,
    b: Result<Json<ProviderInput>, JsonRejection>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let input = body(b)?;
    let c = input.config();
    check_provider(&st, &c).await?;
    if st.config.ai.providers.iter().any(|p| p.name == c.name) {
        return Err(ApiError::Conflict(format!("provider `{}` is defined in the config file", c.name)));
    }
    let has_key = input.api_key.as_ref().is_some_and(|k| !k.is_empty());
    save_provider(&st, c.clone(), input.api_key, true).await?;
    tracing::info!(actor = %ctx.username, provider = %c.name, "AI provider created");
    Ok((StatusCode::CREATED, Json(ProviderView::new(&c, has_key, "store"))))
}

/// Replaces a stored provider.
#[utoipa::path(put, path = "/ai/providers/{name}", tag = "ai", request_body = ProviderInput,
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = ProviderView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file provider"),
        (status = 503, body = ErrorBody)))]
async fn update_provider(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    b: Result<Json<ProviderInput>, JsonRejection>,
) -> Result<Json<ProviderView>, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let name = path_param(name)?;
    let input = body(b)?;
    if input.name != name {
        return Err(ApiError::BadRequest("name: must match the path".to_owned()));
    }
    if st.config.ai.providers.iter().any(|p| p.name == name) {
        return Err(ApiError::Conflict(format!("provider `{name}` is defined in the config file")));
    }
    let c = input.config();
    check_provider(&st, &c).await?;
    let existing = st.ai.stored_providers().await?.into_iter().find(|p| p.config.name == name);
    let Some(existing) = existing else {
        return Err(ApiError::NotFound(format!("no stored provider `{name}`")));
    };
    let key = match input.api_key {
        None => existing.api_key,
        Some(k) => Some(k),
    };
    let has_key = key.as_ref().is_some_and(|k| !k.is_empty());
    save_provider(&st, c.clone(), key, false).await?;
    tracing::info!(actor = %ctx.username, provider = %name, "AI provider replaced");
    Ok(Json(ProviderView::new(&c, has_key, "store")))
}

/// Deletes a stored provider.
#[utoipa::path(delete, path = "/ai/providers/{name}", tag = "ai",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file provider"),
        (status = 503, body = ErrorBody)))]
async fn delete_provider(
    ctx: AdminCtx,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let name = path_param(name)?;
    if st.config.ai.providers.iter().any(|p| p.name == name) {
        return Err(ApiError::Conflict(format!("provider `{name}` is defined in the config file")));
    }
    if !st.store.ai_delete(AiTable::Providers, &name).await? {
        return Err(ApiError::NotFound(format!("no stored provider `{name}`")));
    }
    reload(&st).await?;
    tracing::info!(actor = %ctx.username, provider = %name, "AI provider deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Models (and their prices)
// ---------------------------------------------------------------------------

/// A model registration (one deployment) with its prices.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    /// Stable id (`config-N` for config-file entries).
    pub id: String,
    #[serde(flatten)]
    pub model: ModelConfig,
    pub source: String,
}

async fn check_model(st: &AppState, m: &ModelConfig) -> Result<(), ApiError> {
    if m.name.trim().is_empty() || m.name.len() > MAX_PARAM_LEN {
        return Err(ApiError::BadRequest(format!("name: 1-{MAX_PARAM_LEN} characters")));
    }
    if m.aliases.iter().any(|a| a.trim().is_empty() || a.len() > MAX_PARAM_LEN) || m.aliases.len() > 32 {
        return Err(ApiError::BadRequest("aliases: at most 32, each 1-256 characters".to_owned()));
    }
    if m.upstream_model.as_ref().is_some_and(|u| u.trim().is_empty() || u.len() > MAX_PARAM_LEN) {
        return Err(ApiError::BadRequest("upstream_model: 1-256 characters".to_owned()));
    }
    if m.weight > 1_000_000 {
        return Err(ApiError::BadRequest("weight: at most 1000000".to_owned()));
    }
    crate::ai::meter::validate_price(&m.price()).map_err(ApiError::BadRequest)?;
    if !st.ai.catalog().providers.iter().any(|p| p.name == m.provider) {
        return Err(ApiError::BadRequest(format!("provider: no provider named `{}`", m.provider)));
    }
    Ok(())
}

/// Every model registration, config-file ones first.
#[utoipa::path(get, path = "/ai/models", tag = "ai",
    responses((status = 200, body = Vec<ModelView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_models(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<Vec<ModelView>>, ApiError> {
    ctx.require(Permission::BackendsRead)?;
    let mut out: Vec<ModelView> = st
        .config
        .ai
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| ModelView { id: format!("config-{i}"), model: m.clone(), source: "config".into() })
        .collect();
    for m in st.ai.stored_models().await? {
        out.push(ModelView { id: m.id, model: m.config, source: "store".into() });
    }
    Ok(Json(out))
}

/// Registers a model deployment (with its prices).
#[utoipa::path(post, path = "/ai/models", tag = "ai", request_body = ModelConfig,
    responses((status = 201, body = ModelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_model(
    ctx: AdminCtx,
    State(st): State<AppState>,
    b: Result<Json<ModelConfig>, JsonRejection>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let m = body(b)?;
    check_model(&st, &m).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let text = serde_json::to_string(&m).map_err(ApiError::internal)?;
    st.store.ai_insert(AiTable::Models, &id, Some(&m.name), &text).await?;
    reload(&st).await?;
    tracing::info!(actor = %ctx.username, model = %m.name, "AI model registered");
    Ok((StatusCode::CREATED, Json(ModelView { id, model: m, source: "store".into() })))
}

/// Replaces a stored model registration.
#[utoipa::path(put, path = "/ai/models/{id}", tag = "ai", request_body = ModelConfig,
    params(("id" = String, Path, description = "Registration id")),
    responses((status = 200, body = ModelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file entry"),
        (status = 503, body = ErrorBody)))]
async fn update_model(
    ctx: AdminCtx,
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<ModelConfig>, JsonRejection>,
) -> Result<Json<ModelView>, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let id = path_param(id)?;
    if id.starts_with("config-") {
        return Err(ApiError::Conflict("config-file models are read-only".to_owned()));
    }
    let m = body(b)?;
    check_model(&st, &m).await?;
    let text = serde_json::to_string(&m).map_err(ApiError::internal)?;
    if !st.store.ai_update(AiTable::Models, &id, Some(&m.name), &text).await? {
        return Err(ApiError::NotFound(format!("no stored model `{id}`")));
    }
    reload(&st).await?;
    Ok(Json(ModelView { id, model: m, source: "store".into() }))
}

/// Deletes a stored model registration.
#[utoipa::path(delete, path = "/ai/models/{id}", tag = "ai",
    params(("id" = String, Path, description = "Registration id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file entry"),
        (status = 503, body = ErrorBody)))]
async fn delete_model(ctx: AdminCtx, State(st): State<AppState>, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::BackendsWrite)?;
    let id = path_param(id)?;
    if id.starts_with("config-") {
        return Err(ApiError::Conflict("config-file models are read-only".to_owned()));
    }
    if !st.store.ai_delete(AiTable::Models, &id).await? {
        return Err(ApiError::NotFound(format!("no stored model `{id}`")));
    }
    reload(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------

/// A budget with where it comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    #[serde(flatten)]
    pub budget: BudgetConfig,
    pub source: String,
}

/// Every budget, config-file ones first.
#[utoipa::path(get, path = "/ai/budgets", tag = "ai",
    responses((status = 200, body = Vec<BudgetView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list_budgets(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<Vec<BudgetView>>, ApiError> {
    ctx.require(Permission::LimitsRead)?;
    let mut out: Vec<BudgetView> = st.config.ai.budgets.iter().map(|b| BudgetView { budget: b.clone(), source: "config".into() }).collect();
    for b in st.ai.stored_budgets().await? {
        out.push(BudgetView { budget: b, source: "store".into() });
    }
    Ok(Json(out))
}

/// Adds a budget.
#[utoipa::path(post, path = "/ai/budgets", tag = "ai", request_body = BudgetConfig,
    responses((status = 201, body = BudgetView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_budget(
    ctx: AdminCtx,
    State(st): State<AppState>,
    b: Result<Json<BudgetConfig>, JsonRejection>,
) -> Result<(StatusCode, Json<BudgetView>), ApiError> {
    ctx.require(Permission::LimitsWrite)?;
    let b = body(b)?;
    b.validate().map_err(ApiError::BadRequest)?;
    if st.config.ai.budgets.iter().any(|c| c.id == b.id) {
        return Err(ApiError::Conflict(format!("budget `{}` is defined in the config file", b.id)));
    }
    let text = serde_json::to_string(&b).map_err(ApiError::internal)?;
    st.store.ai_insert(AiTable::Budgets, &b.id, None, &text).await?;
    reload(&st).await?;
    tracing::info!(actor = %ctx.username, budget = %b.id, "AI budget created");
    Ok((StatusCode::CREATED, Json(BudgetView { budget: b, source: "store".into() })))
}

/// Replaces a stored budget.
#[utoipa::path(put, path = "/ai/budgets/{id}", tag = "ai", request_body = BudgetConfig,
    params(("id" = String, Path, description = "Budget id")),
    responses((status = 200, body = BudgetView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file budget"),
        (status = 503, body = ErrorBody)))]
async fn update_budget(
    ctx: AdminCtx,
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    b: Result<Json<BudgetConfig>, JsonRejection>,
) -> Result<Json<BudgetView>, ApiError> {
    ctx.require(Permission::LimitsWrite)?;
    let id = path_param(id)?;
    let b = body(b)?;
    b.validate().map_err(ApiError::BadRequest)?;
    if b.id != id {
        return Err(ApiError::BadRequest("id: must match the path".to_owned()));
    }
    if st.config.ai.budgets.iter().any(|c| c.id == id) {
        return Err(ApiError::Conflict(format!("budget `{id}` is defined in the config file")));
    }
    let text = serde_json::to_string(&b).map_err(ApiError::internal)?;
    if !st.store.ai_update(AiTable::Budgets, &id, None, &text).await? {
        return Err(ApiError::NotFound(format!("no stored budget `{id}`")));
    }
    reload(&st).await?;
    Ok(Json(BudgetView { budget: b, source: "store".into() }))
}

/// Deletes a stored budget.
#[utoipa::path(delete, path = "/ai/budgets/{id}", tag = "ai",
    params(("id" = String, Path, description = "Budget id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file budget"),
        (status = 503, body = ErrorBody)))]
async fn delete_budget(ctx: AdminCtx, State(st): State<AppState>, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::LimitsWrite)?;
    let id = path_param(id)?;
    if st.config.ai.budgets.iter().any(|c| c.id == id) {
        return Err(ApiError::Conflict(format!("budget `{id}` is defined in the config file")));
    }
    if !st.store.ai_delete(AiTable::Budgets, &id).await? {
        return Err(ApiError::NotFound(format!("no stored budget `{id}`")));
    }
    reload(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------

/// How AI usage is grouped.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AiGroupBy {
    #[default]
    User,
    Key,
    Model,
    Provider,
}

/// What to aggregate.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AiUsageParams {
    /// Group by user (default), key, model or provider.
    #[param(inline)]
    pub group_by: Option<AiGroupBy>,
    /// Start of the period, inclusive (RFC 3339; default 30 days before `to`).
    pub from: Option<DateTime<Utc>>,
    /// End of the period, exclusive (RFC 3339; default now).
    pub to: Option<DateTime<Utc>>,
    /// Also split by hour or day.
    #[param(inline)]
    pub bucket: Option<UsageBucket>,
}

/// AI requests, errors, tokens and cost over `[from, to)`, from the audit log.
#[utoipa::path(get, path = "/ai/usage", tag = "ai", params(AiUsageParams),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn ai_usage(
    ctx: AdminCtx,
    State(st): State<AppState>,
    params: Result<Query<AiUsageParams>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    ctx.require(Permission::UsageRead)?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let to = super::audit::time("to", p.to)?.unwrap_or_else(crate::store::now);
    let from = match super::audit::time("from", p.from)? {
        Some(from) => from,
        None => to.checked_sub_signed(chrono::Duration::days(30)).unwrap_or(to),
    };
    if from >= to {
        return Err(ApiError::BadRequest("from: must be before to".to_owned()));
    }
    let own_only = !ctx.can(Permission::AuditRead);
    let group_by = match p.group_by.unwrap_or_default() {
        AiGroupBy::User => UsageGroupBy::User,
        AiGroupBy::Key => UsageGroupBy::Key,
        AiGroupBy::Model => UsageGroupBy::Model,
        AiGroupBy::Provider => UsageGroupBy::Backend,
    };
    let q = UsageQuery { group_by, from, to, bucket: p.bucket, user_id: own_only.then(|| ctx.user_id.clone()), ai_only: true };
    let (rows, truncated) = st.store.audit_usage(&q).await?;
    Ok(Json(UsageReport { group_by, bucket: p.bucket, from, to, own_only, rows, truncated }))
}
