//! The behaviour every [`Store`] backend must show, independent of the backend.
//!
//! A backend's test module runs the whole suite with
//!
//! ```ignore
//! store_suite!(fresh_store());
//! ```
//!
//! (`main.rs` declares this module first, with `#[macro_use]`, so every module
//! after it sees the macro).
//!
//! where `fresh_store()` is an expression evaluating to a future of
//! `(Arc<dyn Store>, guard)`: an EMPTY store of its own (some behaviours count
//! every running chat), and anything that must live as long as the test (a temp
//! dir, a server). Each behaviour is a `pub async fn` here, taking the store.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::TimeDelta;
use serde::Serialize;
use serde_json::json;

use flowgate::ledger::transitions;
use flowgate::model::{
    ApiKey, Chat, ChatId, ChatRecord, ChatStatus, Event, FlowId, FlowRecord, KeyId, Message, Role, TenantId,
    Timestamp, now,
};
use flowgate::store::{ChatChange, ChatQuery, MessageView, SeqQuery, Store, StoreError};

mod chats;
mod records;
mod unreadable;
pub use chats::*;
pub use records::*;
pub use unreadable::*;

/// One `#[tokio::test]` per behaviour, each on a fresh store from `$factory`.
#[macro_export]
macro_rules! store_suite {
    ($factory:expr) => {
        $crate::store_suite!(@each $factory;
            a_committed_chat_reads_back_equal,
            inserting_an_existing_chat_id_conflicts,
            a_stale_expected_seq_conflicts_and_leaves_the_chat_unchanged,
            a_change_to_a_missing_chat_is_chat_not_found,
            twenty_concurrent_changes_from_the_same_seq_commit_exactly_one,
            events_and_messages_read_back_in_seq_order_by_cursor,
            the_final_view_keeps_user_human_input_and_final_messages_by_cursor,
            chat_listing_is_newest_first_and_filters_by_status_and_flow,
            chat_pages_follow_after_and_before_without_overlap_or_gap,
            chat_listing_never_shows_another_tenants_chats,
            running_chats_finds_exactly_the_running_ones_of_every_tenant,
            deleting_a_chat_removes_its_messages_and_events,
            flows_are_scoped_by_tenant_and_put_replaces,
            flows_list_newest_first_with_an_after_cursor,
            keys_are_found_by_hash_listed_per_tenant_and_touched,
            a_key_is_deleted_only_by_its_own_tenant,
            idempotency_keys_are_reserved_answered_and_released_per_tenant,
            stored_message_bytes_are_counted_per_tenant_and_given_back_with_their_chat,
            a_fresh_store_answers_ping,
            an_unreadable_record_is_skipped_by_listings_and_can_still_be_deleted,
        );
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $factory.await;
                let run = $crate::store_suite::$name(store);
                tokio::time::timeout(std::time::Duration::from_secs(60), run)
                    .await
                    .expect("the behaviour finished in time");
            }
        )*
    };
}

/// The store as every behaviour takes it.
pub type DynStore = Arc<dyn Store>;

/// Compares two records by their stored (wire) form: timestamps keep
/// milliseconds, so a record read back equals its JSON round trip.
pub fn assert_same<T: Serialize + std::fmt::Debug>(got: &T, want: &T) {
    let (g, w) =
        (serde_json::to_value(got).expect("serializes"), serde_json::to_value(want).expect("serializes"));
    assert_eq!(g, w, "\n got: {got:?}\nwant: {want:?}");
}

/// A tenant named in a test.
pub fn tenant_named(name: &str) -> TenantId {
    TenantId::parse(name).expect("a test tenant name")
}

/// A flow id named in a test.
pub fn flow_named(name: &str) -> FlowId {
    FlowId::parse(name).expect("a test flow id")
}

/// A new chat of `flow`, not yet stored.
pub fn chat_of(flow_id: &str) -> Chat {
    let flow = flow_id;
    let at = now();
    Chat {
        id: ChatId::new(),
        name: format!("a chat of {flow}"),
        from_type: "flow".into(),
        from_flow: flow_named(flow),
        status: ChatStatus::Ready,
        created_at: at,
        updated_at: at,
        last_seq: 0,
        metadata: json!({"k": "v"}),
        error: None,
        pending_input: None,
    }
}

/// Creates and commits a `ready` chat; returns it as stored.
pub async fn create_chat(store: &DynStore, tenant: &str, flow: &str) -> ChatRecord {
    let change = transitions::create(&tenant_named(tenant), chat_of(flow));
    let record = change.record.clone();
    store.commit(change).await.expect("a new chat commits");
    record
}

/// The change `POST /messages` plans.
pub fn post(current: &ChatRecord, content: &str) -> ChatChange {
    transitions::post_message(current, content, &[]).expect("a ready chat takes a message")
}

/// Commits a change; returns the chat after it.
pub async fn apply(store: &DynStore, change: ChatChange) -> ChatRecord {
    let record = change.record.clone();
    store.commit(change).await.expect("the change commits");
    record
}

/// Posts a message and cancels the run: a `ready` chat with five more events.
pub async fn post_and_cancel(store: &DynStore, current: &ChatRecord, content: &str) -> ChatRecord {
    let running = apply(store, post(current, content)).await;
    let cancel = transitions::cancel(&running).expect("a running chat cancels");
    apply(store, cancel).await
}

/// Every event of a chat, ascending.
pub async fn all_events(store: &DynStore, chat_id: &ChatId) -> Vec<Event> {
    let query = SeqQuery { limit: 10_000, ..SeqQuery::default() };
    store.events(chat_id, &query).await.expect("events read")
}

/// Every message of a chat, ascending.
pub async fn all_messages(store: &DynStore, chat_id: &ChatId) -> Vec<Message> {
    let query = SeqQuery { limit: 10_000, ..SeqQuery::default() };
    store.messages(chat_id, &query).await.expect("messages read")
}

/// One page of a tenant's chats, as ids.
pub async fn chat_ids(
    store: &DynStore,
    tenant: &str,
    query: ChatQuery,
) -> (Vec<ChatId>, bool, Option<ChatId>) {
    let page = store.list_chats(&tenant_named(tenant), &query).await.expect("chats list");
    let ids = page.data.into_iter().map(|c| c.id).collect();
    (ids, page.has_more, page.next_cursor.map(|c| ChatId::parse(&c).expect("a chat cursor")))
}

/// Ids newest first, as listings order them.
pub fn newest_first(records: &[ChatRecord]) -> Vec<ChatId> {
    let mut ids: Vec<ChatId> = records.iter().map(|r| r.chat.id.clone()).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// A set of chat ids.
pub fn id_set<'a>(ids: impl IntoIterator<Item = &'a ChatId>) -> BTreeSet<ChatId> {
    ids.into_iter().cloned().collect()
}

/// `now` shifted by `ms`, with millisecond precision.
pub fn at_ms(base: Timestamp, ms: i64) -> Timestamp {
    let shifted = Timestamp(base.0 + TimeDelta::milliseconds(ms));
    Timestamp::parse(&shifted.to_rfc3339()).expect("own timestamps parse")
}

/// A flow record of `tenant`.
pub fn flow_of(tenant: &str, id: &str, name: &str, created_at: Timestamp) -> FlowRecord {
    FlowRecord {
        id: flow_named(id),
        tenant: tenant_named(tenant),
        name: name.into(),
        definition: json!({"name": name, "agents": [], "chat": {}}),
        source: None,
        created_at,
        updated_at: created_at,
    }
}

/// An API key of `tenant`.
pub fn key_of(tenant: &str, name: &str) -> ApiKey {
    ApiKey {
        id: KeyId::new(),
        tenant: tenant_named(tenant),
        name: name.into(),
        environment: Some("development".into()),
        prefix: "fg_abcd".into(),
        created_at: at_ms(now(), 0),
        last_used_at: None,
    }
}

/// Whether a commit failed as a lost race.
pub fn is_conflict(result: &Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict))
}
