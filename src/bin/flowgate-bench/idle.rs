//! `idle`: opens N subscribed clients and reports the server's resident set
//! before, with them all idle, and after they closed; RSS per idle
//! connection is (with − before) / N.
//!
//! Touches the gateway (REST, `/ws`) and `/proc`.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::BenchError;
use crate::api::{Script, Target};
use crate::conn::{self, Setup, Socket};
use crate::procfs;
use crate::table::{Table, thousands};

/// Read buffer of an idle client: small, since nothing much arrives.
const READ_BUFFER: usize = 4 << 10;

/// Options of `idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Clients to open.
    #[arg(long)]
    connections: usize,
    /// Chats they subscribe to (client i to chat i mod chats).
    #[arg(long, default_value_t = 10)]
    chats: usize,
    /// The server's pid; found from the listening port when absent.
    #[arg(long)]
    pid: Option<u32>,
    /// Open bare connections without subscribing (the cost of a socket alone).
    #[arg(long)]
    no_subscribe: bool,
    /// Seconds to let the server settle before each RSS reading.
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,
}

/// What the run read, for its table.
struct Readings {
    pid: String,
    connect_secs: f64,
    open_on_server: Option<f64>,
    server_threads: Option<u64>,
    /// Server RSS (KiB) before, with the clients, after they closed.
    rss: [u64; 3],
    /// The bench's own RSS (KiB) before and with the clients.
    own: [u64; 2],
    closed_by_server: u64,
}

/// Runs the scenario and prints its table.
pub async fn run(target: &Target, args: IdleArgs) -> Result<(), BenchError> {
    if args.connections == 0 || args.chats == 0 {
        return Err(BenchError::Usage("--connections and --chats must be at least 1"));
    }
    let pid = procfs::server_pid(args.pid, target.addr.port())?;
    let settle = Duration::from_secs(args.settle_secs);
    let script = Script { words: 3, auto_replies: 0, delay_ms: 0, tokens_per_sec: 0 };
    target.put_flow("bench-idle", &script.flow("bench idle")).await?;
    let chats = target.create_chats("bench-idle", args.chats).await?;
    tokio::time::sleep(settle).await;
    let (before, own_before) = (procfs::rss_kib(&pid)?, procfs::rss_kib("self")?);

    let started = Instant::now();
    let setup = Setup { read_buffer: READ_BUFFER, subscribe: !args.no_subscribe };
    let sockets = conn::open_many(target, &chats, args.connections, setup).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let stop = CancellationToken::new();
    let mut holders = JoinSet::new();
    for socket in sockets {
        holders.spawn(hold(socket, stop.clone()));
    }
    tokio::time::sleep(settle).await;
    let (with, own_with) = (procfs::rss_kib(&pid)?, procfs::rss_kib("self")?);
    let server_threads = procfs::threads(&pid);
    let open_on_server = target.metric("flowgate_ws_connections").await?;

    stop.cancel();
    let mut closed_by_server = 0u64;
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(r) = holders.join_next().await {
            closed_by_server += u64::from(matches!(r, Ok(Some(_))));
        }
    })
    .await;
    if drained.is_err() {
        holders.abort_all();
    }
    tokio::time::sleep(settle).await;
    let after = procfs::rss_kib(&pid)?;
    let rss = [before, with, after];
    let readings = Readings {
        pid,
        connect_secs,
        open_on_server,
        server_threads,
        rss,
        own: [own_before, own_with],
        closed_by_server,
    };
    print(&args, &readings);
    Ok(())
}

fn print(args: &IdleArgs, r: &Readings) {
    let n = args.connections as u64;
    let [before, with, after] = r.rss;
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    let per = |a: u64, b: u64| format!("{:.2}", b.saturating_sub(a) as f64 / n as f64);
    let what =
        if args.no_subscribe { "not subscribed".to_owned() } else { format!("over {} chats", args.chats) };
    let mut t = Table::new(format!("idle: {} connections, {what}", thousands(n)));
    t.row("server pid", &r.pid)
        .row("connect + subscribe, s", format!("{:.2}", r.connect_secs))
        .row("handshakes/s", format!("{:.0}", n as f64 / r.connect_secs))
        .row("open on server (metric)", r.open_on_server.map_or("-".into(), |v| format!("{v}")))
        .row("server threads", r.server_threads.map_or("-".into(), |v| v.to_string()))
        .row("server RSS before, MiB", mib(before))
        .row("server RSS with clients, MiB", mib(with))
        .row("server RSS after close, MiB", mib(after))
        .row("server RSS per idle connection, KiB", per(before, with))
        .row("bench RSS per client, KiB", per(r.own[0], r.own[1]))
        .row("closed by server while idle", r.closed_by_server);
    t.print();
}

/// Keeps a client open (answering pings, draining frames) until `stop`;
/// returns the close code if the server closed it first.
async fn hold(mut socket: Socket, stop: CancellationToken) -> Option<u16> {
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
                return None;
            }
            msg = socket.next() => msg,
        };
        match msg {
            Some(Ok(Message::Close(f))) => return Some(f.map_or(1005, |f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Some(1006),
        }
    }
}
