//! `flowgate-bench`: a load generator for a RUNNING Flowgate gateway on this
//! machine (loopback only). Three scenarios, each bounded in count and time,
//! each printing a small table and stopping by itself:
//!
//! - `idle`: N subscribed WebSocket clients; the server's RSS per connection.
//! - `fanout`: a scripted flow streams many `message.delta` chunks to N
//!   subscribers over M chats; deliveries per second.
//! - `latency`: a paced delivery rate; publish-to-delivery p50/p99/p999.
//!
//! Touches only the gateway's public API (REST and `/ws`) and `/proc`.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[path = "flowgate-bench/api.rs"]
mod api;
#[path = "flowgate-bench/assembly.rs"]
mod assembly;
#[path = "flowgate-bench/conn.rs"]
mod conn;
#[path = "flowgate-bench/fanout.rs"]
mod fanout;
#[path = "flowgate-bench/frame.rs"]
mod frame;
#[path = "flowgate-bench/idle.rs"]
mod idle;
#[path = "flowgate-bench/latency.rs"]
mod latency;
#[path = "flowgate-bench/posts.rs"]
mod posts;
#[path = "flowgate-bench/procfs.rs"]
mod procfs;
#[path = "flowgate-bench/table.rs"]
mod table;

/// Load generator for a running Flowgate gateway (loopback only).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options every scenario takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// The gateway's base URL; must be a loopback address.
    #[arg(long, global = true, env = "FLOWGATE_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key of tenant `default` (the server's FLOWGATE_API_KEY).
    #[arg(long, global = true, env = "FLOWGATE_API_KEY", default_value = "")]
    pub key: String,
    /// WebSocket handshakes in flight at once while connecting clients.
    #[arg(long, global = true, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// The whole scenario is abandoned after this many seconds.
    #[arg(long, global = true, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N idle subscribed clients: server RSS before/after, per connection.
    Idle(idle::IdleArgs),
    /// Deliveries per second of streamed `message.delta` chunks.
    Fanout(fanout::FanoutArgs),
    /// Publish-to-delivery latency at a paced delivery rate.
    Latency(latency::LatencyArgs),
    /// Accepted `POST /messages` per second (each a durable commit).
    Posts(posts::PostsArgs),
}

/// Why a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The URL is not a loopback HTTP URL.
    #[error("--url {url}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A REST call failed at the transport level.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// A REST call was answered with an unexpected status.
    #[error("{what}: HTTP {status}: {body}")]
    Api {
        /// Which call.
        what: &'static str,
        /// The status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// A WebSocket failed.
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server answered a command with an error frame, or closed.
    #[error("WebSocket {what}: {detail}")]
    Protocol {
        /// Which step.
        what: &'static str,
        /// The frame or close code.
        detail: String,
    },
    /// Reading `/proc` or a socket failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// A value given on the command line cannot be used.
    #[error("{0}")]
    Usage(&'static str),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flowgate-bench: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = Duration::from_secs(cli.common.timeout_secs);
    let result = runtime.block_on(async {
        let target = api::Target::new(&cli.common)?;
        let run = async {
            match cli.scenario {
                Scenario::Idle(args) => idle::run(&target, args).await,
                Scenario::Fanout(args) => fanout::run(&target, args).await,
                Scenario::Latency(args) => latency::run(&target, args).await,
                Scenario::Posts(args) => posts::run(&target, args).await,
            }
        };
        tokio::time::timeout(bound, run).await.map_err(|_| BenchError::Timeout("--timeout-secs"))?
    });
    // Client tasks still parked on sockets are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
