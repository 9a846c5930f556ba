//! Model providers: what an assistant answers with. `scripted` (deterministic,
//! offline) and `openai` (any OpenAI-compatible Chat Completions server).
//!
//! A provider streams its reply as deltas into a channel and returns the whole
//! text; it never sees a secret other than the key it was built with.

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::flow::ToolSpec;

pub mod openai;
pub mod scripted;

/// One turn of the conversation as a model sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    /// `system`, `user` or `assistant`, from the speaking agent's point of view.
    pub role: TurnRole,
    /// The author's name (agent name or `user`), when known.
    pub name: Option<String>,
    /// The text.
    pub content: String,
    /// Image URLs (`data:` or `https://`) shown with the text, from a user
    /// message's `metadata.images`; empty for a text-only turn.
    pub images: Vec<String>,
    /// An `assistant` turn's tool calls (content may then be empty).
    pub tool_calls: Vec<ToolCall>,
    /// A `tool` turn: the call it answers.
    pub tool_call_id: Option<String>,
}

/// Chat Completions roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TurnRole {
    /// Instructions.
    System,
    /// Somebody else spoke.
    #[default]
    User,
    /// The speaking agent itself spoke (or any agent's tool calls).
    Assistant,
    /// A tool's result, answering one call.
    Tool,
}

/// A model's call of a declared tool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolCall {
    /// The model's call id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// The arguments as the model wrote them (JSON text, not yet checked).
    pub arguments: String,
}

/// A request for one reply.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// The agent that speaks.
    pub agent: String,
    /// How many messages that agent has written in this chat before (the
    /// scripted provider picks its reply by it, so replies survive restarts).
    pub turn: u64,
    /// The conversation, system message first.
    pub messages: Vec<Turn>,
    /// The tools the agent declares to its model (empty: none).
    pub tools: Vec<ToolSpec>,
}

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The whole text.
    pub content: String,
    /// Kept in the message's metadata: provider, model, usage, `scripted: true`.
    pub metadata: Value,
    /// The tools the model called, in its order (empty: a plain reply).
    pub tool_calls: Vec<ToolCall>,
}

/// Why a model call failed. Messages name the model and never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The server answered with an error status.
    #[error("model `{model}` answered HTTP {status}: {message}")]
    Http {
        /// Model name.
        model: String,
        /// HTTP status.
        status: u16,
        /// The server's own message.
        message: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("model `{model}` unreachable: {message}")]
    Connect {
        /// Model name.
        model: String,
        /// What happened.
        message: String,
    },
    /// The call took too long.
    #[error("model `{model}` timed out after {secs} s")]
    Timeout {
        /// Model name.
        model: String,
        /// The limit.
        secs: u64,
    },
    /// The answer could not be understood.
    #[error("model `{model}` sent a malformed answer: {message}")]
    Malformed {
        /// Model name.
        model: String,
        /// What was wrong.
        message: String,
    },
    /// The run was cancelled while waiting.
    #[error("cancelled")]
    Cancelled,
}

impl ProviderError {
    /// The failure's kind for metrics (`http`, `connect`, `timeout`,
    /// `malformed`), or `None` for a cancelled call.
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            ProviderError::Http { .. } => Some("http"),
            ProviderError::Connect { .. } => Some("connect"),
            ProviderError::Timeout { .. } => Some("timeout"),
            ProviderError::Malformed { .. } => Some("malformed"),
            ProviderError::Cancelled => None,
        }
    }
}

/// A model.
#[async_trait]
pub trait ModelProvider: Send + Sync {
    /// The provider's name for metrics (`openai`, `scripted`): a constant,
    /// never a model's or a server's name, so it cannot grow the series.
    fn kind(&self) -> &'static str {
        "other"
    }

    /// Produces one reply, sending text chunks to `deltas` as they come (a
    /// closed receiver is not an error), and returning the assembled text.
    /// Returns [`ProviderError::Cancelled`] promptly once `cancel` fires.
    async fn complete(
        &self,
        request: CompletionRequest,
        deltas: mpsc::Sender<String>,
        cancel: CancellationToken,
    ) -> Result<Completion, ProviderError>;
}
