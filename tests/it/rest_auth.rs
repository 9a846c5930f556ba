//! Auth and tenancy (contract §7): keys, bearer tokens, and another tenant's
//! records answering 404 on every route.

use crate::support::app::{JWT_SECRET, client_with_key, send, signed_token, spawn_app, unix_now};
use flowgate::model::ChatStatus;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn requests_without_credentials_are_401() {
    let app = spawn_app().await;
    let plain = reqwest::Client::new();
    for path in ["/chats", "/flows", "/api-keys", "/chats/chat_x"] {
        let (status, body) = send(plain.get(app.url(path))).await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{path}");
    }
    let (status, _) =
        send(client_with_key("fgk_not_a_real_key_at_all_000000000000000").get(app.url("/chats"))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_deleted_key_is_rejected_on_the_very_next_request() {
    let app = spawn_app().await;
    let (_, key) = app.post("/api-keys", json!({"name": "temp"})).await;
    let temp = client_with_key(key["secret"].as_str().unwrap());
    assert_eq!(send(temp.get(app.url("/chats"))).await.0, 200);
    let (status, _) = app.delete(&format!("/api-keys/{}", key["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    let (status, body) = send(temp.get(app.url("/chats"))).await;
    assert_eq!((status, code(&body)), (401, "unauthenticated"));
}

#[tokio::test]
async fn bearer_jwts_are_verified_by_signature_and_expiry() {
    let app = spawn_app().await;
    let bearer = |t: &str| reqwest::Client::new().get(app.url("/chats")).bearer_auth(t.to_owned());
    let good = signed_token(JWT_SECRET, &json!({"sub": "default", "exp": unix_now() + 60}));
    assert_eq!(send(bearer(&good)).await.0, 200);
    let tenant_claim =
        signed_token(JWT_SECRET, &json!({"sub": "someone", "tenant": "default", "exp": unix_now() + 60}));
    assert_eq!(send(bearer(&tenant_claim)).await.0, 200);
    let wrong_secret = signed_token(
        "another-secret-another-secret-another!!",
        &json!({"sub": "default", "exp": unix_now() + 60}),
    );
    let expired = signed_token(JWT_SECRET, &json!({"sub": "default", "exp": unix_now() - 120}));
    let no_exp = signed_token(JWT_SECRET, &json!({"sub": "default"}));
    let forged =
        format!("{}.{}", &good[..good.rfind('.').unwrap()], "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for bad in [wrong_secret, expired, no_exp, forged, "not.a.jwt".into()] {
        let (status, body) = send(bearer(&bad)).await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{bad}");
    }
    let bearer_key = reqwest::Client::new().get(app.url("/chats")).bearer_auth(crate::support::app::KEY);
    assert_eq!(send(bearer_key).await.0, 200);
}

/// A key of tenant `other`, made by the operator.
async fn other_tenants_key(app: &crate::support::app::TestApp) -> String {
    let operator = flowgate::auth::Caller::operator(&flowgate::model::TenantId::parse("other").unwrap());
    app.state.services.keys.create(&operator, Some("o".into()), None).await.unwrap().1
}

#[tokio::test]
async fn another_tenants_chats_and_flows_are_404_on_every_route() {
    let app = spawn_app().await;
    let jwt_other = signed_token(JWT_SECRET, &json!({"sub": "other", "exp": unix_now() + 60}));
    let secret = other_tenants_key(&app).await;
    let other = client_with_key(&secret);
    let id = app.create_chat("demo").await;
    app.say(&id, "hi").await;
    app.wait_for_status(&id, 0, ChatStatus::WaitForHumanInput).await;
    let chat_routes = [
        other.get(app.url(&format!("/chats/{id}"))),
        other.delete(app.url(&format!("/chats/{id}"))),
        other.post(app.url(&format!("/chats/{id}/messages"))).json(&json!({"message": "x"})),
        other.get(app.url(&format!("/chats/{id}/messages"))),
        other.post(app.url(&format!("/chats/{id}/input"))).json(&json!({"message": "x"})),
        other.post(app.url(&format!("/chats/{id}/cancel"))),
        other.post(app.url(&format!("/chats/{id}/abort"))),
        other.get(app.url(&format!("/chats/{id}/events"))),
        reqwest::Client::new().get(app.url(&format!("/chats/{id}"))).bearer_auth(&jwt_other),
    ];
    for req in chat_routes {
        let (status, body) = send(req).await;
        assert_eq!((status, code(&body)), (404, "chat_not_found"), "{body}");
    }
    let flow_routes = [
        other.get(app.url("/flows/demo")),
        other.put(app.url("/flows/demo")).json(&crate::support::flows::two_agent("NEVER", &["x"])),
        other.delete(app.url("/flows/demo")),
    ];
    let (status, body) = send(other.get(app.url("/flows/demo"))).await;
    assert_eq!((status, code(&body)), (404, "flow_not_found"));
    for req in flow_routes.into_iter().skip(2) {
        let (status, body) = send(req).await;
        assert_eq!((status, code(&body)), (404, "flow_not_found"), "{body}");
    }
    let (_, listed) = send(other.get(app.url("/chats"))).await;
    assert_eq!(listed["data"], json!([]));
    let (status, body) = send(other.post(app.url("/chats")).json(&json!({"from_flow": "demo"}))).await;
    assert_eq!((status, code(&body)), (404, "flow_not_found"));
    // The owner's chat is untouched.
    assert_eq!(app.chat(&id).await["status"], "wait_for_human_input");
}

#[tokio::test]
async fn another_tenants_keys_cannot_be_listed_or_deleted() {
    let app = spawn_app().await;
    let secret = other_tenants_key(&app).await;
    let other = client_with_key(&secret);
    let (_, mine) = app.get("/api-keys").await;
    let my_key = mine["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, theirs) = send(other.get(app.url("/api-keys"))).await;
    assert!(!theirs.to_string().contains(&my_key));
    let (status, body) = send(other.delete(app.url(&format!("/api-keys/{my_key}")))).await;
    assert_eq!((status, code(&body)), (404, "key_not_found"));
    assert_eq!(app.get("/chats").await.0, 200);
}

#[tokio::test]
async fn a_chat_scoped_token_reaches_only_its_chat() {
    let app = spawn_app().await;
    let a = app.create_chat("demo").await;
    let b = app.create_chat("demo").await;
    let scoped = signed_token(JWT_SECRET, &json!({"sub": "default", "chat_id": a, "exp": unix_now() + 60}));
    let with = |path: &str| reqwest::Client::new().get(app.url(path)).bearer_auth(&scoped);
    assert_eq!(send(with(&format!("/chats/{a}"))).await.0, 200);
    let (status, body) = send(with(&format!("/chats/{b}"))).await;
    assert_eq!((status, code(&body)), (404, "chat_not_found"));
    let (status, body) = send(with("/chats")).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    assert_eq!(send(with("/api-keys")).await.0, 403);
}
