//! The operator's caps on every run (`[runs]` in the config): no flow may ask
//! for more rounds or consecutive auto replies than they allow. A flow over a
//! cap is registered clamped, with a warning naming the field; a flow stored
//! before the cap was lowered is clamped again when a run loads it, so the
//! run ends at the cap with the policy's usual stop reason (`max_round`,
//! `max_consecutive_auto_reply`).
//!
//! Pure: changes the flow it is given, touches nothing else.

use crate::config::RunLimits;
use crate::flow::{AgentKind, ChatKind, Flow, FlowIssue};

/// A group's `max_round` when the flow names none (see `policy`).
const GROUP_DEFAULT_ROUNDS: u32 = 20;
/// A user proxy's `max_consecutive_auto_reply` when the flow names none.
const PROXY_DEFAULT_AUTO_REPLIES: u32 = 100;

/// Lowers the values `flow` sets over the caps (at registration: what is
/// stored is what will run); one warning per value lowered.
pub fn clamp(flow: &mut Flow, caps: &RunLimits) -> Vec<FlowIssue> {
    lower(flow, caps, false)
}

/// Like [`clamp`], and also a default over a cap (an assistant's unlimited
/// auto replies): what a run uses.
pub fn bound(flow: &mut Flow, caps: &RunLimits) -> Vec<FlowIssue> {
    lower(flow, caps, true)
}

fn lower(flow: &mut Flow, caps: &RunLimits, defaults: bool) -> Vec<FlowIssue> {
    let mut warnings = Vec::new();
    let group = flow.chat.kind == ChatKind::Group;
    let group_default = (defaults && group).then_some(GROUP_DEFAULT_ROUNDS);
    if let Some(asked) = clamp_one(&mut flow.chat.max_round, group_default, caps.max_round) {
        warnings.push(lowered("chat.max_round", asked, caps.max_round, "runs.max_round"));
    }
    for (i, agent) in flow.agents.iter_mut().enumerate() {
        // Assistants default to unlimited auto replies: the cap bounds them too.
        let default = match agent.kind {
            _ if !defaults => None,
            AgentKind::UserProxy => Some(PROXY_DEFAULT_AUTO_REPLIES),
            AgentKind::Assistant => Some(u32::MAX),
        };
        let cap = caps.max_consecutive_auto_reply;
        if let Some(asked) = clamp_one(&mut agent.max_consecutive_auto_reply, default, cap) {
            let path = format!("agents[{i}].max_consecutive_auto_reply");
            warnings.push(lowered(&path, asked, cap, "runs.max_consecutive_auto_reply"));
        }
    }
    warnings
}

/// Sets `value` to `cap` where it (or its default) is over it; returns what
/// the flow itself asked for when that was over.
fn clamp_one(value: &mut Option<u32>, default: Option<u32>, cap: u32) -> Option<u32> {
    let asked = *value;
    match asked.or(default) {
        Some(effective) if effective > cap => {
            *value = Some(cap);
            asked
        }
        _ => None,
    }
}

fn lowered(path: &str, asked: u32, cap: u32, setting: &str) -> FlowIssue {
    FlowIssue::new(path, format!("{asked} is over the operator's cap ({setting} = {cap}); lowered to {cap}"))
}
