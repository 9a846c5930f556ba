//! Carries committed events from whoever appended them to every task that
//! listens: the realtime hub's sessions, long-polls and SSE streams.
//!
//! The bus carries exactly what Redis pub/sub can carry: a channel name and the
//! event's JSON bytes. It is never the record of truth: an event is appended to
//! the store first and published after (see `crate::ledger::Journal`), so a
//! listener that misses one (a lagging receiver, a Redis outage) fills the hole
//! from the store by seq. Each event is serialized once into a [`Frame`] and the
//! same bytes reach every subscriber.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::model::{ChatId, Event, EventKind, TenantId};

mod fanout;
pub mod memory;
pub mod redis;

/// A pub/sub channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Every event of one chat.
    Chat(ChatId),
    /// Every `chat.status` event of one tenant (dashboards).
    TenantStatus(TenantId),
    /// Only the events that stop a chat's run (`run.cancelled`,
    /// `chat.deleted`): what the node driving the run listens to, so its own
    /// deltas never wake it (see [`Channel::carries_control`]).
    Control(ChatId),
}

impl Channel {
    /// The channel's name on the wire (`fg:{chat_…}`, `fg:{chat_…}:ctl`,
    /// `fg:tenant:…:status`); the braces make a Redis Cluster hash tag, so a
    /// chat's channels and its keys share one slot.
    pub fn name(&self) -> String {
        match self {
            Channel::Chat(id) => format!("fg:{{{id}}}"),
            Channel::Control(id) => format!("fg:{{{id}}}:ctl"),
            Channel::TenantStatus(t) => format!("fg:tenant:{t}:status"),
        }
    }

    /// Whether an event of this kind is also published on its chat's
    /// [`Channel::Control`]: the events that stop a run.
    pub fn carries_control(kind: EventKind) -> bool {
        matches!(kind, EventKind::RunCancelled | EventKind::ChatDeleted)
    }
}

/// One event, serialized once, shared by every subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The chat the event belongs to.
    pub chat_id: ChatId,
    /// Its seq (`None` for ephemeral events).
    pub seq: Option<u64>,
    /// Its type.
    pub kind: EventKind,
    /// The envelope as JSON text: exactly the bytes a client receives. Cloning
    /// it bumps a refcount; a WebSocket text frame takes it as is.
    pub json: Utf8Bytes,
}

impl Frame {
    /// Serializes an event once.
    pub fn from_event(event: &Event) -> Arc<Frame> {
        let json = serde_json::to_string(event).expect("an event always serializes");
        Arc::new(Frame {
            chat_id: event.chat_id.clone(),
            seq: event.seq,
            kind: event.kind,
            json: Utf8Bytes::from(json),
        })
    }

    /// Reads a frame back from its bytes (a Redis message); parsed once per node.
    pub fn parse(bytes: Bytes) -> Result<Arc<Frame>, FrameError> {
        let json = Utf8Bytes::try_from(bytes).map_err(|_| FrameError::NotUtf8)?;
        let event: Event = serde_json::from_str(json.as_str())?;
        Ok(Arc::new(Frame { chat_id: event.chat_id, seq: event.seq, kind: event.kind, json }))
    }

    /// A `message.delta` frame, serialized straight from borrowed parts (the
    /// hot path of token streaming: no intermediate JSON value).
    pub fn delta(chat_id: &ChatId, message_id: &str, sender: &str, delta: &str) -> Arc<Frame> {
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            seq: Option<u64>,
            chat_id: &'a ChatId,
            #[serde(rename = "type")]
            kind: EventKind,
            created_at: crate::model::Timestamp,
            data: Data<'a>,
        }
        #[derive(serde::Serialize)]
        struct Data<'a> {
            message_id: &'a str,
            sender: &'a str,
            delta: &'a str,
        }
        let envelope = Envelope {
            seq: None,
            chat_id,
            kind: EventKind::MessageDelta,
            created_at: crate::model::now(),
            data: Data { message_id, sender, delta },
        };
        let json = serde_json::to_string(&envelope).expect("a delta always serializes");
        Arc::new(Frame {
            chat_id: chat_id.clone(),
            seq: None,
            kind: EventKind::MessageDelta,
            json: json.into(),
        })
    }

    /// The frame's bytes, for publishing to Redis.
    pub fn bytes(&self) -> Bytes {
        Bytes::from(self.json.clone())
    }
}

/// Why bytes from the bus are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not UTF-8 text.
    #[error("the frame is not UTF-8")]
    NotUtf8,
    /// Not an event envelope.
    #[error("the frame is not an event: {0}")]
    Json(#[from] serde_json::Error),
}

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis could not be reached.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// Redis said no.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// A live feed of one channel. Dropping it unsubscribes.
///
/// A receiver that falls too far behind sees `RecvError::Lagged`, and `resync`
/// changes whenever the bus may have dropped frames (a Redis reconnect): either
/// way its owner catches up from the store by seq.
pub struct Subscription {
    /// The frames, in publish order.
    pub receiver: broadcast::Receiver<Arc<Frame>>,
    /// Bumped after the bus lost and regained its connection.
    pub resync: tokio::sync::watch::Receiver<u64>,
    /// Keeps the channel subscribed while held (refcount on the node's shared
    /// subscriber connection).
    pub guard: Box<dyn Send + Sync>,
}

/// Publish and subscribe by channel. Implemented in-process ([`memory::MemoryBus`])
/// and on Redis pub/sub (one shared subscriber connection per node).
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends a frame to every current subscriber of the channel, on every node;
    /// returns once the transport has it (an error means it may not be
    /// delivered: listeners catch up from the store by seq).
    async fn publish(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError>;
    /// Sends an ephemeral frame (a delta), in order with every other publish,
    /// without waiting for the transport to confirm it; an error only means
    /// it could not even be queued.
    async fn publish_ephemeral(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        self.publish(channel, frame).await
    }
    /// Starts listening to a channel; frames published after this returns are
    /// received.
    async fn subscribe(&self, channel: &Channel) -> Result<Subscription, BusError>;
    /// Whether the bus is connected (for `/readyz`).
    async fn ping(&self) -> Result<(), BusError>;
}
