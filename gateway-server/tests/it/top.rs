//! `gateway-server top`: every tab rendered from a fixed state at 80×24 and
//! 120×40 (ratatui's TestBackend + insta), the plain snapshot and the errors
//! of the built binary against a real hub, and a smoke test in a real
//! terminal (tmux).

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gatehouse_test_support::fixture_bin;
use gateway_server::top::api::{Agent, AuditRow, Backend, Info, Overview, Point, TopTool};
use gateway_server::top::app::{Action, App, Event, Fetched, Tab};
use gateway_server::top::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

use crate::support::TestHub;

/// 2026-01-02 03:04:05 UTC.
const NOW: u64 = 1_767_323_045_000;

fn at(ms: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(i64::try_from(ms).unwrap()).single()
}

fn sample() -> Fetched {
    // 60 one-minute steps, the last starting at 03:04:00.
    let last_step = NOW - 5_000;
    let series = (0..60u64)
        .map(|i| Point {
            ts: at(last_step - (59 - i) * 60_000),
            requests: [3, 5, 8, 13, 9, 4, 2, 6][usize::try_from(i % 8).unwrap()] + i / 10,
            errors: u64::from(i % 13 == 0) * 2,
            denials: u64::from(i % 29 == 0),
        })
        .collect();
    let tool = |tool: &str, backend: &str, calls, errors| TopTool { tool: tool.into(), backend: Some(backend.into()), calls, errors };
    let backend = |name: &str, transport: &str, health: &str, tools, restarts, last_error: Option<&str>| Backend {
        name: name.into(),
        transport: transport.into(),
        source: "config".into(),
        enabled: true,
        health: health.into(),
        tools,
        prompts: 1,
        resources: 2,
        restarts,
        last_error: last_error.map(Into::into),
        url: (transport == "http").then(|| format!("https://{name}.internal/mcp")),
        command: (transport == "stdio").then(|| format!("/usr/local/bin/{name}-mcp")),
    };
    let agent = |name: &str, online, owner: &str, seen_ago: Option<u64>, version: Option<&str>| Agent {
        name: name.into(),
        online,
        owner: owner.into(),
        revoked_at: None,
        last_seen: seen_ago.and_then(|s| at(NOW - s)),
        version: version.map(Into::into),
    };
    Fetched {
        info: Info { version: "0.1.0".into(), public_url: "https://hub.example.com".into() },
        overview: Overview {
            step_secs: 60,
            series,
            requests: 412,
            errors: 9,
            denials: 3,
            p50_ms: Some(12.4),
            p99_ms: Some(840.0),
            top_tools: vec![
                tool("github__search_issues", "github", 180, 2),
                tool("fs__read_file", "fs", 121, 0),
                tool("gpt-4o-mini", "openai", 64, 5),
                tool("fs__write_file", "fs", 30, 2),
            ],
            ai_spend_today_usd: 1.375,
        },
        backends: vec![
            backend("github", "http", "ready", 42, 0, None),
            backend("fs", "stdio", "degraded", 11, 3, Some("process exited with status 1")),
            backend("jira", "http", "down", 0, 7, Some("connect: connection refused")),
        ],
        agents: vec![
            agent("alice-laptop", true, "alice", Some(1_000), Some("0.1.0")),
            agent("build-box", false, "ci", Some(7_200_000), Some("0.0.9")),
            agent("new-one", false, "bob", None, None),
        ],
        at_ms: NOW - 2_000,
    }
}

fn audit() -> Vec<AuditRow> {
    let row = |seq: i64, secs_ago: u64, user: &str, tool: &str, decision: &str, status: &str, ms: f64| AuditRow {
        seq,
        ts: at(NOW - secs_ago * 1000),
        kind: "mcp".into(),
        username: Some(user.into()),
        tool: Some(tool.into()),
        decision: Some(decision.into()),
        status: Some(status.into()),
        latency_ms: Some(ms),
        ..AuditRow::default()
    };
    vec![
        row(1, 50, "alice", "fs__read_file", "allow", "ok", 4.2),
        row(2, 41, "bob", "github__search_issues", "allow", "ok", 312.0),
        row(3, 33, "mallory", "fs__write_file", "deny", "error", 0.3),
        row(4, 20, "alice", "gpt-4o-mini", "allow", "error", 1520.0),
        AuditRow {
            seq: 5,
            ts: at(NOW - 9_000),
            kind: "admin".into(),
            username: Some("root".into()),
            action: Some("backend.update".into()),
            target: Some("backends/jira".into()),
            ..AuditRow::default()
        },
        row(6, 3, "bob", "fs__read_file", "allow", "ok", 2.0),
    ]
}

fn app() -> App {
    let mut app = App::new("https://hub.example.com", 60, NOW);
    app.apply(Event::Fetched(Box::new(sample())));
    app.apply(Event::Audit(audit()));
    app.apply(Event::Tick(NOW));
    app
}

fn key(c: KeyCode) -> Event {
    Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn on(tab: Tab) -> App {
    let mut a = app();
    while a.tab != tab {
        a.apply(key(KeyCode::Tab));
    }
    a
}

fn draw(app: &App, w: u16, h: u16) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(app, f)).unwrap();
    t.backend().clone()
}

#[test]
fn top_overview_80x24() {
    insta::assert_snapshot!(draw(&on(Tab::Overview), 80, 24));
}

#[test]
fn top_overview_120x40() {
    insta::assert_snapshot!(draw(&on(Tab::Overview), 120, 40));
}

#[test]
fn top_backends_80x24() {
    insta::assert_snapshot!(draw(&on(Tab::Backends), 80, 24));
}

#[test]
fn top_backends_120x40() {
    let mut a = on(Tab::Backends);
    a.apply(key(KeyCode::Down));
    insta::assert_snapshot!(draw(&a, 120, 40));
}

#[test]
fn top_agents_80x24() {
    insta::assert_snapshot!(draw(&on(Tab::Agents), 80, 24));
}

#[test]
fn top_agents_120x40() {
    insta::assert_snapshot!(draw(&on(Tab::Agents), 120, 40));
}

#[test]
fn top_audit_80x24() {
    insta::assert_snapshot!(draw(&on(Tab::Audit), 80, 24));
}

#[test]
fn top_audit_120x40() {
    insta::assert_snapshot!(draw(&on(Tab::Audit), 120, 40));
}

#[test]
fn top_help_overlay() {
    let mut a = app();
    a.apply(key(KeyCode::Char('?')));
    insta::assert_snapshot!(draw(&a, 80, 24));
}

#[test]
fn top_audit_filters_by_text_and_decision() {
    let mut a = on(Tab::Audit);
    a.apply(key(KeyCode::Char('/')));
    for c in "fs__".chars() {
        a.apply(key(KeyCode::Char(c)));
    }
    insta::assert_snapshot!(draw(&a, 80, 24));
    a.apply(key(KeyCode::Enter));
    assert_eq!(a.audit_rows().len(), 3);
    a.apply(key(KeyCode::Char('d')));
    a.apply(key(KeyCode::Char('d')));
    let screen = draw(&a, 80, 24).to_string();
    assert!(screen.contains("Audit (1, filtered) · decision: deny") && screen.contains("mallory"), "{screen}");
    assert!(!screen.contains("alice"), "{screen}");
    // The Overview's filter is its own.
    a.apply(key(KeyCode::Tab));
    assert_eq!(a.top_tools().len(), 4);
}

#[test]
fn top_pause_holds_new_records() {
    let mut a = on(Tab::Audit);
    a.apply(key(KeyCode::Char('p')));
    let new = AuditRow { seq: 7, ts: at(NOW), tool: Some("late__tool".into()), ..AuditRow::default() };
    a.apply(Event::Audit(vec![new]));
    let screen = draw(&a, 80, 24).to_string();
    assert!(screen.contains("paused +1") && !screen.contains("late__tool"), "{screen}");
    a.apply(key(KeyCode::Char('p')));
    assert!(draw(&a, 80, 24).to_string().contains("late__tool"));
}

#[test]
fn top_shows_errors_in_the_status_line_and_keeps_the_data() {
    let mut a = app();
    a.apply(Event::FetchFailed("cannot reach the hub at https://hub.example.com: Connection refused (os error 111)".into()));
    a.apply(Event::Tick(NOW + 10_000));
    let screen = draw(&a, 120, 40).to_string();
    assert!(screen.contains("✖ error") && screen.contains("updated 12s ago"), "{screen}");
    assert!(screen.contains("✖ cannot reach the hub at https://hub.example.com: Connection refused"), "{screen}");
    assert!(screen.contains("github__search_issues"), "the last data stays: {screen}");
    a.apply(Event::StreamDown("the audit stream ended".into()));
    a.apply(Event::Fetched(Box::new(sample())));
    let screen = draw(&a, 120, 40).to_string();
    assert!(screen.contains("● connected") && screen.contains("audit stream: the audit stream ended"), "{screen}");
    a.apply(Event::StreamUp);
    assert!(!draw(&a, 120, 40).to_string().contains("audit stream"));
    // Before the first poll.
    let screen = draw(&App::new("http://h", 60, NOW), 80, 24).to_string();
    assert!(screen.contains("waiting for the hub") && screen.contains("connecting"), "{screen}");
    assert_eq!(a.apply(key(KeyCode::Char('r'))), Action::Refresh);
}

#[test]
fn top_plain_snapshot() {
    insta::assert_snapshot!(gateway_server::top::plain::snapshot(&app()));
}

// ---------------------------------------------------------------------------
// The binary against a running hub
// ---------------------------------------------------------------------------

async fn busy_hub() -> TestHub {
    let bin = fixture_bin();
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` first", bin.display());
    let hub = TestHub::start(&format!("[[backends]]\nname = \"fixture\"\ntransport = \"stdio\"\ncommand = \"{}\"\n", bin.display())).await;
    hub.wait_backend("fixture").await;
    let mut c = hub.client("/mcp");
    c.initialize().await;
    for x in 0..2 {
        c.call("tools/call", json!({ "name": "fixture__echo", "arguments": { "x": x } })).await;
    }
    hub.state.audit.flush().await;
    hub
}

/// `gateway-server top` run from an empty directory (no config found) with
/// `key` in the environment, stdout a pipe.
async fn top(args: &[&str], key: Option<&str>) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway-server"));
    cmd.arg("top").args(args).current_dir(dir.path()).env_remove("GATEHOUSE_CONFIG").env_remove("GATEHOUSE_API_KEY");
    if let Some(k) = key {
        cmd.env("GATEHOUSE_API_KEY", k);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.stdin(Stdio::null()).output()).await.expect("top finishes").unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_prints_a_plain_snapshot_when_stdout_is_not_a_terminal() {
    let hub = busy_hub().await;
    let (_, overview) = hub.api("GET", "/overview?minutes=60", None).await;
    let requests = overview["requests"].as_u64().unwrap();
    assert!(requests >= 2, "{overview}");

    let (ok, stdout, stderr) = top(&["--url", &hub.base], Some(&hub.key)).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("last 60m: requests {requests} ·")), "{stdout}");
    let tools = stdout.lines().find(|l| l.starts_with("fixture__echo")).unwrap_or_else(|| panic!("no top tool line:\n{stdout}"));
    assert_eq!(tools.split_whitespace().collect::<Vec<_>>(), ["fixture__echo", "fixture", "2", "0"], "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("fixture ") && l.contains("ready")), "the backend: {stdout}");
    let tail = stdout.split("\nTIME").nth(1).unwrap_or_else(|| panic!("no audit tail:\n{stdout}"));
    assert!(tail.lines().filter(|l| l.contains("fixture__echo") && l.contains("allow") && l.contains("ok")).count() == 2, "{stdout}");

    // The key from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, format!("{}\n", hub.key)).unwrap();
    let (ok, stdout, stderr) = top(&["--url", &hub.base, "--key-file", file.to_str().unwrap(), "--minutes", "5"], None).await;
    assert!(ok && stdout.contains("last 5m: requests"), "{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_fails_clearly_without_a_good_key_or_a_hub() {
    let hub = TestHub::start("").await;
    let (ok, stdout, stderr) = top(&["--url", &hub.base], Some("gk_not_a_real_key")).await;
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: the hub at") && stderr.contains("refused the API key (401)"), "{stderr}");

    // A developer's key works on /mcp but may not read everyone's traffic.
    let dev = crate::backends_api::key_with_role(&hub.state, "dave", gateway_server::store::Role::Developer).await;
    let (ok, _, stderr) = top(&["--url", &hub.base], Some(&dev)).await;
    assert!(!ok && stderr.contains("may not read the hub's traffic (403"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let (ok, _, stderr) = top(&["--url", &hub.base], None).await;
    assert!(
        !ok && stderr.contains("no admin API key") && stderr.contains("GATEHOUSE_API_KEY") && stderr.contains("--key-file"),
        "{stderr}"
    );

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (ok, _, stderr) = top(&["--url", &format!("http://{closed}")], Some(&hub.key)).await;
    assert!(!ok && stderr.contains(&format!("cannot reach the hub at http://{closed}")), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `gateway-server top` in a real terminal against a running hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_tmux_smoke_test() {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("\n*** SKIPPED: top::top_tmux_smoke_test: tmux is not installed ***\n");
        return;
    }
    let hub = busy_hub().await;
    let dir = tempfile::tempdir().unwrap();
    let session = format!("gw-top-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let o = std::process::Command::new("tmux").args(["-L", &session]).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let script = format!(
        "cd {} && {} top --url {} --interval 1; echo EXITED-$?; stty -a; echo STTY-DONE; sleep 60",
        dir.path().display(),
        env!("CARGO_BIN_EXE_gateway-server"),
        hub.base
    );
    let key_env = format!("GATEHOUSE_API_KEY={}", hub.key);
    tmux(&["new-session", "-d", "-s", &session, "-x", "100", "-y", "30", "-e", &key_env, "sh", "-c", &script]);
    let capture = || tmux(&["capture-pane", "-p", "-t", &session]);
    let wait_for = |what: &'static str| {
        let capture = &capture;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let screen = capture();
                if screen.contains(what) {
                    return screen;
                }
                assert!(tokio::time::Instant::now() < deadline, "{what:?} never appeared:\n{screen}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let screen = wait_for("fixture__echo").await;
    assert!(screen.contains("Top tools (1)") && screen.contains("● connected"), "{screen}");
    tmux(&["send-keys", "-t", &session, "Tab"]);
    let screen = wait_for("RESTARTS").await;
    assert!(screen.lines().any(|l| l.contains("fixture") && l.contains("ready")), "{screen}");
    tmux(&["send-keys", "-t", &session, "?"]);
    wait_for("any key closes this help").await;
    tmux(&["send-keys", "-t", &session, "Escape"]);
    tmux(&["send-keys", "-t", &session, "q"]);
    let screen = wait_for("STTY-DONE").await;
    assert!(screen.contains("EXITED-0"), "{screen}");
    // The alternate screen is gone and the terminal is back in cooked mode with echo.
    assert!(!screen.contains("Top tools"), "{screen}");
    let stty = screen.split_whitespace().collect::<Vec<_>>();
    assert!(stty.contains(&"icanon") && stty.contains(&"echo"), "terminal not restored:\n{screen}");
    tmux(&["kill-server"]);
}
