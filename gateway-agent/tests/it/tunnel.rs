//! The tunnel core driven through channels: the test plays the hub, a real
//! fixture MCP server runs as the local server.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use gatehouse_proto::tunnel::Frame;
use gateway_agent::paths::ProcessEnv;
use gateway_agent::servers::{ManagerOptions, ServerManager};
use gateway_agent::state::{AgentState, ConnState};
use gateway_agent::tunnel::{
    BackoffSettings, BoxSink, BoxStream, ConnectError, Connector, Control, RunCtx, SessionEnd, SessionSettings, TunnelExit, run,
};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{Harness, eventually, fixture_manager};

async fn fixture_session() -> Harness {
    let state = AgentState::new("alice", "http://hub.test");
    let (servers, events) = fixture_manager(&state).await;
    Harness::start(servers, events, state, SessionSettings::new("alice"))
}

#[tokio::test]
async fn hello_carries_the_servers_and_welcome_connects() {
    let mut h = fixture_session().await;
    let Frame::Hello { agent, version, platform, servers } = h.handshake().await else { unreachable!() };
    assert_eq!(agent, "alice");
    assert_eq!(version, gateway_agent::VERSION);
    assert!(platform.contains('-'), "{platform}");
    assert_eq!(servers.len(), 1);
    let fx = &servers[0];
    assert_eq!((fx.name.as_str(), fx.transport.as_str(), fx.status.as_str()), ("fx", "stdio", "ready"));
    assert!(fx.tools.iter().any(|t| t["name"] == "echo"), "{:?}", fx.tools);
    assert!(!fx.prompts.is_empty() && !fx.resources.is_empty(), "every catalog is listed");
    assert!(fx.initialize.as_ref().unwrap()["serverInfo"]["name"].as_str().is_some());
    eventually("connected", || (h.state.connection().state == ConnState::Connected).then_some(())).await;
    h.control.send(Control::Shutdown).await.unwrap();
    assert_eq!(h.task.await.unwrap().end, SessionEnd::Shutdown);
}

#[tokio::test]
async fn a_hub_call_reaches_the_local_server_and_comes_back_with_the_hubs_id() {
    let mut h = fixture_session().await;
    h.handshake().await;
    h.send_mcp(
        "fx",
        json!({ "jsonrpc": "2.0", "id": "hub-77", "method": "tools/call", "params": { "name": "echo", "arguments": { "x": 1 }, "_meta": { "vendor/k": [1, 2] } } }),
    );
    let (resp, _) = h.response(json!("hub-77")).await;
    assert_eq!(resp["result"]["content"][0]["text"], r#"{"x":1}"#, "{resp}");

    // Unknown servers and bad messages are answered, not dropped.
    h.send_mcp("nope", json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }));
    let (resp, _) = h.response(json!(1)).await;
    assert_eq!(resp["error"]["code"], gatehouse_proto::mcp::code::UPSTREAM_UNAVAILABLE);
    h.send_mcp("fx", json!({ "jsonrpc": "1.0", "id": 2, "method": "x" }));
    let (resp, _) = h.response(json!(2)).await;
    assert_eq!(resp["error"]["code"], gatehouse_proto::mcp::code::INVALID_REQUEST);

    // JSON-RPC errors of the server come back as they are.
    h.send_mcp("fx", json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "no_such_tool" } }));
    let (resp, _) = h.response(json!(3)).await;
    assert_eq!(resp["error"]["code"], gatehouse_proto::mcp::code::INVALID_PARAMS, "{resp}");

    // The dashboard saw the calls.
    let calls = h.state.snapshot().calls;
    let echo = calls.iter().find(|c| c.target.as_deref() == Some("echo")).expect("echo recorded");
    assert!(echo.ok && echo.server == "fx" && echo.method == "tools/call");
    assert!(calls.iter().any(|c| c.target.as_deref() == Some("no_such_tool") && !c.ok));
}

#[tokio::test]
async fn progress_reaches_the_hub_before_the_answer_and_sampling_round_trips() {
    let mut h = fixture_session().await;
    h.handshake().await;
    h.send_mcp(
        "fx",
        json!({ "jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": { "name": "sleep", "arguments": { "ms": 250 }, "_meta": { "progressToken": "p-1" } } }),
    );
    let (resp, before) = h.response(json!(10)).await;
    assert_eq!(resp["result"]["content"][0]["text"], "slept 250 ms");
    let progress: Vec<_> = before.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert!(progress.len() >= 2, "{before:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p-1"));

    // A sampling request of the server reaches the hub under an agent id ...
    h.send_mcp("fx", json!({ "jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": { "name": "test_sampling", "arguments": { "prompt": "2+2?" } } }));
    let (server, req) = h.recv_mcp().await;
    assert_eq!(server, "fx");
    assert_eq!(req["method"], "sampling/createMessage", "{req}");
    assert_eq!(req["params"]["messages"][0]["content"]["text"], "2+2?");
    let agent_id = req["id"].clone();
    assert!(agent_id.is_i64(), "agent-numbered: {agent_id}");
    // ... and the hub's answer reaches the server.
    h.send_mcp(
        "fx",
        json!({ "jsonrpc": "2.0", "id": agent_id, "result": { "role": "assistant", "content": { "type": "text", "text": "four" }, "model": "m" } }),
    );
    let (resp, _) = h.response(json!(11)).await;
    assert_eq!(resp["result"]["content"][0]["text"], "LLM response: four", "{resp}");
}

#[tokio::test]
async fn cancelled_from_the_hub_stops_the_local_call() {
    let mut h = fixture_session().await;
    h.handshake().await;
    h.send_mcp(
        "fx",
        json!({ "jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": { "name": "sleep", "arguments": { "ms": 30000 }, "_meta": { "progressToken": "c" } } }),
    );
    // The server is working on it once it reports progress.
    let (_, first) = h.recv_mcp().await;
    assert_eq!(first["method"], "notifications/progress", "{first}");
    let st = h.state.clone();
    h.send_mcp("fx", json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 20, "reason": "user" } }));
    let call =
        eventually("the cancelled call to finish", || st.snapshot().calls.into_iter().find(|c| c.target.as_deref() == Some("sleep"))).await;
    assert!(!call.ok, "{call:?}");
    assert!(call.duration_ms < 10_000, "stopped early: {call:?}");
    assert!(call.error.as_deref().unwrap_or_default().contains("cancel"), "{call:?}");
    // No answer goes out for the cancelled request; the next call still works.
    h.send_mcp("fx", json!({ "jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": { "name": "echo", "arguments": {} } }));
    let (resp, before) = h.response(json!(21)).await;
    assert!(resp["result"].is_object());
    assert!(before.iter().all(|m| m["id"] != json!(20)), "no answer for the cancelled call: {before:?}");
}

#[tokio::test]
async fn dropping_the_tunnel_cancels_local_calls() {
    let mut h = fixture_session().await;
    h.handshake().await;
    h.send_mcp(
        "fx",
        json!({ "jsonrpc": "2.0", "id": 30, "method": "tools/call", "params": { "name": "sleep", "arguments": { "ms": 30000 } } }),
    );
    // The hub end goes away.
    h.to_agent.close_channel();
    let out = tokio::time::timeout(Duration::from_secs(10), &mut h.task).await.unwrap().unwrap();
    assert!(matches!(out.end, SessionEnd::Closed(_)), "{:?}", out.end);
    let st = h.state.clone();
    let call =
        eventually("the abandoned call to finish", || st.snapshot().calls.into_iter().find(|c| c.target.as_deref() == Some("sleep"))).await;
    assert!(!call.ok && call.duration_ms < 10_000, "{call:?}");
}

fn empty_manager(state: &AgentState) -> (ServerManager, mpsc::Receiver<gateway_agent::servers::ServerEvent>) {
    ServerManager::new(state.clone(), Arc::new(ProcessEnv), ManagerOptions::default())
}

#[tokio::test(start_paused = true)]
async fn pings_when_quiet_and_a_silent_hub_is_dead_after_the_timeout() {
    let state = AgentState::new("alice", "http://hub.test");
    let (servers, events) = empty_manager(&state);
    let mut h = Harness::start(servers, events, state, SessionSettings::new("alice"));
    h.recv().await;
    h.send(&Frame::Welcome { hub_version: "t".into(), ping_interval_secs: 20, dead_after_secs: 50 });
    let start = Instant::now();
    // Answer two pings: the link stays up.
    for _ in 0..2 {
        let Frame::Ping { nonce } = h.recv().await else { panic!("expected a ping") };
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(20), "{waited:?}");
        h.send(&Frame::Pong { nonce });
    }
    let last_pong = Instant::now();
    // Then go silent: pings continue, and 50 s after the last frame the link is dead.
    let out = (&mut h.task).await.unwrap();
    assert_eq!(out.end, SessionEnd::Dead);
    let silent = last_pong.elapsed();
    assert!(silent >= Duration::from_secs(50) && silent < Duration::from_secs(51), "{silent:?}");
    assert!(h.state.connection().rtt_ms.is_some(), "pongs measure the round trip");
}

#[tokio::test(start_paused = true)]
async fn welcome_must_come_in_time() {
    let state = AgentState::new("alice", "http://hub.test");
    let (servers, events) = empty_manager(&state);
    let mut h = Harness::start(servers, events, state, SessionSettings::new("alice"));
    h.recv().await;
    let out = (&mut h.task).await.unwrap();
    assert!(matches!(out.end, SessionEnd::HandshakeFailed(_)), "{:?}", out.end);
    assert!(out.welcomed_at.is_none());
}

/// What the agent sends, as the fake hub reads it.
type HubRx = futures::channel::mpsc::UnboundedReceiver<Message>;
/// What the fake hub sends to the agent.
type HubTx = futures::channel::mpsc::UnboundedSender<Result<Message, tungstenite::Error>>;
/// Plays the hub for the n-th connection (from 1), or refuses to connect.
type HubScript = dyn Fn(usize, HubRx, HubTx) -> Result<(), ConnectError> + Send + Sync;

/// A connector handing out channel pairs; each "hub" is run by `hub`.
struct ChannelConnector {
    attempts: Arc<Mutex<Vec<Instant>>>,
    hub: Box<HubScript>,
}

impl Connector for ChannelConnector {
    fn connect(&self) -> BoxFuture<'_, Result<(BoxSink, BoxStream), ConnectError>> {
        Box::pin(async move {
            let n = {
                let mut a = self.attempts.lock();
                a.push(Instant::now());
                a.len()
            };
            let (agent_tx, hub_rx) = futures::channel::mpsc::unbounded::<Message>();
            let (hub_tx, agent_rx) = futures::channel::mpsc::unbounded::<Result<Message, tungstenite::Error>>();
            (self.hub)(n, hub_rx, hub_tx)?;
            let sink: BoxSink = Box::pin(agent_tx.sink_map_err(|_| tungstenite::Error::ConnectionClosed));
            let stream: BoxStream = Box::pin(agent_rx);
            Ok((sink, stream))
        })
    }
}

fn ctx<'a>(
    servers: &'a ServerManager,
    events: &'a mut mpsc::Receiver<gateway_agent::servers::ServerEvent>,
    control: &'a mut mpsc::Receiver<Control>,
    state: &'a AgentState,
    backoff: BackoffSettings,
) -> RunCtx<'a> {
    RunCtx { settings: SessionSettings::new("alice"), backoff, servers, events, control, state }
}

#[tokio::test(start_paused = true)]
async fn reconnect_delays_are_full_jitter_within_the_exponential_bounds() {
    let state = AgentState::new("alice", "http://hub.test");
    let (servers, mut events) = empty_manager(&state);
    let (control_tx, mut control) = mpsc::channel(4);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let connector = ChannelConnector {
        attempts: Arc::clone(&attempts),
        hub: Box::new(move |n, _, _| {
            if n == 12 {
                let _ = control_tx.try_send(Control::Shutdown);
            }
            Err(ConnectError::Transport("connection refused".into()))
        }),
    };
    let exit = run(&connector, ctx(&servers, &mut events, &mut control, &state, BackoffSettings::default())).await;
    assert_eq!(exit, TunnelExit::Shutdown);
    let at = attempts.lock().clone();
    assert_eq!(at.len(), 12);
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let ceiling = Duration::from_millis(500 * (1u64 << i.min(10))).min(Duration::from_secs(60));
        assert!(*gap <= ceiling, "attempt {i}: waited {gap:?} > {ceiling:?}");
    }
    // Full jitter: the waits are not simply the ceilings.
    let at_ceiling = gaps
        .iter()
        .enumerate()
        .filter(|(i, g)| **g == Duration::from_millis(500 * (1u64 << (*i).min(10))).min(Duration::from_secs(60)))
        .count();
    assert!(at_ceiling < gaps.len() / 2, "{gaps:?}");
    assert!(gaps.iter().collect::<std::collections::BTreeSet<_>>().len() > gaps.len() / 2, "jittered: {gaps:?}");
    assert_eq!(state.connection().state, ConnState::Stopped);
}

fn scripted_hub(reply: Frame) -> impl Fn(usize, HubRx, HubTx) -> Result<(), ConnectError> + Send + Sync {
    move |_, mut rx, tx| {
        let reply = reply.clone();
        tokio::spawn(async move {
            let _hello = rx.next().await;
            let _ = tx.unbounded_send(Ok(Message::text(reply.encode())));
            // Keep the channels open until the agent hangs up.
            while rx.next().await.is_some() {}
        });
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_frame_stops_reconnecting_with_a_distinct_status() {
    for (code, fatal, want_exit) in [("name_conflict", true, 4u8), ("unauthorized", true, 3u8), ("revoked", false, 3u8)] {
        let state = AgentState::new("alice", "http://hub.test");
        let (servers, mut events) = empty_manager(&state);
        let (_control_tx, mut control) = mpsc::channel(4);
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let frame = Frame::Error { code: code.into(), message: "no".into(), fatal };
        let connector = ChannelConnector { attempts: Arc::clone(&attempts), hub: Box::new(scripted_hub(frame)) };
        let exit = run(&connector, ctx(&servers, &mut events, &mut control, &state, BackoffSettings::default())).await;
        assert_eq!(exit.exit_code(), want_exit, "{code}: {exit:?}");
        assert_eq!(attempts.lock().len(), 1, "{code}: no retry");
        assert!(matches!(state.connection().state, ConnState::Failed { .. }));
    }
}

#[tokio::test(start_paused = true)]
async fn a_401_at_the_upgrade_is_final_and_transport_errors_are_retried() {
    let state = AgentState::new("alice", "http://hub.test");
    let (servers, mut events) = empty_manager(&state);
    let (_control_tx, mut control) = mpsc::channel(4);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let connector = ChannelConnector {
        attempts: Arc::clone(&attempts),
        hub: Box::new(|n, _, _| {
            Err(if n < 3 { ConnectError::Transport("reset".into()) } else { ConnectError::Unauthorized { status: 401 } })
        }),
    };
    let exit = run(&connector, ctx(&servers, &mut events, &mut control, &state, BackoffSettings::default())).await;
    assert!(matches!(exit, TunnelExit::TokenRefused(_)), "{exit:?}");
    assert_eq!(exit.exit_code(), gateway_agent::exit::TOKEN_REFUSED);
    assert_eq!(attempts.lock().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn drain_reconnects_after_the_hubs_pause_and_reconnect_is_immediate() {
    let state = AgentState::new("alice", "http://hub.test");
    let (servers, mut events) = empty_manager(&state);
    let (control_tx, mut control) = mpsc::channel(4);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let ctl = control_tx.clone();
    let connector = ChannelConnector {
        attempts: Arc::clone(&attempts),
        hub: Box::new(move |n, mut rx, tx| {
            let ctl = ctl.clone();
            tokio::spawn(async move {
                let _hello = rx.next().await;
                let _ = tx.unbounded_send(Ok(Message::text(
                    Frame::Welcome { hub_version: "t".into(), ping_interval_secs: 20, dead_after_secs: 50 }.encode(),
                )));
                // A ping answered means the agent has processed the welcome.
                let _ = tx.unbounded_send(Ok(Message::text(Frame::Ping { nonce: 9 }.encode())));
                while let Some(m) = rx.next().await {
                    if m.to_text().is_ok_and(|t| t.contains("pong")) {
                        break;
                    }
                }
                match n {
                    1 => {
                        let _ = tx.unbounded_send(Ok(Message::text(Frame::Drain { reconnect_after_ms: 7000 }.encode())));
                    }
                    2 => {
                        let _ = ctl.send(Control::Reconnect).await;
                    }
                    _ => {
                        let _ = ctl.send(Control::Shutdown).await;
                    }
                }
                while rx.next().await.is_some() {}
            });
            Ok(())
        }),
    };
    let exit = run(&connector, ctx(&servers, &mut events, &mut control, &state, BackoffSettings::default())).await;
    assert_eq!(exit, TunnelExit::Shutdown);
    let at = attempts.lock().clone();
    assert_eq!(at.len(), 3);
    let drain_gap = at[1] - at[0];
    assert!(drain_gap >= Duration::from_secs(7) && drain_gap < Duration::from_secs(8), "{drain_gap:?}");
    assert!(at[2] - at[1] < Duration::from_millis(100), "reconnect is immediate: {:?}", at[2] - at[1]);
    assert_eq!(state.connection().reconnects, 2);
}
