//! The store suite against a fresh SQLite file, plus what only SQLite has: a
//! file that outlives the process, and a schema version in it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowgate::store::sqlite::{SqliteOptions, SqliteStore, Synchronous, current_version};
use flowgate::store::{SeqQuery, StoreError};
use tempfile::TempDir;

use crate::store_suite::{
    DynStore, all_events, all_messages, assert_same, create_chat, flow_named, flow_of, key_of, tenant_named,
};

fn open(path: &Path, synchronous: Synchronous) -> SqliteStore {
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    SqliteStore::open(path, options).expect("the store opens")
}

async fn fresh_sqlite() -> (DynStore, TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open(&dir.path().join("flowgate.db"), Synchronous::Full);
    (Arc::new(store), dir)
}

store_suite!(fresh_sqlite());

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("finished in time")
}

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("flowgate.db");
    let sqlite = Arc::new(open(&path, Synchronous::Normal));
    let store: DynStore = sqlite.clone();
    let chat = bounded(create_chat(&store, "tenant_a", "demo")).await;
    let chat = bounded(crate::store_suite::post_and_cancel(&store, &chat, "hello")).await;
    let flow = flow_of("tenant_a", "demo", "Demo", crate::store_suite::at_ms(flowgate::model::now(), 0));
    let key = key_of("tenant_a", "ci");
    bounded(store.put_flow(&flow)).await.expect("puts");
    bounded(store.insert_key(&key, "hash")).await.expect("inserts");
    let events = bounded(all_events(&store, &chat.chat.id)).await;
    let messages = bounded(all_messages(&store, &chat.chat.id)).await;
    drop(store);
    let sqlite = Arc::into_inner(sqlite).expect("the only handle");
    sqlite.close().expect("closes cleanly");

    let store: DynStore = Arc::new(open(&path, Synchronous::Full));
    let got = bounded(store.get_chat(&chat.chat.id)).await.expect("reads");
    assert_same(&got.expect("the chat survived"), &chat);
    assert_same(&bounded(all_events(&store, &chat.chat.id)).await, &events);
    assert_same(&bounded(all_messages(&store, &chat.chat.id)).await, &messages);
    let got = bounded(store.get_flow(&tenant_named("tenant_a"), &flow_named("demo"))).await.expect("reads");
    assert_eq!(got, Some(flow));
    assert_eq!(bounded(store.key_by_hash("hash")).await.expect("reads"), Some(key));
}

#[test]
fn close_finishes_and_the_file_is_in_wal_mode_at_the_current_version() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("flowgate.db");
    open(&path, Synchronous::Full).close().expect("closes cleanly");
    // Opening again applies nothing and keeps the version.
    open(&path, Synchronous::Full).close().expect("closes cleanly");
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("reads");
    assert_eq!(version, current_version());
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("reads");
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_from_a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("flowgate.db");
    open(&path, Synchronous::Full).close().expect("closes");
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let newer = current_version() + 1;
    conn.pragma_update(None, "user_version", newer).expect("sets the version");
    drop(conn);

    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Unavailable(why)) => {
            assert!(why.contains(&format!("schema version {newer}")), "{why}");
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a newer file was opened"),
    }
}

/// While one task commits, readers never see a chat whose events are not all
/// there yet, nor a `last_seq` going back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_whole_commits_while_writes_go_on() {
    let (store, _dir) = fresh_sqlite().await;
    let first = bounded(create_chat(&store, "tenant_a", "demo")).await;
    let id = first.chat.id.clone();
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut record = first;
            for i in 0..40 {
                record = crate::store_suite::post_and_cancel(&store, &record, &format!("m{i}")).await;
            }
            record.chat.last_seq
        })
    };
    let readers = async {
        let mut seen = 0;
        while !writer.is_finished() {
            let chat = bounded(store.get_chat(&id)).await.expect("reads").expect("there");
            assert!(chat.chat.last_seq >= seen, "last_seq went back");
            seen = chat.chat.last_seq;
            let query = SeqQuery { limit: 10_000, ..SeqQuery::default() };
            let events = bounded(store.events(&id, &query)).await.expect("reads");
            assert!(events.len() as u64 >= seen, "a chat was visible before its events");
            let seqs: Vec<u64> = events.iter().filter_map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        }
    };
    bounded(readers).await;
    let last = bounded(writer).await.expect("the writer ran");
    assert_eq!(last, 1 + 40 * 5);
}

/// A command that fails half way (here: an ephemeral event it cannot store,
/// after its chat row was already updated) leaves nothing behind, and the
/// commands batched with it still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_undoes_its_own_writes_and_no_one_elses() {
    let (store, _dir) = fresh_sqlite().await;
    let broken_chat = bounded(create_chat(&store, "tenant_a", "demo")).await;
    let fine_chat = bounded(create_chat(&store, "tenant_a", "demo")).await;
    let mut broken = crate::store_suite::post(&broken_chat, "half");
    let mut ephemeral = broken.events[0].clone();
    ephemeral.seq = None;
    broken.events.push(ephemeral);
    let fine = crate::store_suite::post(&fine_chat, "whole");

    let (a, b) = bounded(async { tokio::join!(store.commit(broken), store.commit(fine.clone())) }).await;
    assert!(matches!(a, Err(StoreError::Sqlite(_))), "{a:?}");
    b.expect("the other command commits");

    let got = bounded(store.get_chat(&broken_chat.chat.id)).await.expect("reads");
    assert_same(&got.expect("there"), &broken_chat);
    assert_eq!(bounded(all_events(&store, &broken_chat.chat.id)).await.len(), 1);
    assert!(bounded(all_messages(&store, &broken_chat.chat.id)).await.is_empty());
    let got = bounded(store.get_chat(&fine_chat.chat.id)).await.expect("reads");
    assert_same(&got.expect("there"), &fine.record);
}
