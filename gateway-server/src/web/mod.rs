//! The web dashboard at `/`: the built `dashboard/dist`, embedded in release
//! builds (read from disk in debug builds, so a rebuilt dashboard shows
//! without recompiling the hub). `build.rs` makes sure the folder exists.
//!
//! Every path that is not an asset and not one of the hub's own areas
//! (`/api`, `/mcp`, `/v1`, `/agent`, `/health`, `/metrics`, ...) answers
//! `index.html`, so the dashboard's URLs can be shared and reloaded. Answers
//! carry a strict Content-Security-Policy: scripts and styles only from the
//! hub itself, no inline code, no framing.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The built dashboard.
#[derive(rust_embed::RustEmbed)]
#[folder = "../dashboard/dist"]
struct Assets;

/// The policy of every dashboard answer: same-origin everything, nothing inline.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths owned by the hub itself: never answered with the dashboard.
const HUB_PREFIXES: &[&str] =
    &["api", "mcp", "v1", "agent", "health", "metrics", "sse", "messages", "install.sh", "install.ps1", ".well-known"];

/// Vite puts content-hashed files here: they never change, so they are cached for good.
const HASHED_DIR: &str = "assets/";

/// The router's fallback: a dashboard file, `index.html` for the
/// dashboard's own routes, else 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let path = uri.path().trim_start_matches('/');
    let first = path.split('/').next().unwrap_or("");
    if HUB_PREFIXES.contains(&first) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if !path.is_empty()
        && path != "index.html"
        && let Some(file) = Assets::get(path)
    {
        let cache = if path.starts_with(HASHED_DIR) { "public, max-age=31536000, immutable" } else { "no-cache" };
        return file_response(file, cache, &headers, method == Method::HEAD);
    }
    // A missing script or stylesheet must fail as such, not load the page as code.
    if path.starts_with(HASHED_DIR) || has_extension(path) {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    match Assets::get("index.html") {
        Some(file) => file_response(file, "no-cache", &headers, method == Method::HEAD),
        None => plain(StatusCode::NOT_FOUND, "the dashboard is not built: run `npm ci && npm run build` in dashboard/"),
    }
}

/// True for `x/name.ext`-style paths (a file was asked for, not a page).
fn has_extension(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|name| name.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && !ext.is_empty()))
}

fn file_response(file: rust_embed::EmbeddedFile, cache: &'static str, headers: &HeaderMap, head: bool) -> Response {
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mime = file.metadata.mimetype().to_owned();
    let not_modified =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if head {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(file.data.len()));
        r
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    secure(h);
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    secure(r.headers_mut());
    r
}

/// The security headers of every dashboard answer.
fn secure(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str) -> Response {
        serve(Method::GET, path.parse().unwrap(), HeaderMap::new()).await
    }

    #[tokio::test]
    async fn pages_get_index_html_and_hub_paths_do_not() {
        for page in ["/", "/audit", "/tools?q=echo", "/setup", "/backends/fixture"] {
            let r = get(page).await;
            assert_eq!(r.status(), StatusCode::OK, "{page}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html", "{page}");
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache", "{page}");
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        for hub in ["/api/v2/x", "/mcp/x", "/v1/nothing", "/agent/x", "/health/x", "/metrics/x", "/assets/missing.js", "/robots.txt"] {
            assert_eq!(get(hub).await.status(), StatusCode::NOT_FOUND, "{hub}");
        }
        let post = serve(Method::POST, "/".parse().unwrap(), HeaderMap::new()).await;
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_sent_again() {
        let r = get("/").await;
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let again = serve(Method::GET, "/".parse().unwrap(), h).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn files_are_told_from_pages() {
        assert!(has_extension("favicon.svg") && has_extension("a/b.js"));
        assert!(!has_extension("audit") && !has_extension("tools/x") && !has_extension(".hidden") && !has_extension("v1."));
    }
}
