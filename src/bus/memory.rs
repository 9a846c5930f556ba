//! The in-process bus: the local channel registry ([`super::fanout`]) and
//! the in-process partials; a publish is delivered straight to the local
//! subscribers.
//!
//! Touches nothing outside the process; used on a single node.

use std::sync::Arc;

use async_trait::async_trait;

use super::fanout::Fanout;
use super::partials::{Chunk, MemoryPartials, Partial};
use super::{Bus, BusError, Channel, Frame, Subscription};
use crate::model::ChatId;

/// How many frames a receiver may fall behind before it lags.
pub const CAPACITY: usize = 1024;

/// In-process pub/sub; clones share the channels.
#[derive(Clone)]
pub struct MemoryBus {
    channels: Fanout<Channel>,
    /// Never bumped: an in-process bus cannot drop frames but by lagging.
    resync: Arc<tokio::sync::watch::Sender<u64>>,
    /// The messages being streamed.
    partials: Arc<MemoryPartials>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus whose receivers lag after `capacity` frames (tests make
    /// it tiny to provoke a lag).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            channels: Fanout::new(capacity.max(1)),
            resync: Arc::new(tokio::sync::watch::channel(0).0),
            partials: Arc::default(),
        }
    }

    /// How many partials are held (tests: memory stays bounded).
    pub fn partial_count(&self) -> usize {
        self.partials.count()
    }

    /// How many channels have live subscribers (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.channels.channel_count()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        self.channels.deliver(channel, frame);
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel) -> Result<Subscription, BusError> {
        let (receiver, guard) = self.channels.subscribe(channel);
        Ok(Subscription { receiver, resync: self.resync.subscribe(), guard: Box::new(guard) })
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn publish_delta(&self, chunk: &Chunk<'_>) -> Result<(), BusError> {
        let frame = chunk.frame();
        self.partials.append(chunk);
        self.channels.deliver(&Channel::Chat(chunk.chat_id.clone()), frame);
        Ok(())
    }

    async fn partials(&self, chat_id: &ChatId) -> Result<Vec<Partial>, BusError> {
        Ok(self.partials.read(chat_id))
    }

    async fn forget_partials(&self, chat_id: &ChatId, message_id: Option<&str>) -> Result<(), BusError> {
        self.partials.forget(chat_id, message_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::fanout::tests::frame;
    use crate::model::{ChatId, Event, EventKind};

    #[tokio::test]
    async fn subscribers_receive_what_is_published_after_they_subscribe() {
        let bus = MemoryBus::new();
        let ch = Channel::Chat(ChatId::new());
        bus.publish(&ch, frame(1)).await.unwrap();
        let mut a = bus.subscribe(&ch).await.unwrap();
        let mut b = bus.subscribe(&ch).await.unwrap();
        bus.publish(&ch, frame(2)).await.unwrap();
        assert_eq!(a.receiver.recv().await.unwrap().seq, Some(2));
        let got = b.receiver.recv().await.unwrap();
        assert_eq!(got.seq, Some(2));
        assert_eq!(bus.channel_count(), 1);
    }

    #[test]
    fn a_delta_frame_reads_back_as_the_event_it_stands_for() {
        let chat = ChatId::new();
        let frame = Frame::delta(&chat, "msg_1", "writer", "Hel\"lo", 7);
        let event: Event = serde_json::from_str(frame.json.as_str()).unwrap();
        assert_eq!((event.seq, event.kind, &event.chat_id), (None, EventKind::MessageDelta, &chat));
        assert_eq!(
            event.data,
            serde_json::json!({"message_id": "msg_1", "sender": "writer", "delta": "Hel\"lo", "offset": 7})
        );
        assert_eq!(Frame::parse(frame.bytes()).unwrap(), frame);
    }

    #[tokio::test]
    async fn the_channel_goes_away_with_its_last_subscriber() {
        let bus = MemoryBus::new();
        let ch = Channel::Chat(ChatId::new());
        let a = bus.subscribe(&ch).await.unwrap();
        let b = bus.subscribe(&ch).await.unwrap();
        drop(a);
        assert_eq!(bus.channel_count(), 1);
        drop(b);
        assert_eq!(bus.channel_count(), 0);
        assert!(bus.channels.is_empty());
    }
}
