//! Marking a run's answers to the human. Before an agent's model-written
//! message is stored, the runner works out what the run does after it: when
//! it finishes (`run.completed`) or asks the human (`input.requested`) next,
//! with nothing in between but user-proxy auto replies that need no model
//! (`default_auto_reply`), control returns to the human there and the message
//! is *final* (`metadata.final = true`). Those fixed auto replies speak for
//! the human's seat and are never final. The mark is set once, at store time,
//! so messages stay immutable and the `final` view is a plain filter.
//!
//! The policy is pure, so the steps ahead are known in advance, except in
//! `auto` groups, where they depend on the selector model: the selector is
//! asked now, on the history with the message, and its answer is kept for the
//! next step, which uses it instead of asking again (a restarted task asks
//! afresh). A selection needed after a simulated auto reply is not asked for:
//! the message is then not final.
//!
//! Touches the model providers (the selector) only.

use serde_json::{Value, json};

use super::{At, Runner, message_metadata};
use crate::engine::policy::{self, Context, Decision, RunState, Selection, Speak, Step, Via};
use crate::engine::provider::ProviderError;
use crate::flow::Flow;
use crate::ledger::transitions::MessageDraft;
use crate::model::{ChatId, Message, Role, now};
use crate::store::FINAL_KEY;

/// Fixed auto replies simulated at most before giving up (not final).
const MAX_SIMULATED: usize = 8;

/// The selector's answer for the step right after one stored message.
pub(super) struct Preselected {
    /// That message's id.
    pub(super) after_message: String,
    /// The agent chosen and how, or why the selector failed.
    pub(super) choice: Result<(String, Selection), ProviderError>,
}

impl Preselected {
    /// Whether it answers for the step after `history`: its message is the
    /// last one, and nothing happened to the chat since (`seen_seq`).
    pub(super) fn is_for(&self, history: &[Message], seen_seq: u64) -> bool {
        history.last().is_some_and(|m| m.id == self.after_message && m.seq == seen_seq)
    }
}

/// Where the steps after a message lead.
enum Ahead {
    /// To the human: the message is final.
    HandsBack,
    /// To another agent's model: not final.
    Continues,
    /// To the selector model, with these candidates.
    Select(Vec<String>),
}

impl Runner<'_> {
    /// Whether `draft`, a model-written message stored with `state`, is final
    /// (see the module). `false` when that cannot be known (a flow the policy
    /// refuses: the next step reports it). After a cancel the answer is
    /// meaningless: the caller checks its token.
    pub(super) async fn is_final(
        &mut self,
        at: &At,
        flow: &Flow,
        draft: &MessageDraft,
        state: &Value,
    ) -> bool {
        let kept = self.history.len();
        self.history.push(as_stored(self.chat_id, at, draft));
        let state = RunState::from_value(state);
        let ahead = self.follow(at, flow, &state, None);
        let verdict = match ahead {
            Some(Ahead::Select(candidates)) if self.history.len() == kept + 1 => {
                self.select_ahead(at, flow, &state, &candidates).await
            }
            Some(Ahead::HandsBack) => true,
            Some(Ahead::Continues | Ahead::Select(_)) | None => false,
        };
        self.history.truncate(kept);
        verdict
    }

    /// Asks the selector who speaks after the last message, keeps the answer
    /// for the next step, and follows the chosen speaker's step.
    async fn select_ahead(&mut self, at: &At, flow: &Flow, state: &RunState, candidates: &[String]) -> bool {
        let ctx = Context { flow, run_id: &at.run_id, history: &self.history, state, reply: None };
        let after_message = self.history.last().map(|m| m.id.clone()).unwrap_or_default();
        let choice = self.select_auto(&ctx, candidates).await;
        let next = match &choice {
            Ok((agent, selection)) => policy::speaker_step(&ctx, agent, selection.clone()).ok(),
            Err(_) => None,
        };
        if !matches!(choice, Err(ProviderError::Cancelled)) {
            self.preselected = Some(Preselected { after_message, choice });
        }
        match next {
            Some(decision) => matches!(self.follow(at, flow, state, Some(decision)), Some(Ahead::HandsBack)),
            None => false,
        }
    }

    /// Follows the policy from the history's end (or from `first`), pushing
    /// the fixed auto replies it would store, until a step that is not one.
    /// `None`: the policy refuses, or too many auto replies in a row.
    fn follow(&mut self, at: &At, flow: &Flow, state: &RunState, first: Option<Decision>) -> Option<Ahead> {
        let mut state = state.clone();
        let mut decision = first;
        for _ in 0..=MAX_SIMULATED {
            let next = match decision.take() {
                Some(d) => d,
                None => {
                    let ctx = Context {
                        flow,
                        run_id: &at.run_id,
                        history: &self.history,
                        state: &state,
                        reply: None,
                    };
                    policy::decide(&ctx).ok()?
                }
            };
            match next.step {
                Step::Finish { .. } | Step::AskHuman(_) => return Some(Ahead::HandsBack),
                Step::SelectAuto { candidates } => return Some(Ahead::Select(candidates)),
                Step::Speak(Speak { via: Via::Model(_), .. }) => return Some(Ahead::Continues),
                Step::Speak(speak) => {
                    let simulated = fixed_reply(self.chat_id, at, &self.history, &speak);
                    self.history.push(simulated);
                    state = next.state;
                }
            }
        }
        None
    }
}

/// Marks a message's metadata (always an object, see `message_metadata`) final.
pub(super) fn mark_final(metadata: &mut Value) {
    if let Value::Object(map) = metadata {
        map.insert(FINAL_KEY.to_owned(), Value::Bool(true));
    }
}

/// The message as the policy will see it once stored.
fn as_stored(chat_id: &ChatId, at: &At, draft: &MessageDraft) -> Message {
    Message {
        id: draft.id.clone().unwrap_or_default(),
        chat_id: chat_id.clone(),
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

/// The fixed auto reply `speak` would store after `history`.
fn fixed_reply(chat_id: &ChatId, at: &At, history: &[Message], speak: &Speak) -> Message {
    let content = match &speak.via {
        Via::Fixed(text) => text.clone(),
        Via::Model(_) => String::new(),
    };
    Message {
        id: String::new(),
        chat_id: chat_id.clone(),
        seq: history.last().map_or(at.seen_seq, |m| m.seq) + 1,
        run_id: Some(at.run_id.clone()),
        role: Role::Assistant,
        sender: speak.agent.clone(),
        receiver: speak.receiver.clone(),
        content,
        created_at: now(),
        metadata: message_metadata(json!({"default_auto_reply": true}), speak),
    }
}
