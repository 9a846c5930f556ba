//! Manual speaker selection, as AutoGen 0.2.35's `manual_select_speaker`: the
//! human is shown the numbered agents and answers a number `1..n`; an empty
//! answer or `q` means round robin; anything else is asked once more, then
//! round robin takes over. Flowgate also takes an agent's exact name (the
//! input request lists the names as `choices`).
//!
//! Pure, like the rest of the policy.

use super::{
    Ask, AskReason, Context, Decided, Decision, MANAGER, PendingAsk, RunState, Selection, Step,
    round_robin_next, speaker_step,
};
use crate::flow::{Flow, SpeakerSelection};
use crate::model::{HumanReply, InputKind, Message};

/// Answers asked for per selection before round robin (AutoGen's tries).
pub const MANUAL_SELECT_ASKS: u32 = 2;

/// Asks the human who speaks next; `retries` is how many answers named nobody.
pub(super) fn ask(flow: &Flow, last: &Message, retries: u32) -> Decision {
    let choices: Vec<String> = flow.agents.iter().map(|a| a.name.clone()).collect();
    let numbered: Vec<String> = choices.iter().enumerate().map(|(i, n)| format!("{}: {n}", i + 1)).collect();
    let invalid = if retries > 0 {
        format!("Invalid input. Please enter a number between 1 and {}.\n", choices.len())
    } else {
        String::new()
    };
    Decision {
        step: Step::AskHuman(Ask {
            agent: MANAGER.to_owned(),
            prompt: format!(
                "{invalid}Please select the next speaker from the following list:\n{}\n\
                 Enter the number of the next speaker (enter nothing or `q` to use auto selection)",
                numbered.join("\n")
            ),
            kind: InputKind::SelectSpeaker,
            choices: Some(choices),
            calls: None,
        }),
        state: RunState {
            pending: Some(PendingAsk {
                agent: MANAGER.to_owned(),
                why: AskReason::SelectSpeaker,
                about_seq: last.seq,
                selection: None,
                retries,
            }),
        },
    }
}

/// The step after the human's answer to a selection request.
pub(super) fn answer(ctx: &Context<'_>, pending: &PendingAsk, reply: &HumanReply) -> Decided {
    let text = reply.message.as_deref().unwrap_or("").trim();
    let agents = &ctx.flow.agents;
    let numbered = text.parse::<usize>().ok().and_then(|i| i.checked_sub(1)).and_then(|i| agents.get(i));
    let chosen = numbered.or_else(|| ctx.flow.agent(text));
    if let Some(agent) = chosen {
        return speaker_step(ctx, &agent.name, Selection::by(SpeakerSelection::Manual));
    }
    let skipped = text.is_empty() || text == "q";
    if !skipped
        && pending.retries + 1 < MANUAL_SELECT_ASKS
        && let Some(last) = ctx.history.last()
    {
        return Ok(ask(ctx.flow, last, pending.retries + 1));
    }
    let mut selection = Selection::by(SpeakerSelection::Manual);
    selection.fallback = Some(SpeakerSelection::RoundRobin);
    speaker_step(ctx, &round_robin_next(ctx), selection)
}
