//! The `gateway-agent` binary end to end against the in-test hub.

use std::process::Stdio;
use std::time::Duration;

use gatehouse_proto::tunnel::Frame;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::config::{Home, stderr, stdout};
use crate::fake_hub::{FakeHub, HubConn, TOKEN};
use crate::support::fixture_server;

fn setup_home(hub: &FakeHub, token: &str) -> Home {
    let home = Home::new();
    let bin = fixture_server("fx").command.unwrap();
    home.write_config(&format!(
        "[agent]\nname = \"alice\"\nhub_url = \"{}\"\n\n# the fixture\n[[servers]]\nname = \"fx\"\ntransport = \"stdio\"\ncommand = '{bin}'\n",
        hub.url().as_str().trim_end_matches('/')
    ));
    let tok = gateway_agent::config::Token::new(token).unwrap();
    gateway_agent::config::write_token(&home.token(), &tok).unwrap();
    home
}

/// Reads frames until one satisfies `f`, answering pings.
async fn until(conn: &mut HubConn, mut f: impl FnMut(&Frame) -> bool) -> Frame {
    loop {
        let frame = conn.recv().await.expect("the agent hung up");
        if let Frame::Ping { nonce } = frame {
            conn.send(&Frame::Pong { nonce }).await;
            continue;
        }
        if f(&frame) {
            return frame;
        }
    }
}

fn ready_with(servers: &[gatehouse_proto::tunnel::ServerInfo], names: &[&str]) -> bool {
    names.iter().all(|n| servers.iter().any(|s| s.name == *n && s.status == "ready" && !s.tools.is_empty())) && servers.len() == names.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_non_interactive_writes_config_and_private_token_and_tests_the_tunnel() {
    let mut hub = FakeHub::start().await;
    let home = Home::new();
    let mut child = tokio::process::Command::from(home.cmd())
        .args(["setup", "--hub", hub.url().as_str(), "--name", "alice", "--non-interactive", "--token-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{TOKEN}\n").as_bytes()).await.unwrap();
    // The probe says hello with no servers.
    let mut conn = hub.next_conn().await;
    let Frame::Hello { agent, servers, .. } = conn.accept_agent().await else { unreachable!() };
    assert_eq!((agent.as_str(), servers.len()), ("alice", 0));
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("accepted agent \"alice\""), "{}", stdout(&out));
    let config = gateway_agent::config::load(&home.config()).unwrap();
    assert_eq!(config.agent.name, "alice");
    assert!(config.agent.hub_url.starts_with("http://127.0.0.1:"));
    assert!(!std::fs::read_to_string(home.config()).unwrap().contains(TOKEN), "no token in the config");
    assert_eq!(gateway_agent::config::read_token(&home.token()).unwrap().expose(), TOKEN);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(home.token()).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A wrong token: the test fails with the distinct exit status.
    let o = home
        .cmd()
        .args(["setup", "--hub", hub.url().as_str(), "--name", "alice", "--non-interactive", "--token", "ga_wrong_0000000"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
    // Bad names and tokens never reach the hub.
    let o = home
        .cmd()
        .args(["setup", "--hub", hub.url().as_str(), "--name", "Bad__Name", "--non-interactive", "--token", TOKEN])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a valid agent name"), "{}", stderr(&o));
    let o = home
        .cmd()
        .args(["setup", "--hub", hub.url().as_str(), "--name", "alice", "--non-interactive", "--token", "gk_user_key_123"])
        .output()
        .unwrap();
    assert!(stderr(&o).contains("starts with \"ga_\""), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_fixture_through_the_hub_reloads_config_and_stops_on_sigterm() {
    let mut hub = FakeHub::start().await;
    let home = setup_home(&hub, TOKEN);
    let child = tokio::process::Command::from(home.cmd())
        .args(["run", "--no-tui"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut conn = hub.next_conn().await;
    let hello = conn.accept_agent().await;
    let Frame::Hello { servers, .. } = hello else { unreachable!() };
    if !ready_with(&servers, &["fx"]) {
        until(&mut conn, |f| matches!(f, Frame::ServersChanged { servers } if ready_with(servers, &["fx"]))).await;
    }

    // A call from the hub reaches the fixture and comes back with the hub's id.
    let call = json!({ "jsonrpc": "2.0", "id": 900, "method": "tools/call", "params": { "name": "echo", "arguments": { "hi": true } } });
    conn.send_raw(json!({ "type": "mcp", "server": "fx", "message": call }).to_string()).await;
    let Frame::Mcp { message, .. } = until(&mut conn, |f| matches!(f, Frame::Mcp { .. })).await else { unreachable!() };
    let msg: serde_json::Value = serde_json::from_str(message.get()).unwrap();
    assert_eq!(msg["id"], 900);
    assert_eq!(msg["result"]["content"][0]["text"], r#"{"hi":true}"#);

    // The control socket answers; `dashboard` without a terminal prints the status.
    let o = home.run(&["dashboard"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("connected") && stdout(&o).contains("fx (stdio): ready"), "{}", stdout(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let sock = home.state().join("agent.sock");
        assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A second agent on the same state directory refuses to start.
    let o = home.run(&["run", "--no-tui"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));

    // Hot reload: a second server appears on the hub.
    let bin = fixture_server("fx").command.unwrap();
    let o = home.run(&["servers", "add", "fx2", "--stdio", &bin]);
    assert!(o.status.success(), "{}", stderr(&o));
    until(&mut conn, |f| matches!(f, Frame::ServersChanged { servers } if ready_with(servers, &["fx", "fx2"]))).await;
    let o = home.run(&["servers", "remove", "fx2"]);
    assert!(o.status.success());
    until(&mut conn, |f| matches!(f, Frame::ServersChanged { servers } if ready_with(servers, &["fx"]))).await;

    // SIGTERM: a clean stop, exit 0, the socket removed.
    #[cfg(unix)]
    {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!home.state().join("agent.sock").exists());
        // The log file has the story and never the token.
        let log = std::fs::read_to_string(home.state().join("agent.log")).unwrap();
        assert!(log.contains("connected to the hub") && log.contains("config changed"), "{log}");
        assert!(!log.contains(TOKEN) && !stderr(&out).contains(TOKEN));
        let o = home.run(&["logs", "-n", "3"]);
        assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_refused_token_exits_3_without_retrying() {
    let mut hub = FakeHub::start().await;
    let home = setup_home(&hub, "ga_not_the_right_one");
    let out = tokio::time::timeout(Duration::from_secs(60), tokio::process::Command::from(home.cmd()).args(["run", "--no-tui"]).output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused this agent's token"), "{err}");
    assert!(!err.contains("ga_not_the_right_one"));
    assert_eq!(hub.refused.recv().await.unwrap(), "bad token");
    assert!(hub.refused.try_recv().is_err(), "one attempt only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_each_check() {
    let hub = FakeHub::start().await;
    let home = setup_home(&hub, TOKEN);
    // The fake hub welcomes every tunnel it accepts.
    let mut hub = hub;
    let welcomer = tokio::spawn(async move {
        loop {
            let mut conn = hub.next_conn().await;
            tokio::spawn(async move {
                conn.accept_agent().await;
                while conn.recv().await.is_some() {}
            });
        }
    });
    let o = tokio::task::spawn_blocking(move || {
        let o = home.run(&["doctor"]);
        (o, home)
    })
    .await
    .unwrap();
    let (o, home) = o;
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for check in ["ok   config", "ok   token", "ok   hub", "ok   tunnel", "ok   server fx: started"] {
        assert!(out.contains(check), "{check:?} missing:\n{out}");
    }
    // A broken server fails its line and the exit status.
    let o = home.run(&["servers", "add", "broken", "--stdio", "/nonexistent/server-binary"]);
    assert!(o.status.success());
    let o = home.run(&["doctor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("FAIL server broken"), "{}", stdout(&o));
    welcomer.abort();
}

#[test]
fn version_prints_the_crate_version() {
    let o = std::process::Command::new(crate::support::agent_bin()).arg("version").output().unwrap();
    assert!(stdout(&o).starts_with(&format!("gateway-agent {}", gateway_agent::VERSION)));
}
