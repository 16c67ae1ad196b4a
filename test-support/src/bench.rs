//! The load generator behind `gatehouse-bench`: MCP `tools/call` traffic
//! against one streamable HTTP endpoint, with latency percentiles and
//! throughput as the result.
//!
//! Every virtual client owns one keep-alive HTTP/1.1 connection (hyper's
//! connection API, no pool), runs the `initialize` handshake on it (keeping
//! `Mcp-Session-Id` when the server gives one, sending
//! `notifications/initialized`), then calls the tool in a loop, one request
//! at a time. Each answer must be HTTP 200 carrying a JSON-RPC result for the
//! request's id (plain JSON, or an SSE stream whose events include it);
//! anything else counts as an error.
//!
//! * [`Mode::Latency`]: one client, sequential calls; a warm-up period, then
//!   exactly `requests` measured calls.
//! * [`Mode::Throughput`]: `concurrency` clients calling as fast as they can;
//!   a warm-up period, then a measured window of `duration`. Calls completed
//!   inside the window count.
//!
//! Latency is measured per call from just before the request is written to
//! the end of the response body, recorded in an HDR histogram (nanoseconds,
//! three significant digits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Protocol revision the clients ask for in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// Upper bound of the histogram: slower calls are clamped to it.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One client, sequential calls, a fixed number of measured calls.
    Latency,
    /// Many clients for a fixed time.
    Throughput,
}

/// A benchmark run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The MCP endpoint, `http://HOST:PORT/PATH`.
    pub url: String,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub key: Option<String>,
    pub mode: Mode,
    /// Tool to call (`echo` on the fixture and on `/mcp/echo`, `echo__echo` on `/mcp`).
    pub tool: String,
    /// Measured calls in latency mode.
    pub requests: u64,
    /// Virtual clients in throughput mode (latency mode always uses one).
    pub concurrency: usize,
    /// Measured window in throughput mode.
    pub duration: Duration,
    /// Unmeasured calls before the measurement starts.
    pub warmup: Duration,
    /// Free-form name copied into the report.
    pub label: Option<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The outcome of a run, printed as JSON by `gatehouse-bench`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub mode: Mode,
    pub url: String,
    pub tool: String,
    pub concurrency: usize,
    pub warmup_secs: f64,
    /// Length of the measured part of the run.
    pub elapsed_secs: f64,
    /// Calls completed in the measured part, errors included.
    pub requests: u64,
    /// Failed calls, those of the warm-up included: any makes the run fail.
    pub errors: u64,
    /// The first error seen, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Successful calls per second over the measured part.
    pub requests_per_sec: f64,
    /// Latency of successful measured calls.
    pub latency_us: Latency,
}

/// Where the clients connect and what they send on every request.
struct Target {
    addr: SocketAddr,
    authority: HeaderValue,
    path: Uri,
    bearer: Option<HeaderValue>,
    tool: String,
}

impl Target {
    async fn resolve(url: &str, key: Option<&str>, tool: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL `{url}`"))?;
        ensure!(uri.scheme_str() == Some("http"), "only http:// URLs are supported: `{url}`");
        let authority = uri.authority().ok_or_else(|| anyhow!("URL without a host: `{url}`"))?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("cannot resolve {authority}"))?
            .next()
            .ok_or_else(|| anyhow!("{authority} resolves to no address"))?;
        let path: Uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
        let bearer =
            key.map(|k| HeaderValue::from_str(&format!("Bearer {k}"))).transpose().context("the key is not a valid header value")?;
        Ok(Self { addr, authority: HeaderValue::from_str(authority.as_str())?, path, bearer, tool: tool.to_owned() })
    }
}

/// The parts of a JSON-RPC response the checks look at.
#[derive(Deserialize)]
struct RpcAnswer<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
}

/// One virtual client: one connection, one MCP session.
struct Client {
    target: Arc<Target>,
    sender: SendRequest<Full<Bytes>>,
    connection: JoinHandle<()>,
    session: Option<HeaderValue>,
    version: Option<HeaderValue>,
    next_id: u64,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Client {
    async fn connect(target: Arc<Target>) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target.addr).await.with_context(|| format!("cannot connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP handshake failed")?;
        let connection = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = Self { target, sender, connection, session: None, version: None, next_id: 1 };
        client.initialize().await?;
        Ok(client)
    }

    fn request(&self, body: String) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.target.path.clone())
            .header(HOST, self.target.authority.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"))
            .body(Full::new(Bytes::from(body)))?;
        let h = req.headers_mut();
        if let Some(b) = &self.target.bearer {
            h.insert(AUTHORIZATION, b.clone());
        }
        if let Some(s) = &self.session {
            h.insert(SESSION_ID, s.clone());
        }
        if let Some(v) = &self.version {
            h.insert(PROTOCOL_VERSION_HEADER, v.clone());
        }
        Ok(req)
    }

    /// Sends one message and reads the whole answer.
    async fn exchange(&mut self, body: String) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        let req = self.request(body)?;
        self.sender.ready().await.context("the connection closed")?;
        let resp = self.sender.send_request(req).await.context("the request failed")?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.context("reading the answer failed")?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    async fn initialize(&mut self) -> anyhow::Result<()> {
        let id = self.take_id();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"gatehouse-bench","version":"{}"}}}}}}"#,
            env!("CARGO_PKG_VERSION")
        );
        let (status, headers, bytes) = self.exchange(body).await.context("initialize")?;
        let result = check_answer(status, &headers, &bytes, id).context("initialize")?;
        let init: InitializeResult = serde_json::from_str(result.get()).context("initialize: no protocolVersion in the result")?;
        self.session = headers.get(SESSION_ID).cloned();
        self.version = Some(HeaderValue::from_str(&init.protocol_version)?);
        let (status, _, bytes) = self.exchange(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned()).await?;
        ensure!(status.is_success(), "notifications/initialized: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        Ok(())
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// One `tools/call`; `Ok` only for a JSON-RPC result with our id.
    async fn call(&mut self) -> anyhow::Result<()> {
        let id = self.take_id();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{}","arguments":{{"message":"hello","n":{id}}}}}}}"#,
            self.target.tool
        );
        let (status, headers, bytes) = self.exchange(body).await?;
        check_answer(status, &headers, &bytes, id).map(drop)
    }
}

/// The `result` of the JSON-RPC response with `id` carried by an answer.
fn check_answer<'a>(status: StatusCode, headers: &hyper::HeaderMap, body: &'a [u8], id: u64) -> anyhow::Result<&'a RawValue> {
    let text = std::str::from_utf8(body).context("the answer is not UTF-8")?;
    if status != StatusCode::OK {
        bail!("HTTP {status}: {}", excerpt(text));
    }
    let sse = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("text/event-stream"));
    if !sse {
        return check_message(text, id);
    }
    // An SSE stream: the response is one of the `data:` payloads.
    let mut last_err = anyhow!("the event stream carried no response");
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data:") {
            match check_message(data.trim_start(), id) {
                Ok(r) => return Ok(r),
                Err(e) => last_err = e,
            }
        }
    }
    Err(last_err)
}

fn check_message(text: &str, id: u64) -> anyhow::Result<&RawValue> {
    let answer: RpcAnswer<'_> = serde_json::from_str(text).with_context(|| format!("not a JSON-RPC message: {}", excerpt(text)))?;
    if let Some(e) = answer.error {
        bail!("JSON-RPC error: {}", excerpt(e.get()));
    }
    let result = answer.result.ok_or_else(|| anyhow!("no result: {}", excerpt(text)))?;
    ensure!(answer.id.is_some_and(|v| v.get().parse::<u64>().ok() == Some(id)), "answer for another id: {}", excerpt(text));
    Ok(result)
}

fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants well inside what the crate supports.
    Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3).unwrap_or_else(|e| unreachable!("histogram bounds: {e}"))
}

/// What one client measured.
struct Tally {
    hist: Histogram<u64>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        Self { hist: new_histogram(), errors: 0, warmup_errors: 0, first_error: None }
    }

    fn record(&mut self, outcome: anyhow::Result<()>, took: Duration) {
        match outcome {
            Ok(()) => self.hist.saturating_record((took.as_nanos() as u64).max(1)),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }

    fn merge(&mut self, other: Self) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn count(&self) -> u64 {
        self.hist.len() + self.errors
    }
}

/// Runs the benchmark described by `cfg`.
pub async fn run(cfg: &BenchConfig) -> anyhow::Result<Report> {
    let target = Arc::new(Target::resolve(&cfg.url, cfg.key.as_deref(), &cfg.tool).await?);
    let (concurrency, tally, elapsed) = match cfg.mode {
        Mode::Latency => {
            let (tally, elapsed) = latency(target, cfg.requests, cfg.warmup).await?;
            (1, tally, elapsed)
        }
        Mode::Throughput => {
            let c = cfg.concurrency.max(1);
            let (tally, elapsed) = throughput(target, c, cfg.duration, cfg.warmup).await?;
            (c, tally, elapsed)
        }
    };
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    let h = &tally.hist;
    let latency_us = Latency {
        min: us(h.min()),
        mean: (h.mean() / 100.0).round() / 10.0,
        p50: us(h.value_at_quantile(0.50)),
        p90: us(h.value_at_quantile(0.90)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
    };
    let secs = elapsed.as_secs_f64();
    Ok(Report {
        label: cfg.label.clone(),
        mode: cfg.mode,
        url: cfg.url.clone(),
        tool: cfg.tool.clone(),
        concurrency,
        warmup_secs: cfg.warmup.as_secs_f64(),
        elapsed_secs: (secs * 1000.0).round() / 1000.0,
        requests: tally.count(),
        errors: tally.errors + tally.warmup_errors,
        first_error: tally.first_error,
        requests_per_sec: if secs > 0.0 { (h.len() as f64 / secs).round() } else { 0.0 },
        latency_us,
    })
}

async fn latency(target: Arc<Target>, requests: u64, warmup: Duration) -> anyhow::Result<(Tally, Duration)> {
    let mut client = Client::connect(target).await?;
    let mut warm = Tally::new();
    let warm_end = Instant::now() + warmup;
    while Instant::now() < warm_end {
        let t = Instant::now();
        let r = client.call().await;
        warm.record(r, t.elapsed());
    }
    let mut tally = Tally::new();
    // Warm-up errors fail the run too.
    tally.warmup_errors = warm.errors;
    tally.first_error = warm.first_error;
    let start = Instant::now();
    for _ in 0..requests {
        let t = Instant::now();
        let r = client.call().await;
        tally.record(r, t.elapsed());
    }
    Ok((tally, start.elapsed()))
}

async fn throughput(target: Arc<Target>, concurrency: usize, duration: Duration, warmup: Duration) -> anyhow::Result<(Tally, Duration)> {
    // Every client connects and initializes before the clock starts.
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(Client::connect(target.clone()).await?);
    }
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<JoinHandle<Tally>> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut warm_errors = Tally::new();
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let r = client.call().await;
                    let done = Instant::now();
                    if t >= start && done <= end {
                        tally.record(r, done - t);
                    } else if r.is_err() {
                        warm_errors.record(r, done - t);
                    }
                }
                tally.warmup_errors += warm_errors.errors;
                if tally.first_error.is_none() {
                    tally.first_error = warm_errors.first_error;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::new();
    for t in tasks {
        total.merge(t.await.context("a client task failed")?);
    }
    Ok((total, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    #[test]
    fn answers_are_checked() {
        let h = json_headers();
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        assert_eq!(check_answer(StatusCode::OK, &h, ok, 7).unwrap().get(), r#"{"content":[]}"#);
        assert!(check_answer(StatusCode::OK, &h, ok, 8).is_err());
        assert!(check_answer(StatusCode::BAD_REQUEST, &h, ok, 7).is_err());
        let err = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no"}}"#;
        assert!(check_answer(StatusCode::OK, &h, err, 7).is_err());
        assert!(check_answer(StatusCode::OK, &h, b"not json", 7).is_err());
    }

    #[test]
    fn sse_answers_are_read() {
        let mut h = hyper::HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        assert!(check_answer(StatusCode::OK, &h, body, 3).is_ok());
        assert!(check_answer(StatusCode::OK, &h, body, 4).is_err());
    }

    #[tokio::test]
    async fn runs_against_the_fixture() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opts = crate::fixture::FixtureOptions { echo_only: true, ..Default::default() };
        let fixture = crate::fixture::serve_http(listener, opts).await.unwrap();
        let base = BenchConfig {
            url: fixture.url(),
            key: None,
            mode: Mode::Latency,
            tool: "echo".into(),
            requests: 50,
            concurrency: 1,
            duration: Duration::from_millis(200),
            warmup: Duration::from_millis(20),
            label: None,
        };
        let r = run(&base).await.unwrap();
        assert_eq!((r.requests, r.errors), (50, 0));
        assert!(r.latency_us.p50 > 0.0 && r.latency_us.p50 <= r.latency_us.max);
        let r = run(&BenchConfig { mode: Mode::Throughput, concurrency: 4, ..base.clone() }).await.unwrap();
        assert_eq!(r.errors, 0);
        assert!(r.requests > 0 && r.requests_per_sec > 0.0);
        let r = run(&BenchConfig { tool: "nope".into(), requests: 3, warmup: Duration::ZERO, ..base.clone() }).await.unwrap();
        assert_eq!((r.requests, r.errors), (3, 3));
        assert!(r.first_error.unwrap().contains("Unknown tool"));
        // Failures during the warm-up count too.
        let r = run(&BenchConfig { tool: "nope".into(), requests: 3, ..base }).await.unwrap();
        assert!(r.requests == 3 && r.errors > 3);
    }
}
