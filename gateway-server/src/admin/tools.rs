//! Admin API: the tool registry — list and inspect every tool seen, enable
//! or disable it, override its risk, approve a changed definition.
//!
//! `GET /tools` answers `{ "items": [ … ] }`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::roles::Permission;
use crate::registry::{RegistryError, Risk, ToolFilter, ToolRecord, ToolStatus};
use crate::server::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tools))
        .routes(routes!(get_tool, patch_tool))
        .routes(routes!(approve_tool))
        .routes(routes!(tool_access))
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(_) => Self::NotFound(e.to_string()),
            RegistryError::Conflict(m) => Self::Conflict(m),
            RegistryError::Invalid { .. } => Self::BadRequest(e.to_string()),
            RegistryError::Store(s) => s.into(),
        }
    }
}

/// One tool in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolItem {
    pub id: String,
    pub backend: String,
    /// The backend's own tool name.
    pub name: String,
    /// The name clients see through `/mcp`.
    pub exposed_name: String,
    pub agent: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// The effective risk: `risk_override` when set, else `risk_auto`.
    pub risk: Risk,
    pub risk_auto: Risk,
    pub risk_override: Option<Risk>,
    pub enabled: bool,
    pub status: ToolStatus,
    /// Hidden and refused until an admin approves the pending change.
    pub held: bool,
    pub annotations: Option<Value>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl From<ToolRecord> for ToolItem {
    fn from(r: ToolRecord) -> Self {
        Self {
            id: r.id,
            backend: r.backend,
            name: r.name,
            exposed_name: r.exposed_name,
            agent: r.agent,
            title: r.title,
            description: r.description,
            risk: r.risk,
            risk_auto: r.risk_auto,
            risk_override: r.risk_override,
            enabled: r.enabled,
            status: r.status,
            held: r.held,
            annotations: r.annotations,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
        }
    }
}

/// The tools matching the filters, by backend then name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    pub items: Vec<ToolItem>,
}

/// `PATCH /tools/{id}`: what to change; absent members stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPatch {
    /// Enable or disable the tool (kept across restarts and syncs).
    pub enabled: Option<bool>,
    /// Override the assessed risk; `null` removes the override.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Risk>)]
    pub risk: Option<Option<Risk>>,
}

/// Tells a member sent as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn path_id(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::BadRequest("invalid tool id".to_owned()));
    }
    Ok(id)
}

/// Every tool seen, filtered.
#[utoipa::path(get, path = "/tools", tag = "tools", params(ToolFilter),
    responses((status = 200, body = ToolList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_tools(
    State(st): State<AppState>,
    ctx: AdminCtx,
    q: Result<Query<ToolFilter>, QueryRejection>,
) -> Result<Json<ToolList>, ApiError> {
    ctx.require(Permission::ToolsRead)?;
    let Query(filter) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    for (field, v) in [("q", &filter.q), ("backend", &filter.backend), ("agent", &filter.agent)] {
        if v.as_ref().is_some_and(|v| v.chars().count() > 256) {
            return Err(ApiError::BadRequest(format!("invalid {field}: at most 256 characters")));
        }
    }
    let items = st.registry.list(&filter).await?.into_iter().map(ToolItem::from).collect();
    Ok(Json(ToolList { items }))
}

/// One tool, with its pinned and pending definitions.
#[utoipa::path(get, path = "/tools/{id}", tag = "tools", params(("id" = String, Path, description = "tool id")),
    responses((status = 200, body = ToolRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_tool(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ToolRecord>, ApiError> {
    ctx.require(Permission::ToolsRead)?;
    let id = path_id(id)?;
    Ok(Json(st.registry.get(&id).await?))
}

/// Enables or disables a tool, or overrides its risk.
#[utoipa::path(patch, path = "/tools/{id}", tag = "tools", params(("id" = String, Path, description = "tool id")), request_body = ToolPatch,
    responses((status = 200, body = ToolRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn patch_tool(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<ToolPatch>, JsonRejection>,
) -> Result<Json<ToolRecord>, ApiError> {
    ctx.require(Permission::ToolsWrite)?;
    let id = path_id(id)?;
    let Json(patch) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let before = st.registry.get(&id).await?;
    if let Some(enabled) = patch.enabled {
        st.registry.set_enabled(&id, enabled).await?;
    }
    if let Some(risk) = patch.risk {
        st.registry.set_risk_override(&id, risk).await?;
    }
    let after = st.registry.get(&id).await?;
    if before.enabled != after.enabled || before.risk_override != after.risk_override {
        tracing::info!(
            by = %ctx.username, tool = %after.exposed_name, enabled = after.enabled, risk_override = ?after.risk_override.map(Risk::as_str),
            "tool settings changed"
        );
        st.hub.notify_tools_changed(Some(&after.backend));
    }
    Ok(Json(after))
}

/// Approves a tool's pending definition: it becomes the pinned one.
#[utoipa::path(post, path = "/tools/{id}/approve", tag = "tools", params(("id" = String, Path, description = "tool id")),
    responses((status = 200, body = ToolRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "nothing to approve"),
        (status = 503, body = ErrorBody)))]
async fn approve_tool(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ToolRecord>, ApiError> {
    ctx.require(Permission::ToolsWrite)?;
    let id = path_id(id)?;
    st.registry.approve(&id, &ctx.username).await?;
    let tool = st.registry.get(&id).await?;
    // A held tool comes back into the lists.
    st.hub.notify_tools_changed(Some(&tool.backend));
    Ok(Json(tool))
}

/// Most users [`tool_access`] evaluates.
const ACCESS_MAX_USERS: usize = 1000;

/// Whether one user may call a tool, and what decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserAccess {
    pub username: String,
    pub role: String,
    pub allowed: bool,
    /// The policy rule that decided, when one did.
    pub rule: Option<String>,
    pub reason: String,
}

/// Who may call a tool.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolAccess {
    pub tool: String,
    /// False while the tool is disabled or held: then nobody may.
    pub callable: bool,
    /// Every enabled user (at most 1000), those who may first.
    pub users: Vec<UserAccess>,
    /// More enabled users than were evaluated.
    pub truncated: bool,
}

/// Who may call this tool: each enabled user through backend visibility and
/// the policy rules, as with a key without a tool allowlist and from any
/// client application (rules that name keys, agents or clients do not
/// match here; the simulator answers for one key and client).
#[utoipa::path(get, path = "/tools/{id}/access", tag = "tools", params(("id" = String, Path, description = "tool id")),
    responses((status = 200, body = ToolAccess), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn tool_access(
    State(st): State<AppState>,
    ctx: AdminCtx,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ToolAccess>, ApiError> {
    ctx.require(Permission::ToolsRead)?;
    ctx.require(Permission::PoliciesRead)?;
    let id = path_id(id)?;
    let tool = st.registry.get(&id).await?;
    let callable = tool.enabled && !tool.held;
    let accounts: Vec<_> = st.store.list_user_accounts().await?.into_iter().filter(|u| !u.disabled).collect();
    let truncated = accounts.len() > ACCESS_MAX_USERS;
    let mut users: Vec<UserAccess> = accounts
        .iter()
        .take(ACCESS_MAX_USERS)
        .map(|u| {
            let (allowed, rule, reason) = if !st.hub.gate.backend_visible_to(&u.id, &u.username, &u.role, &tool.backend) {
                (false, None, format!("backend `{}` is not visible to them", tool.backend))
            } else {
                let d = st.policy.evaluate(&crate::policy::PolicyInput {
                    user_id: &u.id,
                    username: &u.username,
                    role: &u.role,
                    key_id: None,
                    key_name: None,
                    agent: tool.agent.as_deref(),
                    client_app: None,
                    backend: &tool.backend,
                    tool: &tool.name,
                    risk: tool.risk,
                });
                (d.allowed && callable, d.rule.map(|r| r.name), d.reason)
            };
            UserAccess { username: u.username.clone(), role: u.role.as_str().to_owned(), allowed, rule, reason }
        })
        .collect();
    users.sort_by(|a, b| b.allowed.cmp(&a.allowed).then_with(|| a.username.cmp(&b.username)));
    Ok(Json(ToolAccess { tool: tool.exposed_name, callable, users, truncated }))
}
