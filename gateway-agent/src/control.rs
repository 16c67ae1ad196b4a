//! The control channel of a running agent: a Unix socket (mode 0600 in the
//! private state directory) speaking line-delimited JSON. On Windows, where
//! the agent cannot rely on Unix sockets, it is a loopback TCP port written
//! with a random cookie to a 0600 file; the client sends the cookie first.
//!
//! Requests, one JSON object per line:
//!
//! | request | answer |
//! |---|---|
//! | `{"cmd":"status"}` | `{"ok":true,"snapshot":{...}}` |
//! | `{"cmd":"subscribe"}` | one `{"ok":true,"snapshot":{...}}` line now and after every change (at most 10 a second) |
//! | `{"cmd":"reconnect"}` | `{"ok":true}`; the tunnel reconnects at once |
//! | `{"cmd":"logs","lines":N}` | `{"ok":true,"logs":[...]}` (the last N in-memory lines) |
//!
//! Anything else gets `{"ok":false,"error":"..."}`.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::paths::Paths;
use crate::state::{AgentState, LogLine, Snapshot};
use crate::tunnel::Control;

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;
/// Least time between two snapshots on a subscription.
const SUBSCRIBE_INTERVAL: Duration = Duration::from_millis(100);

/// A request on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    Subscribe,
    Reconnect,
    Logs {
        #[serde(default)]
        lines: Option<usize>,
    },
}

/// An answer on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ControlReply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<LogLine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ControlReply {
    fn error(msg: impl Into<String>) -> Self {
        Self { ok: false, error: Some(msg.into()), ..Self::default() }
    }
}

/// Problems with the control channel.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no agent is running (nothing answers at {path}): start one with `gateway-agent run` or `gateway-agent service start`")]
    NotRunning { path: PathBuf },
    #[error("another agent is already running (its control socket is {path})")]
    AlreadyRunning { path: PathBuf },
    #[error("control channel: {0}")]
    Io(#[from] io::Error),
    #[error("control channel: bad answer: {0}")]
    Protocol(String),
    #[error("the agent refused: {0}")]
    Refused(String),
}

type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// A running control server; dropping it does not stop it, [`ControlServer::stop`] does.
#[derive(Debug)]
pub struct ControlServer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl ControlServer {
    /// Where clients connect (the socket, or the port file on Windows).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Stops listening and removes the socket or port file.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts answering on the control channel of `paths`.
pub async fn serve(paths: &Paths, state: AgentState, tunnel: mpsc::Sender<Control>) -> Result<ControlServer, ControlError> {
    paths.ensure_state_dir()?;
    let stop = CancellationToken::new();
    let (task, path) = listen(paths, state, tunnel, stop.clone()).await?;
    Ok(ControlServer { stop, task, path })
}

#[cfg(unix)]
async fn listen(
    paths: &Paths,
    state: AgentState,
    tunnel: mpsc::Sender<Control>,
    stop: CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, PathBuf), ControlError> {
    use std::os::unix::fs::PermissionsExt;
    let path = paths.control_socket();
    if path.exists() {
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(ControlError::AlreadyRunning { path });
        }
        // Left behind by an agent that did not shut down cleanly.
        std::fs::remove_file(&path)?;
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    // The state directory is already 0700; the socket itself is made 0600 as well.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                conn = listener.accept() => match conn {
                    Ok((sock, _)) => {
                        let (r, w) = sock.into_split();
                        tokio::spawn(handle(Box::pin(r), Box::pin(w), state.clone(), tunnel.clone(), stop.clone(), None));
                    }
                    Err(e) => tracing::warn!("control socket accept failed: {e}"),
                },
            }
        }
    });
    Ok((task, paths.control_socket()))
}

#[cfg(not(unix))]
async fn listen(
    paths: &Paths,
    state: AgentState,
    tunnel: mpsc::Sender<Control>,
    stop: CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, PathBuf), ControlError> {
    use rand::Rng;
    let path = paths.control_port_file();
    if let Ok((port, cookie)) = read_port_file(&path)
        && let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
        && s.write_all(format!("{cookie}\n").as_bytes()).await.is_ok()
    {
        return Err(ControlError::AlreadyRunning { path });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let cookie: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(32).map(char::from).collect();
    crate::config::write_private(&path, format!("{port} {cookie}\n").as_bytes()).map_err(|e| io::Error::other(e.to_string()))?;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                conn = listener.accept() => match conn {
                    Ok((sock, _)) => {
                        let (r, w) = sock.into_split();
                        tokio::spawn(handle(Box::pin(r), Box::pin(w), state.clone(), tunnel.clone(), stop.clone(), Some(cookie.clone())));
                    }
                    Err(e) => tracing::warn!("control port accept failed: {e}"),
                },
            }
        }
    });
    Ok((task, path))
}

#[cfg(not(unix))]
fn read_port_file(path: &std::path::Path) -> io::Result<(u16, String)> {
    let text = std::fs::read_to_string(path)?;
    let mut parts = text.split_whitespace();
    let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| io::Error::other("bad port file"))?;
    let cookie = parts.next().ok_or_else(|| io::Error::other("bad port file"))?.to_owned();
    Ok((port, cookie))
}

async fn write_reply(w: &mut BoxWrite, reply: &ControlReply) -> io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(io::Error::other)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    w.flush().await
}

async fn handle(
    r: BoxRead,
    mut w: BoxWrite,
    state: AgentState,
    tunnel: mpsc::Sender<Control>,
    stop: CancellationToken,
    cookie: Option<String>,
) {
    let mut lines = BufReader::new(r).lines();
    if let Some(cookie) = cookie {
        // Loopback TCP is open to every local user: only holders of the 0600 port file get in.
        match lines.next_line().await {
            Ok(Some(line)) if line.trim() == cookie => {}
            _ => return,
        }
    }
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => return,
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => return,
            },
        };
        if line.len() > MAX_LINE {
            let _ = write_reply(&mut w, &ControlReply::error("request too long")).await;
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let req: ControlRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                if write_reply(&mut w, &ControlReply::error(format!("bad request: {e}"))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let reply = match req {
            ControlRequest::Status => ControlReply { ok: true, snapshot: Some(state.snapshot()), ..ControlReply::default() },
            ControlRequest::Reconnect => match tunnel.send(Control::Reconnect).await {
                Ok(()) => ControlReply { ok: true, ..ControlReply::default() },
                Err(_) => ControlReply::error("the tunnel is not running"),
            },
            ControlRequest::Logs { lines: n } => {
                let mut logs = state.snapshot().logs;
                let keep = n.unwrap_or(logs.len()).min(logs.len());
                let logs = logs.split_off(logs.len() - keep);
                ControlReply { ok: true, logs: Some(logs), ..ControlReply::default() }
            }
            ControlRequest::Subscribe => {
                subscribe(&mut w, &state, &stop).await;
                return;
            }
        };
        if write_reply(&mut w, &reply).await.is_err() {
            return;
        }
    }
}

async fn subscribe(w: &mut BoxWrite, state: &AgentState, stop: &CancellationToken) {
    let mut changes = state.subscribe();
    loop {
        changes.mark_unchanged();
        let reply = ControlReply { ok: true, snapshot: Some(state.snapshot()), ..ControlReply::default() };
        if write_reply(w, &reply).await.is_err() {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            r = changes.changed() => if r.is_err() { return },
        }
        // Coalesce bursts (a busy server logs a lot) into one snapshot per interval.
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SUBSCRIBE_INTERVAL) => {}
        }
    }
}

/// A connection to a running agent's control channel.
pub struct ControlClient {
    lines: tokio::io::Lines<BufReader<BoxRead>>,
    w: BoxWrite,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient").finish_non_exhaustive()
    }
}

impl ControlClient {
    /// Connects to the agent whose state directory `paths` names.
    pub async fn connect(paths: &Paths) -> Result<Self, ControlError> {
        #[cfg(unix)]
        {
            let path = paths.control_socket();
            let sock = tokio::net::UnixStream::connect(&path).await.map_err(|_| ControlError::NotRunning { path })?;
            let (r, w) = sock.into_split();
            Ok(Self { lines: BufReader::new(Box::pin(r) as BoxRead).lines(), w: Box::pin(w) })
        }
        #[cfg(not(unix))]
        {
            let path = paths.control_port_file();
            let (port, cookie) = read_port_file(&path).map_err(|_| ControlError::NotRunning { path: path.clone() })?;
            let sock = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|_| ControlError::NotRunning { path })?;
            let (r, w) = sock.into_split();
            let mut client = Self { lines: BufReader::new(Box::pin(r) as BoxRead).lines(), w: Box::pin(w) };
            client.w.write_all(format!("{cookie}\n").as_bytes()).await?;
            Ok(client)
        }
    }

    async fn send(&mut self, req: &ControlRequest) -> Result<(), ControlError> {
        let mut line = serde_json::to_string(req).map_err(|e| ControlError::Protocol(e.to_string()))?;
        line.push('\n');
        self.w.write_all(line.as_bytes()).await?;
        self.w.flush().await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<ControlReply, ControlError> {
        let line = self.lines.next_line().await?.ok_or_else(|| ControlError::Protocol("the agent closed the connection".into()))?;
        let reply: ControlReply = serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))?;
        if !reply.ok {
            return Err(ControlError::Refused(reply.error.unwrap_or_default()));
        }
        Ok(reply)
    }

    /// The agent's state now.
    pub async fn status(&mut self) -> Result<Snapshot, ControlError> {
        self.send(&ControlRequest::Status).await?;
        self.read().await?.snapshot.ok_or_else(|| ControlError::Protocol("no snapshot in the answer".into()))
    }

    /// Asks the agent to reconnect its tunnel now.
    pub async fn reconnect(&mut self) -> Result<(), ControlError> {
        self.send(&ControlRequest::Reconnect).await?;
        self.read().await.map(|_| ())
    }

    /// The agent's last `n` in-memory log lines.
    pub async fn logs(&mut self, n: usize) -> Result<Vec<LogLine>, ControlError> {
        self.send(&ControlRequest::Logs { lines: Some(n) }).await?;
        Ok(self.read().await?.logs.unwrap_or_default())
    }

    /// Turns this connection into a stream of snapshots (one now, one per change).
    /// The receiver ends when the agent goes away.
    pub async fn subscribe(mut self) -> Result<mpsc::Receiver<Snapshot>, ControlError> {
        self.send(&ControlRequest::Subscribe).await?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(reply) = self.read().await {
                if let Some(s) = reply.snapshot
                    && tx.send(s).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
