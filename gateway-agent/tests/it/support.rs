//! Shared helpers: the fixture MCP server as a local server, a channel-driven
//! tunnel session, waiting with deadlines.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc as fmpsc;
use gatehouse_proto::tunnel::{Frame, ServerInfo};
use gateway_agent::config::{ServerConfig, Transport};
use gateway_agent::paths::ProcessEnv;
use gateway_agent::servers::{ManagerOptions, ServerManager};
use gateway_agent::state::AgentState;
use gateway_agent::tunnel::{Control, SessionCtx, SessionOutcome, SessionSettings, run_session};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The repository's fixture MCP server, run over stdio.
pub fn fixture_server(name: &str) -> ServerConfig {
    let bin = gatehouse_test_support::fixture_bin();
    assert!(bin.is_file(), "{} is missing: run `cargo build -p gatehouse-test-support --bins` first", bin.display());
    ServerConfig {
        name: name.into(),
        transport: Transport::Stdio,
        command: Some(bin.display().to_string()),
        args: vec![],
        env: Default::default(),
        cwd: None,
        url: None,
        headers: Default::default(),
    }
}

/// Waits up to 20 s for `f` to hold, checking on every change of the server list.
pub async fn wait_infos(servers: &ServerManager, f: impl Fn(&[ServerInfo]) -> bool) -> Vec<ServerInfo> {
    let mut rx = servers.watch_infos();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            {
                let infos = rx.borrow_and_update().clone();
                if f(&infos) {
                    return infos;
                }
            }
            rx.changed().await.expect("manager gone");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("servers never reached the expected state: {:?}", servers.infos()))
}

/// A manager running the fixture as `fx`, ready with its tools listed.
pub async fn fixture_manager(state: &AgentState) -> (ServerManager, mpsc::Receiver<gateway_agent::servers::ServerEvent>) {
    let (servers, events) = ServerManager::new(state.clone(), Arc::new(ProcessEnv), ManagerOptions::default());
    servers.apply(&[fixture_server("fx")]).await;
    wait_infos(&servers, |i| i.len() == 1 && i[0].status == "ready" && !i[0].tools.is_empty()).await;
    (servers, events)
}

/// One tunnel session driven through channels: the test plays the hub.
pub struct Harness {
    pub to_agent: fmpsc::UnboundedSender<Result<Message, String>>,
    pub from_agent: fmpsc::UnboundedReceiver<Message>,
    pub control: mpsc::Sender<Control>,
    pub state: AgentState,
    pub task: tokio::task::JoinHandle<SessionOutcome>,
}

impl Harness {
    /// Starts a session for agent `alice` over channels.
    pub fn start(
        servers: ServerManager,
        events: mpsc::Receiver<gateway_agent::servers::ServerEvent>,
        state: AgentState,
        settings: SessionSettings,
    ) -> Self {
        let (to_agent, agent_rx) = fmpsc::unbounded::<Result<Message, String>>();
        let (agent_tx, from_agent) = fmpsc::unbounded::<Message>();
        let (control, mut control_rx) = mpsc::channel(4);
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut events = events;
            let ctx = SessionCtx { settings: &settings, servers: &servers, events: &mut events, control: &mut control_rx, state: &st };
            run_session(agent_tx, agent_rx, ctx).await
        });
        Self { to_agent, from_agent, control, state, task }
    }

    /// Sends a frame as the hub.
    pub fn send(&self, frame: &Frame) {
        self.to_agent.unbounded_send(Ok(Message::text(frame.encode()))).unwrap();
    }

    /// Sends an MCP message (JSON) for `server` as the hub.
    pub fn send_mcp(&self, server: &str, msg: Value) {
        let text = serde_json::json!({ "type": "mcp", "server": server, "message": msg }).to_string();
        self.to_agent.unbounded_send(Ok(Message::text(text))).unwrap();
    }

    /// The next frame the agent sends (20 s at most).
    pub async fn recv(&mut self) -> Frame {
        let msg = tokio::time::timeout(Duration::from_secs(120), self.from_agent.next())
            .await
            .expect("no frame from the agent within 120 s")
            .expect("the agent closed the channel");
        match msg {
            Message::Text(t) => Frame::decode(t.as_str()).unwrap(),
            other => panic!("unexpected message {other:?}"),
        }
    }

    /// The next `mcp` frame's server and message, skipping pings and servers_changed.
    pub async fn recv_mcp(&mut self) -> (String, Value) {
        loop {
            match self.recv().await {
                Frame::Mcp { server, message } => return (server, serde_json::from_str(message.get()).unwrap()),
                Frame::Ping { nonce } => self.send(&Frame::Pong { nonce }),
                _ => {}
            }
        }
    }

    /// Reads frames until the response with `id` arrives; returns it and the mcp messages seen before it.
    pub async fn response(&mut self, id: Value) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let (_, msg) = self.recv_mcp().await;
            if msg.get("method").is_none() && msg["id"] == id {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    /// Does the hello/welcome exchange; returns the hello.
    pub async fn handshake(&mut self) -> Frame {
        let hello = self.recv().await;
        assert_eq!(hello.kind(), "hello");
        self.send(&Frame::Welcome { hub_version: "test".into(), ping_interval_secs: 20, dead_after_secs: 50 });
        hello
    }
}

/// Polls `f` every 20 ms for up to 20 s.
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent binary built for these tests.
pub fn agent_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_gateway-agent"))
}
