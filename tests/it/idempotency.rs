//! Idempotent retries (contract §6): `Idempotency-Key` on every creating POST,
//! and `client_id` on the socket's `message` and `input`. A retry with the
//! same key and request gets the first answer and creates nothing; the same
//! key with another request is a 422.

use serde_json::{Value, json};

use crate::support::app::{TestApp, send, spawn_app};
use crate::support::flows::two_agent;
use crate::support::ws::connect;

/// POSTs `body` to `path` with `Idempotency-Key: key`: (status, body, replayed).
async fn post_keyed(app: &TestApp, path: &str, key: &str, body: Value) -> (u16, Value, bool) {
    let resp =
        app.client.post(app.url(path)).header("idempotency-key", key).json(&body).send().await.unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null), replayed)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn a_retried_chat_creation_creates_one_chat_and_answers_the_same() {
    let app = spawn_app().await;
    let body = json!({"name": "once", "from_flow": "demo"});
    let (status, first, replayed) = post_keyed(&app, "/chats", "create-1", body.clone()).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    let (status, again, replayed) = post_keyed(&app, "/chats", "create-1", body).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    let (_, page) = app.get("/chats?limit=100").await;
    let named: Vec<&Value> =
        page["data"].as_array().unwrap().iter().filter(|c| c["name"] == "once").collect();
    assert_eq!(named.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422() {
    let app = spawn_app().await;
    let (status, _, _) = post_keyed(&app, "/chats", "k", json!({"from_flow": "demo"})).await;
    assert_eq!(status, 201);
    let (status, body, _) = post_keyed(&app, "/chats", "k", json!({"from_flow": "demo", "name": "x"})).await;
    assert_eq!((status, code(&body)), (422, "idempotency_key_reused"));
    let chat = app.create_chat("demo").await;
    let (status, body, _) =
        post_keyed(&app, &format!("/chats/{chat}/messages"), "k", json!({"message": "hi"})).await;
    assert_eq!((status, code(&body)), (422, "idempotency_key_reused"), "another route is another request");
}

#[tokio::test]
async fn a_retried_message_stores_one_message_and_starts_one_run() {
    let app = spawn_app().await;
    app.put_flow("pair", two_agent("NEVER", &["ok"])).await;
    let chat = app.create_chat("pair").await;
    let path = format!("/chats/{chat}/messages");
    let (status, first, _) = post_keyed(&app, &path, "msg-1", json!({"message": "hello"})).await;
    assert_eq!(status, 202, "{first}");
    let (status, again, replayed) = post_keyed(&app, &path, "msg-1", json!({"message": "hello"})).await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(again["id"], first["id"]);
    app.wait_for_status(&chat, 0, flowgate::model::ChatStatus::Completed).await;
    let from_user = app.messages(&chat).await.iter().filter(|m| m["role"] == "user").count();
    assert_eq!(from_user, 1);
    let runs =
        app.events(&chat).await.iter().filter(|e| e.kind == flowgate::model::EventKind::RunStarted).count();
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn retried_input_and_cancel_answer_the_same_and_act_once() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    app.say(&chat, "hello").await;
    app.wait_for_status(&chat, 0, flowgate::model::ChatStatus::WaitForHumanInput).await;
    let path = format!("/chats/{chat}/input");
    let (status, first, _) = post_keyed(&app, &path, "in-1", json!({"message": "go on"})).await;
    assert_eq!(status, 202, "{first}");
    let (status, again, replayed) = post_keyed(&app, &path, "in-1", json!({"message": "go on"})).await;
    assert_eq!((status, replayed, again), (202, true, first));
    let cancel = format!("/chats/{chat}/cancel");
    let (status, first, _) = post_keyed(&app, &cancel, "c-1", json!({})).await;
    assert_eq!(status, 200, "{first}");
    let (status, again, replayed) = post_keyed(&app, &cancel, "c-1", json!({})).await;
    assert_eq!((status, replayed, again), (200, true, first), "not a second cancel's no_active_run");
}

#[tokio::test]
async fn a_retried_key_creation_makes_one_key_and_never_shows_its_secret_twice() {
    let app = spawn_app().await;
    let (status, first, _) = post_keyed(&app, "/api-keys", "key-1", json!({"name": "ci"})).await;
    assert_eq!(status, 201);
    assert!(first["secret"].as_str().is_some_and(|s| s.starts_with("fgk_")));
    let (status, again, replayed) = post_keyed(&app, "/api-keys", "key-1", json!({"name": "ci"})).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!((&again["id"], &again["secret"]), (&first["id"], &Value::Null));
    let (_, keys) = app.get("/api-keys").await;
    assert_eq!(keys["data"].as_array().unwrap().iter().filter(|k| k["name"] == "ci").count(), 1);
}

#[tokio::test]
async fn a_refused_request_lets_its_key_go_and_a_malformed_key_is_422() {
    let app = spawn_app().await;
    let body = json!({"from_flow": "later"});
    let (status, refused, _) = post_keyed(&app, "/chats", "retry-me", body.clone()).await;
    assert_eq!((status, code(&refused)), (404, "flow_not_found"));
    app.put_flow("later", two_agent("NEVER", &["ok"])).await;
    let (status, _, replayed) = post_keyed(&app, "/chats", "retry-me", body).await;
    assert_eq!((status, replayed), (201, false));
    let long = "k".repeat(256);
    let (status, body, _) = post_keyed(&app, "/chats", &long, json!({"from_flow": "demo"})).await;
    assert_eq!(
        (status, code(&body), body["error"]["param"].as_str()),
        (422, "invalid_request", Some("Idempotency-Key"))
    );
    let (status, _) = send(app.client.post(app.url("/chats")).json(&json!({"from_flow": "demo"}))).await;
    assert_eq!(status, 201, "no key: no idempotency");
}

#[tokio::test]
async fn a_resent_socket_message_with_its_client_id_is_stored_once() {
    let app = spawn_app().await;
    app.put_flow("pair", two_agent("NEVER", &["ok"])).await;
    let chat = app.create_chat("pair").await;
    let mut ws = connect(&app, "/ws").await;
    let command = json!({"op": "message", "chat_id": chat, "message": "hello", "client_id": "c-1"});
    let first = ws.call(command.clone()).await;
    assert_eq!(first["type"], "ack", "{first}");
    let again = ws.call(command).await;
    assert_eq!((again["type"].as_str(), again["replayed"].as_bool()), (Some("ack"), Some(true)));
    assert_eq!(again["message"]["id"], first["message"]["id"]);
    app.wait_for_status(&chat, 0, flowgate::model::ChatStatus::Completed).await;
    assert_eq!(app.messages(&chat).await.iter().filter(|m| m["role"] == "user").count(), 1);
}
