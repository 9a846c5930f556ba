//! The WebSocket protocol (contract §5) over a real socket: every op's reply,
//! every refusal, and a connection that stays usable after bad frames.

use crate::support::app::{jwt, spawn_app, spawn_configured, unix_now};
use crate::support::flows::two_agent;
use crate::support::ws::{Ended, connect, connect_with};
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_op_gets_its_reply() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let mut ws = connect(&app, "/ws").await;
    assert_eq!(ws.call(json!({"op": "ping"})).await["type"], "pong");
    let sub = ws.call(json!({"op": "subscribe", "chat_id": chat, "after_seq": 0})).await;
    assert_eq!(
        (sub["type"].as_str(), sub["chat_id"].as_str(), sub["last_seq"].as_u64()),
        (Some("subscribed"), Some(chat.as_str()), Some(1))
    );
    assert_eq!(ws.call(json!({"op": "watch_status"})).await["type"], "ack");
    let ack = ws.call(json!({"op": "message", "chat_id": chat, "message": "hi"})).await;
    assert_eq!((ack["type"].as_str(), ack["op"].as_str()), (Some("ack"), Some("message")));
    assert_eq!(ack["message"]["content"], "hi");
    ws.until_status("wait_for_human_input").await;
    let ack = ws.call(json!({"op": "input", "chat_id": chat, "message": "shorter please"})).await;
    assert_eq!((ack["type"].as_str(), ack["status"].as_str()), (Some("ack"), Some("running")));
    ws.until_status("wait_for_human_input").await;
    let ack = ws.call(json!({"op": "cancel", "chat_id": chat})).await;
    assert_eq!((ack["type"].as_str(), ack["status"].as_str()), (Some("ack"), Some("ready")));
    let ack = ws.call(json!({"op": "unsubscribe", "chat_id": chat})).await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ws.call(json!({"op": "unwatch_status"})).await["type"], "ack");
}

#[tokio::test]
async fn refused_commands_get_the_rest_error_codes() {
    let app = spawn_app().await;
    app.put_flow("slow", crate::support::flows::slow(30)).await;
    let chat = app.create_chat("slow").await;
    let mut ws = connect(&app, "/ws").await;
    let cases = [
        (json!({"op": "input", "chat_id": chat, "message": "x"}), "not_waiting_for_input"),
        (json!({"op": "cancel", "chat_id": chat}), "no_active_run"),
        (json!({"op": "message", "chat_id": chat, "message": ""}), "invalid_request"),
        (json!({"op": "message", "chat_id": chat}), "invalid_request"),
        (json!({"op": "message", "message": "no chat"}), "invalid_request"),
        (json!({"op": "subscribe", "chat_id": "chat_nope"}), "chat_not_found"),
        (json!({"op": "subscribe", "chat_id": chat, "after_seq": 999}), "invalid_request"),
        (json!({"op": "fly"}), "unknown_op"),
        (json!({"op": "subscribe", "chat_id": chat, "after_seq": "x"}), "invalid_request"),
    ];
    for (command, code) in cases {
        let reply = ws.call(command.clone()).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{command}"
        );
    }
    ws.call(json!({"op": "message", "chat_id": chat, "message": "one"})).await;
    let busy = ws.call(json!({"op": "message", "chat_id": chat, "message": "two"})).await;
    assert_eq!(busy["code"], "chat_busy");
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "/ws").await;
    ws.send_text("not json").await;
    let err = ws.next().await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("invalid_json")));
    ws.send_text("[1,2]").await;
    assert_eq!(ws.next().await["code"], "invalid_request");
    ws.socket.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(ws.next().await["code"], "invalid_request");
    assert_eq!(ws.call(json!({"op": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn an_oversized_frame_closes_with_4009() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "/ws").await;
    let big = format!("{{\"op\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let _ = ws.socket.send(Message::Text(big.into())).await;
    assert_eq!(ws.closed().await, Ended::Closed(4009));
}

#[tokio::test]
async fn an_unauthenticated_or_badly_tokened_upgrade_is_401() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let expired = jwt(json!({"sub": "default", "chat_id": chat, "exp": unix_now() - 120}));
    let wrong = {
        let key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another!!").unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "default", "exp": unix_now() + 60}),
            &key,
        )
        .unwrap()
    };
    for path in [
        "/ws".to_owned(),
        format!("/ws?token={expired}"),
        format!("/ws?token={wrong}"),
        format!("/chats/{chat}/ws?token={expired}"),
        format!("/ws?token={}", crate::support::app::KEY),
    ] {
        let refused = connect_with(&app, &path, None).await.err().expect("refused");
        assert_eq!(
            (refused.status, refused.body["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_chat_token_reaches_its_chat_and_no_other() {
    let app = spawn_app().await;
    let a = app.create_chat("demo").await;
    let b = app.create_chat("demo").await;
    let (status, minted) = app.post(&format!("/chats/{a}/tokens"), json!({})).await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap();
    assert!(minted["expires_in"].as_u64().unwrap() <= 3600);
    let mut ws = connect_with(&app, &format!("/chats/{a}/ws?token={token}"), None).await.unwrap();
    assert_eq!(ws.next().await["type"], "subscribed");
    let refused = connect_with(&app, &format!("/chats/{b}/ws?token={token}"), None).await.err().unwrap();
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (404, Some("chat_not_found")));
    let mut multi = connect_with(&app, &format!("/ws?token={token}"), None).await.unwrap();
    assert_eq!(multi.call(json!({"op": "subscribe", "chat_id": b})).await["code"], "chat_not_found");
    assert_eq!(multi.call(json!({"op": "watch_status"})).await["code"], "forbidden");
    assert_eq!(multi.call(json!({"op": "subscribe", "chat_id": a})).await["type"], "subscribed");
}

#[tokio::test]
async fn another_tenants_chat_is_refused_on_both_sockets() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let operator = flowgate::auth::Caller::operator(&flowgate::model::TenantId::parse("other").unwrap());
    let (_, other) = app.state.services.keys.create(&operator, Some("o".into()), None).await.unwrap();
    let refused = connect_with(&app, &format!("/chats/{chat}/ws"), Some(&other)).await.err().unwrap();
    assert_eq!(refused.status, 404);
    let other_chat_token = jwt(json!({"sub": "other", "chat_id": chat, "exp": unix_now() + 60}));
    let refused = connect_with(&app, &format!("/chats/{chat}/ws?token={other_chat_token}"), None).await;
    assert_eq!(refused.err().unwrap().status, 404);
    let mut ws = connect_with(&app, "/ws", Some(&other)).await.unwrap();
    assert_eq!(ws.call(json!({"op": "subscribe", "chat_id": chat})).await["code"], "chat_not_found");
    assert_eq!(
        ws.call(json!({"op": "message", "chat_id": chat, "message": "x"})).await["code"],
        "chat_not_found"
    );
}

#[tokio::test]
async fn subscriptions_and_connections_are_limited() {
    let app = spawn_configured(|c| {
        c.limits.ws_max_subscriptions = 2;
        c.limits.ws_max_connections = 2;
    })
    .await;
    let chats = [app.create_chat("demo").await, app.create_chat("demo").await, app.create_chat("demo").await];
    let mut ws = connect(&app, "/ws").await;
    for chat in &chats[..2] {
        assert_eq!(ws.call(json!({"op": "subscribe", "chat_id": chat})).await["type"], "subscribed");
    }
    assert_eq!(
        ws.call(json!({"op": "subscribe", "chat_id": chats[2]})).await["code"],
        "too_many_subscriptions"
    );
    let _second = connect(&app, "/ws").await;
    let refused = connect_with(&app, "/ws", Some(crate::support::app::KEY)).await.err().unwrap();
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (503, Some("too_many_connections")));
}

#[tokio::test]
async fn human_input_over_the_socket_resumes_the_run_and_rest_agrees() {
    let app = spawn_app().await;
    app.put_flow("ask", two_agent("ALWAYS", &["What next?", "Done. TERMINATE"])).await;
    let chat = app.create_chat("ask").await;
    let mut ws = connect(&app, &format!("/chats/{chat}/ws")).await;
    assert_eq!(ws.next().await["type"], "subscribed");
    ws.call(json!({"op": "message", "message": "start"})).await;
    let frames = ws.until_status("wait_for_human_input").await;
    let request = frames.iter().find(|f| f["type"] == "input.requested").expect("an input request");
    let request_id = request["data"]["request_id"].as_str().unwrap();
    assert_eq!(app.chat(&chat).await["pending_input"]["request_id"], request_id);
    let ack = ws.call(json!({"op": "input", "message": "keep going", "request_id": request_id})).await;
    assert_eq!(ack["type"], "ack");
    ws.until(|f| f["type"] == "message.created" && f["data"]["role"] == "human_input").await;
    ws.until_status("wait_for_human_input").await;
    ws.call(json!({"op": "input", "message": "exit"})).await;
    ws.until_status("completed").await;
    assert_eq!(app.chat(&chat).await["status"], "completed");
    let humans = app.messages(&chat).await.into_iter().filter(|m| m["role"] == "human_input").count();
    assert_eq!(humans, 2);
}

#[tokio::test]
async fn a_socket_whose_key_is_revoked_closes_with_4001_at_its_next_command() {
    let app = spawn_app().await;
    let (_, key) = app.post("/api-keys", json!({"name": "short-lived"})).await;
    let mut ws = connect_with(&app, "/ws", key["secret"].as_str()).await.unwrap();
    assert_eq!(ws.call(json!({"op": "watch_status"})).await["type"], "ack");
    let (status, _) = app.delete(&format!("/api-keys/{}", key["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    ws.send(json!({"op": "watch_status"})).await;
    assert_eq!(ws.closed().await, Ended::Closed(4001));
}

#[tokio::test]
async fn a_tenant_wide_token_in_the_url_is_refused() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let tenant_wide = jwt(json!({"sub": "default", "exp": unix_now() + 60}));
    for path in [format!("/ws?token={tenant_wide}"), format!("/chats/{chat}/ws?token={tenant_wide}")] {
        let refused = connect_with(&app, &path, None).await.err().unwrap();
        assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    }
}

#[tokio::test]
async fn a_socket_whose_chat_token_expires_closes_with_4001_at_its_next_command() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let exp = unix_now() + 1;
    let token = jwt(json!({"sub": "default", "chat_id": chat, "exp": exp}));
    let mut ws = connect_with(&app, &format!("/chats/{chat}/ws?token={token}"), None).await.unwrap();
    assert_eq!(ws.next().await["type"], "subscribed");
    assert_eq!(ws.call(json!({"op": "subscribe"})).await["type"], "subscribed");
    // Wait for the clock to pass `exp` (a bounded wait on time itself).
    while unix_now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ws.send(json!({"op": "subscribe"})).await;
    assert_eq!(ws.closed().await, Ended::Closed(4001));
}

#[tokio::test]
async fn a_token_for_a_malformed_tenant_is_refused() {
    let app = spawn_app().await;
    let bad = jwt(json!({"sub": "acme}:chats", "exp": unix_now() + 60}));
    let resp = reqwest::Client::new().get(app.url("/chats")).bearer_auth(bad).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
