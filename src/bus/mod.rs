//! Carries committed events from whoever appended them to every task that
//! listens: the realtime hub's sessions, long-polls and SSE streams.
//!
//! The bus carries exactly what Redis pub/sub can carry: a channel name and the
//! event's JSON bytes. It is never the record of truth: an event is appended to
//! the store first and published after (see `crate::ledger::Journal`), so a
//! listener that misses one (a lagging receiver, a Redis outage) fills the hole
//! from the store by seq. Each event is serialized once into a [`Frame`] and the
//! same bytes reach every subscriber.
//!
//! Beside the live frames the bus keeps the [`partials`]: the text of each
//! message being streamed, written with its deltas, so a feed that starts
//! mid-answer sends a `message.snapshot` first.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::model::{ChatId, Event, EventKind, TenantId};
use partials::{Chunk, Partial};

pub mod cluster;
mod fanout;
pub mod memory;
pub mod partials;
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
    /// A `message.delta`'s place in its message (see [`partials::Span`]),
    /// known without parsing `json`; `None` for every other event.
    pub span: Option<partials::Span>,
}

/// A delta's JSON envelope without its strings: the keys, the type, the
/// timestamp and the offset (at its widest), rounded up.
const DELTA_ENVELOPE: usize = 176;

impl Frame {
    /// Serializes an event once.
    pub fn from_event(event: &Event) -> Arc<Frame> {
        let json = serde_json::to_string(event).expect("an event always serializes");
        Arc::new(Frame {
            chat_id: event.chat_id.clone(),
            seq: event.seq,
            kind: event.kind,
            json: Utf8Bytes::from(json),
            span: partials::Span::of_event(event),
        })
    }

    /// Reads a frame back from its wire form (a Redis message), once per node:
    /// only the header line is parsed; the JSON after it is handed on as is
    /// (the same bytes to every local subscriber). A bare JSON envelope (what
    /// nodes before issue 11 published) is parsed whole.
    pub fn parse(bytes: Bytes) -> Result<Arc<Frame>, FrameError> {
        if bytes.first() == Some(&b'{') {
            let json = Utf8Bytes::try_from(bytes).map_err(|_| FrameError::NotUtf8)?;
            let event: Event = serde_json::from_str(json.as_str())?;
            let span = partials::Span::of_event(&event);
            return Ok(Arc::new(Frame {
                chat_id: event.chat_id,
                seq: event.seq,
                kind: event.kind,
                json,
                span,
            }));
        }
        let head = &bytes[..bytes.len().min(MAX_HEADER)];
        let end = head.iter().position(|&b| b == b'\n').ok_or(FrameError::Header)?;
        let (seq, kind, chat_id, span) = read_header(&head[..end]).ok_or(FrameError::Header)?;
        let body = bytes.slice(end + 1..);
        if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
            return Err(FrameError::Header);
        }
        let json = Utf8Bytes::try_from(body).map_err(|_| FrameError::NotUtf8)?;
        Ok(Arc::new(Frame { chat_id, seq, kind, json, span }))
    }

    /// Writes the frame's wire form: a header line `<seq or -> <type>
    /// <chat id>` (a delta's followed by ` <message key> <offset> <end>`), a
    /// newline, then the JSON envelope. The header lets a subscribing node
    /// route the message, and check a delta's place, without parsing its body.
    pub fn write_wire(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match self.seq {
            Some(seq) => write!(out, "{seq} ")?,
            None => out.write_all(b"- ")?,
        }
        out.write_all(self.kind.as_str().as_bytes())?;
        out.write_all(b" ")?;
        out.write_all(self.chat_id.as_str().as_bytes())?;
        if let Some(span) = &self.span {
            write!(out, " {} {} {}", span.message, span.offset, span.end)?;
        }
        out.write_all(b"\n")?;
        out.write_all(self.json.as_str().as_bytes())
    }

    /// At least the length of [`Frame::write_wire`]'s output (numbers counted
    /// at their widest), to size a buffer once.
    pub fn wire_len(&self) -> usize {
        let span = if self.span.is_some() { 3 * 21 } else { 0 };
        21 + self.kind.as_str().len() + 1 + self.chat_id.as_str().len() + span + 1 + self.json.len()
    }

    /// A `message.delta` frame, serialized straight from borrowed parts (the
    /// hot path of token streaming: no intermediate JSON value). `offset` is
    /// the UTF-8 byte length of the message's text before this chunk.
    pub fn delta(chat_id: &ChatId, message_id: &str, sender: &str, delta: &str, offset: u64) -> Arc<Frame> {
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
            offset: u64,
        }
        let envelope = Envelope {
            seq: None,
            chat_id,
            kind: EventKind::MessageDelta,
            created_at: crate::model::now(),
            data: Data { message_id, sender, delta, offset },
        };
        // Sized once for the envelope around the four strings (`to_string`
        // starts at 128 bytes and grows, copying, for most deltas).
        let strings = chat_id.as_str().len() + message_id.len() + sender.len() + delta.len();
        let mut json = Vec::with_capacity(DELTA_ENVELOPE + strings + delta.len() / 4);
        serde_json::to_writer(&mut json, &envelope).expect("a delta always serializes");
        let json = String::from_utf8(json).expect("serde_json writes UTF-8");
        Arc::new(Frame {
            chat_id: chat_id.clone(),
            seq: None,
            kind: EventKind::MessageDelta,
            json: json.into(),
            span: Some(partials::Span::new(message_id, offset, delta.len() as u64)),
        })
    }

    /// The frame's wire form (see [`Frame::write_wire`]) in one buffer.
    pub fn bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.json.len() + 64);
        self.write_wire(&mut out).expect("writing to a Vec cannot fail");
        Bytes::from(out)
    }
}

/// The longest header line [`Frame::parse`] looks for.
const MAX_HEADER: usize = 256;

/// A header line's fields.
type Header = (Option<u64>, EventKind, ChatId, Option<partials::Span>);

/// `<seq or -> <type> <chat id>`, a delta's followed by `<message key>
/// <offset> <end>`, as [`Frame::write_wire`] writes it (a delta without them,
/// from an older node, has no span).
fn read_header(line: &[u8]) -> Option<Header> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let seq = match parts.next()? {
        "-" => None,
        digits => Some(digits.parse().ok()?),
    };
    let kind = EventKind::parse(parts.next()?)?;
    let chat_id = ChatId::parse(parts.next()?).ok()?;
    let span = match parts.next() {
        None => None,
        Some(message) if kind == EventKind::MessageDelta => {
            let (offset, end) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
            if end < offset {
                return None;
            }
            Some(partials::Span { message: message.parse().ok()?, offset, end })
        }
        Some(_) => return None,
    };
    match parts.next() {
        None => Some((seq, kind, chat_id, span)),
        Some(_) => None,
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
    /// No valid header line before the envelope.
    #[error("the frame has no valid header")]
    Header,
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

/// Publish and subscribe by channel. Implemented in-process ([`memory::MemoryBus`]),
/// on Redis pub/sub ([`redis::RedisBus`]) and on Redis Cluster sharded pub/sub
/// ([`cluster::ClusterBus`]), each with one shared subscriber connection per node.
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
    /// Appends a streamed chunk to its message's partial, then publishes its
    /// `message.delta` frame to the chat's channel (on Redis: one pipeline, no
    /// extra round trip).
    async fn publish_delta(&self, chunk: &Chunk<'_>) -> Result<(), BusError>;
    /// The partials of the chat's messages being streamed now.
    async fn partials(&self, chat_id: &ChatId) -> Result<Vec<Partial>, BusError>;
    /// Drops one message's partial, or (with `None`) all of the chat's.
    async fn forget_partials(&self, chat_id: &ChatId, message_id: Option<&str>) -> Result<(), BusError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::now;

    fn event(seq: Option<u64>, kind: EventKind) -> Event {
        Event {
            seq,
            chat_id: ChatId::new(),
            kind,
            created_at: now(),
            data: serde_json::json!({"text": "a\nb {"}),
        }
    }

    #[test]
    fn a_frame_read_back_from_its_wire_form_is_the_same_frame_with_the_same_json() {
        for (seq, kind) in [(Some(7), EventKind::MessageCreated), (None, EventKind::MessageDelta)] {
            let frame = Frame::from_event(&event(seq, kind));
            let wire = frame.bytes();
            assert!(
                wire.starts_with(
                    format!(
                        "{} {} {}\n",
                        seq.map_or("-".into(), |s| s.to_string()),
                        kind.as_str(),
                        frame.chat_id
                    )
                    .as_bytes()
                )
            );
            assert_eq!(Frame::parse(wire).unwrap(), frame);
        }
    }

    #[test]
    fn the_wire_length_bound_holds_for_the_widest_delta_and_event() {
        let chat = ChatId::new();
        let delta = Frame::delta(&chat, "msg_1", "agent \"a\"", "tab\t\u{1F600} ", u64::MAX - 64);
        let parsed: serde_json::Value = serde_json::from_str(&delta.json).unwrap();
        assert_eq!(parsed["data"]["delta"], "tab\t\u{1F600} ");
        assert_eq!(parsed["data"]["offset"], u64::MAX - 64);
        for frame in [delta, Frame::from_event(&event(Some(u64::MAX), EventKind::MessageCreated))] {
            assert!(frame.wire_len() >= frame.bytes().len());
        }
    }

    #[test]
    fn a_bare_json_envelope_from_an_older_node_still_reads() {
        let frame = Frame::from_event(&event(Some(2), EventKind::RunStarted));
        assert_eq!(Frame::parse(Bytes::from(frame.json.clone())).unwrap(), frame);
    }

    #[test]
    fn bytes_without_a_valid_header_or_envelope_are_refused() {
        let chat = ChatId::new();
        let bad = [
            "not json".to_owned(),
            format!("1 run.started {chat}"),
            format!("x run.started {chat}\n{{}}"),
            format!("1 no.such {chat}\n{{}}"),
            "1 run.started not-a-chat\n{}".to_owned(),
            format!("1 run.started {chat} extra\n{{}}"),
            format!("1 run.started {chat}\nnot json"),
            "{not json".to_owned(),
        ];
        for bytes in bad {
            assert!(Frame::parse(Bytes::from(bytes.clone())).is_err(), "{bytes:?}");
        }
    }
}
