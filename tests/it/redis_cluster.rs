//! Flowgate on a real three-master Redis Cluster (`redis.cluster = true`): the
//! store suite, two gateway nodes sharing one chat's feed over sharded pub/sub,
//! a run owned on one node cancelled from the other, and a master restart the
//! feed survives with every durable event delivered once.
//!
//! The tests start the cluster themselves (`support::redis_cluster`); without
//! `redis-server`/`redis-cli` each prints `SKIPPED` and passes, unless
//! `FLOWGATE_REQUIRE_REDIS=1` (CI), which makes them fail.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flowgate::config::StoreKind;
use flowgate::model::ChatStatus;
use flowgate::store::ChatQuery;
use flowgate::store::redis::{RedisStore, RedisStoreOptions};
use serde_json::Value;

use crate::store_suite::{DynStore, create_chat, tenant_named};
use crate::support::app::{TestApp, spawn_configured};
use crate::support::redis_cluster::RedisCluster;
use crate::support::ws::{assert_contiguous, connect, seqs};

/// A store with its own prefix on the shared cluster; `None` without binaries.
async fn fresh_cluster_store() -> Option<(DynStore, Arc<RedisCluster>)> {
    let cluster = RedisCluster::shared()?;
    let store = cluster_store(&cluster).await;
    Some((Arc::new(store), cluster))
}

async fn cluster_store(cluster: &RedisCluster) -> RedisStore {
    let options = RedisStoreOptions {
        prefix: format!("fg:t{}:", ulid::Ulid::new()),
        // Roomier than the 2 s default: CI runs many servers on two cores.
        timeout: Duration::from_secs(5),
        ..RedisStoreOptions::default()
    };
    bounded(RedisStore::connect_cluster(&cluster.seeds(), options)).await.expect("the store connects")
}

/// The whole store suite against the cluster.
mod suite {
    use super::fresh_cluster_store;

    store_suite!({
        let Some(fixture) = fresh_cluster_store().await else {
            return;
        };
        std::future::ready(fixture)
    });
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("finished in time")
}

/// A gateway node on the cluster, with short leases so takeovers are quick.
pub(crate) async fn node(cluster: &RedisCluster, name: &str) -> TestApp {
    let (url, name) = (cluster.url(), name.to_owned());
    spawn_configured(move |c| {
        c.store = StoreKind::Redis;
        c.redis_url = Some(url);
        c.redis.cluster = true;
        c.node_id = Some(name);
        c.cluster.lease_ttl_secs = 2;
        c.cluster.sweep_secs = 1;
    })
    .await
}

/// Reads frames until the chat's status is `status` (bounded).
async fn until_status(ws: &mut crate::support::ws::Ws, mut frames: Vec<Value>, status: &str) -> Vec<Value> {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("the run goes on");
        let done = f["type"] == "chat.status" && f["data"]["status"] == status;
        frames.push(f);
        if done {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_on_a_cluster_rebuilds_lost_indexes_from_chats_on_every_master() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let redis_store = cluster_store(&cluster).await;
    let store: DynStore = Arc::new(redis_store.clone());
    let mut made = Vec::new();
    for _ in 0..12 {
        made.push(bounded(create_chat(&store, "tenant_a", "flow_a")).await.chat.id);
    }
    // Lost index updates: every index of the tenant (one slot) is gone.
    let client = redis::cluster::ClusterClient::new(cluster.seeds()).expect("a cluster client");
    let mut conn = bounded(client.get_async_connection()).await.expect("connects");
    let pattern = format!("{}tenant:{{tenant_a}}:chats*", redis_store.prefix());
    let keys: Vec<String> =
        bounded(redis::cmd("KEYS").arg(&pattern).query_async(&mut conn)).await.expect("keys");
    assert!(!keys.is_empty());
    let _: i64 = bounded(redis::cmd("DEL").arg(&keys).query_async(&mut conn)).await.expect("deletes");
    let all = ChatQuery { limit: 20, ..ChatQuery::default() };
    let page = bounded(store.list_chats(&tenant_named("tenant_a"), &all)).await.expect("lists");
    assert!(page.data.is_empty());
    // The chats sit on every master; reindex walks each one's keys.
    assert_eq!(bounded(redis_store.reindex()).await.expect("reindexes"), 12);
    let page = bounded(store.list_chats(&tenant_named("tenant_a"), &all)).await.expect("lists");
    made.sort();
    made.reverse();
    assert_eq!(page.data.into_iter().map(|c| c.id).collect::<Vec<_>>(), made);
}

#[tokio::test]
async fn a_socket_on_node_b_gets_every_event_of_a_chat_driven_through_node_a_on_the_cluster() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let (a, b) = (node(&cluster, "a").await, node(&cluster, "b").await);
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
    assert!(frames.iter().any(|f| f["type"] == "message.delta"), "live deltas cross the nodes");
}

#[tokio::test]
async fn a_run_driven_on_node_a_is_cancelled_through_node_b_on_the_cluster() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let (a, b) = (node(&cluster, "a").await, node(&cluster, "b").await);
    crate::cluster::a_cancel_through_b_stops_a_run_streaming_on_a(&a, &b).await;
}

#[tokio::test]
async fn a_master_restart_mid_stream_resumes_the_feed_with_every_durable_event_once() {
    let Some(mut cluster) = RedisCluster::start_with_aof() else { return };
    let (a, b) = (node(&cluster, "a").await, node(&cluster, "b").await);
    a.put_flow("slow", crate::support::flows::slow(60)).await;
    let chat = a.create_chat("slow").await;
    let mut ws = connect(&b, &format!("/chats/{chat}/ws")).await;
    assert_eq!(ws.next().await["type"], "subscribed");
    a.say(&chat, "go").await;
    let frames = ws.until(|f| f["type"] == "message.created" && f["data"]["sender"] == "assistant").await;
    // The master that holds the chat (and its channel's slot) crashes and comes back.
    let master = cluster.master_of(&format!("fg:{{{chat}}}:chat"));
    cluster.restart_master(master);
    let frames = until_status(&mut ws, frames, "completed").await;
    let stored: Vec<u64> = b.events(&chat).await.iter().filter_map(|e| e.seq).collect();
    assert_eq!(seqs(&frames), stored, "every durable event once, in order");
    assert_contiguous(&stored, 1);
    let chat_now = b.chat(&chat).await;
    assert_eq!(chat_now["status"], ChatStatus::Completed.as_str());
}

/// What `Backends::open` says for a Redis setting that does not fit the server.
async fn open_error(url: String, cluster: bool) -> String {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = crate::support::app::test_config(dir.path().to_owned());
    config.store = StoreKind::Redis;
    config.redis_url = Some(url);
    config.redis.cluster = cluster;
    match bounded(flowgate::backends::Backends::open(&config)).await {
        Ok(_) => panic!("the backends opened despite the misconfiguration"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn redis_cluster_on_a_standalone_server_and_a_cluster_node_without_it_fail_naming_the_setting() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let Some(server) = crate::support::redis_server::RedisServer::start() else { return };
    let err = open_error(server.url(), true).await;
    assert!(
        err.contains("redis.cluster = true") && err.contains("does not lead to a Redis Cluster"),
        "{err}"
    );
    let err = open_error(cluster.seeds()[0].clone(), false).await;
    assert!(err.contains("set redis.cluster = true"), "{err}");
}
