//! Partials on the Redis bus, written by the pipelined publisher: a delta's
//! writes go in its batch right before its `PUBLISH`, so every delta that
//! reaches another node finds its text in the partial already, chats
//! streaming at once keep their order, and a partial that falls out of step
//! (its key gone mid-stream) is dropped rather than served wrong, and a
//! partial dropped after its deltas were queued is dropped after their writes.
//!
//! Without a `redis-server` binary every test prints `SKIPPED` and passes,
//! unless `FLOWGATE_REQUIRE_REDIS=1` (CI), which makes them fail.

use crate::bus_redis::{bounded, chat_id, node};
use crate::support::redis_server::RedisServer;

use std::sync::Arc;

use flowgate::bus::partials::Chunk;
use flowgate::bus::redis::RedisBus;
use flowgate::bus::{Bus, Channel, Frame};
use flowgate::model::{ChatId, Event, EventKind, now};
use serde_json::{Value, json};

/// Streams `words` as one message's deltas from `bus`, the first at `offset`.
pub(crate) async fn stream(
    bus: &impl Bus,
    chat: &ChatId,
    message_id: &str,
    mut offset: u64,
    words: &[String],
) {
    for word in words {
        let chunk = Chunk { chat_id: chat, message_id, sender: "writer", offset, text: word };
        bounded(bus.publish_delta(&chunk)).await.expect("queued");
        offset += word.len() as u64;
    }
}

/// A durable frame: it returns once its batch is answered.
async fn durable(bus: &RedisBus, chat: &ChatId, seq: u64) {
    let frame = Frame::from_event(&Event {
        seq: Some(seq),
        chat_id: chat.clone(),
        kind: EventKind::RunStarted,
        created_at: now(),
        data: json!({}),
    });
    bounded(bus.publish(&Channel::Chat(chat.clone()), frame)).await.expect("published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_of_chats_streaming_at_once_arrive_in_order_each_already_in_its_partial() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (Arc::new(node(&server).await), node(&server).await);
    let chats: Vec<ChatId> = (0..6).map(|n| chat_id(&format!("chat_partials_{n}"))).collect();
    let words: Vec<String> = (0..120).map(|i| format!("w{i}é ")).collect();
    let mut subs = Vec::new();
    for chat in &chats {
        subs.push(bounded(b.subscribe(&Channel::Chat(chat.clone()))).await.expect("subscribes"));
    }
    let writers: Vec<_> = chats
        .iter()
        .map(|chat| {
            let (a, chat, words) = (Arc::clone(&a), chat.clone(), words.clone());
            tokio::spawn(async move { stream(&*a, &chat, "msg_1", 0, &words).await })
        })
        .collect();
    for (chat, sub) in chats.iter().zip(&mut subs) {
        let mut text = String::new();
        for word in &words {
            let frame = bounded(sub.receiver.recv()).await.expect("a delta");
            let data = serde_json::from_str::<Value>(frame.json.as_str()).unwrap()["data"].clone();
            assert_eq!(data["offset"], text.len() as u64, "in order, none missing");
            assert_eq!(data["delta"], word.as_str());
            text.push_str(word);
            // Written before its PUBLISH: the partial holds this delta already.
            let partials = bounded(b.partials(chat)).await.expect("reads");
            assert!(partials[0].content.starts_with(&text), "the partial holds every delta received");
        }
        assert_eq!(bounded(b.partials(chat)).await.unwrap()[0].content, text);
    }
    for writer in writers {
        bounded(writer).await.expect("the writer finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_whose_key_vanished_mid_stream_is_dropped_rather_than_served_wrong() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = node(&server).await;
    let chat = chat_id("chat_partial_vanished");
    let words: Vec<String> = ["one ", "two ", "three "].map(String::from).to_vec();
    stream(&a, &chat, "msg_1", 0, &words[..1]).await;
    durable(&a, &chat, 1).await;
    assert_eq!(bounded(a.partials(&chat)).await.unwrap()[0].content, "one ");
    // The key expires or is evicted: the next APPEND starts it over, out of step.
    let mut conn = bounded(server.client().get_multiplexed_async_connection()).await.expect("connects");
    let key = format!("fg:{{{chat}}}:partial:msg_1");
    let () = bounded(redis::cmd("DEL").arg(&key).query_async(&mut conn)).await.unwrap();
    stream(&a, &chat, "msg_1", 4, &words[1..]).await;
    // The publisher checks a batch's APPENDs before it sends the next batch:
    // once the second of two durable publishes is answered, the check is done.
    durable(&a, &chat, 2).await;
    durable(&a, &chat, 3).await;
    assert_eq!(bounded(a.partials(&chat)).await.unwrap(), Vec::new(), "no wrong partial served");
    let exists: bool = bounded(redis::cmd("EXISTS").arg(&key).query_async(&mut conn)).await.unwrap();
    assert!(!exists, "the key is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_forgotten_right_after_its_deltas_were_queued_stays_gone() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = node(&server).await;
    let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    for n in 0..20 {
        let chat = chat_id(&format!("chat_forgotten_{n}"));
        // The engine queues a message's deltas, then drops its partial just
        // before storing it: the drop must come after the queued writes.
        stream(&a, &chat, "msg_1", 0, &words).await;
        bounded(a.forget_partials(&chat, Some("msg_1"))).await.expect("dropped");
        stream(&a, &chat, "msg_2", 0, &words[..1]).await;
        bounded(a.forget_partials(&chat, None)).await.expect("dropped");
        assert_eq!(bounded(a.partials(&chat)).await.unwrap(), Vec::new(), "chat {n}");
    }
}
