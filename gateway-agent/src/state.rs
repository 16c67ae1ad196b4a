//! What the dashboard shows, in one place: the connection to the hub, the
//! local servers, the last calls and the last log lines.
//!
//! The tunnel, the server manager and the log layer write into
//! [`AgentState`]; the TUI (in-process) and the control socket (for
//! `gateway-agent dashboard`) read [`Snapshot`]s of it and wait for changes
//! through a `watch` channel carrying a change counter.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Calls kept for the dashboard.
pub const MAX_CALLS: usize = 200;
/// Log lines kept for the dashboard.
pub const MAX_LOGS: usize = 500;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// Where the tunnel stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnState {
    /// Dialing or waiting for `welcome`.
    Connecting,
    /// `welcome` received.
    Connected,
    /// Waiting before the next attempt.
    Backoff { retry_at_ms: u64 },
    /// Stopped for good (token refused, fatal error).
    Failed { reason: String },
    /// Shut down on purpose.
    Stopped,
}

impl ConnState {
    /// A short word for the dashboard.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Backoff { .. } => "backoff",
            Self::Failed { .. } => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// The tunnel as the dashboard sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub hub: String,
    pub agent: String,
    pub state: ConnState,
    /// Round-trip time of the last ping.
    pub rtt_ms: Option<u64>,
    /// When the current connection was welcomed.
    pub connected_since_ms: Option<u64>,
    /// Connections the hub welcomed, in total.
    #[serde(default)]
    pub connections: u64,
    /// Connections made after the first one.
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// One local server as the dashboard sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRow {
    pub name: String,
    pub transport: String,
    /// `starting`, `ready`, `degraded` or `down`.
    pub status: String,
    pub tools: usize,
    pub restarts: u64,
    pub last_error: Option<String>,
}

/// One call the hub made to a local server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub at_ms: u64,
    pub server: String,
    pub method: String,
    /// `params.name` of `tools/call` / `prompts/get`, `params.uri` of `resources/read`.
    pub target: Option<String>,
    pub duration_ms: u64,
    pub ok: bool,
    pub error: Option<String>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub at_ms: u64,
    pub level: String,
    pub message: String,
}

/// Everything at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: String,
    pub connection: Connection,
    pub servers: Vec<ServerRow>,
    /// Oldest first.
    pub calls: Vec<CallRecord>,
    /// Oldest first.
    pub logs: Vec<LogLine>,
}

struct Inner {
    connection: Connection,
    servers: Vec<ServerRow>,
    calls: VecDeque<CallRecord>,
    logs: VecDeque<LogLine>,
}

/// The shared, mutable state; cheap to clone.
#[derive(Clone)]
pub struct AgentState {
    inner: Arc<Mutex<Inner>>,
    changes: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentState").finish_non_exhaustive()
    }
}

impl AgentState {
    /// Empty state for agent `agent` dialing `hub`.
    pub fn new(agent: &str, hub: &str) -> Self {
        let connection = Connection {
            hub: hub.to_owned(),
            agent: agent.to_owned(),
            state: ConnState::Connecting,
            rtt_ms: None,
            connected_since_ms: None,
            connections: 0,
            reconnects: 0,
            last_error: None,
        };
        let inner = Inner { connection, servers: Vec::new(), calls: VecDeque::new(), logs: VecDeque::new() };
        Self { inner: Arc::new(Mutex::new(inner)), changes: Arc::new(watch::channel(0).0) }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.inner.lock();
        Snapshot {
            version: crate::VERSION.to_owned(),
            connection: g.connection.clone(),
            servers: g.servers.clone(),
            calls: g.calls.iter().cloned().collect(),
            logs: g.logs.iter().cloned().collect(),
        }
    }

    /// A receiver that sees a new value on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Updates the connection.
    pub fn update_connection(&self, f: impl FnOnce(&mut Connection)) {
        f(&mut self.inner.lock().connection);
        self.changed();
    }

    /// The connection as it is now.
    pub fn connection(&self) -> Connection {
        self.inner.lock().connection.clone()
    }

    /// Replaces the server rows.
    pub fn set_servers(&self, servers: Vec<ServerRow>) {
        let mut g = self.inner.lock();
        if g.servers == servers {
            return;
        }
        g.servers = servers;
        drop(g);
        self.changed();
    }

    /// Records a finished call.
    pub fn record_call(&self, call: CallRecord) {
        let mut g = self.inner.lock();
        if g.calls.len() == MAX_CALLS {
            g.calls.pop_front();
        }
        g.calls.push_back(call);
        drop(g);
        self.changed();
    }

    /// Appends a log line.
    pub fn push_log(&self, line: LogLine) {
        let mut g = self.inner.lock();
        if g.logs.len() == MAX_LOGS {
            g.logs.pop_front();
        }
        g.logs.push_back(line);
        drop(g);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_bounded_and_changes_are_signalled() {
        let s = AgentState::new("a", "https://hub");
        let mut rx = s.subscribe();
        for i in 0..(MAX_CALLS + 5) {
            s.record_call(CallRecord {
                at_ms: i as u64,
                server: "fs".into(),
                method: "tools/call".into(),
                target: None,
                duration_ms: 1,
                ok: true,
                error: None,
            });
        }
        for i in 0..(MAX_LOGS + 1) {
            s.push_log(LogLine { at_ms: i as u64, level: "INFO".into(), message: format!("{i}") });
        }
        let snap = s.snapshot();
        assert_eq!(snap.calls.len(), MAX_CALLS);
        assert_eq!(snap.calls[0].at_ms, 5);
        assert_eq!(snap.logs.len(), MAX_LOGS);
        assert_eq!(snap.logs[0].message, "1");
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        s.set_servers(vec![]);
        assert!(!rx.has_changed().unwrap(), "no change, no signal");
        s.update_connection(|c| c.state = ConnState::Connected);
        assert!(rx.has_changed().unwrap());
        // Snapshots survive a JSON round trip (the control socket's format).
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(back, snap);
    }
}
