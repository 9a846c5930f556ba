//! `posts`: how many `POST /chats/{id}/messages` a node accepts per second.
//! Each chat runs a one-step flow (the assistant answers `TERMINATE`, the
//! proxy never asks), so a chat is ready again a moment after each post; one
//! worker per chat posts, waits for the run to finish, and posts again.
//! Every accepted post is three durable commits: the user's message with
//! `run.started`, the assistant's message, and the completion.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::task::JoinSet;

use crate::BenchError;
use crate::api::Target;
use crate::table::{Samples, Table};

/// Options of `posts`.
#[derive(Debug, Args)]
pub struct PostsArgs {
    /// Chats, each with one worker posting to it.
    #[arg(long, default_value_t = 64)]
    chats: usize,
    /// Seconds of posting.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// What one worker saw.
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    busy: u64,
    micros: Vec<u32>,
}

/// Runs the scenario and prints its table.
pub async fn run(target: &Target, args: PostsArgs) -> Result<(), BenchError> {
    if args.chats == 0 || args.duration == 0 {
        return Err(BenchError::Usage("--chats and --duration must be at least 1"));
    }
    let flow = json!({
        "name": "bench posts",
        "models": {"s": {"provider": "scripted", "replies": ["done TERMINATE"]}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER"},
            {"name": "a", "kind": "assistant", "model": "s"}
        ],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    });
    target.put_flow("bench-posts", &flow).await?;
    let chats = target.create_chats("bench-posts", args.chats).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let mut workers = JoinSet::new();
    for chat in chats {
        let target = target.clone();
        workers.spawn(async move { worker(&target, &chat.id, until).await });
    }
    let mut total = Tally::default();
    while let Some(done) = workers.join_next().await {
        let t = done.unwrap_or_else(|_| Ok(Tally::default()))?;
        total.accepted += t.accepted;
        total.busy += t.busy;
        total.micros.extend(t.micros);
    }
    let secs = started.elapsed().as_secs_f64();
    let latency = Samples::new(total.micros);
    let mut t = Table::new(format!("posts: {} chats for {} s", args.chats, args.duration));
    t.row("accepted (202)", total.accepted)
        .row("busy (409, retried)", total.busy)
        .row("accepted posts/s", format!("{:.0}", total.accepted as f64 / secs))
        .row("durable commits/s (3 per post)", format!("{:.0}", 3.0 * total.accepted as f64 / secs))
        .row("202 latency p50/p99/p99.9/max, ms", latency.summary_ms());
    t.print();
    Ok(())
}

/// Posts to one chat until `until`, one run at a time.
async fn worker(target: &Target, chat_id: &str, until: Instant) -> Result<Tally, BenchError> {
    let mut t = Tally::default();
    while Instant::now() < until {
        let sent = Instant::now();
        match target.post_message(chat_id, "go").await? {
            202 => {
                t.accepted += 1;
                t.micros.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            // The previous run is still finishing: try again at once.
            _ => t.busy += 1,
        }
    }
    Ok(t)
}
