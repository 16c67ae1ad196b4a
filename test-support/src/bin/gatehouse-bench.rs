//! `gatehouse-bench`: MCP load generator. Calls one tool over streamable HTTP
//! (one keep-alive connection and one MCP session per virtual client) and
//! prints latency percentiles and throughput as one JSON object on stdout.
//! Exits non-zero when any call failed. See `gatehouse_test_support::bench`.
//!
//! ```text
//! gatehouse-bench --url http://127.0.0.1:PORT/mcp --mode latency --requests 5000
//! gatehouse-bench --url http://127.0.0.1:PORT/mcp/echo --key gk_... --mode throughput -c 64 --duration 5
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use gatehouse_test_support::bench::{self, BenchConfig, Mode};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// One client, sequential calls: `--requests` measured calls after the warm-up.
    Latency,
    /// `--concurrency` clients for `--duration` seconds after the warm-up.
    Throughput,
}

#[derive(Parser, Debug)]
#[command(name = "gatehouse-bench", version, about = "MCP load generator: tools/call latency and throughput over streamable HTTP")]
struct Cli {
    /// MCP endpoint, e.g. http://127.0.0.1:3200/mcp/echo
    #[arg(long)]
    url: String,
    /// API key, sent as `Authorization: Bearer KEY`
    #[arg(long, env = "GATEHOUSE_BENCH_KEY", hide_env_values = true)]
    key: Option<String>,
    #[arg(long, value_enum, default_value = "latency")]
    mode: ModeArg,
    /// Tool to call
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Measured calls (latency mode)
    #[arg(long, default_value_t = 5000)]
    requests: u64,
    /// Concurrent clients (throughput mode)
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds (throughput mode)
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unmeasured seconds of calls before measuring
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runtime worker threads; 1 runs every client on the main thread
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Name copied into the report
    #[arg(long)]
    label: Option<String>,
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|e| format!("--{what}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (duration, warmup) = match (secs(cli.duration, "duration"), secs(cli.warmup, "warmup")) {
        (Ok(d), Ok(w)) => (d, w),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = BenchConfig {
        url: cli.url,
        key: cli.key,
        mode: match cli.mode {
            ModeArg::Latency => Mode::Latency,
            ModeArg::Throughput => Mode::Throughput,
        },
        tool: cli.tool,
        requests: cli.requests,
        concurrency: cli.concurrency,
        duration,
        warmup,
        label: cli.label,
    };
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(&cfg)) {
        Ok(report) => {
            match serde_json::to_string(&report) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if report.errors > 0 {
                eprintln!(
                    "error: {} of {} calls failed; first: {}",
                    report.errors,
                    report.requests,
                    report.first_error.unwrap_or_default()
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
