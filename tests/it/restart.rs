//! A process restart loses nothing: a chat stopped mid-run resumes from its
//! history, and a chat waiting for input still waits, with every message and
//! event exactly once.

use std::collections::HashSet;

use crate::support::app::{TestApp, spawn_app};
use flowgate::model::{ChatStatus, EventKind};
use serde_json::Value;

fn senders(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["sender"].as_str().unwrap().to_owned()).collect()
}

async fn assert_exactly_once(app: &TestApp, chat: &str) {
    let events = app.events(chat).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seq has a gap or a repeat");
    let messages = app.messages(chat).await;
    let ids: HashSet<_> = messages.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), messages.len(), "a message is stored twice");
    let created = events.iter().filter(|e| e.kind == EventKind::MessageCreated).count();
    assert_eq!(created, messages.len());
}

#[tokio::test]
async fn a_run_stopped_mid_way_resumes_after_restart_with_every_message_once() {
    let app = spawn_app().await;
    app.put_flow("slow", crate::support::flows::slow(15)).await;
    // A control chat runs to the end undisturbed.
    let control = app.create_chat("slow").await;
    app.say(&control, "go").await;
    app.wait_for_status(&control, 0, ChatStatus::Completed).await;
    let expected = senders(&app.messages(&control).await);
    assert!(expected.len() >= 4, "{expected:?}");
    // The same flow, stopped after its first agent message.
    let chat = app.create_chat("slow").await;
    app.say(&chat, "go").await;
    app.wait_for(&chat, |e| e.kind == EventKind::MessageCreated && e.data["sender"] == "assistant").await;
    let app = app.restart().await;
    app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    assert_eq!(senders(&app.messages(&chat).await), expected);
    assert_exactly_once(&app, &chat).await;
    let runs = app.events(&chat).await.iter().filter(|e| e.kind == EventKind::RunStarted).count();
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn a_chat_waiting_for_input_still_waits_after_restart_and_continues() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    app.say(&chat, "hi").await;
    app.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await;
    let before = app.chat(&chat).await;
    let app = app.restart().await;
    let after = app.chat(&chat).await;
    assert_eq!(after["status"], "wait_for_human_input");
    assert_eq!(after["pending_input"], before["pending_input"]);
    assert_eq!(after["last_seq"], before["last_seq"]);
    app.answer_then(&chat, "more please", ChatStatus::WaitForHumanInput).await;
    app.answer_then(&chat, "exit", ChatStatus::Completed).await;
    assert_exactly_once(&app, &chat).await;
    let human: Vec<_> =
        app.messages(&chat).await.into_iter().filter(|m| m["role"] == "human_input").collect();
    assert_eq!(human.len(), 2);
}

#[tokio::test]
async fn keys_and_flows_survive_a_restart() {
    let app = spawn_app().await;
    let (_, key) = app.post("/api-keys", serde_json::json!({"name": "keep"})).await;
    app.put_flow("kept", crate::support::flows::two_agent("NEVER", &["x"])).await;
    let app = app.restart().await;
    let client = crate::support::app::client_with_key(key["secret"].as_str().unwrap());
    let (status, _) = crate::support::app::send(client.get(app.url("/flows/kept"))).await;
    assert_eq!(status, 200);
}
