//! What a chat runs: the native flow definition (see `docs/flows.md`), its
//! validation, its termination rules and the FlowGen graph import.
//!
//! Pure data and pure functions: nothing here does I/O or runs user text.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

pub mod demo;
pub mod flowgen;
pub mod number;
pub mod termination;
pub mod tools;

pub use termination::Termination;
pub use tools::ToolSpec;

/// A multi-agent conversation recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Display name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Models the flow's agents refer to by name, on top of the gateway's
    /// configured model registry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelSpec>,
    /// The agents, in order (round robin follows this order).
    pub agents: Vec<AgentSpec>,
    /// How they converse.
    pub chat: ChatSpec,
}

/// A model, as a flow or the config defines it. Never holds a secret: the API
/// key is read from the environment variable `api_key_env` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// An OpenAI-compatible Chat Completions server.
    Openai {
        /// e.g. `http://127.0.0.1:11434/v1`
        base_url: String,
        /// e.g. `llama3.2`
        model: String,
        /// The environment variable holding the API key, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_env: Option<String>,
        /// Sampling temperature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temperature: Option<f32>,
        /// Completion token cap.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "number::optional")]
        max_tokens: Option<u32>,
        /// Total timeout for one call, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "number::optional")]
        timeout_secs: Option<u64>,
    },
    /// Deterministic replies for offline use and tests.
    Scripted {
        /// Replies, cycled per agent; empty with `echo` to repeat the last message.
        #[serde(default)]
        replies: Vec<String>,
        /// Reply with the last message's content.
        #[serde(default)]
        echo: bool,
        /// Pause between streamed chunks, in milliseconds (the offline demo uses
        /// ~25 so streaming is visible; tests use 0).
        #[serde(default, deserialize_with = "number::unsigned")]
        delay_ms: u64,
        /// Streaming pace in chunks per second, exact on average: chunk n is
        /// due `n / tokens_per_sec` after the first (0: unpaced). At most
        /// [`MAX_TOKENS_PER_SEC`]; not together with `delay_ms`.
        #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "number::unsigned")]
        tokens_per_sec: u32,
    },
}

/// The fastest pace a scripted model may be given, chunks per second.
pub const MAX_TOKENS_PER_SEC: u32 = 100_000;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ModelSpec {
    /// What is wrong with this model's own settings, as `(field, message)`
    /// (a flow prefixes `models.NAME.`; the config names its `[models]` entry).
    pub fn issues(&self) -> Vec<(&'static str, String)> {
        let mut issues = Vec::new();
        if let ModelSpec::Scripted { delay_ms, tokens_per_sec, .. } = self {
            if *tokens_per_sec > MAX_TOKENS_PER_SEC {
                issues.push(("tokens_per_sec", format!("must be at most {MAX_TOKENS_PER_SEC} (0: unpaced)")));
            }
            if *tokens_per_sec > 0 && *delay_ms > 0 {
                issues.push((
                    "tokens_per_sec",
                    "cannot be combined with delay_ms: set one pace or the other".to_owned(),
                ));
            }
        }
        issues
    }
}

/// The role an agent plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Stands for the human; asks them according to `human_input_mode`.
    UserProxy,
    /// Answers with a model.
    Assistant,
}

/// When a user proxy asks the human (AutoGen 0.2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HumanInputMode {
    /// Every turn.
    Always,
    /// Only on a termination message or when the auto-reply limit is hit.
    Terminate,
    /// Never.
    #[default]
    Never,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Unique within the flow.
    pub name: String,
    /// Its role.
    pub kind: AgentKind,
    /// The model it answers with (assistants; optional for a user proxy, whose
    /// auto reply is otherwise `default_auto_reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_message: Option<String>,
    /// What it does, for `auto` speaker selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// For user proxies.
    #[serde(default)]
    pub human_input_mode: HumanInputMode,
    /// How many replies in a row it makes without a human in between.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "number::optional")]
    pub max_consecutive_auto_reply: Option<u32>,
    /// A user proxy's auto reply when it has no model (default: `""`, which
    /// AutoGen sends as an empty message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_auto_reply: Option<String>,
    /// The agent's own termination rule (AutoGen's `is_termination_msg`):
    /// checked on the message it is about to answer. Absent: AutoGen's
    /// default, the content is exactly `TERMINATE`. Not allowed together with
    /// `chat.termination`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    /// Tools its model may call (AutoGen's `register_for_llm`): declared in
    /// its model requests; every call is answered by the client, never run
    /// by the gateway (see [`tools`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

impl AgentSpec {
    /// The rule this agent checks on the message it answers, when the flow
    /// has no flow-wide `chat.termination`.
    pub fn own_termination(&self) -> Termination {
        self.termination.clone().unwrap_or_else(Termination::autogen_default)
    }
}

/// Conversation shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    /// The user proxy and one assistant alternate.
    TwoAgent,
    /// A manager picks each next speaker.
    Group,
}

/// How a group picks its next speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerSelection {
    /// In agent order, after the last speaker.
    #[default]
    RoundRobin,
    /// Any agent but the last speaker.
    Random,
    /// A human picks through an input request listing the choices.
    Manual,
    /// A model picks from names and descriptions.
    Auto,
}

/// How the agents converse and when they stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSpec {
    /// Two agents or a group.
    pub kind: ChatKind,
    /// Groups only.
    #[serde(default)]
    pub speaker_selection: SpeakerSelection,
    /// Groups only: messages per run, the opening one included (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "number::optional")]
    pub max_round: Option<u32>,
    /// Flowgate's flow-wide rule: checked on every agent-written message (a
    /// group asks an `ALWAYS`/`TERMINATE` user proxy first). Absent: AutoGen's
    /// rules, each agent's own `termination` and, in a group, the manager's
    /// (the content is exactly `TERMINATE`) on every message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    /// For `auto` selection: the model that picks (default: the first
    /// assistant's model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector_model: Option<String>,
}

/// One thing wrong with a flow, naming where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowIssue {
    /// Where: `agents[2].model`, `chat.kind`, a FlowGen node id, …
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FlowIssue {
    /// A new issue.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl Flow {
    /// The agent of that name.
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The first user proxy: the human's seat (answers input requests).
    pub fn user_proxy(&self) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.kind == AgentKind::UserProxy)
    }

    /// Checks the flow is runnable. `known_models` are the gateway's configured
    /// model names; a flow may also use its own `models`.
    pub fn validate(&self, known_models: &HashSet<String>) -> Result<(), Vec<FlowIssue>> {
        let mut issues = Vec::new();
        if self.name.trim().is_empty() {
            issues.push(FlowIssue::new("name", "must not be empty"));
        }
        // A flow is tenant input: its own models carry no secret. Naming an
        // environment variable here would let any tenant send the gateway's
        // environment (its JWT secret, other keys) to a URL of its choosing.
        for (name, spec) in &self.models {
            for (field, message) in spec.issues() {
                issues.push(FlowIssue::new(format!("models.{name}.{field}"), message));
            }
            if let ModelSpec::Openai { api_key_env: Some(_), .. } = spec {
                issues.push(FlowIssue::new(
                    format!("models.{name}.api_key_env"),
                    "a flow's own model cannot name an API key variable; define keyed models in the gateway's [models] registry and refer to them by name",
                ));
            }
        }
        let mut seen = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if agent.name.trim().is_empty() {
                issues.push(FlowIssue::new(format!("agents[{i}].name"), "must not be empty"));
            } else if !seen.insert(agent.name.as_str()) {
                issues.push(FlowIssue::new(
                    format!("agents[{i}].name"),
                    format!("duplicate agent name `{}`", agent.name),
                ));
            }
            match (&agent.model, agent.kind) {
                (Some(m), _) if !self.models.contains_key(m) && !known_models.contains(m) => {
                    issues.push(FlowIssue::new(format!("agents[{i}].model"), format!("unknown model `{m}`")));
                }
                (None, AgentKind::Assistant) => {
                    issues.push(FlowIssue::new(format!("agents[{i}].model"), "an assistant needs a model"));
                }
                _ => {}
            }
            let path = format!("agents[{i}].tools");
            tools::validate(&agent.tools, &path, &mut issues);
            if !agent.tools.is_empty() && agent.model.is_none() {
                issues
                    .push(FlowIssue::new(path, "tools are declared to the agent's model: give it a `model`"));
            }
        }
        let proxies = self.agents.iter().filter(|a| a.kind == AgentKind::UserProxy).count();
        let assistants = self.agents.len() - proxies;
        match self.chat.kind {
            ChatKind::TwoAgent if proxies != 1 || assistants != 1 => issues.push(FlowIssue::new(
                "chat.kind",
                "a two_agent chat needs exactly one user_proxy and one assistant",
            )),
            ChatKind::Group if assistants == 0 || self.agents.len() < 2 => issues.push(FlowIssue::new(
                "chat.kind",
                "a group chat needs at least two agents, one of them an assistant",
            )),
            _ => {}
        }
        if self.chat.max_round == Some(0) {
            issues.push(FlowIssue::new("chat.max_round", "must be at least 1"));
        }
        if let Some(m) = &self.chat.selector_model
            && !self.models.contains_key(m)
            && !known_models.contains(m)
        {
            issues.push(FlowIssue::new("chat.selector_model", format!("unknown model `{m}`")));
        }
        if let Some(t) = &self.chat.termination {
            t.validate("chat.termination", &mut issues);
        }
        for (i, agent) in self.agents.iter().enumerate() {
            let path = format!("agents[{i}].termination");
            match (&agent.termination, &self.chat.termination) {
                (Some(_), Some(_)) => issues.push(FlowIssue::new(
                    path,
                    "an agent's own rule cannot be combined with the flow-wide chat.termination; use one or the other",
                )),
                (Some(t), None) => t.validate(&path, &mut issues),
                _ => {}
            }
        }
        if issues.is_empty() { Ok(()) } else { Err(issues) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flow_with(model: serde_json::Value) -> Flow {
        serde_json::from_value(json!({
            "name": "paced",
            "models": {"s": model},
            "agents": [{"name": "user", "kind": "user_proxy"}, {"name": "a", "kind": "assistant", "model": "s"}],
            "chat": {"kind": "two_agent"}
        }))
        .unwrap()
    }

    fn issue_paths(flow: &Flow) -> Vec<String> {
        flow.validate(&HashSet::new()).err().unwrap_or_default().into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn a_scripted_pace_parses_bounded_and_alone() {
        let paced = flow_with(json!({"provider": "scripted", "tokens_per_sec": 400.0}));
        assert!(matches!(paced.models["s"], ModelSpec::Scripted { tokens_per_sec: 400, delay_ms: 0, .. }));
        assert!(issue_paths(&paced).is_empty());
        let too_fast = flow_with(json!({"provider": "scripted", "tokens_per_sec": MAX_TOKENS_PER_SEC + 1}));
        assert_eq!(issue_paths(&too_fast), ["models.s.tokens_per_sec"]);
        let both = flow_with(json!({"provider": "scripted", "tokens_per_sec": 400, "delay_ms": 2}));
        assert_eq!(issue_paths(&both), ["models.s.tokens_per_sec"]);
        let bad: Result<Flow, _> = serde_json::from_value(json!({
            "name": "n", "models": {"s": {"provider": "scripted", "tokens_per_sec": -1}},
            "agents": [], "chat": {"kind": "two_agent"}
        }));
        assert!(bad.is_err(), "a negative pace does not parse");
    }

    #[test]
    fn an_unpaced_model_serializes_without_the_field() {
        let plain = flow_with(json!({"provider": "scripted", "delay_ms": 5}));
        let v = serde_json::to_value(&plain.models["s"]).unwrap();
        assert_eq!(v, json!({"provider": "scripted", "replies": [], "echo": false, "delay_ms": 5}));
    }
}
