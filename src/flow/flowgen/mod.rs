//! FlowGen graph import: a React Flow graph saved by FlowGen's editor (or by
//! Agentok, its renamed successor) becomes a native [`Flow`].
//!
//! What has a native meaning is mapped; the editor's `is_termination_msg`
//! lambda becomes a declarative rule when it is the editor's pattern; anything
//! that would run code (other lambdas, code execution, extension agents),
//! retrieval and unsupported agent classes are reported, every one of them at
//! once, each naming its node and field (`nodes[user-1].data.is_termination_msg`).
//! The mapping table is in `docs/flows.md`.
//!
//! Pure: nothing here does I/O or runs text from the graph.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{AgentKind, AgentSpec, ChatKind, ChatSpec, Flow, FlowIssue, HumanInputMode, SpeakerSelection};

mod agentok;
mod agents;
mod classic;
mod graph;
pub mod lambda;
mod settings;

use agents::{Dialect, Mapped};
use graph::{Graph, Node, Report};
use settings::{GroupSettings, Settings};

/// The models an import may choose from: the gateway's configured model names
/// and the one to use when a graph asks for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCatalog {
    /// Model names the gateway knows.
    pub known: HashSet<String>,
    /// The model for graphs whose `filter_dict` is empty or absent.
    pub default: Option<String>,
}

impl ModelCatalog {
    /// A catalog of these names, with this default.
    pub fn new<I, S>(known: I, default: Option<&str>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { known: known.into_iter().map(Into::into).collect(), default: default.map(str::to_owned) }
    }
}

/// A successful import: the native flow, and what was not carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The native flow; it passes [`Flow::validate`] with the catalog's models.
    pub flow: Flow,
    /// Settings that were ignored or could not be applied, naming where.
    pub warnings: Vec<FlowIssue>,
}

/// Whether a `POST /flows` body is a React Flow graph (`nodes` and `edges`
/// arrays, bare or as the `flow` of a FlowGen flow record) rather than a
/// native flow.
pub fn is_graph(value: &Value) -> bool {
    graph::graph_body(value).is_some()
}

/// Imports a FlowGen or Agentok graph. On failure, every problem found is
/// returned at once.
pub fn import(graph: &Value, models: &ModelCatalog) -> Result<Imported, Vec<FlowIssue>> {
    let Some((body, record_name)) = graph::graph_body(graph) else {
        return Err(vec![FlowIssue::new(
            "nodes",
            "not a FlowGen graph: expected `nodes` and `edges` arrays",
        )]);
    };
    let mut r = Report::default();
    let in_record = graph.as_object().is_some_and(|o| !std::ptr::eq(o, body));
    if let Some(name) = graph.get("name").filter(|n| in_record && record_name.is_none() && !n.is_null()) {
        r.issue("name", format!("the flow record's name must be a string, not {name}"));
    }
    let g = Graph::parse(body, record_name, &mut r);
    let dialect = if agentok::is_agentok(&g) { Dialect::Agentok } else { Dialect::FlowGen };
    check_node_types(&g, &mut r);
    let settings = settings::flow_settings(&g, models, &mut r);
    let mapped: HashMap<&str, Mapped> = g
        .nodes
        .iter()
        .filter(|n| agents::role(n).is_some())
        .map(|n| {
            let m = agents::map(n, dialect, settings.model.as_deref(), &mut r);
            (n.id.as_str(), m)
        })
        .collect();
    let draft = match dialect {
        Dialect::FlowGen => classic::shape(&g, &mut r),
        Dialect::Agentok => agentok::shape(&g, &mut r),
    };
    let Some(draft) = draft else {
        return Err(dedup(r.issues));
    };
    warn_unused(&g, &draft, &mut r);
    warn_idle_opener(&draft, &mapped, &mut r);
    warn_idle_rule(&draft, &mapped, &mut r);
    let flow = assemble(&settings, &draft, &mapped);
    if let Err(issues) = flow.validate(&models.known) {
        let translated = issues.into_iter().filter_map(|i| translate(i, &draft, &settings));
        r.issues.extend(translated);
    }
    if r.issues.is_empty() { Ok(Imported { flow, warnings: r.warnings }) } else { Err(dedup(r.issues)) }
}

/// The conversation a graph describes, as nodes.
#[derive(Debug)]
struct Draft<'g> {
    /// The agents, in flow order (round robin follows it).
    members: Vec<&'g Node>,
    /// The group node and its settings, for a group chat.
    group: Option<(&'g Node, GroupSettings)>,
    /// The agent that opens the chat with the human's message (a group member
    /// or not).
    opener: &'g Node,
}

/// Node types an import understands (some only to reject them by name).
const NODE_TYPES: [&str; 11] = [
    "assistant",
    "user",
    "groupchat",
    "config",
    "note",
    "custom_conversable",
    "initializer",
    "conversable",
    "gpt_assistant",
    "retrieve_assistant",
    "retrieve_user",
];

fn check_node_types(g: &Graph, r: &mut Report) {
    for node in &g.nodes {
        let path = format!("{}.type", node.at());
        if node.kind == "nestedchat" {
            r.issue(path, "`nestedchat` nodes are not supported: nested chats");
        } else if !NODE_TYPES.contains(&node.kind.as_str()) {
            r.issue(path, format!("unknown node type `{}`", node.kind));
        }
    }
}

/// Agents and groups outside the conversation are left out, and said so.
fn warn_unused(g: &Graph, draft: &Draft, r: &mut Report) {
    let used = |n: &Node| {
        draft.members.iter().any(|m| m.id == n.id)
            || draft.opener.id == n.id
            || draft.group.is_some_and(|(group, _)| group.id == n.id)
    };
    for node in &g.nodes {
        if (agents::role(node).is_some() || node.kind == "groupchat") && !used(node) {
            r.warn(node.at(), "not part of the conversation; ignored");
        }
    }
}

/// An opener outside the group is never asked anything.
fn warn_idle_opener(draft: &Draft, mapped: &HashMap<&str, Mapped>, r: &mut Report) {
    let opener = draft.opener;
    let joined = draft.members.iter().any(|m| m.id == opener.id);
    let asks =
        mapped.get(opener.id.as_str()).is_some_and(|m| m.spec.human_input_mode != HumanInputMode::Never);
    if !joined && asks {
        r.warn(
            opener.field("human_input_mode"),
            "has no effect: this user proxy only opens the chat and is not a group \
             member, so the group never asks the human (FlowGen: set involve_user; \
             Agentok: place it in the group)",
        );
    }
}

/// The native flow, with AutoGen's termination: every agent keeps its own
/// rule, and a group's manager (FlowGen gave it none) ends on exactly
/// `TERMINATE`, so `chat.termination` stays unset.
fn assemble(settings: &Settings, draft: &Draft, mapped: &HashMap<&str, Mapped>) -> Flow {
    let of = |n: &Node| mapped.get(n.id.as_str());
    let (kind, speaker_selection, max_round) = match draft.group {
        Some((_, s)) => (ChatKind::Group, s.speaker_selection, Some(s.max_round)),
        None => (ChatKind::TwoAgent, SpeakerSelection::default(), None),
    };
    let chat = ChatSpec { kind, speaker_selection, max_round, termination: None, selector_model: None };
    Flow {
        name: settings.name.clone(),
        description: settings.description.clone(),
        models: Default::default(),
        agents: draft.members.iter().filter_map(|n| of(n)).map(|m| with_tools(m, settings)).collect(),
        chat,
    }
}

/// An assistant gets the config's functions as tools (FlowGen passed one
/// `llm_config` to every assistant); a user proxy has no model to declare
/// them to (FlowGen registered them for execution there, which here is the
/// client's part).
fn with_tools(m: &Mapped, settings: &Settings) -> AgentSpec {
    let mut spec = m.spec.clone();
    if spec.kind == AgentKind::Assistant && spec.model.is_some() {
        spec.tools = settings.tools.clone();
    }
    spec
}

/// An opener outside the group never checks a message: its rule has no
/// effect (in AutoGen as here).
fn warn_idle_rule(draft: &Draft, mapped: &HashMap<&str, Mapped>, r: &mut Report) {
    let opener = draft.opener;
    let joined = draft.members.iter().any(|m| m.id == opener.id);
    let ruled = mapped.get(opener.id.as_str()).is_some_and(|m| m.spec.termination.is_some());
    if !joined && ruled {
        let key =
            if opener.get("termination_msg").is_some() { "termination_msg" } else { "is_termination_msg" };
        r.warn(
            opener.field(key),
            "has no effect: this user proxy only opens the group and never answers in it; \
             the group ends on a message that is exactly `TERMINATE` (AutoGen's manager default), \
             on a member's own rule when that member is to speak, or at max_round",
        );
    }
}

/// Renames a validation issue's path from the native flow to the graph.
/// Issues about a model that could not be chosen are already reported.
fn translate(issue: FlowIssue, draft: &Draft, settings: &Settings) -> Option<FlowIssue> {
    let FlowIssue { path, message } = issue;
    if let Some((index, field)) = path.strip_prefix("agents[").and_then(|rest| rest.split_once("].")) {
        if field == "model" {
            return settings.model.is_some().then(|| FlowIssue::new(settings.model_path.clone(), message));
        }
        // Every assistant has the config's functions: report each once, there.
        if let Some(rest) = field.strip_prefix("tools") {
            return Some(FlowIssue::new(format!("{}{rest}", settings.functions_path), message));
        }
        let node = index.parse::<usize>().ok().and_then(|i| draft.members.get(i));
        if let Some(node) = node {
            return Some(FlowIssue::new(node.field(field), message));
        }
    }
    if let Some((group, _)) = draft.group
        && path == "chat.max_round"
    {
        return Some(FlowIssue::new(group.field("max_round"), message));
    }
    if path == "chat.kind" {
        let kinds: Vec<&str> = draft
            .members
            .iter()
            .map(|n| match agents::role(n) {
                Some(AgentKind::UserProxy) => "user proxy",
                _ => "assistant",
            })
            .collect();
        let message = format!("{message} (the graph gives: {})", kinds.join(", "));
        return Some(FlowIssue::new(path, message));
    }
    Some(FlowIssue::new(path, message))
}

fn dedup(issues: Vec<FlowIssue>) -> Vec<FlowIssue> {
    let mut out: Vec<FlowIssue> = Vec::with_capacity(issues.len());
    for issue in issues {
        if !out.contains(&issue) {
            out.push(issue);
        }
    }
    out
}
