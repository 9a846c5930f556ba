//! The conversation shape of a FlowGen graph: edges point from an agent to
//! the user proxy. The main user proxy is the `user` node no edge leaves; the
//! node with an edge into it is the first converser; a `groupchat` first
//! converser gathers the nodes with an edge into it (FlowGen's code generator
//! took the first match everywhere; so does this).
//!
//! Pure: touches nothing.

use super::Draft;
use super::agents::role;
use super::graph::{Graph, Node, Report};
use super::settings::group_settings;
use crate::flow::AgentKind;

/// The conversation, or `None` (reported) when the graph has no usable shape.
pub(super) fn shape<'g>(g: &'g Graph, r: &mut Report) -> Option<Draft<'g>> {
    let Some(user) = g.of_kind("user").find(|n| !g.is_source(&n.id)) else {
        r.issue(
            "nodes",
            "no user proxy: a FlowGen flow needs a `user` node that no edge leaves \
             (edges point from the agents to the user proxy)",
        );
        return None;
    };
    let Some(first) = g.sources_into(&user.id).into_iter().next() else {
        r.issue(
            user.at(),
            "nothing converses with the user proxy: draw an edge from an assistant or \
             the group chat into it",
        );
        return None;
    };
    if first.kind == "groupchat" {
        return group(g, user, first, r);
    }
    if role(first) != Some(AgentKind::Assistant) {
        r.issue(
            first.at(),
            format!(
                "a `{}` node cannot be the first converser: draw the edge into the user \
                 proxy from an assistant or a group chat",
                first.kind
            ),
        );
        return None;
    }
    Some(Draft { members: vec![user, first], group: None, opener: user })
}

fn group<'g>(g: &'g Graph, user: &'g Node, group: &'g Node, r: &mut Report) -> Option<Draft<'g>> {
    let settings = group_settings(group, r);
    let mut members = Vec::new();
    for node in g.sources_into(&group.id) {
        if role(node).is_some() {
            members.push(node);
        } else {
            r.issue(node.at(), format!("a `{}` node cannot join a group chat", node.kind));
        }
    }
    if members.is_empty() {
        r.issue(group.at(), "the group chat has no members: draw edges from the agents into it");
        return None;
    }
    if settings.involve_user {
        members.push(user);
    }
    Some(Draft { members, group: Some((group, settings)), opener: user })
}
