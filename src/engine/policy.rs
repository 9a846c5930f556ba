//! The next step of a run, as a pure function of stored data: the flow, the
//! chat's history, the engine's [`RunState`] and the human's reply. A restarted
//! process (or a re-started task) recomputes the same step; a step whose message
//! was not committed simply runs again.
//!
//! Semantics (AutoGen 0.2.35, as FlowGen flows ran):
//!
//! - A run starts after the user's message (role `user`) is stored; the user
//!   proxy ([`Flow::user_proxy`]) is the human's seat and counts as its sender.
//!   Messages with the run's id are "this run"; counters are per run (a new
//!   `initiate_chat`).
//! - Termination, AutoGen's way (no `chat.termination`): the agent about to
//!   answer a message checks it against its own rule
//!   ([`AgentSpec::own_termination`], default: exactly `TERMINATE`), whoever
//!   wrote it; in a group, the manager also checks every message against
//!   exactly `TERMINATE` and ends the run. Flowgate's flow-wide rule
//!   (`chat.termination`) is checked on agent-written messages only, and a
//!   group asks an `ALWAYS`/`TERMINATE` user proxy first when a round is left.
//! - `two_agent`: the assistant answers the proxy's side (the opening message, a
//!   human's text, the proxy's auto reply), the proxy answers the assistant.
//! - `group`: `max_round` (default 20) counts this run's messages, the opening
//!   one included; reaching it finishes (`max_round`). The next speaker is:
//!   `round_robin` the agent after the last speaker in agent order (the first
//!   agent when the last speaker is no agent); `random` any agent, the last
//!   speaker included (AutoGen's `allow_repeat_speaker`), drawn from a hash of
//!   run id and round (a resume draws the same); `manual` asked of the human
//!   (see `manual`); `auto` asked of the selector model ([`Step::SelectAuto`],
//!   see `engine::prompt`).
//! - Consecutive auto replies of an agent: its agent-written messages in this
//!   run since its own last human answer (a `human_input` it sent). Every
//!   agent's `max_consecutive_auto_reply` defaults to 100, as in AutoGen; the
//!   limit is checked before the termination rule.
//! - An assistant at its limit, or whose rule matches, finishes
//!   (`max_consecutive_auto_reply`, `termination`).
//! - The user proxy answering message M: `ALWAYS` asks the human; `TERMINATE`
//!   asks at the limit or when M terminates, else auto-replies; `NEVER`
//!   finishes at the limit (`max_consecutive_auto_reply`) or when M terminates
//!   (`termination`), else auto-replies.
//! - The human's answer: exactly `exit` finishes (`human_exit`; `Exit` is
//!   text); text is already stored as a `human_input` message and is the
//!   proxy's turn; empty means "use the auto reply", except after a
//!   termination message, where it finishes (`termination`). An empty answer
//!   at the auto-reply limit (M not terminating) uses the auto reply and the
//!   next turn asks again; a proxy whose limit is 0 sends the empty answer as
//!   is (`""`, no model call).
//! - The proxy's auto reply: its model if it has one, else `default_auto_reply`
//!   (default `""`, stored anyway, as AutoGen sends it).
//!
//! Touches nothing: no store, no clock, no randomness but a hash.

use sha2::{Digest, Sha256};

use crate::flow::{AgentKind, AgentSpec, ChatKind, Flow, HumanInputMode, SpeakerSelection, Termination};
use crate::model::{HumanReply, InputKind, Message, Role};

pub use super::step::{
    Ask, AskReason, Decision, PendingAsk, PolicyError, RunState, Selection, Speak, Step, StopReason, Via,
};

mod manual;
#[cfg(test)]
mod tests;
mod tools;

/// The name a group's speaker selection is asked on behalf of.
pub const MANAGER: &str = "chat_manager";
/// `max_round` when a group flow sets none.
pub const DEFAULT_MAX_ROUND: u32 = 20;
/// An agent's `max_consecutive_auto_reply` when it sets none (AutoGen's).
pub const DEFAULT_AUTO_REPLY_LIMIT: u32 = 100;

/// What the policy decides from.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The flow, validated.
    pub flow: &'a Flow,
    /// The active run.
    pub run_id: &'a str,
    /// The chat's whole history, by seq.
    pub history: &'a [Message],
    /// The state committed with the last step.
    pub state: &'a RunState,
    /// The human's answer to the pending request, if one arrived.
    pub reply: Option<&'a HumanReply>,
}

type Decided = Result<Decision, PolicyError>;

/// The next step of the run.
pub fn decide(ctx: &Context<'_>) -> Decided {
    match (ctx.reply, &ctx.state.pending) {
        (Some(reply), Some(pending)) => answer(ctx, pending, reply),
        _ => next(ctx),
    }
}

/// The step once `agent` is chosen to speak next in a group.
pub fn speaker_step(ctx: &Context<'_>, agent: &str, selection: Selection) -> Decided {
    let spec = ctx.flow.agent(agent).ok_or_else(|| PolicyError::UnknownAgent(agent.to_owned()))?;
    match (spec.kind, ctx.history.last()) {
        (AgentKind::UserProxy, Some(last)) => proxy_turn(ctx, spec, last, None, Some(selection)),
        (_, last) => assistant_turn(ctx, spec, last, None, Some(selection)),
    }
}

/// The agent after the last speaker, in agent order (groups).
pub fn round_robin_next(ctx: &Context<'_>) -> String {
    let agents = &ctx.flow.agents;
    let next = last_speaker_index(ctx).map_or(0, |i| (i + 1) % agents.len().max(1));
    agents.get(next).map(|a| a.name.clone()).unwrap_or_default()
}

fn answer(ctx: &Context<'_>, pending: &PendingAsk, reply: &HumanReply) -> Decided {
    match pending.why {
        AskReason::SelectSpeaker => return manual::answer(ctx, pending, reply),
        // The results are stored (a `human_input` message): the run goes on.
        AskReason::ToolCalls => return next(ctx),
        _ => {}
    }
    // AutoGen ends only on exactly `exit`; `Exit` or ` exit ` is text. The
    // reply is trimmed on its way here: the stored answer has the raw text.
    if reply.message.as_deref() == Some("exit") && raw_answer(ctx, pending).is_none_or(|raw| raw == "exit") {
        return finish(StopReason::HumanExit);
    }
    match reply.message.as_deref().map(str::trim) {
        // The text is stored as a `human_input` message: it was the proxy's turn.
        Some(_) => next(ctx),
        None if pending.why == AskReason::Termination => finish(StopReason::Termination),
        None => {
            let proxy = ctx
                .flow
                .agent(&pending.agent)
                .ok_or_else(|| PolicyError::UnknownAgent(pending.agent.clone()))?;
            let receiver = receiver_for(ctx.flow, proxy);
            let mut speak = auto_reply(proxy, receiver, pending.selection.clone());
            if proxy.max_consecutive_auto_reply == Some(0) {
                // AutoGen sends the empty answer itself: this proxy never auto-replies.
                speak.via = Via::Fixed(String::new());
            }
            Ok(plain(Step::Speak(speak)))
        }
    }
}

/// The human's answer as stored (a `human_input` message after the ask).
fn raw_answer<'a>(ctx: &Context<'a>, pending: &PendingAsk) -> Option<&'a str> {
    let last = ctx.history.last()?;
    (last.role == Role::HumanInput && last.seq > pending.about_seq).then_some(last.content.as_str())
}

fn next(ctx: &Context<'_>) -> Decided {
    let Some(last) = ctx.history.last() else {
        return finish(StopReason::Termination);
    };
    if let Some(asked) = tools::ask_calls(ctx, last) {
        return Ok(asked);
    }
    match ctx.flow.chat.kind {
        ChatKind::TwoAgent => two_agent_next(ctx, last),
        ChatKind::Group => group_next(ctx, last),
    }
}

fn two_agent_next(ctx: &Context<'_>, last: &Message) -> Decided {
    let flow = ctx.flow;
    let proxy = flow.user_proxy().ok_or(PolicyError::Missing("user_proxy"))?;
    let assistant = flow
        .agents
        .iter()
        .find(|a| a.kind == AgentKind::Assistant)
        .ok_or(PolicyError::Missing("assistant"))?;
    let from_proxy_side = matches!(last.role, Role::User | Role::HumanInput)
        || last.sender == proxy.name
        || tools::all_refused(last);
    if from_proxy_side {
        assistant_turn(ctx, assistant, Some(last), Some(proxy.name.clone()), None)
    } else {
        proxy_turn(ctx, proxy, last, Some(assistant.name.clone()), None)
    }
}

fn group_next(ctx: &Context<'_>, last: &Message) -> Decided {
    let flow = ctx.flow;
    let rounds = run_messages(ctx).len();
    let max_round = flow.chat.max_round.unwrap_or(DEFAULT_MAX_ROUND) as usize;
    match &flow.chat.termination {
        Some(rule) if last.role == Role::Assistant && rule.matches(&last.content) => {
            let asking = flow
                .user_proxy()
                .filter(|p| matches!(p.human_input_mode, HumanInputMode::Always | HumanInputMode::Terminate));
            return match asking {
                Some(proxy) if rounds < max_round => Ok(ask(flow, proxy, AskReason::Termination, last, None)),
                _ => finish(StopReason::Termination),
            };
        }
        // The manager's own rule (FlowGen never gave it one): AutoGen's default.
        None if Termination::autogen_default().matches(&last.content) => {
            return finish(StopReason::Termination);
        }
        _ => {}
    }
    if rounds >= max_round {
        return finish(StopReason::MaxRound);
    }
    match flow.chat.speaker_selection {
        SpeakerSelection::RoundRobin => {
            speaker_step(ctx, &round_robin_next(ctx), Selection::by(SpeakerSelection::RoundRobin))
        }
        SpeakerSelection::Random => {
            speaker_step(ctx, &random_next(ctx, rounds), Selection::by(SpeakerSelection::Random))
        }
        SpeakerSelection::Manual => Ok(manual::ask(flow, last, 0)),
        SpeakerSelection::Auto => {
            Ok(plain(Step::SelectAuto { candidates: flow.agents.iter().map(|a| a.name.clone()).collect() }))
        }
    }
}

fn assistant_turn(
    ctx: &Context<'_>,
    agent: &AgentSpec,
    last: Option<&Message>,
    receiver: Option<String>,
    selection: Option<Selection>,
) -> Decided {
    let limit = agent.max_consecutive_auto_reply.unwrap_or(DEFAULT_AUTO_REPLY_LIMIT);
    if auto_replies(ctx, &agent.name) >= limit {
        return finish(StopReason::MaxConsecutiveAutoReply);
    }
    if last.is_some_and(|m| ends_for(ctx.flow, agent, m)) {
        return finish(StopReason::Termination);
    }
    let model = agent.model.clone().ok_or_else(|| PolicyError::NoModel(agent.name.clone()))?;
    Ok(plain(Step::Speak(Speak {
        agent: agent.name.clone(),
        receiver,
        via: Via::Model(model),
        selection,
        auto_reply: false,
    })))
}

fn proxy_turn(
    ctx: &Context<'_>,
    proxy: &AgentSpec,
    m: &Message,
    receiver: Option<String>,
    selection: Option<Selection>,
) -> Decided {
    let terminating = ends_for(ctx.flow, proxy, m);
    let limit = proxy.max_consecutive_auto_reply.unwrap_or(DEFAULT_AUTO_REPLY_LIMIT);
    let at_limit = auto_replies(ctx, &proxy.name) >= limit;
    let reason = match (proxy.human_input_mode, terminating, at_limit) {
        (HumanInputMode::Always, true, _) | (HumanInputMode::Terminate, true, _) => {
            Some(AskReason::Termination)
        }
        (HumanInputMode::Always, false, _) => Some(AskReason::Feedback),
        (HumanInputMode::Terminate, false, true) => Some(AskReason::AutoReplyLimit),
        (HumanInputMode::Never, _, true) => return finish(StopReason::MaxConsecutiveAutoReply),
        (HumanInputMode::Never, true, false) => return finish(StopReason::Termination),
        _ => None,
    };
    Ok(match reason {
        Some(why) => ask(ctx.flow, proxy, why, m, selection),
        None => plain(Step::Speak(auto_reply(proxy, receiver, selection))),
    })
}

fn ask(
    flow: &Flow,
    proxy: &AgentSpec,
    why: AskReason,
    m: &Message,
    selection: Option<Selection>,
) -> Decision {
    let group = flow.chat.kind == ChatKind::Group;
    // AutoGen's wording (it ends each with ": ", the console's input cue).
    // The sender of what the proxy answers: the assistant, or in a group the manager.
    let to = if group { MANAGER } else { m.sender.as_str() };
    let prompt = match (why, proxy.human_input_mode) {
        (_, HumanInputMode::Always) | (AskReason::Feedback, _) => format!(
            "Replying as {}. Provide feedback to {to}. Press enter to skip and use auto-reply, or type 'exit' to end the conversation",
            proxy.name
        ),
        (AskReason::Termination, _) => {
            format!("Please give feedback to {to}. Press enter or type 'exit' to stop the conversation")
        }
        _ => format!(
            "Please give feedback to {to}. Press enter to skip and use auto-reply, or type 'exit' to stop the conversation"
        ),
    };
    Decision {
        step: Step::AskHuman(Ask {
            agent: proxy.name.clone(),
            prompt,
            kind: InputKind::Human,
            choices: None,
            calls: None,
        }),
        state: RunState {
            pending: Some(PendingAsk {
                agent: proxy.name.clone(),
                why,
                about_seq: m.seq,
                selection,
                retries: 0,
            }),
        },
    }
}

fn auto_reply(proxy: &AgentSpec, receiver: Option<String>, selection: Option<Selection>) -> Speak {
    let via = match &proxy.model {
        Some(model) => Via::Model(model.clone()),
        None => Via::Fixed(proxy.default_auto_reply.clone().unwrap_or_default()),
    };
    Speak { agent: proxy.name.clone(), receiver, via, selection, auto_reply: true }
}

/// Whether `m` ends the conversation for `receiver`, the agent about to answer
/// it: the flow-wide rule on agent-written messages when the flow has one,
/// else the receiver's own rule on any message (AutoGen).
pub fn ends_for(flow: &Flow, receiver: &AgentSpec, m: &Message) -> bool {
    match &flow.chat.termination {
        Some(rule) => m.role == Role::Assistant && rule.matches(&m.content),
        None => receiver.own_termination().matches(&m.content),
    }
}

/// This run's messages (the history's tail carrying the run id).
pub fn run_messages<'a>(ctx: &Context<'a>) -> &'a [Message] {
    let start =
        ctx.history.iter().rposition(|m| m.run_id.as_deref() != Some(ctx.run_id)).map_or(0, |i| i + 1);
    &ctx.history[start..]
}

/// `agent`'s agent-written messages in this run since its own last human
/// answer (AutoGen's counter per agent and sender: another agent's human
/// never resets it).
pub fn auto_replies(ctx: &Context<'_>, agent: &str) -> u32 {
    let count = run_messages(ctx)
        .iter()
        .rev()
        .take_while(|m| !(m.role == Role::HumanInput && m.sender == agent))
        .filter(|m| m.sender == agent && m.role == Role::Assistant)
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn receiver_for(flow: &Flow, proxy: &AgentSpec) -> Option<String> {
    match flow.chat.kind {
        ChatKind::TwoAgent => flow.agents.iter().find(|a| a.name != proxy.name).map(|a| a.name.clone()),
        ChatKind::Group => None,
    }
}

/// The index of the last message's author among the agents; the user's opening
/// message counts as the user proxy's.
fn last_speaker_index(ctx: &Context<'_>) -> Option<usize> {
    let last = ctx.history.last()?;
    let agents = &ctx.flow.agents;
    agents.iter().position(|a| a.name == last.sender).or_else(|| {
        (last.role == Role::User)
            .then(|| agents.iter().position(|a| a.kind == AgentKind::UserProxy))
            .flatten()
    })
}

/// Any agent, the last speaker included (AutoGen's `allow_repeat_speaker`
/// defaults to true).
fn random_next(ctx: &Context<'_>, round: usize) -> String {
    let candidates = &ctx.flow.agents;
    let digest = Sha256::digest(format!("{}:{round}", ctx.run_id).as_bytes());
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest[..8]);
    let pick = u64::from_le_bytes(seed) % (candidates.len().max(1) as u64);
    candidates.get(pick as usize).map(|a| a.name.clone()).unwrap_or_else(|| round_robin_next(ctx))
}

pub(crate) fn plain(step: Step) -> Decision {
    Decision { step, state: RunState::default() }
}

fn finish(stop_reason: StopReason) -> Decided {
    Ok(plain(Step::Finish { stop_reason }))
}
