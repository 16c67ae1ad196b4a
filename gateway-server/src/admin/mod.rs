//! The admin REST API under `/api/v1`: what the dashboard and automation use.
//!
//! Every handler takes an [`AdminCtx`] (who is calling, with which
//! permissions) and answers errors through [`ApiError`], which maps them to a
//! status and a JSON body and never leaks internals. Handlers carry
//! `#[utoipa::path]` annotations; one area per module, each returning an
//! [`OpenApiRouter`], so the OpenAPI document at `/api/v1/openapi.json` is
//! generated from the code that serves it.

pub mod agents;
pub mod ai;
pub mod audit;
pub mod backends;
pub mod changes;
pub mod hub;
pub mod keys;
pub mod limits;
pub mod policies;
pub mod session;
pub mod tools;
pub mod usage;
pub mod users;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AuthError;
use crate::auth::roles::{Permission, Permissions};
use crate::server::AppState;
use crate::store::{Role, StoreError};

/// Where the admin API lives.
pub const PREFIX: &str = "/api/v1";

/// An error answer of the admin API: `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a value is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many attempts; retry after this many seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// 503: a dependency (store, backend) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `rate_limited`, `unavailable`, `internal`.
    pub code: String,
    /// What happened and why, for people.
    pub message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A 500 from any error; the cause is logged, not shown.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "admin API request failed");
        }
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: self.to_string() } };
        let mut r = (status, Json(body)).into_response();
        match &self {
            Self::TooManyRequests { retry_after_secs, .. } => {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unauthorized(_) => {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="gatehouse""#));
            }
            _ => {}
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            StoreError::Invalid { .. } => Self::BadRequest(e.to_string()),
            StoreError::Database(_) | StoreError::Io(_) => Self::Unavailable("the store is unavailable; try again".to_owned()),
            other => Self::internal(other),
        }
    }
}

/// How an admin API caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthVia {
    /// `Authorization: Bearer gk_…` (automation).
    Key,
    /// The console session cookie (the dashboard).
    Session,
}

/// Who is calling the admin API, and what they may do.
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// The API key used, when authenticated by key.
    pub key_id: Option<String>,
    pub via: AuthVia,
    pub permissions: Permissions,
}

impl AdminCtx {
    /// True when the caller holds `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// `Ok` when the caller holds `p`, else a 403 naming it.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.can(p) { Ok(()) } else { Err(ApiError::Forbidden(format!("role `{}` lacks the permission `{p}`", self.role))) }
    }
}

/// The permissions of `role`: fixed for built-in roles, from the store
/// (cached by [`crate::auth::console::Console`]) for custom ones; an unknown
/// custom role has none.
pub async fn permissions_of(st: &AppState, role: &Role) -> Result<Permissions, ApiError> {
    Ok(st.console.permissions(role).await)
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Methods that change state and so need CSRF protection when the caller's
/// credentials are ambient (the session cookie).
fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

impl FromRequestParts<AppState> for AdminCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let ctx = Self::authenticate(parts, st).await?;
        if let Some(slot) = parts.extensions.get::<changes::ActorSlot>() {
            *slot.0.lock() = Some(ctx.clone());
        }
        Ok(ctx)
    }
}

impl AdminCtx {
    /// Who is calling: a bearer key, else the console session cookie (with CSRF checks).
    async fn authenticate(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let unavailable = || ApiError::Unavailable("authentication is unavailable; try again".to_owned());
        // A bearer key wins over a cookie: it is sent deliberately, never by a browser on its own.
        if let Some(token) = bearer(parts) {
            let p = st.auth.authenticate(token).await.map_err(|e| match e {
                AuthError::Store(_) => unavailable(),
                e => ApiError::Unauthorized(e.to_string()),
            })?;
            let permissions = permissions_of(st, &p.role).await?;
            return Ok(Self {
                user_id: p.user_id,
                username: p.username,
                role: p.role,
                key_id: Some(p.key_id),
                via: AuthVia::Key,
                permissions,
            });
        }
        if let Some(token) = session::cookie_token(&parts.headers) {
            let s = st
                .console
                .session(token)
                .await
                .map_err(|_| unavailable())?
                .ok_or_else(|| ApiError::Unauthorized("the console session has ended; sign in again".to_owned()))?;
            if is_unsafe(&parts.method) {
                session::check_origin(st, &parts.headers)?;
                let presented = parts.headers.get(session::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                if !st.console.check_csrf(token, presented) {
                    return Err(ApiError::Forbidden("csrf token missing or wrong".to_owned()));
                }
            }
            let permissions = permissions_of(st, &s.account.role).await?;
            return Ok(Self {
                user_id: s.account.id,
                username: s.account.username,
                role: s.account.role,
                key_id: None,
                via: AuthVia::Session,
                permissions,
            });
        }
        Err(ApiError::Unauthorized("sign in, or send an API key as `Authorization: Bearer`".to_owned()))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse admin API", description = "Users, keys, backends, tools, policies, agents, audit, limits and usage of a Gatehouse hub."),
    components(schemas(ErrorBody, ErrorDetail, AuthVia, Permission)),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(session::COOKIE))));
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// Every area's routes with their OpenAPI description, paths relative to [`PREFIX`].
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(session::routes())
        .merge(users::routes())
        .merge(keys::routes())
        .merge(backends::routes())
        .merge(tools::routes())
        .merge(policies::routes())
        .merge(agents::routes())
        .merge(audit::routes())
        .merge(limits::routes())
        .merge(usage::routes())
        .merge(ai::routes())
        .merge(hub::routes())
}

/// The OpenAPI document of the admin API, as served.
pub fn openapi() -> serde_json::Value {
    let (_, mut doc) = OpenApiRouter::<AppState>::new().nest(PREFIX, api()).split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    merge_flattened(&doc)
}

/// Rewrites each schema that utoipa made an `allOf` of a closed object (a
/// `deny_unknown_fields` request type) and the fields a view adds with
/// `#[serde(flatten)]` into one closed object. As an `allOf`, the closed part
/// forbids the added fields, so every answer would violate its own schema.
fn merge_flattened(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::{Map, Value};
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    let Some(schemas) = v.pointer("/components/schemas").and_then(Value::as_object).cloned() else { return v };
    let closed = |r: &str| -> Option<&Map<String, Value>> {
        let s = schemas.get(r.strip_prefix("#/components/schemas/")?)?.as_object()?;
        (s.get("additionalProperties") == Some(&Value::Bool(false))).then_some(s)
    };
    let mut merged = Map::new();
    for (name, schema) in &schemas {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else { continue };
        let (mut properties, mut required, mut ok) = (Map::new(), Vec::<Value>::new(), true);
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => match closed(r) {
                    Some(s) => s,
                    None => {
                        ok = false;
                        break;
                    }
                },
                None => match part.as_object() {
                    Some(o) if o.get("type") == Some(&Value::String("object".into())) => o,
                    _ => {
                        ok = false;
                        break;
                    }
                },
            };
            if let Some(p) = part.get("properties").and_then(Value::as_object) {
                properties.extend(p.clone());
            }
            if let Some(r) = part.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
        }
        if ok {
            let mut object =
                serde_json::json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false });
            if let Some(d) = schema.get("description") {
                object["description"] = d.clone();
            }
            merged.insert(name.clone(), object);
        }
    }
    if let Some(target) = v.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        target.extend(merged);
    }
    v
}

/// `/api/v1/...` and `/api/v1/openapi.json`.
pub fn routes() -> Router<AppState> {
    let (router, doc) = OpenApiRouter::new().nest(PREFIX, api()).split_for_parts();
    let doc = Arc::new(merge_flattened(&doc));
    router
        .route(&format!("{PREFIX}/openapi.json"), get(move || async move { Json(doc.as_ref().clone()) }))
        .route(&format!("{PREFIX}/{{*rest}}"), axum::routing::any(|| async { ApiError::NotFound("no such admin API endpoint".to_owned()) }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// A view that flattens a closed request type into itself is one closed
    /// object with both sets of fields: as an `allOf`, the closed part would
    /// forbid the view's own fields (every answer would break its schema).
    #[test]
    fn flattened_views_are_single_objects() {
        let doc = super::openapi();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (view, fields) in [("BudgetView", ["id", "period", "source"]), ("ModelView", ["id", "provider", "source"])] {
            let s = &schemas[view];
            assert!(s.get("allOf").is_none(), "{view}: {s}");
            assert_eq!(s["additionalProperties"], false, "{view}: {s}");
            for f in fields {
                assert!(s["properties"].get(f).is_some(), "{view} lacks {f}: {s}");
            }
        }
        assert!(schemas.values().all(|s| s.get("allOf").is_none()), "an allOf is left");
    }

    /// Generated clients (the dashboard's among them) name their calls after
    /// operation ids: two handlers sharing one would share one type.
    #[test]
    fn operation_ids_are_unique() {
        let doc = super::openapi();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(id) = op.get("operationId").and_then(|v| v.as_str()) else { continue };
                if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                    panic!("operationId `{id}` is used by `{other}` and `{method} {path}`");
                }
            }
        }
        assert!(seen.len() > 50, "{seen:?}");
    }
}
