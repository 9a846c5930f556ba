//! A WebSocket session's subscriptions: `subscribe` (replacing an earlier
//! subscription to the same chat, within the connection's limit, each a
//! gap-free [`Follow`] task), `unsubscribe`, and `watch_status` (the tenant's
//! status feed, which skips the chats a live subscription already covers).
//!
//! Touches the chat service (the access check and the replay point of every
//! subscribe), the journal and its bus (the feeds), the access service (who
//! may watch a tenant's statuses) and the node's connection registry; every
//! task it starts ends with the session's token. A feed has no token of its
//! own: it follows the session's, and unsubscribing (or resubscribing) aborts
//! its task, whose handle costs no allocation where a child token would.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::task::AbortHandle;

use super::Session;
use crate::bus::Channel;
use crate::model::{ChatId, ClientError, Disconnect, ErrorCode};
use crate::realtime::feed::{FeedEnd, Follow, InView};
use crate::realtime::protocol;
use crate::store::MessageView;

/// A connection's subscriptions behind a mutex (never held across an await;
/// a `DashMap` would allocate its shards, about 1 KiB, on every socket).
pub(super) type Subscriptions = Arc<Mutex<Feeds>>;

/// A connection's subscriptions, each with its feed task's handle (`None`
/// while the subscribe that registered it has not started the feed yet):
/// a list kept at its exact length. A `HashMap` takes room for three entries
/// (160 bytes) at the first; a connection has at most `ws_max_subscriptions`
/// (128 by default), mostly one, so a scan costs less than the room.
#[derive(Default)]
pub(super) struct Feeds(Vec<(ChatId, Option<AbortHandle>)>);

impl Feeds {
    fn position(&self, chat_id: &ChatId) -> Option<usize> {
        self.0.iter().position(|(id, _)| id == chat_id)
    }

    fn get(&self, chat_id: &ChatId) -> Option<&Option<AbortHandle>> {
        self.position(chat_id).map(|i| &self.0[i].1)
    }

    /// Sets a chat's feed; the one it replaces, if any.
    fn insert(&mut self, chat_id: ChatId, feed: Option<AbortHandle>) -> Option<Option<AbortHandle>> {
        if let Some(i) = self.position(&chat_id) {
            return Some(std::mem::replace(&mut self.0[i].1, feed));
        }
        self.0.reserve_exact(1);
        self.0.push((chat_id, feed));
        None
    }

    fn remove(&mut self, chat_id: &ChatId) -> Option<Option<AbortHandle>> {
        self.position(chat_id).map(|i| self.0.swap_remove(i).1)
    }

    /// Forgets the subscriptions whose feed has ended.
    fn retain_live(&mut self) {
        self.0.retain(|(_, feed)| live(feed));
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The connection's subscriptions, locked (a poisoned lock is still a map).
fn locked(subscriptions: &Subscriptions) -> std::sync::MutexGuard<'_, Feeds> {
    subscriptions.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a subscription's feed still runs (or is about to start).
fn live(feed: &Option<AbortHandle>) -> bool {
    feed.as_ref().is_none_or(|h| !h.is_finished())
}

/// Stops a subscription's feed, if it has started.
fn stop(feed: Option<AbortHandle>) {
    if let Some(h) = feed {
        h.abort();
    }
}

impl Session {
    /// Subscribes the connection to a chat from `after_seq`: replaces an
    /// earlier subscription to it, refuses one over the connection's limit,
    /// and starts the chat's gap-free feed.
    pub(super) async fn subscribe(
        &mut self,
        reference: Option<Value>,
        chat_id: ChatId,
        after_seq: u64,
        view: MessageView,
    ) {
        let r = reference.as_ref();
        let limit = self.state.limits.ws_max_subscriptions;
        let full = {
            let mut subscriptions = locked(&self.subscriptions);
            subscriptions.retain_live();
            subscriptions.get(&chat_id).is_none() && subscriptions.len() >= limit
        };
        if full {
            let msg = format!("at most {limit} subscriptions per connection");
            return self.send_error(r, ClientError::new(ErrorCode::TooManySubscriptions, msg));
        }
        // Registered before the feed starts, so from here on the status feed
        // leaves this chat's statuses to the replay and the live feed.
        let old = locked(&self.subscriptions).insert(chat_id.clone(), None);
        let chats = &self.state.services.chats;
        let last_seq = match chats.feed_start(&self.caller, &chat_id, after_seq, "after_seq").await {
            Ok(seq) => seq,
            Err(e) => {
                let mut subscriptions = locked(&self.subscriptions);
                subscriptions.remove(&chat_id);
                if let Some(old) = old {
                    subscriptions.insert(chat_id, old);
                }
                drop(subscriptions);
                return self.send_error(r, e);
            }
        };
        // Aborted at its next await: an old feed still replaying sends no more.
        stop(old.flatten());
        self.outbox.push(protocol::subscribed(r, &chat_id, last_seq, view));
        let (journal, mut outbox, bound) =
            (self.state.services.chats.journal().clone(), self.outbox.clone(), self.bound.is_some());
        let (token, key) = (self.token.clone(), chat_id.clone());
        let feed = self.state.connections.spawn(async move {
            let sink = InView { view, sink: &mut outbox };
            let follow = Follow { journal: &journal, chat_id: &chat_id, after_seq, sink, cancel: &token };
            match follow.run().await {
                FeedEnd::Deleted if bound => outbox.closer().close(Disconnect::ChatGone, "chat deleted"),
                FeedEnd::Resubscribe(why) => outbox.closer().close(Disconnect::Resubscribe, why),
                FeedEnd::Deleted | FeedEnd::SinkClosed | FeedEnd::Stopped => {}
            }
        });
        locked(&self.subscriptions).insert(key, Some(feed));
    }

    /// Ends the connection's subscription to a chat (none is fine).
    pub(super) fn unsubscribe(
        &mut self,
        r: Option<&Value>,
        chat_id: Option<String>,
    ) -> Result<(), ClientError> {
        let id = self.target(chat_id)?;
        let removed = locked(&self.subscriptions).remove(&id);
        stop(removed.flatten());
        self.outbox.push(protocol::ack(r, "unsubscribe", json!({"chat_id": id})));
        Ok(())
    }

    /// Starts the tenant's status feed (once; tenant-wide callers only),
    /// which leaves a subscribed chat's statuses to its subscription.
    pub(super) async fn watch_status(&mut self, r: Option<&Value>) -> Result<(), ClientError> {
        self.state.services.access.tenant_wide(&self.caller).await?;
        if self.status_feed.as_ref().is_none_or(|t| t.is_cancelled()) {
            let token = self.token.child_token();
            self.status_feed = Some(token.clone());
            let bus = self.state.services.chats.journal().bus.clone();
            let (outbox, tenant) = (self.outbox.clone(), self.caller.tenant.clone());
            let subscribed = self.subscriptions.clone();
            self.state.connections.spawn(async move {
                let Ok(mut sub) = bus.subscribe(&Channel::TenantStatus(tenant)).await else {
                    return outbox.closer().close(Disconnect::Resubscribe, "status feed unavailable");
                };
                loop {
                    let frame = tokio::select! {
                        _ = token.cancelled() => return,
                        f = sub.receiver.recv() => f,
                    };
                    match frame {
                        Ok(f) if covered(&subscribed, &f.chat_id) => {}
                        Ok(f) if !outbox.push(f.json.clone()) => return,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => {
                            return outbox.closer().close(Disconnect::Resubscribe, "status feed closed");
                        }
                    }
                }
            });
        }
        self.outbox.push(protocol::ack(r, "watch_status", json!({})));
        Ok(())
    }
}

/// Whether a live subscription of the connection delivers this chat's events
/// (its statuses included, with their seqs and in order).
fn covered(subscriptions: &Subscriptions, chat_id: &ChatId) -> bool {
    locked(subscriptions).get(chat_id).is_some_and(live)
}
