//! The embedded default store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread ([`writer`]) that group-commits whatever
//! is queued, each command in its own savepoint; reads use a small pool of
//! read-only connections ([`read`]) on tokio's blocking threads. The schema is
//! versioned in code ([`schema`]). See `docs/storage.md` for the layout and the
//! durability choice.
//!
//! Touches only its own file (and its `-wal` / `-shm` companions).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::model::{
    ApiKey, Chat, ChatId, ChatRecord, ChatStatus, Event, FlowId, FlowRecord, KeyId, Message, Page, TenantId,
    Timestamp,
};
use crate::store::{
    ChatChange, ChatOwner, ChatQuery, Idempotency, IdempotencyEntry, SeqQuery, Store, StoreError,
    StoreResult, StoredAnswer,
};

mod ids;
mod read;
mod schema;
mod write;
mod writer;

pub use schema::{MIGRATIONS, current_version};

use read::ReadPool;
use writer::Writer;

/// How hard SQLite pushes each commit to the disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: an `Ok` survives a
    /// power cut. The default.
    #[default]
    Full,
    /// WAL commits are fsynced only at checkpoints: an `Ok` survives a crash of
    /// the process but the last commits may be lost on a power cut.
    Normal,
}

/// How [`SqliteStore::open`] sets up the file.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Durability of each commit (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Read connections in the pool (default 4, at least 1).
    pub readers: usize,
    /// How long a connection waits for a lock another process holds (default 5 s).
    pub busy_timeout: Duration,
    /// Most commands group-committed in one transaction (default 256, at least 1).
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 4,
            busy_timeout: schema::DEFAULT_BUSY_TIMEOUT,
            max_batch: 256,
        }
    }
}

/// The SQLite [`Store`]. Dropping it (or [`SqliteStore::close`]) lets the writer
/// finish every queued command, then joins its thread: that blocks the dropping
/// thread for as long as the queue takes.
pub struct SqliteStore {
    // Field order is drop order: the readers close before the writer, so the
    // writer's connection is the last one and checkpoints the WAL on close.
    readers: Arc<ReadPool>,
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, applies the
    /// pending migrations and starts the writer thread. The parent directory
    /// must exist. Refuses a file written by a newer schema version. Blocking:
    /// call it at start-up.
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let mut conn = rusqlite::Connection::open(path)?;
        schema::configure(&conn, &options)?;
        schema::enable_wal(&conn)?;
        schema::migrate(&mut conn)?;
        let readers = Arc::new(ReadPool::open(path, &options)?);
        let writer = Writer::start(conn, options.max_batch)?;
        Ok(SqliteStore { readers, writer })
    }

    /// Finishes the queued writes, stops the writer thread and closes the file.
    /// `Err(Closed)` if the writer thread had died.
    pub fn close(self) -> StoreResult<()> {
        let SqliteStore { readers, mut writer } = self;
        drop(readers);
        writer.close()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, change: ChatChange) -> StoreResult<()> {
        self.writer.call(move |c| write::commit(c, &change)).await
    }

    async fn delete_chat(&self, chat_id: &ChatId) -> StoreResult<Option<u64>> {
        let id = chat_id.to_owned();
        self.writer.call(move |c| write::delete_chat(c, &id)).await
    }

    async fn chat_owner(&self, chat_id: &ChatId) -> StoreResult<Option<ChatOwner>> {
        let id = chat_id.to_owned();
        self.readers.read(move |c| read::chat_owner(c, &id)).await
    }

    async fn count_chats(&self, tenant: &TenantId, status: Option<ChatStatus>) -> StoreResult<u64> {
        let (tenant, status) = (tenant.clone(), status.map(|s| s.as_str()));
        self.readers.read(move |c| read::count_chats(c, &tenant, status)).await
    }

    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<ChatRecord>> {
        let id = chat_id.to_owned();
        self.readers.read(move |c| read::get_chat(c, &id)).await
    }

    async fn list_chats(&self, tenant: &TenantId, query: &ChatQuery) -> StoreResult<Page<Chat>> {
        let (tenant, query) = (tenant.to_owned(), query.clone());
        self.readers.read(move |c| read::list_chats(c, &tenant, &query)).await
    }

    async fn running_chats(&self) -> StoreResult<Vec<ChatRecord>> {
        self.readers.read(read::running_chats).await
    }

    async fn messages(&self, chat_id: &ChatId, query: &SeqQuery) -> StoreResult<Vec<Message>> {
        let (id, query) = (chat_id.to_owned(), *query);
        self.readers.read(move |c| read::by_seq(c, read::SeqTable::Messages, &id, &query)).await
    }

    async fn events(&self, chat_id: &ChatId, query: &SeqQuery) -> StoreResult<Vec<Event>> {
        let (id, query) = (chat_id.to_owned(), *query);
        self.readers.read(move |c| read::by_seq(c, read::SeqTable::Events, &id, &query)).await
    }

    async fn put_flow(&self, flow: &FlowRecord) -> StoreResult<()> {
        let flow = flow.clone();
        self.writer.call(move |c| write::put_flow(c, &flow)).await
    }

    async fn get_flow(&self, tenant: &TenantId, flow_id: &FlowId) -> StoreResult<Option<FlowRecord>> {
        let (tenant, id) = (tenant.to_owned(), flow_id.to_owned());
        self.readers.read(move |c| read::get_flow(c, &tenant, &id)).await
    }

    async fn list_flows(
        &self,
        tenant: &TenantId,
        after: Option<&FlowId>,
        limit: usize,
    ) -> StoreResult<Page<FlowRecord>> {
        let (tenant, after) = (tenant.clone(), after.map(|a| a.as_str().to_owned()));
        self.readers.read(move |c| read::list_flows(c, &tenant, after.as_deref(), limit)).await
    }

    async fn delete_flow(&self, tenant: &TenantId, flow_id: &FlowId) -> StoreResult<bool> {
        let (tenant, id) = (tenant.to_owned(), flow_id.to_owned());
        self.writer.call(move |c| write::delete_flow(c, &tenant, &id)).await
    }

    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> StoreResult<()> {
        let (key, hash) = (key.clone(), secret_hash.to_owned());
        self.writer.call(move |c| write::insert_key(c, &key, &hash)).await
    }

    async fn key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let hash = secret_hash.to_owned();
        self.readers.read(move |c| read::key_by_hash(c, &hash)).await
    }

    async fn list_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        let tenant = tenant.to_owned();
        self.readers.read(move |c| read::list_keys(c, &tenant)).await
    }

    async fn delete_key(&self, tenant: &TenantId, key_id: &KeyId) -> StoreResult<bool> {
        let (tenant, id) = (tenant.to_owned(), key_id.to_owned());
        self.writer.call(move |c| write::delete_key(c, &tenant, &id)).await
    }

    async fn touch_key(&self, key_id: &KeyId, at: Timestamp) -> StoreResult<()> {
        let id = key_id.to_owned();
        self.writer.call(move |c| write::touch_key(c, &id, at)).await
    }

    async fn stored_bytes(&self, tenant: &TenantId) -> StoreResult<u64> {
        let tenant = tenant.clone();
        self.readers.read(move |c| read::stored_bytes(c, &tenant)).await
    }

    async fn idempotency_begin(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
        hold: Duration,
    ) -> StoreResult<Idempotency> {
        let (tenant, key, fingerprint) = (tenant.clone(), key.to_owned(), fingerprint.to_owned());
        let now = crate::model::now().millis();
        let until = now + hold.as_millis() as i64;
        self.writer
            .call(move |c| write::idempotency_begin(c, &tenant, &key, &fingerprint, (now, until)))
            .await
    }

    async fn idempotency_finish(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
        answer: &StoredAnswer,
        keep: Duration,
    ) -> StoreResult<()> {
        let (tenant, key) = (tenant.clone(), key.to_owned());
        let until = crate::model::now().millis() + keep.as_millis() as i64;
        let entry = IdempotencyEntry { fingerprint: fingerprint.to_owned(), answer: Some(answer.clone()) };
        self.writer.call(move |c| write::idempotency_finish(c, &tenant, &key, &entry, until)).await
    }

    async fn idempotency_release(&self, tenant: &TenantId, key: &str) -> StoreResult<()> {
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.writer.call(move |c| write::idempotency_release(c, &tenant, &key)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        if !self.writer.is_running() {
            return Err(StoreError::Closed);
        }
        self.readers.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }
}
