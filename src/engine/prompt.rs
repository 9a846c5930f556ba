//! What a model is shown: the conversation from one agent's point of view, and
//! the `auto` speaker-selection prompt (AutoGen 0.2's role-play wording) with
//! the reading of its answer.
//!
//! Pure functions over the flow and the history.

use serde_json::Value;

use super::policy::MANAGER;
use super::provider::{CompletionRequest, Turn, TurnRole};
use crate::flow::{AgentSpec, Flow};
use crate::model::{Message, Role};

/// The request for `agent`'s next message: its system message first, then the
/// whole history, its own messages as `assistant`, everyone else's as `user`
/// with their name.
pub fn agent_request(agent: &AgentSpec, history: &[Message]) -> CompletionRequest {
    let mut messages = Vec::with_capacity(history.len() + 1);
    if let Some(system) = agent.system_message.as_deref().filter(|s| !s.is_empty()) {
        messages.push(system_turn(system));
    }
    messages.extend(history.iter().map(|m| turn_for(&agent.name, m)));
    CompletionRequest { agent: agent.name.clone(), turn: turns_written(&agent.name, history), messages }
}

/// How many messages `agent` has written in the chat (the provider's `turn`).
pub fn turns_written(agent: &str, history: &[Message]) -> u64 {
    history.iter().filter(|m| m.sender == agent && m.role == Role::Assistant).count() as u64
}

fn turn_for(agent: &str, m: &Message) -> Turn {
    let role = match m.role {
        Role::System => TurnRole::System,
        _ if m.sender == agent => TurnRole::Assistant,
        _ => TurnRole::User,
    };
    Turn { role, name: Some(m.sender.clone()), content: m.content.clone() }
}

fn system_turn(content: &str) -> Turn {
    Turn { role: TurnRole::System, name: None, content: content.to_owned() }
}

/// The selector's request for attempt `attempt` (0-based): the roles, the
/// conversation, and the question; a retry also says what was wrong.
pub fn selector_request(
    flow: &Flow,
    candidates: &[String],
    history: &[Message],
    attempt: u32,
) -> CompletionRequest {
    let roles: Vec<String> = candidates
        .iter()
        .filter_map(|name| flow.agent(name))
        .map(|a| format!("{}: {}", a.name, describe(a)))
        .collect();
    let list = format!("[{}]", candidates.join(", "));
    let mut messages = vec![system_turn(&format!(
        "You are in a role play game. The following roles are available:\n{}.\n\n\
         Read the following conversation.\nThen select the next role from {list} to play. \
         Only return the role.",
        roles.join("\n")
    ))];
    messages.extend(history.iter().map(|m| turn_for(MANAGER, m)));
    messages.push(Turn {
        role: TurnRole::User,
        name: None,
        content: format!(
            "Read the above conversation. Then select the next role from {list} to play. \
             Only return the role."
        ),
    });
    if attempt > 0 {
        messages.push(Turn {
            role: TurnRole::User,
            name: None,
            content: format!(
                "Your last answer did not name exactly one role. Answer with one name from {list} and nothing else."
            ),
        });
    }
    CompletionRequest {
        agent: MANAGER.to_owned(),
        turn: selector_calls(history) + u64::from(attempt),
        messages,
    }
}

fn describe(agent: &AgentSpec) -> &str {
    agent.description.as_deref().or(agent.system_message.as_deref()).unwrap_or("")
}

/// How many selector answers the chat asked for before (from the `attempts`
/// its auto-selected messages record), so a scripted selector resumes its list.
pub fn selector_calls(history: &[Message]) -> u64 {
    history
        .iter()
        .filter(|m| m.metadata.get("selected_by") == Some(&Value::from("auto")))
        .filter_map(|m| m.metadata.get("attempts").and_then(Value::as_u64))
        .sum()
}

/// The candidate a selector answer names: an exact name, else the only
/// candidate mentioned as a whole word (underscores may be spaces). `None` when
/// it names none or several.
pub fn pick(answer: &str, candidates: &[String]) -> Option<String> {
    let answer = answer.trim();
    if let Some(exact) = candidates.iter().find(|c| c.as_str() == answer) {
        return Some(exact.clone());
    }
    let mut named = candidates
        .iter()
        .filter(|c| mentions(answer, c) || (c.contains('_') && mentions(answer, &c.replace('_', " "))));
    match (named.next(), named.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    }
}

/// Whether `name` occurs in `text` not inside a longer word.
fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChatId, now};
    use serde_json::json;

    fn msg(sender: &str, role: Role, content: &str, metadata: Value) -> Message {
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

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
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
    fn a_selector_answer_must_name_exactly_one_candidate() {
        let c = names(&["writer", "critic", "data_analyst"]);
        assert_eq!(pick(" critic\n", &c).as_deref(), Some("critic"));
        assert_eq!(pick("I pick the writer.", &c).as_deref(), Some("writer"));
        assert_eq!(pick("data analyst", &c).as_deref(), Some("data_analyst"));
        assert_eq!(pick("writer or critic", &c), None);
        assert_eq!(pick("typewriters", &c), None);
        assert_eq!(pick("nobody", &c), None);
    }

    #[test]
    fn selector_turns_resume_from_recorded_attempts() {
        let history = vec![
            msg("writer", Role::Assistant, "a", json!({"selected_by": "auto", "attempts": 2})),
            msg("critic", Role::Assistant, "b", json!({"selected_by": "round_robin"})),
        ];
        assert_eq!(selector_calls(&history), 2);
        let flow: Flow = serde_json::from_value(json!({
            "name": "f", "agents": [{"name": "writer", "kind": "assistant", "model": "m"}],
            "chat": {"kind": "group"}
        }))
        .unwrap();
        let req = selector_request(&flow, &names(&["writer"]), &history, 1);
        assert_eq!(req.turn, 3);
        assert!(req.messages[0].content.contains("writer: "));
    }
}
