//! The admin API fuzzed against its own OpenAPI document with schemathesis:
//! no answer may be a 5xx, carry an undocumented status or content type, or
//! violate the documented schema.
//!
//! Operations that make the hub dial out to URLs the fuzzer invents (creating
//! and testing HTTP backends) are left out: tests only talk to loopback.

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
    let reports = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&st)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", hub.base))
        .args(["--url", &hub.base])
        .args(["-H", &format!("Authorization: Bearer {}", hub.key)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "12", "--generation-deterministic", "--no-shrink", "--workers", "2"])
        .args(["--request-timeout", "20", "--max-time", "300"])
        // Would make the hub connect to invented URLs.
        .args(["--exclude-name", "POST /api/v1/backends", "--exclude-name", "POST /api/v1/backends/test"])
        .args(["--exclude-name", "POST /api/v1/backends/{name}/test", "--exclude-name", "PUT /api/v1/backends/{name}"])
        .args(["--no-color", "--report-dir"])
        .arg(reports.path())
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
