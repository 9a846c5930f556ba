//! The operator's caps bound every run whatever its flow asks (clamped at
//! registration with a warning, enforced while it runs), and tenant quotas
//! refuse more chats or concurrent runs with 429 `quota_exceeded`.

use serde_json::{Value, json};

use crate::support::app::{TestApp, send, spawn_configured};
use crate::support::flows::slow;
use flowgate::model::{ChatStatus, EventKind};

async fn register(app: &TestApp, id: &str, flow: Value) -> Value {
    let (status, body) = send(app.client.put(app.url(&format!("/flows/{id}"))).json(&flow)).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    body
}

fn warned_paths(registered: &Value) -> Vec<String> {
    let warnings = registered["warnings"].as_array().cloned().unwrap_or_default();
    warnings.iter().filter_map(|w| w["path"].as_str().map(str::to_owned)).collect()
}

async fn stop_reason(app: &TestApp, chat: &str) -> Option<String> {
    let events = app.events(chat).await;
    let done = events.iter().rev().find(|e| e.kind == EventKind::RunCompleted)?;
    done.data["stop_reason"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_runaway_group_flow_is_clamped_at_registration_and_its_run_stops_at_the_cap() {
    let app = spawn_configured(|c| c.runs.max_round = 5).await;
    let runaway = json!({
        "name": "runaway",
        "models": {"script": {"provider": "scripted", "replies": ["more", "again"]}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "default_auto_reply": "go"},
            {"name": "alice", "kind": "assistant", "model": "script"},
            {"name": "bob", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "group", "max_round": 1_000_000}
    });
    let registered = register(&app, "runaway", runaway).await;
    assert_eq!(warned_paths(&registered), ["chat.max_round"], "{registered}");
    let chat = app.create_chat("runaway").await;
    app.say(&chat, "start").await;
    app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    assert_eq!(app.messages(&chat).await.len(), 5);
    assert_eq!(stop_reason(&app, &chat).await.as_deref(), Some("max_round"));
}

#[tokio::test]
async fn a_proxy_asking_a_million_auto_replies_stops_at_the_operators_cap() {
    let app = spawn_configured(|c| c.runs.max_consecutive_auto_reply = 2).await;
    let flow = json!({
        "name": "chatty",
        "models": {"script": {"provider": "scripted", "replies": ["and then"]}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER",
             "max_consecutive_auto_reply": 1_000_000, "default_auto_reply": "go on"},
            {"name": "assistant", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "two_agent"}
    });
    let registered = register(&app, "chatty", flow).await;
    assert!(warned_paths(&registered).contains(&"agents[0].max_consecutive_auto_reply".to_owned()));
    let chat = app.create_chat("chatty").await;
    app.say(&chat, "start").await;
    app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    assert_eq!(stop_reason(&app, &chat).await.as_deref(), Some("max_consecutive_auto_reply"));
    assert!(app.messages(&chat).await.len() <= 6, "at most two auto replies");
}

#[tokio::test]
async fn a_tenant_at_its_chat_quota_gets_quota_exceeded() {
    let app = spawn_configured(|c| c.runs.max_chats_per_tenant = 2).await;
    app.create_chat("demo").await;
    app.create_chat("demo").await;
    let (status, body) = app.post("/chats", json!({"from_flow": "demo"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["quota"], "runs.max_chats_per_tenant");
    assert_eq!(body["error"]["retryable"], false);
}

#[tokio::test]
async fn a_tenant_at_its_concurrent_run_quota_cannot_start_another_run() {
    let app = spawn_configured(|c| c.runs.max_concurrent_runs_per_tenant = 1).await;
    register(&app, "slow", slow(200)).await;
    let first = app.create_chat("slow").await;
    let second = app.create_chat("slow").await;
    app.say(&first, "go").await;
    let (status, body) = app.post(&format!("/chats/{second}/messages"), json!({"content": "go"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["quota"], "runs.max_concurrent_runs_per_tenant");
    let (status, _) = app.post(&format!("/chats/{first}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    let (status, body) = app.post(&format!("/chats/{second}/messages"), json!({"content": "go"})).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_tenant_keeping_its_quota_of_message_text_cannot_add_more_until_a_chat_goes() {
    let app = spawn_configured(|c| c.runs.max_stored_bytes_per_tenant = 2_000).await;
    app.put_flow("pair", crate::support::flows::two_agent("NEVER", &["ok"])).await;
    let first = app.create_chat("pair").await;
    let long = "x".repeat(2_500);
    let (status, _) = app.post(&format!("/chats/{first}/messages"), json!({"message": long})).await;
    assert_eq!(status, 202, "under the quota, a message is taken");
    app.wait_for_status(&first, 0, ChatStatus::Completed).await;
    let second = app.create_chat("pair").await;
    let (status, body) = app.post(&format!("/chats/{second}/messages"), json!({"message": "more"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{body}");
    assert_eq!(body["error"]["quota"], "runs.max_stored_bytes_per_tenant");
    assert_eq!(app.delete(&format!("/chats/{first}")).await.0, 204);
    let (status, body) = app.post(&format!("/chats/{second}/messages"), json!({"message": "more"})).await;
    assert_eq!(status, 202, "deleting a chat gives its bytes back: {body}");
}
