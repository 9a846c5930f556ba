//! The store suite against a private `redis-server` per test, plus what only
//! the Redis store has: outages, an append-only file that outlives a crash,
//! key prefixes, and indexes that lag behind a commit and are repaired.
//!
//! Without a `redis-server` binary every test prints `SKIPPED` and passes,
//! unless `FLOWGATE_REQUIRE_REDIS=1` (CI), which makes them fail.

use crate::support::redis_server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flowgate::ledger::transitions;
use flowgate::model::{ChatId, ChatStatus, now};
use flowgate::store::redis::{RedisStore, RedisStoreOptions};
use flowgate::store::{ChatQuery, StoreError};

use crate::store_suite::{
    DynStore, all_events, all_messages, apply, assert_same, at_ms, create_chat, flow_named, flow_of, key_of,
    post, post_and_cancel, tenant_named,
};
use redis_server::RedisServer;

/// A store with its own prefix on a fresh server; `None` without redis-server.
async fn fresh_redis_store() -> Option<(DynStore, RedisServer)> {
    let server = RedisServer::start()?;
    let prefix = format!("fg:t{}:", ulid::Ulid::new());
    let store = connect(&server, &prefix).await;
    Some((Arc::new(store), server))
}

async fn connect(server: &RedisServer, prefix: &str) -> RedisStore {
    let options = RedisStoreOptions {
        prefix: prefix.into(),
        // Roomier than the 2 s default: CI runs many servers on two cores.
        timeout: Duration::from_secs(5),
        ..RedisStoreOptions::default()
    };
    bounded(RedisStore::connect(server.client(), options)).await.expect("the store connects")
}

// Each test returns early (skipped) when there is no redis-server.
store_suite!({
    let Some(fixture) = fresh_redis_store().await else {
        return;
    };
    std::future::ready(fixture)
});

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("finished in time")
}

/// Retries `attempt` until it succeeds (Redis coming back), bounded.
async fn eventually<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    bounded(async {
        loop {
            match attempt().await {
                Ok(value) => return value,
                Err(e) => {
                    assert!(e.is_retryable(), "a non-retryable error: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
}

/// A raw connection for looking under the store.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).expect("a client");
    bounded(client.get_multiplexed_async_connection()).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_retryably_and_in_bounded_time_while_redis_is_down_and_succeed_after() {
    let Some(mut server) = RedisServer::start_with_aof() else {
        return;
    };
    let store: DynStore = Arc::new(connect(&server, "fg:").await);
    let chat = bounded(create_chat(&store, "tenant_a", "flow_a")).await;
    server.stop();

    let change = post(&chat, "while down");
    let failed = tokio::time::timeout(Duration::from_secs(10), store.commit(change.clone()))
        .await
        .expect("a commit fails within the bound rather than hang");
    match failed {
        Err(e) => assert!(e.is_retryable(), "not retryable: {e}"),
        Ok(()) => panic!("a commit succeeded with redis down"),
    }
    let read = tokio::time::timeout(Duration::from_secs(10), store.get_chat(&chat.chat.id))
        .await
        .expect("a read fails within the bound");
    assert!(read.is_err_and(|e| e.is_retryable()));
    let ping = tokio::time::timeout(Duration::from_secs(10), store.ping())
        .await
        .expect("a ping fails within the bound");
    assert!(ping.is_err());

    server.restart();
    // The change never reached Redis: the same change commits once it is back.
    eventually(|| store.commit(change.clone())).await;
    let got = bounded(store.get_chat(&chat.chat.id)).await.expect("reads");
    assert_same(&got.expect("the chat is there"), &change.record);
    bounded(store.ping()).await.expect("pings again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_makes_calls_fail_retryably_in_bounded_time_and_a_commit_in_doubt_is_whole() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = RedisStoreOptions { timeout: Duration::from_millis(300), ..RedisStoreOptions::default() };
    let store: DynStore =
        Arc::new(bounded(RedisStore::connect(server.client(), options)).await.expect("connects"));
    let chat = bounded(create_chat(&store, "tenant_a", "flow_a")).await;
    server.freeze();
    let change = post(&chat, "while hung");
    let failed = tokio::time::timeout(Duration::from_secs(10), store.commit(change.clone()))
        .await
        .expect("a commit fails within the bound rather than hang");
    server.thaw();
    match failed {
        Err(e) => assert!(e.is_retryable(), "not retryable: {e}"),
        Ok(()) => panic!("a commit succeeded with redis hung"),
    }
    // The script may have run once Redis woke: the chat is before or after
    // the change, never in between.
    let got = eventually(|| store.get_chat(&chat.chat.id)).await.expect("the chat is there");
    let events = bounded(all_events(&store, &chat.chat.id)).await;
    assert_eq!(events.len() as u64, got.chat.last_seq);
    if got.chat.last_seq == chat.chat.last_seq {
        assert_same(&got, &chat);
    } else {
        assert_same(&got, &change.record);
        assert_same(&bounded(all_messages(&store, &chat.chat.id)).await, &change.messages);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_redis_crash_with_an_append_only_file() {
    let Some(mut server) = RedisServer::start_with_aof() else {
        return;
    };
    let store: DynStore = Arc::new(connect(&server, "fg:").await);
    let chat = bounded(create_chat(&store, "tenant_a", "demo")).await;
    let chat = bounded(post_and_cancel(&store, &chat, "hello")).await;
    let running = bounded(create_chat(&store, "tenant_a", "demo")).await;
    let running = bounded(apply(&store, post(&running, "go"))).await;
    let flow = flow_of("tenant_a", "demo", "Demo", at_ms(now(), 0));
    let key = key_of("tenant_a", "ci");
    bounded(store.put_flow(&flow)).await.expect("puts");
    bounded(store.insert_key(&key, "hash")).await.expect("inserts");
    let events = bounded(all_events(&store, &chat.chat.id)).await;
    let messages = bounded(all_messages(&store, &chat.chat.id)).await;

    server.stop();
    server.restart();

    let got = eventually(|| store.get_chat(&chat.chat.id)).await;
    assert_same(&got.expect("the chat survived"), &chat);
    assert_same(&bounded(all_events(&store, &chat.chat.id)).await, &events);
    assert_same(&bounded(all_messages(&store, &chat.chat.id)).await, &messages);
    let resumed = bounded(store.running_chats()).await.expect("reads");
    assert_same(&resumed, &vec![running]);
    let got = bounded(store.get_flow(&tenant_named("tenant_a"), &flow_named("demo"))).await.expect("reads");
    assert_eq!(got, Some(flow));
    let got = bounded(store.key_by_hash("hash")).await.expect("reads");
    assert_eq!(got, Some(key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_with_different_prefixes_on_one_server_never_see_each_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one: DynStore = Arc::new(connect(&server, "one:").await);
    let two: DynStore = Arc::new(connect(&server, "two:").await);
    let mine = bounded(create_chat(&one, "tenant_a", "flow_a")).await;
    let mine = bounded(apply(&one, post(&mine, "go"))).await;
    bounded(one.put_flow(&flow_of("tenant_a", "f", "F", at_ms(now(), 0)))).await.expect("puts");
    bounded(one.insert_key(&key_of("tenant_a", "k"), "hash")).await.expect("inserts");

    assert_eq!(bounded(two.get_chat(&mine.chat.id)).await.expect("reads"), None);
    let query = ChatQuery { limit: 100, ..ChatQuery::default() };
    let page = bounded(two.list_chats(&tenant_named("tenant_a"), &query)).await.expect("lists");
    assert!(page.data.is_empty());
    assert!(bounded(two.running_chats()).await.expect("reads").is_empty());
    assert_eq!(
        bounded(two.get_flow(&tenant_named("tenant_a"), &flow_named("f"))).await.expect("reads"),
        None
    );
    assert_eq!(bounded(two.key_by_hash("hash")).await.expect("reads"), None);
    assert_eq!(bounded(one.running_chats()).await.expect("reads").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_skip_stale_index_entries_and_reindex_restores_lost_ones() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis_store = connect(&server, "fg:").await;
    let store: DynStore = Arc::new(redis_store.clone());
    let idle = bounded(create_chat(&store, "tenant_a", "flow_a")).await;
    let busy = bounded(create_chat(&store, "tenant_a", "flow_a")).await;
    let busy = bounded(apply(&store, post(&busy, "go"))).await;
    let mut conn = raw(&server).await;

    // A stale entry (as if an index update from an older state came late):
    // the idle chat listed as running is skipped by readers.
    let running_index = "fg:tenant:{tenant_a}:chats:status:running";
    let _: i64 =
        bounded(redis::cmd("ZADD").arg(running_index).arg(0).arg(&idle.chat.id).query_async(&mut conn))
            .await
            .expect("adds");
    let running = bounded(store.running_chats()).await.expect("reads");
    assert_same(&running, &vec![busy.clone()]);
    let query = ChatQuery { status: Some(ChatStatus::Running), limit: 1, ..ChatQuery::default() };
    let page = bounded(store.list_chats(&tenant_named("tenant_a"), &query)).await.expect("lists");
    assert_eq!(page.data.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&busy.chat.id]);
    assert!(!page.has_more);

    // Lost index updates (as if a node died between commit and index): every
    // index of the tenant is gone; reindex rebuilds them from the chats.
    let keys: Vec<String> =
        bounded(redis::cmd("KEYS").arg("fg:tenant:{tenant_a}:chats*").query_async(&mut conn))
            .await
            .expect("lists keys");
    let _: i64 = bounded(redis::cmd("DEL").arg(&keys).query_async(&mut conn)).await.expect("deletes");
    assert!(bounded(store.running_chats()).await.expect("reads").is_empty());
    assert_eq!(bounded(redis_store.reindex()).await.expect("reindexes"), 2);
    assert_same(&bounded(store.running_chats()).await.expect("reads"), &vec![busy.clone()]);
    let all = ChatQuery { limit: 10, ..ChatQuery::default() };
    let page = bounded(store.list_chats(&tenant_named("tenant_a"), &all)).await.expect("lists");
    let ids: Vec<&ChatId> = page.data.iter().map(|c| &c.id).collect();
    assert_eq!(ids, vec![&busy.chat.id, &idle.chat.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_with_an_event_it_cannot_store_is_refused_and_changes_nothing() {
    let Some(fixture) = fresh_redis_store().await else {
        return;
    };
    let store = fixture.0;
    let chat = bounded(create_chat(&store, "tenant_a", "flow_a")).await;
    let mut broken = post(&chat, "half");
    let mut ephemeral = broken.events[0].clone();
    ephemeral.seq = None;
    broken.events.push(ephemeral);

    let result = bounded(store.commit(broken)).await;
    assert!(matches!(&result, Err(e) if !e.is_retryable()), "{result:?}");
    let got = bounded(store.get_chat(&chat.chat.id)).await.expect("reads");
    assert_same(&got.expect("there"), &chat);
    assert_eq!(bounded(all_events(&store, &chat.chat.id)).await.len(), 1);
    let again = transitions::create(&tenant_named("tenant_a"), chat.chat.clone());
    assert!(matches!(bounded(store.commit(again)).await, Err(StoreError::Conflict)));
}
