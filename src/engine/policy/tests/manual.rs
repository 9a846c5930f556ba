//! Manual speaker selection: numbers, names, skipping, asking again.

use super::*;

fn answer_selection(f: &Flow, h: &History, state: &RunState, text: Option<&str>) -> Decision {
    let reply = HumanReply { request_id: InputRequestId::new(), message: text.map(str::to_owned) };
    decide_on(f, h, state, Some(&reply))
}

#[test]
fn a_number_picks_that_agent_counting_from_one() {
    let f = group("manual", "NEVER", 20);
    let d = answered(&f, History::default().user("hi"), Some("3"));
    let Step::Speak(speak) = d.step else { panic!("{:?}", d.step) };
    assert_eq!(speak.agent, "critic");
    assert_eq!(speak.selection, Some(Selection::by(SpeakerSelection::Manual)));
}

#[test]
fn an_agents_name_from_the_choices_picks_it_too() {
    let f = group("manual", "NEVER", 20);
    assert_eq!(speaker(&answered(&f, History::default().user("hi"), Some("critic")).step), "critic");
}

#[test]
fn an_empty_answer_or_q_means_round_robin() {
    let f = group("manual", "NEVER", 20);
    for text in [None, Some(""), Some("q")] {
        let d = answered(&f, History::default().user("hi"), text);
        let Step::Speak(speak) = d.step else { panic!("{:?}", d.step) };
        assert_eq!(speak.agent, "writer", "{text:?}");
        assert_eq!(speak.selection.unwrap().fallback, Some(SpeakerSelection::RoundRobin));
    }
}

#[test]
fn an_answer_naming_nobody_is_asked_once_more_then_round_robin_decides() {
    let f = group("manual", "NEVER", 20);
    let mut h = History::default();
    h.user("hi");
    let first = decide_on(&f, &h, &RunState::default(), None);
    let Step::AskHuman(ask) = &first.step else { panic!() };
    assert!(ask.prompt.contains("1: user\n2: writer\n3: critic"), "{}", ask.prompt);
    let again = answer_selection(&f, &h, &first.state, Some("9"));
    let Step::AskHuman(ask) = &again.step else { panic!("{:?}", again.step) };
    assert!(ask.prompt.starts_with("Invalid input. Please enter a number between 1 and 3."));
    assert_eq!(again.state.pending.as_ref().unwrap().retries, 1);
    let last = answer_selection(&f, &h, &again.state, Some("nobody"));
    assert_eq!(speaker(&last.step), "writer");
}
