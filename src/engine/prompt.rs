//! What a model is shown: the conversation from one agent's point of view, and
//! the `auto` speaker-selection prompt (AutoGen 0.2.35's wording, see
//! `selector`) with the reading of its answer.
//!
//! A human's `exit` answer ends the run and is never shown to a model (AutoGen
//! never stores nor sends it).
//!
//! Pure functions over the flow and the history.

use super::provider::{CompletionRequest, Turn, TurnRole};
use crate::flow::AgentSpec;
use crate::model::{Message, Role};

mod selector;
mod tools;

pub use selector::{Miss, pick, selector_calls, selector_request};
pub use tools::{CALLS_KEY, RESULTS_KEY, calls_of, pending_calls};

/// The request for `agent`'s next message: its system message first, then the
/// whole history, its own messages as `assistant`, everyone else's as `user`
/// with their name; tool calls and their results as OpenAI's `assistant`
/// `tool_calls` and `tool` messages (see `tools`), whoever's they are, as
/// AutoGen sends them. The agent's tools are declared with it.
pub fn agent_request(agent: &AgentSpec, history: &[Message]) -> CompletionRequest {
    let mut messages = Vec::with_capacity(history.len() + 1);
    if let Some(system) = agent.system_message.as_deref().filter(|s| !s.is_empty()) {
        messages.push(system_turn(system));
    }
    let shown: Vec<&Message> = shown(history).collect();
    for (i, m) in shown.iter().enumerate() {
        match tools::turns_of(m, shown.get(i + 1).copied()) {
            Some(turns) => messages.extend(turns),
            None => messages.push(turn_for(&agent.name, m)),
        }
    }
    CompletionRequest {
        agent: agent.name.clone(),
        turn: turns_written(&agent.name, history),
        messages,
        tools: agent.tools.clone(),
    }
}

/// How many messages `agent` has written in the chat (the provider's `turn`).
pub fn turns_written(agent: &str, history: &[Message]) -> u64 {
    history.iter().filter(|m| m.sender == agent && m.role == Role::Assistant).count() as u64
}

/// The messages a model is shown: all but a human's `exit`.
fn shown(history: &[Message]) -> impl Iterator<Item = &Message> {
    history.iter().filter(|m| !(m.role == Role::HumanInput && m.content == "exit"))
}

fn turn_for(agent: &str, m: &Message) -> Turn {
    let role = match m.role {
        Role::System => TurnRole::System,
        _ if m.sender == agent => TurnRole::Assistant,
        _ => TurnRole::User,
    };
    Turn {
        role,
        name: Some(m.sender.clone()),
        content: m.content.clone(),
        images: images_of(m),
        ..Turn::default()
    }
}

/// A user message's images (`metadata.images`, checked when it was posted).
fn images_of(m: &Message) -> Vec<String> {
    if m.role != Role::User {
        return Vec::new();
    }
    let urls = m.metadata.get("images").and_then(|v| v.as_array());
    urls.into_iter().flatten().filter_map(|u| u.as_str().map(str::to_owned)).collect()
}

fn system_turn(content: &str) -> Turn {
    Turn { role: TurnRole::System, content: content.to_owned(), ..Turn::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChatId, now};
    use serde_json::{Value, json};

    pub(super) fn msg(sender: &str, role: Role, content: &str, metadata: Value) -> Message {
        Message {
            id: "msg_x".into(),
            chat_id: ChatId::new(),
            seq: 1,
            run_id: None,
            role,
            sender: sender.into(),
            receiver: None,
            content: content.into(),
            created_at: now(),
            metadata,
        }
    }

    #[test]
    fn an_agent_sees_its_own_messages_as_assistant_and_others_by_name() {
        let agent: AgentSpec = serde_json::from_value(json!({
            "name": "writer", "kind": "assistant", "model": "m", "system_message": "Write."
        }))
        .unwrap();
        let history = vec![
            msg("user", Role::User, "hi", json!({})),
            msg("writer", Role::Assistant, "draft", json!({})),
            msg("critic", Role::Assistant, "meh", json!({})),
        ];
        let req = agent_request(&agent, &history);
        assert_eq!(req.turn, 1);
        let roles: Vec<TurnRole> = req.messages.iter().map(|t| t.role).collect();
        use TurnRole::*;
        assert_eq!(roles, vec![System, User, Assistant, User]);
        assert_eq!(req.messages[3].name.as_deref(), Some("critic"));
    }

    #[test]
    fn a_humans_exit_is_never_shown_to_a_model() {
        let agent: AgentSpec =
            serde_json::from_value(json!({"name": "writer", "kind": "assistant", "model": "m"})).unwrap();
        let history = vec![
            msg("user", Role::User, "hi", json!({})),
            msg("writer", Role::Assistant, "a", json!({})),
            msg("user", Role::HumanInput, "exit", json!({})),
            msg("user", Role::User, "again", json!({})),
        ];
        let contents: Vec<String> =
            agent_request(&agent, &history).messages.into_iter().map(|t| t.content).collect();
        assert_eq!(contents, vec!["hi", "a", "again"]);
    }
}
