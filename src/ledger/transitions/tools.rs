//! Answering a pending `tool_calls` request: the client's results, matched to
//! the pending calls by call id.
//!
//! Touches nothing: pure, like the rest of the status machine.

use serde_json::json;

use super::{MessageDraft, Planner, Refusal, waiting};
use crate::model::{ChatRecord, ChatStatus, EventKind, HumanReply, InputKind, PendingCall, Role, ToolResult};
use crate::store::ChatChange;

/// `POST /input` with `tool_results`: one result per pending call, by call
/// id. Stores them as the executing agent's `human_input` message (content:
/// the results joined by blank lines, as AutoGen's tool response;
/// `metadata.tool_results` in call order) and resumes the run.
pub fn submit_tool_results(
    current: &ChatRecord,
    request_id: Option<&str>,
    results: &[ToolResult],
) -> Result<ChatChange, Refusal> {
    let pending = waiting(current, request_id)?;
    let calls = match (pending.kind, &pending.calls) {
        (InputKind::ToolCalls, Some(calls)) => calls,
        _ => {
            return Err(Refusal::InputKindMismatch(
                "the pending request asks for a `message`, not `tool_results`",
            ));
        }
    };
    let ordered = match_results(calls, results)?;
    let content = ordered.iter().map(|r| r.content.as_str()).collect::<Vec<_>>().join("\n\n");
    let run_id = current.run.as_ref().map(|r| r.run_id.clone());
    let mut p = Planner::new(current);
    p.message(MessageDraft {
        id: None,
        run_id,
        role: Role::HumanInput,
        sender: pending.agent.clone(),
        receiver: None,
        content,
        metadata: json!({"request_id": pending.request_id, "tool_results": ordered}),
    });
    let ids: Vec<&str> = ordered.iter().map(|r| r.call_id.as_str()).collect();
    let resolved = json!({"request_id": pending.request_id, "message": null, "call_ids": ids});
    p.event(EventKind::InputResolved, resolved);
    p.status(ChatStatus::Running, None);
    let record = p.record_mut();
    record.chat.pending_input = None;
    if let Some(run) = record.run.as_mut() {
        run.reply = Some(HumanReply { request_id: pending.request_id, message: None });
    }
    Ok(p.finish())
}

/// The results in call order: each names a pending call, once, and none is
/// missing.
fn match_results(calls: &[PendingCall], results: &[ToolResult]) -> Result<Vec<ToolResult>, Refusal> {
    for (i, r) in results.iter().enumerate() {
        if !calls.iter().any(|c| c.call_id == r.call_id) {
            return Err(Refusal::UnknownToolCall(r.call_id.clone()));
        }
        if results[..i].iter().any(|earlier| earlier.call_id == r.call_id) {
            return Err(Refusal::DuplicateToolResult(r.call_id.clone()));
        }
    }
    let missing: Vec<String> = calls
        .iter()
        .filter(|c| !results.iter().any(|r| r.call_id == c.call_id))
        .map(|c| c.call_id.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Refusal::MissingToolResults(missing));
    }
    Ok(calls.iter().filter_map(|c| results.iter().find(|r| r.call_id == c.call_id).cloned()).collect())
}
