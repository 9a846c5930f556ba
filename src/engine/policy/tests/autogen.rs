//! AutoGen's termination (no flow-wide `chat.termination`): each agent's own
//! rule on the message it answers, and a group manager that ends on exactly
//! `TERMINATE`.

use serde_json::json;

use super::*;

/// `user` (proxy: mode, rule endswith TERMINATE) and `assistant` (default rule).
fn pair(mode: &str) -> Flow {
    flow(json!({
        "name": "pair",
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": mode,
             "termination": {"endswith": "TERMINATE"}},
            {"name": "writer", "kind": "assistant", "model": "m"}
        ],
        "chat": {"kind": "two_agent"}
    }))
}

/// Members `writer`, `critic` (default rules) and, when `proxy_mode` is
/// given, the user proxy last, with rule endswith TERMINATE.
fn team(selection: &str, proxy_mode: Option<&str>) -> Flow {
    let mut agents = vec![
        json!({"name": "writer", "kind": "assistant", "model": "m"}),
        json!({"name": "critic", "kind": "assistant", "model": "m"}),
    ];
    if let Some(mode) = proxy_mode {
        agents.push(json!({"name": "user", "kind": "user_proxy", "human_input_mode": mode,
                           "termination": {"endswith": "TERMINATE"}}));
    }
    flow(json!({"name": "team", "agents": agents,
                "chat": {"kind": "group", "speaker_selection": selection, "max_round": 20}}))
}

#[test]
fn the_proxy_checks_its_own_rule_on_the_assistants_message() {
    let f = pair("NEVER");
    let s = step(&f, History::default().user("hi").said("writer", "done. TERMINATE"));
    assert_eq!(s, finished(StopReason::Termination));
}

#[test]
fn the_assistant_checks_its_default_rule_exactly_terminate_on_what_it_answers() {
    let f = pair("ALWAYS");
    assert_eq!(step(&f, History::default().user("TERMINATE")), finished(StopReason::Termination));
    assert_eq!(speaker(&step(&f, History::default().user("TERMINATE now"))), "writer");
}

#[test]
fn a_group_ends_only_on_exactly_terminate_when_the_proxy_does_not_speak() {
    let f = team("round_robin", None);
    let mut h = History::default();
    h.user("hi").said("writer", "Looks good. TERMINATE");
    assert_eq!(speaker(&step(&f, &h)), "critic", "the proxy's rule is not the manager's");
    h.said("critic", "TERMINATE");
    assert_eq!(step(&f, &h), finished(StopReason::Termination));
}

#[test]
fn a_group_member_proxy_applies_its_rule_when_it_is_to_speak() {
    let f = team("round_robin", Some("NEVER"));
    let mut h = History::default();
    h.user("hi").said("writer", "draft").said("critic", "ok TERMINATE");
    assert_eq!(step(&f, &h), finished(StopReason::Termination));
    let f = team("round_robin", Some("TERMINATE"));
    let d = decide_on(&f, &h, &RunState::default(), None);
    let Step::AskHuman(ask) = &d.step else { panic!("{:?}", d.step) };
    assert!(ask.prompt.starts_with("Please give feedback to chat_manager."), "{}", ask.prompt);
}

#[test]
fn a_group_assistant_stops_at_its_own_limit_whoever_spoke_between() {
    let f = flow(json!({
        "name": "team",
        "agents": [{"name": "writer", "kind": "assistant", "model": "m", "max_consecutive_auto_reply": 1},
                   {"name": "critic", "kind": "assistant", "model": "m"}],
        "chat": {"kind": "group", "max_round": 10}
    }));
    let mut h = History::default();
    h.user("hi").said("writer", "a").said("critic", "b");
    assert_eq!(step(&f, &h), finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn the_limit_is_checked_before_the_rule_as_autogen_does() {
    let f = flow(json!({
        "name": "pair",
        "agents": [{"name": "user", "kind": "user_proxy", "max_consecutive_auto_reply": 0},
                   {"name": "writer", "kind": "assistant", "model": "m"}],
        "chat": {"kind": "two_agent"}
    }));
    let s = step(&f, History::default().user("hi").said("writer", "TERMINATE"));
    assert_eq!(s, finished(StopReason::MaxConsecutiveAutoReply));
}

#[test]
fn an_agents_own_rule_and_the_flow_wide_rule_are_not_combined() {
    let mut f = pair("NEVER");
    f.chat.termination = Some(Termination::autogen_default());
    let issues = f.validate(&["m".to_owned()].into()).unwrap_err();
    assert_eq!(issues[0].path, "agents[0].termination");
}
