//! The dashboard's sign-in (issue #10 item 5), over plain HTTP: `POST
//! /session` exchanges an API key for an HttpOnly, SameSite=Strict cookie and
//! a CSRF token; the cookie authenticates REST and the WebSocket like the key;
//! a state-changing request it authenticates needs the CSRF token; a foreign
//! `Origin` is refused; expired, tampered and revoked-key sessions are 401;
//! header credentials behave as before; sign-out clears the cookie.

use flowgate::auth::SessionClaims;
use flowgate::auth::session::Sessions;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::{JWT_SECRET, KEY, TestApp, send, spawn_app, spawn_configured, unix_now};
use crate::support::ws::connect_with_headers;

/// A signed-in browser: the cookie header it sends and its CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

/// Signs in with `key`; asserts 201 and the cookie's attributes.
async fn sign_in(app: &TestApp, key: &str) -> Session {
    let resp =
        reqwest::Client::new().post(app.url("/session")).json(&json!({"api_key": key})).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP without a proxy's word gets no Secure: {set}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tenant"], "default");
    let cookie = set.split(';').next().unwrap().to_owned();
    Session { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
}

/// Sends `method path` with only the session cookie, plus `headers`.
async fn with_cookie(
    app: &TestApp,
    cookie: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, app.url(path)).header("cookie", cookie);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req).await
}

fn new_chat() -> Value {
    json!({"name": "from the dashboard", "from_type": "flow", "from_flow": "demo"})
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_that_reads_rest_like_the_key() {
    let app = spawn_app().await;
    let s = sign_in(&app, KEY).await;
    let (status, list) = with_cookie(&app, &s.cookie, Method::GET, "/chats", &[], None).await;
    assert_eq!(status, 200, "{list}");
    let (status, again) = with_cookie(&app, &s.cookie, Method::GET, "/session", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(again["csrf_token"], s.csrf.as_str(), "a reloaded page learns the same token");
    let (status, node) = with_cookie(&app, &s.cookie, Method::GET, "/node", &[], None).await;
    assert_eq!(status, 200);
    for field in ["ws_connections", "runs_running", "frames_sent", "http_server_errors", "model_errors"] {
        assert!(node[field].is_number(), "{field}: {node}");
    }
    // Behind a TLS proxy the cookie is Secure.
    let resp = reqwest::Client::new()
        .post(app.url("/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"api_key": KEY}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn a_wrong_or_missing_key_does_not_sign_in() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let post = |body: &'static str| client.post(app.url("/session")).body(body);
    let (status, body) = send(post(r#"{"api_key": "fgk_not_a_key"}"#)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let (status, body) = send(post("{}")).await;
    assert_eq!((status, body["error"]["param"].as_str()), (422, Some("api_key")), "{body}");
    let (status, body) = send(post("{\"api_key\": 5}")).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(post("{nope")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (status, _) = send(client.get(app.url("/session")).header("x-api-key", KEY)).await;
    assert_eq!(status, 401, "only the cookie shows a session");
}

#[tokio::test]
async fn a_state_changing_cookie_request_needs_the_sessions_csrf_token() {
    let app = spawn_app().await;
    let s = sign_in(&app, KEY).await;
    let (status, body) = with_cookie(&app, &s.cookie, Method::POST, "/chats", &[], Some(new_chat())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("csrf_failed")), "{body}");
    let wrong = [("x-csrf-token", "not-the-token")];
    let (status, _) = with_cookie(&app, &s.cookie, Method::POST, "/chats", &wrong, Some(new_chat())).await;
    assert_eq!(status, 403);
    let right = [("x-csrf-token", s.csrf.as_str())];
    let (status, chat) = with_cookie(&app, &s.cookie, Method::POST, "/chats", &right, Some(new_chat())).await;
    assert_eq!(status, 201, "{chat}");
    let path = format!("/chats/{}", chat["id"].as_str().unwrap());
    let (status, _) = with_cookie(&app, &s.cookie, Method::DELETE, &path, &[], None).await;
    assert_eq!(status, 403, "DELETE is state-changing too");
    assert_eq!(app.get(&path).await.0, 200, "nothing was deleted");
    // Header credentials behave exactly as before: the cookie is not consulted.
    let (status, _) =
        send(app.client.post(app.url("/chats")).header("cookie", &s.cookie).json(&new_chat())).await;
    assert_eq!(status, 201);
    let bad_key = reqwest::Client::new().get(app.url("/chats")).header("x-api-key", "fgk_wrong");
    assert_eq!(send(bad_key.header("cookie", &s.cookie)).await.0, 401);
}

#[tokio::test]
async fn expired_tampered_and_revoked_key_sessions_are_refused() {
    let app = spawn_app().await;
    let s = sign_in(&app, KEY).await;
    let app = &app;
    let get =
        |cookie: String| async move { with_cookie(app, &cookie, Method::GET, "/chats", &[], None).await };

    let mut tampered = s.cookie.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(get(tampered).await.0, 401, "a tampered signature");

    let sessions = Sessions::derive(JWT_SECRET.as_bytes());
    let (_, me) = with_cookie(app, &s.cookie, Method::GET, "/session", &[], None).await;
    let claims = |exp: u64, nbf: u64| SessionClaims {
        typ: "flowgate_session".into(),
        sub: "default".into(),
        key_id: me["key_id"].as_str().unwrap().into(),
        csrf: "x".into(),
        iat: unix_now() - 7200,
        nbf,
        exp,
    };
    let forged = |c: &SessionClaims| format!("flowgate_session={}", sessions.sign(c));
    assert_eq!(get(forged(&claims(unix_now() + 600, unix_now() - 60))).await.0, 200, "the forge is right");
    assert_eq!(get(forged(&claims(unix_now() - 600, unix_now() - 7200))).await.0, 401, "expired");
    assert_eq!(get(forged(&claims(unix_now() + 7200, unix_now() + 3600))).await.0, 401, "not yet valid");
    let bearer =
        reqwest::Client::new().get(app.url("/chats")).bearer_auth(sessions.sign(&claims(unix_now() + 60, 0)));
    assert_eq!(send(bearer).await.0, 401, "a session is never a bearer token");

    // A second key signs in; deleting that key ends its session at once.
    let (_, created) = app.post("/api-keys", json!({"name": "dashboard"})).await;
    let other = sign_in(app, created["secret"].as_str().unwrap()).await;
    assert_eq!(get(other.cookie.clone()).await.0, 200);
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api-keys/{id}")).await.0, 204);
    let (status, body) = get(other.cookie.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
}

#[tokio::test]
async fn a_cookie_websocket_upgrade_from_a_foreign_origin_is_refused() {
    let app = spawn_configured(|c| c.cors.allowed_origins = vec!["http://allowed.example".into()]).await;
    let s = sign_in(&app, KEY).await;
    let own = format!("http://{}", app.addr);
    let cookie = ("cookie", s.cookie.as_str());
    let refused = connect_with_headers(&app, "/ws", &[cookie, ("origin", "http://evil.example")]).await;
    let refused = refused.err().expect("a foreign origin is refused");
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (403, Some("csrf_failed")));
    for origin in [own.as_str(), "http://allowed.example"] {
        let mut ws = connect_with_headers(&app, "/ws", &[cookie, ("origin", origin)]).await.expect(origin);
        let ack = ws.call(json!({"op": "watch_status"})).await;
        assert_eq!(ack["type"], "ack", "{origin}: {ack}");
    }
    // With a key the Origin is not the gateway's business (CORS is the browser's).
    connect_with_headers(&app, "/ws", &[("x-api-key", KEY), ("origin", "http://evil.example")])
        .await
        .unwrap();
    // SSE authenticated by the cookie follows the same rule.
    let chat = app.create_chat("demo").await;
    let sse = reqwest::Client::new()
        .get(app.url(&format!("/chats/{chat}/events")))
        .header("accept", "text/event-stream")
        .header("cookie", &s.cookie)
        .header("origin", "http://evil.example");
    assert_eq!(send(sse).await.0, 403);
}

#[tokio::test]
async fn signing_out_expires_the_cookie() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new().delete(app.url("/session")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("flowgate_session=;") && set.contains("Max-Age=0"), "{set}");
}

#[tokio::test]
async fn the_dashboard_page_is_served_at_the_root_with_its_files_and_a_strict_policy() {
    let app = spawn_app().await;
    for path in ["/", "/v1/"] {
        let resp = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(resp.text().await.unwrap().contains("/static/dashboard.js"));
    }
    for file in ["dashboard.js", "dashboard.css"] {
        assert_eq!(reqwest::get(app.url(&format!("/static/{file}"))).await.unwrap().status(), 200, "{file}");
    }
}
