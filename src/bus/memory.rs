//! The in-process bus: one `tokio::sync::broadcast` channel per live channel
//! name, created on first subscribe and dropped with its last subscriber.
//!
//! Touches nothing outside the process; used on a single node.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::broadcast;

use super::{Bus, BusError, Channel, Frame, Subscription};

/// How many frames a receiver may fall behind before it lags.
const CAPACITY: usize = 1024;

type Senders = DashMap<Channel, Weak<broadcast::Sender<Arc<Frame>>>>;

/// In-process pub/sub.
#[derive(Clone)]
pub struct MemoryBus {
    channels: Arc<Senders>,
    /// Never bumped: an in-process bus cannot drop frames but by lagging.
    resync: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self { channels: Arc::default(), resync: Arc::new(tokio::sync::watch::channel(0).0) }
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many channels have live subscribers (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.channels.iter().filter(|e| e.value().strong_count() > 0).count()
    }
}

/// Holds a channel's sender alive; the map entry goes when the last one drops.
struct Guard {
    sender: Option<Arc<broadcast::Sender<Arc<Frame>>>>,
    channel: Channel,
    channels: Weak<Senders>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Let go of our sender first, so two last guards dropping at once can
        // each see the count reach zero (the map holds only a Weak).
        drop(self.sender.take());
        if let Some(map) = self.channels.upgrade() {
            map.remove_if(&self.channel, |_, weak| weak.strong_count() == 0);
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        let sender = self.channels.get(channel).and_then(|w| w.upgrade());
        if let Some(sender) = sender {
            // No receivers is fine: nobody is listening.
            let _ = sender.send(frame);
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel) -> Result<Subscription, BusError> {
        let sender = {
            let mut entry = self.channels.entry(channel.clone()).or_default();
            match entry.upgrade() {
                Some(sender) => sender,
                None => {
                    let sender = Arc::new(broadcast::channel(CAPACITY).0);
                    *entry = Arc::downgrade(&sender);
                    sender
                }
            }
        };
        let receiver = sender.subscribe();
        let guard = Guard {
            sender: Some(sender),
            channel: channel.clone(),
            channels: Arc::downgrade(&self.channels),
        };
        Ok(Subscription { receiver, resync: self.resync.subscribe(), guard: Box::new(guard) })
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, EventKind, now};

    fn frame(seq: u64) -> Arc<Frame> {
        Frame::from_event(&Event {
            seq: Some(seq),
            chat_id: "chat_x".into(),
            kind: EventKind::RunStarted,
            created_at: now(),
            data: serde_json::json!({}),
        })
    }

    #[tokio::test]
    async fn subscribers_receive_what_is_published_after_they_subscribe() {
        let bus = MemoryBus::new();
        let ch = Channel::Chat("chat_x".into());
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
        let frame = Frame::delta("chat_x", "msg_1", "writer", "Hel\"lo");
        let event: Event = serde_json::from_str(frame.json.as_str()).unwrap();
        assert_eq!(
            (event.seq, event.kind, event.chat_id.as_str()),
            (None, EventKind::MessageDelta, "chat_x")
        );
        assert_eq!(
            event.data,
            serde_json::json!({"message_id": "msg_1", "sender": "writer", "delta": "Hel\"lo"})
        );
        assert_eq!(Frame::parse(frame.bytes()).unwrap(), frame);
    }

    #[tokio::test]
    async fn the_channel_goes_away_with_its_last_subscriber() {
        let bus = MemoryBus::new();
        let ch = Channel::Chat("chat_x".into());
        let a = bus.subscribe(&ch).await.unwrap();
        let b = bus.subscribe(&ch).await.unwrap();
        drop(a);
        assert_eq!(bus.channel_count(), 1);
        drop(b);
        assert_eq!(bus.channel_count(), 0);
        assert!(bus.channels.is_empty());
    }
}
