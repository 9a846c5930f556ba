//! DELETE always reaches every subscriber, racing a run or not: each socket
//! bound to the chat gets `chat.deleted`, then closes with 4004, on one node
//! and across two nodes on Redis. (Before, a run's write committed between
//! the delete's read and the delete itself could share `chat.deleted`'s seq,
//! and the feed dropped `chat.deleted` as a duplicate.)

use serde_json::Value;

use crate::support::app::{TestApp, WAIT, spawn_app};
use crate::support::flows::slow;
use crate::support::redis_server::RedisServer;
use crate::support::ws::{Ended, connect};

/// Starts a run, lets `frames` frames of it through, deletes the chat through
/// `deleter`, and checks the socket on `watcher` sees `chat.deleted` then 4004.
async fn delete_mid_run(watcher: &TestApp, deleter: &TestApp, frames: usize) {
    let chat = watcher.create_chat("busy").await;
    let mut bound = connect(watcher, &format!("/chats/{chat}/ws")).await;
    assert_eq!(bound.next().await["type"], "subscribed");
    watcher.say(&chat, "go").await;
    for _ in 0..frames {
        if bound.next_or_end(WAIT).await.is_err() {
            break;
        }
    }
    let (status, _) = deleter.delete(&format!("/chats/{chat}")).await;
    assert_eq!(status, 204);
    let mut seen: Vec<Value> = Vec::new();
    let end = loop {
        match bound.next_or_end(WAIT).await {
            Ok(frame) => seen.push(frame),
            Err(end) => break end,
        }
    };
    assert_eq!(end, Ended::Closed(4004), "after {frames} frames");
    let last = seen.last().expect("frames after the delete");
    assert_eq!(last["type"], "chat.deleted", "after {frames} frames");
    let seqs: Vec<u64> = seen.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs stay increasing, chat.deleted last: {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_deletes_racing_runs_all_end_in_chat_deleted_and_4004() {
    let app = spawn_app().await;
    app.put_flow("busy", slow(0)).await;
    for i in 0..40 {
        delete_mid_run(&app, &app, i % 8).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_racing_runs_reach_the_other_nodes_sockets_on_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (crate::cluster::node(&redis, "a").await, crate::cluster::node(&redis, "b").await);
    a.put_flow("busy", slow(0)).await;
    for i in 0..20 {
        delete_mid_run(&a, &b, i % 8).await;
    }
}
