//! The Redis store: the same records as SQLite, shared by several nodes.
//!
//! One `redis::aio::ConnectionManager` (multiplexed, reconnects by itself) per
//! store; every round trip is bounded by [`RedisStoreOptions::timeout`], so a
//! dead Redis makes calls fail with a retryable [`StoreError::Unavailable`]
//! instead of hanging. `commit` is one Lua script on the chat's hash tag; the
//! tenant's indexes follow in a second, seq-guarded script (see `chats` and
//! `docs/scale-out.md` for the consistency this gives).
//!
//! Touches only Redis keys under its prefix.

mod chats;
mod conn;
mod ids;
mod keys;
mod records;
mod scripts;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, FromRedisValue, RedisError, RedisResult, RetryMethod};

use crate::model::{
    ApiKey, Chat, ChatId, ChatRecord, ChatStatus, Event, FlowId, FlowRecord, KeyId, Message, Page, TenantId,
    Timestamp,
};
use crate::store::{
    ChatChange, ChatOwner, ChatQuery, Idempotency, IdempotencyEntry, MessageView, SeqQuery, Store,
    StoreError, StoreResult, StoredAnswer,
};

pub use conn::{RedisConn, ScanTarget};
use keys::Keys;

/// How the Redis store connects and names its keys.
#[derive(Debug, Clone)]
pub struct RedisStoreOptions {
    /// Prepended to every key (`fg:` by default). It must hold no `{` or `}`:
    /// the hash tags come after it.
    pub prefix: String,
    /// The longest one round trip may take, connecting included (2 s).
    pub timeout: Duration,
    /// The longest one connection attempt may take (1 s).
    pub connect_timeout: Duration,
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        Self {
            prefix: "fg:".into(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// The [`Store`] on Redis: one server or a Redis Cluster (every script and
/// pipeline stays in one hash tag; see `conn`).
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    keys: Keys,
    timeout: Duration,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`); fails if Redis does not
    /// answer within the options' timeout.
    pub async fn connect(client: Client, options: RedisStoreOptions) -> StoreResult<RedisStore> {
        check_prefix(&options)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = bounded(options.timeout, ConnectionManager::new_with_config(client, config)).await?;
        Ok(RedisStore {
            conn: RedisConn::Single(conn),
            keys: Keys::new(&options.prefix),
            timeout: options.timeout,
        })
    }

    /// Connects to a Redis Cluster through any of its `seeds`
    /// (`redis://host:port` each); fails if it does not answer in time.
    pub async fn connect_cluster(seeds: &[String], options: RedisStoreOptions) -> StoreResult<RedisStore> {
        check_prefix(&options)?;
        let conn = RedisConn::cluster(seeds, options.timeout, options.connect_timeout);
        let conn = bounded(options.timeout, conn).await?;
        Ok(RedisStore { conn, keys: Keys::new(&options.prefix), timeout: options.timeout })
    }

    /// The store's multiplexed connection, for what shares its keyspace (run
    /// leases, rate limits).
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// The key prefix (`fg:` by default).
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Runs one command, bounded.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, cmd.query_async(&mut conn)).await
    }

    /// Runs one pipeline (one round trip), bounded.
    pub(super) async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, pipe.query_async(&mut conn)).await
    }

    /// Runs one read, bounded; sent once more if the connection was found
    /// broken (the first call after Redis came back), which is harmless for a
    /// read and never done for a write, whose first try may have landed.
    async fn read<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        let twice = async {
            match cmd.query_async(&mut conn).await {
                Err(e) if is_broken(&e) => cmd.query_async(&mut conn).await,
                done => done,
            }
        };
        bounded(self.timeout, twice).await
    }

    /// Runs one read-only pipeline, bounded, like [`RedisStore::read`].
    async fn read_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        let twice = async {
            match pipe.query_async(&mut conn).await {
                Err(e) if is_broken(&e) => pipe.query_async(&mut conn).await,
                done => done,
            }
        };
        bounded(self.timeout, twice).await
    }

    /// One-key reads that may span slots, in order: one pipeline on a single
    /// server; on a cluster one command per key, sent together (each node's
    /// connection pipelines its share).
    async fn read_each<T: FromRedisValue>(&self, cmds: Vec<redis::Cmd>) -> StoreResult<Vec<T>> {
        if self.conn.is_cluster() {
            return futures::future::try_join_all(cmds.iter().map(|cmd| self.read(cmd))).await;
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        self.read_pipe(&pipe).await
    }

    /// One-key writes that may span slots, applied in order: one pipeline on
    /// a single server, one command after another on a cluster. Returns each
    /// command's reply.
    pub(super) async fn write_each(&self, cmds: Vec<redis::Cmd>) -> StoreResult<Vec<redis::Value>> {
        if self.conn.is_cluster() {
            let mut replies = Vec::with_capacity(cmds.len());
            for cmd in &cmds {
                replies.push(self.query(cmd).await?);
            }
            return Ok(replies);
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        self.query_pipe(&pipe).await
    }

    /// Runs one script, bounded.
    async fn invoke<T: FromRedisValue>(&self, invocation: &redis::ScriptInvocation<'_>) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, invocation.invoke_async(&mut conn)).await
    }
}

/// Refuses a key prefix with braces (the hash tags come after it).
fn check_prefix(options: &RedisStoreOptions) -> StoreResult<()> {
    if options.prefix.contains(['{', '}']) {
        return Err(StoreError::Redis(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "the key prefix must not contain braces",
        ))));
    }
    Ok(())
}

/// Awaits a Redis call for at most `limit`.
async fn bounded<T>(limit: Duration, call: impl Future<Output = RedisResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(from_redis),
        Err(_) => Err(StoreError::Unavailable(format!("redis did not answer within {limit:?}"))),
    }
}

/// Whether the connection itself failed (so the manager reconnects).
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// Connection trouble (and every error Redis says may pass: LOADING,
/// TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY …) becomes the retryable
/// [`StoreError::Unavailable`]; anything else stays [`StoreError::Redis`].
fn from_redis(e: RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || !matches!(e.retry_method(), RetryMethod::NoRetry);
    if transient { StoreError::Unavailable(e.to_string()) } else { StoreError::Redis(e) }
}

#[async_trait]
impl Store for RedisStore {
    async fn commit(&self, change: ChatChange) -> StoreResult<()> {
        self.commit_change(change).await
    }

    async fn delete_chat(&self, chat_id: &ChatId) -> StoreResult<Option<u64>> {
        self.delete_chat_keys(chat_id).await
    }

    async fn chat_owner(&self, chat_id: &ChatId) -> StoreResult<Option<ChatOwner>> {
        self.read_owner(chat_id).await
    }

    async fn count_chats(&self, tenant: &TenantId, status: Option<ChatStatus>) -> StoreResult<u64> {
        self.read(redis::cmd("ZCARD").arg(self.keys.chat_index(tenant, status, None))).await
    }

    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<ChatRecord>> {
        self.read_chat(chat_id).await
    }

    async fn list_chats(&self, tenant: &TenantId, query: &ChatQuery) -> StoreResult<Page<Chat>> {
        self.list_chat_page(tenant, query).await
    }

    async fn running_chats(&self) -> StoreResult<Vec<ChatRecord>> {
        self.all_running().await
    }

    async fn messages(&self, chat_id: &ChatId, query: &SeqQuery) -> StoreResult<Vec<Message>> {
        let key = match query.view {
            MessageView::All => self.keys.messages(chat_id),
            MessageView::Final => self.keys.final_messages(chat_id),
        };
        self.by_seq(&key, query).await
    }

    async fn events(&self, chat_id: &ChatId, query: &SeqQuery) -> StoreResult<Vec<Event>> {
        self.by_seq(&self.keys.events(chat_id), query).await
    }

    async fn put_flow(&self, flow: &FlowRecord) -> StoreResult<()> {
        self.put_flow_record(flow).await
    }

    async fn get_flow(&self, tenant: &TenantId, flow_id: &FlowId) -> StoreResult<Option<FlowRecord>> {
        self.get_flow_record(tenant, flow_id).await
    }

    async fn list_flows(
        &self,
        tenant: &TenantId,
        after: Option<&FlowId>,
        limit: usize,
    ) -> StoreResult<Page<FlowRecord>> {
        self.list_flow_page(tenant, after.map(FlowId::as_str), limit).await
    }

    async fn delete_flow(&self, tenant: &TenantId, flow_id: &FlowId) -> StoreResult<bool> {
        self.delete_flow_record(tenant, flow_id).await
    }

    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> StoreResult<()> {
        self.insert_key_record(key, secret_hash).await
    }

    async fn key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.find_key(secret_hash).await
    }

    async fn list_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        self.tenant_keys(tenant).await
    }

    async fn delete_key(&self, tenant: &TenantId, key_id: &KeyId) -> StoreResult<bool> {
        self.delete_key_record(tenant, key_id).await
    }

    async fn touch_key(&self, key_id: &KeyId, at: Timestamp) -> StoreResult<()> {
        self.touch_key_record(key_id, at).await
    }

    async fn stored_bytes(&self, tenant: &TenantId) -> StoreResult<u64> {
        let bytes: Option<i64> = self.read(redis::cmd("GET").arg(self.keys.usage(tenant))).await?;
        Ok(bytes.unwrap_or(0).max(0) as u64)
    }

    async fn idempotency_begin(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
        hold: Duration,
    ) -> StoreResult<Idempotency> {
        let name = self.keys.idempotency(tenant, key);
        let pending =
            serde_json::to_string(&IdempotencyEntry { fingerprint: fingerprint.to_owned(), answer: None })?;
        // SET NX then GET; an entry expiring in between makes us try again.
        for _ in 0..3 {
            let set = redis::cmd("SET")
                .arg(&name)
                .arg(&pending)
                .arg("NX")
                .arg("PX")
                .arg(hold.as_millis() as u64)
                .clone();
            let reserved: Option<String> = self.query(&set).await?;
            if reserved.is_some() {
                return Ok(Idempotency::Fresh);
            }
            let found: Option<String> = self.query(redis::cmd("GET").arg(&name)).await?;
            if let Some(found) = found {
                return Ok(serde_json::from_str::<IdempotencyEntry>(&found)?.state());
            }
        }
        Err(StoreError::Unavailable("the idempotency key keeps changing; retry".into()))
    }

    async fn idempotency_finish(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
        answer: &StoredAnswer,
        keep: Duration,
    ) -> StoreResult<()> {
        let entry = IdempotencyEntry { fingerprint: fingerprint.to_owned(), answer: Some(answer.clone()) };
        let name = self.keys.idempotency(tenant, key);
        let set = redis::cmd("SET")
            .arg(name)
            .arg(serde_json::to_string(&entry)?)
            .arg("PX")
            .arg(keep.as_millis() as u64)
            .clone();
        self.query::<()>(&set).await
    }

    async fn idempotency_release(&self, tenant: &TenantId, key: &str) -> StoreResult<()> {
        self.query::<()>(redis::cmd("DEL").arg(self.keys.idempotency(tenant, key))).await
    }

    async fn ping(&self) -> StoreResult<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}
