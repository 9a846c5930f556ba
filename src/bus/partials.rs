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

    /// A `message.delta` frame's message id and offset (parsed from its
    /// bytes: only a feed that just sent a snapshot asks).
    pub fn delta_mark(&self) -> Option<(String, u64)> {
        #[derive(Deserialize)]
        struct Envelope {
            data: Mark,
        }
        #[derive(Deserialize)]
        struct Mark {
            message_id: String,
            offset: Option<u64>,
        }
        if self.kind != EventKind::MessageDelta {
            return None;
        }
        let mark = serde_json::from_str::<Envelope>(self.json.as_str()).ok()?.data;
        Some((mark.message_id, mark.offset?))
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

/// What a feed remembers after sending snapshots: per message, the length of
/// the snapshot it sent. A live delta below it is already delivered. Empty
/// (and free) but for the moments after a snapshot: an entry goes with the
/// message's first newer delta or its `message.created`.
///
/// It also checks the first live delta after each snapshot step: if that
/// starts past what the client has of its message, the subscription took
/// effect only after the partials were read (a bus may confirm a subscription
/// before its shard applies it), and the text between must come as a fresh
/// snapshot ([`SnapshotFilter::hole`]). Only that one delta is parsed for it.
#[derive(Debug, Default)]
pub struct SnapshotFilter {
    sent: HashMap<String, u64>,
    armed: bool,
}

impl SnapshotFilter {
    /// Remembers a snapshot sent (replacing an older one of the message).
    pub fn sent(&mut self, partial: &Partial) {
        self.sent.insert(partial.message_id.clone(), partial.content.len() as u64);
    }

    /// Arms (after a snapshot step) or disarms the check of the next delta.
    pub fn arm(&mut self, armed: bool) {
        self.armed = armed;
    }

    /// Whether `frame` is the first delta since the filter was armed and
    /// starts past the text the client has of its message (nothing, or the
    /// snapshot sent). Disarms on the first delta either way.
    pub fn hole(&mut self, frame: &Frame) -> bool {
        if !self.armed || frame.kind != EventKind::MessageDelta {
            return false;
        }
        self.armed = false;
        match frame.delta_mark() {
            Some((id, offset)) => offset > self.sent.get(&id).copied().unwrap_or(0),
            None => false,
        }
    }

    /// Whether a live frame should reach the client.
    pub fn passes(&mut self, frame: &Frame) -> bool {
        if self.sent.is_empty() {
            return true;
        }
        match frame.kind {
            EventKind::MessageDelta => match frame.delta_mark() {
                Some((id, offset)) => match self.sent.get(&id) {
                    Some(&length) if offset < length => false,
                    Some(_) => {
                        self.sent.remove(&id);
                        true
                    }
                    None => true,
                },
                None => true,
            },
            EventKind::MessageCreated => {
                if let Some(id) = frame.created_id() {
                    self.sent.remove(&id);
                }
                true
            }
            _ => true,
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
        assert!(filter.passes(&delta(0, "again")), "an empty filter passes everything");
    }

    #[test]
    fn the_first_delta_after_a_snapshot_step_that_starts_past_the_clients_text_is_a_hole() {
        let chat = ChatId::new();
        let delta = |id, offset, text| chunk(&chat, id, offset, text).frame();
        let mut filter = SnapshotFilter::default();
        assert!(!filter.hole(&delta("m1", 9, "x")), "unarmed: no check, no parse");
        filter.arm(true);
        assert!(filter.hole(&delta("m1", 9, "x")), "nothing of m1 was sent");
        assert!(!filter.hole(&delta("m1", 10, "y")), "only the first delta is checked");
        filter.sent(&Partial { message_id: "m2".into(), sender: "w".into(), content: "Hello".into() });
        filter.arm(true);
        assert!(!filter.hole(&delta("m2", 5, " world")), "in step with the snapshot");
        filter.arm(true);
        assert!(!filter.hole(&delta("m3", 0, "New")), "a message starting now");
    }
}
