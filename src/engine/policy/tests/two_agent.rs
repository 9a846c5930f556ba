//! Two-agent chats: the assistant and the user proxy alternate.

use serde_json::json;

use super::*;

#[test]
fn the_assistant_answers_the_opening_message() {
    let f = two_agent("NEVER", json!({}));
    let s = step(&f, History::default().user("hi"));
    assert_eq!(speaker(&s), "writer");
    let Step::Speak(speak) = s else { unreachable!() };
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
    let Step::Speak(speak) = s else { panic!("{s:?}") };
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
    h.user("hi").said("writer", "a").said("user", "").said("writer", "b");
    let d = decide_on(&f, &h, &RunState::default(), None);
    assert!(is_reply_ask(&d.step));
    assert_eq!(d.state.pending.unwrap().why, AskReason::AutoReplyLimit);
}

#[test]
fn never_mode_finishes_on_a_termination_message() {
    let f = two_agent("NEVER", json!({}));
    let s = step(&f, History::default().user("hi").said("writer", "TERMINATE"));
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn never_mode_finishes_at_the_auto_reply_limit() {
    let f = two_agent("NEVER", json!({"max_consecutive_auto_reply": 2}));
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("user", "").said("writer", "b");
    assert_eq!(speaker(&step(&f, &h)), "user");
    h.said("user", "").said("writer", "c");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn a_user_proxy_without_a_limit_stops_after_a_hundred_auto_replies() {
    let f = two_agent("NEVER", json!({}));
    let mut h = History::default();
    h.user("hi");
    for _ in 0..DEFAULT_AUTO_REPLY_LIMIT {
        h.said("writer", "more").said("user", "");
    }
    h.said("writer", "more");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn never_mode_auto_replies_with_the_configured_default_auto_reply() {
    let f = two_agent("NEVER", json!({"default_auto_reply": "continue"}));
    let s = step(&f, History::default().user("hi").said("writer", "a"));
    let Step::Speak(speak) = s else { panic!("{s:?}") };
    assert_eq!(speak.via, Via::Fixed("continue".into()));
}

#[test]
fn a_user_proxy_with_a_model_auto_replies_with_it() {
    let f = two_agent("NEVER", json!({"model": "proxy_model"}));
    let s = step(&f, History::default().user("hi").said("writer", "a"));
    let Step::Speak(speak) = s else { panic!("{s:?}") };
    assert_eq!(speak.via, Via::Model("proxy_model".into()));
}

#[test]
fn a_human_reply_of_exactly_exit_finishes_the_run() {
    let f = two_agent("ALWAYS", json!({}));
    let mut h = History::default();
    h.user("hi").said("writer", "hello");
    let d = answered(&f, &h, Some("exit"));
    assert_eq!(d.step, finished(StopReason::HumanExit));
}

#[test]
fn exit_in_another_case_or_with_spaces_is_text_as_in_autogen() {
    let f = two_agent("ALWAYS", json!({}));
    for text in ["Exit", " exit ", "EXIT"] {
        let mut h = History::default();
        h.user("hi").said("writer", "hello");
        let asked = decide_on(&f, &h, &RunState::default(), None);
        h.human(text);
        // The ledger hands the policy the trimmed answer; the stored one is raw.
        let reply = HumanReply { request_id: InputRequestId::new(), message: Some(text.trim().into()) };
        assert_eq!(speaker(&decide_on(&f, &h, &asked.state, Some(&reply)).step), "writer", "{text:?}");
    }
}

#[test]
fn a_human_text_reply_is_the_proxys_turn_and_resets_its_counter() {
    let f = two_agent("TERMINATE", json!({"max_consecutive_auto_reply": 1}));
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("user", "").said("writer", "b");
    let asked = decide_on(&f, &h, &RunState::default(), None);
    h.human("more please");
    let reply = HumanReply { request_id: InputRequestId::new(), message: Some("more please".into()) };
    let d = decide_on(&f, &h, &asked.state, Some(&reply));
    assert_eq!(speaker(&d.step), "writer");
    assert_eq!(d.state, RunState::default());
    h.said("writer", "c");
    let Step::Speak(speak) = step(&f, &h) else { panic!() };
    assert!(speak.auto_reply, "the counter was reset by the human");
}

#[test]
fn an_empty_reply_uses_the_auto_reply() {
    let f = two_agent("ALWAYS", json!({"default_auto_reply": "go on"}));
    let mut h = History::default();
    h.user("hi").said("writer", "hello");
    let d = answered(&f, &h, None);
    let Step::Speak(speak) = d.step else { panic!() };
    assert_eq!((speak.agent.as_str(), speak.via), ("user", Via::Fixed("go on".into())));
    assert_eq!(d.state, RunState::default(), "the pending ask is consumed");
}

#[test]
fn an_empty_reply_after_a_termination_message_ends_the_chat() {
    for mode in ["ALWAYS", "TERMINATE"] {
        let f = two_agent(mode, json!({}));
        let mut h = History::default();
        h.user("hi").said("writer", "TERMINATE");
        assert_eq!(answered(&f, &h, None).step, finished(StopReason::Termination), "{mode}");
    }
}

#[test]
fn an_empty_reply_at_the_auto_reply_limit_uses_the_auto_reply_as_autogen_does() {
    let f = two_agent("TERMINATE", json!({"max_consecutive_auto_reply": 1}));
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("user", "").said("writer", "b");
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
    let s = step(&f, History::default().user("hi").said("writer", "a").said("user", "TERMINATE"));
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn a_human_message_never_meets_the_flow_wide_rule() {
    let f = two_agent("ALWAYS", json!({}));
    assert_eq!(speaker(&step(&f, History::default().user("TERMINATE"))), "writer");
    let mut h = History::default();
    h.user("hi").said("writer", "a").human("TERMINATE");
    assert_eq!(speaker(&step(&f, &h)), "writer");
}

#[test]
fn the_assistants_limit_defaults_to_a_hundred_and_no_human_resets_it() {
    let f = two_agent("ALWAYS", json!({}));
    let mut h = History::default();
    h.user("hi");
    for _ in 0..DEFAULT_AUTO_REPLY_LIMIT {
        h.said("writer", "more").human("go on");
    }
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn the_proxys_own_human_answer_resets_only_its_own_counter() {
    let f = flow(json!({
        "name": "pair",
        "agents": [{"name": "user", "kind": "user_proxy", "human_input_mode": "ALWAYS"},
                   {"name": "writer", "kind": "assistant", "model": "m", "max_consecutive_auto_reply": 2}],
        "chat": {"kind": "two_agent"}
    }));
    let mut h = History::default();
    h.user("hi").said("writer", "a").human("more");
    assert_eq!(speaker(&step(&f, &h)), "writer");
    h.said("writer", "b").human("more");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
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
    let ctx = Context { flow: &f, run_id: RUN, history: &h.0, state: &RunState::default(), reply: None };
    assert_eq!(run_messages(&ctx).len(), 2);
    assert_eq!(auto_replies(&ctx, "user"), 0);
    assert_eq!(speaker(&step(&f, &h)), "user");
}

#[test]
fn a_proxy_limited_to_zero_auto_replies_sends_an_empty_answer_as_is() {
    let f = two_agent("TERMINATE", json!({"max_consecutive_auto_reply": 0, "model": "proxy_model"}));
    let mut h = History::default();
    h.user("hi").said("writer", "a");
    let d = answered(&f, &h, None);
    let Step::Speak(speak) = d.step else { panic!() };
    assert_eq!((speak.agent.as_str(), speak.via), ("user", Via::Fixed(String::new())));
}
