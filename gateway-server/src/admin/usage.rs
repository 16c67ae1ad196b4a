//! Admin API: usage (requests, errors, denials, latency, tokens, cost)
//! aggregated from the audit log. Needs `usage:read`; a caller without
//! `audit:read` sees only their own usage.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, ErrorBody};
use crate::auth::roles::Permission;
use crate::server::AppState;
use crate::store::{UsageBucket, UsageGroupBy, UsageQuery, UsageRow};

/// The period covered when `from` is not given: this many days before `to`.
const DEFAULT_DAYS: i64 = 30;

/// `/usage`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

/// What to aggregate.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Group by user (default), key, tool (MCP), backend or model (AI).
    #[param(inline)]
    pub group_by: Option<UsageGroupBy>,
    /// Start of the period, inclusive (RFC 3339; default 30 days before `to`).
    pub from: Option<DateTime<Utc>>,
    /// End of the period, exclusive (RFC 3339; default now).
    pub to: Option<DateTime<Utc>>,
    /// Also split by hour or day.
    #[param(inline)]
    pub bucket: Option<UsageBucket>,
}

/// Usage over `[from, to)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub group_by: UsageGroupBy,
    pub bucket: Option<UsageBucket>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// True when the report covers only the caller's own events.
    pub own_only: bool,
    /// Buckets oldest first, then the busiest groups first.
    pub rows: Vec<UsageRow>,
    /// True when there were more groups than the report holds.
    pub truncated: bool,
}

/// Requests, errors, denials, latency, tokens and cost, grouped.
#[utoipa::path(get, path = "/usage", tag = "usage", params(UsageParams),
    responses(
        (status = 200, body = UsageReport),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn usage(
    ctx: AdminCtx,
    State(st): State<AppState>,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    ctx.require(Permission::UsageRead)?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let to = super::audit::time("to", p.to)?.unwrap_or_else(crate::store::now);
    let from = match super::audit::time("from", p.from)? {
        Some(from) => from,
        None => to.checked_sub_signed(chrono::Duration::days(DEFAULT_DAYS)).unwrap_or(to),
    };
    if from >= to {
        return Err(ApiError::BadRequest("from: must be before to".to_owned()));
    }
    let own_only = !ctx.can(Permission::AuditRead);
    let group_by = p.group_by.unwrap_or_default();
    let q = UsageQuery { group_by, from, to, bucket: p.bucket, user_id: own_only.then(|| ctx.user_id.clone()), ai_only: false };
    let (rows, truncated) = st.store.audit_usage(&q).await?;
    Ok(Json(UsageReport { group_by, bucket: p.bucket, from, to, own_only, rows, truncated }))
}
