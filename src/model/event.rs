//! The event envelope of contract §4: everything that happens to a chat.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatId, Timestamp};

/// The event types. Every one but `MessageDelta` and `MessageSnapshot` is
/// durable and has a seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// `{status, previous, error?}`
    #[serde(rename = "chat.status")]
    ChatStatus,
    /// The message object.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// `{message_id, sender, delta, offset}`: ephemeral, never stored or replayed.
    #[serde(rename = "message.delta")]
    MessageDelta,
    /// `{message_id, sender, content}`: ephemeral, the text of a message
    /// streamed so far, sent to a feed that starts (or lagged) mid-stream.
    #[serde(rename = "message.snapshot")]
    MessageSnapshot,
    /// `{request_id, agent, prompt, kind, choices?}`
    #[serde(rename = "input.requested")]
    InputRequested,
    /// `{request_id, message}` (`message` null for the auto reply)
    #[serde(rename = "input.resolved")]
    InputResolved,
    /// `{run_id}`
    #[serde(rename = "run.started")]
    RunStarted,
    /// `{run_id, stop_reason}`
    #[serde(rename = "run.completed")]
    RunCompleted,
    /// `{run_id, code, message}`
    #[serde(rename = "run.failed")]
    RunFailed,
    /// `{run_id}`
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    /// `{}`: the chat and its history are gone.
    #[serde(rename = "chat.deleted")]
    ChatDeleted,
}

impl EventKind {
    /// The wire name (`message.created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ChatStatus => "chat.status",
            EventKind::MessageCreated => "message.created",
            EventKind::MessageDelta => "message.delta",
            EventKind::MessageSnapshot => "message.snapshot",
            EventKind::InputRequested => "input.requested",
            EventKind::InputResolved => "input.resolved",
            EventKind::RunStarted => "run.started",
            EventKind::RunCompleted => "run.completed",
            EventKind::RunFailed => "run.failed",
            EventKind::RunCancelled => "run.cancelled",
            EventKind::ChatDeleted => "chat.deleted",
        }
    }

    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::ChatStatus,
        EventKind::MessageCreated,
        EventKind::MessageDelta,
        EventKind::InputRequested,
        EventKind::InputResolved,
        EventKind::RunStarted,
        EventKind::RunCompleted,
        EventKind::RunFailed,
        EventKind::RunCancelled,
        EventKind::ChatDeleted,
    ];

    /// Parses a wire name (no allocation: the bus's listener calls it per
    /// message).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// Whether events of this kind are stored and carry a seq.
    pub fn is_durable(self) -> bool {
        !matches!(self, EventKind::MessageDelta | EventKind::MessageSnapshot)
    }
}

/// `{"seq", "chat_id", "type", "created_at", "data"}`. Ephemeral events carry
/// `seq: null` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Per-chat sequence number, 1, 2, 3 … with no gaps; `None` for ephemeral.
    pub seq: Option<u64>,
    /// The chat.
    pub chat_id: ChatId,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When.
    pub created_at: Timestamp,
    /// The type's payload.
    pub data: Value,
}
