//! Stdio transport: a child process speaking newline-delimited JSON-RPC.
//!
//! The child starts with a cleared environment (a non-secret baseline copied
//! from ours, then the configured variables), in its own process group on
//! unix. Four tasks serve it: a writer (stdin), a reader (stdout, routed), a
//! stderr logger, and a monitor that notices the exit and, on exit or close,
//! tears down the whole process group: stdin closed, SIGTERM, SIGKILL after a
//! grace period, and the child reaped.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::CallError;
use crate::conn::{Conn, Outgoing, excerpt};

/// Variables copied from the hub's own environment, when set.
pub const BASELINE_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Extra baseline variables on Windows, where many programs fail without them.
pub const BASELINE_ENV_WINDOWS: &[&str] = &["SYSTEMROOT", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "PATHEXT", "COMSPEC", "TEMP", "TMP"];

/// How long a child may take to exit by itself once its stdin is closed.
const STDIN_GRACE: Duration = Duration::from_millis(500);
/// How long the process group may take to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Time allowed for SIGKILLed processes to disappear.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// Longest stderr line logged whole.
const MAX_LOGGED_LINE: usize = 8 * 1024;

pub(crate) struct StdioLink {
    tx: mpsc::UnboundedSender<String>,
    close: CancellationToken,
    monitor: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl StdioLink {
    pub(crate) fn send(&self, msg: Outgoing) -> Result<(), CallError> {
        let body = match msg {
            Outgoing::Request { body, .. } | Outgoing::Oneway { body } => body,
        };
        let mut line = one_line(body);
        line.push('\n');
        self.tx.send(line).map_err(|_| CallError::Unavailable("the process's stdin is closed".into()))
    }

    pub(crate) async fn close(&self) {
        self.close.cancel();
        let monitor = self.monitor.lock().await.take();
        if let Some(monitor) = monitor {
            let _ = monitor.await;
        }
    }
}

/// Builds the command: cleared environment plus baseline plus `env`.
pub(crate) fn command(command: &str, args: &[String], env: &BTreeMap<String, String>, cwd: Option<&Path>) -> Command {
    let mut cmd = Command::new(command);
    cmd.args(args).env_clear();
    let windows: &[&str] = if cfg!(windows) { BASELINE_ENV_WINDOWS } else { &[] };
    for key in BASELINE_ENV.iter().chain(windows) {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.envs(env);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    cmd
}

pub(crate) fn spawn(
    conn: &Arc<Conn>,
    program: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Result<StdioLink, String> {
    let mut child = command(program, args, env, cwd).spawn().map_err(|e| format!("failed to start `{program}`: {e}"))?;
    let pid = child.id();
    tracing::info!(backend = %conn.name(), pid, command = program, "started upstream process");
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
        return Err("the child's stdio pipes are missing".into());
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let close = CancellationToken::new();
    let stdin_closed = CancellationToken::new();
    let stdout_eof = CancellationToken::new();
    tokio::spawn(write_stdin(stdin, rx, stdin_closed.clone()));
    let reader = tokio::spawn(read_stdout(Arc::clone(conn), stdout, stdout_eof.clone()));
    let stderr = tokio::spawn(log_stderr(conn.name().to_owned(), stderr));
    let group = pid.and_then(|p| i32::try_from(p).ok());
    let monitor = tokio::spawn(monitor(Arc::clone(conn), child, group, close.clone(), stdin_closed, stdout_eof, reader, stderr));
    Ok(StdioLink { tx, close, monitor: tokio::sync::Mutex::new(Some(monitor)) })
}

async fn write_stdin(mut stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<String>, closed: CancellationToken) {
    loop {
        let line = tokio::select! {
            biased;
            () = closed.cancelled() => break,
            line = rx.recv() => match line {
                Some(line) => line,
                None => break,
            },
        };
        let written = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        if let Err(e) = written.await {
            tracing::debug!(error = %e, "writing to the upstream's stdin failed");
            break;
        }
    }
    // Dropping stdin closes it: the polite way to ask a stdio server to exit.
}

async fn read_stdout(conn: Arc<Conn>, stdout: ChildStdout, eof: CancellationToken) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::with_capacity(8 * 1024);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(backend = %conn.name(), error = %e, "reading the upstream's stdout failed");
                break;
            }
        }
        match std::str::from_utf8(&buf) {
            Ok(text) => {
                let text = text.trim();
                if text.is_empty() {
                } else if text.starts_with('{') || text.starts_with('[') {
                    conn.route_text(text, None);
                } else {
                    tracing::warn!(backend = %conn.name(), "skipping a non-JSON line on stdout: {}", excerpt(text, 200));
                }
            }
            Err(_) => tracing::warn!(
                backend = %conn.name(),
                "skipping a stdout line that is not UTF-8: {}",
                excerpt(&String::from_utf8_lossy(&buf), 200)
            ),
        }
        // Do not keep a huge buffer around after one huge message.
        if buf.capacity() > 4 * 1024 * 1024 {
            buf = Vec::with_capacity(8 * 1024);
        }
    }
    eof.cancel();
}

async fn log_stderr(backend: String, stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if line.len() > MAX_LOGGED_LINE {
            let mut end = MAX_LOGGED_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            tracing::info!(target: "gatehouse_upstream::stderr", backend = %backend, "{}…", &line[..end]);
        } else {
            tracing::info!(target: "gatehouse_upstream::stderr", backend = %backend, "{line}");
        }
        if buf.capacity() > 1024 * 1024 {
            buf = Vec::new();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn monitor(
    conn: Arc<Conn>,
    mut child: Child,
    group: Option<i32>,
    close: CancellationToken,
    stdin_closed: CancellationToken,
    stdout_eof: CancellationToken,
    reader: JoinHandle<()>,
    stderr: JoinHandle<()>,
) {
    let reason = tokio::select! {
        status = child.wait() => {
            // Let the reader drain what the process wrote before exiting.
            let _ = tokio::time::timeout(Duration::from_millis(200), stdout_eof.cancelled()).await;
            describe_exit(status)
        }
        () = stdout_eof.cancelled() => match tokio::time::timeout(STDIN_GRACE, child.wait()).await {
            Ok(status) => describe_exit(status),
            Err(_) => "the process closed its stdout".to_owned(),
        },
        () = close.cancelled() => "the connection was closed".to_owned(),
    };
    if !close.is_cancelled() {
        tracing::warn!(backend = %conn.name(), %reason, "upstream process ended");
    }
    // Fail calls in flight first, at once; the teardown may take a while.
    conn.fail(reason);
    terminate(&mut child, group, &stdin_closed).await;
    reader.abort();
    if tokio::time::timeout(Duration::from_millis(200), stderr).await.is_err() {
        tracing::debug!(backend = %conn.name(), "stderr still open after teardown");
    }
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => {
            if let Some(code) = status.code() {
                return format!("process exited with status {code}");
            }
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(signal) = status.signal() {
                    return format!("process was killed by signal {signal}");
                }
            }
            format!("process exited ({status})")
        }
        Err(e) => format!("waiting for the process failed: {e}"),
    }
}

/// Ends the child and everything it started, then reaps it.
async fn terminate(child: &mut Child, group: Option<i32>, stdin_closed: &CancellationToken) {
    // 1. Close stdin: a well-behaved stdio server exits on EOF.
    stdin_closed.cancel();
    let mut exited = matches!(child.try_wait(), Ok(Some(_)));
    if !exited {
        exited = tokio::time::timeout(STDIN_GRACE, child.wait()).await.is_ok();
    }
    #[cfg(unix)]
    if let Some(group) = group {
        // 2. SIGTERM the whole group (also when the child is gone: its
        //    children, say node under npx, may still run), then give
        //    everyone a grace period, then SIGKILL what is left.
        signal_group(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + TERM_GRACE;
        loop {
            exited = exited || matches!(child.try_wait(), Ok(Some(_)));
            if exited && !group_alive(group) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                signal_group(group, nix::sys::signal::Signal::SIGKILL);
                // SIGKILL is delivered asynchronously: wait (briefly) until the
                // group is really gone, so shutdown returns with nothing left.
                let deadline = tokio::time::Instant::now() + KILL_GRACE;
                while group_alive(group) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    #[cfg(not(unix))]
    let _ = group;
    if !exited {
        let _ = child.start_kill();
    }
    // 3. Reap: no zombie left behind.
    let _ = child.wait().await;
}

#[cfg(unix)]
fn signal_group(group: i32, signal: nix::sys::signal::Signal) {
    use nix::unistd::Pid;
    if group > 1 {
        let _ = nix::sys::signal::killpg(Pid::from_raw(group), signal);
    }
}

/// Whether any process of the group still runs (zombies do not count: they
/// are dead, merely not reaped yet by whoever inherited them).
#[cfg(unix)]
fn group_alive(group: i32) -> bool {
    #[cfg(target_os = "linux")]
    if let Some(alive) = linux_group_alive(group) {
        return alive;
    }
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), None).is_ok()
}

#[cfg(target_os = "linux")]
fn linux_group_alive(group: i32) -> Option<bool> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(group) && state != Some("Z") && state != Some("X") {
            return Some(true);
        }
    }
    Some(false)
}

/// Newline-delimited framing needs one line per message. JSON text can only
/// hold raw line breaks as whitespace between tokens (never inside
/// strings), so dropping whitespace outside strings keeps every value intact.
pub(crate) fn one_line(body: String) -> String {
    if !body.contains(['\n', '\r']) {
        return body;
    }
    let mut out = String::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in body.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_strings_and_drops_layout() {
        let pretty = "{\n  \"a\": \"x y\\n \\\" z\",\r\n  \"b\": [1, 2]\n}";
        assert_eq!(one_line(pretty.into()), r#"{"a":"x y\n \" z","b":[1,2]}"#);
        let flat = r#"{"a": 1}"#;
        assert_eq!(one_line(flat.into()), flat);
    }

    #[cfg(unix)]
    #[test]
    fn exit_descriptions() {
        use std::process::Command;
        let status = Command::new("sh").args(["-c", "exit 3"]).status();
        assert_eq!(describe_exit(status), "process exited with status 3");
    }
}
