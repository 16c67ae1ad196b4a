//! The official MCP conformance suite through the hub.
//!
//! The fixture server runs behind the hub as a stdio backend (a session-era
//! hop: it negotiates 2025-11-25) and the suite runs against `/mcp/fixture`
//! for 2025-06-18, 2025-11-25 and, with the 0.2.0-alpha suite, 2026-07-28 —
//! which the hub serves through its stateless front door and era
//! translation. For 2026-07-28 the suite also runs against the fixture
//! directly (in-process, over HTTP, natively stateless) and the two runs are
//! compared. Every scenario the fixture passes when called directly must pass
//! through the hub too; the only exceptions are listed, each with its reason,
//! in `conformance/expected-failures-hub.yml`.
//!
//! The hub runs in SSE polling mode here (SEP-1699): every POST the client lets
//! have a stream gets a resumable one at once, and the hub closes it 50 ms in
//! when the answer is still pending, so every slower call of the suite is
//! resumed with `GET` and `Last-Event-ID`, and `server-sse-polling` has a
//! priming event, a retry hint and a mid-call disconnect to check.
//!
//! The suite's client scenarios test the other side of the hub, its
//! connector to MCP servers, through `gatehouse-upstream-client` (the
//! `gatehouse-upstream` crate as a client process): the 2025-11-25 ones with
//! the stable suite (session eras), the 2026-07-28 ones with the 0.2.0-alpha
//! suite (the connector discovers the stateless era and speaks it).

use std::collections::BTreeSet;

use gatehouse_test_support::conformance::{
    expected_failures, fixture_expected_failures_file, run_client_scenario, run_client_scenario_2026, run_server_suite,
};
use gatehouse_test_support::fixture::{FixtureOptions, serve_http};
use gatehouse_test_support::paths::workspace_bin;
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

    let fixture_expected = expected_failures(&fixture_expected_failures_file()).unwrap();
    let hub_expected = expected_failures(&workspace_root().join("conformance/expected-failures-hub.yml")).unwrap();
    let expected: Vec<String> = fixture_expected.iter().chain(&hub_expected).cloned().collect();
    let out = tempfile::tempdir().unwrap();
    let url = format!("{}/mcp/fixture", hub.base);
    let mut failures = Vec::new();
    // (spec version, use the 0.2.0-alpha suite)
    for (i, (spec, next)) in [("2025-11-25", false), ("2025-06-18", false), ("2026-07-28", true)].into_iter().enumerate() {
        let report = run_server_suite(&url, spec, &out.path().join(format!("{i}-{spec}")), next).await.expect("the suite ran");
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
        if spec != "2026-07-28" {
            continue;
        }
        // The same revision against the fixture itself: what passes there
        // passes through the hub, exceptions aside.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fixture = serve_http(listener, FixtureOptions::default()).await.unwrap();
        let direct =
            run_server_suite(&fixture.url(), spec, &out.path().join(format!("{i}-{spec}-direct")), true).await.expect("the suite ran");
        fixture.shutdown().await.unwrap();
        println!("conformance against the fixture directly, spec {spec}:\n{}", direct.table(&fixture_expected));
        let passed_directly: BTreeSet<&str> = direct.scenarios.iter().filter(|s| s.passed()).map(|s| s.scenario.as_str()).collect();
        let ran_through_hub: BTreeSet<&str> = report.scenarios.iter().map(|s| s.scenario.as_str()).collect();
        for s in &report.scenarios {
            if !s.passed() && passed_directly.contains(s.scenario.as_str()) && !hub_expected.contains(&s.scenario) {
                failures.push(format!("{spec}: {} passes directly but not through the hub ({})", s.scenario, s.messages.join("; ")));
            }
        }
        for missing in passed_directly.difference(&ran_through_hub) {
            failures.push(format!("{spec}: {missing} passes directly but did not run through the hub"));
        }
    }
    assert!(failures.is_empty(), "unexpected conformance failures through the hub:\n{}", failures.join("\n"));
}

/// Client scenarios of the 2025-11-25 suite the upstream connector must pass
/// (the connector asks `server/discover` first and falls back to `initialize`).
const CLIENT_SCENARIOS: &[&str] = &["initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"];

/// Every non-auth 2026-07-28 client scenario of the 0.2.0-alpha suite: the
/// connector speaks the stateless era to these servers.
const CLIENT_SCENARIOS_2026: &[&str] = &[
    "tools_call",
    "request-metadata",
    "sep-2322-client-request-state",
    "http-standard-headers",
    "http-custom-headers",
    "http-invalid-tool-headers",
    "json-schema-ref-no-deref",
    "json-schema-2020-12-preservation",
];

/// 2026-07-28 client scenarios the connector is known to fail, each with
/// its reason. Empty: all of them pass.
const CLIENT_SCENARIOS_2026_EXPECTED_FAILURES: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connector_passes_the_client_scenarios() {
    if !peers_or_skip("upstream_connector_passes_the_client_scenarios") {
        return;
    }
    let bin = workspace_bin("gatehouse-upstream-client");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for scenario in CLIENT_SCENARIOS {
        let dir = out.path().join(scenario.replace('/', "-"));
        let r = run_client_scenario(&bin.display().to_string(), scenario, &dir).await.expect("the suite ran");
        println!("client scenario {scenario}: {} ok, {} failed, {} warnings", r.successes, r.failures, r.warnings);
        if !r.passed() || r.successes == 0 {
            failures.push(format!("{scenario}: {}", r.messages.join("; ")));
        }
    }
    assert!(failures.is_empty(), "client scenarios failed:\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connector_passes_the_2026_client_scenarios() {
    if !peers_or_skip("upstream_connector_passes_the_2026_client_scenarios") {
        return;
    }
    let bin = workspace_bin("gatehouse-upstream-client");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for scenario in CLIENT_SCENARIOS_2026 {
        let dir = out.path().join(scenario.replace('/', "-"));
        let r = run_client_scenario_2026(&bin.display().to_string(), scenario, &dir).await.expect("the suite ran");
        println!("2026-07-28 client scenario {scenario}: {} ok, {} failed, {} warnings", r.successes, r.failures, r.warnings);
        let expected = CLIENT_SCENARIOS_2026_EXPECTED_FAILURES.iter().any(|(s, _)| s == scenario);
        let passed = r.passed() && r.successes > 0;
        match (passed, expected) {
            (false, false) => failures.push(format!("{scenario}: {}", r.messages.join("; "))),
            (true, true) => failures.push(format!("{scenario} passes now: take it off the expected failures")),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "2026-07-28 client scenarios failed:\n{}", failures.join("\n"));
}
