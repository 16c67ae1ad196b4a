//! The agent's logs: a plain-text log file in the state directory (what
//! `gateway-agent logs` shows), the last lines kept in memory for the
//! dashboard, and stderr when no TUI owns the terminal.
//!
//! While the TUI runs nothing is written to the screen: it would tear the
//! interface apart. The filter comes from `GATEHOUSE_AGENT_LOG` (else
//! `RUST_LOG`, else `info`). The token is never logged: it only ever travels
//! in the `Authorization` header, marked sensitive.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::state::{AgentState, LogLine, now_ms};

/// The log file is moved aside to `agent.log.1` at start once it grows past this.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// An append-only log file shared by the writer handles tracing asks for.
#[derive(Clone, Debug)]
pub struct LogFile {
    file: Arc<Mutex<File>>,
}

impl LogFile {
    /// Opens (creating, 0600) `path` for appending; rotates it first when it is too big.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            crate::paths::create_private_dir(dir)?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
            let mut old = path.as_os_str().to_owned();
            old.push(".1");
            std::fs::rename(path, PathBuf::from(old))?;
        }
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        Ok(Self { file: Arc::new(Mutex::new(opts.open(path)?)) })
    }
}

/// One write through the shared file.
#[derive(Debug)]
pub struct LogFileWriter(Arc<Mutex<File>>);

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(Arc::clone(&self.file))
    }
}

/// Copies every event into the dashboard's log tail.
pub struct StateLayer {
    state: AgentState,
}

impl StateLayer {
    /// A layer feeding `state`.
    pub fn new(state: AgentState) -> Self {
        Self { state }
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push_str(&format!(" {}={}", field.name(), value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message.push_str(&format!("{value:?}"));
        } else {
            self.fields.push_str(&format!(" {}={:?}", field.name(), value));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for StateLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let message = format!("{}{}", v.message, v.fields);
        self.state.push_log(LogLine { at_ms: now_ms(), level: event.metadata().level().to_string(), message });
    }
}

/// Where logs go.
#[derive(Debug, Default)]
pub struct LogSetup {
    /// The log file, if any.
    pub file: Option<PathBuf>,
    /// Also write to stderr (not while the TUI runs).
    pub stderr: bool,
    /// Feed the dashboard's log tail.
    pub state: Option<AgentState>,
}

fn filter() -> EnvFilter {
    let spec = std::env::var("GATEHOUSE_AGENT_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".to_owned());
    EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Fails only when the log file cannot be opened.
pub fn init(setup: LogSetup) -> io::Result<()> {
    let file = setup.file.as_deref().map(LogFile::open).transpose()?;
    let file_layer = file.map(|f| tracing_subscriber::fmt::layer().with_ansi(false).with_writer(f));
    let stderr_layer = setup.stderr.then(|| tracing_subscriber::fmt::layer().with_writer(io::stderr));
    let state_layer = setup.state.map(StateLayer::new);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(filter()).with(file_layer).with(stderr_layer).with(state_layer).try_init();
    Ok(())
}

/// The last `n` lines of `path`.
pub fn tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // Read at most the last 4 MiB: enough for any sensible `n`.
    let start = len.saturating_sub(4 * 1024 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut text = String::new();
    io::BufReader::new(f).read_to_string(&mut text).or(Ok::<_, io::Error>(0))?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

/// Prints lines appended to `path` as they come (like `tail -f`), until `stop` fires.
pub async fn follow(path: &Path, out: &mut (dyn Write + Send), stop: tokio_util::sync::CancellationToken) -> io::Result<()> {
    let mut pos = std::fs::metadata(path)?.len();
    let mut partial = String::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(_) => continue, // being rotated
        };
        if len < pos {
            pos = 0; // rotated or truncated: start over
        }
        if len == pos {
            continue;
        }
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(pos))?;
        let mut reader = io::BufReader::new(f);
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            if line.ends_with('\n') {
                out.write_all(partial.as_bytes())?;
                out.write_all(line.as_bytes())?;
                partial.clear();
            } else {
                partial.push_str(&line);
            }
        }
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.log");
        std::fs::write(&p, (1..=10).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
        assert_eq!(tail(&p, 3).unwrap(), ["line 8", "line 9", "line 10"]);
        assert_eq!(tail(&p, 100).unwrap().len(), 10);
    }

    #[cfg(unix)]
    #[test]
    fn the_log_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/agent.log");
        let f = LogFile::open(&p).unwrap();
        tracing_subscriber::fmt::MakeWriter::make_writer(&f).write_all(b"hello\n").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "hello\n");
    }
}
