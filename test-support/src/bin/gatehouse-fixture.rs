//! `gatehouse-fixture`: the fixture MCP server as a process.
//!
//! stdio by default (newline-delimited JSON on stdin/stdout); `--http` serves
//! streamable HTTP on `--listen` and prints `listening on http://ADDR/mcp` as
//! its first stdout line, so callers can bind port 0 and read the port.
//! Logs go to stderr.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gatehouse_test_support::fixture::{FixtureOptions, serve_http, serve_stdio};
use tokio::io::AsyncWriteExt as _;

#[derive(Parser, Debug)]
#[command(name = "gatehouse-fixture", version, about = "Deterministic MCP server for Gatehouse tests and the MCP conformance suite")]
struct Cli {
    /// Serve streamable HTTP instead of stdio.
    #[arg(long)]
    http: bool,
    /// Address to listen on with --http (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Stateless echo mode for benchmarks: only `echo`, JSON responses, no sessions.
    #[arg(long, requires = "http")]
    json_only: bool,
    /// Answer every HTTP request with an SSE stream.
    #[arg(long, requires = "http", conflicts_with = "json_only")]
    sse: bool,
    /// Accept any Host/Origin header (default: loopback only, against DNS rebinding).
    #[arg(long, requires = "http")]
    allow_any_host: bool,
    /// Seconds to wait for the client's answer to sampling/elicitation requests.
    #[arg(long, default_value_t = 30)]
    client_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let cli = Cli::parse();
    let opts = FixtureOptions {
        echo_only: cli.json_only,
        always_sse: cli.sse,
        check_host: !cli.allow_any_host,
        client_request_timeout: Duration::from_secs(cli.client_timeout_secs.max(1)),
        ..FixtureOptions::default()
    };
    if !cli.http {
        return serve_stdio(opts).await.context("stdio transport failed");
    }
    let listener = tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("cannot listen on {}", cli.listen))?;
    let fixture = serve_http(listener, opts).await?;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(format!("listening on {}\n", fixture.url()).as_bytes()).await?;
    stdout.flush().await?;
    tracing::info!(url = %fixture.url(), "fixture serving");
    let token = fixture.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    fixture.wait().await.context("HTTP server failed")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
