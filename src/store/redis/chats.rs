//! Chats on Redis: the atomic commit, reads by seq, and the tenant indexes
//! behind `list_chats` and `running_chats`.
//!
//! Consistency: a chat, its events and its messages change together in one
//! script (one hash tag). The tenant's indexes live in another slot and follow
//! in a second script, seq-guarded so any node may (re)apply any state in any
//! order and the indexes end at the newest one. Until it has run, an index may
//! miss a chat or list it under an old status; readers therefore load every
//! listed chat, skip those that do not match (and repair the index from what
//! they read), and skip ids whose chat is gone. [`RedisStore::reindex`]
//! rebuilds every index from the chats themselves.
//!
//! Touches only the chat and tenant keys of this store's prefix.

use serde::de::DeserializeOwned;

use super::{RedisStore, scripts};
use crate::model::{Chat, ChatRecord, ChatStatus, Page};
use crate::store::{ChatChange, ChatOwner, ChatQuery, MessageView, SeqQuery, StoreError, StoreResult};

/// Chats read per pipelined round trip.
const READ_BATCH: usize = 500;

/// What a tenant's indexes record of one chat.
struct Indexed<'a> {
    tenant: &'a str,
    chat_id: &'a str,
    seq: u64,
    status: ChatStatus,
    flow: &'a str,
}

impl<'a> Indexed<'a> {
    fn of(record: &'a ChatRecord) -> Self {
        Indexed {
            tenant: &record.tenant,
            chat_id: &record.chat.id,
            seq: record.chat.last_seq,
            status: record.chat.status,
            flow: &record.chat.from_flow,
        }
    }
}

/// A change's event without a seq: ephemeral, so it cannot be stored.
fn ephemeral_event(chat_id: &str) -> StoreError {
    StoreError::Redis(redis::RedisError::from((
        redis::ErrorKind::Client,
        "an event without a seq cannot be stored",
        chat_id.to_owned(),
    )))
}

impl RedisStore {
    /// The compare-and-set of [`crate::store::Store::commit`], then the index.
    pub(super) async fn commit_change(&self, change: ChatChange) -> StoreResult<()> {
        let record = &change.record;
        let chat = &record.chat;
        if change.events.iter().any(|e| e.seq.is_none()) {
            return Err(ephemeral_event(&chat.id));
        }
        if change.expected_seq.is_none() {
            // Before the chat exists, so `running_chats` never misses a tenant.
            let _: i64 = self.query(redis::cmd("SADD").arg(self.keys.tenants()).arg(&record.tenant)).await?;
        }
        let mut invocation = scripts::COMMIT.prepare_invoke();
        invocation
            .key(self.keys.chat(&chat.id))
            .key(self.keys.events(&chat.id))
            .key(self.keys.messages(&chat.id))
            .key(self.keys.final_messages(&chat.id))
            .key(change.fence.as_ref().map_or_else(|| self.keys.chat(&chat.id), |f| f.key.clone()))
            .arg(change.expected_seq.map(|s| s.to_string()).unwrap_or_default())
            .arg(chat.last_seq)
            .arg(serde_json::to_string(record)?)
            .arg(&record.tenant)
            .arg(chat.status.as_str())
            .arg(&chat.from_flow)
            .arg(change.events.len())
            .arg(change.fence.as_ref().map(|f| f.token.as_str()).unwrap_or_default());
        for event in &change.events {
            invocation.arg(event.seq).arg(serde_json::to_string(event)?);
        }
        for message in &change.messages {
            let in_final_view = if MessageView::Final.keeps(message) { "1" } else { "0" };
            invocation.arg(message.seq).arg(serde_json::to_string(message)?).arg(in_final_view);
        }
        let outcome: String = self.invoke(&invocation).await?;
        match outcome.as_str() {
            "OK" => {
                self.index_or_warn(&Indexed::of(record)).await;
                self.count_bytes(record.tenant.as_str(), &chat.id, crate::store::stored_text_bytes(&change))
                    .await;
                Ok(())
            }
            "CONFLICT" => Err(StoreError::Conflict),
            "NOT_FOUND" => Err(StoreError::ChatNotFound),
            "FENCED" => Err(StoreError::Fenced),
            other => Err(StoreError::Unavailable(format!("unexpected commit reply {other:?}"))),
        }
    }

    /// Applies a chat's state to its tenant's indexes (seq-guarded).
    async fn index(&self, state: &Indexed<'_>) -> StoreResult<()> {
        let (keys, tenant) = (&self.keys, state.tenant);
        let mut invocation = scripts::INDEX_CHAT.prepare_invoke();
        invocation
            .key(keys.chat_indexed(tenant))
            .key(keys.chats_base(tenant))
            .key(keys.chat_index(tenant, Some(state.status), None))
            .key(keys.chat_index(tenant, None, Some(state.flow)))
            .key(keys.chat_index(tenant, Some(state.status), Some(state.flow)))
            .arg(state.chat_id)
            .arg(state.seq)
            .arg(state.status.as_str())
            .arg(state.flow);
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }

    /// The commit stands whatever happens to its index: a failure here is
    /// repaired by the chat's next commit, by readers, or by `reindex`.
    async fn index_or_warn(&self, state: &Indexed<'_>) {
        if let Err(e) = self.index(state).await {
            tracing::warn!(chat_id = state.chat_id, error = %e, "chat index update failed");
        }
    }

    /// Takes a chat id out of a tenant's indexes, `found_in` included.
    async fn forget(&self, tenant: &str, chat_id: &str, found_in: &str) -> StoreResult<()> {
        let mut invocation = scripts::FORGET_CHAT.prepare_invoke();
        invocation
            .key(self.keys.chat_indexed(tenant))
            .key(self.keys.chats_base(tenant))
            .key(found_in)
            .arg(chat_id);
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }

    /// Removes a chat's keys, then its index entries.
    pub(super) async fn delete_chat_keys(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let mut invocation = scripts::DELETE_CHAT.prepare_invoke();
        invocation
            .key(self.keys.chat(chat_id))
            .key(self.keys.events(chat_id))
            .key(self.keys.messages(chat_id))
            .key(self.keys.final_messages(chat_id));
        let found: Option<(String, u64, u64)> = self.invoke(&invocation).await?;
        let Some((tenant, last_seq, bytes)) = found else {
            return Ok(None);
        };
        if bytes > 0 {
            let release = redis::cmd("DECRBY").arg(self.keys.usage(&tenant)).arg(bytes).clone();
            if let Err(e) = self.query::<i64>(&release).await {
                tracing::warn!(chat_id, error = %e, "stored-bytes count not released");
            }
        }
        let all = self.keys.chats_base(&tenant);
        if let Err(e) = self.forget(&tenant, chat_id, &all).await {
            tracing::warn!(chat_id, error = %e, "chat index cleanup failed");
        }
        Ok(Some(last_seq))
    }

    /// Adds a committed change's bytes of message text to its chat and its
    /// tenant: after the commit, so a failure here only loses count (logged).
    async fn count_bytes(&self, tenant: &str, chat_id: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let chat = redis::cmd("HINCRBY").arg(self.keys.chat(chat_id)).arg("bytes").arg(bytes).to_owned();
        let usage = redis::cmd("INCRBY").arg(self.keys.usage(tenant)).arg(bytes).to_owned();
        if let Err(e) = self.write_each(vec![chat, usage]).await {
            tracing::warn!(chat_id, error = %e, "stored-bytes count not updated");
        }
    }

    /// One chat by id.
    pub(super) async fn read_chat(&self, chat_id: &str) -> StoreResult<Option<ChatRecord>> {
        let json: Option<String> =
            self.read(redis::cmd("HGET").arg(self.keys.chat(chat_id)).arg("record")).await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Many chats by id, in order: each stored, gone, or unreadable (logged).
    async fn read_chats(&self, ids: &[String]) -> StoreResult<Vec<Stored>> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(READ_BATCH) {
            let reads =
                batch.iter().map(|id| redis::cmd("HGET").arg(self.keys.chat(id)).arg("record").to_owned());
            let rows: Vec<Option<String>> = self.read_each(reads.collect()).await?;
            out.extend(rows.into_iter().map(|row| match row {
                None => Stored::Gone,
                Some(json) => {
                    crate::store::readable(&json).map_or(Stored::Unreadable, |r| Stored::Record(Box::new(r)))
                }
            }));
        }
        Ok(out)
    }

    /// Who owns a chat, even when its record cannot be read whole.
    pub(super) async fn read_owner(&self, chat_id: &str) -> StoreResult<Option<ChatOwner>> {
        let json: Option<String> =
            self.read(redis::cmd("HGET").arg(self.keys.chat(chat_id)).arg("record")).await?;
        json.map(|j| crate::store::owner_of(&j)).transpose()
    }

    /// Keeps the records of `ids` that `wanted` accepts; repairs the index
    /// `found_in` of `tenant` for the others.
    async fn verified(
        &self,
        tenant: &str,
        found_in: &str,
        ids: &[String],
        wanted: impl Fn(&ChatRecord) -> bool,
    ) -> StoreResult<Vec<ChatRecord>> {
        let mut kept = Vec::with_capacity(ids.len());
        for (id, record) in ids.iter().zip(self.read_chats(ids).await?) {
            let repaired = match record {
                Stored::Record(record) if record.tenant == tenant && wanted(&record) => {
                    kept.push(*record);
                    continue;
                }
                Stored::Record(record) if record.tenant == tenant => self.index(&Indexed::of(&record)).await,
                Stored::Unreadable => continue,
                _ => self.forget(tenant, id, found_in).await,
            };
            if let Err(e) = repaired {
                tracing::warn!(chat_id = %id, error = %e, "chat index repair failed");
            }
        }
        Ok(kept)
    }

    /// A page of a tenant's chats, newest first (same cursors as SQLite's
    /// `list_chats`: `before` alone pages toward newer chats).
    pub(super) async fn list_chat_page(&self, tenant: &str, query: &ChatQuery) -> StoreResult<Page<Chat>> {
        let index = self.keys.chat_index(tenant, query.status, query.from_flow.as_deref());
        let toward_newer = query.before.is_some() && query.after.is_none();
        let mut high = query.after.as_ref().map_or("+".into(), |a| format!("({a}"));
        let mut low = query.before.as_ref().map_or("-".into(), |b| format!("({b}"));
        let wanted = |r: &ChatRecord| {
            query.status.is_none_or(|s| r.chat.status == s)
                && query.from_flow.as_ref().is_none_or(|f| &r.chat.from_flow == f)
        };
        let want = query.limit.saturating_add(1);
        let mut found: Vec<Chat> = Vec::new();
        while found.len() < want {
            let count = (want - found.len()).min(READ_BATCH);
            let (command, from, to) =
                if toward_newer { ("ZRANGEBYLEX", &low, &high) } else { ("ZREVRANGEBYLEX", &high, &low) };
            let cmd =
                redis::cmd(command).arg(&index).arg(from).arg(to).arg("LIMIT").arg(0).arg(count).to_owned();
            let ids: Vec<String> = self.read(&cmd).await?;
            let Some(last) = ids.last() else { break };
            let bound = format!("({last}");
            let records = self.verified(tenant, &index, &ids, wanted).await?;
            found.extend(records.into_iter().map(|r| r.chat));
            if ids.len() < count {
                break;
            }
            if toward_newer { low = bound } else { high = bound }
        }
        Ok(page_of(found, query.limit, toward_newer))
    }

    /// Every running chat of every tenant, by id.
    pub(super) async fn all_running(&self) -> StoreResult<Vec<ChatRecord>> {
        let tenants: Vec<String> = self.read(redis::cmd("SMEMBERS").arg(self.keys.tenants())).await?;
        let mut out = Vec::new();
        for tenant in tenants {
            let index = self.keys.chat_index(&tenant, Some(ChatStatus::Running), None);
            let ids: Vec<String> = self.read(redis::cmd("ZRANGEBYLEX").arg(&index).arg("-").arg("+")).await?;
            let running = |r: &ChatRecord| r.chat.status == ChatStatus::Running;
            out.extend(self.verified(&tenant, &index, &ids, running).await?);
        }
        out.sort_by(|a, b| a.chat.id.cmp(&b.chat.id));
        Ok(out)
    }

    /// A chat's messages or events by seq range, from their sorted set.
    pub(super) async fn by_seq<T: DeserializeOwned>(
        &self,
        key: &str,
        query: &SeqQuery,
    ) -> StoreResult<Vec<T>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let min = query.after_seq.map_or("-inf".into(), |s| format!("({s}"));
        let max = query.before_seq.map_or("+inf".into(), |s| format!("({s}"));
        let (command, from, to) =
            if query.descending { ("ZREVRANGEBYSCORE", max, min) } else { ("ZRANGEBYSCORE", min, max) };
        let cmd = redis::cmd(command)
            .arg(key)
            .arg(from)
            .arg(to)
            .arg("LIMIT")
            .arg(0)
            .arg(query.limit.min(i64::MAX as usize))
            .to_owned();
        let rows: Vec<String> = self.read(&cmd).await?;
        Ok(rows.iter().map(|row| serde_json::from_str(row)).collect::<Result<_, _>>()?)
    }

    /// Rebuilds every tenant index from the chats themselves (after an outage
    /// that may have cut a commit from its index update, or a restore); returns
    /// how many chats it indexed. Safe to run on a live store, from any node.
    pub async fn reindex(&self) -> StoreResult<usize> {
        let pattern = self.keys.chat_pattern();
        let mut indexed = 0usize;
        let timeout = self.timeout;
        for target in super::bounded(timeout, self.conn.scan_targets()).await? {
            indexed += self.reindex_on(&target, &pattern).await?;
        }
        Ok(indexed)
    }

    /// [`RedisStore::reindex`] on one server (one master of a cluster).
    async fn reindex_on(&self, target: &super::ScanTarget, pattern: &str) -> StoreResult<usize> {
        let (mut cursor, mut indexed) = (0u64, 0usize);
        loop {
            let scan = self.conn.scan(target, cursor, pattern, READ_BATCH);
            let (next, keys): (u64, Vec<String>) = super::bounded(self.timeout, scan).await?;
            let ids: Vec<String> =
                keys.iter().filter_map(|k| self.keys.chat_id_of(k).map(str::to_owned)).collect();
            let readable = self.read_chats(&ids).await?.into_iter().filter_map(|row| match row {
                Stored::Record(record) => Some(*record),
                Stored::Gone | Stored::Unreadable => None,
            });
            for record in readable {
                let _: i64 =
                    self.query(redis::cmd("SADD").arg(self.keys.tenants()).arg(&record.tenant)).await?;
                self.index(&Indexed::of(&record)).await?;
                indexed += 1;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(indexed);
            }
        }
    }
}

/// A chat id's stored record, as a listing reads it.
enum Stored {
    /// The record.
    Record(Box<ChatRecord>),
    /// No record (any more).
    Gone,
    /// A record that cannot be read back (skipped, left in the indexes).
    Unreadable,
}

/// Cuts `limit + 1` chats to a page in listing order (newest first).
fn page_of(mut data: Vec<Chat>, limit: usize, toward_newer: bool) -> Page<Chat> {
    let has_more = data.len() > limit;
    data.truncate(limit);
    if toward_newer {
        data.reverse();
    }
    let edge = if toward_newer { data.first() } else { data.last() };
    let next_cursor = edge.filter(|_| has_more).map(|c| c.id.clone());
    Page { data, has_more, next_cursor: next_cursor.map(String::from) }
}
