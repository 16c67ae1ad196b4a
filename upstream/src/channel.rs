//! Channel transport: JSON-RPC messages as text over in-process channels,
//! for servers the embedding program reaches some other way (the hub reaches
//! an agent's local servers through the agent's tunnel).
//!
//! The program supplies a [`Connector`]; each connection attempt asks it for
//! a fresh [`ChannelPair`]. When the incoming side ends, the connection is
//! down with the pair's `close_reason`, and every call in flight fails at once.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::CallError;
use crate::conn::{Conn, Outgoing};

/// Opens message channels to one server.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// A new pair of channels, or why the server cannot be reached now.
    fn connect(&self) -> Result<ChannelPair, String>;
}

/// The two directions of one channel connection.
#[derive(Debug)]
pub struct ChannelPair {
    /// Messages to the server, one JSON text each.
    pub outgoing: mpsc::UnboundedSender<String>,
    /// Messages from the server; the connection is down when this ends.
    pub incoming: mpsc::Receiver<String>,
    /// What calls in flight are told when `incoming` ends, e.g. "the agent disconnected".
    pub close_reason: String,
}

pub(crate) struct ChannelLink {
    tx: mpsc::UnboundedSender<String>,
    reader: JoinHandle<()>,
}

pub(crate) fn connect(conn: &Arc<Conn>, connector: &dyn Connector) -> Result<ChannelLink, String> {
    let pair = connector.connect()?;
    let reader_conn = Arc::clone(conn);
    let mut incoming = pair.incoming;
    let reason = pair.close_reason;
    let reader = tokio::spawn(async move {
        while let Some(text) = incoming.recv().await {
            reader_conn.route_text(&text, None);
        }
        reader_conn.fail(reason);
    });
    Ok(ChannelLink { tx: pair.outgoing, reader })
}

impl ChannelLink {
    pub(crate) fn send(&self, msg: Outgoing) -> Result<(), CallError> {
        let body = match msg {
            Outgoing::Request { body, .. } | Outgoing::Oneway { body } => body,
        };
        self.tx.send(body).map_err(|_| CallError::Unavailable("the channel to the server is closed".into()))
    }

    pub(crate) async fn close(&self) {
        self.reader.abort();
    }
}
