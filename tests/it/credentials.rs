//! Credentials end their streams (contract §7): revoking a key ends every
//! WebSocket (4001), SSE stream and long-poll it opened, with no command
//! needed and on every node; a chat token dies with the key that minted it
//! and at its own `exp`; `nbf` is honoured.

use futures::StreamExt;
use serde_json::json;

use crate::support::app::{TestApp, WAIT, client_with_key, jwt, send, spawn_app, unix_now};
use crate::support::redis_server::RedisServer;
use crate::support::ws::{Ended, connect_with};

/// A new key of tenant `default`: (id, secret).
async fn new_key(app: &TestApp) -> (String, String) {
    let (status, key) = app.post("/api-keys", json!({"name": "short-lived"})).await;
    assert_eq!(status, 201, "{key}");
    (key["id"].as_str().unwrap().to_owned(), key["secret"].as_str().unwrap().to_owned())
}

async fn revoke(app: &TestApp, key_id: &str) {
    assert_eq!(app.delete(&format!("/api-keys/{key_id}")).await.0, 204);
}

#[tokio::test]
async fn a_revoked_keys_socket_closes_with_4001_without_sending_anything() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let (key_id, secret) = new_key(&app).await;
    let mut ws = connect_with(&app, "/ws", Some(&secret)).await.unwrap();
    assert_eq!(ws.call(json!({"op": "subscribe", "chat_id": chat})).await["type"], "subscribed");
    revoke(&app, &key_id).await;
    assert_eq!(ws.closed().await, Ended::Closed(4001));
}

#[tokio::test]
async fn a_revoked_keys_sse_stream_ends() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let (key_id, secret) = new_key(&app).await;
    let client = client_with_key(&secret);
    let resp = client
        .get(app.url(&format!("/chats/{chat}/events")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(WAIT, body.next()).await.expect("the replay arrives");
    assert!(first.is_some_and(|chunk| chunk.is_ok()), "the stream starts");
    revoke(&app, &key_id).await;
    let ended = tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = body.next().await {} });
    ended.await.expect("the stream ends after the revocation");
}

#[tokio::test]
async fn a_revoked_keys_long_poll_answers_401() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let (key_id, secret) = new_key(&app).await;
    let client = client_with_key(&secret);
    let poll = send(client.get(app.url(&format!("/chats/{chat}/messages?after_seq=1&wait=30"))));
    // Whether the revocation lands while the poll waits or before it is read,
    // the poll answers 401 at once instead of holding its 30 s.
    let revoked = revoke(&app, &key_id);
    let ((status, body), ()) = tokio::time::timeout(WAIT, futures::future::join(poll, revoked))
        .await
        .expect("the long-poll answers before its wait");
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
}

#[tokio::test]
async fn a_chat_token_dies_with_the_key_that_minted_it() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let (key_id, secret) = new_key(&app).await;
    let client = client_with_key(&secret);
    let (status, minted) =
        send(client.post(app.url(&format!("/chats/{chat}/tokens"))).json(&json!({}))).await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let bearer = || reqwest::Client::new().get(app.url(&format!("/chats/{chat}"))).bearer_auth(&token);
    assert_eq!(send(bearer()).await.0, 200);
    let mut ws = connect_with(&app, &format!("/chats/{chat}/ws?token={token}"), None).await.unwrap();
    assert_eq!(ws.next().await["type"], "subscribed");
    revoke(&app, &key_id).await;
    assert_eq!(ws.closed().await, Ended::Closed(4001));
    let (status, body) = send(bearer()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
}

#[tokio::test]
async fn a_token_socket_closes_at_its_expiry_without_a_command() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let token = jwt(json!({"sub": "default", "chat_id": chat, "exp": unix_now() + 2}));
    let mut ws = connect_with(&app, &format!("/chats/{chat}/ws?token={token}"), None).await.unwrap();
    assert_eq!(ws.next().await["type"], "subscribed");
    assert_eq!(ws.closed().await, Ended::Closed(4001));
}

#[tokio::test]
async fn a_token_before_its_nbf_is_refused() {
    let app = spawn_app().await;
    let early = jwt(json!({"sub": "default", "exp": unix_now() + 120, "nbf": unix_now() + 60}));
    let (status, body) = send(reqwest::Client::new().get(app.url("/chats")).bearer_auth(early)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_closes_its_socket_on_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (crate::cluster::node(&redis, "a").await, crate::cluster::node(&redis, "b").await);
    let (key_id, secret) = new_key(&a).await;
    let mut ws = connect_with(&b, "/ws", Some(&secret)).await.unwrap();
    assert_eq!(ws.call(json!({"op": "ping"})).await["type"], "pong");
    revoke(&a, &key_id).await;
    assert_eq!(ws.closed().await, Ended::Closed(4001));
}
