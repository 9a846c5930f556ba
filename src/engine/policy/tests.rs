//! The policy's rules, one sentence each.

use serde_json::json;

use super::*;
use crate::model::now;

const RUN: &str = "run_current";

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

/// A chat history under construction.
#[derive(Default)]
struct History(Vec<Message>);

impl History {
    fn push(&mut self, run: &str, role: Role, sender: &str, content: &str) -> &mut Self {
        let seq = self.0.last().map_or(1, |m| m.seq + 2);
        self.0.push(Message {
            id: format!("msg_{seq}"),
            chat_id: "chat_x".into(),
            seq,
            run_id: Some(run.into()),
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
    decide(&Context {
        flow,
        run_id: RUN,
        history: &h.0,
        state,
        reply,
    })
    .unwrap()
}

fn step(flow: &Flow, h: &History) -> Step {
    decide_on(flow, h, &RunState::default(), None).step
}

/// The state an ask leaves, and the reply to it.
fn answered(flow: &Flow, h: &History, message: Option<&str>) -> Decision {
    let asked = decide_on(flow, h, &RunState::default(), None);
    assert!(
        matches!(asked.step, Step::AskHuman(_)),
        "expected an ask, got {:?}",
        asked.step
    );
    let reply = HumanReply {
        request_id: "inp_1".into(),
        message: message.map(str::to_owned),
    };
    decide_on(flow, h, &asked.state, Some(&reply))
}

fn speaker(step: &Step) -> &str {
    match step {
        Step::Speak(s) => &s.agent,
        other => panic!("expected a speaker, got {other:?}"),
    }
}

fn finished(reason: StopReason) -> Step {
    Step::Finish {
        stop_reason: reason,
    }
}

fn is_reply_ask(step: &Step) -> bool {
    matches!(step, Step::AskHuman(a) if a.kind == InputKind::Reply && a.agent == "user")
}

#[test]
fn the_assistant_answers_the_opening_message() {
    let f = two_agent("NEVER", json!({}));
    let s = step(&f, History::default().user("hi"));
    assert_eq!(speaker(&s), "writer");
    let Step::Speak(speak) = s else {
        unreachable!()
    };
    assert_eq!(speak.via, Via::Model("m".into()));
    assert_eq!(speak.receiver.as_deref(), Some("user"));
    assert!(!speak.auto_reply);
}

#[test]
fn always_mode_asks_the_human_after_every_assistant_message() {
    let f = two_agent("ALWAYS", json!({}));
    let s = step(&f, History::default().user("hi").said("writer", "hello"));
    assert!(is_reply_ask(&s));
}

#[test]
fn an_ask_records_why_and_about_which_message_in_the_state() {
    let f = two_agent("ALWAYS", json!({}));
    let mut h = History::default();
    h.user("hi").said("writer", "hello");
    let d = decide_on(&f, &h, &RunState::default(), None);
    let pending = d.state.pending.unwrap();
    assert_eq!(pending.why, AskReason::Feedback);
    assert_eq!(pending.about_seq, h.last_seq());
    assert_eq!(pending.agent, "user");
}

#[test]
fn terminate_mode_auto_replies_to_an_ordinary_message_with_the_default_auto_reply() {
    let f = two_agent("TERMINATE", json!({}));
    let s = step(&f, History::default().user("hi").said("writer", "hello"));
    let Step::Speak(speak) = s else {
        panic!("{s:?}")
    };
    assert_eq!(speak.agent, "user");
    assert_eq!(speak.via, Via::Fixed(String::new()));
    assert_eq!(speak.receiver.as_deref(), Some("writer"));
    assert!(speak.auto_reply);
}

#[test]
fn terminate_mode_asks_the_human_on_a_termination_message() {
    let f = two_agent("TERMINATE", json!({}));
    let mut h = History::default();
    h.user("hi").said("writer", "done. TERMINATE");
    let d = decide_on(&f, &h, &RunState::default(), None);
    assert!(is_reply_ask(&d.step));
    assert_eq!(d.state.pending.unwrap().why, AskReason::Termination);
}

#[test]
fn terminate_mode_asks_the_human_at_the_auto_reply_limit() {
    let f = two_agent("TERMINATE", json!({"max_consecutive_auto_reply": 1}));
    let mut h = History::default();
    h.user("hi")
        .said("writer", "a")
        .said("user", "")
        .said("writer", "b");
    let d = decide_on(&f, &h, &RunState::default(), None);
    assert!(is_reply_ask(&d.step));
    assert_eq!(d.state.pending.unwrap().why, AskReason::AutoReplyLimit);
}

#[test]
fn never_mode_finishes_on_a_termination_message() {
    let f = two_agent("NEVER", json!({}));
    let s = step(
        &f,
        History::default().user("hi").said("writer", "TERMINATE"),
    );
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn never_mode_finishes_at_the_auto_reply_limit() {
    let f = two_agent("NEVER", json!({"max_consecutive_auto_reply": 2}));
    let mut h = History::default();
    h.user("hi")
        .said("writer", "a")
        .said("user", "")
        .said("writer", "b");
    assert_eq!(speaker(&step(&f, &h)), "user");
    h.said("user", "").said("writer", "c");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn a_user_proxy_without_a_limit_stops_after_a_hundred_auto_replies() {
    let f = two_agent("NEVER", json!({}));
    let mut h = History::default();
    h.user("hi");
    for _ in 0..DEFAULT_PROXY_AUTO_REPLY_LIMIT {
        h.said("writer", "more").said("user", "");
    }
    h.said("writer", "more");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn never_mode_auto_replies_with_the_configured_default_auto_reply() {
    let f = two_agent("NEVER", json!({"default_auto_reply": "continue"}));
    let s = step(&f, History::default().user("hi").said("writer", "a"));
    let Step::Speak(speak) = s else {
        panic!("{s:?}")
    };
    assert_eq!(speak.via, Via::Fixed("continue".into()));
}

#[test]
fn a_user_proxy_with_a_model_auto_replies_with_it() {
    let f = two_agent("NEVER", json!({"model": "proxy_model"}));
    let s = step(&f, History::default().user("hi").said("writer", "a"));
    let Step::Speak(speak) = s else {
        panic!("{s:?}")
    };
    assert_eq!(speak.via, Via::Model("proxy_model".into()));
}

#[test]
fn a_human_reply_of_exit_finishes_the_run() {
    let f = two_agent("ALWAYS", json!({}));
    let mut h = History::default();
    h.user("hi").said("writer", "hello");
    let d = answered(&f, &h, Some(" Exit "));
    assert_eq!(d.step, finished(StopReason::HumanExit));
}

#[test]
fn a_human_text_reply_is_the_proxys_turn_and_resets_its_counter() {
    let f = two_agent("TERMINATE", json!({"max_consecutive_auto_reply": 1}));
    let mut h = History::default();
    h.user("hi")
        .said("writer", "a")
        .said("user", "")
        .said("writer", "b");
    let asked = decide_on(&f, &h, &RunState::default(), None);
    h.human("more please");
    let reply = HumanReply {
        request_id: "inp_1".into(),
        message: Some("more please".into()),
    };
    let d = decide_on(&f, &h, &asked.state, Some(&reply));
    assert_eq!(speaker(&d.step), "writer");
    assert_eq!(d.state, RunState::default());
    h.said("writer", "c");
    let Step::Speak(speak) = step(&f, &h) else {
        panic!()
    };
    assert!(speak.auto_reply, "the counter was reset by the human");
}

#[test]
fn an_empty_reply_uses_the_auto_reply() {
    let f = two_agent("ALWAYS", json!({"default_auto_reply": "go on"}));
    let mut h = History::default();
    h.user("hi").said("writer", "hello");
    let d = answered(&f, &h, None);
    let Step::Speak(speak) = d.step else { panic!() };
    assert_eq!(
        (speak.agent.as_str(), speak.via),
        ("user", Via::Fixed("go on".into()))
    );
    assert_eq!(d.state, RunState::default(), "the pending ask is consumed");
}

#[test]
fn an_empty_reply_after_a_termination_message_ends_the_chat() {
    for mode in ["ALWAYS", "TERMINATE"] {
        let f = two_agent(mode, json!({}));
        let mut h = History::default();
        h.user("hi").said("writer", "TERMINATE");
        assert_eq!(
            answered(&f, &h, None).step,
            finished(StopReason::Termination),
            "{mode}"
        );
    }
}

#[test]
fn an_empty_reply_at_the_auto_reply_limit_uses_the_auto_reply_as_autogen_does() {
    let f = two_agent("TERMINATE", json!({"max_consecutive_auto_reply": 1}));
    let mut h = History::default();
    h.user("hi")
        .said("writer", "a")
        .said("user", "")
        .said("writer", "b");
    let d = answered(&f, &h, None);
    assert_eq!(speaker(&d.step), "user");
    h.said("user", "").said("writer", "c");
    assert!(is_reply_ask(&step(&f, &h)), "still at the limit: ask again");
}

#[test]
fn the_assistant_stops_at_its_auto_reply_limit() {
    let f = flow(json!({
        "name": "pair",
        "agents": [{"name": "user", "kind": "user_proxy"},
                   {"name": "writer", "kind": "assistant", "model": "m", "max_consecutive_auto_reply": 2}],
        "chat": {"kind": "two_agent"}
    }));
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("user", "");
    assert_eq!(speaker(&step(&f, &h)), "writer");
    h.said("writer", "b").said("user", "");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn a_terminating_auto_reply_of_the_proxy_ends_the_two_agent_chat() {
    let f = two_agent("NEVER", json!({"default_auto_reply": "TERMINATE"}));
    let s = step(
        &f,
        History::default()
            .user("hi")
            .said("writer", "a")
            .said("user", "TERMINATE"),
    );
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn a_human_message_never_terminates() {
    let f = two_agent("ALWAYS", json!({}));
    assert_eq!(
        speaker(&step(&f, History::default().user("TERMINATE"))),
        "writer"
    );
    let mut h = History::default();
    h.user("hi").said("writer", "a").human("TERMINATE");
    assert_eq!(speaker(&step(&f, &h)), "writer");
}

#[test]
fn counters_are_per_run_and_a_new_message_continues_the_history() {
    let f = two_agent("NEVER", json!({"max_consecutive_auto_reply": 1}));
    let mut h = History::default();
    h.push("run_old", Role::User, "user", "first")
        .push("run_old", Role::Assistant, "writer", "a")
        .push("run_old", Role::Assistant, "user", "")
        .push("run_old", Role::Assistant, "writer", "b");
    h.user("second").said("writer", "c");
    let ctx = Context {
        flow: &f,
        run_id: RUN,
        history: &h.0,
        state: &RunState::default(),
        reply: None,
    };
    assert_eq!(run_messages(&ctx).len(), 2);
    assert_eq!(auto_replies(&ctx, "user"), 0);
    assert_eq!(speaker(&step(&f, &h)), "user");
}

#[test]
fn the_same_stored_data_gives_the_same_step() {
    let f = group("random", "NEVER", 20);
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("critic", "b");
    let first = decide_on(&f, &h, &RunState::default(), None);
    for _ in 0..5 {
        assert_eq!(decide_on(&f, &h, &RunState::default(), None), first);
    }
}

#[test]
fn round_robin_follows_agent_order() {
    let f = group("round_robin", "NEVER", 20);
    let mut h = History::default();
    h.user("hi");
    assert_eq!(
        speaker(&step(&f, &h)),
        "writer",
        "after the proxy's opening message"
    );
    h.said("writer", "a");
    assert_eq!(speaker(&step(&f, &h)), "critic");
    h.said("critic", "b");
    assert_eq!(speaker(&step(&f, &h)), "user", "wraps around to the proxy");
    let Step::Speak(speak) = step(&f, &h) else {
        panic!()
    };
    assert_eq!(
        speak.selection,
        Some(Selection::by(SpeakerSelection::RoundRobin))
    );
    assert!(speak.receiver.is_none());
}

#[test]
fn round_robin_starts_with_the_first_agent_when_no_agent_sent_the_opening_message() {
    let f = flow(json!({
        "name": "g",
        "agents": [{"name": "a", "kind": "assistant", "model": "m"},
                   {"name": "b", "kind": "assistant", "model": "m"}],
        "chat": {"kind": "group"}
    }));
    assert_eq!(speaker(&step(&f, History::default().user("hi"))), "a");
}

#[test]
fn random_selection_never_picks_the_last_speaker() {
    let f = group("random", "NEVER", 100);
    let mut h = History::default();
    h.user("hi");
    for _ in 0..30 {
        let s = step(&f, &h);
        let next = speaker(&s).to_owned();
        assert_ne!(next, h.0.last().unwrap().sender);
        h.said(&next, "x");
    }
}

#[test]
fn manual_selection_asks_the_human_with_the_agent_names() {
    let f = group("manual", "NEVER", 20);
    let d = decide_on(
        &f,
        History::default().user("hi"),
        &RunState::default(),
        None,
    );
    let Step::AskHuman(ask) = d.step else {
        panic!("{:?}", d.step)
    };
    assert_eq!(ask.kind, InputKind::SelectSpeaker);
    assert_eq!(ask.agent, MANAGER);
    assert_eq!(ask.choices.unwrap(), vec!["user", "writer", "critic"]);
    assert_eq!(d.state.pending.unwrap().why, AskReason::SelectSpeaker);
}

#[test]
fn a_manual_choice_makes_that_agent_speak() {
    let f = group("manual", "NEVER", 20);
    let d = answered(&f, History::default().user("hi"), Some("critic"));
    let Step::Speak(speak) = d.step else { panic!() };
    assert_eq!(speak.agent, "critic");
    assert_eq!(
        speak.selection,
        Some(Selection::by(SpeakerSelection::Manual))
    );
}

#[test]
fn auto_selection_asks_the_selector_among_every_agent() {
    let f = group("auto", "NEVER", 20);
    let s = step(&f, History::default().user("hi"));
    let candidates = vec!["user".to_owned(), "writer".into(), "critic".into()];
    assert_eq!(s, Step::SelectAuto { candidates });
}

#[test]
fn max_round_counts_the_opening_message() {
    let f = group("round_robin", "NEVER", 3);
    let mut h = History::default();
    h.user("hi").said("writer", "a");
    assert_eq!(speaker(&step(&f, &h)), "critic");
    h.said("critic", "b");
    assert_eq!(step(&f, &h), finished(StopReason::MaxRound));
}

#[test]
fn a_group_termination_message_finishes_when_the_proxy_never_asks() {
    let f = group("round_robin", "NEVER", 20);
    let s = step(
        &f,
        History::default().user("hi").said("writer", "TERMINATE"),
    );
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn a_group_termination_message_asks_a_terminate_or_always_human_first() {
    for mode in ["TERMINATE", "ALWAYS"] {
        let f = group("round_robin", mode, 20);
        let mut h = History::default();
        h.user("hi").said("writer", "TERMINATE");
        let d = decide_on(&f, &h, &RunState::default(), None);
        assert!(is_reply_ask(&d.step), "{mode}");
        assert_eq!(d.state.pending.unwrap().why, AskReason::Termination);
        assert_eq!(
            answered(&f, &h, None).step,
            finished(StopReason::Termination)
        );
        assert_eq!(
            answered(&f, &h, Some("exit")).step,
            finished(StopReason::HumanExit)
        );
    }
}

#[test]
fn text_after_a_group_termination_continues_the_conversation() {
    let f = group("round_robin", "TERMINATE", 20);
    let mut h = History::default();
    h.user("hi").said("writer", "TERMINATE");
    let asked = decide_on(&f, &h, &RunState::default(), None);
    h.human("one more thing");
    let reply = HumanReply {
        request_id: "inp_1".into(),
        message: Some("one more thing".into()),
    };
    let d = decide_on(&f, &h, &asked.state, Some(&reply));
    assert_eq!(speaker(&d.step), "writer", "round robin after the proxy");
}

#[test]
fn a_termination_message_in_the_last_round_finishes_without_asking() {
    let f = group("round_robin", "TERMINATE", 2);
    let s = step(
        &f,
        History::default().user("hi").said("writer", "TERMINATE"),
    );
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn a_selected_always_mode_proxy_asks_and_keeps_its_selection_for_the_auto_reply() {
    let f = group("round_robin", "ALWAYS", 20);
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("critic", "b");
    let asked = decide_on(&f, &h, &RunState::default(), None);
    assert!(is_reply_ask(&asked.step));
    let d = answered(&f, &h, None);
    let Step::Speak(speak) = d.step else { panic!() };
    assert_eq!(speak.agent, "user");
    assert_eq!(
        speak.selection,
        Some(Selection::by(SpeakerSelection::RoundRobin))
    );
}

#[test]
fn a_selected_never_mode_proxy_auto_replies_in_a_group() {
    let f = group("round_robin", "NEVER", 20);
    let s = step(
        &f,
        History::default()
            .user("hi")
            .said("writer", "a")
            .said("critic", "b"),
    );
    let Step::Speak(speak) = s else { panic!() };
    assert_eq!((speak.agent.as_str(), speak.auto_reply), ("user", true));
}

#[test]
fn an_unknown_speaker_is_an_error_not_a_panic() {
    let f = group("auto", "NEVER", 20);
    let mut h = History::default();
    h.user("hi");
    let ctx = Context {
        flow: &f,
        run_id: RUN,
        history: &h.0,
        state: &RunState::default(),
        reply: None,
    };
    let err = speaker_step(&ctx, "ghost", Selection::by(SpeakerSelection::Auto)).unwrap_err();
    assert_eq!(err, PolicyError::UnknownAgent("ghost".into()));
}

#[test]
fn the_run_state_survives_its_stored_form() {
    let f = two_agent("ALWAYS", json!({}));
    let d = decide_on(
        &f,
        History::default().user("hi").said("writer", "a"),
        &RunState::default(),
        None,
    );
    let stored = d.state.to_value();
    assert_eq!(RunState::from_value(&stored), d.state);
    assert_eq!(
        RunState::from_value(&serde_json::Value::Null),
        RunState::default()
    );
}
