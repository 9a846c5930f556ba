//! The flow runner: one tokio task per running chat, tied to a cancellation
//! token, that reads the chat's history, decides the next step, asks a model,
//! and commits each message through the journal. A wait for human input is a
//! durable input request; the task ends and a new one starts when the answer
//! arrives.
//!
//! Touches the store and bus (through `crate::chats::Journal`) and the model
//! providers; nothing else.

use crate::chats::Journal;

pub mod provider;

/// The runner registry of one node.
pub struct Engine {
    #[allow(dead_code)]
    journal: Journal,
}

impl Engine {
    /// A new engine writing through `journal`.
    pub fn new(journal: Journal) -> Self {
        Self { journal }
    }

    /// Makes sure a runner task drives the chat (no-op if one already does).
    pub fn start(&self, _chat_id: &str) {}

    /// Stops the chat's runner task at once, if any.
    pub fn stop(&self, _chat_id: &str) {}
}
