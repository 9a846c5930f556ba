//! Chats: the operations behind every REST route and WebSocket command
//! (create, read, list, delete, message, input, cancel, history). Each takes
//! the [`Caller`] and decides access inside the operation, in the store read it
//! needs anyway: another tenant's chat, or a chat a chat token does not reach,
//! is `chat_not_found`.
//!
//! Touches the ledger (store and bus) and starts or stops runs through the
//! [`Engine`]; knows nothing of HTTP or sockets.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::access::Access;

mod tools;
use crate::auth::Caller;
use crate::bus::Channel;
use crate::engine::Engine;
use crate::ledger::{Journal, Refusal, UpdateError, transitions};
use crate::model::{
    Chat, ChatId, ChatRecord, ChatStatus, ClientError, ErrorCode, Event, EventKind, FlowId, Message, Page,
    TenantId, now,
};
use crate::store::{ChatChange, ChatQuery, SeqQuery};

/// The fields of `POST /chats`.
#[derive(Debug, Clone)]
pub struct NewChat {
    /// Display name (defaults to the flow's name).
    pub name: Option<String>,
    /// The flow to run.
    pub from_flow: FlowId,
    /// Caller's JSON object.
    pub metadata: Option<Value>,
}

/// A message or input text as every route and socket op requires it:
/// present, not blank, at most `max_bytes`; else a 422 naming `message`.
pub fn required_text(text: Option<&str>, max_bytes: usize) -> Result<&str, ClientError> {
    match text {
        None => Err(ClientError::invalid("message", "message is required")),
        Some(t) if t.trim().is_empty() => Err(ClientError::invalid("message", "message must not be empty")),
        Some(t) if t.len() > max_bytes => {
            Err(ClientError::invalid("message", format!("message is longer than {max_bytes} bytes")))
        }
        Some(t) => Ok(t),
    }
}

/// The chat operations.
#[derive(Clone)]
pub struct ChatService {
    journal: Journal,
    engine: Arc<Engine>,
    access: Access,
    max_message_bytes: usize,
}

impl ChatService {
    /// Wires the service; texts longer than `max_message_bytes` are refused.
    pub fn new(journal: Journal, engine: Arc<Engine>, access: Access, max_message_bytes: usize) -> Self {
        Self { journal, engine, access, max_message_bytes }
    }

    /// The journal (store and bus) the service writes through.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Creates a `ready` chat from one of the tenant's flows.
    pub async fn create(&self, caller: &Caller, new: NewChat) -> Result<Chat, ClientError> {
        self.access.tenant_wide(caller).await?;
        let tenant = &caller.tenant;
        let quota = self.engine.run_limits().max_chats_per_tenant;
        self.within_quota(tenant, None, quota, "runs.max_chats_per_tenant").await?;
        let flow = self.journal.store.get_flow(tenant, &new.from_flow).await?.ok_or_else(|| {
            ClientError::new(ErrorCode::FlowNotFound, format!("no flow {}", new.from_flow))
                .with("param", "from_flow")
        })?;
        let at = now();
        let chat = Chat {
            id: ChatId::new(),
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

    /// One chat the caller may reach, with its run: the one access check of
    /// every chat operation (liveness, tenant, chat-token scope).
    pub async fn get(&self, caller: &Caller, chat_id: &ChatId) -> Result<ChatRecord, ClientError> {
        self.access.live(caller).await?;
        match self.journal.store.get_chat(chat_id).await? {
            Some(record) if caller.reaches_chat(&record.tenant, chat_id) => Ok(record),
            _ => Err(ClientError::chat_not_found(chat_id)),
        }
    }

    /// A page of the tenant's chats.
    pub async fn list(&self, caller: &Caller, query: &ChatQuery) -> Result<Page<Chat>, ClientError> {
        self.access.tenant_wide(caller).await?;
        Ok(self.journal.store.list_chats(&caller.tenant, query).await?)
    }

    /// Cancels the chat's run, deletes it with its history, and tells its
    /// listeners (`chat.deleted`). Access is decided on the record's owner
    /// alone, so a chat whose record no longer reads whole can still go.
    pub async fn delete(&self, caller: &Caller, chat_id: &ChatId) -> Result<(), ClientError> {
        self.access.live(caller).await?;
        let owner = self.journal.store.chat_owner(chat_id).await?;
        let Some(owner) = owner.filter(|o| caller.reaches_chat(&o.tenant, chat_id)) else {
            return Err(ClientError::chat_not_found(chat_id));
        };
        self.engine.stop(chat_id);
        // The seq after the last commit, read by the delete itself: a run's
        // write that landed after `owner` was read must not share its seq.
        let Some(last_seq) = self.journal.store.delete_chat(chat_id).await? else {
            return Err(ClientError::chat_not_found(chat_id));
        };
        let event = Event {
            seq: Some(last_seq + 1),
            chat_id: chat_id.clone(),
            kind: EventKind::ChatDeleted,
            created_at: now(),
            data: json!({}),
        };
        self.journal.publish(&owner.tenant, &event).await;
        Ok(())
    }

    /// Stores the user's message, with its images (see [`super::images`]),
    /// and starts a run (one run, however many race).
    pub async fn post_message(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        text: Option<&str>,
        images: &[String],
    ) -> Result<Message, ClientError> {
        let content = required_text(text, self.max_message_bytes)?;
        super::images::validate(images)?;
        let record = self.get(caller, chat_id).await?;
        let quota = self.engine.run_limits().max_concurrent_runs_per_tenant;
        let running = Some(ChatStatus::Running);
        self.within_quota(&record.tenant, running, quota, "runs.max_concurrent_runs_per_tenant").await?;
        self.within_stored_bytes(&record.tenant).await?;
        let mut created = None;
        self.update(chat_id, |current| {
            let change = transitions::post_message(current, content, images)?;
            created = change.messages.first().cloned();
            Ok(change)
        })
        .await?;
        self.engine.start(chat_id);
        Ok(created.expect("post_message always creates the user's message"))
    }

    /// Answers the pending input request and resumes the run; `None` is the
    /// auto reply (AutoGen's empty reply), any text must be a valid message.
    pub async fn submit_input(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        request_id: Option<&str>,
        answer: Option<Option<&str>>,
    ) -> Result<Chat, ClientError> {
        let message = match answer {
            None => None,
            Some(text) => Some(required_text(text, self.max_message_bytes)?),
        };
        let record = self.get(caller, chat_id).await?;
        self.within_stored_bytes(&record.tenant).await?;
        let record =
            self.update(chat_id, |current| transitions::submit_input(current, request_id, message)).await?;
        self.engine.start(chat_id);
        Ok(record.chat)
    }

    /// Stops the active run; what it stored stays. The chat becomes `ready`.
    pub async fn cancel(&self, caller: &Caller, chat_id: &ChatId) -> Result<Chat, ClientError> {
        self.get(caller, chat_id).await?;
        let record = self.update(chat_id, transitions::cancel).await?;
        self.engine.stop(chat_id);
        Ok(record.chat)
    }

    /// A page of the chat's messages, with the chat's `last_seq`.
    pub async fn messages(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: &SeqQuery,
    ) -> Result<(Vec<Message>, u64), ClientError> {
        let record = self.get(caller, chat_id).await?;
        let messages = self.journal.store.messages(chat_id, query).await?;
        Ok((messages, record.chat.last_seq))
    }

    /// Like [`ChatService::messages`], but when nothing is after the cursor
    /// holds up to `wait` (or until `stop`) for a newer message (long-poll).
    pub async fn messages_waiting(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: &SeqQuery,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<(Vec<Message>, u64), ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // Subscribe before reading, so a message stored in between wakes us.
            let sub = if left.is_zero() || query.descending || stop.is_cancelled() {
                None
            } else {
                let channel = Channel::Chat(chat_id.to_owned());
                let sub = self.journal.bus.subscribe(&channel).await;
                Some(sub.map_err(|e| ClientError::unavailable(format!("the live feed is unavailable: {e}")))?)
            };
            let (items, last_seq) = self.messages(caller, chat_id, query).await?;
            match sub {
                // A closed bus would wake us at once, again and again: answer now.
                Some(sub) if items.is_empty() && sub.resync.has_changed().is_ok() => {
                    let after = query.after_seq.unwrap_or(0);
                    let credential = self.access.watch(caller);
                    tokio::select! {
                        () = super::longpoll::wait_for_message(sub, after, left, stop) => {}
                        () = credential.ended() => {
                            return Err(ClientError::unauthenticated("the credential was revoked or expired"));
                        }
                    }
                }
                _ => return Ok((items, last_seq)),
            }
        }
    }

    /// A page of the chat's durable events, with the chat's `last_seq`.
    pub async fn events(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: &SeqQuery,
    ) -> Result<(Vec<Event>, u64), ClientError> {
        let record = self.get(caller, chat_id).await?;
        let events = self.journal.store.events(chat_id, query).await?;
        Ok((events, record.chat.last_seq))
    }

    /// Where a feed of the chat may start: checks access and that `after_seq`
    /// is not beyond the chat's `last_seq` (a 422 naming `param`); returns the
    /// chat's `last_seq`.
    pub async fn feed_start(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        after_seq: u64,
        param: &str,
    ) -> Result<u64, ClientError> {
        let last_seq = self.get(caller, chat_id).await?.chat.last_seq;
        if after_seq > last_seq {
            return Err(ClientError::invalid(
                param,
                format!("{param} {after_seq} is beyond the chat's last_seq {last_seq}"),
            ));
        }
        Ok(last_seq)
    }

    /// Mints a short-lived token limited to one chat, for a browser widget.
    pub async fn mint_token(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        ttl_secs: Option<u64>,
    ) -> Result<(String, u64), ClientError> {
        self.access.tenant_wide(caller).await?;
        self.get(caller, chat_id).await?;
        Ok(self.access.mint_chat_token(caller, chat_id, ttl_secs))
    }

    /// Whether the store and the bus answer (for `/readyz`), each with why not.
    pub async fn ping(&self) -> (Result<(), String>, Result<(), String>) {
        let store = self.journal.store.ping().await.map_err(|e| e.to_string());
        let bus = self.journal.bus.ping().await.map_err(|e| e.to_string());
        (store, bus)
    }

    /// 429 `quota_exceeded` when the tenant already has `quota` chats (in
    /// `status`); 0 is no quota. A check, then the change: racing requests
    /// may pass it together, so a quota can be overshot by that many.
    async fn within_quota(
        &self,
        tenant: &TenantId,
        status: Option<ChatStatus>,
        quota: u64,
        setting: &str,
    ) -> Result<(), ClientError> {
        if quota == 0 || self.journal.store.count_chats(tenant, status).await? < quota {
            return Ok(());
        }
        Err(ClientError::new(
            ErrorCode::QuotaExceeded,
            format!("the tenant is at its quota: {setting} = {quota}"),
        )
        .with("quota", setting))
    }

    /// 429 `quota_exceeded` once the tenant keeps its quota of message text
    /// (`runs.max_stored_bytes_per_tenant`; 0 is no quota). A run already
    /// going may pass it by what its caps allow.
    async fn within_stored_bytes(&self, tenant: &TenantId) -> Result<(), ClientError> {
        let quota = self.engine.run_limits().max_stored_bytes_per_tenant;
        if quota == 0 || self.journal.store.stored_bytes(tenant).await? < quota {
            return Ok(());
        }
        let setting = "runs.max_stored_bytes_per_tenant";
        Err(ClientError::new(
            ErrorCode::QuotaExceeded,
            format!("the tenant keeps its quota of stored message text: {setting} = {quota} bytes"),
        )
        .with("quota", setting))
    }

    async fn update(
        &self,
        chat_id: &ChatId,
        plan: impl FnMut(&ChatRecord) -> Result<ChatChange, Refusal>,
    ) -> Result<ChatRecord, ClientError> {
        self.journal.update(chat_id, plan).await.map_err(|e| match e {
            UpdateError::NotFound => ClientError::chat_not_found(chat_id),
            UpdateError::Refused(r) => r.into(),
            UpdateError::Store(s) => s.into(),
        })
    }
}
