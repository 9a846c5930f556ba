//! The status machine of contract §3 as pure functions: each takes the chat as
//! read and returns the [`ChatChange`] to commit, or the [`Refusal`] the caller
//! gets. The store applies a change only if the chat is still as read, so a
//! check and its transition are one atomic step.
//!
//! Touches nothing: no store, no bus, no clock but `model::now`.

use serde_json::{Value, json};

use crate::model::{
    Chat, ChatError, ChatRecord, ChatStatus, Event, EventKind, HumanReply, InputKind, InputRequest,
    InputRequestId, Message, PendingCall, Role, RunId, RunInfo, TenantId, Timestamp, new_message_id, now,
};
use crate::store::ChatChange;

mod tools;

pub use tools::submit_tool_results;

/// Why a command is refused in the chat's current state (each maps to a 409 or
/// 422 of the contract).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// A run is active.
    #[error("the chat is running; wait for it to finish or cancel it")]
    ChatBusy,
    /// The chat waits for the answer to this request.
    #[error("the chat is waiting for human input (request {})", .0.request_id)]
    InputRequired(Box<InputRequest>),
    /// `POST /input` while nothing is asked.
    #[error("the chat is not waiting for human input")]
    NotWaitingForInput,
    /// `POST /input` naming another request than the pending one.
    #[error("request {given} is not the pending input request ({pending})")]
    InputRequestMismatch {
        /// The id the caller named.
        given: String,
        /// The pending request's id.
        pending: String,
    },
    /// A speaker selection that names no offered agent.
    #[error("the answer must be one of: {}", .0.join(", "))]
    InvalidChoice(Vec<String>),
    /// An answer of the wrong kind: text to a `tool_calls` request, or
    /// `tool_results` to any other.
    #[error("{0}")]
    InputKindMismatch(&'static str),
    /// A tool result naming no pending call.
    #[error("`{0}` is not a call of the pending request")]
    UnknownToolCall(String),
    /// Pending calls left unanswered.
    #[error("every pending call needs a result; missing: {}", .0.join(", "))]
    MissingToolResults(Vec<String>),
    /// Two results for one call.
    #[error("call `{0}` is answered twice")]
    DuplicateToolResult(String),
    /// Cancel with no active or paused run.
    #[error("the chat has no active run")]
    NoActiveRun,
    /// An engine write for a run that is no longer the chat's active run
    /// (cancelled, or replaced): the engine stops.
    #[error("the run is no longer active")]
    RunSuperseded,
}

/// Builds one change: assigns seqs, keeps `last_seq` and `updated_at` true.
pub struct Planner {
    record: ChatRecord,
    expected_seq: Option<u64>,
    events: Vec<Event>,
    messages: Vec<Message>,
    at: Timestamp,
}

impl Planner {
    /// Starts a change to an existing chat.
    pub fn new(current: &ChatRecord) -> Self {
        Planner {
            expected_seq: Some(current.chat.last_seq),
            record: current.clone(),
            events: Vec::new(),
            messages: Vec::new(),
            at: now(),
        }
    }

    /// Appends a durable event; returns its seq.
    pub fn event(&mut self, kind: EventKind, data: Value) -> u64 {
        let chat = &mut self.record.chat;
        chat.last_seq += 1;
        chat.updated_at = self.at;
        self.events.push(Event {
            seq: Some(chat.last_seq),
            chat_id: chat.id.clone(),
            kind,
            created_at: self.at,
            data,
        });
        chat.last_seq
    }

    /// Appends a message and its `message.created` event.
    pub fn message(&mut self, draft: MessageDraft) -> Message {
        let mut message = Message {
            id: draft.id.unwrap_or_else(new_message_id),
            chat_id: self.record.chat.id.clone(),
            seq: self.record.chat.last_seq + 1,
            run_id: draft.run_id,
            role: draft.role,
            sender: draft.sender,
            receiver: draft.receiver,
            content: draft.content,
            created_at: self.at,
            metadata: draft.metadata,
        };
        let data = serde_json::to_value(&message).expect("a message serializes");
        message.seq = self.event(EventKind::MessageCreated, data);
        self.messages.push(message.clone());
        message
    }

    /// Moves to a status, with its `chat.status` event.
    pub fn status(&mut self, status: ChatStatus, error: Option<ChatError>) {
        let previous = self.record.chat.status;
        self.record.chat.status = status;
        self.record.chat.error = error.clone();
        let mut data = json!({"status": status, "previous": previous});
        if let Some(e) = error {
            data["error"] = json!(e);
        }
        self.event(EventKind::ChatStatus, data);
    }

    /// The chat as it will be.
    pub fn record_mut(&mut self) -> &mut ChatRecord {
        &mut self.record
    }

    /// The finished change.
    pub fn finish(self) -> ChatChange {
        ChatChange {
            expected_seq: self.expected_seq,
            record: self.record,
            events: self.events,
            messages: self.messages,
            fence: None,
        }
    }
}

/// The parts of a message its author chooses.
#[derive(Debug, Clone)]
pub struct MessageDraft {
    /// A pre-generated `msg_…` id (the engine streams `message.delta` events
    /// under it before the message is stored); `None` mints a new one.
    pub id: Option<String>,
    /// The run that produced it.
    pub run_id: Option<RunId>,
    /// Who wrote it.
    pub role: Role,
    /// Agent name, or `user`.
    pub sender: String,
    /// Addressee.
    pub receiver: Option<String>,
    /// The text.
    pub content: String,
    /// Provider details.
    pub metadata: Value,
}

/// A new chat, `ready`, announced by its first `chat.status` event.
pub fn create(tenant: &TenantId, chat: Chat) -> ChatChange {
    let record = ChatRecord { tenant: tenant.to_owned(), chat, run: None };
    let mut p = Planner::new(&record);
    p.expected_seq = None;
    p.event(EventKind::ChatStatus, json!({"status": ChatStatus::Ready, "previous": null}));
    p.finish()
}

/// `POST /messages`: stores the user's message (its checked images, if any, in
/// `metadata.images`) and starts a run.
pub fn post_message(current: &ChatRecord, content: &str, images: &[String]) -> Result<ChatChange, Refusal> {
    match current.chat.status {
        ChatStatus::Running => return Err(Refusal::ChatBusy),
        ChatStatus::WaitForHumanInput => {
            let pending = current.chat.pending_input.clone().ok_or(Refusal::ChatBusy)?;
            return Err(Refusal::InputRequired(Box::new(pending)));
        }
        ChatStatus::Ready | ChatStatus::Completed | ChatStatus::Error => {}
    }
    let run_id = RunId::new();
    let mut p = Planner::new(current);
    p.message(MessageDraft {
        id: None,
        run_id: Some(run_id.clone()),
        role: Role::User,
        sender: "user".into(),
        receiver: None,
        content: content.to_owned(),
        metadata: if images.is_empty() { json!({}) } else { json!({ "images": images }) },
    });
    p.event(EventKind::RunStarted, json!({"run_id": run_id}));
    p.status(ChatStatus::Running, None);
    p.record_mut().run = Some(RunInfo { run_id, state: Value::Null, reply: None });
    Ok(p.finish())
}

/// Checks that `run_id` is the chat's active, running run, and starts a change.
pub fn for_run(current: &ChatRecord, run_id: &RunId) -> Result<Planner, Refusal> {
    let active = current.run.as_ref().map(|r| &r.run_id);
    if current.chat.status != ChatStatus::Running || active != Some(run_id) {
        return Err(Refusal::RunSuperseded);
    }
    Ok(Planner::new(current))
}

/// The engine stores an agent's message and its own new state.
pub fn agent_message(
    current: &ChatRecord,
    run_id: &RunId,
    draft: MessageDraft,
    state: Value,
) -> Result<(ChatChange, Message), Refusal> {
    let mut p = for_run(current, run_id)?;
    let message = p.message(draft);
    set_state(&mut p, state);
    Ok((p.finish(), message))
}

/// What the engine asks a human.
#[derive(Debug, Clone)]
pub struct InputAsk {
    /// On whose behalf.
    pub agent: String,
    /// The question.
    pub prompt: String,
    /// A reply, or a speaker selection.
    pub kind: InputKind,
    /// For a selection: the names offered.
    pub choices: Option<Vec<String>>,
    /// For tool calls: the calls to answer.
    pub calls: Option<Vec<PendingCall>>,
}

/// The engine pauses the run for a human; no task is held while waiting.
pub fn request_input(
    current: &ChatRecord,
    run_id: &RunId,
    ask: InputAsk,
    state: Value,
) -> Result<ChatChange, Refusal> {
    let mut p = for_run(current, run_id)?;
    let request = InputRequest {
        request_id: InputRequestId::new(),
        agent: ask.agent,
        prompt: ask.prompt,
        created_at: now(),
        kind: ask.kind,
        choices: ask.choices,
        calls: ask.calls,
    };
    p.event(EventKind::InputRequested, json!(request));
    p.status(ChatStatus::WaitForHumanInput, None);
    p.record_mut().chat.pending_input = Some(request);
    set_state(&mut p, state);
    Ok(p.finish())
}

/// `POST /input`: records the human's answer (`None`: use the auto reply) and
/// resumes the run.
pub fn submit_input(
    current: &ChatRecord,
    request_id: Option<&str>,
    message: Option<&str>,
) -> Result<ChatChange, Refusal> {
    let pending = waiting(current, request_id)?;
    if pending.kind == InputKind::ToolCalls {
        return Err(Refusal::InputKindMismatch(
            "the pending request asks for tool results: answer with `tool_results`",
        ));
    }
    if let (InputKind::SelectSpeaker, Some(choices)) = (pending.kind, &pending.choices)
        && !message.is_none_or(|m| is_selection(m, choices))
    {
        return Err(Refusal::InvalidChoice(choices.clone()));
    }
    let run_id = current.run.as_ref().map(|r| r.run_id.clone());
    let mut p = Planner::new(current);
    if let (InputKind::Human, Some(text)) = (pending.kind, message) {
        p.message(MessageDraft {
            id: None,
            run_id: run_id.clone(),
            role: Role::HumanInput,
            sender: pending.agent.clone(),
            receiver: None,
            content: text.to_owned(),
            metadata: json!({"request_id": pending.request_id}),
        });
    }
    let answer = message.map(|m| m.trim().to_owned());
    p.event(EventKind::InputResolved, json!({"request_id": pending.request_id, "message": answer}));
    p.status(ChatStatus::Running, None);
    let record = p.record_mut();
    record.chat.pending_input = None;
    if let Some(run) = record.run.as_mut() {
        run.reply = Some(HumanReply { request_id: pending.request_id, message: answer });
    }
    Ok(p.finish())
}

/// The pending request of a chat that waits, and the id check.
pub(crate) fn waiting(current: &ChatRecord, request_id: Option<&str>) -> Result<InputRequest, Refusal> {
    let pending = match (&current.chat.status, &current.chat.pending_input) {
        (ChatStatus::WaitForHumanInput, Some(p)) => p.clone(),
        _ => return Err(Refusal::NotWaitingForInput),
    };
    check_request_id(&pending, request_id)?;
    Ok(pending)
}

fn check_request_id(pending: &InputRequest, request_id: Option<&str>) -> Result<(), Refusal> {
    match request_id.filter(|g| pending.request_id != *g) {
        Some(given) => Err(Refusal::InputRequestMismatch {
            given: given.to_owned(),
            pending: pending.request_id.to_string(),
        }),
        None => Ok(()),
    }
}

/// Whether an answer to a manual speaker selection is one AutoGen takes: an
/// agent's number in the list (1..n), `q` or nothing (round robin), or, in
/// Flowgate, the agent's name. Anything else is refused (a 422 listing the
/// choices) and the chat keeps waiting, where AutoGen would ask again.
fn is_selection(answer: &str, choices: &[String]) -> bool {
    let answer = answer.trim();
    answer.is_empty()
        || answer == "q"
        || answer.parse::<usize>().is_ok_and(|n| (1..=choices.len()).contains(&n))
        || choices.iter().any(|c| c == answer)
}

/// The flow terminated.
pub fn complete_run(current: &ChatRecord, run_id: &RunId, stop_reason: &str) -> Result<ChatChange, Refusal> {
    let mut p = for_run(current, run_id)?;
    p.event(EventKind::RunCompleted, json!({"run_id": run_id, "stop_reason": stop_reason}));
    p.status(ChatStatus::Completed, None);
    p.record_mut().run = None;
    Ok(p.finish())
}

/// The run failed (model error, bad flow): status `error` with the reason.
pub fn fail_run(current: &ChatRecord, run_id: &RunId, error: ChatError) -> Result<ChatChange, Refusal> {
    let mut p = for_run(current, run_id)?;
    p.event(EventKind::RunFailed, json!({"run_id": run_id, "code": error.code, "message": error.message}));
    p.status(ChatStatus::Error, Some(error));
    p.record_mut().run = None;
    Ok(p.finish())
}

/// Cancel: stops the active or paused run; what it stored stays. → `ready`.
pub fn cancel(current: &ChatRecord) -> Result<ChatChange, Refusal> {
    let run_id = match (&current.chat.status, &current.run) {
        (ChatStatus::Running | ChatStatus::WaitForHumanInput, Some(run)) => run.run_id.clone(),
        _ => return Err(Refusal::NoActiveRun),
    };
    let mut p = Planner::new(current);
    p.event(EventKind::RunCancelled, json!({"run_id": run_id}));
    p.status(ChatStatus::Ready, None);
    let record = p.record_mut();
    record.run = None;
    record.chat.pending_input = None;
    Ok(p.finish())
}

fn set_state(p: &mut Planner, state: Value) {
    if let Some(run) = p.record_mut().run.as_mut() {
        run.state = state;
        run.reply = None;
    }
}
