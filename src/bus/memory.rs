//! The in-process bus: the local channel registry ([`super::fanout`]) and
//! nothing else; a publish is delivered straight to the local subscribers.
//!
//! Touches nothing outside the process; used on a single node.

use std::sync::Arc;

use async_trait::async_trait;

use super::fanout::Fanout;
use super::{Bus, BusError, Channel, Frame, Subscription};

/// How many frames a receiver may fall behind before it lags.
const CAPACITY: usize = 1024;

/// In-process pub/sub; clones share the channels.
#[derive(Clone)]
pub struct MemoryBus {
    channels: Fanout<Channel>,
    /// Never bumped: an in-process bus cannot drop frames but by lagging.
    resync: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self { channels: Fanout::new(CAPACITY), resync: Arc::new(tokio::sync::watch::channel(0).0) }
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
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
        let frame = Frame::delta(&chat, "msg_1", "writer", "Hel\"lo");
        let event: Event = serde_json::from_str(frame.json.as_str()).unwrap();
        assert_eq!((event.seq, event.kind, &event.chat_id), (None, EventKind::MessageDelta, &chat));
        assert_eq!(
            event.data,
            serde_json::json!({"message_id": "msg_1", "sender": "writer", "delta": "Hel\"lo"})
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
