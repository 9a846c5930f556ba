//! The cluster bus's pipelined publisher between two "nodes" (two
//! `ClusterBus` instances) on the real three-master cluster the suite starts:
//! a batch holds the chats of every master and is split into one pipeline
//! per master, yet each chat's frames arrive once and in order, and each
//! delta's partial is written before its `SPUBLISH` on the chat's master;
//! a durable publish whose pipeline fails (the cluster gone) is told so.
//!
//! Without `redis-server`/`redis-cli` every test prints `SKIPPED` and passes,
//! unless `FLOWGATE_REQUIRE_REDIS=1` (CI), which makes them fail.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use flowgate::bus::cluster::ClusterBus;
use flowgate::bus::redis::RedisBusOptions;
use flowgate::bus::{Bus, Channel};
use flowgate::model::ChatId;
use serde_json::Value;

use crate::bus_redis::{bounded, burst, chat, chat_id, frame, next_seq};
use crate::bus_redis_partials::stream;
use crate::support::redis_cluster::RedisCluster;

async fn node(cluster: &RedisCluster) -> ClusterBus {
    let options = RedisBusOptions {
        // Roomier than the 2 s default: CI runs many servers on two cores.
        timeout: Duration::from_secs(5),
        backoff_max: Duration::from_millis(200),
        ..RedisBusOptions::default()
    };
    bounded(ClusterBus::connect(&cluster.seeds(), options)).await.expect("the cluster bus connects")
}

/// `count` chat names whose channels sit on every master of `cluster`.
fn chats_on_every_master(cluster: &RedisCluster, prefix: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|n| format!("{prefix}_{n}")).collect();
    let masters: HashSet<usize> =
        names.iter().map(|name| cluster.master_of(&format!("fg:{{{}}}", chat_id(name)))).collect();
    assert_eq!(masters.len(), 3, "the chats span the three masters");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_of_chats_on_every_master_reach_another_node_once_in_each_chats_order() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let (a, b) = (Arc::new(node(&cluster).await), node(&cluster).await);
    let names = chats_on_every_master(&cluster, "chat_cluster_burst", 12);
    let mut subs = Vec::new();
    for name in &names {
        subs.push(bounded(b.subscribe(&chat(name))).await.expect("subscribes"));
    }
    // Every chat publishes at once, ephemeral and durable mixed, so each batch
    // holds frames of many chats on every master.
    burst(&a, &names).await;
    for (name, sub) in names.iter().zip(&mut subs) {
        for seq in 1..=300 {
            assert_eq!(next_seq(sub).await, seq, "in order, none missing or repeated");
        }
        // A repeat of the last frame would come before this one.
        bounded(a.publish(&chat(name), frame(name, 301))).await.expect("published");
        assert_eq!(next_seq(sub).await, 301, "the last frame came once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_of_chats_on_every_master_arrive_in_order_each_already_in_its_partial() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let (a, b) = (Arc::new(node(&cluster).await), node(&cluster).await);
    let chats: Vec<ChatId> =
        chats_on_every_master(&cluster, "chat_cluster_partials", 9).iter().map(|n| chat_id(n)).collect();
    let words: Vec<String> = (0..80).map(|i| format!("w{i}é ")).collect();
    let mut subs = Vec::new();
    for chat in &chats {
        bounded(a.forget_partials(chat, None)).await.expect("a clean start");
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
        }
        // Written before each SPUBLISH in the chat's pipeline: the partial is whole.
        assert_eq!(bounded(b.partials(chat)).await.expect("reads")[0].content, text);
    }
    for writer in writers {
        bounded(writer).await.expect("the writer finished");
    }
    for chat in &chats {
        bounded(a.forget_partials(chat, None)).await.expect("forgets");
        assert!(bounded(b.partials(chat)).await.expect("reads").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_publish_hears_that_its_pipeline_failed_once_the_cluster_is_gone() {
    let Some(cluster) = RedisCluster::start_with_aof() else { return };
    let a = node(&cluster).await;
    bounded(a.publish(&chat("chat_cluster_gone"), frame("chat_cluster_gone", 1))).await.expect("published");
    drop(cluster); // Every master killed.
    // An ephemeral frame waits only for room in the queue; a durable one for its pipeline.
    bounded(a.publish_ephemeral(&chat("chat_cluster_gone"), frame("chat_cluster_gone", 2)))
        .await
        .expect("queued");
    let failed = bounded(a.publish(&chat("chat_cluster_gone"), frame("chat_cluster_gone", 3))).await;
    let why = failed.expect_err("the publish failed").to_string();
    // Told by the publisher, not given up on after waiting out its turn.
    assert!(!why.contains("did not confirm the publish in time"), "{why}");
}
