//! The conversation shape of an Agentok graph (FlowGen renamed): an
//! `initializer` node first, `converse` edges pointing forward from it to the
//! first converser and on to its partner, groups nesting their members with
//! `parentId`. Edge data (`max_turns`, `tools`, `enable_rag`, …) is checked
//! here too.
//!
//! Pure: touches nothing.

use super::Draft;
use super::agents::role;
use super::graph::{Graph, Node, Report};
use super::settings::group_settings;

/// Whether the graph is Agentok's: it has an initializer or `converse` edges.
pub(super) fn is_agentok(g: &Graph) -> bool {
    g.of_kind("initializer").next().is_some() || g.edges.iter().any(|e| e.kind.as_deref() == Some("converse"))
}

/// The conversation, or `None` (reported) when the graph has no usable shape.
pub(super) fn shape<'g>(g: &'g Graph, r: &mut Report) -> Option<Draft<'g>> {
    check_edges(g, r);
    let mut initializers = g.of_kind("initializer");
    let Some(init) = initializers.next() else {
        r.issue("nodes", "no initializer: an Agentok flow starts at an `initializer` node");
        return None;
    };
    for extra in initializers {
        r.warn(extra.at(), "a second initializer; ignored");
    }
    let Some(first) = g.targets_of(&init.id).into_iter().next() else {
        r.issue(init.at(), "no edge leaves the initializer: connect it to the first agent");
        return None;
    };
    if role(first).is_none() {
        r.issue(first.at(), format!("the initializer must lead to an agent, not a `{}` node", first.kind));
        return None;
    }
    let targets = g.targets_of(&first.id);
    let partner = match targets.as_slice() {
        [] => {
            r.issue(
                first.at(),
                "nothing to converse with: draw a converse edge from it to an agent or a group",
            );
            return None;
        }
        [one] => *one,
        _ => {
            r.issue(
                first.at(),
                "sequential chats (converse edges from the first agent to several \
                 partners) are not supported",
            );
            return None;
        }
    };
    match partner.kind.as_str() {
        "groupchat" => group(g, first, partner, r),
        _ if role(partner).is_some() => {
            Some(Draft { members: vec![first, partner], group: None, opener: first })
        }
        // Nested chats are reported with the node types.
        "nestedchat" => None,
        kind => {
            r.issue(partner.at(), format!("a `{kind}` node cannot converse"));
            None
        }
    }
}

/// Members are the agents nested in the group (`parentId`), in node order;
/// the first converser opens the chat but joins only if nested too.
fn group<'g>(g: &'g Graph, first: &'g Node, group: &'g Node, r: &mut Report) -> Option<Draft<'g>> {
    let settings = group_settings(group, r);
    let members: Vec<&Node> = g
        .nodes
        .iter()
        .filter(|n| n.parent.as_deref() == Some(group.id.as_str()) && role(n).is_some())
        .collect();
    if members.is_empty() {
        r.issue(group.at(), "the group has no members: place the agents inside it");
        return None;
    }
    Some(Draft { members, group: Some((group, settings)), opener: first })
}

/// Tools and retrieval on edges are unsupported; chat options the native flow
/// has no place for are warned about.
fn check_edges(g: &Graph, r: &mut Report) {
    for edge in &g.edges {
        match edge.get("tools") {
            None => {}
            Some(serde_json::Value::Array(t)) if t.is_empty() => {}
            Some(_) => r.issue(edge.field("tools"), "tools are not supported: Flowgate never runs flow code"),
        }
        if edge.get("enable_rag") == Some(&serde_json::Value::Bool(true)) {
            r.issue(edge.field("enable_rag"), "retrieval (RAG) is not supported");
        }
        for (key, why) in IGNORED_OPTIONS {
            if edge.get(key).is_some() {
                r.warn(edge.field(key), why);
            }
        }
    }
    for init in g.of_kind("initializer") {
        for (key, why) in IGNORED_OPTIONS {
            if init.get(key).is_some() {
                r.warn(init.field(key), why);
            }
        }
    }
}

/// Chat options of Agentok edges and initializers with no native place.
const IGNORED_OPTIONS: [(&str, &str); 3] = [
    (
        "max_turns",
        "not supported; ignored: the native flow stops on its termination rule, \
         max_consecutive_auto_reply and max_round",
    ),
    ("summary_method", "not supported; ignored: the native flow keeps the whole conversation"),
    ("message", "ignored: the chat opens with the human's message"),
];
