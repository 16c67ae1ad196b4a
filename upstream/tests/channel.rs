//! The channel transport: a server reached over in-process channels, as the
//! hub reaches an agent's servers through its tunnel.

mod common;

use std::sync::Arc;

use gatehouse_upstream::{CallError, CallOptions, ChannelPair, Connector, Health, TransportSpec, Upstream};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use common::*;

/// Hands out one pair per `attach`, then refuses until the next one.
#[derive(Debug, Default)]
struct Switchboard {
    next: Mutex<Option<ChannelPair>>,
}

impl Connector for Switchboard {
    fn connect(&self) -> Result<ChannelPair, String> {
        self.next.lock().take().ok_or_else(|| "the agent is offline".to_owned())
    }
}

/// The far end of a pair: what the "server" receives and how it answers.
struct Far {
    from_client: mpsc::UnboundedReceiver<String>,
    to_client: mpsc::Sender<String>,
}

fn attach(board: &Switchboard) -> Far {
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::channel(16);
    *board.next.lock() = Some(ChannelPair { outgoing: out_tx, incoming: in_rx, close_reason: "the agent disconnected".into() });
    Far { from_client: out_rx, to_client: in_tx }
}

impl Far {
    async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.from_client.recv().await.expect("a message")).unwrap()
    }

    async fn answer(&self, id: &Value, result: Value) {
        self.to_client.send(json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()).await.unwrap();
    }

    /// Serves the handshake.
    async fn handshake(&mut self) {
        let init = self.recv().await;
        assert_eq!(init["method"], "initialize");
        self.answer(
            &init["id"],
            json!({ "protocolVersion": "2025-06-18", "capabilities": { "tools": {} }, "serverInfo": { "name": "far", "version": "1" } }),
        )
        .await;
        assert_eq!(self.recv().await["method"], "notifications/initialized");
    }
}

#[tokio::test]
async fn calls_cross_the_channel_and_fail_at_once_when_it_closes() {
    let board = Arc::new(Switchboard::default());
    let mut far = attach(&board);
    let (tx, _rx) = events();
    let up = Upstream::start(spec("laptop__fs", TransportSpec::Channel(board.clone())), identity(), tx);
    far.handshake().await;
    up.wait_ready(std::time::Duration::from_secs(10)).await.unwrap();

    let call = {
        let up = up.clone();
        tokio::spawn(async move { up.request("tools/call", Some(raw(r#"{"name":"read"}"#)), CallOptions::default()).await })
    };
    let req = far.recv().await;
    assert_eq!(req["method"], "tools/call");
    far.answer(&req["id"], json!({ "content": [] })).await;
    assert_eq!(json(&call.await.unwrap().unwrap()), json!({ "content": [] }));

    // A call in flight when the far end goes away fails now, with the reason.
    let call = {
        let up = up.clone();
        tokio::spawn(async move { up.request("tools/call", Some(raw(r#"{"name":"slow"}"#)), CallOptions::default()).await })
    };
    let _ = far.recv().await;
    drop(far);
    match call.await.unwrap() {
        Err(CallError::Unavailable(reason)) => assert!(reason.contains("agent disconnected"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // While nobody is attached the upstream is unhealthy and says why.
    let status = eventually(|| {
        let s = up.status();
        (s.health != Health::Ready && s.last_error.as_deref().is_some_and(|e| e.contains("offline") || e.contains("disconnected")))
            .then_some(s)
    })
    .await;
    assert!(status.init.is_none() || status.health != Health::Ready);
    up.shutdown().await;
}
