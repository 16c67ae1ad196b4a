//! `GET /install.sh` and `GET /install.ps1`: the agent installers (kept at
//! the repository root), with this hub's `server.public_url` filled in.
//!
//! Each script holds one line `GATEHOUSE_HUB_URL=...` (`$GatehouseHubUrl = "..."`
//! in PowerShell) that is replaced at serve time, so
//! `curl -fsSL https://hub/install.sh | sh` installs from the hub it came from.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::AppState;

/// The POSIX shell installer as written.
pub const INSTALL_SH: &str = include_str!("../../../install.sh");
/// The PowerShell installer as written.
pub const INSTALL_PS1: &str = include_str!("../../../install.ps1");

/// The placeholder line of `install.sh`.
pub const SH_PLACEHOLDER: &str = "GATEHOUSE_HUB_URL=...";
/// The placeholder line of `install.ps1`.
pub const PS1_PLACEHOLDER: &str = "$GatehouseHubUrl = \"...\"";

/// The installer routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/install.sh", get(install_sh)).route("/install.ps1", get(install_ps1))
}

/// Keeps only characters that are inert inside single quotes (sh) and double quotes (PowerShell).
fn safe_url(url: &str) -> String {
    url.chars().filter(|c| c.is_ascii_alphanumeric() || ":/.-_~%[]@".contains(*c)).collect()
}

/// `install.sh` pointing at `hub`.
pub fn render_sh(hub: &str) -> String {
    INSTALL_SH.replacen(SH_PLACEHOLDER, &format!("GATEHOUSE_HUB_URL='{}'", safe_url(hub)), 1)
}

/// `install.ps1` pointing at `hub`.
pub fn render_ps1(hub: &str) -> String {
    INSTALL_PS1.replacen(PS1_PLACEHOLDER, &format!("$GatehouseHubUrl = \"{}\"", safe_url(hub)), 1)
}

fn script(body: String, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

async fn install_sh(State(st): State<AppState>) -> Response {
    script(render_sh(&st.config.server.public_url), "text/x-shellscript; charset=utf-8")
}

async fn install_ps1(State(st): State<AppState>) -> Response {
    script(render_ps1(&st.config.server.public_url), "text/plain; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_url_replaces_the_placeholder_once() {
        assert_eq!(INSTALL_SH.matches(SH_PLACEHOLDER).count(), 1);
        assert_eq!(INSTALL_PS1.matches(PS1_PLACEHOLDER).count(), 1);
        let sh = render_sh("https://hub.example.com");
        assert!(sh.contains("\nGATEHOUSE_HUB_URL='https://hub.example.com'\n"));
        assert!(render_ps1("https://hub.example.com").contains("$GatehouseHubUrl = \"https://hub.example.com\""));
        // Quotes and command substitutions cannot ride in on the URL.
        assert!(render_sh("http://x/'$(id)`\"").contains("GATEHOUSE_HUB_URL='http://x/id'"));
    }
}
