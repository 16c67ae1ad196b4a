//! The dashboard: snapshots of every panel at 80×24 and of the help overlay
//! (ratatui's TestBackend + insta), and a smoke test in a real terminal (tmux).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gateway_agent::state::{CallRecord, ConnState, Connection, LogLine, ServerRow, Snapshot};
use gateway_agent::tui::{Action, App, AppEvent, Focus};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 2026-01-02 03:04:05 UTC.
const NOW: u64 = 1_767_323_045_000;

pub fn sample() -> Snapshot {
    let calls = vec![
        CallRecord {
            at_ms: NOW - 60_000,
            server: "fs".into(),
            method: "tools/call".into(),
            target: Some("read_file".into()),
            duration_ms: 12,
            ok: true,
            error: None,
        },
        CallRecord {
            at_ms: NOW - 30_000,
            server: "fs".into(),
            method: "tools/list".into(),
            target: None,
            duration_ms: 3,
            ok: true,
            error: None,
        },
        CallRecord {
            at_ms: NOW - 5_000,
            server: "obsidian".into(),
            method: "tools/call".into(),
            target: Some("search".into()),
            duration_ms: 30_001,
            ok: false,
            error: Some("upstream did not answer within 30s".into()),
        },
    ];
    let logs = vec![
        LogLine { at_ms: NOW - 70_000, level: "INFO".into(), message: "gateway-agent starting agent=alice-laptop".into() },
        LogLine { at_ms: NOW - 65_000, level: "INFO".into(), message: "local server ready server=fs".into() },
        LogLine { at_ms: NOW - 64_000, level: "WARN".into(), message: "local server down: connection refused server=obsidian".into() },
        LogLine { at_ms: NOW - 63_000, level: "INFO".into(), message: "connected to the hub hub_version=0.1.0".into() },
    ];
    Snapshot {
        version: "0.1.0".into(),
        connection: Connection {
            hub: "https://hub.example.com".into(),
            agent: "alice-laptop".into(),
            state: ConnState::Connected,
            rtt_ms: Some(23),
            connected_since_ms: Some(NOW - 3_723_000),
            connections: 3,
            reconnects: 2,
            last_error: None,
        },
        servers: vec![
            ServerRow { name: "fs".into(), transport: "stdio".into(), status: "ready".into(), tools: 11, restarts: 0, last_error: None },
            ServerRow {
                name: "obsidian".into(),
                transport: "http".into(),
                status: "down".into(),
                tools: 0,
                restarts: 4,
                last_error: Some("connection refused".into()),
            },
        ],
        calls,
        logs,
    }
}

fn app() -> App {
    let mut app = App::new("this process");
    app.handle_event(AppEvent::Snapshot(Box::new(sample())));
    app.handle_event(AppEvent::Tick(NOW));
    app
}

fn key(c: KeyCode) -> AppEvent {
    AppEvent::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn draw(app: &App) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| app.render(f)).unwrap();
    t.backend().clone()
}

fn focused(focus: Focus) -> App {
    let mut a = app();
    while a.focus != focus {
        a.handle_event(key(KeyCode::Tab));
    }
    a
}

#[test]
fn connection_panel() {
    insta::assert_snapshot!(draw(&focused(Focus::Connection)));
}

#[test]
fn servers_panel() {
    insta::assert_snapshot!(draw(&focused(Focus::Servers)));
}

#[test]
fn calls_panel() {
    insta::assert_snapshot!(draw(&focused(Focus::Calls)));
}

#[test]
fn logs_panel() {
    insta::assert_snapshot!(draw(&focused(Focus::Logs)));
}

#[test]
fn help_overlay() {
    let mut a = app();
    a.handle_event(key(KeyCode::Char('?')));
    insta::assert_snapshot!(draw(&a));
}

#[test]
fn filter_applies_to_calls_and_logs() {
    let mut a = app();
    a.handle_event(key(KeyCode::Char('/')));
    for c in "obsidian".chars() {
        a.handle_event(key(KeyCode::Char(c)));
    }
    assert_eq!(a.filtered_calls().len(), 1);
    assert_eq!(a.filtered_logs().len(), 1);
    insta::assert_snapshot!(draw(&a));
    a.handle_event(key(KeyCode::Enter));
    assert_eq!(a.filtered_calls().len(), 1, "enter keeps the filter");
    a.handle_event(key(KeyCode::Esc));
    assert_eq!(a.filtered_calls().len(), 3, "esc clears it");
}

#[test]
fn backoff_and_failure_states_render() {
    let mut a = app();
    let mut s = sample();
    s.connection.state = ConnState::Backoff { retry_at_ms: NOW + 4_000 };
    s.connection.last_error = Some("connection refused".into());
    a.handle_event(AppEvent::Snapshot(Box::new(s.clone())));
    let screen = draw(&a).to_string();
    assert!(screen.contains("retry in 4s") && screen.contains("last error: connection refused"), "{screen}");
    s.connection.state = ConnState::Failed { reason: "the hub refused this agent's token".into() };
    a.handle_event(AppEvent::Snapshot(Box::new(s)));
    let screen = draw(&a).to_string();
    assert!(screen.contains("failed") && screen.contains("refused this agent's token"), "{screen}");
    // Before any snapshot.
    assert!(draw(&App::new("x")).to_string().contains("waiting for the agent"));
}

#[test]
fn keys_quit_and_reconnect() {
    let mut a = app();
    assert_eq!(a.handle_event(key(KeyCode::Char('r'))), Action::Reconnect);
    assert!(draw(&a).to_string().contains("reconnect requested"));
    // Scrolling stays within the list.
    for _ in 0..10 {
        a.handle_event(key(KeyCode::Up));
    }
    assert_eq!(a.scroll[2], 2);
    assert_eq!(a.handle_event(key(KeyCode::Char('q'))), Action::Quit);
}

/// `gateway-agent dashboard` in a real terminal, attached to a control
/// socket this test serves with a fake state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmux_smoke_test() {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("\n*** SKIPPED: tui::tmux_smoke_test: tmux is not installed ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let paths = gateway_agent::paths::Paths {
        config: dir.path().join("config.toml"),
        token: dir.path().join("token"),
        state_dir: dir.path().join("s"),
    };
    let state = gateway_agent::state::AgentState::new("alice-laptop", "https://hub.example.com");
    let snap = sample();
    state.update_connection(|c| *c = snap.connection.clone());
    state.set_servers(snap.servers.clone());
    for c in snap.calls {
        state.record_call(c);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let server = gateway_agent::control::serve(&paths, state, tx).await.unwrap();

    let session = format!("gw-agent-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let o = std::process::Command::new("tmux").args(["-L", &session]).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let script = format!(
        "GATEHOUSE_AGENT_STATE_DIR={} {} dashboard; echo EXITED-$?; stty -a; echo STTY-DONE; sleep 60",
        paths.state_dir.display(),
        crate::support::agent_bin().display()
    );
    tmux(&["new-session", "-d", "-s", &session, "-x", "80", "-y", "24", "sh", "-c", &script]);
    let capture = || tmux(&["capture-pane", "-p", "-t", &session]);
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let screen = capture();
            if screen.contains(what) {
                return screen;
            }
            assert!(std::time::Instant::now() < deadline, "{what:?} never appeared:\n{screen}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let screen = wait_for("obsidian");
    assert!(screen.contains("connected") && screen.contains("fs/read_file"), "{screen}");
    tmux(&["send-keys", "-t", &session, "?"]);
    wait_for("any key closes this help");
    tmux(&["send-keys", "-t", &session, "Escape"]);
    tmux(&["send-keys", "-t", &session, "r"]);
    let cmd = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await.unwrap();
    assert_eq!(cmd, Some(gateway_agent::tunnel::Control::Reconnect), "r reached the agent");
    tmux(&["send-keys", "-t", &session, "q"]);
    let screen = wait_for("STTY-DONE");
    assert!(screen.contains("EXITED-0"), "{screen}");
    // The alternate screen is gone and the terminal is back in cooked mode with echo.
    assert!(!screen.contains("Recent calls"), "{screen}");
    let stty = screen.split_whitespace().collect::<Vec<_>>();
    assert!(stty.contains(&"icanon") && stty.contains(&"echo"), "terminal not restored:\n{screen}");
    tmux(&["kill-server"]);
    server.stop().await;
}
