//! Answers to a pending `tool_calls` request that are refused, each with the
//! contract's error envelope, and the chat still waiting; the same results
//! sent twice are answered once (idempotent by call id).

use crate::support::app::TestApp;
use crate::support::fake_openai::{Behaviour, FakeOpenAi};
use crate::tools::{call, functions_chat, pending, setup};
use flowgate::model::ChatStatus;
use serde_json::{Value, json};

/// A chat waiting on two calls, `c1` and `c2`.
async fn waiting_on_two_calls() -> (FakeOpenAi, TestApp, String) {
    let (fake, app) = setup("default").await;
    fake.push(Behaviour::ToolCalls(vec![
        call("c1", "sh", r#"{"script":"ls"}"#),
        call("c2", "python", r#"{"cell":"1"}"#),
    ]));
    fake.push(Behaviour::Stream(vec!["TERMINATE".into()]));
    let chat = functions_chat(&app).await;
    app.say(&chat, "go").await;
    pending(&app, &chat, 0).await;
    (fake, app, chat)
}

async fn input(app: &TestApp, chat: &str, body: Value) -> (u16, Value) {
    app.post(&format!("/chats/{chat}/input"), body).await
}

fn result(call_id: &str, content: &str) -> Value {
    json!({"call_id": call_id, "content": content})
}

#[tokio::test]
async fn bad_tool_results_are_refused_with_their_errors_and_the_chat_keeps_waiting() {
    let (_fake, app, chat) = waiting_on_two_calls().await;
    let before = app.chat(&chat).await;
    let cases = [
        (json!({"tool_results": [result("c1", "a"), result("nope", "b")]}), 422, "unknown_tool_call"),
        (json!({"tool_results": [result("c1", "a")]}), 422, "missing_tool_results"),
        (json!({"tool_results": [result("c1", "a"), result("c1", "b")]}), 422, "invalid_request"),
        (json!({"tool_results": "c1: a"}), 422, "invalid_request"),
        (json!({"tool_results": [{"call_id": "c1"}]}), 422, "invalid_request"),
        (json!({"tool_results": []}), 422, "invalid_request"),
        (json!({"message": "here you go"}), 422, "input_kind_mismatch"),
        (json!({"auto_reply": true}), 422, "input_kind_mismatch"),
        (json!({"message": "x", "tool_results": [result("c1", "a")]}), 422, "invalid_request"),
        (
            json!({"tool_results": [result("c1", &"x".repeat(65 * 1024)), result("c2", "b")]}),
            422,
            "invalid_request",
        ),
        (
            json!({"request_id": "inp_stale", "tool_results": [result("c1", "a")]}),
            409,
            "input_request_mismatch",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = input(&app, &chat, body.clone()).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body} → {answer}");
    }
    let (_, unknown) = input(&app, &chat, json!({"tool_results": [result("nope", "b")]})).await;
    assert_eq!(unknown["error"]["call_id"], "nope");
    let (_, missing) = input(&app, &chat, json!({"tool_results": [result("c2", "b")]})).await;
    assert_eq!(missing["error"]["missing"], json!(["c1"]));
    let (_, big) = input(&app, &chat, json!({"tool_results": [result("c1", &"x".repeat(65 * 1024))]})).await;
    assert_eq!(big["error"]["param"], "tool_results[0].content", "{big}");
    let after = app.chat(&chat).await;
    assert_eq!((&after["status"], &after["last_seq"]), (&before["status"], &before["last_seq"]));
}

#[tokio::test]
async fn the_same_tool_results_twice_are_answered_once_and_other_content_for_them_is_a_conflict() {
    let (fake, app, chat) = waiting_on_two_calls().await;
    let answer = json!({"tool_results": [result("c2", "1"), result("c1", "a.txt")]});
    let seq = app.chat(&chat).await["last_seq"].as_u64().unwrap();
    assert_eq!(input(&app, &chat, answer.clone()).await.0, 202);
    app.wait_for_status(&chat, seq, ChatStatus::Completed).await;
    let (status, again) = input(&app, &chat, answer).await;
    assert_eq!((status, again["status"].as_str()), (202, Some("completed")), "{again}");
    let (status, other) = input(&app, &chat, json!({"tool_results": [result("c1", "b.txt")]})).await;
    assert_eq!((status, other["error"]["code"].as_str()), (409, Some("tool_call_answered")), "{other}");
    assert_eq!(other["error"]["call_id"], "c1");
    let results = app.messages(&chat).await.iter().filter(|m| m["role"] == "human_input").count();
    assert_eq!(results, 1, "stored once");
    assert_eq!(fake.request_count(), 2, "the model ran on once");
}

#[tokio::test]
async fn tool_results_to_a_human_request_are_refused_as_the_wrong_kind() {
    let app = crate::support::app::spawn_app().await;
    let chat = app.create_chat("demo").await;
    app.say(&chat, "hi").await;
    app.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await;
    let (status, body) = input(&app, &chat, json!({"tool_results": [result("c1", "a")]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("input_kind_mismatch")), "{body}");
    assert_eq!(app.chat(&chat).await["status"], "wait_for_human_input");
}
