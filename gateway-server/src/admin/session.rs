//! Signing in and out of the console, and who am I.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, ApiError, AuthVia, ErrorBody};
use crate::auth::roles::Permission;
use crate::server::AppState;

/// Name of the console session cookie.
pub const COOKIE: &str = "gatehouse_session";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The signed-in caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub via: AuthVia,
    pub permissions: Vec<Permission>,
}

/// Who is calling, and what they may do.
#[utoipa::path(get, path = "/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(ctx: AdminCtx) -> Result<Json<Me>, ApiError> {
    Ok(Json(Me {
        user_id: ctx.user_id,
        username: ctx.username,
        role: ctx.role.to_string(),
        via: ctx.via,
        permissions: ctx.permissions.into_iter().collect(),
    }))
}
