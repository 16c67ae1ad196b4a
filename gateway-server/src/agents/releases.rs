//! `GET /agent/releases/manifest.json` and `GET /agent/releases/{file}`: the
//! agent releases in `[agents] releases_dir`, read-only.
//!
//! The manifest is the one `gateway-agent update` and the installers read
//! (`{"version", "assets": {"<target triple>": {"url", "sha256", "signature"}}}`);
//! asset URLs are usually plain file names, relative to the manifest. Only
//! plain file names directly in the directory are served: no sub-paths, no
//! dot files, no traversal, no symlinks leading out. Anything else is 404.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::server::AppState;

/// The release routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/agent/releases/{file}", get(release_file))
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": { "code": "not_found", "message": format!("no release file {what}") } }))).into_response()
}

/// Whether `name` is a plain file name that may be served.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

/// The file `name` in `dir`, when it is a regular file inside `dir` (after resolving links).
async fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    if !is_plain_file_name(name) {
        return None;
    }
    let root = tokio::fs::canonicalize(dir).await.ok()?;
    let path = tokio::fs::canonicalize(root.join(name)).await.ok()?;
    if path.parent() != Some(root.as_path()) {
        return None;
    }
    tokio::fs::metadata(&path).await.ok()?.is_file().then_some(path)
}

async fn release_file(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    let shown: String = name.chars().take(64).collect();
    let Some(dir) = st.config.agents.releases_dir.as_deref() else {
        return not_found(&format!("{shown}: this hub serves no agent releases (set [agents] releases_dir)"));
    };
    let Some(path) = resolve(dir, &name).await else { return not_found(&shown) };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot open a release file");
            return not_found(&shown);
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let content_type = if name == "manifest.json" { "application/json" } else { "application/octet-stream" };
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names() {
        for ok in ["manifest.json", "gateway-agent-x86_64-unknown-linux-gnu", "gateway-agent.exe", "a+b_1.2"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "../x", "a/b", "a\\b", "%2e%2e", "a b", "a\0b"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn files_outside_the_directory_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let rel = dir.path().join("rel");
        std::fs::create_dir(&rel).unwrap();
        std::fs::write(rel.join("manifest.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::create_dir(rel.join("sub")).unwrap();
        assert!(resolve(&rel, "manifest.json").await.is_some());
        assert!(resolve(&rel, "secret").await.is_none());
        assert!(resolve(&rel, "sub").await.is_none(), "directories are not files");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), rel.join("link")).unwrap();
            assert!(resolve(&rel, "link").await.is_none(), "a link out of the directory");
        }
    }
}
