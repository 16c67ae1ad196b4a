//! Admin API: rate limit rules and their current counts.
//!
//! Config-file rules are listed with `source: "config"` and are read-only
//! (409 on change); runtime rules live in the store.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::roles::Permission;
use crate::limits::{LimitInput, LimitRule, LimitStatus, LimitsError, NewLimitRule};
use crate::server::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rules, create_rule)).routes(routes!(update_rule, delete_rule)).routes(routes!(status))
}

impl From<LimitsError> for ApiError {
    fn from(e: LimitsError) -> Self {
        match e {
            LimitsError::Invalid { .. } => Self::BadRequest(e.to_string()),
            LimitsError::NotFound(_) => Self::NotFound(e.to_string()),
            LimitsError::ReadOnly(_) => Self::Conflict(e.to_string()),
            LimitsError::Store(s) => s.into(),
        }
    }
}

/// Longest value accepted in a path or query parameter.
const MAX_PARAM_LEN: usize = 256;

fn check_len(what: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_PARAM_LEN {
        return Err(ApiError::BadRequest(format!("{what}: longer than {MAX_PARAM_LEN} characters")));
    }
    Ok(())
}

/// Every rule, config ones first.
#[utoipa::path(get, path = "/limits", tag = "limits", operation_id = "list_limit_rules",
    responses((status = 200, body = Vec<LimitRule>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_rules(ctx: AdminCtx, State(st): State<AppState>) -> Result<Json<Vec<LimitRule>>, ApiError> {
    ctx.require(Permission::LimitsRead)?;
    Ok(Json(st.limits.list()))
}

/// Adds a runtime rule.
#[utoipa::path(post, path = "/limits", tag = "limits", operation_id = "create_limit_rule", request_body = NewLimitRule,
    responses((status = 201, body = LimitRule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_rule(
    ctx: AdminCtx,
    State(st): State<AppState>,
    body: Result<Json<NewLimitRule>, JsonRejection>,
) -> Result<(StatusCode, Json<LimitRule>), ApiError> {
    ctx.require(Permission::LimitsWrite)?;
    let Json(new) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let rule = st.limits.create(new).await?;
    tracing::info!(actor = %ctx.username, rule = %rule.id, scope = rule.scope.as_str(), "limit rule created");
    Ok((StatusCode::CREATED, Json(rule)))
}

/// Replaces a runtime rule; its counters start over.
#[utoipa::path(put, path = "/limits/{id}", tag = "limits", operation_id = "update_limit_rule", request_body = NewLimitRule,
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, body = LimitRule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file rule"),
        (status = 503, body = ErrorBody)))]
async fn update_rule(
    ctx: AdminCtx,
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<NewLimitRule>, JsonRejection>,
) -> Result<Json<LimitRule>, ApiError> {
    ctx.require(Permission::LimitsWrite)?;
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_len("id", &id)?;
    let Json(new) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let rule = st.limits.update(&id, new).await?;
    tracing::info!(actor = %ctx.username, rule = %rule.id, "limit rule replaced");
    Ok(Json(rule))
}

/// Deletes a runtime rule.
#[utoipa::path(delete, path = "/limits/{id}", tag = "limits", operation_id = "delete_limit_rule",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "A config-file rule"),
        (status = 503, body = ErrorBody)))]
async fn delete_rule(ctx: AdminCtx, State(st): State<AppState>, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    ctx.require(Permission::LimitsWrite)?;
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_len("id", &id)?;
    st.limits.delete(&id).await?;
    tracing::info!(actor = %ctx.username, rule = %id, "limit rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Which subject to report on; every parameter is optional.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Username.
    pub user: Option<String>,
    /// API key id.
    pub key: Option<String>,
    /// Backend name.
    pub backend: Option<String>,
    /// Exposed tool name (`{backend}__{tool}`).
    pub tool: Option<String>,
}

/// Current counts against every enabled rule that applies to the subject.
#[utoipa::path(get, path = "/limits/status", tag = "limits", operation_id = "limit_status", params(StatusQuery),
    responses((status = 200, body = Vec<LimitStatus>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn status(
    ctx: AdminCtx,
    State(st): State<AppState>,
    q: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<Vec<LimitStatus>>, ApiError> {
    ctx.require(Permission::LimitsRead)?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    for (what, v) in [("user", &q.user), ("key", &q.key), ("backend", &q.backend), ("tool", &q.tool)] {
        if let Some(v) = v {
            check_len(what, v)?;
        }
    }
    // A rule of a scope whose parameter is absent does not apply; an empty
    // username matches no user rule with a match value and counts nothing.
    let input = LimitInput {
        user_id: "",
        username: q.user.as_deref().unwrap_or(""),
        key_id: q.key.as_deref(),
        backend: q.backend.as_deref(),
        tool: q.tool.as_deref(),
        ai: true,
    };
    let mut out = st.limits.status_at(&input, std::time::Instant::now());
    if q.user.is_none() {
        out.retain(|s| s.scope != crate::limits::Scope::User);
    }
    Ok(Json(out))
}
