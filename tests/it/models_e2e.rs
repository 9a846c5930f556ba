//! The `openai` provider end to end: the real gateway (REST, WebSocket,
//! engine, SQLite) with a registry model pointing at a fake OpenAI-compatible
//! server on a real socket. Streaming, retries, failures, cancel, secrecy of
//! the API key, `auto` speaker selection, and an imported FlowGen export.

use crate::support::fake_openai;

use std::sync::Arc;

use crate::support::app::{TestApp, WAIT, spawn_configured, spawn_configured_with_secrets};
use crate::support::ws::{Ws, connect};
use fake_openai::{Behaviour, FakeOpenAi};
use flowgate::engine::models::SecretLookup;
use flowgate::engine::provider::openai::DEFAULT_MAX_RETRIES;
use flowgate::flow::ModelSpec;
use serde_json::{Value, json};

/// The environment variable the registry model reads its key from.
const KEY_ENV: &str = "FLOWGATE_TEST_OPENAI_KEY";
/// The key: it must reach the fake and nothing else.
const SECRET: &str = "sk-e2e-4b1d9f0c2a7e55d3";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A fake server and a gateway whose registry has `gpt`, served by the fake.
async fn setup() -> (FakeOpenAi, TestApp) {
    let fake = FakeOpenAi::start().await;
    let base_url = fake.base_url();
    let secrets: SecretLookup = Arc::new(|var| (var == KEY_ENV).then(|| SECRET.to_owned()));
    let app = spawn_configured_with_secrets(
        move |config| {
            let gpt = ModelSpec::Openai {
                base_url,
                model: "m".into(),
                api_key_env: Some(KEY_ENV.into()),
                temperature: None,
                max_tokens: None,
                timeout_secs: Some(10),
            };
            config.models.insert("gpt".into(), gpt);
        },
        secrets,
    )
    .await;
    (fake, app)
}

/// One `gpt` answer per run: the proxy never auto-replies, so the run ends
/// after the assistant (completed), or fails with it.
fn one_answer_flow() -> Value {
    json!({
        "name": "one answer",
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER",
             "max_consecutive_auto_reply": 0},
            {"name": "assistant", "kind": "assistant", "model": "gpt", "system_message": "Be brief."}
        ],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    })
}

/// A chat of [`one_answer_flow`] and a socket subscribed to it from the start.
async fn chat_with_socket(app: &TestApp) -> (String, Ws) {
    app.put_flow("one", one_answer_flow()).await;
    let chat = app.create_chat("one").await;
    let mut ws = connect(app, "/ws").await;
    let reply = ws.call(json!({"op": "subscribe", "chat_id": chat, "after_seq": 0})).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    (chat, ws)
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

/// Asserts the chat ended in `error` with a `model_error` naming `needles`.
async fn assert_model_error(app: &TestApp, chat: &str, needles: &[&str]) -> Value {
    let body = app.chat(chat).await;
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["code"], "model_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for needle in needles {
        assert!(message.contains(needle), "`{message}` names {needle}");
    }
    body
}

/// Only the user's message was stored.
async fn assert_only_the_user_spoke(app: &TestApp, chat: &str) {
    let messages = app.messages(chat).await;
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user"], "{messages:#?}");
}

#[tokio::test]
async fn streamed_deltas_reach_a_subscriber_in_order_and_make_up_the_stored_message() {
    let (fake, app) = setup().await;
    let chunks = strings(&["A graph ", "is nodes ", "and edges", "."]);
    fake.push(Behaviour::Stream(chunks.clone()));
    let (chat, mut ws) = chat_with_socket(&app).await;
    app.say(&chat, "What is a graph?").await;
    let frames = ws.until_status("completed").await;

    let deltas = of_type(&frames, "message.delta");
    let created: Vec<&Value> = of_type(&frames, "message.created")
        .into_iter()
        .filter(|f| f["data"]["role"] == "assistant")
        .collect();
    assert_eq!(created.len(), 1);
    let message = &created[0]["data"];
    let texts: Vec<String> = deltas.iter().map(|d| d["data"]["delta"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts, chunks);
    assert_eq!(texts.concat(), message["content"].as_str().unwrap());
    assert!(deltas.iter().all(|d| d["data"]["message_id"] == message["id"] && d["seq"].is_null()));
    let created_at =
        frames.iter().position(|f| f["type"] == "message.created" && f["data"]["id"] == message["id"]);
    let last_delta = frames.iter().rposition(|f| f["type"] == "message.delta");
    assert!(last_delta < created_at, "every delta precedes its message.created");
    assert_eq!(message["metadata"]["provider"], "openai");
    assert_eq!(message["metadata"]["final"], true);
    let stored = app.messages(&chat).await;
    assert_eq!(stored.last().unwrap(), message);
    let request = &fake.requests()[0];
    assert_eq!(request.body["model"], "m");
    assert_eq!(request.body["messages"][0]["content"], "Be brief.");
}

#[tokio::test]
async fn a_rate_limit_then_success_is_retried_and_the_chat_completes() {
    let (fake, app) = setup().await;
    fake.push(Behaviour::Status(429, r#"{"error":{"message":"slow down"}}"#.into(), Some("0".into())));
    fake.push(Behaviour::Stream(strings(&["fine"])));
    let (chat, mut ws) = chat_with_socket(&app).await;
    app.say(&chat, "hi").await;
    ws.until_status("completed").await;
    assert_eq!(fake.request_count(), 2);
    assert_eq!(app.messages(&chat).await.last().unwrap()["content"], "fine");
}

#[tokio::test]
async fn a_series_of_server_errors_ends_the_chat_in_error_naming_the_model_and_status() {
    let (fake, app) = setup().await;
    for _ in 0..=DEFAULT_MAX_RETRIES {
        fake.push(Behaviour::Status(500, r#"{"error":{"message":"boom"}}"#.into(), Some("0".into())));
    }
    let (chat, mut ws) = chat_with_socket(&app).await;
    app.say(&chat, "hi").await;
    let frames = ws.until_status("error").await;
    let body = assert_model_error(&app, &chat, &["gpt", "500"]).await;
    assert_eq!(fake.request_count(), 1 + DEFAULT_MAX_RETRIES as usize);
    let failed = of_type(&frames, "run.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["message"], body["error"]["message"]);
    assert_only_the_user_spoke(&app, &chat).await;
}

#[tokio::test]
async fn a_malformed_chunk_ends_the_chat_in_error() {
    let (fake, app) = setup().await;
    fake.push(Behaviour::MalformedChunk);
    let (chat, mut ws) = chat_with_socket(&app).await;
    app.say(&chat, "hi").await;
    ws.until_status("error").await;
    assert_model_error(&app, &chat, &["gpt", "malformed"]).await;
    assert_eq!(fake.request_count(), 1, "a malformed answer is not retried");
    assert_only_the_user_spoke(&app, &chat).await;
}

#[tokio::test]
async fn a_connection_closed_mid_stream_ends_the_chat_in_error_and_stores_no_partial_message() {
    let (fake, app) = setup().await;
    fake.push(Behaviour::CloseMidStream(strings(&["half an "])));
    let (chat, mut ws) = chat_with_socket(&app).await;
    app.say(&chat, "hi").await;
    let delta = ws.until(|f| f["type"] == "message.delta").await;
    assert_eq!(delta.last().unwrap()["data"]["delta"], "half an ");
    fake.cut();
    ws.until_status("error").await;
    assert_model_error(&app, &chat, &["gpt"]).await;
    assert_eq!(fake.request_count(), 1, "nothing is retried once a delta went out");
    assert_only_the_user_spoke(&app, &chat).await;
}

#[tokio::test]
async fn the_api_key_never_appears_in_any_response_event_or_frame() {
    let (fake, app) = setup().await;
    fake.push(Behaviour::Stream(strings(&["hello"])));
    fake.push(Behaviour::EchoAuth(401));
    let (chat, mut ws) = chat_with_socket(&app).await;
    let mut seen: Vec<String> = Vec::new();
    seen.push(app.say(&chat, "first").await.to_string());
    seen.extend(ws.until_status("completed").await.iter().map(Value::to_string));
    seen.push(app.say(&chat, "second").await.to_string());
    seen.extend(ws.until_status("error").await.iter().map(Value::to_string));
    assert_model_error(&app, &chat, &["gpt", "401"]).await;
    for path in [
        format!("/chats/{chat}"),
        format!("/chats/{chat}/messages?limit=1000"),
        format!("/chats/{chat}/messages?view=final"),
        format!("/chats/{chat}/events?limit=1000"),
        "/chats".to_owned(),
        "/flows".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push(body.to_string());
    }
    seen.extend(app.events(&chat).await.iter().map(|e| serde_json::to_string(e).unwrap()));
    let mut late = connect(&app, "/ws").await;
    late.call(json!({"op": "subscribe", "chat_id": chat, "after_seq": 0})).await;
    seen.extend(late.until_status("error").await.iter().map(Value::to_string));

    let auth = fake.requests().iter().map(|r| r.headers["authorization"].clone()).collect::<Vec<_>>();
    assert_eq!(auth, [format!("Bearer {SECRET}"), format!("Bearer {SECRET}")], "the key was sent");
    assert!(seen.iter().any(|body| body.contains("401")), "the 401 was seen");
    for body in &seen {
        assert!(!body.contains(SECRET), "the key leaked: {body}");
    }
}

#[tokio::test]
async fn cancel_during_a_stalled_stream_ends_the_run_promptly() {
    let (fake, app) = setup().await;
    fake.push(Behaviour::StallAfter(strings(&["thinking "])));
    fake.push(Behaviour::Stream(strings(&["again"])));
    let (chat, mut ws) = chat_with_socket(&app).await;
    app.say(&chat, "hi").await;
    ws.until(|f| f["type"] == "message.delta").await;
    let (status, body) = app.post(&format!("/chats/{chat}/cancel"), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    let frames = ws.until_status("ready").await;
    assert_eq!(of_type(&frames, "run.cancelled").len(), 1);
    runs_drain(&app).await;
    assert_only_the_user_spoke(&app, &chat).await;

    app.say(&chat, "once more").await;
    ws.until_status("completed").await;
    assert_eq!(fake.request_count(), 2, "the cancelled call was not retried");
    let contents: Vec<Value> = app.messages(&chat).await.iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("hi"), json!("once more"), json!("again")]);
    runs_drain(&app).await;
}

/// Waits (bounded) until the engine has no runner task left.
async fn runs_drain(app: &TestApp) {
    tokio::time::timeout(WAIT, app.state.engine.idle()).await.expect("the runner task ends in time");
}

#[tokio::test]
async fn auto_selection_follows_the_models_choice_and_says_so_in_the_metadata() {
    let (fake, app) = setup().await;
    app.put_flow(
        "auto",
        json!({
            "name": "auto group",
            "agents": [
                {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER"},
                {"name": "writer", "kind": "assistant", "model": "gpt", "description": "Writes the answer."},
                {"name": "critic", "kind": "assistant", "model": "gpt", "description": "Reviews the answer."}
            ],
            "chat": {"kind": "group", "speaker_selection": "auto", "max_round": 6,
                     "termination": {"contains": "TERMINATE"}}
        }),
    )
    .await;
    fake.push(Behaviour::Stream(strings(&["writer"])));
    fake.push(Behaviour::Stream(strings(&["Draft: ", "a graph."])));
    fake.push(Behaviour::Json("critic".into()));
    fake.push(Behaviour::Stream(strings(&["Good. ", "TERMINATE"])));
    let chat = app.create_chat("auto").await;
    let seen = app.chat(&chat).await["last_seq"].as_u64().unwrap();
    app.say(&chat, "Explain graphs.").await;
    app.wait_for_status(&chat, seen, flowgate::model::ChatStatus::Completed).await;

    let messages = app.messages(&chat).await;
    let senders: Vec<&str> = messages.iter().filter_map(|m| m["sender"].as_str()).collect();
    assert_eq!(senders, ["user", "writer", "critic"]);
    for m in &messages[1..] {
        assert_eq!(
            (m["metadata"]["selected_by"].as_str(), m["metadata"]["attempts"].as_u64()),
            (Some("auto"), Some(1))
        );
    }
    assert_eq!(messages[1]["metadata"].get("final"), None);
    assert_eq!(messages[2]["metadata"]["final"], true);
    assert_eq!(fake.request_count(), 4, "each selector answer is asked for once");
    let selector = fake.requests()[0].body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
    assert!(selector.contains("writer: Writes the answer.") && selector.contains("critic"), "{selector}");
}

#[tokio::test]
async fn an_imported_flowgen_export_runs_end_to_end_on_its_filter_dict_model() {
    let app = spawn_configured(|config| {
        let replies = strings(&["A React Flow graph is nodes and edges.", "Verdict: clear. TERMINATE"]);
        config.models.insert(
            "default".into(),
            ModelSpec::Scripted { replies, echo: false, delay_ms: 0, tokens_per_sec: 0 },
        );
    })
    .await;
    let export: Value = serde_json::from_str(include_str!("../../examples/flows/flowgen_export.json"))
        .expect("the example parses");
    let (status, flow) = app.post("/flows", export).await;
    assert_eq!(status, 201, "{flow}");
    let flow_id = flow["id"].as_str().expect("a flow id");
    let chat = app.create_chat(flow_id).await;
    app.say(&chat, "Explain what a React Flow graph is in two sentences.").await;
    let events = app.wait_for_status(&chat, 0, flowgate::model::ChatStatus::Completed).await;

    let run_completed = events.iter().find(|e| e.kind == flowgate::model::EventKind::RunCompleted);
    assert_eq!(run_completed.map(|e| e.data["stop_reason"].clone()), Some(json!("termination")));
    let messages = app.messages(&chat).await;
    let senders: Vec<&str> = messages.iter().filter_map(|m| m["sender"].as_str()).collect();
    assert_eq!(senders, ["user", "Writer", "Critic", "Writer"]);
    assert!(
        messages[1..]
            .iter()
            .all(|m| m["metadata"]["scripted"] == true && m["metadata"]["model"] == "default")
    );
    let last = messages.last().unwrap();
    assert_eq!(
        (last["content"].as_str(), last["metadata"]["final"].as_bool()),
        (Some("Verdict: clear. TERMINATE"), Some(true))
    );
}

/// A 1×1 PNG, as a browser would attach it.
const PIXEL: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

#[tokio::test]
async fn a_user_messages_images_reach_the_model_as_content_parts_and_text_stays_a_string() {
    let (fake, app) = setup().await;
    fake.push(Behaviour::Stream(strings(&["A pixel."])));
    fake.push(Behaviour::Stream(strings(&["Still a pixel."])));
    app.put_flow("one", one_answer_flow()).await;
    let chat = app.create_chat("one").await;
    let body = json!({"message": "what is this?", "images": [PIXEL]});
    let (status, posted) = app.post(&format!("/chats/{chat}/messages"), body).await;
    assert_eq!(status, 202, "{posted}");
    assert_eq!(posted["content"], "what is this?");
    assert_eq!(posted["metadata"]["images"], json!([PIXEL]));
    app.wait_for_status(&chat, 0, flowgate::model::ChatStatus::Completed).await;
    let after = app.chat(&chat).await["last_seq"].as_u64().unwrap();
    app.say(&chat, "and now?").await;
    app.wait_for_status(&chat, after, flowgate::model::ChatStatus::Completed).await;

    let parts = json!([
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": PIXEL}}
    ]);
    let first = &fake.requests()[0].body["messages"];
    assert_eq!(first[0]["content"], "Be brief.");
    assert_eq!((first[1]["role"].as_str(), &first[1]["content"]), (Some("user"), &parts));
    let second = &fake.requests()[1].body["messages"];
    assert_eq!(second[1]["content"], parts, "the image stays with its message");
    assert_eq!(second[2]["content"], "A pixel.");
    assert_eq!(second[3]["content"], "and now?", "a text-only message is a string, as before");
}
