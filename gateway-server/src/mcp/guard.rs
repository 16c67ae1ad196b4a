//! Who may knock on `/mcp`: Host and Origin validation, then the caller's key.
//!
//! Host and Origin are checked before anything else so that a page in a
//! browser cannot reach a hub on loopback through DNS rebinding, and a
//! cross-site page cannot drive a user's MCP session.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_proto::mcp::code;

use super::http::rpc_error;
use crate::auth::{AuthError, Principal};
use crate::server::AppState;

/// Which Hosts and Origins may reach the MCP endpoints.
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    hosts: Vec<String>,
    any_host: bool,
    origins: Vec<String>,
    any_origin: bool,
    public_origin: Option<String>,
}

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]", "::1"];

/// Lower-cased host name of a `Host` header value or URL authority, without the port.
fn host_name(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default();
    }
    a.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map_or(a.clone(), |(h, _)| h.to_owned())
}

fn is_loopback(host: &str) -> bool {
    LOOPBACK_HOSTS.contains(&host) || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()) || host.ends_with(".localhost")
}

impl OriginPolicy {
    /// `public_url` is the hub's own URL; `hosts`/`origins` are the extra
    /// values allowed by the config (`"*"` allows any).
    pub fn new(public_url: &str, hosts: &[String], origins: &[String]) -> Self {
        let public = url::Url::parse(public_url).ok();
        let mut allowed: Vec<String> = hosts.iter().map(|h| host_name(h)).collect();
        if let Some(h) = public.as_ref().and_then(|u| u.host_str()) {
            allowed.push(host_name(h));
        }
        Self {
            any_host: hosts.iter().any(|h| h == "*"),
            hosts: allowed,
            any_origin: origins.iter().any(|o| o == "*"),
            origins: origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
            public_origin: public.map(|u| u.origin().ascii_serialization().to_ascii_lowercase()),
        }
    }

    /// Checks the Host header (absent is allowed: HTTP/1.0 and some proxies).
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = host_name(host);
        self.any_host || is_loopback(&name) || self.hosts.contains(&name)
    }

    /// Checks the Origin header (absent means not a browser, allowed).
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.any_origin {
            return true;
        }
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.public_origin.as_deref() == Some(o.as_str()) || self.origins.contains(&o) {
            return true;
        }
        url::Url::parse(&o).ok().and_then(|u| u.host_str().map(host_name)).is_some_and(|h| is_loopback(&h))
    }
}

/// An authenticated MCP caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
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
        if !st.origins.host_ok(host) {
            return Err(rpc_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, "Forbidden: Host header is not allowed"));
        }
        let origin = parts.headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("invalid"));
        if !st.origins.origin_ok(origin) {
            return Err(rpc_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, "Forbidden: Origin is not allowed"));
        }
        let Some(token) = bearer(&parts.headers) else {
            return match &st.anonymous {
                Some(p) => Ok(Self { principal: (**p).clone() }),
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
        Ok(Self { principal })
    }
}

impl IntoResponse for Caller {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let p = OriginPolicy::new("https://hub.example.com", &["gw.internal".into()], &[]);
        assert!(p.host_ok(Some("127.0.0.1:3200")));
        assert!(p.host_ok(Some("localhost")));
        assert!(p.host_ok(Some("[::1]:80")));
        assert!(p.host_ok(Some("hub.example.com")));
        assert!(p.host_ok(Some("GW.internal:8443")));
        assert!(!p.host_ok(Some("evil.com")));
        assert!(!p.host_ok(Some("127.0.0.1.evil.com")));
        assert!(OriginPolicy::new("http://x", &["*".into()], &[]).host_ok(Some("anything")));
    }

    #[test]
    fn origins() {
        let p = OriginPolicy::new("https://hub.example.com", &[], &["https://app.example.org".into()]);
        assert!(p.origin_ok(None));
        assert!(p.origin_ok(Some("https://hub.example.com")));
        assert!(p.origin_ok(Some("https://app.example.org/")));
        assert!(p.origin_ok(Some("http://localhost:5173")));
        assert!(!p.origin_ok(Some("https://evil.com")));
        assert!(!p.origin_ok(Some("null")));
        assert!(!p.origin_ok(Some("http://localhost.evil.com")));
    }
}
