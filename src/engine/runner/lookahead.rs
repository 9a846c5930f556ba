//! Marking a run's answers to the human. Before an agent's message is stored,
//! the runner works out what the run does right after it: when that is to
//! finish (`run.completed`) or to ask the human (`input.requested`), the run
//! hands control back to the human there, and the message is *final*
//! (`metadata.final = true`, the `final` view of `GET /messages` and of a
//! WebSocket subscription). The mark is set once, at store time, so messages
//! stay immutable and the view is a plain filter on them.
//!
//! The policy is pure, so the next step is known in advance, except in `auto`
//! groups, where it depends on the selector model: the selector is asked now,
//! on the history with the message, and its answer is kept for the next step,
//! which uses it instead of asking again (a restarted task asks afresh).
//!
//! Touches the model providers (the selector) only.

use serde_json::Value;

use super::{At, Runner};
use crate::chats::transitions::MessageDraft;
use crate::engine::policy::{self, Context, RunState, Selection, Step};
use crate::engine::provider::ProviderError;
use crate::flow::Flow;
use crate::model::{Message, now};
use crate::store::FINAL_KEY;

/// The selector's answer for the step after the message stored at `after_seq`.
pub(super) struct Preselected {
    /// The chat's `last_seq` once the message is stored.
    pub(super) after_seq: u64,
    /// The agent chosen and how, or why the selector failed.
    pub(super) choice: Result<(String, Selection), ProviderError>,
}

impl Runner<'_> {
    /// Whether the run hands control back to the human right after `draft`
    /// (stored with `state`). `false` when that cannot be known (a flow the
    /// policy refuses; the next step reports it). After a cancel the answer
    /// is meaningless: the caller checks its token.
    pub(super) async fn hands_back_after(
        &mut self,
        at: &At,
        flow: &Flow,
        draft: &MessageDraft,
        state: &Value,
    ) -> bool {
        self.history.push(as_stored(self.chat_id, at, draft));
        let (hands_back, preselected) = self.next_after(at, flow, state).await;
        self.history.pop();
        self.preselected = preselected;
        hands_back
    }

    /// The verdict on the history as it will be, and the selector's answer
    /// when one was needed.
    async fn next_after(&self, at: &At, flow: &Flow, state: &Value) -> (bool, Option<Preselected>) {
        let state = RunState::from_value(state);
        let ctx = Context { flow, run_id: &at.run_id, history: &self.history, state: &state, reply: None };
        let step = match policy::decide(&ctx) {
            Ok(decision) => decision.step,
            Err(_) => return (false, None),
        };
        let Step::SelectAuto { candidates } = &step else {
            return (hands_back(&step), None);
        };
        let after_seq = at.seen_seq + 1;
        match self.select_auto(&ctx, candidates).await {
            Ok((agent, selection)) => {
                let next = policy::speaker_step(&ctx, &agent, selection.clone());
                let verdict = next.is_ok_and(|d| hands_back(&d.step));
                (verdict, Some(Preselected { after_seq, choice: Ok((agent, selection)) }))
            }
            Err(ProviderError::Cancelled) => (false, None),
            Err(e) => (false, Some(Preselected { after_seq, choice: Err(e) })),
        }
    }
}

/// Whether a step gives the turn back to the human.
fn hands_back(step: &Step) -> bool {
    matches!(step, Step::Finish { .. } | Step::AskHuman(_))
}

/// Marks a message's metadata (always an object, see `message_metadata`) final.
pub(super) fn mark_final(metadata: &mut Value) {
    if let Value::Object(map) = metadata {
        map.insert(FINAL_KEY.to_owned(), Value::Bool(true));
    }
}

/// The message as the policy will see it once stored.
fn as_stored(chat_id: &str, at: &At, draft: &MessageDraft) -> Message {
    Message {
        id: draft.id.clone().unwrap_or_default(),
        chat_id: chat_id.to_owned(),
        seq: at.seen_seq + 1,
        run_id: draft.run_id.clone(),
        role: draft.role,
        sender: draft.sender.clone(),
        receiver: draft.receiver.clone(),
        content: draft.content.clone(),
        created_at: now(),
        metadata: draft.metadata.clone(),
    }
}
