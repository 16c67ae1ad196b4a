//! The official MCP conformance suite against the fixture, in-process.
//!
//! Needs the peers from `scripts/install-peers.sh`; without them the test says
//! so loudly and passes, unless `GATEHOUSE_REQUIRE_PEERS=1` makes it fail.

use gatehouse_test_support::conformance::{expected_failures, fixture_expected_failures_file, run_server_suite};
use gatehouse_test_support::fixture::{FixtureOptions, serve_http};
use gatehouse_test_support::peers_or_skip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_passes_the_conformance_suite() {
    if !peers_or_skip("fixture_passes_the_conformance_suite") {
        return;
    }
    let expected = expected_failures(&fixture_expected_failures_file()).expect("read the expected failures");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fixture = serve_http(listener, FixtureOptions::default()).await.unwrap();
    let out = tempfile::tempdir().unwrap();

    // (spec version, use the 0.2.0-alpha suite)
    let runs = [("2025-11-25", false), ("2025-06-18", false), ("2025-11-25", true), ("2026-07-28", true)];
    let mut failures = Vec::new();
    for (i, (spec, next)) in runs.into_iter().enumerate() {
        let dir = out.path().join(format!("{i}-{spec}"));
        let report = run_server_suite(&fixture.url(), spec, &dir, next).await.expect("the suite ran");
        println!("{}", report.table(&expected));
        assert!(report.scenarios.len() >= 20, "suspiciously few scenarios ran for {spec}:\n{}", report.output);
        for s in report.unexpected_failures(&expected) {
            failures.push(format!("{spec}{}: {} ({})", if next { " (alpha)" } else { "" }, s.scenario, s.messages.join("; ")));
        }
    }
    fixture.shutdown().await.unwrap();
    assert!(failures.is_empty(), "unexpected conformance failures:\n{}", failures.join("\n"));
}
