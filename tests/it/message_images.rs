//! Images on `POST /chats/{id}/messages`: what is refused (422 naming the
//! field) before anything is stored. What reaches a model is in `models_e2e`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flowgate::service::images::{MAX_IMAGE_BYTES, MAX_IMAGES};
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_configured};

/// A gateway whose body limit lets an oversized image reach the check.
async fn app_with_a_chat() -> (TestApp, String) {
    let app = spawn_configured(|config| config.limits.max_body_bytes = 4 << 20).await;
    let chat = app.create_chat("demo").await;
    (app, chat)
}

fn png(bytes: usize) -> String {
    format!("data:image/png;base64,{}", STANDARD.encode(vec![1u8; bytes]))
}

async fn refused(app: &TestApp, chat: &str, body: Value) -> String {
    let (status, answer) = app.post(&format!("/chats/{chat}/messages"), body).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
    answer["error"]["param"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_bad_scheme_an_oversized_image_or_too_many_images_are_422_naming_the_field() {
    let (app, chat) = app_with_a_chat().await;
    let cases = [
        (json!(["http://example.com/cat.png"]), "images[0]"),
        (json!([png(1), "file:///etc/passwd"]), "images[1]"),
        (json!(["data:image/svg+xml;base64,PHN2Zz4="]), "images[0]"),
        (json!([png(MAX_IMAGE_BYTES + 1)]), "images[0]"),
        (json!([format!("https://example.com/{}", "a".repeat(2048))]), "images[0]"),
        (json!(vec![png(1); MAX_IMAGES + 1]), "images"),
    ];
    for (images, param) in cases {
        let body = json!({"message": "what is this?", "images": images});
        assert_eq!(refused(&app, &chat, body).await, param);
    }
    assert!(app.messages(&chat).await.is_empty(), "nothing was stored");
    assert_eq!(app.chat(&chat).await["status"], "ready");
}

#[tokio::test]
async fn images_on_human_input_are_refused() {
    let (app, chat) = app_with_a_chat().await;
    let body = json!({"message": "this", "images": [png(1)]});
    let (status, answer) = app.post(&format!("/chats/{chat}/input"), body).await;
    assert_eq!((status, answer["error"]["param"].as_str()), (422, Some("images")), "{answer}");
}

#[tokio::test]
async fn a_text_only_message_is_stored_as_before() {
    let (app, chat) = app_with_a_chat().await;
    let posted = app.say(&chat, "hello").await;
    assert_eq!(posted["metadata"], json!({}));
}

#[tokio::test]
async fn the_socket_message_op_takes_images_by_the_same_rules() {
    let (app, chat) = app_with_a_chat().await;
    let mut ws = crate::support::ws::connect(&app, "/ws").await;
    let bad = json!({"op": "message", "chat_id": chat, "message": "this?", "images": ["ftp://x/a.png"]});
    let error = ws.call(bad).await;
    assert_eq!(
        (error["type"].as_str(), error["param"].as_str()),
        (Some("error"), Some("images[0]")),
        "{error}"
    );
    let good = json!({"op": "message", "chat_id": chat, "message": "this?", "images": [png(3)]});
    let ack = ws.call(good).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["message"]["metadata"]["images"], json!([png(3)]));
}
