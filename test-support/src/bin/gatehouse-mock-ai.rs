//! `gatehouse-mock-ai`: the mock AI provider as a process, for benchmarks and manual tries.
//!
//! Prints `listening on http://ADDR` as its first stdout line, so callers can bind port 0 and
//! read the port. Knobs are described in `gatehouse_test_support::mock_ai`.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use tokio::io::AsyncWriteExt as _;

#[derive(Parser, Debug)]
#[command(name = "gatehouse-mock-ai", version, about = "Deterministic mock AI provider (OpenAI, Anthropic, Gemini, Bedrock wire formats)")]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("cannot bind {}", cli.listen))?;
    let addr = listener.local_addr()?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening on http://{addr}\n").as_bytes()).await?;
    out.flush().await?;
    gatehouse_test_support::serve_nodelay(listener, gatehouse_test_support::mock_ai::bench_router(), Default::default()).await?;
    Ok(())
}
