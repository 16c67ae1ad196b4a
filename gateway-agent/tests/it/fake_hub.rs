//! The agent against an in-test hub: a tokio-tungstenite server on
//! 127.0.0.1:0 that checks the bearer token and the subprotocol before
//! upgrading, like the real hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gatehouse_proto::tunnel::{Frame, SUBPROTOCOL};
use gateway_agent::config::Token;
use gateway_agent::paths::ProcessEnv;
use gateway_agent::servers::{ManagerOptions, ServerManager};
use gateway_agent::state::{AgentState, ConnState};
use gateway_agent::tunnel::{BackoffSettings, Control, RunCtx, SessionSettings, TunnelExit, WsConnector, run};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

pub const TOKEN: &str = "ga_test_token_0123456789";

/// An accepted tunnel connection.
pub struct HubConn {
    pub ws: WebSocketStream<TcpStream>,
}

impl HubConn {
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), self.ws.next()).await.expect("no frame within 20 s")? {
                Ok(Message::Text(t)) => return Some(Frame::decode(t.as_str()).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn send(&mut self, f: &Frame) {
        self.ws.send(Message::text(f.encode())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Reads hello, answers welcome.
    pub async fn accept_agent(&mut self) -> Frame {
        let hello = self.recv().await.expect("hello");
        assert_eq!(hello.kind(), "hello");
        self.send(&Frame::Welcome { hub_version: "fake".into(), ping_interval_secs: 20, dead_after_secs: 50 }).await;
        hello
    }
}

/// A fake hub listening on `addr`; accepted connections arrive on `conns`,
/// refused ones are counted in `refused`.
pub struct FakeHub {
    pub addr: SocketAddr,
    pub conns: mpsc::Receiver<HubConn>,
    pub refused: mpsc::Receiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHub {
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    pub fn start_on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::channel(8);
        let (refused_tx, refused) = mpsc::channel(8);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let tx = tx.clone();
                let refused_tx = refused_tx.clone();
                tokio::spawn(async move {
                    // The health probe shares the port, as on the real hub.
                    let mut head = [0u8; 64];
                    let n = sock.peek(&mut head).await.unwrap_or(0);
                    if head[..n].starts_with(b"GET /health/live ") {
                        use tokio::io::AsyncWriteExt;
                        let mut sock = sock;
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                        return;
                    }
                    let why = Arc::new(parking_lot::Mutex::new(None::<String>));
                    let why2 = Arc::clone(&why);
                    let check = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
                        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                        let proto = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default();
                        let fail = |status: StatusCode, msg: &str| {
                            *why2.lock() = Some(msg.to_owned());
                            let mut r = ErrorResponse::new(Some(msg.to_owned()));
                            *r.status_mut() = status;
                            Err(r)
                        };
                        if req.uri().path() != "/agent/ws" {
                            return fail(StatusCode::NOT_FOUND, "wrong path");
                        }
                        if auth != format!("Bearer {TOKEN}") {
                            return fail(StatusCode::UNAUTHORIZED, "bad token");
                        }
                        if !proto.split(',').any(|p| p.trim() == SUBPROTOCOL) {
                            return fail(StatusCode::BAD_REQUEST, "bad subprotocol");
                        }
                        resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
                        Ok(resp)
                    };
                    match tokio_tungstenite::accept_hdr_async(sock, check).await {
                        Ok(ws) => {
                            let _ = tx.send(HubConn { ws }).await;
                        }
                        Err(_) => {
                            let why = why.lock().clone().unwrap_or_default();
                            let _ = refused_tx.send(why).await;
                        }
                    }
                });
            }
        });
        Self { addr, conns, refused, task }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    pub async fn next_conn(&mut self) -> HubConn {
        tokio::time::timeout(Duration::from_secs(20), self.conns.recv()).await.expect("no connection within 20 s").unwrap()
    }

    /// Stops listening (connections already handed out stay with their owners).
    pub fn stop(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

struct Agent {
    state: AgentState,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<TunnelExit>,
}

fn start_agent(hub: url::Url, token: &str, backoff: BackoffSettings) -> Agent {
    let state = AgentState::new("alice", hub.as_str());
    let (control, mut control_rx) = mpsc::channel(4);
    let st = state.clone();
    let connector = WsConnector::new(&hub, Token::new(token).unwrap(), false).unwrap();
    let task = tokio::spawn(async move {
        let (servers, mut events) = ServerManager::new(st.clone(), Arc::new(ProcessEnv), ManagerOptions::default());
        let ctx = RunCtx {
            settings: SessionSettings::new("alice"),
            backoff,
            servers: &servers,
            events: &mut events,
            control: &mut control_rx,
            state: &st,
        };
        run(&connector, ctx).await
    });
    Agent { state, control, task }
}

fn fast_backoff() -> BackoffSettings {
    BackoffSettings { base: Duration::from_millis(20), cap: Duration::from_millis(200), reset_after: Duration::from_secs(30) }
}

#[tokio::test]
async fn the_agent_connects_with_its_token_and_a_wrong_token_is_refused_for_good() {
    let mut hub = FakeHub::start().await;
    let agent = start_agent(hub.url(), TOKEN, fast_backoff());
    let mut conn = hub.next_conn().await;
    let Frame::Hello { agent: name, .. } = conn.accept_agent().await else { unreachable!() };
    assert_eq!(name, "alice");
    crate::support::eventually("connected", || (agent.state.connection().state == ConnState::Connected).then_some(())).await;

    // A second agent with the wrong token: refused at the upgrade, no retry, exit status 3.
    let wrong = start_agent(hub.url(), "ga_wrong_token_99999", fast_backoff());
    let exit = tokio::time::timeout(Duration::from_secs(20), wrong.task).await.unwrap().unwrap();
    assert!(matches!(&exit, TunnelExit::TokenRefused(why) if why.contains("401")), "{exit:?}");
    assert_eq!(exit.exit_code(), 3);
    assert!(exit.message().contains("refused this agent's token"), "{}", exit.message());
    assert!(!exit.message().contains("ga_wrong"), "the token is never echoed");
    assert_eq!(hub.refused.recv().await.unwrap(), "bad token");
    assert!(hub.refused.try_recv().is_err(), "exactly one attempt");
    assert!(matches!(wrong.state.connection().state, ConnState::Failed { .. }));

    // The first agent is unaffected.
    conn.send(&Frame::Ping { nonce: 5 }).await;
    assert!(matches!(conn.recv().await, Some(Frame::Pong { nonce: 5 })));
    agent.control.send(Control::Shutdown).await.unwrap();
    assert_eq!(agent.task.await.unwrap(), TunnelExit::Shutdown);
}

#[tokio::test]
async fn the_agent_reconnects_when_the_hub_comes_back() {
    let mut hub = FakeHub::start().await;
    let agent = start_agent(hub.url(), TOKEN, fast_backoff());
    let mut conn = hub.next_conn().await;
    conn.accept_agent().await;
    crate::support::eventually("connected", || (agent.state.connection().state == ConnState::Connected).then_some(())).await;

    // The hub goes away: listener and connection.
    let addr = hub.stop();
    drop(conn);
    crate::support::eventually("the agent to notice", || (agent.state.connection().state != ConnState::Connected).then_some(())).await;

    // ... and comes back on the same address.
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut hub = FakeHub::start_on(listener);
    let mut conn = hub.next_conn().await;
    conn.accept_agent().await;
    crate::support::eventually("reconnected", || {
        let c = agent.state.connection();
        (c.state == ConnState::Connected && c.reconnects == 1).then_some(())
    })
    .await;
    agent.control.send(Control::Shutdown).await.unwrap();
    assert_eq!(agent.task.await.unwrap(), TunnelExit::Shutdown);
    // A clean shutdown says goodbye with a close frame.
    assert!(conn.recv().await.is_none());
}

#[tokio::test]
async fn a_hub_without_the_subprotocol_is_a_version_error() {
    // A plain WebSocket server that does not echo the subprotocol.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tokio_tungstenite::accept_async(sock).await;
            });
        }
    });
    let agent = start_agent(url::Url::parse(&format!("http://{addr}")).unwrap(), TOKEN, fast_backoff());
    let exit = tokio::time::timeout(Duration::from_secs(20), agent.task).await.unwrap().unwrap();
    assert!(matches!(&exit, TunnelExit::Fatal { code, .. } if code == "version"), "{exit:?}");
    assert_eq!(exit.exit_code(), gateway_agent::exit::FATAL);
}
