//! The gap-free feed of one chat, shared by WebSocket subscriptions and SSE
//! streams: subscribe to the live channel first, replay the store after the
//! client's seq, send a `message.snapshot` of each message being streamed,
//! then pass live frames on, dropping any seq already sent and filling any
//! hole from the store. Deltas are kept exact by their spans (see
//! [`crate::bus::partials`]): the ones the client has already are dropped, as
//! are those of a message the store replay delivered whole, and a delta that
//! starts past the client's text (deltas lost in transit) brings a fresh
//! snapshot. After a lag or a bus reconnect (deltas may be lost) the feed
//! catches up from the store and sends fresh snapshots, so a streamed answer
//! never has a silent hole. Where continuity cannot be proven the feed ends
//! with [`FeedEnd::Resubscribe`] (the socket closes 4010) rather than skip an
//! event. [`InView`] narrows a feed to a [`MessageView`].
//!
//! Touches the store (reads) and the bus (subscribe, partials); writes nothing.

use std::future::Future;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::bus::partials::SnapshotFilter;
use crate::bus::{Channel, Frame};
use crate::ledger::Journal;
use crate::model::{ChatId, EventKind, Message};
use crate::store::{MessageView, SeqQuery};

/// Events read from the store per page while catching up.
const PAGE: usize = 256;

/// Why a feed stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEnd {
    /// Its cancellation token fired (unsubscribe, socket closed, shutdown).
    Stopped,
    /// The chat was deleted (`chat.deleted` was delivered).
    Deleted,
    /// The sink refused a frame (client too slow, or gone).
    SinkClosed,
    /// Continuity could not be proven; the client must resubscribe.
    Resubscribe(String),
}

/// Where a feed's frames go.
pub trait FrameSink: Send {
    /// A live frame. Must not wait: a slow client must not hold up the feed;
    /// returns `false` to stop it (the client is too far behind, or gone).
    fn push(&mut self, frame: Arc<Frame>) -> bool;
    /// A frame replayed from the store. May wait for room, since only this
    /// subscriber waits; returns `false` to stop.
    fn replay(&mut self, frame: Arc<Frame>) -> impl Future<Output = bool> + Send;
}

/// A sink lent to a feed (its owner keeps it, e.g. to close the connection
/// when the feed ends, without a second copy).
impl<S: FrameSink> FrameSink for &mut S {
    fn push(&mut self, frame: Arc<Frame>) -> bool {
        (**self).push(frame)
    }

    fn replay(&mut self, frame: Arc<Frame>) -> impl Future<Output = bool> + Send {
        (**self).replay(frame)
    }
}

/// Where a feed starts and where its frames go.
pub struct Follow<'a, S: FrameSink> {
    /// The store and bus.
    pub journal: &'a Journal,
    /// The chat.
    pub chat_id: &'a ChatId,
    /// The last seq the client has; frames after it are delivered.
    pub after_seq: u64,
    /// Takes each frame.
    pub sink: S,
    /// Stops the feed.
    pub cancel: &'a CancellationToken,
}

impl<S: FrameSink> Follow<'_, S> {
    /// Runs the feed until it ends.
    pub async fn run(mut self) -> FeedEnd {
        // The channel is a temporary: a local would be kept (with its copy of
        // the chat id) for the feed's life.
        let mut sub = match self.journal.bus.subscribe(&Channel::Chat(self.chat_id.clone())).await {
            Ok(sub) => sub,
            Err(e) => return FeedEnd::Resubscribe(format!("live feed unavailable: {e}")),
        };
        let mut last = self.after_seq;
        let mut filter = SnapshotFilter::default();
        // The store reads are boxed (here and below): they run rarely, and
        // inline they would size every idle subscription's task.
        if let Err(end) = Box::pin(self.catch_up(&mut last, u64::MAX, &mut filter)).await {
            return end;
        }
        // A delete between the caller's check and our subscribe (or during a
        // bus outage) published a `chat.deleted` this feed never saw.
        if let Some(end) = Box::pin(self.gone(last)).await {
            return end;
        }
        if let Err(end) = Box::pin(self.snapshots(&mut filter)).await {
            return end;
        }
        // One wait for the stop, for the whole loop: made anew per frame it
        // joined and left the token's waiter list (a lock each) every time.
        let stopped = self.cancel.cancelled();
        tokio::pin!(stopped);
        loop {
            let received = tokio::select! {
                biased;
                _ = &mut stopped => return FeedEnd::Stopped,
                changed = sub.resync.changed() => {
                    if changed.is_err() {
                        return FeedEnd::Resubscribe("the live feed closed".into());
                    }
                    if let Err(end) = Box::pin(self.catch_up(&mut last, u64::MAX, &mut filter)).await {
                        return end;
                    }
                    if let Some(end) = Box::pin(self.gone(last)).await {
                        return end;
                    }
                    if let Err(end) = Box::pin(self.snapshots(&mut filter)).await {
                        return end;
                    }
                    continue;
                }
                r = sub.receiver.recv() => r,
            };
            let frame = match received {
                Ok(frame) => frame,
                Err(RecvError::Lagged(_)) => {
                    // Deltas may be lost too: the store first, then what
                    // each answer being streamed holds now.
                    if let Err(end) = Box::pin(self.catch_up(&mut last, u64::MAX, &mut filter)).await {
                        return end;
                    }
                    if let Err(end) = Box::pin(self.snapshots(&mut filter)).await {
                        return end;
                    }
                    continue;
                }
                Err(RecvError::Closed) => {
                    return FeedEnd::Resubscribe("the live feed closed".into());
                }
            };
            if filter.gap(&frame) {
                // Deltas were lost before this one (in transit, or before the
                // subscription took effect): what they held comes as a fresh
                // snapshot.
                if let Err(end) = Box::pin(self.snapshots(&mut filter)).await {
                    return end;
                }
            }
            if !filter.passes(&frame) {
                continue; // a delta the client has, or of a message it has whole
            }
            if let Some(end) = self.live(frame, &mut last, &mut filter).await {
                return end;
            }
        }
    }

    /// Sends a `message.snapshot` of each message of the chat being streamed
    /// now, and remembers them in `filter`. Partials that cannot be read
    /// (a Redis hiccup) are skipped: the deltas still come, and the stored
    /// message follows.
    async fn snapshots(&mut self, filter: &mut SnapshotFilter) -> Result<(), FeedEnd> {
        let partials = match self.journal.bus.partials(self.chat_id).await {
            Ok(partials) => partials,
            Err(e) => {
                tracing::warn!(chat_id = %self.chat_id, error = %e, "partials unavailable; no snapshot");
                return Ok(());
            }
        };
        // A partial of a message the client has whole is stale (its drop
        // failed; it expires on its own): no snapshot of it.
        for partial in partials {
            if filter.has_whole(&partial.message_id) {
                continue;
            }
            if !self.sink.replay(Frame::snapshot(self.chat_id, &partial)).await {
                return Err(FeedEnd::SinkClosed);
            }
            filter.sent(&partial);
        }
        Ok(())
    }

    /// Handles one live frame; `Some` ends the feed.
    async fn live(
        &mut self,
        frame: Arc<Frame>,
        last: &mut u64,
        filter: &mut SnapshotFilter,
    ) -> Option<FeedEnd> {
        let Some(seq) = frame.seq else {
            return (!self.sink.push(frame)).then_some(FeedEnd::SinkClosed);
        };
        if seq <= *last && frame.kind != EventKind::ChatDeleted {
            return None;
        }
        if seq <= *last {
            // A `chat.deleted` always ends the feed, whatever its seq: its
            // seq follows the chat's last commit, but never risk a socket
            // left open on a chat that is gone.
            return Some(if self.sink.push(frame) { FeedEnd::Deleted } else { FeedEnd::SinkClosed });
        }
        if seq > *last + 1 {
            if let Err(end) = Box::pin(self.catch_up(last, seq - 1, filter)).await {
                return Some(end);
            }
            // `chat.deleted` is never stored: a hole before it is history that
            // went with the chat.
            if *last != seq - 1 && frame.kind != EventKind::ChatDeleted {
                return Some(FeedEnd::Resubscribe(format!("events {}..{} are missing", *last + 1, seq - 1)));
            }
        }
        let deleted = frame.kind == EventKind::ChatDeleted;
        if !self.sink.push(frame) {
            return Some(FeedEnd::SinkClosed);
        }
        *last = seq;
        deleted.then_some(FeedEnd::Deleted)
    }

    /// If the chat no longer exists, delivers the `chat.deleted` its feed
    /// missed and ends; `None` while it exists (or cannot be checked: the next
    /// read will tell).
    async fn gone(&mut self, last: u64) -> Option<FeedEnd> {
        match self.journal.store.get_chat(self.chat_id).await {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return None,
        }
        let deleted = crate::model::Event {
            seq: Some(last + 1),
            chat_id: self.chat_id.clone(),
            kind: EventKind::ChatDeleted,
            created_at: crate::model::now(),
            data: serde_json::json!({}),
        };
        if !self.sink.push(Frame::from_event(&deleted)) {
            return Some(FeedEnd::SinkClosed);
        }
        Some(FeedEnd::Deleted)
    }

    /// Delivers stored events after `last`, up to `up_to`, advancing `last`;
    /// tells `filter` of each message stored meanwhile, whose deltas may
    /// still be queued live behind it.
    async fn catch_up(
        &mut self,
        last: &mut u64,
        up_to: u64,
        filter: &mut SnapshotFilter,
    ) -> Result<(), FeedEnd> {
        loop {
            let query = SeqQuery { after_seq: Some(*last), limit: PAGE, ..SeqQuery::default() };
            let events = self
                .journal
                .store
                .events(self.chat_id, &query)
                .await
                .map_err(|e| FeedEnd::Resubscribe(format!("history unavailable: {e}")))?;
            let full = events.len() == PAGE;
            for event in events {
                let Some(seq) = event.seq.filter(|s| *s <= up_to) else {
                    return Ok(());
                };
                if seq != *last + 1 {
                    return Err(FeedEnd::Resubscribe(format!("stored history has a hole at {}", *last + 1)));
                }
                if event.kind == EventKind::MessageCreated
                    && let Some(id) = event.data.get("id").and_then(|id| id.as_str())
                {
                    filter.stored(id);
                }
                if !self.sink.replay(Frame::from_event(&event)).await {
                    return Err(FeedEnd::SinkClosed);
                }
                *last = seq;
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// A sink that passes on only the frames of a view. With
/// [`MessageView::Final`]: no `message.delta` or `message.snapshot`, and no
/// `message.created` of a message outside the view; every other durable event
/// passes (`chat.status`, `input.*`, `run.*`, `chat.deleted`). The feed still
/// counts the frames held back, so a client resuming from the last seq it saw
/// misses nothing of the view and gets nothing twice.
pub struct InView<S> {
    /// The view.
    pub view: MessageView,
    /// Where the frames of the view go.
    pub sink: S,
}

impl<S: FrameSink> FrameSink for InView<S> {
    fn push(&mut self, frame: Arc<Frame>) -> bool {
        !in_view(self.view, &frame) || self.sink.push(frame)
    }

    async fn replay(&mut self, frame: Arc<Frame>) -> bool {
        !in_view(self.view, &frame) || self.sink.replay(frame).await
    }
}

/// Whether a frame belongs to a view (see [`InView`]). A `message.created`
/// frame that cannot be read back is shown rather than hidden.
pub fn in_view(view: MessageView, frame: &Frame) -> bool {
    #[derive(Deserialize)]
    struct Created {
        data: Message,
    }
    match (view, frame.kind) {
        (MessageView::All, _) => true,
        (MessageView::Final, EventKind::MessageDelta | EventKind::MessageSnapshot) => false,
        (MessageView::Final, EventKind::MessageCreated) => {
            serde_json::from_str::<Created>(frame.json.as_str())
                .map_or(true, |created| view.keeps(&created.data))
        }
        (MessageView::Final, _) => true,
    }
}
