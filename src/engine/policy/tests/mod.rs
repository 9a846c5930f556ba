//! The policy's rules, one sentence each: helpers here, the rules of each
//! chat kind in `two_agent` and `group`, AutoGen's termination in `autogen`,
//! manual selection in `manual`.

mod autogen;
mod group;
mod manual;
mod two_agent;

use serde_json::json;

use super::*;
use crate::model::{ChatId, InputRequestId, RunId, now};

/// The current run (any other name in a test is an older run).
const RUN: &str = "run_00000000000000000000000001";

fn flow(value: serde_json::Value) -> Flow {
    serde_json::from_value(value).unwrap()
}

/// `user` (proxy, given mode and extra fields) and `writer` (assistant).
fn two_agent(mode: &str, proxy_extra: serde_json::Value) -> Flow {
    let mut proxy = json!({"name": "user", "kind": "user_proxy", "human_input_mode": mode});
    for (k, v) in proxy_extra.as_object().unwrap() {
        proxy[k] = v.clone();
    }
    flow(json!({
        "name": "pair",
        "agents": [proxy, {"name": "writer", "kind": "assistant", "model": "m"}],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    }))
}

/// `user` (proxy), `writer`, `critic`.
fn group(selection: &str, mode: &str, max_round: u32) -> Flow {
    flow(json!({
        "name": "group",
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": mode},
            {"name": "writer", "kind": "assistant", "model": "m"},
            {"name": "critic", "kind": "assistant", "model": "m"}
        ],
        "chat": {"kind": "group", "speaker_selection": selection, "max_round": max_round,
                 "termination": {"contains": "TERMINATE"}}
    }))
}

/// The run id a test names (`RUN`, or any other name for an older run).
fn run_id(name: &str) -> RunId {
    RunId::parse(if name == RUN { RUN } else { "run_00000000000000000000000002" }).unwrap()
}

/// A chat history under construction.
#[derive(Default)]
struct History(Vec<Message>);

impl History {
    fn push(&mut self, run: &str, role: Role, sender: &str, content: &str) -> &mut Self {
        let seq = self.0.last().map_or(1, |m| m.seq + 2);
        self.0.push(Message {
            id: format!("msg_{seq}"),
            chat_id: ChatId::new(),
            seq,
            run_id: Some(run_id(run)),
            role,
            sender: sender.into(),
            receiver: None,
            content: content.into(),
            created_at: now(),
            metadata: json!({}),
        });
        self
    }
    fn user(&mut self, text: &str) -> &mut Self {
        self.push(RUN, Role::User, "user", text)
    }
    fn said(&mut self, who: &str, text: &str) -> &mut Self {
        self.push(RUN, Role::Assistant, who, text)
    }
    fn human(&mut self, text: &str) -> &mut Self {
        self.push(RUN, Role::HumanInput, "user", text)
    }
    fn last_seq(&self) -> u64 {
        self.0.last().unwrap().seq
    }
}

fn decide_on(flow: &Flow, h: &History, state: &RunState, reply: Option<&HumanReply>) -> Decision {
    decide(&Context { flow, run_id: RUN, history: &h.0, state, reply }).unwrap()
}

fn step(flow: &Flow, h: &History) -> Step {
    decide_on(flow, h, &RunState::default(), None).step
}

/// The state an ask leaves, and the reply to it.
fn answered(flow: &Flow, h: &History, message: Option<&str>) -> Decision {
    let asked = decide_on(flow, h, &RunState::default(), None);
    assert!(matches!(asked.step, Step::AskHuman(_)), "expected an ask, got {:?}", asked.step);
    let reply = HumanReply { request_id: InputRequestId::new(), message: message.map(str::to_owned) };
    decide_on(flow, h, &asked.state, Some(&reply))
}

fn speaker(step: &Step) -> &str {
    match step {
        Step::Speak(s) => &s.agent,
        other => panic!("expected a speaker, got {other:?}"),
    }
}

fn finished(reason: StopReason) -> Step {
    Step::Finish { stop_reason: reason }
}

fn is_reply_ask(step: &Step) -> bool {
    matches!(step, Step::AskHuman(a) if a.kind == InputKind::Human && a.agent == "user")
}
