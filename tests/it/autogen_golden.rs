//! Replays the AutoGen 0.2.35 golden transcripts
//! (`tests/fixtures/autogen_golden/`, see `scripts/autogen_golden/README.md`)
//! through the real engine: every model agent answers from its own fake
//! OpenAI server with the recorded script, the human's and the manual
//! selector's answers come through the chat service's input operation, and
//! the transcript, the stop reason of every run, the human asks and every
//! model request's messages must be AutoGen's.
//!
//! Intentional differences are listed in [`NOT_REPLAYED`] and in
//! [`compare`]: Flowgate keeps the human's `exit` in the chat history (as a
//! `human_input` message no model is shown), which AutoGen never stores.

mod scenario;

use std::collections::HashMap;

use flowgate::model::{ChatId, ErrorCode, EventKind, InputKind, Role};
use serde_json::{Value, json};

use crate::engine_runs::harness::{Harness, operator};
use crate::support::fake_openai::{Behaviour, FakeOpenAi};
use scenario::{Golden, stop_reason};

/// Scenarios replayed identically.
const REPLAYED: &[&str] = &[
    "always_empty_answer",
    "always_empty_on_termination",
    "always_exit",
    "always_exit_then_followup",
    "always_exit_variants",
    "always_text_answer",
    "always_text_on_termination",
    "assistant_default_system_message",
    "assistant_limit_never_proxy",
    "assistant_limit_with_human",
    "group_always_proxy_member",
    "group_assistant_limit",
    "group_auto_all_fail",
    "group_auto_ambiguous",
    "group_auto_repeat_speaker",
    "group_auto_retry_garbage",
    "group_auto_valid",
    "group_critic_terminate_no_manager_rule",
    "group_followup",
    "group_manager_endswith_rule",
    "group_manager_exact_terminate",
    "group_manual_empty",
    "group_manual_number",
    "group_never_proxy_member_terminate",
    "group_proxy_opens_as_member",
    "group_random_seed",
    "group_round_robin_max_round",
    "group_terminate_proxy_member",
    "never_default_auto_reply",
    "never_zero_limit",
    "term_default_empty",
    "term_endswith_lambda",
    "term_equals_exact",
    "terminate_mode_empty",
    "terminate_mode_exit",
    "terminate_mode_limit",
    "terminate_mode_text",
    "terminate_zero_limit",
    "two_agent_followup",
    "two_agent_max_auto_reply",
    "two_agent_terminate_endswith",
    "user_proxy_with_model",
];

/// Scenarios Flowgate does not replay, and why.
const NOT_REPLAYED: &[(&str, &str)] = &[
    (
        "two_agent_followup_cleared",
        "a follow-up run with clear_history=True: a Flowgate chat keeps its history",
    ),
    (
        "group_manual_name",
        "Flowgate takes an agent's name as a manual selection (its input request lists the names as choices); AutoGen takes only numbers",
    ),
];

/// Answers a manual speaker selection with the recorded answers. An answer
/// AutoGen asked again for (out of range) is refused here with a 422 while the
/// chat keeps waiting: the same second ask, over an API.
async fn select(h: &Harness, chat: &ChatId, answers: &mut impl Iterator<Item = String>, seen: &mut Seen) {
    loop {
        seen.selector_asks += 1;
        let answer = answers.next().expect("AutoGen answered this selection");
        let answer = Some(answer.as_str()).filter(|a| !a.is_empty()).map(Some);
        match h.chats.submit_input(&operator(), chat, None, answer).await {
            Ok(_) => return,
            Err(e) if e.code == ErrorCode::InvalidRequest && e.details.contains_key("choices") => {}
            Err(e) => panic!("the selection was refused: {e}"),
        }
    }
}

/// What one replay saw.
#[derive(Default)]
struct Seen {
    asks: Vec<(String, String)>,
    selector_asks: usize,
}

async fn replay(name: &str) {
    let g = Golden::load(name);
    assert_eq!(g.not_expressible(), None, "{name}");
    let mut fakes: HashMap<String, FakeOpenAi> = HashMap::new();
    for agent in g.model_agents() {
        let fake = FakeOpenAi::start().await;
        for reply in g.scenario["replies"][&agent].as_array().into_iter().flatten() {
            fake.push(Behaviour::Stream(vec![reply.as_str().unwrap_or_default().to_owned()]));
        }
        fakes.insert(agent, fake);
    }
    let flow = g.flow(|agent| fakes[agent].base_url());
    let h = Harness::new().await;
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    let mut humans = strings(&g.scenario["human_inputs"]).into_iter();
    let mut selections = strings(&g.scenario["selector_inputs"]).into_iter();
    let mut seen = Seen::default();
    for run in g.scenario["runs"].as_array().expect("runs") {
        h.say(&chat, run["message"].as_str().expect("message")).await;
        loop {
            let status = w.settled().await;
            if status != "wait_for_human_input" {
                assert_eq!(
                    status,
                    "completed",
                    "{name}: {:?}",
                    h.chats.get(&operator(), &chat).await.unwrap().chat.error
                );
                break;
            }
            let pending = h.chats.get(&operator(), &chat).await.unwrap().chat.pending_input.expect("an ask");
            if pending.kind == InputKind::SelectSpeaker {
                select(&h, &chat, &mut selections, &mut seen).await;
                continue;
            }
            seen.asks.push((pending.agent.clone(), pending.prompt.clone()));
            let answer = humans
                .next()
                .unwrap_or_else(|| panic!("{name}: asked more than AutoGen: {}", pending.prompt));
            h.answer(&chat, Some(answer.as_str()).filter(|a| !a.is_empty())).await;
        }
    }
    compare(&g, &h, &chat, &seen, &fakes).await;
}

async fn compare(g: &Golden, h: &Harness, chat: &ChatId, seen: &Seen, fakes: &HashMap<String, FakeOpenAi>) {
    let name = &g.name;
    let rec = &g.recorded;
    // Flowgate keeps the human's `exit` as a human_input message; AutoGen does not.
    let messages = h.messages(chat).await;
    let ours: Vec<(String, String)> = messages
        .iter()
        .filter(|m| !(m.role == Role::HumanInput && m.content == "exit"))
        .map(|m| (m.sender.clone(), m.content.clone()))
        .collect();
    let theirs: Vec<(String, String)> = rec["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (text(&m["sender"]), text(&m["content"])))
        .collect();
    if g.scenario["comparable"] == "speakers_only" {
        assert_eq!(ours.len(), theirs.len(), "{name}: message count");
        assert_eq!(ours[0], theirs[0], "{name}: the opening message");
        let allowed = g.scenario["chat"]["members"].as_array().expect("members");
        assert!(ours[1..].iter().all(|(s, _)| allowed.contains(&json!(s))), "{name}: {ours:?}");
    } else {
        assert_eq!(ours, theirs, "{name}: transcript");
    }
    let events = h.events(chat).await;
    let stops: Vec<String> = events
        .iter()
        .filter(|e| e.kind == EventKind::RunCompleted)
        .map(|e| text(&e.data["stop_reason"]))
        .collect();
    let expected: Vec<String> =
        rec["runs"].as_array().expect("runs").iter().map(|r| stop_reason(&r["stop_reason"])).collect();
    assert_eq!(stops, expected, "{name}: stop reasons");
    let asks: Vec<(String, String)> = rec["human_asks"]
        .as_array()
        .expect("human_asks")
        .iter()
        .map(|a| (text(&a["agent"]), text(&a["prompt"]).trim_end_matches(": ").to_owned()))
        .collect();
    assert_eq!(seen.asks, asks, "{name}: human asks");
    assert_eq!(
        seen.selector_asks,
        rec["selector_asks"].as_array().map_or(0, Vec::len),
        "{name}: selector asks"
    );
    if g.scenario["comparable"] == "exact" {
        compare_requests(g, fakes);
    }
}

/// Every model request, per agent in call order: roles, names, contents.
fn compare_requests(g: &Golden, fakes: &HashMap<String, FakeOpenAi>) {
    for (agent, fake) in fakes {
        let theirs: Vec<Value> = g.recorded["model_requests"]
            .as_array()
            .expect("model_requests")
            .iter()
            .filter(|r| r["agent"] == agent.as_str())
            .map(|r| normalised(&r["messages"]))
            .collect();
        let ours: Vec<Value> = fake.requests().iter().map(|r| normalised(&r.body["messages"])).collect();
        assert_eq!(ours.len(), theirs.len(), "{}: requests of {agent}", g.name);
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(o, t, "{}: request {i} of {agent}", g.name);
        }
    }
}

fn normalised(messages: &Value) -> Value {
    let list = messages.as_array().expect("a message list");
    Value::Array(
        list.iter()
            .map(|m| {
                let mut out = json!({"role": m["role"], "content": m["content"]});
                if let Some(n) = m.get("name").filter(|n| !n.is_null()) {
                    out["name"] = n.clone();
                }
                out
            })
            .collect(),
    )
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

#[test]
fn every_recorded_scenario_is_replayed_or_listed_with_its_reason() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/autogen_golden/recorded");
    let mut all: Vec<String> = std::fs::read_dir(dir)
        .expect("recordings")
        .map(|e| e.expect("entry").file_name().to_string_lossy().trim_end_matches(".json").to_owned())
        .collect();
    all.sort();
    let mut listed: Vec<String> =
        REPLAYED.iter().chain(NOT_REPLAYED.iter().map(|(n, _)| n)).map(|n| n.to_string()).collect();
    listed.sort();
    assert_eq!(all, listed);
    assert!(REPLAYED.len() >= 20);
    for (name, reason) in NOT_REPLAYED {
        assert!(!reason.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn every_replayable_autogen_transcript_is_replayed_identically() {
    let mut failures = Vec::new();
    for name in REPLAYED {
        let outcome = tokio::spawn(replay(name)).await;
        if let Err(e) = outcome {
            let message = e.into_panic();
            let text = message
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        REPLAYED.len(),
        failures.join("\n\n")
    );
}
