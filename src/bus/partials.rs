//! Partials: the text of each message being streamed, kept beside its
//! `message.delta` frames so a feed that starts (or lagged) mid-answer can
//! send a `message.snapshot` of it, then only the deltas after it.
//!
//! Exactness rests on an ordering handle: every delta carries its `offset`,
//! the UTF-8 byte length of the text streamed before it. A chunk is appended
//! to its partial before (Redis: in the same pipeline as) its frame is
//! published, and a feed subscribes before it reads the partials, so every
//! delta is in the snapshot, or arrives live, or both; a delta that arrives
//! live with an offset below the snapshot's length is already in it and is
//! dropped ([`SnapshotFilter`]). A partial whose text would stop being a
//! prefix of the message (a chunk out of step) is dropped rather than kept
//! wrong. The engine drops a message's partial just before storing it and
//! all of a chat's partials when a drive starts or ends; a partial is bounded
//! by the run's `runs.max_reply_bytes` (the engine cuts a reply there) and a
//! chat keeps at most [`MAX_PER_CHAT`].
//!
//! This module holds the shared types and the in-process store; the Redis
//! one is `super::redis::partials`. Touches nothing outside the process.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use super::Frame;
use crate::model::{ChatId, EventKind};

/// Partials one chat keeps at most (the engine streams one message at a
/// time; this only bounds a misuse). The oldest goes first.
pub const MAX_PER_CHAT: usize = 8;

/// The text of one message streamed so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// The id the message will be stored with.
    pub message_id: String,
    /// The agent speaking.
    pub sender: String,
    /// Every chunk streamed so far, in order.
    pub content: String,
}

/// One streamed chunk of a message.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The chat.
    pub chat_id: &'a ChatId,
    /// The message the chunk belongs to.
    pub message_id: &'a str,
    /// The agent speaking.
    pub sender: &'a str,
    /// Bytes of the message streamed before this chunk.
    pub offset: u64,
    /// The chunk.
    pub text: &'a str,
}

impl Chunk<'_> {
    /// The chunk's `message.delta` frame (serialized once).
    pub fn frame(&self) -> Arc<Frame> {
        Frame::delta(self.chat_id, self.message_id, self.sender, self.text, self.offset)
    }
}

/// Where a `message.delta` sits in its message: the message (by
/// [`message_key`]) and the bytes `offset..end` of its text. Carried by the
/// frame (and in the Redis wire header), so a feed checks every delta's place
/// without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The message's [`message_key`].
    pub message: u64,
    /// Bytes of the message streamed before the chunk.
    pub offset: u64,
    /// Bytes streamed once the chunk is added.
    pub end: u64,
}

impl Span {
    /// The span of a `len`-byte chunk at `offset` of message `message_id`.
    pub fn new(message_id: &str, offset: u64, len: u64) -> Span {
        Span { message: message_key(message_id), offset, end: offset + len }
    }

    /// The span of a `message.delta` event (`None` for any other event, or a
    /// delta without an `offset`).
    pub fn of_event(event: &crate::model::Event) -> Option<Span> {
        if event.kind != EventKind::MessageDelta {
            return None;
        }
        let data = &event.data;
        let (id, offset) = (data.get("message_id")?.as_str()?, data.get("offset")?.as_u64()?);
        Some(Span::new(id, offset, data.get("delta")?.as_str()?.len() as u64))
    }
}

/// A message id's key in a [`Span`]: 64-bit FNV-1a of its bytes, the same on
/// every node and release (it crosses the wire in the Redis header).
pub fn message_key(message_id: &str) -> u64 {
    message_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Frame {
    /// A `message.snapshot` frame: `{message_id, sender, content}`.
    pub fn snapshot(chat_id: &ChatId, partial: &Partial) -> Arc<Frame> {
        let event = crate::model::Event {
            seq: None,
            chat_id: chat_id.clone(),
            kind: EventKind::MessageSnapshot,
            created_at: crate::model::now(),
            data: serde_json::to_value(partial).expect("a partial always serializes"),
        };
        Frame::from_event(&event)
    }

    /// The id of the message a `message.created` frame stores.
    pub fn created_id(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Envelope {
            data: Id,
        }
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        if self.kind != EventKind::MessageCreated {
            return None;
        }
        Some(serde_json::from_str::<Envelope>(self.json.as_str()).ok()?.data.id)
    }
}

/// A feed's view of the text its client has of each streamed message, to
/// keep snapshot plus deltas exact:
/// - a delta the client has already (the snapshot sent holds it, or a
///   publish was repeated) is dropped ([`passes`]), and so is one of a
///   message the client got whole from the store (a catch-up delivered its
///   `message.created` before its last deltas, still queued live, came);
/// - a delta that starts past the client's text is a [`gap`]: deltas were
///   lost between (a publish lost in transit, a lag, or a subscription that
///   took effect after the partials were read), and the feed sends a fresh
///   snapshot instead of leaving a hole.
///
/// Holds per message the length of the snapshot sent (until the message's
/// first newer delta or its `message.created`) and the end of the last delta
/// passed; reads each delta's [`Span`], never its JSON.
///
/// [`passes`]: SnapshotFilter::passes
/// [`gap`]: SnapshotFilter::gap
#[derive(Debug, Default)]
pub struct SnapshotFilter {
    /// Per message key, the length of the snapshot sent.
    sent: HashMap<u64, u64>,
    /// The message key and end of the last delta passed.
    last: Option<(u64, u64)>,
    /// Messages the client has whole (their `message.created` was sent, live
    /// or by a catch-up while their deltas may still be queued live behind
    /// it); the newest [`MAX_PER_CHAT`].
    stored: Vec<u64>,
}

impl SnapshotFilter {
    /// Remembers a snapshot sent (replacing an older one of the message).
    pub fn sent(&mut self, partial: &Partial) {
        self.sent.insert(message_key(&partial.message_id), partial.content.len() as u64);
    }

    /// Remembers a message the client has whole: its deltas still to come
    /// are stale.
    pub fn stored(&mut self, message_id: &str) {
        let key = message_key(message_id);
        if self.stored.contains(&key) {
            return;
        }
        if self.stored.len() >= MAX_PER_CHAT {
            self.stored.remove(0);
        }
        self.stored.push(key);
    }

    /// Whether the client has message `message_id` whole (see [`Self::stored`]).
    pub fn has_whole(&self, message_id: &str) -> bool {
        self.stored.contains(&message_key(message_id))
    }

    /// Whether `frame` is a delta that starts past the text the client has
    /// of its message. A delta without a span, or of a message the client
    /// has whole, is never a gap.
    pub fn gap(&self, frame: &Frame) -> bool {
        frame.span.is_some_and(|span| !self.stored.contains(&span.message) && span.offset > self.has(&span))
    }

    /// Whether a live frame should reach the client: a delta the client has
    /// already (held by the snapshot sent, or a repeated publish), or of a
    /// message it has whole, does not. A
    /// delta that passes becomes the client's place in its message, even past
    /// a gap no snapshot could close, so one loss costs one snapshot attempt.
    pub fn passes(&mut self, frame: &Frame) -> bool {
        if let Some(span) = frame.span {
            if span.offset < self.has(&span) || self.stored.contains(&span.message) {
                return false;
            }
            self.sent.remove(&span.message);
            self.last = Some((span.message, span.end));
            return true;
        }
        // Once a message is stored, any delta of it still to come (a publish
        // resent by a retried pipeline) is stale. One parse per message.
        if frame.kind == EventKind::MessageCreated
            && let Some(id) = frame.created_id()
        {
            self.sent.remove(&message_key(&id));
            self.stored(&id);
        }
        true
    }

    /// How many bytes of the span's message the client has: the snapshot
    /// sent, else up to the last delta passed, else none.
    fn has(&self, span: &Span) -> u64 {
        match (self.sent.get(&span.message), self.last) {
            (Some(&length), _) => length,
            (None, Some((message, end))) if message == span.message => end,
            (None, _) => 0,
        }
    }
}

/// The in-process partials (the memory bus's), sharded by chat; no lock is
/// held across an await (nothing here awaits).
#[derive(Debug, Default)]
pub struct MemoryPartials {
    chats: DashMap<ChatId, Vec<Partial>>,
}

impl MemoryPartials {
    /// Appends a chunk to its message's partial (a chunk at offset 0 starts
    /// one); a chunk out of step drops the partial instead.
    pub fn append(&self, chunk: &Chunk<'_>) {
        if let Some(mut list) = self.chats.get_mut(chunk.chat_id) {
            let at = list.iter().position(|p| p.message_id == chunk.message_id);
            match at {
                Some(i) if list[i].content.len() as u64 == chunk.offset => {
                    list[i].content.push_str(chunk.text);
                    return;
                }
                Some(i) => {
                    list.remove(i);
                }
                None => {}
            }
            if chunk.offset == 0 {
                if list.len() >= MAX_PER_CHAT {
                    list.remove(0);
                }
                list.push(started(chunk));
            }
            let empty = list.is_empty();
            drop(list);
            if empty {
                self.chats.remove_if(chunk.chat_id, |_, l| l.is_empty());
            }
            return;
        }
        if chunk.offset == 0 {
            self.chats.entry(chunk.chat_id.clone()).or_default().push(started(chunk));
        }
    }

    /// The chat's partials now.
    pub fn read(&self, chat_id: &ChatId) -> Vec<Partial> {
        self.chats.get(chat_id).map(|l| l.clone()).unwrap_or_default()
    }

    /// Drops one message's partial, or (with `None`) all of the chat's.
    pub fn forget(&self, chat_id: &ChatId, message_id: Option<&str>) {
        let Some(message_id) = message_id else {
            self.chats.remove(chat_id);
            return;
        };
        if let Some(mut list) = self.chats.get_mut(chat_id) {
            list.retain(|p| p.message_id != message_id);
        }
        self.chats.remove_if(chat_id, |_, l| l.is_empty());
    }

    /// How many partials are held, over all chats (tests, metrics).
    pub fn count(&self) -> usize {
        self.chats.iter().map(|l| l.len()).sum()
    }
}

fn started(chunk: &Chunk<'_>) -> Partial {
    Partial {
        message_id: chunk.message_id.to_owned(),
        sender: chunk.sender.to_owned(),
        content: chunk.text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk<'a>(chat: &'a ChatId, id: &'a str, offset: u64, text: &'a str) -> Chunk<'a> {
        Chunk { chat_id: chat, message_id: id, sender: "writer", offset, text }
    }

    #[test]
    fn chunks_in_step_build_the_partial_and_one_out_of_step_drops_it() {
        let (store, chat) = (MemoryPartials::default(), ChatId::new());
        store.append(&chunk(&chat, "m1", 0, "Hel"));
        store.append(&chunk(&chat, "m1", 3, "lo"));
        assert_eq!(store.read(&chat)[0].content, "Hello");
        store.append(&chunk(&chat, "m1", 9, "!"));
        assert!(store.read(&chat).is_empty());
        store.append(&chunk(&chat, "m2", 4, "late"));
        assert_eq!(store.count(), 0, "a partial never starts mid-message");
        store.append(&chunk(&chat, "m3", 0, "a"));
        store.forget(&chat, Some("m3"));
        assert_eq!((store.count(), store.chats.len()), (0, 0));
    }

    #[test]
    fn a_filter_drops_the_deltas_a_snapshot_already_holds() {
        let chat = ChatId::new();
        let mut filter = SnapshotFilter::default();
        filter.sent(&Partial { message_id: "m1".into(), sender: "w".into(), content: "Hello".into() });
        let delta = |offset, text| chunk(&chat, "m1", offset, text).frame();
        assert!(!filter.passes(&delta(3, "lo")));
        assert!(filter.passes(&delta(5, " world")));
        assert!(filter.sent.is_empty());
        assert!(!filter.passes(&delta(5, " world")), "nor twice");
        assert!(
            SnapshotFilter::default().passes(&delta(0, "Hel")),
            "a fresh filter passes a message's start"
        );
    }

    #[test]
    fn a_delta_that_starts_past_the_clients_text_is_a_gap() {
        let chat = ChatId::new();
        let delta = |id, offset, text| chunk(&chat, id, offset, text).frame();
        let mut filter = SnapshotFilter::default();
        assert!(filter.gap(&delta("m1", 9, "x")), "nothing of m1 was sent");
        assert!(!filter.gap(&delta("m1", 0, "Hi")), "a message starting now");
        assert!(filter.passes(&delta("m1", 0, "Hi")));
        assert!(!filter.gap(&delta("m1", 2, " there")), "in step with the last delta");
        assert!(filter.gap(&delta("m1", 5, "!")), "bytes 2..5 were lost");
        filter.sent(&Partial { message_id: "m1".into(), sender: "w".into(), content: "Hi there!".into() });
        assert!(!filter.gap(&delta("m1", 5, "!")), "the snapshot holds it");
        assert!(!filter.passes(&delta("m1", 5, "!")));
        assert!(!filter.gap(&delta("m1", 9, " Bye")), "in step with the snapshot");
        assert!(filter.passes(&delta("m1", 9, " Bye")));
        assert!(filter.gap(&delta("m1", 20, "?")), "in step with the last delta again");
        assert!(filter.passes(&delta("m1", 20, "?")), "a gap no snapshot closed still passes");
        assert!(!filter.gap(&delta("m1", 21, ".")), "and is the client's place from then on");
        assert!(!filter.passes(&delta("m1", 20, "?")), "a repeated publish is dropped");
        assert!(filter.passes(&delta("m2", 0, "Next")), "another message starts at 0");
        filter.stored("m3");
        assert!(filter.has_whole("m3") && !filter.has_whole("m1"));
        assert!(!filter.gap(&delta("m3", 580, "late")), "m3 came whole from the store");
        assert!(!filter.passes(&delta("m3", 580, "late")), "so its queued deltas are stale");
        let created = |id: &str| {
            let event = crate::model::Event {
                seq: Some(9),
                chat_id: chat.clone(),
                kind: EventKind::MessageCreated,
                created_at: crate::model::now(),
                data: serde_json::json!({"id": id, "content": "Next"}),
            };
            Frame::from_event(&event)
        };
        assert!(filter.passes(&created("m2")));
        assert!(filter.passes(&delta("m4", 0, "Then")));
        assert!(!filter.passes(&delta("m2", 0, "Next")), "a resent delta of a message stored live");
    }

    #[test]
    fn a_delta_keeps_its_span_across_the_wire_and_an_older_nodes_header_has_none() {
        let chat = ChatId::new();
        let frame = chunk(&chat, "msg_1", 4, "word ").frame();
        assert_eq!(frame.span, Some(Span { message: message_key("msg_1"), offset: 4, end: 9 }));
        let parsed = Frame::parse(frame.bytes()).unwrap();
        assert_eq!(*parsed, *frame);
        let body = frame.json.as_str();
        let old = format!("- message.delta {chat}\n{body}");
        assert_eq!(Frame::parse(old.into()).unwrap().span, None);
        let json_only = Frame::parse(body.to_owned().into()).unwrap();
        assert_eq!(json_only.span, frame.span, "a bare envelope is read in full");
        for bad in
            [format!("- message.delta {chat} 1 9 4\n{body}"), format!("- message.delta {chat} x 4 9\n{body}")]
        {
            assert!(Frame::parse(bad.into()).is_err());
        }
    }
}
