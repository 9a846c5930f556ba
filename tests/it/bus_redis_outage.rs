//! The Redis bus when Redis goes away or the bus does, two "nodes" on a
//! private `redis-server`: ping, resync and delivery after a restart; health
//! pings keeping a healthy connection; a hung Redis failing ping in bounded
//! time and frames flowing once it wakes; shutdown; and the gap-free feed of
//! one node following commits made on another across a restart.
//!
//! Without a `redis-server` binary every test prints `SKIPPED` and passes,
//! unless `FLOWGATE_REQUIRE_REDIS=1` (CI), which makes them fail.

use crate::bus_redis::{bounded, chat, frame, next_seq, node, numsub, until};
use crate::support::redis_server;

use std::sync::Arc;
use std::time::Duration;

use flowgate::bus::redis::{RedisBus, RedisBusOptions};
use flowgate::bus::{Bus, Frame};
use flowgate::ledger::transitions::{self, Refusal};
use flowgate::ledger::{Journal, UpdateError};
use flowgate::model::{Chat, ChatId, ChatRecord, ChatStatus, FlowId, TenantId, now};
use flowgate::realtime::feed::{FeedEnd, Follow, FrameSink};
use flowgate::store::ChatChange;
use flowgate::store::redis::{RedisStore, RedisStoreOptions};
use redis_server::RedisServer;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_ping_recovers_subscribers_resync_and_new_frames_arrive() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let ch = chat("chat_x");
    let mut sub = bounded(b.subscribe(&ch)).await.expect("subscribes");
    bounded(b.ping()).await.expect("up");
    let seen = *sub.resync.borrow_and_update();

    server.stop();
    until("the bus notices redis is gone", || async { b.ping().await.is_err() }).await;
    let refused = bounded(b.subscribe(&chat("chat_y"))).await;
    assert!(refused.is_err(), "no subscription while redis is down");
    assert!(bounded(a.publish(&ch, frame("chat_x", 1))).await.is_err());

    server.restart();
    until("the bus is back", || async { b.ping().await.is_ok() }).await;
    bounded(sub.resync.changed()).await.expect("resync changed");
    assert_ne!(*sub.resync.borrow(), seen);
    assert_eq!(numsub(&server, &ch).await, 1, "resubscribed");
    until("the publisher is back", || async { a.publish(&ch, frame("chat_x", 2)).await.is_ok() }).await;
    assert_eq!(next_seq(&mut sub).await, 2);
    assert!(sub.receiver.try_recv().is_err(), "nothing else arrived");
}

/// The number after `field` in `INFO <section>` (`total_connections_received:`,
/// `cmdstat_ping:calls=`).
async fn info_number(conn: &mut redis::aio::MultiplexedConnection, section: &str, field: &str) -> u64 {
    let info: String = bounded(redis::cmd("INFO").arg(section).query_async(conn)).await.expect("answers");
    let digits: String = info
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or("0")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_pings_keep_a_healthy_subscriber_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options =
        RedisBusOptions { health_interval: Duration::from_millis(20), ..RedisBusOptions::default() };
    let bus = bounded(RedisBus::connect(server.client(), options)).await.expect("connects");
    let sub = bounded(bus.subscribe(&chat("chat_x"))).await.expect("subscribes");
    let client = redis::Client::open(server.url()).expect("a client");
    let mut conn = bounded(client.get_multiplexed_async_connection()).await.expect("connects");
    let connections = info_number(&mut conn, "stats", "total_connections_received:").await;
    let poll = async {
        // Every PING counts, the listener's health checks included.
        while info_number(&mut conn, "commandstats", "cmdstat_ping:calls=").await < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    bounded(poll).await;
    assert_eq!(*sub.resync.borrow(), 0, "no reconnect");
    let after = info_number(&mut conn, "stats", "total_connections_received:").await;
    assert_eq!(after, connections, "no new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_fails_ping_and_frames_flow_again_once_it_wakes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = RedisBusOptions {
        timeout: Duration::from_millis(300),
        health_interval: Duration::from_millis(200),
        backoff_max: Duration::from_millis(200),
        ..RedisBusOptions::default()
    };
    let bus = bounded(RedisBus::connect(server.client(), options)).await.expect("connects");
    let ch = chat("chat_x");
    let mut sub = bounded(bus.subscribe(&ch)).await.expect("subscribes");
    server.freeze();
    let ping = tokio::time::timeout(Duration::from_secs(10), bus.ping())
        .await
        .expect("a ping fails within the bound rather than hang");
    server.thaw();
    assert!(ping.is_err(), "a hung redis is not ready");
    until("the bus is back", || async { bus.ping().await.is_ok() }).await;
    let flowing = async {
        // A frame published while the subscriber connection is still being
        // replaced may be lost (that is what `resync` is for): publish again.
        loop {
            if bus.publish(&ch, frame("chat_x", 3)).await.is_ok() {
                let got = tokio::time::timeout(Duration::from_millis(500), sub.receiver.recv()).await;
                if let Ok(Ok(got)) = got {
                    assert_eq!(got.seq, Some(3));
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    bounded(flowing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_subscriber_connection_and_refuses_new_subscriptions() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let bus = node(&server).await;
    let ch = chat("chat_x");
    let _sub = bounded(bus.subscribe(&ch)).await.expect("subscribes");
    assert_eq!(numsub(&server, &ch).await, 1);
    bounded(bus.shutdown()).await;
    until("redis sees the connection gone", || async { numsub(&server, &ch).await == 0 }).await;
    assert!(bounded(bus.subscribe(&ch)).await.is_err());
    assert!(bounded(bus.ping()).await.is_err());
}

/// A node: the shared store and this node's bus.
async fn journal(server: &RedisServer) -> Journal {
    let options = RedisStoreOptions { timeout: Duration::from_secs(5), ..RedisStoreOptions::default() };
    let store = bounded(RedisStore::connect(server.client(), options)).await.expect("the store connects");
    Journal { store: Arc::new(store), bus: Arc::new(node(server).await), metrics: Default::default() }
}

/// Applies a planned change through `journal`, retrying while Redis is away.
async fn update(
    journal: &Journal,
    chat_id: &ChatId,
    plan: fn(&ChatRecord) -> Result<ChatChange, Refusal>,
) -> ChatRecord {
    loop {
        match bounded(journal.update(chat_id, plan)).await {
            Ok(record) => return record,
            Err(UpdateError::Store(e)) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the change was refused: {e}"),
        }
    }
}

/// Records the seqs a feed delivers.
struct Recorder {
    last: Arc<std::sync::atomic::AtomicU64>,
    seen: mpsc::UnboundedSender<u64>,
}

impl FrameSink for Recorder {
    fn push(&mut self, frame: Arc<Frame>) -> bool {
        if let Some(seq) = frame.seq {
            self.last.store(seq, std::sync::atomic::Ordering::Relaxed);
            let _ = self.seen.send(seq);
        }
        true
    }

    async fn replay(&mut self, frame: Arc<Frame>) -> bool {
        self.push(frame)
    }
}

/// Follows a chat like a client: resubscribes from the last seq it saw
/// whenever the feed says so; sends every seq it receives to `seen`.
async fn follow(
    journal: Journal,
    chat_id: ChatId,
    seen: mpsc::UnboundedSender<u64>,
    cancel: CancellationToken,
) {
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let feed = Follow {
            journal: &journal,
            chat_id: &chat_id,
            after_seq: last.load(std::sync::atomic::Ordering::Relaxed),
            sink: Recorder { last: last.clone(), seen: seen.clone() },
            cancel: &cancel,
        };
        match feed.run().await {
            FeedEnd::Stopped => return,
            FeedEnd::Resubscribe(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the feed ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_on_one_node_gets_every_event_committed_on_another_once_across_a_redis_restart() {
    let Some(mut server) = RedisServer::start_with_aof() else {
        return;
    };
    let (writer, reader) = (journal(&server).await, journal(&server).await);
    let at = now();
    let chat = Chat {
        id: ChatId::new(),
        name: "followed".into(),
        from_type: "flow".into(),
        from_flow: FlowId::parse("demo").unwrap(),
        status: ChatStatus::Ready,
        created_at: at,
        updated_at: at,
        last_seq: 0,
        metadata: json!({}),
        error: None,
        pending_input: None,
    };
    let id = chat.id.clone();
    bounded(writer.commit(transitions::create(&TenantId::parse("tenant_a").unwrap(), chat)))
        .await
        .expect("creates");
    let (seen, mut received) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let follower = tokio::spawn(follow(reader, id.clone(), seen, cancel.clone()));

    let mut last = 0;
    for round in 0..6 {
        if round == 3 {
            server.stop();
            server.restart();
        }
        update(&writer, &id, |c| transitions::post_message(c, "hello", &[])).await;
        last = update(&writer, &id, transitions::cancel).await.chat.last_seq;
    }

    let mut got = Vec::new();
    while got.last() != Some(&last) {
        got.push(bounded(received.recv()).await.expect("the follower runs"));
    }
    assert_eq!(got, (1..=last).collect::<Vec<_>>(), "every seq once, in order");
    cancel.cancel();
    bounded(follower).await.expect("the follower stopped");
}
