//! Resumable in-flight answers (contract §4, `message.snapshot`): a client
//! that subscribes, resubscribes or lags while a message is streamed gets the
//! text so far, then only the deltas after it, so snapshot + deltas equal the
//! stored content exactly; and a partial is gone once its message is stored.
//! On one node, across two nodes on one Redis or a Redis Cluster, over
//! WebSocket and SSE.

use std::collections::HashMap;
use std::sync::Arc;

use flowgate::bus::memory::MemoryBus;
use flowgate::bus::partials::Chunk;
use flowgate::bus::{Bus, Frame};
use flowgate::ledger::Journal;
use flowgate::model::{ChatId, EventKind};
use flowgate::realtime::feed::{FeedEnd, Follow, FrameSink};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cluster::node;
use crate::engine_runs::harness::{Harness, two_agent};
use crate::support::app::{TestApp, WAIT, chat_id, spawn_app};
use crate::support::redis_server::RedisServer;
use crate::support::ws::{Ws, connect};

/// Words per streamed reply (each its own delta; `é` makes bytes and chars
/// differ).
const WORDS: usize = 60;

/// A flow whose assistant streams `turns` long replies, `delay_ms` per word.
fn streaming(delay_ms: u64, turns: usize) -> Value {
    let replies: Vec<String> =
        (0..turns).map(|t| (0..WORDS).map(|w| format!("t{t}·w{w}é ")).collect()).collect();
    json!({
        "name": "streaming",
        "models": {"script": {"provider": "scripted", "replies": replies, "delay_ms": delay_ms}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER",
             "max_consecutive_auto_reply": turns - 1, "default_auto_reply": "Go on."},
            {"name": "assistant", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "two_agent"}
    })
}

/// What one client assembled of each streamed message: its snapshot (if
/// any), then each delta, which must start exactly where the text so far
/// ends (nothing missing, nothing doubled).
#[derive(Default)]
struct Assembled {
    partial: HashMap<String, String>,
    snapshots: Vec<String>,
    /// Messages whose stored content was matched against what was assembled.
    checked: usize,
}

impl Assembled {
    fn take(&mut self, frame: &Value) {
        let data = &frame["data"];
        match frame["type"].as_str().unwrap_or_default() {
            "message.snapshot" => {
                let content = data["content"].as_str().unwrap().to_owned();
                self.snapshots.push(content.clone());
                self.partial.insert(data["message_id"].as_str().unwrap().to_owned(), content);
            }
            "message.delta" => {
                let text = self.partial.entry(data["message_id"].as_str().unwrap().to_owned()).or_default();
                assert_eq!(
                    data["offset"].as_u64(),
                    Some(text.len() as u64),
                    "a delta out of step after {text:?}"
                );
                text.push_str(data["delta"].as_str().unwrap());
            }
            "message.created" => {
                if let Some(text) = self.partial.remove(data["id"].as_str().unwrap()) {
                    assert_eq!(
                        text,
                        data["content"].as_str().unwrap(),
                        "snapshot + deltas != stored content"
                    );
                    self.checked += 1;
                }
            }
            _ => {}
        }
    }
}

/// Reads `ws` to the run's end, assembling; every streamed message checked.
async fn assemble_to_the_end(ws: &mut Ws, into: &mut Assembled) {
    loop {
        let frame = ws.next().await;
        into.take(&frame);
        if frame["type"] == "run.completed" {
            assert!(into.partial.is_empty(), "a streamed message was never stored: {:?}", into.partial);
            return;
        }
    }
}

/// Starts a run on `driver` (watched from `driver`) and, after a seeded
/// random number of deltas each, opens `joiners` chat-bound sockets on
/// `joined`; then checks what every socket assembled, and that every
/// message's partial was gone by the time its `message.created` came.
async fn joiners_assemble_exactly(driver: &TestApp, joined: &TestApp, seed: u64, joiners: usize) {
    let turns = 4;
    driver.put_flow("streaming", streaming(3, turns)).await;
    let chat = driver.create_chat("streaming").await;
    let mut watcher = connect(driver, &format!("/chats/{chat}/ws")).await;
    driver.say(&chat, "go").await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut at: Vec<usize> = (0..joiners).map(|_| rng.random_range(1..turns * WORDS - 4)).collect();
    at.sort_unstable();
    let (mut sockets, mut deltas, mut watched) = (Vec::new(), 0, Assembled::default());
    loop {
        let frame = watcher.next().await;
        watched.take(&frame);
        match frame["type"].as_str().unwrap() {
            "message.delta" => deltas += 1,
            "message.created" => {
                let partials = driver.state.bus.partials(&chat_id(&chat)).await.unwrap();
                let id = frame["data"]["id"].as_str().unwrap();
                assert!(partials.iter().all(|p| p.message_id != id), "{id}'s partial outlived it");
            }
            "run.completed" => break,
            _ => {}
        }
        while at.first().is_some_and(|&n| n <= deltas) {
            at.remove(0);
            sockets.push(connect(joined, &format!("/chats/{chat}/ws")).await);
        }
    }
    assert!(watched.checked >= 2, "the watcher saw every reply streamed from its start");
    let mut snapshots = 0;
    for ws in &mut sockets {
        let mut got = Assembled::default();
        assemble_to_the_end(ws, &mut got).await;
        snapshots += got.snapshots.iter().filter(|s| !s.is_empty()).count();
    }
    assert!(snapshots > 0, "no joiner came mid-answer; the test proved nothing");
    for app in [driver, joined] {
        assert!(app.state.bus.partials(&chat_id(&chat)).await.unwrap().is_empty(), "partials left over");
    }
}

#[tokio::test]
async fn subscribers_joining_at_random_moments_assemble_every_streamed_answer_exactly() {
    let app = spawn_app().await;
    joiners_assemble_exactly(&app, &app, 10, 12).await;
}

#[tokio::test]
async fn subscribers_on_node_b_joining_a_run_streamed_on_node_a_assemble_it_exactly_and_redis_keeps_no_partial()
 {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    joiners_assemble_exactly(&a, &b, 11, 12).await;
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("fg:*partial*").query_async(&mut conn).await.unwrap();
    assert!(keys.is_empty(), "partial keys left in redis: {keys:?}");
}

#[tokio::test]
async fn subscribers_on_one_node_joining_a_run_streamed_on_another_over_a_redis_cluster_assemble_it_exactly()
{
    let Some(cluster) = crate::support::redis_cluster::RedisCluster::shared() else { return };
    let a = crate::redis_cluster::node(&cluster, "a").await;
    let b = crate::redis_cluster::node(&cluster, "b").await;
    joiners_assemble_exactly(&a, &b, 12, 8).await;
}

#[tokio::test]
async fn a_resubscribe_mid_answer_gets_the_text_so_far_then_the_rest() {
    let app = spawn_app().await;
    app.put_flow("streaming", streaming(20, 1)).await;
    let chat = app.create_chat("streaming").await;
    let mut ws = connect(&app, "/ws").await;
    assert_eq!(ws.call(json!({"op": "subscribe", "chat_id": chat})).await["type"], "subscribed");
    app.say(&chat, "go").await;
    let (mut got, mut last_seq, mut deltas) = (Assembled::default(), 0, 0);
    while deltas < 5 {
        let frame = ws.next().await;
        got.take(&frame);
        last_seq = frame["seq"].as_u64().unwrap_or(last_seq);
        deltas += usize::from(frame["type"] == "message.delta");
    }
    let before: String = got.partial.values().next().unwrap().clone();
    ws.send(json!({"op": "subscribe", "chat_id": chat, "after_seq": last_seq})).await;
    let mut resubscribed = false;
    loop {
        let frame = ws.next().await;
        got.take(&frame);
        match frame["type"].as_str().unwrap() {
            "subscribed" => resubscribed = true,
            "message.snapshot" => {
                assert!(resubscribed);
                let content = frame["data"]["content"].as_str().unwrap();
                assert!(content.starts_with(&before), "{content:?} does not extend {before:?}");
            }
            "run.completed" => break,
            _ => {}
        }
    }
    assert_eq!((got.snapshots.len(), got.checked), (1, 1));
}

/// The `data:` of each complete SSE event in `text` (consumed from it).
fn sse_events(text: &mut String) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(end) = text.find("\n\n") {
        let block: String = text.drain(..end + 2).collect();
        let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        if !data.is_empty() {
            out.push(serde_json::from_str(&data).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn an_sse_stream_opened_mid_answer_starts_with_a_snapshot() {
    use futures::StreamExt;
    let app = spawn_app().await;
    app.put_flow("streaming", streaming(20, 1)).await;
    let chat = app.create_chat("streaming").await;
    let mut ws = connect(&app, &format!("/chats/{chat}/ws")).await;
    app.say(&chat, "go").await;
    ws.until(|f| f["type"] == "message.delta" && f["data"]["offset"].as_u64() > Some(0)).await;
    let resp = app
        .client
        .get(app.url(&format!("/chats/{chat}/events?after_seq=0")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (mut stream, mut text, mut got) = (resp.bytes_stream(), String::new(), Assembled::default());
    'read: loop {
        let chunk = tokio::time::timeout(WAIT, stream.next()).await.expect("events arrive").unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        for event in sse_events(&mut text) {
            got.take(&event);
            if event["type"] == "run.completed" {
                break 'read;
            }
        }
    }
    assert_eq!(got.checked, 1);
    assert!(got.snapshots.first().is_some_and(|s| !s.is_empty()), "no snapshot: {:?}", got.snapshots);
}

/// A sink that records frames and, once, holds the first snapshot until
/// released (so the feed is stuck while deltas pile up behind it).
struct HeldSink {
    frames: mpsc::UnboundedSender<Arc<Frame>>,
    hold: Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>,
}

impl FrameSink for HeldSink {
    fn push(&mut self, frame: Arc<Frame>) -> bool {
        self.frames.send(frame).is_ok()
    }

    async fn replay(&mut self, frame: Arc<Frame>) -> bool {
        if frame.kind == EventKind::MessageSnapshot
            && let Some((held, release)) = self.hold.take()
        {
            let _ = held.send(());
            let _ = release.await;
        }
        self.frames.send(frame).is_ok()
    }
}

/// A feed of a chat from seq 0 in its own task, into a [`HeldSink`] that
/// (when `held`) holds its first snapshot until [`HeldFeed::release`].
struct HeldFeed {
    frames: mpsc::UnboundedReceiver<Arc<Frame>>,
    on_hold: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<FeedEnd>,
}

impl HeldFeed {
    fn start(journal: &Journal, chat: &ChatId, held: bool) -> HeldFeed {
        let (tx, frames) = mpsc::unbounded_channel();
        let ((hold, on_hold), (release, released)) = (oneshot::channel(), oneshot::channel());
        let hold = held.then_some((hold, released));
        let (journal, chat, cancel) = (journal.clone(), chat.clone(), CancellationToken::new());
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let sink = HeldSink { frames: tx, hold };
            Follow { journal: &journal, chat_id: &chat, after_seq: 0, sink, cancel: &stop }.run().await
        });
        HeldFeed { frames, on_hold: held.then_some(on_hold), release: held.then_some(release), cancel, task }
    }

    /// Waits until the feed holds its first snapshot.
    async fn held(&mut self) {
        let on_hold = self.on_hold.take().expect("a held feed");
        tokio::time::timeout(WAIT, on_hold).await.expect("the feed reaches its snapshot").unwrap();
    }

    fn release(&mut self) {
        self.release.take().expect("a held feed").send(()).unwrap();
    }

    async fn next(&mut self) -> Arc<Frame> {
        tokio::time::timeout(WAIT, self.frames.recv()).await.expect("frames arrive").unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.task).await.expect("the feed stops").unwrap();
    }
}

#[tokio::test]
async fn a_feed_that_lagged_behind_dropped_deltas_sends_a_fresh_snapshot_instead_of_a_hole() {
    // Receivers of this bus lag after 4 frames.
    let h = Harness::with_bus(MemoryBus::with_capacity(4)).await;
    let chat: ChatId = h.chat(two_agent("ALWAYS", &["unused"], json!({}))).await;
    let words: Vec<String> = (0..16).map(|i| format!("w{i}é ")).collect();
    let mut full = String::new();
    let stream = async |full: &mut String, word: &str| {
        let offset = full.len() as u64;
        let chunk = Chunk { chat_id: &chat, message_id: "msg_lag", sender: "writer", offset, text: word };
        h.journal.publish_delta(&chunk).await;
        full.push_str(word);
    };
    stream(&mut full, &words[0]).await;
    let mut feed = HeldFeed::start(&h.journal, &chat, true);
    feed.held().await;
    for word in &words[1..14] {
        stream(&mut full, word).await; // 13 deltas into a buffer of 4: the feed lags
    }
    feed.release();
    let mut got = Assembled::default();
    let mut snapshots = 0;
    while got.partial.get("msg_lag").is_none_or(|text| text.len() < full.len()) {
        let frame = feed.next().await;
        snapshots += usize::from(frame.kind == EventKind::MessageSnapshot);
        got.take(&serde_json::from_str(frame.json.as_str()).unwrap());
    }
    assert_eq!(snapshots, 2, "the first snapshot, then a fresh one after the lag");
    for word in &words[14..] {
        stream(&mut full, word).await;
    }
    while got.partial["msg_lag"].len() < full.len() {
        got.take(&serde_json::from_str(feed.next().await.json.as_str()).unwrap());
    }
    assert_eq!(got.partial["msg_lag"], full);
    feed.stop().await;
}

#[tokio::test]
async fn a_delta_lost_on_its_way_between_nodes_is_closed_by_a_fresh_snapshot_not_left_a_hole() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Node b holds the chat and the feed; node a streams into the same Redis.
    let (a, h) = (
        crate::bus_redis::node(&server).await,
        Harness::with_bus(crate::bus_redis::node(&server).await).await,
    );
    let chat: ChatId = h.chat(two_agent("ALWAYS", &["unused"], json!({}))).await;
    let (mut full, words) = (String::new(), ["One ", "two ", "three ", "four ", "five"]);
    let stream = async |full: &mut String, word: &str| {
        let offset = full.len() as u64;
        let chunk = Chunk { chat_id: &chat, message_id: "msg_lost", sender: "writer", offset, text: word };
        tokio::time::timeout(WAIT, a.publish_delta(&chunk)).await.expect("in time").expect("published");
        full.push_str(word);
    };
    stream(&mut full, words[0]).await;
    let mut feed = HeldFeed::start(&h.journal, &chat, false);
    // The stored history, then the first snapshot: the feed's subscription is
    // live from here.
    while feed.next().await.kind != EventKind::MessageSnapshot {}
    stream(&mut full, words[1]).await;
    // "three " reaches the partial but its PUBLISH is lost on the way.
    let key = format!("fg:{{{chat}}}:partial:msg_lost");
    let mut conn = server.client().get_multiplexed_async_connection().await.unwrap();
    let _: u64 = redis::cmd("APPEND").arg(&key).arg(words[2]).query_async(&mut conn).await.unwrap();
    full.push_str(words[2]);
    stream(&mut full, words[3]).await;
    stream(&mut full, words[4]).await;
    let mut got = Assembled::default();
    got.take(&json!({"type": "message.snapshot", "data": {"message_id": "msg_lost", "content": words[0]}}));
    while got.partial["msg_lost"].len() < full.len() {
        got.take(&serde_json::from_str(feed.next().await.json.as_str()).unwrap());
    }
    assert_eq!(got.partial["msg_lost"], full, "snapshot + deltas hold every word");
    assert_eq!(got.snapshots.len(), 2, "the first snapshot and one fresh one: {:?}", got.snapshots);
    assert!(got.snapshots[1].starts_with("One two three four "), "the fresh snapshot closed the hole");
    feed.stop().await;
}

#[tokio::test]
async fn deltas_still_queued_behind_a_message_the_catch_up_delivered_whole_are_dropped() {
    // Receivers of this bus lag after 4 frames.
    let h = Harness::with_bus(MemoryBus::with_capacity(4)).await;
    let chat: ChatId = h.chat(two_agent("ALWAYS", &["unused"], json!({}))).await;
    let record = h.journal.store.get_chat(&chat).await.unwrap().expect("the chat");
    // The change that will store the message being streamed.
    let change =
        flowgate::ledger::transitions::post_message(&record, "One two three four five six", &[]).unwrap();
    let id = change.messages[0].id.clone();
    let words = ["One ", "two ", "three ", "four ", "five ", "six"];
    let mut offset = 0;
    let mut stream = async |word: &str| {
        let chunk = Chunk { chat_id: &chat, message_id: &id, sender: "writer", offset, text: word };
        h.journal.publish_delta(&chunk).await;
        offset += word.len() as u64;
    };
    stream(words[0]).await;
    let mut feed = HeldFeed::start(&h.journal, &chat, true);
    feed.held().await;
    for word in &words[1..] {
        stream(word).await;
    }
    // Stored while the feed is stuck: the catch-up after its lag delivers the
    // message whole, ahead of its last deltas still queued live.
    h.journal.forget_partials(&chat, Some(&id)).await;
    h.journal.commit(change).await.unwrap();
    feed.release();
    // Read until a probe delta of a new message, published last: whatever
    // was still queued came before it.
    let probe = Chunk { chat_id: &chat, message_id: "msg_probe", sender: "writer", offset: 0, text: "probe" };
    let (mut created, mut probed) = (false, false);
    while !probed {
        let value: Value = serde_json::from_str(feed.next().await.json.as_str()).unwrap();
        let data = &value["data"];
        match value["type"].as_str().unwrap() {
            "message.created" if data["id"] == id.as_str() => {
                assert_eq!(data["content"], "One two three four five six");
                created = true;
                h.journal.publish_delta(&probe).await;
            }
            "message.delta" | "message.snapshot" if data["message_id"] == id.as_str() => {
                assert!(!created, "a {} of {id} after its message.created: {data}", value["type"]);
            }
            "message.delta" => probed = data["message_id"] == "msg_probe",
            _ => {}
        }
    }
    feed.stop().await;
}
