//! Who may knock on `/mcp`: Host and Origin validation, then the caller's key.
//!
//! Host and Origin are checked before anything else so that a page in a
//! browser cannot reach a hub on loopback through DNS rebinding, and a
//! cross-site page cannot drive a user's MCP session.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_proto::mcp::code;

use super::http::rpc_error;
use crate::auth::roles::Permission;
use crate::auth::{AuthError, Principal};
use crate::server::AppState;

/// An authenticated MCP caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
}

impl Caller {
    /// The identity that owns this caller's sessions.
    pub fn owner(&self) -> String {
        self.principal.user_id.clone()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(err: &AuthError) -> Response {
    let challenge = match err {
        AuthError::Missing => r#"Bearer realm="gatehouse""#,
        _ => r#"Bearer realm="gatehouse", error="invalid_token""#,
    };
    let mut r = rpc_error(StatusCode::UNAUTHORIZED, code::INVALID_REQUEST, format!("Unauthorized: {err}"));
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
        // An absent Host (HTTP/1.0) is allowed: DNS rebinding needs a browser, and browsers send one.
        if host.is_some_and(|h| !st.config.server.is_host_allowed(h)) {
            return Err(rpc_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, "Forbidden: Host header is not allowed"));
        }
        let origin = parts.headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("invalid"));
        if origin.is_some_and(|o| !st.config.server.is_origin_allowed(o)) {
            return Err(rpc_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, "Forbidden: Origin is not allowed"));
        }
        let Some(token) = bearer(&parts.headers) else {
            return match &st.anonymous {
                Some(p) => Ok(Self { principal: p.clone() }),
                None => Err(unauthorized(&AuthError::Missing)),
            };
        };
        let principal = st.auth.authenticate(token).await.map_err(|e| match e {
            AuthError::Store(_) => {
                tracing::error!(error = %e, "key lookup failed");
                rpc_error(StatusCode::SERVICE_UNAVAILABLE, code::INTERNAL_ERROR, "Authentication is unavailable; try again")
            }
            e => unauthorized(&e),
        })?;
        if !principal.surfaces.is_empty() && !principal.surfaces.iter().any(|s| s == "mcp") {
            return Err(rpc_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, "Forbidden: this key may not use the MCP surface"));
        }
        // The key's surfaces narrow its user's role; the role must allow MCP too.
        if !st.console.permissions(&principal.role).await.contains(&Permission::McpUse) {
            let message = format!("Forbidden: role `{}` may not use the MCP surface", principal.role);
            return Err(rpc_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, message));
        }
        Ok(Self { principal: Arc::new(principal) })
    }
}

impl IntoResponse for Caller {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}
