//! Commits per second of the SQLite store: one writer in sequence, and 64
//! concurrent tasks each on its own chat (group commit at work), with
//! `synchronous` FULL and NORMAL. Run: `cargo bench --bench store`.
//!
//! Each commit is a real change planned by the status machine: a user message
//! (message + 3 events) or a cancel (2 events), alternately. The file lives in a
//! temp dir (`TMPDIR` picks the disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowgate::ledger::transitions;
use flowgate::model::{Chat, ChatId, ChatRecord, ChatStatus, FlowId, TenantId, now};
use flowgate::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use flowgate::store::{Store, StoreResult};

/// How long each scenario runs.
const RUN_FOR: Duration = Duration::from_secs(4);
/// Concurrent tasks in the second scenario.
const TASKS: usize = 64;

fn new_chat() -> Chat {
    let at = now();
    Chat {
        id: ChatId::new(),
        name: "bench".into(),
        from_type: "flow".into(),
        from_flow: FlowId::parse("demo").unwrap(),
        status: ChatStatus::Ready,
        created_at: at,
        updated_at: at,
        last_seq: 0,
        metadata: serde_json::json!({}),
        error: None,
        pending_input: None,
    }
}

/// Commits to one new chat until `deadline`; returns how many commits.
async fn commit_until(store: Arc<SqliteStore>, deadline: Instant) -> StoreResult<u64> {
    let change = transitions::create(&TenantId::parse("tenant_bench").unwrap(), new_chat());
    let mut record: ChatRecord = change.record.clone();
    store.commit(change).await?;
    let mut commits = 1;
    while Instant::now() < deadline {
        let change = match record.chat.status {
            ChatStatus::Running => transitions::cancel(&record),
            _ => transitions::post_message(&record, "a message of moderate length to store", &[]),
        }
        .map_err(|r| flowgate::store::StoreError::Unavailable(r.to_string()))?;
        record = change.record.clone();
        store.commit(change).await?;
        commits += 1;
    }
    Ok(commits)
}

async fn scenario(synchronous: Synchronous, tasks: usize) -> StoreResult<(u64, Duration)> {
    let dir = tempfile::tempdir().map_err(|e| flowgate::store::StoreError::Unavailable(e.to_string()))?;
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"), options)?);
    let start = Instant::now();
    let deadline = start + RUN_FOR;
    let handles: Vec<_> =
        (0..tasks).map(|_| tokio::spawn(commit_until(Arc::clone(&store), deadline))).collect();
    let mut commits = 0;
    for handle in handles {
        commits += handle.await.map_err(|_| flowgate::store::StoreError::Closed)??;
    }
    let elapsed = start.elapsed();
    if let Some(store) = Arc::into_inner(store) {
        store.close()?;
    }
    Ok((commits, elapsed))
}

fn main() -> StoreResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| flowgate::store::StoreError::Unavailable(e.to_string()))?;
    println!("| scenario                    | synchronous | commits | seconds | commits/s |");
    println!("|-----------------------------|-------------|--------:|--------:|----------:|");
    for (label, tasks) in [("1 writer, in sequence", 1), ("64 tasks, one chat each", TASKS)] {
        for (name, sync) in [("FULL", Synchronous::Full), ("NORMAL", Synchronous::Normal)] {
            let (commits, elapsed) = runtime.block_on(scenario(sync, tasks))?;
            let secs = elapsed.as_secs_f64();
            println!(
                "| {label:<27} | {name:<11} | {commits:>7} | {secs:>7.2} | {:>9.0} |",
                commits as f64 / secs
            );
        }
    }
    Ok(())
}
