//! The records Flowgate keeps and serves: chats, messages, events, flows and API
//! keys, exactly as the API contract (§2, §4) spells them on the wire.
//!
//! Pure data: nothing here touches the store, the bus or the network.

mod depth;
mod error;
mod event;
mod ids;
mod time;

pub use depth::{MAX_JSON_DEPTH, check_json_depth};
pub use error::{ClientError, Disconnect, ErrorCode, RateLimitNote, RatePolicy, from_json};
pub use event::{Event, EventKind};
pub use ids::{ChatId, FlowId, IdError, InputRequestId, KeyId, RunId, TenantId, new_message_id};
pub use time::{Timestamp, now};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The five statuses of a chat, exactly as the FlowGen document names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatStatus {
    /// New, or cancelled: a message starts a run.
    Ready,
    /// A run is executing.
    Running,
    /// An agent asked the human; `POST /input` answers.
    WaitForHumanInput,
    /// The last run finished; a message starts another.
    Completed,
    /// The last run failed; `Chat::error` says why.
    Error,
}

impl ChatStatus {
    /// The wire name (`wait_for_human_input`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChatStatus::Ready => "ready",
            ChatStatus::Running => "running",
            ChatStatus::WaitForHumanInput => "wait_for_human_input",
            ChatStatus::Completed => "completed",
            ChatStatus::Error => "error",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// Why the last run failed (`Chat::error`, `run.failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatError {
    /// Machine-readable code, e.g. `model_error`, `flow_invalid`.
    pub code: String,
    /// What happened, for a human; never holds a secret.
    pub message: String,
}

/// What an input request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A reply on behalf of a user proxy (text, `exit`, or the auto reply):
    /// the contract's `human`. Earlier builds stored it as `reply`, still read.
    #[default]
    #[serde(alias = "reply")]
    Human,
    /// Manual speaker selection: the reply must be one of `choices`.
    SelectSpeaker,
    /// A model called tools: answered with `tool_results`, one per call in
    /// `calls` (the gateway never runs a tool).
    ToolCalls,
}

/// A tool call the client is asked to answer (`InputRequest::calls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    /// The model's call id; the answer names it.
    pub call_id: String,
    /// The tool.
    pub name: String,
    /// The arguments, a JSON object valid against the tool's schema.
    pub arguments: Value,
}

/// A client's answer to one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call answered.
    pub call_id: String,
    /// What the tool returned, as text (sent to the model as a `tool` message).
    pub content: String,
}

/// A durable request for human input, pending while the chat waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRequest {
    /// `inp_…`; `POST /input` may name it to guard against answering a stale one.
    pub request_id: InputRequestId,
    /// The agent on whose behalf the human answers.
    pub agent: String,
    /// What the human is asked.
    pub prompt: String,
    /// When the request was made.
    pub created_at: Timestamp,
    /// What kind of answer is wanted.
    #[serde(default)]
    pub kind: InputKind,
    /// For `select_speaker`: the names the answer must be one of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// For `tool_calls`: the calls to answer, each by its `call_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<PendingCall>>,
}

/// A chat as the API shows it (contract §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    /// `chat_…`
    pub id: ChatId,
    /// Display name.
    pub name: String,
    /// Always `flow` today.
    pub from_type: String,
    /// The flow this chat runs.
    pub from_flow: FlowId,
    /// One of the five statuses.
    pub status: ChatStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Time of the last change.
    pub updated_at: Timestamp,
    /// The seq of the chat's last durable event (0 before any).
    pub last_seq: u64,
    /// Caller-supplied JSON object, stored as given.
    pub metadata: Value,
    /// Set while `status` is `error`.
    pub error: Option<ChatError>,
    /// Set while `status` is `wait_for_human_input`.
    pub pending_input: Option<InputRequest>,
}

/// The engine's hold on a chat while a run is active or paused; never shown on
/// the wire. The store keeps it beside the chat and changes it only together
/// with the chat (one atomic commit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `run_…`: the active run.
    pub run_id: RunId,
    /// The engine's own resumable state, opaque to everyone else.
    pub state: Value,
    /// The human's answer to the last input request, until the engine takes it:
    /// `Some(text)` for a reply, `None` for "use the auto reply".
    pub reply: Option<HumanReply>,
}

/// A human's answer to an input request, handed to the engine through `RunInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanReply {
    /// The request it answers.
    pub request_id: InputRequestId,
    /// The text, or `None` for the auto reply.
    pub message: Option<String>,
}

/// A chat with everything the store keeps beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The public part.
    pub chat: Chat,
    /// The active or paused run, if any.
    pub run: Option<RunInfo>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The API caller (`POST /messages`).
    User,
    /// An agent.
    Assistant,
    /// A human answering an input request.
    HumanInput,
    /// Flowgate itself.
    System,
}

/// One message of a chat (contract §2). Its `seq` is the seq of the
/// `message.created` event that announced it, so messages and events share one
/// cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `msg_…`
    pub id: String,
    /// The chat it belongs to.
    pub chat_id: ChatId,
    /// Seq of its `message.created` event.
    pub seq: u64,
    /// The run that produced it (null for none).
    pub run_id: Option<RunId>,
    /// Who wrote it.
    pub role: Role,
    /// Agent name, or `user`.
    pub sender: String,
    /// Addressee, when there is one.
    pub receiver: Option<String>,
    /// The text.
    pub content: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Provider details (`scripted`, token usage, `final`, …).
    pub metadata: Value,
}

/// A registered flow: the native definition plus bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// `flow_…`, or a name chosen at registration (the demo is `demo`).
    pub id: FlowId,
    /// The owning tenant (not on the wire; the store restores it on read).
    #[serde(skip)]
    pub tenant: TenantId,
    /// Display name.
    pub name: String,
    /// The native definition (see `crate::flow::Flow`).
    pub definition: Value,
    /// The FlowGen graph it was imported from, kept for export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Time of the last change.
    pub updated_at: Timestamp,
}

/// An API key as listed: never the secret, never the hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `key_…`
    pub id: KeyId,
    /// The owning tenant.
    pub tenant: TenantId,
    /// A human label.
    pub name: String,
    /// `development`, `production`, … (optional).
    pub environment: Option<String>,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
}

/// One page of a list (contract §2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Whether more items follow.
    pub has_more: bool,
    /// Cursor for the next page, when `has_more`.
    pub next_cursor: Option<String>,
}
