//! Signing in and out of the console, changing one's password, who am I,
//! and the one-time setup of the first admin (the dashboard's `/setup`
//! page posts to it with the token of the link the hub prints).
//!
//! The session token travels only in the `gatehouse_session` cookie
//! (HttpOnly, SameSite=Strict); state-changing requests authenticated by it
//! must also carry the session's CSRF token in `X-CSRF-Token` (see
//! [`super::AdminCtx`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::UserView;
use super::{AdminCtx, ApiError, AuthVia, ErrorBody};
use crate::auth::console::{ClientInfo, ConsoleError, SignedIn};
use crate::auth::roles::Permission;
use crate::server::AppState;

/// Name of the console session cookie.
pub const COOKIE: &str = "gatehouse_session";

/// Header carrying the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(setup_status, setup))
}

/// The session cookie's token, if the request carries one.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
        .find(|v| !v.is_empty())
}

/// Refuses a browser request whose `Origin` is present and not allowed
/// (`server.public_url`, loopback, `server.allowed_origins`).
pub(crate) fn check_origin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        Some(v) if !st.config.server.is_origin_allowed(v.to_str().unwrap_or("")) => {
            Err(ApiError::Forbidden("the request's Origin is not allowed".to_owned()))
        }
        _ => Ok(()),
    }
}

/// A 400 for a body that is not the expected JSON.
pub(crate) fn bad_json(e: JsonRejection) -> ApiError {
    ApiError::BadRequest(e.body_text())
}

/// A 400 for a body holding secrets: serde's message could echo a value.
fn bad_secret_json(expected: &'static str) -> impl FnOnce(JsonRejection) -> ApiError {
    move |_| ApiError::BadRequest(format!("expected a JSON body {expected}"))
}

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::BadCredentials => Self::Unauthorized(e.to_string()),
            ConsoleError::WrongPassword | ConsoleError::BadSetupToken => Self::Forbidden(e.to_string()),
            ConsoleError::Throttled { retry_after_secs } => Self::TooManyRequests { message: e.to_string(), retry_after_secs },
            ConsoleError::WeakPassword(why) => Self::BadRequest(why),
            ConsoleError::SetupDone => Self::Conflict(e.to_string()),
            ConsoleError::Store(e) => e.into(),
            ConsoleError::Hashing(why) => Self::internal(anyhow::anyhow!(why)),
        }
    }
}

/// Where a request comes from: the peer address and `User-Agent`. No proxy
/// header is trusted, so behind a reverse proxy the throttle sees the proxy.
#[derive(Debug, Clone)]
pub struct ClientMeta(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Self(ClientInfo { ip, user_agent }))
    }
}

fn session_cookie(st: &AppState, token: &str) -> String {
    let secure = if st.console.secure_cookies() { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", st.console.session_ttl().as_secs())
}

fn clearing_cookie(st: &AppState) -> String {
    let secure = if st.console.secure_cookies() { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

fn with_cookie(mut r: Response, cookie: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(cookie).map_err(ApiError::internal)?;
    r.headers_mut().insert(header::SET_COOKIE, value);
    // Answers that carry or clear a session must never be cached.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The signed-in caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub via: AuthVia,
    pub permissions: Vec<Permission>,
    /// The value to send as `X-CSRF-Token` on state-changing requests;
    /// present when signed in with the session cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// Who is calling, and what they may do.
#[utoipa::path(get, path = "/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn me(State(st): State<AppState>, headers: HeaderMap, ctx: AdminCtx) -> Result<Json<Me>, ApiError> {
    let csrf_token = match ctx.via {
        AuthVia::Session => cookie_token(&headers).map(|t| st.console.csrf_token(t)),
        AuthVia::Key => None,
    };
    Ok(Json(Me {
        user_id: ctx.user_id,
        username: ctx.username,
        role: ctx.role.to_string(),
        via: ctx.via,
        permissions: ctx.permissions.into_iter().collect(),
        csrf_token,
    }))
}

/// A sign-in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "alice")]
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// A new console session; the session token itself is only in the cookie.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInResponse {
    pub user: UserView,
    /// Send as `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

fn signed_in(st: &AppState, s: SignedIn) -> Result<Response, ApiError> {
    let cookie = session_cookie(st, &s.token);
    let body = SignInResponse { user: s.account.into(), csrf_token: s.csrf_token, expires_at: s.expires_at };
    with_cookie(Json(body).into_response(), &cookie)
}

/// Signs in with a username and password and sets the session cookie. After
/// too many failures for a username or from an address, answers 429 without
/// checking the password.
#[utoipa::path(post, path = "/auth/login", tag = "session", request_body = LoginRequest, security(()),
    responses(
        (status = 200, body = SignInResponse, headers(("set-cookie" = String, description = "the session cookie (HttpOnly, SameSite=Strict)"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("retry-after" = u64, description = "seconds to wait"))),
        (status = 503, body = ErrorBody)))]
async fn login(
    State(st): State<AppState>,
    ClientMeta(client): ClientMeta,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_origin(&st, &headers)?;
    let Json(req) = body.map_err(bad_secret_json(r#"{"username": string, "password": string}"#))?;
    let s = st.console.login(&req.username, &req.password, &client).await?;
    signed_in(&st, s)
}

/// Ends the calling console session and clears the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "session",
    params(("x-csrf-token" = String, Header, description = "the session's CSRF token")),
    responses((status = 204, description = "signed out"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn logout(State(st): State<AppState>, headers: HeaderMap, ctx: AdminCtx) -> Result<Response, ApiError> {
    if ctx.via != AuthVia::Session {
        return Err(ApiError::BadRequest("logout ends a console session; API keys are revoked with DELETE /api/v1/keys/{id}".to_owned()));
    }
    if let Some(token) = cookie_token(&headers)
        && let Some(session) = st.console.session(token).await?
    {
        st.console.logout(&session.id).await?;
        tracing::info!(user = %ctx.username, session = %session.id, "console sign-out");
    }
    with_cookie(StatusCode::NO_CONTENT.into_response(), &clearing_cookie(&st))
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(format = Password)]
    pub current_password: String,
    /// At least 12 characters, not the username.
    #[schema(format = Password)]
    pub new_password: String,
}

/// Changes the caller's own password. The current password is required even
/// when signed in; every other console session of the user ends.
#[utoipa::path(post, path = "/auth/password", tag = "session", request_body = PasswordChange,
    params(("x-csrf-token" = Option<String>, Header, description = "the session's CSRF token (cookie sign-in only)")),
    responses((status = 204, description = "password changed"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn change_password(
    State(st): State<AppState>,
    ClientMeta(client): ClientMeta,
    headers: HeaderMap,
    ctx: AdminCtx,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(req) = body.map_err(bad_secret_json(r#"{"current_password": string, "new_password": string}"#))?;
    let keep = match (ctx.via, cookie_token(&headers)) {
        (AuthVia::Session, Some(token)) => st.console.session(token).await?.map(|s| s.id),
        _ => None,
    };
    st.console.change_password(&ctx.user_id, &req.current_password, &req.new_password, keep.as_deref(), &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the first admin still has to be created.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStatus {
    pub needed: bool,
}

/// Whether the one-time setup is still needed (no enabled admin with a password exists).
#[utoipa::path(get, path = "/setup", tag = "session", security(()),
    responses((status = 200, body = SetupStatus), (status = 503, body = ErrorBody)))]
async fn setup_status(State(st): State<AppState>) -> Result<Json<SetupStatus>, ApiError> {
    Ok(Json(SetupStatus { needed: st.console.setup_needed().await? }))
}

/// The first admin, created with the token of the setup link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The token from the link the hub printed at start.
    pub token: String,
    #[schema(example = "admin")]
    pub username: String,
    /// At least 12 characters, not the username.
    #[schema(format = Password)]
    pub password: String,
}

/// Creates the first admin with the one-time setup token, consumes the token
/// and signs the new admin in (same answer as a sign-in).
#[utoipa::path(post, path = "/setup", tag = "session", request_body = SetupRequest, security(()),
    responses(
        (status = 200, body = SignInResponse, headers(("set-cookie" = String, description = "the session cookie (HttpOnly, SameSite=Strict)"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn setup(
    State(st): State<AppState>,
    ClientMeta(client): ClientMeta,
    headers: HeaderMap,
    body: Result<Json<SetupRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_origin(&st, &headers)?;
    let Json(req) = body.map_err(bad_secret_json(r#"{"token": string, "username": string, "password": string}"#))?;
    let s = st.console.complete_setup(&req.token, &req.username, &req.password, &client).await?;
    signed_in(&st, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_token_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie_token(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("a=1; gatehouse_sessionx=2"));
        assert_eq!(cookie_token(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("b=2;gatehouse_session=tok; c=3"));
        assert_eq!(cookie_token(&h), Some("tok"));
    }
}
