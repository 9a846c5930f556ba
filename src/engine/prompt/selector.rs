//! `auto` speaker selection as AutoGen 0.2.35 asks it: the role-play system
//! message, the group's messages (each as `user` with its sender's name), the
//! final question as `system` from `checking_agent`; after an answer that
//! names no single agent, that answer (as `assistant`,
//! `speaker_selection_agent`) and AutoGen's corrective message. The recorded
//! templates are in `tests/fixtures/autogen_golden/`.
//!
//! Pure functions over the flow and the history.

use serde_json::Value;

use super::{Turn, TurnRole, shown, turn_for};
use crate::engine::policy::MANAGER;
use crate::engine::provider::CompletionRequest;
use crate::flow::{AgentKind, AgentSpec, Flow, HumanInputMode};
use crate::model::Message;

/// Why a selector answer chose nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// It named no candidate.
    NoName,
    /// It named several.
    Several,
}

const CHECKING_AGENT: &str = "checking_agent";
const SELECTION_AGENT: &str = "speaker_selection_agent";

const RULES: &str = "To determine the speaker use these prioritised rules:\n    \
1. If the context refers to themselves as a speaker e.g. \"As the...\" , choose that speaker's name\n    \
2. If it refers to the \"next\" speaker name, choose that name\n    \
3. Otherwise, choose the first provided speaker's name in the context\n    \
The names are case-sensitive and should not be abbreviated or changed.";

/// The selector's request after `failures` (earlier answers of this
/// selection, oldest first, and what was wrong with each).
pub fn selector_request(
    flow: &Flow,
    candidates: &[String],
    history: &[Message],
    failures: &[(String, Miss)],
) -> CompletionRequest {
    let agents: Vec<&AgentSpec> = candidates.iter().filter_map(|name| flow.agent(name)).collect();
    let roles: Vec<String> =
        agents.iter().map(|a| format!("{}: {}", a.name, describe(a)).trim().to_owned()).collect();
    let list = python_list(candidates);
    let mut messages = vec![system(
        None,
        format!(
            "You are in a role play game. The following roles are available:\n                {}.\n                \
             Read the following conversation.\n                Then select the next role from {list} to play. \
             Only return the role.",
            roles.join("\n")
        ),
    )];
    // Text only: the selector picks a speaker, and its model may not read images.
    messages.extend(shown(history).map(|m| Turn { images: Vec::new(), ..turn_for(MANAGER, m) }));
    messages.push(system(
        Some(CHECKING_AGENT),
        format!("Read the above conversation. Then select the next role from {list} to play. Only return the role."),
    ));
    for (answer, miss) in failures {
        messages.push(Turn {
            role: TurnRole::Assistant,
            name: Some(SELECTION_AGENT.to_owned()),
            content: answer.clone(),
            ..Turn::default()
        });
        messages.push(system(Some(CHECKING_AGENT), correction(*miss, &list)));
    }
    CompletionRequest {
        agent: MANAGER.to_owned(),
        turn: selector_calls(history) + failures.len() as u64,
        messages,
        tools: Vec::new(),
    }
}

fn system(name: Option<&str>, content: String) -> Turn {
    Turn { role: TurnRole::System, name: name.map(str::to_owned), content, ..Turn::default() }
}

fn correction(miss: Miss, list: &str) -> String {
    match miss {
        Miss::Several => format!(
            "You provided more than one name in your text, please return just the name of the next speaker. {RULES}\n    \
             Respond with ONLY the name of the speaker and DO NOT provide a reason."
        ),
        Miss::NoName => format!(
            "You didn't choose a speaker. As a reminder, {}\n    The only names that are accepted are {list}.\n    \
             Respond with ONLY the name of the speaker and DO NOT provide a reason.",
            RULES.replacen("To determine", "to determine", 1)
        ),
    }
}

/// Python's `repr` of a list of names: `['a', 'b']`.
fn python_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// What the selector reads about an agent: its description, else (AutoGen's
/// defaults) a user proxy's per-mode text or an assistant's system message.
fn describe(agent: &AgentSpec) -> &str {
    if let Some(d) = agent.description.as_deref() {
        return d;
    }
    match (agent.kind, agent.human_input_mode) {
        (AgentKind::UserProxy, HumanInputMode::Always) => {
            "An attentive HUMAN user who can answer questions about the task, and can perform tasks such as \
             running Python code or inputting command line commands at a Linux terminal and reporting back \
             the execution results."
        }
        (AgentKind::UserProxy, HumanInputMode::Terminate) => {
            "A user that can run Python code or input command line commands at a Linux terminal and report \
             back the execution results."
        }
        (AgentKind::UserProxy, HumanInputMode::Never) => {
            "A computer terminal that performs no other action than running Python scripts (provided to it \
             quoted in ```python code blocks), or sh shell scripts (provided to it quoted in ```sh code blocks)."
        }
        (AgentKind::Assistant, _) => agent.system_message.as_deref().unwrap_or(""),
    }
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

/// The candidate a selector answer names, as AutoGen reads it: the candidates
/// mentioned as whole words (a name's underscores may be spaces or `\_`);
/// exactly one is a choice.
pub fn pick(answer: &str, candidates: &[String]) -> Result<String, Miss> {
    let named: Vec<&String> = candidates
        .iter()
        .filter(|c| {
            mentions(answer, c)
                || (c.contains('_')
                    && (mentions(answer, &c.replace('_', " ")) || mentions(answer, &c.replace('_', "\\_"))))
        })
        .collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Miss::NoName),
        _ => Err(Miss::Several),
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
    use super::super::tests::msg;
    use super::*;
    use crate::model::Role;
    use serde_json::json;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_selector_answer_must_name_exactly_one_candidate() {
        let c = names(&["writer", "critic", "data_analyst"]);
        assert_eq!(pick(" critic\n", &c).as_deref(), Ok("critic"));
        assert_eq!(pick("I pick the writer.", &c).as_deref(), Ok("writer"));
        assert_eq!(pick("data analyst", &c).as_deref(), Ok("data_analyst"));
        assert_eq!(pick("data\\_analyst", &c).as_deref(), Ok("data_analyst"));
        assert_eq!(pick("writer, then writer", &c).as_deref(), Ok("writer"));
        assert_eq!(pick("writer or critic", &c), Err(Miss::Several));
        assert_eq!(pick("typewriters", &c), Err(Miss::NoName));
    }

    #[test]
    fn a_retry_shows_the_failed_answer_and_autogens_correction() {
        let flow: Flow = serde_json::from_value(json!({
            "name": "f",
            "agents": [{"name": "user", "kind": "user_proxy"},
                       {"name": "writer", "kind": "assistant", "model": "m", "description": "Writes."}],
            "chat": {"kind": "group"}
        }))
        .unwrap();
        let history = vec![msg("user", Role::User, "hi", json!({}))];
        let failures = [("nobody".to_owned(), Miss::NoName), ("user and writer".to_owned(), Miss::Several)];
        let req = selector_request(&flow, &names(&["user", "writer"]), &history, &failures);
        assert_eq!(req.turn, 2);
        assert!(req.messages[0].content.contains("\nwriter: Writes..\n"), "{}", req.messages[0].content);
        assert!(req.messages[0].content.contains("user: A computer terminal"));
        assert!(req.messages[0].content.ends_with("from ['user', 'writer'] to play. Only return the role."));
        let shape: Vec<(TurnRole, Option<&str>)> =
            req.messages.iter().map(|t| (t.role, t.name.as_deref())).collect();
        use TurnRole::*;
        assert_eq!(
            shape,
            vec![
                (System, None),
                (User, Some("user")),
                (System, Some(CHECKING_AGENT)),
                (Assistant, Some(SELECTION_AGENT)),
                (System, Some(CHECKING_AGENT)),
                (Assistant, Some(SELECTION_AGENT)),
                (System, Some(CHECKING_AGENT)),
            ]
        );
        assert!(req.messages[4].content.starts_with("You didn't choose a speaker."));
        assert!(req.messages[4].content.contains("accepted are ['user', 'writer']."));
        assert!(req.messages[6].content.starts_with("You provided more than one name"));
    }

    #[test]
    fn selector_turns_resume_from_recorded_attempts() {
        let history = vec![
            msg("writer", Role::Assistant, "a", json!({"selected_by": "auto", "attempts": 2})),
            msg("critic", Role::Assistant, "b", json!({"selected_by": "round_robin"})),
        ];
        assert_eq!(selector_calls(&history), 2);
    }
}
