//! Group chats end to end: round robin, human input in a group, `auto`
//! speaker selection.

use serde_json::json;

use super::harness::{Harness, group, script};
use super::{pairs, statuses};

#[tokio::test]
async fn a_never_mode_group_runs_round_robin_to_max_round() {
    let h = Harness::new().await;
    let flow = group("NEVER", script(&["draft"], 0), script(&["needs work"], 0), json!({"max_round": 5}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "completed");
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("max_round"));
    assert_eq!(
        h.transcript(&chat).await,
        pairs(&[
            ("user", "hi"),
            ("writer", "draft"),
            ("critic", "needs work"),
            ("user", ""),
            ("writer", "draft")
        ])
    );
    assert_eq!(h.messages(&chat).await[1].metadata["selected_by"], "round_robin");
    assert_eq!(h.statuses(&chat).await, statuses(&["ready", "running", "completed"]));
}

#[tokio::test]
async fn a_terminate_mode_group_asks_the_human_on_a_termination_message() {
    let h = Harness::new().await;
    let flow = group("TERMINATE", script(&["draft"], 0), script(&["ok TERMINATE"], 0), json!({}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, None).await;
    assert_eq!(w.settled().await, "completed");
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("termination"));
    assert_eq!(h.messages(&chat).await.len(), 3);
    let expected = ["ready", "running", "wait_for_human_input", "running", "completed"];
    assert_eq!(h.statuses(&chat).await, statuses(&expected));
}

#[tokio::test]
async fn an_always_mode_group_asks_the_human_on_the_proxys_turn() {
    let h = Harness::new().await;
    let flow = group("ALWAYS", script(&["draft"], 0), script(&["fine"], 0), json!({}));
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, Some("thanks")).await;
    assert_eq!(w.settled().await, "wait_for_human_input");
    h.answer(&chat, Some("exit")).await;
    assert_eq!(w.settled().await, "completed");
    assert_eq!(h.stop_reason(&chat).await.as_deref(), Some("human_exit"));
    assert_eq!(
        h.transcript(&chat).await,
        pairs(&[
            ("user", "hi"),
            ("writer", "draft"),
            ("critic", "fine"),
            ("user", "thanks"),
            ("writer", "draft"),
            ("critic", "fine"),
            ("user", "exit"),
        ])
    );
}

#[tokio::test]
async fn auto_selection_picks_the_named_agent() {
    let h = Harness::new().await;
    let mut flow = group(
        "NEVER",
        script(&["draft"], 0),
        script(&["review"], 0),
        json!({"speaker_selection": "auto", "selector_model": "selector", "max_round": 3}),
    );
    flow["models"]["selector"] = script(&["critic", "I pick writer."], 0);
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "completed");
    let messages = h.messages(&chat).await;
    let senders: Vec<&str> = messages.iter().map(|m| m.sender.as_str()).collect();
    assert_eq!(senders, vec!["user", "critic", "writer"]);
    assert_eq!(messages[1].metadata["selected_by"], "auto");
    assert_eq!(messages[1].metadata["attempts"], 1);
    assert!(messages[1].metadata.get("fallback").is_none());
}

#[tokio::test]
async fn auto_selection_falls_back_to_round_robin_after_three_bad_answers() {
    let h = Harness::new().await;
    let mut flow = group(
        "NEVER",
        script(&["draft"], 0),
        script(&["review"], 0),
        json!({"speaker_selection": "auto", "selector_model": "selector", "max_round": 2}),
    );
    flow["models"]["selector"] = script(&["nobody", "still nobody", "writer or critic", "critic"], 0);
    let chat = h.chat(flow).await;
    let mut w = h.watch(&chat).await;
    h.say(&chat, "hi").await;
    assert_eq!(w.settled().await, "completed");
    let messages = h.messages(&chat).await;
    assert_eq!(messages[1].sender, "writer", "round robin after the user proxy");
    let meta = &messages[1].metadata;
    assert_eq!((meta["selected_by"].as_str(), meta["attempts"].as_u64()), (Some("auto"), Some(3)));
    assert_eq!(meta["fallback"], "round_robin");
}
