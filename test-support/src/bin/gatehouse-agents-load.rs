//! `gatehouse-agents-load`: many agents connecting to a hub at once.
//!
//! Enrolls `--agents` agents through the admin API (with an admin key), then
//! opens one tunnel per agent, all at once, each saying `hello` with no
//! servers, and measures how long the hub takes to welcome every one. The
//! connections then stay idle (answering pings) for `--hold-secs`, so a
//! caller can measure the hub's memory per connected agent; `READY` on
//! stderr marks that moment. Prints one JSON object on stdout.
//!
//! ```text
//! gatehouse-agents-load --hub http://127.0.0.1:PORT --admin-key gk_... --agents 10000 --hold-secs 5
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt, stream};
use gatehouse_proto::tunnel::{Frame, SUBPROTOCOL};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[derive(Parser, Debug)]
#[command(name = "gatehouse-agents-load", version, about = "Connects many idle agents to a Gatehouse hub at once")]
struct Cli {
    /// The hub's base URL (loopback), e.g. http://127.0.0.1:3200
    #[arg(long)]
    hub: String,
    /// An admin API key, to enroll the agents.
    #[arg(long, env = "GATEHOUSE_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// How many agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Agent name prefix (names are PREFIX-0, PREFIX-1, ...).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Concurrent enrolment requests.
    #[arg(long, default_value_t = 16)]
    enroll_concurrency: usize,
    /// Seconds to keep the agents connected after the last welcome.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
    /// Give up on the connection phase after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse-agents-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gatehouse-agents-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn enroll(http: &reqwest::Client, cli: &Cli, name: String) -> anyhow::Result<(String, String)> {
    let resp = http
        .post(format!("{}/api/v1/agents", cli.hub))
        .bearer_auth(&cli.admin_key)
        .json(&json!({ "name": name }))
        .send()
        .await?
        .error_for_status()?;
    let body: serde_json::Value = resp.json().await?;
    let token = body["token"].as_str().ok_or_else(|| anyhow::anyhow!("no token in the enrolment answer"))?.to_owned();
    Ok((name, token))
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let names: Vec<String> = (0..cli.agents).map(|i| format!("{}-{i}", cli.prefix)).collect();
    let enrolled: Vec<anyhow::Result<(String, String)>> =
        stream::iter(names).map(|n| enroll(&http, &cli, n)).buffer_unordered(cli.enroll_concurrency.max(1)).collect().await;
    let mut agents = Vec::with_capacity(enrolled.len());
    for e in enrolled {
        agents.push(e?);
    }
    let enroll_secs = started.elapsed().as_secs_f64();

    let url = format!("{}/agent/ws", cli.hub.replacen("http", "ws", 1));
    let welcomed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(cli.agents.max(1));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(agents.len());
    for (name, token) in agents {
        let (url, welcomed, failed, stop, done) = (url.clone(), welcomed.clone(), failed.clone(), stop.clone(), done_tx.clone());
        tasks.push(tokio::spawn(async move {
            let ok = agent(&url, &name, &token, &stop, || {
                welcomed.fetch_add(1, Ordering::Relaxed);
                let _ = done.try_send(());
            })
            .await;
            if !ok {
                failed.fetch_add(1, Ordering::Relaxed);
                let _ = done.try_send(());
            }
        }));
    }
    drop(done_tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(cli.timeout_secs);
    let mut seen = 0;
    while seen < cli.agents {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(())) => seen += 1,
            _ => break,
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    let ok = welcomed.load(Ordering::Relaxed);
    eprintln!("READY {ok} agents connected");
    tokio::time::sleep(Duration::from_secs(cli.hold_secs)).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({ "agents": cli.agents, "welcomed": ok, "failed": failed, "enroll_secs": enroll_secs, "connect_all_secs": connect_secs })
    );
    Ok(ok == cli.agents)
}

/// One idle agent: dial, hello, welcome, then answer pings until `stop`.
async fn agent(url: &str, name: &str, token: &str, stop: &tokio_util::sync::CancellationToken, on_welcome: impl FnOnce()) -> bool {
    let Ok(mut req) = url.into_client_request() else { return false };
    let Ok(auth) = HeaderValue::from_str(&format!("Bearer {token}")) else { return false };
    req.headers_mut().insert("authorization", auth);
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else { return false };
    let hello = Frame::Hello { agent: name.to_owned(), version: "load".into(), platform: "load".into(), servers: vec![] };
    if ws.send(Message::text(hello.encode())).await.is_err() {
        return false;
    }
    match ws.next().await {
        Some(Ok(Message::Text(t))) if matches!(Frame::decode(t.as_str()), Ok(Frame::Welcome { .. })) => on_welcome(),
        _ => return false,
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = ws.close(None).await;
                return true;
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(Frame::Ping { nonce }) = Frame::decode(t.as_str()) {
                        let _ = ws.send(Message::text(Frame::Pong { nonce }.encode())).await;
                    }
                }
                Some(Ok(_)) => {}
                _ => return true,
            }
        }
    }
}
