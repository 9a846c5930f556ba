//! Tool calls in a run: a message whose model called tools is answered by the
//! client, never by the gateway. The run asks (a pending input of kind
//! `tool_calls`, on behalf of the user proxy, AutoGen's executor in FlowGen
//! flows) for the calls the gateway did not refuse; refused calls (unknown
//! tool, arguments that are not JSON or break the schema) are answered with
//! the gateway's error, and when every call was refused the calling agent
//! sees those errors and speaks again.
//!
//! Pure: decides from the stored history only, so a restart asks again for the
//! same call ids.

use super::{Context, MANAGER, PendingAsk, RunState, plain};
use crate::engine::prompt;
use crate::engine::step::{Ask, AskReason, Decision, Step};
use crate::model::{InputKind, Message};

/// The ask for the last message's tool calls, if it made any the client must
/// answer.
pub(super) fn ask_calls(ctx: &Context<'_>, last: &Message) -> Option<Decision> {
    if last.run_id.as_deref() != Some(ctx.run_id) {
        return None;
    }
    let calls = prompt::pending_calls(ctx.history);
    if calls.is_empty() {
        return None;
    }
    let agent = ctx.flow.user_proxy().map_or(MANAGER, |p| p.name.as_str()).to_owned();
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    let prompt = format!(
        "{} called {}: answer each call with its result (tool_results, by call_id)",
        last.sender,
        names.join(", ")
    );
    let step = Step::AskHuman(Ask {
        agent: agent.clone(),
        prompt,
        kind: InputKind::ToolCalls,
        choices: None,
        calls: Some(calls),
    });
    let pending =
        PendingAsk { agent, why: AskReason::ToolCalls, about_seq: last.seq, selection: None, retries: 0 };
    Some(Decision { state: RunState { pending: Some(pending) }, ..plain(step) })
}

/// Whether `m` called tools and the gateway refused every call: its author
/// answers next, seeing the errors.
pub(super) fn all_refused(m: &Message) -> bool {
    let calls = prompt::calls_of(m);
    !calls.is_empty() && calls.iter().all(|(.., error)| error.is_some())
}
