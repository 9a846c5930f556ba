//! End-to-end runs: `ChatService` + `Engine` on the real `SqliteStore` and
//! `MemoryBus`, with scripted models. Each test reads as the contract (§3, §4)
//! and `docs/flows.md` promise.

mod groups;
pub(crate) mod harness;

use flowgate::model::{EventKind, Role};
use harness::{Harness, group, operator, script, two_agent};
use serde_json::json;

pub(crate) fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(s, c)| (s.to_string(), c.to_string())).collect()
}

pub(crate) fn statuses(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn always_mode_asks_the_human_after_every_assistant_message() {
    let h = Harness::new().await;
    let chat = h.chat(two_agent("ALWAYS", &["Hello", "Bye TERMINATE"], json!({}))).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, Some("more")).await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, None).await;
    assert_eq!(w.settled().await, "completed");
    assert_eq!(
        h.transcript(&chat).await,
        pairs(&[("user", "hi"), ("writer", "Hello"), ("user", "more"), ("writer", "Bye TERMINATE")])
    );
    assert_eq!(h.messages(&chat).await[2].role, Role::HumanInput);
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("termination"));
    let expected = ["ready", "running", "wait_for_human_input", "running"];
    let mut expected = statuses(&expected);
    expected.extend(statuses(&["wait_for_human_input", "running", "completed"]));
    assert_eq!(h.statuses(&chat).await, expected);
}

#[tokio::test]
async fn terminate_mode_auto_replies_until_a_termination_message_and_exit_completes() {
    let h = Harness::new().await;
    let flow =
        two_agent("TERMINATE", &["one", "two", "done TERMINATE"], json!({"default_auto_reply": "Go on."}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    let pending = h.chats.get(&operator(), &chat).await.unwrap().chat.pending_input;
    assert_eq!(pending.map(|p| p.agent).as_deref(), Some("user"));
    h.answer(&chat, Some("exit")).await;
    assert_eq!(w.settled().await, "completed");
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("human_exit"));
    assert_eq!(
        h.transcript(&chat).await,
        pairs(&[
            ("user", "hi"),
            ("writer", "one"),
            ("user", "Go on."),
            ("writer", "two"),
            ("user", "Go on."),
            ("writer", "done TERMINATE"),
            ("user", "exit"),
        ])
    );
    let expected = ["ready", "running", "wait_for_human_input", "running", "completed"];
    assert_eq!(h.statuses(&chat).await, statuses(&expected));
}

#[tokio::test]
async fn never_mode_runs_without_the_human_to_the_auto_reply_limit() {
    let h = Harness::new().await;
    let chat = h.chat(two_agent("NEVER", &["a"], json!({"max_consecutive_auto_reply": 2}))).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "completed");
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("max_consecutive_auto_reply"));
    assert_eq!(
        h.transcript(&chat).await,
        pairs(&[
            ("user", "hi"),
            ("writer", "a"),
            ("user", ""),
            ("writer", "a"),
            ("user", ""),
            ("writer", "a")
        ])
    );
    assert_eq!(h.statuses(&chat).await, statuses(&["ready", "running", "completed"]));
}

#[tokio::test]
async fn an_empty_reply_uses_the_auto_reply() {
    let h = Harness::new().await;
    let chat = h.chat(two_agent("ALWAYS", &["Hello"], json!({"default_auto_reply": "Go on."}))).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, None).await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    let messages = h.messages(&chat).await;
    assert_eq!((messages[2].sender.as_str(), messages[2].content.as_str()), ("user", "Go on."));
    assert_eq!(messages[2].role, Role::Assistant);
    assert_eq!(messages[2].metadata["auto_reply"], true);
    assert_eq!(messages.len(), 4, "the writer answered the auto reply");
}

#[tokio::test]
async fn cancel_during_a_slow_stream_stops_the_run_promptly_and_keeps_stored_messages() {
    let h = Harness::new().await;
    let long = vec!["word"; 1000].join(" ");
    let flow = group("NEVER", script(&["draft"], 0), script(&[long.as_str()], 20), json!({}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    let delta = w.next_where(|e| e.kind == EventKind::MessageDelta && e.data["sender"] == "critic").await;
    assert_eq!(delta.seq, None, "deltas are ephemeral");
    h.chats.cancel(&operator(), &chat).await.unwrap();
    // The stream would take 20 s; the task must end well within the wait bound.
    h.idle().await;
    assert_eq!(h.status(&chat).await.as_str(), "ready");
    assert_eq!(h.transcript(&chat).await, pairs(&[("user", "hi"), ("writer", "draft")]));
    let cancelled = h.events(&chat).await;
    assert!(cancelled.iter().any(|e| e.kind == EventKind::RunCancelled));
    let streamed_id = delta.data["message_id"].as_str().unwrap().to_owned();
    assert!(h.messages(&chat).await.iter().all(|m| m.id != streamed_id));
}

#[tokio::test]
async fn deltas_and_the_stored_message_share_one_id() {
    let h = Harness::new().await;
    let chat = h.chat(two_agent("ALWAYS", &["several words here"], json!({}))).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    let delta = w.next_where(|e| e.kind == EventKind::MessageDelta).await;
    let created = w.message_from("writer").await;
    assert_eq!(delta.data["message_id"], created["id"]);
    assert_eq!(delta.data["sender"], "writer");
    assert_eq!(created["metadata"]["scripted"], true);
}

#[tokio::test]
async fn seq_has_no_gaps_after_a_mixed_run() {
    let h = Harness::new().await;
    let flow = two_agent("TERMINATE", &["one", "done TERMINATE"], json!({"default_auto_reply": "Go on."}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, Some("and more")).await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.chats.cancel(&operator(), &chat).await.unwrap();
    assert_eq!(w.settled().await, "ready");
    h.say(&chat, "again").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, Some("exit")).await;
    assert_eq!(w.settled().await, "completed");

    let events = h.events(&chat).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let last_seq = h.chats.get(&operator(), &chat).await.unwrap().chat.last_seq;
    assert_eq!(last_seq, events.len() as u64);
    for m in h.messages(&chat).await {
        let e = &events[(m.seq - 1) as usize];
        assert_eq!((e.kind, e.data["id"].as_str()), (EventKind::MessageCreated, Some(m.id.as_str())));
    }
}

#[tokio::test]
async fn an_interrupted_run_resumes_with_every_message_exactly_once() {
    let mut h = Harness::new().await;
    let replies = ["r0 a b c d e", "r1 a b c d e", "r2 a b c d e", "r3 a b c d e"];
    let mut flow =
        two_agent("NEVER", &replies, json!({"max_consecutive_auto_reply": 3, "default_auto_reply": "next"}));
    flow["models"]["writer_model"]["delay_ms"] = json!(10);
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    w.message_from("writer").await;
    w.message_from("writer").await;
    assert_eq!(h.restart().await, 1, "the running chat is resumed");
    assert_eq!(w.settled().await, "completed");
    let mut expected = vec![("user", "hi")];
    for r in replies {
        expected.push(("writer", r));
        expected.push(("user", "next"));
    }
    expected.pop();
    assert_eq!(h.transcript(&chat).await, pairs(&expected));
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("max_consecutive_auto_reply"));
}

#[tokio::test]
async fn an_invalid_flow_fails_the_run_with_flow_invalid() {
    let h = Harness::new().await;
    let mut flow = two_agent("NEVER", &["a"], json!({}));
    flow["agents"][1]["model"] = json!("no_such_model");
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "error");
    let error = h.chats.get(&operator(), &chat).await.unwrap().chat.error.unwrap();
    assert_eq!(error.code, "flow_invalid");
    assert!(error.message.contains("no_such_model"), "{}", error.message);
    assert!(h.events(&chat).await.iter().any(|e| e.kind == EventKind::RunFailed));
}

#[tokio::test]
async fn a_model_that_cannot_be_called_fails_the_run_with_model_error() {
    let h = Harness::new().await;
    let mut flow = two_agent("NEVER", &["a"], json!({}));
    // Nothing listens on port 9: the call cannot connect.
    flow["models"]["writer_model"] = json!({
        "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_secs": 5
    });
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "error");
    let error = h.chats.get(&operator(), &chat).await.unwrap().chat.error.unwrap();
    assert_eq!(error.code, "model_error");
    assert!(error.message.contains("writer_model"), "{}", error.message);
}

#[tokio::test]
async fn every_answer_resumes_the_run_however_fast_it_comes() {
    let h = Harness::new().await;
    let chat = h.chat(two_agent("ALWAYS", &["ok"], json!({}))).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    for i in 0..15 {
        assert_eq!(w.settled().await, "wait_for_human_input", "round {i}");
        h.answer(&chat, Some("go")).await;
    }
    assert_eq!(w.settled().await, "wait_for_human_input");
    assert_eq!(h.messages(&chat).await.len(), 2 + 15 * 2);
}

#[tokio::test]
async fn a_chat_started_many_times_is_driven_by_one_task() {
    let h = Harness::new().await;
    let flow = two_agent("NEVER", &["a"], json!({"max_consecutive_auto_reply": 3}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    for _ in 0..20 {
        h.engine.start(&chat);
    }
    assert_eq!(w.settled().await, "completed");
    h.idle().await;
    assert_eq!(h.messages(&chat).await.len(), 1 + 4 + 3);
}
