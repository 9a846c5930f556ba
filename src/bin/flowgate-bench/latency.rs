//! `latency`: N subscribers over C chats; each chat gets a user message at a
//! fixed interval, chosen so that all clients together receive `--rate`
//! frames a second (one run = the user message, a short scripted reply in
//! chunks, and the status and run events, each fanned out to the chat's
//! subscribers). Two latencies:
//!
//! - post → delivery: the message text carries the client's clock at the
//!   moment it sent `POST /messages` (`lat:<µs>`); every subscriber that
//!   receives its `message.created` subtracts that from its own clock (one
//!   machine, one clock; includes the HTTP request and the durable commit).
//! - created → delivery: every frame's `created_at` (the server's clock,
//!   truncated to the millisecond, so this reads up to 1 ms high) against the
//!   receipt time; apart for `message.delta` (ephemeral: published as soon as
//!   it is stamped, so this is the fan-out alone) and durable events (stamped
//!   before their commit, so this includes the store write).
//!
//! Touches the gateway (REST, `/ws`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::BenchError;
use crate::api::{Chat, Script, Target};
use crate::conn::{self, Socket};
use crate::frame::{self, Kind};
use crate::procfs;
use crate::table::{Samples, Table, thousands};

/// Samples kept per client and kind, at most (bounds memory).
const MAX_SAMPLES: usize = 1 << 20;
/// How long a poster waits for its chat's previous run to end.
const RUN_WAIT: Duration = Duration::from_secs(10);

/// Options of `latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Target deliveries per second, all clients together.
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// Seconds to keep posting.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Clients, spread over the chats (at least one per chat).
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Chats, each posted to at a fixed interval.
    #[arg(long, default_value_t = 50)]
    chats: usize,
    /// Words of the scripted reply (one `message.delta` each).
    #[arg(long, default_value_t = 8)]
    words: usize,
    /// The server's pid (for its CPU time); found from the port when absent.
    #[arg(long)]
    pid: Option<u32>,
}

/// What every client task shares.
struct Shared {
    measuring: AtomicBool,
    warmup_frames: AtomicU64,
    stop: CancellationToken,
}

/// What one client measured.
#[derive(Default)]
struct Seen {
    frames: u64,
    post: Vec<u32>,
    delta: Vec<u32>,
    durable: Vec<u32>,
    closed: Option<u16>,
}

/// What one poster did.
#[derive(Default, Clone, Copy)]
struct Posted {
    accepted: u64,
    busy: u64,
    late: u64,
}

/// Runs the scenario and prints its table.
pub async fn run(target: &Target, args: LatencyArgs) -> Result<(), BenchError> {
    if args.chats == 0 || args.subscribers < args.chats || args.rate == 0 || args.words == 0 {
        return Err(BenchError::Usage(
            "need --chats >= 1, --subscribers >= --chats, --rate and --words >= 1",
        ));
    }
    let script = Script { words: args.words, auto_replies: 0, delay_ms: 0, tokens_per_sec: 0 };
    target.put_flow("bench-latency", &script.flow("bench latency")).await?;
    let chats = target.create_chats("bench-latency", args.chats).await?;
    let sockets =
        conn::open_many(target, &chats, args.subscribers, conn::Setup::subscribed(16 << 10)).await?;
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        warmup_frames: AtomicU64::new(0),
        stop: CancellationToken::new(),
    });
    let (ended_tx, ended_rx): (Vec<_>, Vec<_>) = (0..args.chats).map(|_| watch::channel(0u64)).unzip();
    let mut clients = JoinSet::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let sentinel = ended_tx.get(i).cloned();
        clients.spawn(listen(socket, sentinel, shared.clone()));
    }
    // Warm-up: one run per chat, which also tells how many frames a run is.
    warm_up(target, &chats, &ended_rx).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_run = shared.warmup_frames.load(Ordering::Relaxed) as f64 / args.subscribers as f64;
    let interval = Duration::from_secs_f64(per_run * args.subscribers as f64 / args.rate as f64);

    let pid = procfs::server_pid(args.pid, target.addr.port()).ok();
    let cpu_before = procfs::CpuClock::read(pid.as_deref());
    shared.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let plan = Plan { interval, chats: args.chats, duration: Duration::from_secs(args.duration) };
    let posted = post_all(target, &chats, &ended_rx, plan).await?;
    let window = started.elapsed().as_secs_f64();
    let cpu = procfs::CpuClock::read(pid.as_deref()).rows(&cpu_before, window);
    shared.stop.cancel();
    let mut seen = Vec::with_capacity(args.subscribers);
    while let Some(s) = clients.join_next().await {
        seen.push(s.unwrap_or_default());
    }
    let run = Measured { per_run, interval, window, posted, cpu };
    print(&args, &run, seen);
    Ok(())
}

async fn warm_up(target: &Target, chats: &[Chat], ended: &[watch::Receiver<u64>]) -> Result<(), BenchError> {
    for chat in chats {
        target.post_message(&chat.id, "warm-up").await?;
    }
    for rx in ended {
        wait_runs(rx.clone(), 1).await?;
    }
    Ok(())
}

/// Waits until the chat's sentinel has seen `count` runs end.
async fn wait_runs(mut rx: watch::Receiver<u64>, count: u64) -> Result<(), BenchError> {
    let wait = rx.wait_for(|n| *n >= count);
    match tokio::time::timeout(RUN_WAIT, wait).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => {
            Err(BenchError::Protocol { what: "latency", detail: "a sentinel client closed".into() })
        }
        Err(_) => Err(BenchError::Timeout("a run to end")),
    }
}

#[derive(Clone, Copy)]
struct Plan {
    interval: Duration,
    chats: usize,
    duration: Duration,
}

/// One poster per chat, staggered over the interval; waits for all runs to end.
async fn post_all(
    target: &Target,
    chats: &[Chat],
    ended: &[watch::Receiver<u64>],
    plan: Plan,
) -> Result<Vec<Posted>, BenchError> {
    let start = tokio::time::Instant::now();
    let posters = chats.iter().zip(ended).enumerate().map(|(i, (chat, rx))| {
        let first = start + plan.interval.mul_f64(i as f64 / plan.chats as f64);
        post_loop(target, chat, rx.clone(), first, start + plan.duration, plan.interval)
    });
    futures::future::try_join_all(posters).await
}

async fn post_loop(
    target: &Target,
    chat: &Chat,
    ended: watch::Receiver<u64>,
    first: tokio::time::Instant,
    until: tokio::time::Instant,
    interval: Duration,
) -> Result<Posted, BenchError> {
    let mut done = Posted::default();
    let mut next = first;
    let ticks = (until.saturating_duration_since(first).as_secs_f64() / interval.as_secs_f64()).ceil() as u64;
    for _ in 0..ticks {
        tokio::time::sleep_until(next).await;
        // Runs so far: the warm-up plus the accepted posts.
        wait_runs(ended.clone(), 1 + done.accepted).await?;
        let now = tokio::time::Instant::now();
        if now > next + interval / 10 {
            done.late += 1;
        }
        match target.post_message(&chat.id, &frame::probe_text(unix_micros())).await? {
            202 => done.accepted += 1,
            _ => done.busy += 1,
        }
        next = (next + interval).max(now);
    }
    wait_runs(ended, 1 + done.accepted).await?;
    Ok(done)
}

fn unix_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Reads frames until `stop`, taking samples while measuring; a sentinel
/// counts the runs of its chat that ended.
async fn listen(mut socket: Socket, sentinel: Option<watch::Sender<u64>>, shared: Arc<Shared>) -> Seen {
    let mut seen = Seen::default();
    loop {
        let msg = tokio::select! {
            _ = shared.stop.cancelled() => break,
            msg = socket.next() => msg,
        };
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(f))) => {
                seen.closed = Some(f.map_or(1005, |f| u16::from(f.code)));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                seen.closed = Some(1006);
                break;
            }
        };
        let now = unix_micros();
        let Kind::Event(kind) = frame::kind(&text) else { continue };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        if measuring {
            seen.frames += 1;
            if let Some(ms) = frame::created_at_ms(&text) {
                let samples = if kind == "message.delta" { &mut seen.delta } else { &mut seen.durable };
                push(samples, now - ms * 1000);
            }
        } else {
            shared.warmup_frames.fetch_add(1, Ordering::Relaxed);
        }
        match kind {
            "message.created" if measuring => {
                if let Some(sent) = frame::probe_micros(&text) {
                    push(&mut seen.post, now - sent);
                }
            }
            "chat.status" if frame::run_ended(&text).is_some() => {
                if let Some(s) = &sentinel {
                    s.send_modify(|n| *n += 1);
                }
            }
            _ => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    seen
}

fn push(samples: &mut Vec<u32>, micros: i64) {
    if samples.len() < MAX_SAMPLES {
        samples.push(micros.clamp(0, i64::from(u32::MAX)) as u32);
    }
}

/// What the measured window gave, besides the clients' samples.
struct Measured {
    per_run: f64,
    interval: Duration,
    window: f64,
    posted: Vec<Posted>,
    cpu: [(&'static str, String); 3],
}

fn print(args: &LatencyArgs, run: &Measured, seen: Vec<Seen>) {
    let Measured { per_run, interval, window, .. } = *run;
    let posted = &run.posted;
    let frames: u64 = seen.iter().map(|s| s.frames).sum();
    let closed = seen.iter().filter(|s| s.closed.is_some()).count();
    let (mut post, mut delta, mut durable) = (Vec::new(), Vec::new(), Vec::new());
    for s in seen {
        post.extend(s.post);
        delta.extend(s.delta);
        durable.extend(s.durable);
    }
    let (post, delta, durable) = (Samples::new(post), Samples::new(delta), Samples::new(durable));
    let sum = |f: fn(&Posted) -> u64| posted.iter().map(f).sum::<u64>();
    let title = format!(
        "latency: {} subscribers over {} chats, target {} deliveries/s",
        thousands(args.subscribers as u64),
        args.chats,
        thousands(args.rate)
    );
    let mut t = Table::new(title);
    t.row("frames per run per subscriber", format!("{per_run:.1}"))
        .row("post interval per chat, ms", format!("{:.1}", interval.as_secs_f64() * 1000.0))
        .row("window, s", format!("{window:.2}"))
        .row("posts accepted / busy (409)", format!("{} / {}", sum(|p| p.accepted), sum(|p| p.busy)))
        .row("posts late (> 10% of interval)", sum(|p| p.late))
        .row("posts/s", format!("{:.0}", sum(|p| p.accepted) as f64 / window))
        .row("deliveries/s achieved", thousands((frames as f64 / window) as u64))
        .row("post->delivery samples", thousands(post.len() as u64))
        .row("post->delivery p50/p99/p99.9/max, ms", post.summary_ms())
        .row("delta created->delivery samples", thousands(delta.len() as u64))
        .row("delta created->delivery p50/p99/p99.9/max, ms", delta.summary_ms())
        .row("durable created->delivery samples", thousands(durable.len() as u64))
        .row("durable created->delivery p50/p99/p99.9/max, ms", durable.summary_ms())
        .row("clients closed early", closed);
    for (metric, value) in &run.cpu {
        t.row(*metric, value);
    }
    t.print();
}
