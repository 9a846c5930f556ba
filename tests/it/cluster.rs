//! Several gateway nodes on one Redis (contract §5's guarantee "across node
//! changes and bus restarts"): any client on any node, one run per chat however
//! the requests spread, a run that survives its node's death, and a Redis
//! restart that loses nothing. Each test starts its own `redis-server`.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::app::{TestApp, send, spawn_configured};
use crate::support::process::{ProcessNode, ProcessSpec};
use crate::support::redis_server::RedisServer;
use crate::support::ws::{assert_contiguous, connect, seqs};
use flowgate::config::StoreKind;
use flowgate::model::{ChatStatus, EventKind};
use serde_json::{Value, json};

/// A gateway node on `redis`, with short leases so takeovers are quick.
pub(crate) async fn node(redis: &RedisServer, name: &str) -> TestApp {
    let url = redis.url();
    let name = name.to_owned();
    spawn_configured(move |c| {
        c.store = StoreKind::Redis;
        c.redis_url = Some(url);
        c.node_id = Some(name);
        c.cluster.lease_ttl_secs = 2;
        c.cluster.sweep_secs = 1;
    })
    .await
}

/// Polls `check` until it holds (bounded); for states no event announces.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn senders(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["sender"].as_str().unwrap().to_owned()).collect()
}

async fn assert_once_each(app: &TestApp, chat: &str) {
    let events = app.events(chat).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq.unwrap()).collect();
    assert_contiguous(&seqs, 1);
    let messages = app.messages(chat).await;
    let ids: HashSet<_> = messages.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), messages.len(), "a message is stored twice");
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::RunStarted).count(), 1);
}

#[tokio::test]
async fn a_socket_on_node_b_gets_every_event_of_a_chat_driven_through_node_a() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    a.put_flow("f", crate::support::flows::two_agent("NEVER", &["one", "two"])).await;
    let chat = a.create_chat("f").await;
    let mut ws = connect(&b, &format!("/chats/{chat}/ws")).await;
    assert_eq!(ws.next().await["type"], "subscribed");
    a.say(&chat, "go").await;
    let frames = ws.until_status("completed").await;
    let got = seqs(&frames);
    assert_contiguous(&got, 1);
    let stored: Vec<u64> = b.events(&chat).await.iter().filter_map(|e| e.seq).collect();
    assert_eq!(got, stored);
}

#[tokio::test]
async fn input_on_b_resumes_a_run_started_on_a_and_cancel_on_b_stops_a_run_on_a() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let chat = a.create_chat("demo").await;
    a.say(&chat, "hi").await;
    let last = a.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await.last().unwrap().seq.unwrap();
    b.answer(&chat, "exit").await;
    a.wait_for_status(&chat, last, ChatStatus::Completed).await;
    // A long stream driven by A, cancelled through B.
    a_cancel_through_b_stops_a_run_streaming_on_a(&a, &b).await;
}

/// Starts a long stream on node A, cancels it through node B, and checks
/// A's runner stops at once without storing the half-streamed reply.
pub(crate) async fn a_cancel_through_b_stops_a_run_streaming_on_a(a: &TestApp, b: &TestApp) {
    b.put_flow("slow", crate::support::flows::slow(1500)).await;
    let chat = a.create_chat("slow").await;
    a.say(&chat, "go").await;
    a.wait_for(&chat, |e| e.kind == EventKind::RunStarted).await;
    assert_eq!(a.state.engine.active_runs(), 1);
    let (status, body) = b.post(&format!("/chats/{chat}/cancel"), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    tokio::time::timeout(Duration::from_secs(30), a.state.engine.idle())
        .await
        .expect("node A's runner stops");
    assert_eq!(a.messages(&chat).await.len(), 1, "the half-streamed reply is not stored");
}

#[tokio::test]
async fn a_delete_on_b_stops_a_run_streaming_on_a_at_once() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    // 10 words at 1.5 s each: only a prompt stop ends the runner in time.
    b.put_flow("slow", crate::support::flows::slow(1500)).await;
    let chat = a.create_chat("slow").await;
    a.say(&chat, "go").await;
    a.wait_for(&chat, |e| e.kind == EventKind::RunStarted).await;
    assert_eq!(a.state.engine.active_runs(), 1);
    let (status, _) = b.delete(&format!("/chats/{chat}")).await;
    assert_eq!(status, 204);
    tokio::time::timeout(Duration::from_secs(10), a.state.engine.idle())
        .await
        .expect("node A's runner stops");
}

#[tokio::test]
async fn twenty_posts_spread_over_two_nodes_start_one_run() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    a.put_flow("slow", crate::support::flows::slow(50)).await;
    let chat = a.create_chat("slow").await;
    let posts = (0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let req = app
            .client
            .post(app.url(&format!("/chats/{chat}/messages")))
            .json(&json!({"message": format!("m{i}")}));
        send(req)
    });
    let results = futures::future::join_all(posts).await;
    let accepted = results.iter().filter(|(s, _)| *s == 202).count();
    let busy = results.iter().filter(|(s, b)| *s == 409 && b["error"]["code"] == "chat_busy").count();
    assert_eq!((accepted, busy), (1, 19), "{results:?}");
    let runs = a.events(&chat).await.iter().filter(|e| e.kind == EventKind::RunStarted).count();
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn a_run_whose_node_is_killed_is_finished_by_another_with_every_message_once() {
    let Some(redis) = RedisServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = node(&redis, "b").await;
    b.put_flow("slow", crate::support::flows::slow(100)).await;
    // A control chat, run undisturbed on B, gives the expected conversation.
    let control = b.create_chat("slow").await;
    b.say(&control, "go").await;
    b.wait_for_status(&control, 0, ChatStatus::Completed).await;
    let expected = senders(&b.messages(&control).await);
    // The same flow started on process A, which dies after its first reply.
    let spec = ProcessSpec::new(dir.path())
        .env("FLOWGATE_STORE", "redis")
        .env("FLOWGATE_REDIS_URL", redis.url())
        .env("FLOWGATE_NODE_ID", "process-a")
        .env("FLOWGATE_CLUSTER__LEASE_TTL_SECS", "2")
        .env("FLOWGATE_CLUSTER__SWEEP_SECS", "1");
    let mut a = ProcessNode::start(spec).await;
    let chat = b.create_chat("slow").await;
    let (status, _) = a.post(&format!("/chats/{chat}/messages"), json!({"message": "go"})).await;
    assert_eq!(status, 202);
    b.wait_for(&chat, |e| e.kind == EventKind::MessageCreated && e.data["sender"] == "assistant").await;
    a.kill().await;
    // B adopts the run once A's lease expires, and finishes it.
    b.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    assert_eq!(senders(&b.messages(&chat).await), expected);
    assert_once_each(&b, &chat).await;
}

#[tokio::test]
async fn a_redis_restart_mid_stream_loses_nothing_and_writes_fail_retryably_meanwhile() {
    let Some(mut redis) = RedisServer::start_with_aof() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    a.put_flow("slow", crate::support::flows::slow(60)).await;
    let chat = a.create_chat("slow").await;
    let mut ws = connect(&b, &format!("/chats/{chat}/ws")).await;
    assert_eq!(ws.next().await["type"], "subscribed");
    a.say(&chat, "go").await;
    let mut frames = ws.until(|f| f["type"] == "message.created" && f["data"]["sender"] == "assistant").await;
    redis.stop();
    let (status, _) = a.get("/readyz").await;
    assert_eq!(status, 503);
    let (status, body) = a.post("/chats", json!({"from_flow": "slow"})).await;
    let error = &body["error"];
    assert_eq!(
        (status, error["code"].as_str(), error["retryable"].as_bool()),
        (503, Some("unavailable"), Some(true))
    );
    redis.restart();
    eventually("both nodes are ready again", async || {
        a.get("/readyz").await.0 == 200 && b.get("/readyz").await.0 == 200
    })
    .await;
    let (status, _) = a.post("/chats", json!({"from_flow": "slow"})).await;
    assert_eq!(status, 201, "the retried write succeeds");
    // The subscriber on B ends with every durable event once, in order.
    loop {
        let f = tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("the run completes");
        let done = f["type"] == "chat.status" && f["data"]["status"] == "completed";
        frames.push(f);
        if done {
            break;
        }
    }
    let stored: Vec<u64> = b.events(&chat).await.iter().filter_map(|e| e.seq).collect();
    assert_eq!(seqs(&frames), stored, "every durable event once, in order");
    assert_once_each(&b, &chat).await;
}
