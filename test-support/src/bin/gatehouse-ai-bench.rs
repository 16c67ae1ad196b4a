//! `gatehouse-ai-bench`: load for an OpenAI Chat Completions endpoint (the mock provider
//! directly, or the hub's AI proxy in front of it), with latency percentiles and throughput.
//!
//! Every virtual client owns one keep-alive HTTP/1.1 connection and sends one request at a
//! time. `--mode latency` runs one client for `--requests` measured calls after a warm-up;
//! `--mode throughput` runs `-c` clients for `--duration` seconds after a warm-up. With
//! `--stream` the request asks for a stream and the figure is the time to first token: from
//! writing the request to the first body chunk that carries content (`"content":"` with a
//! non-empty value); the stream is still read to its end before the next call. Prints one
//! JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Parser, Debug, Clone)]
#[command(name = "gatehouse-ai-bench", version, about = "Latency and throughput of an OpenAI Chat Completions endpoint")]
struct Cli {
    /// The endpoint, e.g. http://127.0.0.1:PORT/v1/chat/completions.
    #[arg(long)]
    url: String,
    /// Bearer key (default: $GATEHOUSE_BENCH_KEY, if set).
    #[arg(long)]
    key: Option<String>,
    /// latency or throughput.
    #[arg(long, default_value = "latency")]
    mode: String,
    /// Measured calls in latency mode.
    #[arg(long, default_value_t = 5000)]
    requests: u64,
    /// Measured seconds in throughput mode.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Unmeasured warm-up seconds.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Clients in throughput mode.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Ask for a stream; measure time to first token.
    #[arg(long)]
    stream: bool,
    /// Model to ask for.
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// A name for the report.
    #[arg(long, default_value = "")]
    label: String,
}

struct Conn {
    send: SendRequest<Full<Bytes>>,
    uri: Uri,
    host: HeaderValue,
    auth: Option<HeaderValue>,
    body: Bytes,
    stream: bool,
}

async fn connect(cli: &Cli) -> anyhow::Result<Conn> {
    let uri: Uri = cli.url.parse().context("--url")?;
    let authority = uri.authority().context("--url needs host:port")?.clone();
    let tcp = tokio::net::TcpStream::connect(authority.as_str()).await.with_context(|| format!("connect {authority}"))?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let key = cli.key.clone().or_else(|| std::env::var("GATEHOUSE_BENCH_KEY").ok());
    let body = json!({"model": cli.model, "stream": cli.stream,
        "messages": [{"role": "user", "content": "Say hello to the benchmark in a few words"}]});
    Ok(Conn {
        send,
        uri,
        host: HeaderValue::from_str(authority.as_str())?,
        auth: key.map(|k| HeaderValue::from_str(&format!("Bearer {k}"))).transpose()?,
        body: Bytes::from(body.to_string()),
        stream: cli.stream,
    })
}

/// One call; returns the figure to record (whole answer, or time to first token).
async fn call(c: &mut Conn) -> anyhow::Result<Duration> {
    c.send.ready().await?;
    let mut req = Request::builder().method(Method::POST).uri(c.uri.path()).body(Full::new(c.body.clone()))?;
    let h = req.headers_mut();
    h.insert(HOST, c.host.clone());
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(a) = &c.auth {
        h.insert(AUTHORIZATION, a.clone());
    }
    let t = Instant::now();
    let resp = c.send.send_request(req).await?;
    ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    let mut body = resp.into_body();
    let mut first: Option<Duration> = None;
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref()
            && c.stream
            && first.is_none()
        {
            seen.extend_from_slice(data);
            if has_content(&seen) {
                first = Some(t.elapsed());
            }
        }
    }
    if c.stream { first.context("the stream carried no content") } else { Ok(t.elapsed()) }
}

fn has_content(bytes: &[u8]) -> bool {
    let needle = b"\"content\":\"";
    bytes.windows(needle.len()).enumerate().any(|(i, w)| w == needle && bytes.get(i + needle.len()).is_some_and(|b| *b != b'"'))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let (ok, errors, secs) = match cli.mode.as_str() {
        "latency" => {
            let mut c = connect(&cli).await?;
            let warm = Instant::now();
            while warm.elapsed() < Duration::from_secs(cli.warmup) {
                call(&mut c).await?;
            }
            let t = Instant::now();
            let mut errors = 0u64;
            for _ in 0..cli.requests {
                match call(&mut c).await {
                    Ok(d) => hist.record(d.as_nanos() as u64)?,
                    Err(_) => {
                        errors += 1;
                        c = connect(&cli).await?;
                    }
                }
            }
            (hist.len(), errors, t.elapsed().as_secs_f64())
        }
        "throughput" => {
            let cli = Arc::new(cli.clone());
            let start = Instant::now() + Duration::from_secs(cli.warmup);
            let end = start + Duration::from_secs(cli.duration);
            let mut tasks = Vec::new();
            for _ in 0..cli.concurrency {
                let cli = cli.clone();
                tasks.push(tokio::spawn(async move {
                    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
                    let mut errors = 0u64;
                    let mut c = connect(&cli).await?;
                    loop {
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        let r = call(&mut c).await;
                        let done = Instant::now();
                        match r {
                            Ok(d) if now >= start && done <= end => h.record(d.as_nanos() as u64)?,
                            Ok(_) => {}
                            Err(_) => {
                                if now >= start {
                                    errors += 1;
                                }
                                c = connect(&cli).await?;
                            }
                        }
                    }
                    anyhow::Ok((h, errors))
                }));
            }
            let mut errors = 0;
            for t in tasks {
                let (h, e) = t.await??;
                hist.add(h)?;
                errors += e;
            }
            (hist.len(), errors, cli.duration as f64)
        }
        other => bail!("--mode: unknown `{other}`; use latency or throughput"),
    };
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let report = json!({
        "label": cli.label, "mode": cli.mode, "stream": cli.stream, "requests": ok, "errors": errors,
        "requests_per_sec": ok as f64 / secs,
        "p50_us": us(0.5), "p90_us": us(0.9), "p99_us": us(0.99), "max_us": hist.max() as f64 / 1000.0,
    });
    println!("{report}");
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
