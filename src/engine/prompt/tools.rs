//! Tool calls and their results in the stored history, and as a model sees
//! them. An agent message that called tools keeps them in
//! `metadata.tool_calls` (`[{call_id, name, arguments, error?}]`: `arguments`
//! is the model's JSON text; `error`, when the gateway refused the call, is
//! its answer to the model). The client's answers are a `human_input` message
//! with `metadata.tool_results` (`[{call_id, content}]`).
//!
//! A model sees a tool-calling message as an `assistant` turn with
//! `tool_calls`, then one `tool` turn per refused call, and each result as a
//! `tool` turn: AutoGen's shape, whoever's the messages are. A call the client
//! never answered (the run was cancelled while it waited) gets a `tool` turn
//! saying so, since OpenAI refuses a `tool_calls` message left unanswered.
//!
//! Pure functions over messages.

use serde_json::Value;

use crate::engine::provider::{ToolCall, Turn, TurnRole};
use crate::model::{Message, PendingCall, Role};

/// Where a message keeps its tool calls.
pub const CALLS_KEY: &str = "tool_calls";
/// Where a message keeps the client's tool results.
pub const RESULTS_KEY: &str = "tool_results";

/// A stored call: `(call_id, name, arguments, error)`.
type Stored<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// The tool calls an agent message made, in order.
pub fn calls_of(m: &Message) -> Vec<Stored<'_>> {
    if m.role != Role::Assistant {
        return Vec::new();
    }
    let calls = m.metadata.get(CALLS_KEY).and_then(Value::as_array);
    calls
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let text = |k: &str| c.get(k).and_then(Value::as_str);
            Some((text("call_id")?, text("name")?, text("arguments").unwrap_or("{}"), text("error")))
        })
        .collect()
}

/// The calls of the last message the client must answer (those the gateway
/// did not refuse); empty when the last message called no tool.
pub fn pending_calls(history: &[Message]) -> Vec<PendingCall> {
    let Some(last) = history.last() else { return Vec::new() };
    calls_of(last)
        .into_iter()
        .filter(|(.., error)| error.is_none())
        .map(|(call_id, name, arguments, _)| PendingCall {
            call_id: call_id.to_owned(),
            name: name.to_owned(),
            arguments: serde_json::from_str(arguments).unwrap_or(Value::Null),
        })
        .collect()
}

/// The turns of a message that called tools or answers them; `None` for any
/// other message. `next` is the message shown after it.
pub(super) fn turns_of(m: &Message, next: Option<&Message>) -> Option<Vec<Turn>> {
    let calls = calls_of(m);
    if !calls.is_empty() {
        let call = |&(id, name, arguments, _): &Stored<'_>| ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        };
        let mut turns = vec![Turn {
            role: TurnRole::Assistant,
            name: Some(m.sender.clone()),
            content: m.content.clone(),
            tool_calls: calls.iter().map(call).collect(),
            ..Turn::default()
        }];
        let refused = calls.iter().filter_map(|&(id, _, _, error)| Some(tool_turn(id, error?)));
        turns.extend(refused);
        let answered = next.map(answered_ids).unwrap_or_default();
        let unanswered = calls.iter().filter(|(id, .., error)| error.is_none() && !answered.contains(id));
        turns.extend(unanswered.map(|&(id, ..)| tool_turn(id, UNANSWERED)));
        return Some(turns);
    }
    let results = m.metadata.get(RESULTS_KEY).and_then(Value::as_array)?;
    let answer = |r: &Value| Some(tool_turn(r.get("call_id")?.as_str()?, r.get("content")?.as_str()?));
    (m.role == Role::HumanInput).then(|| results.iter().filter_map(answer).collect())
}

/// What the model is told of a call nobody answered.
const UNANSWERED: &str = "Error: the call was not answered (the run was cancelled).";

/// The call ids a message answers.
fn answered_ids(m: &Message) -> Vec<&str> {
    let results = m.metadata.get(RESULTS_KEY).and_then(Value::as_array);
    results.into_iter().flatten().filter_map(|r| r.get("call_id")?.as_str()).collect()
}

fn tool_turn(call_id: &str, content: &str) -> Turn {
    Turn {
        role: TurnRole::Tool,
        content: content.to_owned(),
        tool_call_id: Some(call_id.to_owned()),
        ..Turn::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::msg;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_left_unanswered_by_a_cancel_is_told_to_the_model_as_unanswered() {
        let calls = json!({"tool_calls": [
            {"call_id": "a", "name": "sh", "arguments": "{}"},
            {"call_id": "b", "name": "sh", "arguments": "{}", "error": "Error: bad."}
        ]});
        let call = msg("bot", Role::Assistant, "", calls);
        let turns = turns_of(&call, Some(&msg("user", Role::User, "again", json!({})))).unwrap();
        let tools: Vec<(Option<&str>, &str)> =
            turns[1..].iter().map(|t| (t.tool_call_id.as_deref(), t.content.as_str())).collect();
        assert_eq!(tools, [(Some("b"), "Error: bad."), (Some("a"), UNANSWERED)]);
        let answer =
            msg("user", Role::HumanInput, "ok", json!({"tool_results": [{"call_id": "a", "content": "ok"}]}));
        assert_eq!(turns_of(&call, Some(&answer)).unwrap().len(), 2);
        assert_eq!(turns_of(&answer, None).unwrap()[0].tool_call_id.as_deref(), Some("a"));
    }
}
