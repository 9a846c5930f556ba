//! The ledger: a chat's status machine ([`transitions`], pure) and its
//! journal ([`Journal`]): every change is committed to the store first and its
//! events are published on the bus after, so nobody is ever told of an event
//! that could still be lost.
//!
//! Touches the store, the bus and the metrics (run ends); knows nothing of
//! HTTP, the engine or who is calling.

use std::sync::Arc;

use crate::bus::partials::Chunk;
use crate::bus::{Bus, Channel, Frame};
use crate::metrics::Metrics;
use crate::model::{ChatId, ChatRecord, Event, EventKind, TenantId};
use crate::store::{ChatChange, Store, StoreError};

#[cfg(test)]
mod tests;
pub mod transitions;

pub use transitions::Refusal;

/// How often a change is re-planned after losing a race before giving up.
const MAX_ATTEMPTS: usize = 64;

/// Why [`Journal::update`] did not commit.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    /// The chat does not exist.
    #[error("the chat does not exist")]
    NotFound,
    /// The planner refused, given the chat as it is.
    #[error(transparent)]
    Refused(E),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store and the bus, used together.
#[derive(Clone)]
pub struct Journal {
    /// The durable records.
    pub store: Arc<dyn Store>,
    /// The live feed.
    pub bus: Arc<dyn Bus>,
    /// Where run ends are counted.
    pub metrics: Arc<Metrics>,
}

impl Journal {
    /// Commits a change, then publishes its events.
    pub async fn commit(&self, change: ChatChange) -> Result<(), StoreError> {
        let events = change.events.clone();
        let tenant = change.record.tenant.clone();
        self.store.commit(change).await?;
        for event in &events {
            self.count(event);
            self.publish(&tenant, event).await;
        }
        Ok(())
    }

    /// Reads the chat, plans a change with `plan`, and commits it if nobody
    /// changed the chat in between; re-reads and re-plans when somebody did.
    /// Returns the chat as committed.
    pub async fn update<E>(
        &self,
        chat_id: &ChatId,
        mut plan: impl FnMut(&ChatRecord) -> Result<ChatChange, E>,
    ) -> Result<ChatRecord, UpdateError<E>> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.store.get_chat(chat_id).await?.ok_or(UpdateError::NotFound)?;
            let change = plan(&current).map_err(UpdateError::Refused)?;
            let record = change.record.clone();
            match self.commit(change).await {
                Ok(()) => return Ok(record),
                Err(StoreError::Conflict) => continue,
                Err(StoreError::ChatNotFound) => return Err(UpdateError::NotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Err(UpdateError::Store(StoreError::Unavailable("the chat is changing too fast; retry".into())))
    }

    /// Counts a committed run end in `flowgate_runs_total`.
    fn count(&self, event: &Event) {
        match event.kind {
            EventKind::RunCompleted => self.metrics.run_ended("completed", ""),
            EventKind::RunCancelled => self.metrics.run_ended("cancelled", ""),
            EventKind::RunFailed => {
                let code = event.data.get("code").and_then(|c| c.as_str()).unwrap_or("unknown");
                self.metrics.run_ended("failed", code);
            }
            _ => {}
        }
    }

    /// Publishes a streamed chunk as a `message.delta` to its chat's channel,
    /// after appending it to its message's partial (see
    /// [`crate::bus::partials`]); a bus failure only costs live listeners that
    /// chunk.
    pub async fn publish_delta(&self, chunk: &Chunk<'_>) {
        if let Err(e) = self.bus.publish_delta(chunk).await {
            tracing::debug!(error = %e, "delta not published");
        }
    }

    /// Drops one streamed message's partial (just before the message is
    /// stored) or, with `None`, all of the chat's (a drive starts or ends). A
    /// failure is logged: on Redis the partial's TTL is the backstop.
    pub async fn forget_partials(&self, chat_id: &ChatId, message_id: Option<&str>) {
        if let Err(e) = self.bus.forget_partials(chat_id, message_id).await {
            tracing::warn!(%chat_id, error = %e, "partial not dropped; it expires on its own");
        }
    }

    /// Publishes an event (durable after its commit, or ephemeral) to the chat's
    /// channel, a `chat.status` also to its tenant's status feed, and an event
    /// that stops a run also to the chat's control channel (where the node
    /// driving the run listens). A bus failure is logged, not returned: the
    /// event is stored and listeners catch up by seq.
    pub async fn publish(&self, tenant: &TenantId, event: &Event) {
        let frame = Frame::from_event(event);
        if let Err(e) = self.bus.publish(&Channel::Chat(event.chat_id.clone()), frame.clone()).await {
            tracing::warn!(chat_id = %event.chat_id, error = %e, "publish failed; listeners will catch up from the store");
        }
        if Channel::carries_control(event.kind)
            && let Err(e) = self.bus.publish(&Channel::Control(event.chat_id.clone()), frame.clone()).await
        {
            tracing::warn!(chat_id = %event.chat_id, error = %e, "control publish failed");
        }
        if event.kind == EventKind::ChatStatus
            && let Err(e) = self.bus.publish(&Channel::TenantStatus(tenant.clone()), frame).await
        {
            tracing::warn!(%tenant, error = %e, "status publish failed");
        }
    }
}
