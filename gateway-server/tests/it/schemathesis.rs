//! The admin API fuzzed against its own OpenAPI document with schemathesis:
//! no answer may be a 5xx, carry an undocumented status or content type, or
//! violate the documented schema.
//!
//! Operations that make the hub dial out to URLs the fuzzer invents (creating
//! and testing HTTP backends, storing AI providers) are left out: tests only
//! talk to loopback.

use std::process::Stdio;

use gatehouse_test_support::paths;

use crate::support::TestHub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_conforms_to_its_openapi_document() {
    if !paths::peers_or_skip("admin_api_conforms_to_its_openapi_document") {
        return;
    }
    let Some(python) = paths::peers_python() else { panic!("the peers venv has no python") };
    let st = python.with_file_name("schemathesis");
    assert!(st.is_file(), "schemathesis is not installed in the peers venv: run scripts/install-peers.sh");
    let hub = TestHub::start("").await;
    // An admin signed in to the console, as the dashboard would be.
    let password = "correct horse battery staple";
    let (status, body) =
        hub.api("POST", "/users", Some(serde_json::json!({ "username": "root", "role": "admin", "password": password }))).await;
    assert_eq!(status, 201, "{body}");
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", hub.base))
        .json(&serde_json::json!({ "username": "root", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gatehouse_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let body: serde_json::Value = login.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().expect("a csrf token").to_owned();
    let reports = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&st)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", hub.base))
        .args(["--url", &hub.base])
        .args(["-H", &format!("Cookie: {cookie}"), "-H", &format!("X-CSRF-Token: {csrf}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "6", "--generation-deterministic", "--no-shrink", "--workers", "1"])
        .args(["--request-timeout", "20", "--max-time", "150"])
        // Would end the session the run uses.
        .args(["--exclude-name", "POST /api/v1/auth/logout"])
        // A live stream: it never ends by itself.
        .args(["--exclude-name", "GET /api/v1/audit/stream"])
        // Would make the hub connect to invented URLs.
        .args(["--exclude-name", "POST /api/v1/backends", "--exclude-name", "POST /api/v1/backend-tests"])
        .args(["--exclude-name", "POST /api/v1/backends/{name}/test", "--exclude-name", "PUT /api/v1/backends/{name}"])
        // AI providers: their base URL is resolved (SSRF check) when stored.
        .args(["--exclude-name", "POST /api/v1/ai/providers", "--exclude-name", "PUT /api/v1/ai/providers/{name}"])
        .args(["--no-color", "--report-dir"])
        .arg(reports.path())
        // Its crash cache goes next to the reports, not into the checkout.
        .current_dir(reports.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "schemathesis ran no test:\n{stdout}");
}
