//! Admin API: limits.

use utoipa_axum::router::OpenApiRouter;

use crate::server::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
