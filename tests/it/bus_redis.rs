//! The Redis bus between two "nodes" (two `RedisBus` instances) on a private
//! `redis-server`: delivery across nodes, one Redis subscription per channel
//! per node, unsubscribe after the last local subscriber, non-event bytes
//! dropped, and the pipelined publisher (each chat's order under concurrent
//! publishes; an extra command sent with its frame). Redis going away (a
//! restart, a hang, shutdown) is in `bus_redis_outage.rs`, which shares this
//! module's helpers.
//!
//! Without a `redis-server` binary every test prints `SKIPPED` and passes,
//! unless `FLOWGATE_REQUIRE_REDIS=1` (CI), which makes them fail.

use crate::support::redis_server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flowgate::bus::redis::{RedisBus, RedisBusOptions};
use flowgate::bus::{Bus, Channel, Frame, Subscription};
use flowgate::model::{ChatId, Event, EventKind, now};
use redis_server::RedisServer;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

pub(crate) async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("finished in time")
}

/// Polls `check` until it holds, bounded.
pub(crate) async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let poll = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, poll).await.unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

pub(crate) async fn node(server: &RedisServer) -> RedisBus {
    let options = RedisBusOptions {
        // Roomier than the 2 s default: CI runs many servers on two cores.
        timeout: Duration::from_secs(5),
        health_interval: Duration::from_millis(500),
        backoff_max: Duration::from_millis(200),
        ..RedisBusOptions::default()
    };
    bounded(RedisBus::connect(server.client(), options)).await.expect("the bus connects")
}

/// The chat id a test names: the same name, the same id.
pub(crate) fn chat_id(name: &str) -> ChatId {
    let n = name.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 10u64.pow(19);
    ChatId::parse(&format!("chat_{n:026}")).expect("a valid chat id")
}

pub(crate) fn frame(chat: &str, seq: u64) -> Arc<Frame> {
    Frame::from_event(&Event {
        seq: Some(seq),
        chat_id: chat_id(chat),
        kind: EventKind::RunStarted,
        created_at: now(),
        data: json!({"n": seq}),
    })
}

/// Publishes seqs 1..=300 on every chat of `names` from `bus` at once, every
/// 50th durable and the rest ephemeral; returns once all are sent.
pub(crate) async fn burst<B: Bus + 'static>(bus: &Arc<B>, names: &[String]) {
    let writers: Vec<_> = names
        .iter()
        .map(|name| {
            let (bus, name) = (Arc::clone(bus), name.clone());
            tokio::spawn(async move {
                for seq in 1..=300 {
                    let frame = frame(&name, seq);
                    let sent = if seq % 50 == 0 {
                        bus.publish(&chat(&name), frame).await
                    } else {
                        bus.publish_ephemeral(&chat(&name), frame).await
                    };
                    sent.expect("published");
                }
            })
        })
        .collect();
    for writer in writers {
        bounded(writer).await.expect("the writer finished");
    }
}

pub(crate) fn chat(name: &str) -> Channel {
    Channel::Chat(chat_id(name))
}

pub(crate) async fn next_seq(sub: &mut Subscription) -> u64 {
    let frame = bounded(sub.receiver.recv()).await.expect("a frame");
    frame.seq.expect("durable")
}

/// How many connections Redis counts as subscribed to `channel`.
pub(crate) async fn numsub(server: &RedisServer, channel: &Channel) -> i64 {
    let client = redis::Client::open(server.url()).expect("a client");
    let mut conn = bounded(client.get_multiplexed_async_connection()).await.expect("connects");
    let (_, count): (String, i64) =
        bounded(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel.name()).query_async(&mut conn))
            .await
            .expect("answers");
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_published_on_one_node_reaches_each_subscriber_on_another_once_in_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let ch = chat("chat_x");
    let mut first = bounded(b.subscribe(&ch)).await.expect("subscribes");
    let mut second = bounded(b.subscribe(&ch)).await.expect("subscribes");
    let mut own = bounded(a.subscribe(&ch)).await.expect("subscribes");

    let sent: Vec<Arc<Frame>> = (1..=20).map(|seq| frame("chat_x", seq)).collect();
    for f in &sent {
        bounded(a.publish(&ch, Arc::clone(f))).await.expect("publishes");
    }
    for sub in [&mut first, &mut second, &mut own] {
        for want in &sent {
            let got = bounded(sub.receiver.recv()).await.expect("a frame");
            assert_eq!(got.json, want.json, "the same bytes, in publish order");
        }
    }
    // Nothing was delivered twice: the next frame is the next one published.
    bounded(a.publish(&ch, frame("chat_x", 21))).await.expect("publishes");
    assert_eq!(next_seq(&mut first).await, 21);
    assert_eq!(next_seq(&mut second).await, 21);
    assert_eq!(next_seq(&mut own).await, 21);
    // Another channel's frames never show up here.
    bounded(a.publish(&chat("chat_y"), frame("chat_y", 1))).await.expect("publishes");
    bounded(a.publish(&ch, frame("chat_x", 22))).await.expect("publishes");
    assert_eq!(next_seq(&mut first).await, 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_subscribers_of_one_channel_share_one_redis_subscription_per_node() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let ch = chat("chat_x");
    let mut on_a = Vec::new();
    for _ in 0..5 {
        on_a.push(bounded(a.subscribe(&ch)).await.expect("subscribes"));
    }
    assert_eq!(numsub(&server, &ch).await, 1);
    assert_eq!(a.channel_count(), 1);
    let mut on_b = Vec::new();
    for _ in 0..3 {
        on_b.push(bounded(b.subscribe(&ch)).await.expect("subscribes"));
    }
    assert_eq!(numsub(&server, &ch).await, 2, "one connection per node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_unsubscribed_after_its_last_local_subscriber_leaves() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let bus = node(&server).await;
    let ch = chat("chat_x");
    let leaving = bounded(bus.subscribe(&ch)).await.expect("subscribes");
    let mut staying = bounded(bus.subscribe(&ch)).await.expect("subscribes");
    drop(leaving);
    bounded(bus.publish(&ch, frame("chat_x", 1))).await.expect("publishes");
    assert_eq!(next_seq(&mut staying).await, 1, "still subscribed");
    assert_eq!(numsub(&server, &ch).await, 1);

    drop(staying);
    until("redis has no subscriber left", || async { numsub(&server, &ch).await == 0 }).await;
    assert_eq!(bus.channel_count(), 0);

    let mut again = bounded(bus.subscribe(&ch)).await.expect("subscribes");
    assert_eq!(numsub(&server, &ch).await, 1);
    bounded(bus.publish(&ch, frame("chat_x", 2))).await.expect("publishes");
    assert_eq!(next_seq(&mut again).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_released_even_when_its_last_subscriber_leaves_during_a_delivery() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let bus = node(&server).await;
    let ch = chat("chat_x");
    // Leave right after a frame arrives, while the listener may still hold the
    // channel's sender: the release must not be lost either way.
    for seq in 1..=200 {
        let mut sub = bounded(bus.subscribe(&ch)).await.expect("subscribes");
        bounded(bus.publish(&ch, frame("chat_x", seq))).await.expect("publishes");
        assert_eq!(next_seq(&mut sub).await, seq);
    }
    until("redis has no subscriber left", || async { numsub(&server, &ch).await == 0 }).await;
    assert_eq!(bus.channel_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_an_event_are_dropped_and_the_feed_goes_on() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let bus = node(&server).await;
    let ch = chat("chat_x");
    let mut sub = bounded(bus.subscribe(&ch)).await.expect("subscribes");
    let client = redis::Client::open(server.url()).expect("a client");
    let mut conn = bounded(client.get_multiplexed_async_connection()).await.expect("connects");
    let _: i64 = bounded(redis::cmd("PUBLISH").arg(ch.name()).arg("not json").query_async(&mut conn))
        .await
        .expect("publishes");
    bounded(bus.publish(&ch, frame("chat_x", 7))).await.expect("publishes");
    assert_eq!(next_seq(&mut sub).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_from_many_chats_reach_another_node_in_each_chats_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (Arc::new(node(&server).await), node(&server).await);
    let names: Vec<String> = (0..8).map(|n| format!("chat_burst_{n}")).collect();
    let mut subs = Vec::new();
    for name in &names {
        subs.push(bounded(b.subscribe(&chat(name))).await.expect("subscribes"));
    }
    // Every chat publishes at once, ephemeral and durable mixed, so the
    // publisher batches frames of many chats into each round trip.
    burst(&a, &names).await;
    for sub in &mut subs {
        for seq in 1..=300 {
            assert_eq!(next_seq(sub).await, seq, "in order, none missing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_command_queued_with_a_publish_has_landed_when_its_frame_arrives() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&server).await, node(&server).await);
    let ch = chat("chat_extra");
    let mut sub = bounded(b.subscribe(&ch)).await.expect("subscribes");
    let mut set = redis::cmd("SET");
    set.arg("fg:test:extra").arg("written");
    bounded(a.publish_with(&ch, frame("chat_extra", 1), set)).await.expect("queued");
    assert_eq!(next_seq(&mut sub).await, 1);
    let client = redis::Client::open(server.url()).expect("a client");
    let mut conn = bounded(client.get_multiplexed_async_connection()).await.expect("connects");
    let value: Option<String> =
        bounded(redis::cmd("GET").arg("fg:test:extra").query_async(&mut conn)).await.unwrap();
    assert_eq!(value.as_deref(), Some("written"));
}
