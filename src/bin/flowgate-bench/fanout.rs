//! `fanout`: N subscribers over M chats; one message posted to each chat
//! starts a scripted run that streams E `message.delta` chunks, each fanned
//! out to every subscriber of the chat. Counts every frame every client
//! receives until its chat reports `completed`; deliveries/s is that total
//! over the wall time from the first post to the last client done. With
//! many chats, posting (one durable commit per message) takes part of that
//! time, so the rate once every message was posted is shown too.
//!
//! Each client also assembles every streamed message from its snapshots and
//! deltas and checks it against the stored text ([`crate::assembly`]), and
//! times its own stream (first to last delta) for the rate each chat
//! achieved, which `--tokens-per-sec` paces.
//!
//! Touches the gateway (REST, `/ws`) and `/proc` (the server's CPU time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::BenchError;
use crate::api::{STREAMER, Script, Target};
use crate::assembly::{Assembly, Counts};
use crate::conn::{self, Socket};
use crate::frame::{self, Kind};
use crate::procfs;
use crate::table::{Table, thousands};

/// Options of `fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Clients, spread over the chats (client i to chat i mod chats).
    #[arg(long)]
    subscribers: usize,
    /// Chats, each running one scripted reply stream.
    #[arg(long, default_value_t = 1)]
    chats: usize,
    /// `message.delta` events per chat (rounded up to whole replies).
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Words per scripted reply (one delta each); longer runs use several replies.
    #[arg(long, default_value_t = 500)]
    words: usize,
    /// The scripted model's pause before each chunk, ms (0: as fast as it can).
    #[arg(long, default_value_t = 0, conflicts_with = "tokens_per_sec")]
    delay_ms: u64,
    /// The scripted model's pace per chat, chunks per second, exact on
    /// average (0: as fast as it can).
    #[arg(long, default_value_t = 0)]
    tokens_per_sec: u32,
    /// Read buffer per client, bytes.
    #[arg(long, default_value_t = 64 << 10)]
    read_buffer: usize,
    /// Seconds a client waits for its chat to complete.
    #[arg(long, default_value_t = 120)]
    run_timeout_secs: u64,
    /// The server's pid (for its CPU time); found from the port when absent.
    #[arg(long)]
    pid: Option<u32>,
    /// Post the messages through this gateway instead (another node on the
    /// same Redis), so every event crosses Redis on its way to the clients.
    #[arg(long)]
    post_url: Option<String>,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    frames: u64,
    /// Frames received once every message was posted (the steady state).
    frames_after_posting: u64,
    deltas: u64,
    /// When the first and the last delta arrived.
    first_delta: Option<Instant>,
    last_delta: Option<Instant>,
    streams: Counts,
    bytes: u64,
    ended: Option<Instant>,
    failed: bool,
    closed: Option<u16>,
    timed_out: bool,
}

/// Runs the scenario and prints its table.
pub async fn run(target: &Target, args: FanoutArgs) -> Result<(), BenchError> {
    if args.subscribers == 0 || args.chats == 0 || args.events == 0 || args.words == 0 {
        return Err(BenchError::Usage("--subscribers, --chats, --events and --words must be at least 1"));
    }
    let pid = procfs::server_pid(args.pid, target.addr.port()).ok();
    let other_node;
    let poster = match &args.post_url {
        Some(url) => {
            other_node = target.on(url)?;
            &other_node
        }
        None => target,
    };
    let words = (args.words as u64).min(args.events) as usize;
    let replies = args.events.div_ceil(words as u64);
    let auto_replies = u32::try_from(replies - 1).map_err(|_| BenchError::Usage("--events is too large"))?;
    let script = Script { words, auto_replies, delay_ms: args.delay_ms, tokens_per_sec: args.tokens_per_sec };
    target.put_flow("bench-fanout", &script.flow("bench fanout")).await?;
    let chats = target.create_chats("bench-fanout", args.chats).await?;
    let sockets =
        conn::open_many(target, &chats, args.subscribers, conn::Setup::subscribed(args.read_buffer)).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.run_timeout_secs);
    let posted = Arc::new(AtomicBool::new(false));
    let mut clients = JoinSet::new();
    for socket in sockets {
        clients.spawn(follow(socket, deadline, posted.clone()));
    }
    let sent_before = target.metric("flowgate_ws_frames_sent_total").await?.unwrap_or(0.0);
    let cpu_before = procfs::CpuClock::read(pid.as_deref());
    let started = Instant::now();
    futures::stream::iter(&chats)
        .map(|c| poster.post_message(&c.id, "go"))
        .buffer_unordered(32)
        .try_collect::<Vec<u16>>()
        .await?;
    let posting = started.elapsed().as_secs_f64();
    posted.store(true, Ordering::Relaxed);
    let mut tallies = Vec::with_capacity(args.subscribers);
    while let Some(t) = clients.join_next().await {
        tallies.push(t.unwrap_or_default());
    }
    let cpu_after = procfs::CpuClock::read(pid.as_deref());
    let sent_after = target.metric("flowgate_ws_frames_sent_total").await?.unwrap_or(0.0);

    let report = Report { args: &args, script, tallies, started, posting, cpu: (cpu_before, cpu_after) };
    report.print((sent_after - sent_before) as u64);
    Ok(())
}

/// Reads `socket` until its chat's run ends, the server closes it, or `deadline`.
async fn follow(mut socket: Socket, deadline: tokio::time::Instant, posted: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut streams = Assembly::new(STREAMER);
    loop {
        let Ok(msg) = tokio::time::timeout_at(deadline, socket.next()).await else {
            t.timed_out = true;
            break;
        };
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(f))) => {
                t.closed = Some(f.map_or(1005, |f| u16::from(f.code)));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                t.closed = Some(1006);
                break;
            }
        };
        t.frames += 1;
        t.frames_after_posting += u64::from(posted.load(Ordering::Relaxed));
        t.bytes += text.len() as u64;
        match frame::kind(&text) {
            Kind::Event("message.delta") => {
                let now = Instant::now();
                t.first_delta.get_or_insert(now);
                t.last_delta = Some(now);
                t.deltas += 1;
                streams.delta(frame::delta(&text), now);
            }
            Kind::Event("message.snapshot") => match frame::message_text(&text) {
                Some((id, _, content)) => streams.snapshot(&id, content),
                None => streams.delta(None, Instant::now()),
            },
            Kind::Event("message.created") => {
                if let Some((id, sender, content)) = frame::message_text(&text) {
                    streams.created(&id, &sender, &content);
                }
            }
            Kind::Event("chat.status") => {
                if let Some(status) = frame::run_ended(&text) {
                    t.ended = Some(Instant::now());
                    t.failed = status == "error";
                    break;
                }
            }
            Kind::Event(_) | Kind::Control => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    t.streams = streams.finish();
    t
}

/// A client's own delta rate over its run: deltas after its first over the
/// time from its first delta to its last (the pauses between replies, each
/// a durable commit and the next model step, included).
fn run_rate(t: &Tally) -> Option<f64> {
    let span = t.last_delta?.duration_since(t.first_delta?).as_secs_f64();
    (t.deltas > 1 && span > 0.0).then(|| (t.deltas - 1) as f64 / span)
}

/// Sorted.
fn rates(rates: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut rates: Vec<f64> = rates.collect();
    rates.sort_by(f64::total_cmp);
    rates
}

struct Report<'a> {
    args: &'a FanoutArgs,
    script: Script,
    tallies: Vec<Tally>,
    started: Instant,
    posting: f64,
    cpu: (procfs::CpuClock, procfs::CpuClock),
}

impl Report<'_> {
    fn print(&self, sent_by_server: u64) {
        let tallies = &self.tallies;
        let frames: u64 = tallies.iter().map(|t| t.frames).sum();
        let steady: u64 = tallies.iter().map(|t| t.frames_after_posting).sum();
        let deltas: u64 = tallies.iter().map(|t| t.deltas).sum();
        let bytes: u64 = tallies.iter().map(|t| t.bytes).sum();
        let last = tallies.iter().filter_map(|t| t.ended).max().unwrap_or_else(Instant::now);
        let wall = last.duration_since(self.started).as_secs_f64().max(1e-6);
        let expected = self.script.deltas_per_run() * tallies.len() as u64;
        let mut closes: BTreeMap<u16, u64> = BTreeMap::new();
        for code in tallies.iter().filter_map(|t| t.closed) {
            *closes.entry(code).or_default() += 1;
        }
        let closes = if closes.is_empty() {
            "none".to_owned()
        } else {
            closes.iter().map(|(c, n)| format!("{n}x{c}")).collect::<Vec<_>>().join(" ")
        };
        let a = self.args;
        let title = format!(
            "fanout: {} subscribers over {} chats, {} deltas per chat",
            thousands(a.subscribers as u64),
            a.chats,
            thousands(self.script.deltas_per_run())
        );
        let mut t = Table::new(title);
        t.row("subscribers per chat", format!("{:.1}", a.subscribers as f64 / a.chats as f64))
            .row("script", format!("{} words x {} replies", self.script.words, self.script.auto_replies + 1))
            .row("pace per chat", pace(self.script))
            .row("wall time, s", format!("{wall:.3}"))
            .row("of which posting the messages, s", format!("{:.3}", self.posting))
            .row("frames received", thousands(frames))
            .row("deliveries/s", thousands((frames as f64 / wall) as u64))
            .row("delta deliveries/s", thousands((deltas as f64 / wall) as u64))
            .row(
                "deliveries/s once all were posted",
                thousands((steady as f64 / (wall - self.posting).max(1e-6)) as u64),
            )
            .row("deltas received / expected", format!("{} / {}", thousands(deltas), thousands(expected)))
            .row("frames sent (server metric)", thousands(sent_by_server))
            .row("received MiB/s", format!("{:.1}", bytes as f64 / wall / (1 << 20) as f64))
            .row("clients completed", tallies.iter().filter(|t| t.ended.is_some()).count())
            .row("runs ended in error", tallies.iter().filter(|t| t.failed).count())
            .row("closed early (count x code)", closes)
            .row("timed out", tallies.iter().filter(|t| t.timed_out).count());
        self.stream_rows(&mut t);
        for (metric, value) in self.cpu.1.rows(&self.cpu.0, wall) {
            t.row(metric, value);
        }
        t.print();
    }
}

impl Report<'_> {
    /// The content check and each chat's own rate.
    fn stream_rows(&self, t: &mut Table) {
        let mut c = Counts::default();
        for tally in &self.tallies {
            c.add(&tally.streams);
        }
        let deltas: u64 = self.tallies.iter().map(|t| t.deltas).sum();
        t.row("message.snapshot frames", thousands(c.snapshots))
            .row("message.delta frames", thousands(deltas))
            .row("deltas past the text, closed by a snapshot", thousands(c.gaps_closed))
            .row("deltas past the text, never closed (gap)", thousands(c.gaps_open))
            .row("deltas overlapping a snapshot", thousands(c.overlapping))
            .row("deltas or snapshots after their message.created", thousands(c.late))
            .row("message.created frames", thousands(c.created))
            .row("streamed messages whole", thousands(c.whole))
            .row("streamed messages with a hole", thousands(c.holes))
            .row("streamed messages cut short (tail only in message.created)", thousands(c.cut_short))
            .row("replies that arrived with nothing streamed", thousands(c.unstreamed_replies))
            .row("messages streamed, never created", thousands(c.unfinished))
            .row("unreadable delta/snapshot frames", thousands(c.unreadable));
        let whole_run = rates(self.tallies.iter().filter_map(run_rate));
        let streaming = rates(self.tallies.iter().filter_map(|t| t.streams.streaming_rate()));
        for (what, rates) in
            [("first to last delta of the run", whole_run), ("while a reply streams", streaming)]
        {
            if let (Some(lo), Some(hi)) = (rates.first(), rates.last()) {
                let at = |q: f64| rates[((q * rates.len() as f64) as usize).min(rates.len() - 1)];
                t.row(
                    format!("deltas/s per client, {what}: min / p10 / median / max"),
                    format!("{lo:.1} / {:.1} / {:.1} / {hi:.1}", at(0.1), at(0.5)),
                );
            }
        }
    }
}

fn pace(s: Script) -> String {
    match (s.tokens_per_sec, s.delay_ms) {
        (0, 0) => "unpaced".to_owned(),
        (0, ms) => format!("{ms} ms before each chunk"),
        (rate, _) => format!("{rate} tokens/s"),
    }
}
