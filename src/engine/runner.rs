//! One chat's task loop: read the chat fresh, load its flow and history, ask
//! [`policy`](super::policy) for the next step, run it, commit it, again, until
//! the chat stops `running` (finished, failed, waiting for a human, cancelled)
//! or another run replaced the one the loop started with.
//!
//! Every commit is a compare-and-set on the `last_seq` the step was decided
//! from: if anything else changed the chat meanwhile (a cancel, a delete,
//! another node), the commit is dropped and the step decided again from fresh
//! data, so nothing is ever stored twice. An agent's message is marked final
//! (`metadata.final`) when the run hands back to the human after it (see
//! `lookahead`). Touches the store and bus through the journal, and the model
//! providers (see `calls`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::policy::{self, Context, Decision, RunState, Selection, Speak, Step, Via};
use super::provider::ProviderError;
use crate::flow::Flow;
use crate::ledger::transitions::{self, InputAsk, MessageDraft};
use crate::ledger::{Refusal, UpdateError};
use crate::model::{ChatError, ChatId, ChatRecord, ChatStatus, Message, Role, RunId, new_message_id};
use crate::store::{ChatChange, Fence, MessageView, SeqQuery, StoreError, StoreResult};

mod bounds;
mod calls;
mod lookahead;
mod tools;

use bounds::Bounds;
use lookahead::{Preselected, mark_final};

/// Messages read per page when loading the history.
const PAGE: usize = 500;
/// Store failures in a row before the task gives up (the chat stays `running`
/// and resumes at the next start).
const MAX_STORE_FAILURES: u32 = 6;

/// Drives one chat until it needs no task, then drops the partial of any
/// reply it was streaming (cut off, cancelled, failed). (A drive dropped for a
/// lost lease leaves it: the chat may already stream elsewhere.)
pub(super) async fn drive(
    shared: &Shared,
    chat_id: &ChatId,
    cancel: &CancellationToken,
    fence: Option<Fence>,
) {
    drive_steps(shared, chat_id, cancel, fence).await;
    shared.journal.forget_partials(chat_id, None).await;
}

async fn drive_steps(shared: &Shared, chat_id: &ChatId, cancel: &CancellationToken, fence: Option<Fence>) {
    let mut runner = Runner {
        shared,
        chat_id,
        cancel,
        fence,
        run_id: None,
        flow: None,
        history: Vec::new(),
        preselected: None,
        bounds: Bounds::starting_now(&shared.runs),
    };
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        match runner.step().await {
            Ok(Next::Continue) => failures = 0,
            Ok(Next::Stop) => return,
            Err(error) => {
                failures += 1;
                if failures >= MAX_STORE_FAILURES {
                    tracing::error!(%chat_id, %error, "store keeps failing; the run resumes at the next start");
                    return;
                }
                tracing::warn!(%chat_id, %error, "store failed; retrying the step");
                let backoff = Duration::from_millis(100 << failures);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

/// Whether the loop goes on.
enum Next {
    Continue,
    Stop,
}

/// How a commit went.
enum Committed {
    /// Stored.
    Yes,
    /// The chat changed since the step was decided: decide again.
    Stale,
    /// The run was cancelled or replaced, or the chat deleted: stop quietly.
    Gone,
}

/// Why a planned commit is not applied.
enum NotApplied {
    Stale,
    Refused(Refusal),
}

/// The chat as the current step saw it.
struct At {
    run_id: RunId,
    seen_seq: u64,
}

struct Runner<'a> {
    shared: &'a Shared,
    chat_id: &'a ChatId,
    cancel: &'a CancellationToken,
    /// The run lease every commit carries.
    fence: Option<Fence>,
    run_id: Option<RunId>,
    flow: Option<Arc<Flow>>,
    history: Vec<Message>,
    /// The selector's answer for the next step, asked while marking the last
    /// message (see `lookahead`).
    preselected: Option<Preselected>,
    /// The operator's bounds on this stretch of the run (see `bounds`).
    bounds: Bounds,
}

impl Runner<'_> {
    async fn step(&mut self) -> StoreResult<Next> {
        let Some(record) = self.shared.journal.store.get_chat(self.chat_id).await? else {
            return Ok(Next::Stop);
        };
        let run = match &record.run {
            Some(run) if record.chat.status == ChatStatus::Running => run.clone(),
            _ => return Ok(Next::Stop),
        };
        if self.run_id.get_or_insert_with(|| run.run_id.clone()) != &run.run_id {
            return Ok(Next::Stop);
        }
        let at = At { run_id: run.run_id.clone(), seen_seq: record.chat.last_seq };
        let flow = match self.load_flow(&record).await? {
            Ok(flow) => flow,
            Err(message) => return self.fail(&at, "flow_invalid", message).await,
        };
        self.sync_history(at.seen_seq).await?;
        if let Some(over) = self.bounds.exceeded(&self.history, &at.run_id, at.seen_seq) {
            return self.fail(&at, over.code, over.message).await;
        }
        let preselected = self.preselected.take().filter(|p| p.is_for(&self.history, at.seen_seq));
        let state = RunState::from_value(&run.state);
        let ctx = Context {
            flow: &flow,
            run_id: &at.run_id,
            history: &self.history,
            state: &state,
            reply: run.reply.as_ref(),
        };
        let mut decision = match policy::decide(&ctx) {
            Ok(d) => d,
            Err(e) => return self.fail(&at, "flow_invalid", e.to_string()).await,
        };
        if let Step::SelectAuto { candidates } = &decision.step {
            let choice = match preselected {
                Some(p) => p.choice,
                None => self.select_auto(&ctx, candidates).await,
            };
            let chosen = match choice {
                Ok(chosen) => chosen,
                Err(ProviderError::Cancelled) => return Ok(self.after_cut()),
                Err(e) => return self.fail(&at, "model_error", e.to_string()).await,
            };
            decision = match policy::speaker_step(&ctx, &chosen.0, chosen.1) {
                Ok(d) => d,
                Err(e) => return self.fail(&at, "flow_invalid", e.to_string()).await,
            };
        }
        self.execute(&at, &flow, decision).await
    }

    async fn execute(&mut self, at: &At, flow: &Flow, decision: Decision) -> StoreResult<Next> {
        let state = decision.state.to_value();
        let run_id = &at.run_id;
        match decision.step {
            Step::Speak(speak) => self.speak(at, flow, speak, state).await,
            Step::AskHuman(ask) => {
                let ask = InputAsk {
                    agent: ask.agent,
                    prompt: ask.prompt,
                    kind: ask.kind,
                    choices: ask.choices,
                    calls: ask.calls,
                };
                let done = self
                    .commit(at, |cur| transitions::request_input(cur, run_id, ask.clone(), state.clone()))
                    .await?;
                Ok(stop_unless_stale(done))
            }
            Step::Finish { stop_reason } => {
                let done = self
                    .commit(at, |cur| transitions::complete_run(cur, run_id, stop_reason.as_str()))
                    .await?;
                Ok(stop_unless_stale(done))
            }
            Step::SelectAuto { .. } => {
                let message = "speaker selection did not settle on an agent".to_owned();
                self.fail(at, "flow_invalid", message).await
            }
        }
    }

    /// Produces the speaker's text (streaming it) and commits the message,
    /// marked final when the run hands back to the human after it (see
    /// `lookahead`).
    async fn speak(&mut self, at: &At, flow: &Flow, speak: Speak, state: Value) -> StoreResult<Next> {
        let message_id = new_message_id();
        let (content, metadata, calls) = match &speak.via {
            Via::Fixed(text) => (text.clone(), json!({"default_auto_reply": true}), Vec::new()),
            Via::Model(model) => match self.call_agent(flow, &speak.agent, model, &message_id).await {
                Ok(done) => (done.content, done.metadata, done.tool_calls),
                Err(ProviderError::Cancelled) => return Ok(self.after_cut()),
                Err(e) => return self.fail(at, "model_error", e.to_string()).await,
            },
        };
        let mut metadata = message_metadata(metadata, &speak);
        let called = !calls.is_empty();
        if let (true, Some(agent)) = (called, flow.agent(&speak.agent)) {
            let fresh = RunState::default();
            let ctx =
                Context { flow, run_id: &at.run_id, history: &self.history, state: &fresh, reply: None };
            let run = policy::run_messages(&ctx);
            match tools::checked_calls(agent, calls, &message_id, run, &self.shared.runs) {
                Ok(checked) => metadata[crate::engine::prompt::CALLS_KEY] = checked,
                Err(over) => return self.fail(at, over.code, over.message).await,
            }
        }
        let mut draft = MessageDraft {
            id: Some(message_id),
            run_id: Some(at.run_id.clone()),
            role: Role::Assistant,
            sender: speak.agent.clone(),
            receiver: speak.receiver.clone(),
            content,
            metadata,
        };
        if !called && matches!(speak.via, Via::Model(_)) && self.is_final(at, flow, &draft, &state).await {
            mark_final(&mut draft.metadata);
        }
        if self.cancel.is_cancelled() {
            return Ok(Next::Stop);
        }
        if matches!(speak.via, Via::Model(_)) {
            // Gone before the message is stored, so no feed ever sends a
            // snapshot of a message it already has whole.
            self.shared.journal.forget_partials(self.chat_id, draft.id.as_deref()).await;
        }
        let run_id = &at.run_id;
        let done = self
            .commit(at, |cur| {
                transitions::agent_message(cur, run_id, draft.clone(), state.clone())
                    .map(|(change, _)| change)
            })
            .await?;
        Ok(match done {
            Committed::Yes | Committed::Stale => Next::Continue,
            Committed::Gone => Next::Stop,
        })
    }

    /// After a model call stopped early: past the run's deadline, the next
    /// step ends the run (`max_run_secs`); otherwise the run was cancelled.
    fn after_cut(&self) -> Next {
        if self.bounds.out_of_time() { Next::Continue } else { Next::Stop }
    }

    /// Ends the run in `error` with `code`.
    async fn fail(&self, at: &At, code: &str, message: String) -> StoreResult<Next> {
        tracing::warn!(chat_id = %self.chat_id, code, %message, "run failed");
        let error = ChatError { code: code.to_owned(), message };
        let run_id = &at.run_id;
        let done = self.commit(at, |cur| transitions::fail_run(cur, run_id, error.clone())).await?;
        Ok(stop_unless_stale(done))
    }

    /// Commits `plan` if the chat is still as the step saw it.
    async fn commit(
        &self,
        at: &At,
        plan: impl Fn(&ChatRecord) -> Result<ChatChange, Refusal>,
    ) -> StoreResult<Committed> {
        let result = self
            .shared
            .journal
            .update(self.chat_id, |cur| {
                if cur.chat.last_seq != at.seen_seq {
                    return Err(NotApplied::Stale);
                }
                let mut change = plan(cur).map_err(NotApplied::Refused)?;
                change.fence = self.fence.clone();
                Ok(change)
            })
            .await;
        match result {
            Ok(_) => Ok(Committed::Yes),
            Err(UpdateError::Refused(NotApplied::Stale)) => Ok(Committed::Stale),
            Err(UpdateError::Refused(NotApplied::Refused(refusal))) => {
                if refusal != Refusal::RunSuperseded {
                    tracing::warn!(chat_id = %self.chat_id, %refusal, "engine commit refused");
                }
                Ok(Committed::Gone)
            }
            Err(UpdateError::NotFound) | Err(UpdateError::Store(StoreError::Fenced)) => Ok(Committed::Gone),
            Err(UpdateError::Store(e)) => Err(e),
        }
    }

    /// The chat's flow, parsed and validated once per loop; `Err` says why it
    /// cannot run.
    async fn load_flow(&mut self, record: &ChatRecord) -> StoreResult<Result<Arc<Flow>, String>> {
        if let Some(flow) = &self.flow {
            return Ok(Ok(flow.clone()));
        }
        let flow_id = &record.chat.from_flow;
        let store = &self.shared.journal.store;
        let Some(stored) = store.get_flow(&record.tenant, flow_id).await? else {
            return Ok(Err(format!("flow {flow_id} no longer exists")));
        };
        let mut flow: Flow = match serde_json::from_value(stored.definition) {
            Ok(flow) => flow,
            Err(e) => return Ok(Err(format!("flow {flow_id} cannot be read: {e}"))),
        };
        if let Err(issues) = flow.validate(&self.shared.models.known()) {
            let list: Vec<String> = issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect();
            return Ok(Err(format!("flow {flow_id} is invalid: {}", list.join("; "))));
        }
        for lowered in crate::engine::caps::bound(&mut flow, &self.shared.runs) {
            tracing::info!(%flow_id, path = %lowered.path, "run capped: {}", lowered.message);
        }
        let flow = Arc::new(flow);
        self.flow = Some(flow.clone());
        Ok(Ok(flow))
    }

    /// Reads the messages not yet loaded, up to `seen_seq`.
    async fn sync_history(&mut self, seen_seq: u64) -> StoreResult<()> {
        loop {
            let query = SeqQuery {
                after_seq: self.history.last().map(|m| m.seq),
                before_seq: Some(seen_seq + 1),
                limit: PAGE,
                descending: false,
                view: MessageView::All,
            };
            let page = self.shared.journal.store.messages(self.chat_id, &query).await?;
            let full = page.len() >= PAGE;
            self.history.extend(page.into_iter().filter(|m| m.seq <= seen_seq));
            if !full {
                return Ok(());
            }
        }
    }
}

fn stop_unless_stale(done: Committed) -> Next {
    match done {
        Committed::Stale => Next::Continue,
        Committed::Yes | Committed::Gone => Next::Stop,
    }
}

/// The provider's metadata, plus how the speaker was chosen and whether it was
/// a user proxy's auto reply.
fn message_metadata(provider: Value, speak: &Speak) -> Value {
    let mut out = match provider {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("provider_metadata".to_owned(), other)]),
    };
    if speak.auto_reply {
        out.insert("auto_reply".into(), Value::Bool(true));
    }
    if let Some(Value::Object(selection)) = speak.selection.as_ref().map(selection_value) {
        out.extend(selection);
    }
    Value::Object(out)
}

fn selection_value(selection: &Selection) -> Value {
    serde_json::to_value(selection).unwrap_or(Value::Null)
}
