//! Chats: the domain operations behind every REST route and WebSocket command
//! (create, read, list, delete, message, input, cancel, history), with the
//! tenant check on each.
//!
//! Touches the store and bus through [`Journal`] and starts or stops runs through
//! the [`Engine`]; it knows nothing of HTTP.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::engine::Engine;
use crate::model::{Chat, ChatRecord, ChatStatus, Event, EventKind, IdKind, Message, Page, new_id, now};
use crate::store::{ChatQuery, SeqQuery, StoreError};

mod journal;
pub mod transitions;

pub use journal::{Journal, UpdateError};
pub use transitions::Refusal;

/// Why a chat operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatsError {
    /// No such chat for this tenant.
    #[error("chat {0} not found")]
    ChatNotFound(String),
    /// No such flow for this tenant.
    #[error("flow {0} not found")]
    FlowNotFound(String),
    /// The chat's state does not allow it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The fields of `POST /chats`.
#[derive(Debug, Clone, Default)]
pub struct NewChat {
    /// Display name (defaults to the flow's name).
    pub name: Option<String>,
    /// The flow to run.
    pub from_flow: String,
    /// Caller's JSON object.
    pub metadata: Option<Value>,
}

/// The chat operations.
#[derive(Clone)]
pub struct ChatService {
    journal: Journal,
    engine: Arc<Engine>,
}

impl ChatService {
    /// Wires the service.
    pub fn new(journal: Journal, engine: Arc<Engine>) -> Self {
        Self { journal, engine }
    }

    /// The journal (store and bus) the service writes through.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Creates a `ready` chat from one of the tenant's flows.
    pub async fn create(&self, tenant: &str, new: NewChat) -> Result<Chat, ChatsError> {
        let flow = self
            .journal
            .store
            .get_flow(tenant, &new.from_flow)
            .await?
            .ok_or_else(|| ChatsError::FlowNotFound(new.from_flow.clone()))?;
        let at = now();
        let chat = Chat {
            id: new_id(IdKind::Chat),
            name: new.name.unwrap_or(flow.name),
            from_type: "flow".into(),
            from_flow: flow.id,
            status: ChatStatus::Ready,
            created_at: at,
            updated_at: at,
            last_seq: 0,
            metadata: new.metadata.unwrap_or_else(|| json!({})),
            error: None,
            pending_input: None,
        };
        let change = transitions::create(tenant, chat);
        let chat = change.record.chat.clone();
        self.journal.commit(change).await?;
        Ok(chat)
    }

    /// One chat of the tenant, with its run.
    pub async fn get(&self, tenant: &str, chat_id: &str) -> Result<ChatRecord, ChatsError> {
        match self.journal.store.get_chat(chat_id).await? {
            Some(record) if record.tenant == tenant => Ok(record),
            _ => Err(ChatsError::ChatNotFound(chat_id.to_owned())),
        }
    }

    /// A page of the tenant's chats.
    pub async fn list(&self, tenant: &str, query: &ChatQuery) -> Result<Page<Chat>, ChatsError> {
        Ok(self.journal.store.list_chats(tenant, query).await?)
    }

    /// Cancels the chat's run, deletes it with its history, and tells its
    /// listeners (`chat.deleted`).
    pub async fn delete(&self, tenant: &str, chat_id: &str) -> Result<(), ChatsError> {
        let record = self.get(tenant, chat_id).await?;
        self.engine.stop(chat_id);
        if !self.journal.store.delete_chat(chat_id).await? {
            return Err(ChatsError::ChatNotFound(chat_id.to_owned()));
        }
        let event = Event {
            seq: Some(record.chat.last_seq + 1),
            chat_id: chat_id.to_owned(),
            kind: EventKind::ChatDeleted,
            created_at: now(),
            data: json!({}),
        };
        self.journal.publish(tenant, &event).await;
        Ok(())
    }

    /// Stores the user's message and starts a run (one run, however many race).
    pub async fn post_message(
        &self,
        tenant: &str,
        chat_id: &str,
        content: &str,
    ) -> Result<Message, ChatsError> {
        self.get(tenant, chat_id).await?;
        let mut created = None;
        self.update(chat_id, |current| {
            let change = transitions::post_message(current, content)?;
            created = change.messages.first().cloned();
            Ok(change)
        })
        .await?;
        self.engine.start(chat_id);
        Ok(created.expect("post_message always creates the user's message"))
    }

    /// Answers the pending input request (`message: None` for the auto reply)
    /// and resumes the run.
    pub async fn submit_input(
        &self,
        tenant: &str,
        chat_id: &str,
        request_id: Option<&str>,
        message: Option<&str>,
    ) -> Result<Chat, ChatsError> {
        self.get(tenant, chat_id).await?;
        let record =
            self.update(chat_id, |current| transitions::submit_input(current, request_id, message)).await?;
        self.engine.start(chat_id);
        Ok(record.chat)
    }

    /// Stops the active run; what it stored stays. The chat becomes `ready`.
    pub async fn cancel(&self, tenant: &str, chat_id: &str) -> Result<Chat, ChatsError> {
        self.get(tenant, chat_id).await?;
        let record = self.update(chat_id, transitions::cancel).await?;
        self.engine.stop(chat_id);
        Ok(record.chat)
    }

    /// A page of the chat's messages, with the chat's `last_seq`.
    pub async fn messages(
        &self,
        tenant: &str,
        chat_id: &str,
        query: &SeqQuery,
    ) -> Result<(Vec<Message>, u64), ChatsError> {
        let record = self.get(tenant, chat_id).await?;
        let messages = self.journal.store.messages(chat_id, query).await?;
        Ok((messages, record.chat.last_seq))
    }

    /// A page of the chat's durable events, with the chat's `last_seq`.
    pub async fn events(
        &self,
        tenant: &str,
        chat_id: &str,
        query: &SeqQuery,
    ) -> Result<(Vec<Event>, u64), ChatsError> {
        let record = self.get(tenant, chat_id).await?;
        let events = self.journal.store.events(chat_id, query).await?;
        Ok((events, record.chat.last_seq))
    }

    async fn update(
        &self,
        chat_id: &str,
        plan: impl FnMut(&ChatRecord) -> Result<crate::store::ChatChange, Refusal>,
    ) -> Result<ChatRecord, ChatsError> {
        self.journal.update(chat_id, plan).await.map_err(|e| match e {
            UpdateError::NotFound => ChatsError::ChatNotFound(chat_id.to_owned()),
            UpdateError::Refused(r) => ChatsError::Refused(r),
            UpdateError::Store(s) => ChatsError::Store(s),
        })
    }
}
