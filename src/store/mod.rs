//! Durable records behind one small trait, so a backend is picked once in `main`:
//! SQLite (`sqlite`, the embedded default, one file) or Redis (`redis`, shared by
//! several nodes).
//!
//! The store knows nothing of the status machine. A change to a chat arrives as a
//! [`ChatChange`], already planned by `crate::ledger::transitions`, and is applied as one atomic
//! compare-and-set on the chat's `last_seq`: either the new chat state, its
//! events and its messages are all stored, or none are and the caller gets
//! [`StoreError::Conflict`] and plans again from a fresh read. A returned `Ok`
//! means committed durably.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{
    ApiKey, Chat, ChatId, ChatRecord, ChatStatus, Event, FlowId, FlowRecord, KeyId, Message, Page, Role,
    TenantId,
};

pub mod redis;
pub mod sqlite;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The chat's `last_seq` was not the expected one (or, on insert, the id is
    /// taken): plan again from a fresh read.
    #[error("the chat changed since it was read")]
    Conflict,
    /// The chat of a change does not exist (any more).
    #[error("the chat does not exist")]
    ChatNotFound,
    /// The backend cannot be reached now; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis said no.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored record could not be read back.
    #[error("stored record unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The store's worker has stopped (shutdown).
    #[error("the store is shut down")]
    Closed,
    /// The change's run lease is no longer held by its writer: another node
    /// owns the run now.
    #[error("the run lease is held elsewhere")]
    Fenced,
}

impl StoreError {
    /// Whether the same request may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Closed)
            || matches!(self, StoreError::Redis(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped())
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// One atomic change to one chat.
#[derive(Debug, Clone)]
pub struct ChatChange {
    /// The `last_seq` the chat must still have, or `None` to insert a new chat
    /// (which must not exist yet).
    pub expected_seq: Option<u64>,
    /// The chat as it is after the change; its `chat.last_seq` is the seq of the
    /// last event in `events` (or unchanged when there are none).
    pub record: ChatRecord,
    /// Durable events, seqs `expected_seq + 1 ..= record.chat.last_seq`, in order.
    pub events: Vec<Event>,
    /// Messages created by the change; each has its `message.created` event in
    /// `events` with the same seq.
    pub messages: Vec<Message>,
    /// For a run's writes on a shared store: the run lease that must still be
    /// held, or the change is refused with [`StoreError::Fenced`].
    pub fence: Option<Fence>,
}

/// A run lease a change depends on (see `crate::engine::lease`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's key, in the chat's hash slot.
    pub key: String,
    /// The holder's token.
    pub token: String,
}

/// Filters and cursor for `GET /chats`. Chats list newest first.
#[derive(Debug, Clone, Default)]
pub struct ChatQuery {
    /// Only chats in this status.
    pub status: Option<ChatStatus>,
    /// Only chats of this flow.
    pub from_flow: Option<FlowId>,
    /// Chats created before this chat id (the next page).
    pub after: Option<ChatId>,
    /// Chats created after this chat id (the previous page).
    pub before: Option<ChatId>,
    /// Page size, 1..=100.
    pub limit: usize,
}

/// Cursor for message and event reads. Ascending by seq unless `descending`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqQuery {
    /// Only items with a seq greater than this.
    pub after_seq: Option<u64>,
    /// Only items with a seq smaller than this.
    pub before_seq: Option<u64>,
    /// At most this many items (the store may be asked for one more to learn
    /// `has_more`).
    pub limit: usize,
    /// Newest first.
    pub descending: bool,
    /// Which messages [`Store::messages`] returns (event reads ignore it). The
    /// filter applies before `limit`, so a page holds up to `limit` messages
    /// of the view.
    pub view: MessageView,
}

/// Which of a chat's messages a read returns (`GET /messages?view=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageView {
    /// Every message.
    #[default]
    All,
    /// What the human sees of the conversation: `user` and `human_input`
    /// messages, and agent messages whose `metadata.final` is `true` (see
    /// `docs/flows.md`, "Final answers").
    Final,
}

impl MessageView {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageView::All => "all",
            MessageView::Final => "final",
        }
    }

    /// Whether `message` belongs to the view.
    pub fn keeps(self, message: &Message) -> bool {
        match self {
            MessageView::All => true,
            MessageView::Final => matches!(message.role, Role::User | Role::HumanInput) || is_final(message),
        }
    }
}

/// Whether the engine marked `message` as its run's answer to the human
/// (`metadata.final == true`).
pub fn is_final(message: &Message) -> bool {
    message.metadata.get(FINAL_KEY).and_then(serde_json::Value::as_bool) == Some(true)
}

/// The metadata key marking a final agent message.
pub const FINAL_KEY: &str = "final";

/// Who owns a chat, read from its stored record even when the rest of the
/// record no longer parses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatOwner {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The chat's last seq.
    pub last_seq: u64,
}

/// A stored record for a listing: `None` (logged) when it cannot be read back,
/// so one bad record never takes down a list.
pub(crate) fn readable<T: serde::de::DeserializeOwned>(json: &str) -> Option<T> {
    match serde_json::from_str(json) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::error!(error = %e, "skipped a stored record that cannot be read back");
            None
        }
    }
}

/// Bytes of message text a change stores (what the stored-bytes quota counts).
pub(crate) fn stored_text_bytes(change: &ChatChange) -> u64 {
    change.messages.iter().map(|m| m.content.len() as u64).sum()
}

/// Where an idempotency key stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Idempotency {
    /// Nobody used it: it is now reserved for this request.
    Fresh,
    /// Another request with it is still running.
    InProgress {
        /// That request's fingerprint.
        fingerprint: String,
    },
    /// A request with it was answered.
    Answered {
        /// That request's fingerprint.
        fingerprint: String,
        /// Its answer.
        answer: StoredAnswer,
    },
}

/// An answer kept for retries: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// The HTTP status (200 for a socket's ack).
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

/// What an idempotency entry holds, as both stores keep it (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdempotencyEntry {
    pub(crate) fingerprint: String,
    #[serde(default)]
    pub(crate) answer: Option<StoredAnswer>,
}

impl IdempotencyEntry {
    /// The state a found entry stands for.
    pub(crate) fn state(self) -> Idempotency {
        match self.answer {
            Some(answer) => Idempotency::Answered { fingerprint: self.fingerprint, answer },
            None => Idempotency::InProgress { fingerprint: self.fingerprint },
        }
    }
}

/// The owner of a stored chat record. Only `tenant` and `chat.last_seq` are
/// read; serde_json skips the rest without recursing, so a record nested too
/// deep to read whole still answers.
pub(crate) fn owner_of(json: &str) -> StoreResult<ChatOwner> {
    #[derive(Deserialize)]
    struct Skeleton {
        tenant: TenantId,
        chat: SkeletonChat,
    }
    #[derive(Deserialize)]
    struct SkeletonChat {
        last_seq: u64,
    }
    let skeleton: Skeleton = serde_json::from_str(json)?;
    Ok(ChatOwner { tenant: skeleton.tenant, last_seq: skeleton.chat.last_seq })
}

/// The durable records Flowgate keeps. Implemented by [`sqlite::SqliteStore`] and
/// the Redis store; both pass the same behaviour suite (`tests/store_suite`).
///
/// Reads are not tenant-scoped: the domain services (`crate::service`) check the tenant of every record
/// it loads before anything leaves the process.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies one change atomically (see [`ChatChange`]).
    async fn commit(&self, change: ChatChange) -> StoreResult<()>;
    /// Removes a chat with its messages and events, and returns its last seq
    /// as it was at the delete (no commit can follow a delete); `None` if it
    /// was not there.
    async fn delete_chat(&self, chat_id: &ChatId) -> StoreResult<Option<u64>>;
    /// Who owns a chat, even when its record cannot be read whole (see
    /// [`ChatOwner`]); lets such a chat still be deleted.
    async fn chat_owner(&self, chat_id: &ChatId) -> StoreResult<Option<ChatOwner>>;
    /// One chat with its run, whatever its tenant.
    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<ChatRecord>>;
    /// A page of one tenant's chats, newest first.
    async fn list_chats(&self, tenant: &TenantId, query: &ChatQuery) -> StoreResult<Page<Chat>>;
    /// How many chats a tenant has (in `status`, when given), for quotas.
    async fn count_chats(&self, tenant: &TenantId, status: Option<ChatStatus>) -> StoreResult<u64>;
    /// Every chat, of any tenant, whose status is `running` (resumed at start).
    async fn running_chats(&self) -> StoreResult<Vec<ChatRecord>>;
    /// A chat's messages by seq range.
    async fn messages(&self, chat_id: &ChatId, query: &SeqQuery) -> StoreResult<Vec<Message>>;
    /// A chat's durable events by seq range.
    async fn events(&self, chat_id: &ChatId, query: &SeqQuery) -> StoreResult<Vec<Event>>;

    /// Inserts or replaces a flow (keyed by tenant and id).
    async fn put_flow(&self, flow: &FlowRecord) -> StoreResult<()>;
    /// One flow of one tenant.
    async fn get_flow(&self, tenant: &TenantId, flow_id: &FlowId) -> StoreResult<Option<FlowRecord>>;
    /// A page of one tenant's flows, newest first, after the flow id `after`.
    async fn list_flows(
        &self,
        tenant: &TenantId,
        after: Option<&FlowId>,
        limit: usize,
    ) -> StoreResult<Page<FlowRecord>>;
    /// Removes a flow; `false` if it was not there.
    async fn delete_flow(&self, tenant: &TenantId, flow_id: &FlowId) -> StoreResult<bool>;

    /// Stores a new key with the SHA-256 hash of its secret (hex).
    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> StoreResult<()>;
    /// The key whose secret hashes to `secret_hash`, if it exists.
    async fn key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Every key of a tenant, oldest first.
    async fn list_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>>;
    /// Removes a key of a tenant; `false` if it was not there.
    async fn delete_key(&self, tenant: &TenantId, key_id: &KeyId) -> StoreResult<bool>;
    /// Records a use of a key.
    async fn touch_key(&self, key_id: &KeyId, at: crate::model::Timestamp) -> StoreResult<()>;

    /// Bytes of message text a tenant keeps stored (counted as messages are
    /// committed, released with their chat), for its quota.
    async fn stored_bytes(&self, tenant: &TenantId) -> StoreResult<u64>;

    /// Reserves an idempotency key of a tenant (`key` is already hashed) for
    /// `hold`, unless it is reserved or answered already (see
    /// [`Idempotency`]). Expired entries count as absent.
    async fn idempotency_begin(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
        hold: std::time::Duration,
    ) -> StoreResult<Idempotency>;
    /// Records the answer to a reserved key, kept for `keep`.
    async fn idempotency_finish(
        &self,
        tenant: &TenantId,
        key: &str,
        fingerprint: &str,
        answer: &StoredAnswer,
        keep: std::time::Duration,
    ) -> StoreResult<()>;
    /// Lets a reserved key go (its operation failed; a retry runs it again).
    async fn idempotency_release(&self, tenant: &TenantId, key: &str) -> StoreResult<()>;

    /// Whether the backend answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
}
