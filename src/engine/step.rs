//! What the policy decides: the steps of a run, why it stops, and the small
//! resumable [`RunState`] the engine keeps in `RunInfo.state`.
//!
//! Pure data: nothing here does I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flow::SpeakerSelection;
use crate::model::{InputKind, PendingCall};

/// The engine's resumable state of a run, kept in `RunInfo.state`. Everything
/// else (rounds, counters, last speaker) is derived from the stored history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The input request the run waits on, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingAsk>,
}

impl RunState {
    /// Reads the stored state; `null` or anything unreadable is a fresh state.
    pub fn from_value(value: &Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    /// The stored form.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// An input request the run waits on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAsk {
    /// The seat answered for (the user proxy), or [`MANAGER`](super::policy::MANAGER).
    pub agent: String,
    /// What an empty answer means.
    pub why: AskReason,
    /// The seq of the message it was asked about.
    pub about_seq: u64,
    /// How the proxy got the turn, in a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// Manual selection: how many times the human was asked again after an
    /// answer that named no agent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why the human is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AskReason {
    /// `ALWAYS` mode, a message that does not terminate: empty → auto reply.
    Feedback,
    /// A termination message: empty → the chat ends.
    Termination,
    /// `TERMINATE` mode at the auto-reply limit: empty → auto reply.
    AutoReplyLimit,
    /// Manual speaker selection.
    SelectSpeaker,
    /// A model called tools: the client answers with their results.
    ToolCalls,
}

/// How a group's speaker was chosen; merged into its message's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The method that chose.
    pub selected_by: SpeakerSelection,
    /// `auto`: how many selector answers were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// `auto`: the method used when no answer named a candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<SpeakerSelection>,
}

impl Selection {
    /// Chosen by `by` directly.
    pub fn by(by: SpeakerSelection) -> Self {
        Selection { selected_by: by, attempts: None, fallback: None }
    }
}

/// Why a run finished (`run.completed`'s `stop_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A termination message.
    Termination,
    /// A group reached `max_round`.
    MaxRound,
    /// The human answered `exit`.
    HumanExit,
    /// An agent reached `max_consecutive_auto_reply`.
    MaxConsecutiveAutoReply,
}

impl StopReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Termination => "termination",
            StopReason::MaxRound => "max_round",
            StopReason::HumanExit => "human_exit",
            StopReason::MaxConsecutiveAutoReply => "max_consecutive_auto_reply",
        }
    }
}

/// Where a spoken message's text comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Via {
    /// This model, by name.
    Model(String),
    /// This fixed text (a user proxy's `default_auto_reply`).
    Fixed(String),
}

/// An agent speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Speak {
    /// The agent.
    pub agent: String,
    /// Its addressee (two-agent chats).
    pub receiver: Option<String>,
    /// Where its text comes from.
    pub via: Via,
    /// How it was chosen (groups).
    pub selection: Option<Selection>,
    /// Whether this is a user proxy's auto reply.
    pub auto_reply: bool,
}

/// The human is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// On whose behalf.
    pub agent: String,
    /// The question.
    pub prompt: String,
    /// A reply or a speaker selection.
    pub kind: InputKind,
    /// For a selection: the agent names.
    pub choices: Option<Vec<String>>,
    /// For tool calls: the calls to answer.
    pub calls: Option<Vec<PendingCall>>,
}

/// What the run does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An agent speaks; the run goes on.
    Speak(Speak),
    /// The run pauses for the human.
    AskHuman(Ask),
    /// The selector model picks among these agents; then
    /// [`speaker_step`](super::policy::speaker_step) decides.
    SelectAuto {
        /// The agent names offered.
        candidates: Vec<String>,
    },
    /// The run completes.
    Finish {
        /// Why.
        stop_reason: StopReason,
    },
}

/// A step and the state to commit with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do.
    pub step: Step,
    /// The run's state after it.
    pub state: RunState,
}

/// A flow the policy cannot run (validation catches these first).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A role the chat kind needs is missing.
    #[error("the flow has no {0}")]
    Missing(&'static str),
    /// A chosen speaker is no agent of the flow.
    #[error("`{0}` is not an agent of the flow")]
    UnknownAgent(String),
    /// An assistant without a model.
    #[error("agent `{0}` has no model")]
    NoModel(String),
}
