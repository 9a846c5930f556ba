//! The operator's bounds on a run while it executes: a runaway flow (huge
//! `max_round`, unlimited auto replies, a 0 ms model with 200 KB replies) has
//! its replies cut at `runs.max_reply_bytes` and ends at
//! `runs.max_events_per_run`; a run past `runs.max_run_secs` ends even inside
//! a model call. Each ends with `run.failed`, its code naming the cap.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_configured};
use flowgate::model::{ChatStatus, EventKind};

/// The reproduction: nothing in the flow ever ends the run.
fn runaway(reply: &str, delay_ms: u64) -> Value {
    json!({
        "name": "runaway",
        "models": {"script": {"provider": "scripted", "replies": [reply], "delay_ms": delay_ms}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER",
             "max_consecutive_auto_reply": 4_294_967_295_u64, "default_auto_reply": "go on"},
            {"name": "alice", "kind": "assistant", "model": "script", "max_consecutive_auto_reply": 4_294_967_295_u64},
            {"name": "bob", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "group", "speaker_selection": "round_robin", "max_round": 4_294_967_295_u64}
    })
}

/// Lifts the older caps so only the new bounds can end the run.
fn uncapped(c: &mut flowgate::config::Config) {
    c.runs.max_round = u32::MAX;
    c.runs.max_consecutive_auto_reply = u32::MAX;
}

/// Runs the runaway until the chat is in `error`; returns `error.code`.
async fn run_to_failure(app: &TestApp, flow: Value) -> (String, Value) {
    app.put_flow("runaway", flow).await;
    let chat = app.create_chat("runaway").await;
    app.say(&chat, "start").await;
    app.wait_for_status(&chat, 0, ChatStatus::Error).await;
    let failed = app.events(&chat).await.into_iter().rev().find(|e| e.kind == EventKind::RunFailed);
    let failed = failed.expect("a run.failed event");
    assert_eq!(app.chat(&chat).await["error"]["code"], failed.data["code"]);
    (chat, failed.data)
}

#[tokio::test]
async fn a_runaway_flow_with_200_kb_replies_is_cut_at_the_reply_cap_and_ends_at_the_event_cap() {
    let app = spawn_configured(|c| {
        uncapped(c);
        c.runs.max_reply_bytes = 1000;
        c.runs.max_events_per_run = 40;
    })
    .await;
    let reply = "word ".repeat(40_000); // 200 KB, streamed word by word
    let (chat, failed) = run_to_failure(&app, runaway(&reply, 0)).await;
    assert_eq!(failed["code"], "max_events_per_run", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("runs.max_events_per_run"), "{failed}");
    let messages = app.messages(&chat).await;
    let started = messages[0]["seq"].as_u64().unwrap();
    let of_run = app.events(&chat).await.iter().filter(|e| e.seq >= Some(started)).count();
    assert!(of_run <= 40 + 2, "at most the cap and the run's end: {of_run}");
    let spoken: Vec<&Value> = messages.iter().filter(|m| m["sender"] != "user").collect();
    assert!(spoken.len() > 5, "the run went on after cut replies: {}", spoken.len());
    for m in spoken {
        let content = m["content"].as_str().unwrap();
        assert!(content.len() <= 1000, "a reply of {} bytes", content.len());
        assert_eq!(m["metadata"]["truncated"], true, "{}", m["metadata"]);
    }
}

#[tokio::test]
async fn a_run_past_its_wall_time_ends_inside_a_model_call_with_max_run_secs() {
    let app = spawn_configured(|c| {
        uncapped(c);
        c.runs.max_run_secs = 1;
    })
    .await;
    // 200 words, 50 ms each: one reply alone takes ten times the cap.
    let reply = "slow ".repeat(200);
    let (chat, failed) = run_to_failure(&app, runaway(&reply, 50)).await;
    assert_eq!(failed["code"], "max_run_secs", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("runs.max_run_secs"), "{failed}");
    let messages = app.messages(&chat).await;
    assert_eq!(messages.len(), 1, "the cut call stored nothing: {messages:?}");
}
