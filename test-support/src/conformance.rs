//! Runs the official MCP conformance suite's server scenarios against a URL
//! (through `scripts/conformance.sh`, the same entry point people use) and
//! its client scenarios against a client command, and reads the
//! per-scenario results it writes, so tests can assert on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::paths::{node22, workspace_root};

/// Longest a whole suite run may take before it is killed.
const SUITE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Why a suite run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// `.peers` is not installed.
    #[error("test peers are not installed: run scripts/install-peers.sh")]
    PeersMissing,
    /// Starting the runner or reading its results failed.
    #[error("conformance runner I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The runner did not finish in time.
    #[error("the conformance suite did not finish within {0:?}")]
    Timeout(Duration),
    /// The runner finished without writing any scenario result.
    #[error("the conformance suite wrote no results (exit status {status}); its output:\n{output}")]
    NoResults {
        /// The runner's exit status.
        status: String,
        /// The runner's combined output.
        output: String,
    },
}

/// The outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioResult {
    /// The scenario name, e.g. `tools-call-simple-text`.
    pub scenario: String,
    /// Checks that passed.
    pub successes: usize,
    /// Checks that failed.
    pub failures: usize,
    /// Checks that warned (the suite's baseline counts warnings as failures).
    pub warnings: usize,
    /// The error messages of failed and warning checks.
    pub messages: Vec<String>,
}

impl ScenarioResult {
    /// True when no check failed or warned.
    pub fn passed(&self) -> bool {
        self.failures == 0 && self.warnings == 0
    }
}

/// All scenario results of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The spec version the run was filtered to.
    pub spec_version: String,
    /// Results by scenario name.
    pub scenarios: Vec<ScenarioResult>,
    /// The runner's combined stdout and stderr.
    pub output: String,
}

impl Report {
    /// Scenarios that did not pass and are not in `expected`.
    pub fn unexpected_failures<'a>(&'a self, expected: &[String]) -> Vec<&'a ScenarioResult> {
        self.scenarios.iter().filter(|s| !s.passed() && !expected.contains(&s.scenario)).collect()
    }

    /// A plain-text pass/fail table.
    pub fn table(&self, expected: &[String]) -> String {
        let mut out = format!("conformance {}:\n", self.spec_version);
        for s in &self.scenarios {
            let status = match (s.passed(), expected.contains(&s.scenario)) {
                (true, false) => "PASS",
                (true, true) => "PASS (stale expected failure)",
                (false, true) => "XFAIL",
                (false, false) => "FAIL",
            };
            out.push_str(&format!(
                "  {:<48} {:<6} ({} ok, {} failed, {} warnings)\n",
                s.scenario, status, s.successes, s.failures, s.warnings
            ));
            if !s.passed() {
                for m in &s.messages {
                    out.push_str(&format!("      - {m}\n"));
                }
            }
        }
        out
    }
}

/// `conformance/expected-failures-fixture.yml`: the fixture's known failures.
pub fn fixture_expected_failures_file() -> PathBuf {
    workspace_root().join("conformance/expected-failures-fixture.yml")
}

/// Reads the `server:` list of an expected-failures file (the suite's
/// `--expected-failures` format; comments carry the reasons).
pub fn expected_failures(path: &Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    let mut in_server = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("").trim_end();
        if code.trim().is_empty() {
            continue;
        }
        if !code.starts_with(' ') && !code.starts_with('-') {
            in_server = code.trim() == "server:";
            continue;
        }
        if in_server && let Some(item) = code.trim().strip_prefix("- ") {
            out.push(item.trim().trim_matches(['"', '\'']).to_owned());
        }
    }
    Ok(out)
}

/// Runs `scripts/conformance.sh URL --spec-version SPEC --suite all --out OUT_DIR`
/// (every server scenario, pending ones included) and reads the results.
/// `next` selects the 0.2.0-alpha suite package.
pub async fn run_server_suite(url: &str, spec_version: &str, out_dir: &Path, next: bool) -> Result<Report, ConformanceError> {
    if node22().is_none() {
        return Err(ConformanceError::PeersMissing);
    }
    let script = workspace_root().join("scripts/conformance.sh");
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(script).arg(url).args(["--spec-version", spec_version, "--suite", "all"]).arg("--out").arg(out_dir);
    if next {
        cmd.arg("--next");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn()?;
    let output =
        tokio::time::timeout(SUITE_TIMEOUT, child.wait_with_output()).await.map_err(|_| ConformanceError::Timeout(SUITE_TIMEOUT))??;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let scenarios = read_results(out_dir)?;
    if scenarios.is_empty() {
        return Err(ConformanceError::NoResults { status: output.status.to_string(), output: text });
    }
    Ok(Report { spec_version: spec_version.to_owned(), scenarios, output: text })
}

/// Runs one client scenario of the stable suite package
/// (`conformance client --command COMMAND --scenario SCENARIO`): the suite
/// starts its test server and runs `command` with the server's URL appended.
/// Returns the scenario's checks; `INFO` and `SKIPPED` checks do not count.
pub async fn run_client_scenario(command: &str, scenario: &str, out_dir: &Path) -> Result<ScenarioResult, ConformanceError> {
    client_scenario("@modelcontextprotocol/conformance", &[], command, scenario, out_dir).await
}

/// [`run_client_scenario`] with the 0.2.0-alpha suite package at spec
/// version 2026-07-28 (the scenario server speaks the stateless era).
pub async fn run_client_scenario_2026(command: &str, scenario: &str, out_dir: &Path) -> Result<ScenarioResult, ConformanceError> {
    client_scenario("conformance-next", &["--spec-version", "2026-07-28"], command, scenario, out_dir).await
}

async fn client_scenario(
    package: &str,
    extra: &[&str],
    command: &str,
    scenario: &str,
    out_dir: &Path,
) -> Result<ScenarioResult, ConformanceError> {
    let Some(node) = node22() else { return Err(ConformanceError::PeersMissing) };
    let pkg = crate::paths::npm_package(package).ok_or(ConformanceError::PeersMissing)?;
    std::fs::create_dir_all(out_dir)?;
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(pkg.join("dist/index.js"))
        .args(["client", "--command", command, "--scenario", scenario])
        .args(extra)
        .arg("-o")
        .arg(out_dir)
        .current_dir(out_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SUITE_TIMEOUT, cmd.spawn()?.wait_with_output())
        .await
        .map_err(|_| ConformanceError::Timeout(SUITE_TIMEOUT))??;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let mut found = None;
    for entry in std::fs::read_dir(out_dir)? {
        let path = entry?.path().join("checks.json");
        if path.is_file() {
            found = Some(path);
        }
    }
    let Some(path) = found else {
        return Err(ConformanceError::NoResults { status: output.status.to_string(), output: text });
    };
    let checks: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path)?).map_err(std::io::Error::other)?;
    Ok(tally(scenario, &checks))
}

/// Counts the checks of one scenario.
fn tally(scenario: &str, checks: &[serde_json::Value]) -> ScenarioResult {
    let mut r = ScenarioResult { scenario: scenario.to_owned(), successes: 0, failures: 0, warnings: 0, messages: Vec::new() };
    for c in checks {
        let status = c["status"].as_str().unwrap_or("");
        match status {
            "SUCCESS" => r.successes += 1,
            "FAILURE" => r.failures += 1,
            "WARNING" => r.warnings += 1,
            _ => continue,
        }
        if status != "SUCCESS" {
            let id = c["id"].as_str().unwrap_or("?");
            let msg = c["errorMessage"].as_str().unwrap_or("(no message)");
            r.messages.push(format!("{status} {id}: {msg}"));
        }
    }
    r
}

/// Reads every `server-<scenario>-<timestamp>/checks.json` under `dir`.
pub fn read_results(dir: &Path) -> std::io::Result<Vec<ScenarioResult>> {
    let mut by_name = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(scenario) = scenario_of_dir(&name) else {
            continue;
        };
        let checks = entry.path().join("checks.json");
        let Ok(text) = std::fs::read_to_string(&checks) else {
            continue;
        };
        let checks: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        by_name.insert(scenario.to_owned(), tally(scenario, &checks));
    }
    Ok(by_name.into_values().collect())
}

/// `server-tools-list-2026-01-01T10-00-00-000Z` → `tools-list`.
fn scenario_of_dir(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("server-")?;
    let b = rest.as_bytes();
    // The timestamp starts at the last "-YYYY-MM-DDT".
    (0..b.len()).rev().find_map(|i| {
        let t = b.get(i..i + 12)?;
        let digits = |r: std::ops::Range<usize>| t[r].iter().all(u8::is_ascii_digit);
        (t[0] == b'-' && digits(1..5) && t[5] == b'-' && digits(6..8) && t[8] == b'-' && digits(9..11) && t[11] == b'T').then(|| &rest[..i])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_from_result_dirs() {
        assert_eq!(scenario_of_dir("server-tools-list-2026-01-01T10-00-00-000Z"), Some("tools-list"));
        assert_eq!(scenario_of_dir("server-ping-2026-11-22T05-06-07-890Z"), Some("ping"));
        assert_eq!(scenario_of_dir("client-ping-2026-11-22T05-06-07-890Z"), None);
        assert_eq!(scenario_of_dir("server-ping"), None);
    }

    #[test]
    fn parses_expected_failures_and_results() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("x.yml");
        std::fs::write(&yml, "# reasons\nserver:\n  # why\n  - caching # issue 1\n  - \"server-stateless\"\nclient:\n  - x\n").unwrap();
        assert_eq!(expected_failures(&yml).unwrap(), vec!["caching", "server-stateless"]);

        let d = dir.path().join("server-ping-2026-01-01T00-00-00-000Z");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("checks.json"),
            r#"[{"id":"a","status":"SUCCESS"},{"id":"b","status":"WARNING","errorMessage":"meh"},{"id":"c","status":"INFO"}]"#,
        )
        .unwrap();
        let r = read_results(dir.path()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].successes, r[0].warnings, r[0].passed()), (1, 1, false));
        let report = Report { spec_version: "x".into(), scenarios: r, output: String::new() };
        assert_eq!(report.unexpected_failures(&[]).len(), 1);
        assert!(report.unexpected_failures(&["ping".to_owned()]).is_empty());
        assert!(report.table(&[]).contains("FAIL"));
    }
}
