//! The official MCP conformance suite through the hub.
//!
//! The fixture server runs behind the hub as a stdio backend and the suite
//! runs against `/mcp/fixture`. Every scenario the fixture passes when called
//! directly must pass through the hub too; the only exceptions are listed,
//! each with its reason, in `conformance/expected-failures-hub.yml`.
//!
//! The hub runs in SSE polling mode here (SEP-1699): every POST the client lets
//! have a stream gets a resumable one at once, and the hub closes it 50 ms in
//! when the answer is still pending, so every slower call of the suite is
//! resumed with `GET` and `Last-Event-ID`, and `server-sse-polling` has a
//! priming event, a retry hint and a mid-call disconnect to check.

use gatehouse_test_support::conformance::{expected_failures, fixture_expected_failures_file, run_server_suite};
use gatehouse_test_support::{fixture_bin, peers_or_skip, workspace_root};

use crate::support::TestHub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_through_the_hub() {
    if !peers_or_skip("conformance_suite_passes_through_the_hub") {
        return;
    }
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    // The suite cannot send credentials: this hub lets keyless callers in.
    let hub = TestHub::start(&format!(
        "[auth]\nanonymous_user = \"conformance\"\n[mcp]\nsse_after_ms = 0\nsse_close_after_ms = 50\n[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n",
        bin.display()
    ))
    .await;
    hub.wait_backend("fixture").await;

    let mut expected = expected_failures(&fixture_expected_failures_file()).unwrap();
    expected.extend(expected_failures(&workspace_root().join("conformance/expected-failures-hub.yml")).unwrap());
    let out = tempfile::tempdir().unwrap();
    let url = format!("{}/mcp/fixture", hub.base);
    let mut failures = Vec::new();
    for (i, spec) in ["2025-11-25", "2025-06-18"].into_iter().enumerate() {
        let report = run_server_suite(&url, spec, &out.path().join(format!("{i}-{spec}")), false).await.expect("the suite ran");
        println!("conformance through the hub, spec {spec}:\n{}", report.table(&expected));
        assert!(report.scenarios.len() >= 20, "suspiciously few scenarios ran for {spec}:\n{}", report.output);
        for s in report.unexpected_failures(&expected) {
            failures.push(format!("{spec}: {} ({})", s.scenario, s.messages.join("; ")));
        }
        if spec == "2025-11-25" {
            // Priming event, retry field, and resumption after the hub closed the stream.
            let polling = report.scenarios.iter().find(|s| s.scenario == "server-sse-polling");
            if polling.is_none_or(|s| s.successes < 3) {
                failures.push(format!("{spec}: server-sse-polling checked too little: {polling:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "unexpected conformance failures through the hub:\n{}", failures.join("\n"));
}
