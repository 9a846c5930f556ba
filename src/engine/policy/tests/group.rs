//! Group chats: speaker selection, max_round, group termination.

use serde_json::json;

use super::*;

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
    assert_eq!(speaker(&step(&f, &h)), "writer", "after the proxy's opening message");
    h.said("writer", "a");
    assert_eq!(speaker(&step(&f, &h)), "critic");
    h.said("critic", "b");
    assert_eq!(speaker(&step(&f, &h)), "user", "wraps around to the proxy");
    let Step::Speak(speak) = step(&f, &h) else { panic!() };
    assert_eq!(speak.selection, Some(Selection::by(SpeakerSelection::RoundRobin)));
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
fn random_selection_may_repeat_the_last_speaker_as_autogen_allows() {
    let f = group("random", "NEVER", 100);
    let mut h = History::default();
    h.user("hi");
    let mut repeats = 0;
    for _ in 0..40 {
        let s = step(&f, &h);
        let next = speaker(&s).to_owned();
        repeats += usize::from(next == h.0.last().unwrap().sender);
        h.said(&next, "x");
    }
    assert!(repeats > 0, "40 draws among 3 agents never repeated a speaker");
}

#[test]
fn manual_selection_asks_the_human_with_the_agent_names() {
    let f = group("manual", "NEVER", 20);
    let d = decide_on(&f, History::default().user("hi"), &RunState::default(), None);
    let Step::AskHuman(ask) = d.step else { panic!("{:?}", d.step) };
    assert_eq!(ask.kind, InputKind::SelectSpeaker);
    assert_eq!(ask.agent, MANAGER);
    assert_eq!(ask.choices.unwrap(), vec!["user", "writer", "critic"]);
    assert_eq!(d.state.pending.unwrap().why, AskReason::SelectSpeaker);
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
    let s = step(&f, History::default().user("hi").said("writer", "TERMINATE"));
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
        assert_eq!(answered(&f, &h, None).step, finished(StopReason::Termination));
        assert_eq!(answered(&f, &h, Some("exit")).step, finished(StopReason::HumanExit));
    }
}

#[test]
fn text_after_a_group_termination_continues_the_conversation() {
    let f = group("round_robin", "TERMINATE", 20);
    let mut h = History::default();
    h.user("hi").said("writer", "TERMINATE");
    let asked = decide_on(&f, &h, &RunState::default(), None);
    h.human("one more thing");
    let reply = HumanReply { request_id: InputRequestId::new(), message: Some("one more thing".into()) };
    let d = decide_on(&f, &h, &asked.state, Some(&reply));
    assert_eq!(speaker(&d.step), "writer", "round robin after the proxy");
}

#[test]
fn a_termination_message_in_the_last_round_finishes_without_asking() {
    let f = group("round_robin", "TERMINATE", 2);
    let s = step(&f, History::default().user("hi").said("writer", "TERMINATE"));
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
    assert_eq!(speak.selection, Some(Selection::by(SpeakerSelection::RoundRobin)));
}

#[test]
fn a_selected_never_mode_proxy_auto_replies_in_a_group() {
    let f = group("round_robin", "NEVER", 20);
    let s = step(&f, History::default().user("hi").said("writer", "a").said("critic", "b"));
    let Step::Speak(speak) = s else { panic!() };
    assert_eq!((speak.agent.as_str(), speak.auto_reply), ("user", true));
}

#[test]
fn an_unknown_speaker_is_an_error_not_a_panic() {
    let f = group("auto", "NEVER", 20);
    let mut h = History::default();
    h.user("hi");
    let ctx = Context { flow: &f, run_id: RUN, history: &h.0, state: &RunState::default(), reply: None };
    let err = speaker_step(&ctx, "ghost", Selection::by(SpeakerSelection::Auto)).unwrap_err();
    assert_eq!(err, PolicyError::UnknownAgent("ghost".into()));
}

#[test]
fn the_run_state_survives_its_stored_form() {
    let f = two_agent("ALWAYS", json!({}));
    let d = decide_on(&f, History::default().user("hi").said("writer", "a"), &RunState::default(), None);
    let stored = d.state.to_value();
    assert_eq!(RunState::from_value(&stored), d.state);
    assert_eq!(RunState::from_value(&serde_json::Value::Null), RunState::default());
}
