//! flowgate.js and the gateway in real headless Chromium: a clean close from
//! the browser, a streamed answer whose shown text is the stored message, and
//! CORS for a configured origin only. Skipped loudly without a browser (see
//! `support::browser`); one browser per test, every wait bounded.

use serde_json::{Value, json};

use crate::support::app::{KEY, TestApp, spawn_app, spawn_on, test_config};
use crate::support::browser::{Browser, run};

async fn chat_token(app: &TestApp, chat: &str) -> String {
    let (status, body) = app.post(&format!("/chats/{chat}/tokens"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Connects flowgate.js to a chat, pings, closes; resolves with the final
/// connection state's detail.
const CLOSE: &str = r#"async () => {
  const { Flowgate } = await import("/static/flowgate.js");
  let closed;
  const done = new Promise((resolve) => { closed = resolve; });
  const fg = new Flowgate({
    url: location.origin, chat: "$CHAT", token: () => "$TOKEN",
    onConnectionState: (state, detail) => { if (state === "closed") closed(detail); },
  });
  await fg.connect();
  const pong = await fg.ping();
  fg.close();
  return { pong: pong.type, ...(await done) };
}"#;

#[tokio::test]
async fn closing_from_the_browser_is_a_clean_1000() {
    let app = spawn_app().await;
    let Some(browser) = Browser::launch("closing_from_the_browser_is_a_clean_1000").await else { return };
    let chat = app.create_chat("demo").await;
    let token = chat_token(&app, &chat).await;
    let page = browser.open(&app.url("/healthz")).await;
    let detail = run(&page, &CLOSE.replace("$CHAT", &chat).replace("$TOKEN", &token)).await;
    assert_eq!(detail, json!({"pong": "pong", "code": 1000, "reason": "bye", "wasClean": true}));
    browser.close().await;
}

/// Sends a message through flowgate.js and shows each message as it
/// streams, until the chat asks the human, then answers a request that is
/// not pending; resolves with what each message element shows, the text its
/// deltas assembled and the refused answer's error code.
const STREAM: &str = r#"async () => {
  const { Flowgate } = await import("/static/flowgate.js");
  const streamed = {};
  const shown = (id) => document.getElementById(id) || document.body.appendChild(
    Object.assign(document.createElement("p"), { id }));
  let asked;
  const waiting = new Promise((resolve) => { asked = resolve; });
  const fg = new Flowgate({
    url: location.origin, chat: "$CHAT", token: () => "$TOKEN",
    onPartial: (p) => { streamed[p.message_id] = p.content; shown(p.message_id).textContent = p.content; },
    onMessage: (m) => { shown(m.id).textContent = m.content; },
    onInputRequest: (r) => asked(r),
  });
  await fg.connect();
  const ack = await fg.send("Hello from Chromium");
  const request = await waiting;
  const refused = await fg.answer("no", "req_01JDQ3TZ9W8C7N2M4K6P0R5HXA").then(() => "accepted", (e) => e.code);
  fg.close();
  const messages = [...document.querySelectorAll("p")].map((p) => ({ id: p.id, shown: p.textContent }));
  return { ack: ack.type, agent: request.agent, refused, messages, streamed };
}"#;

#[tokio::test]
async fn flowgate_js_shows_the_streamed_answer_as_the_stored_messages() {
    let app = spawn_app().await;
    let Some(browser) = Browser::launch("flowgate_js_shows_the_streamed_answer").await else { return };
    let chat = app.create_chat("demo").await;
    let token = chat_token(&app, &chat).await;
    let page = browser.open(&app.url("/healthz")).await;
    let seen = run(&page, &STREAM.replace("$CHAT", &chat).replace("$TOKEN", &token)).await;
    assert_eq!((seen["ack"].as_str(), seen["agent"].as_str()), (Some("ack"), Some("user")), "{seen}");
    assert_eq!(seen["refused"], "input_request_mismatch", "a refused command rejects with its code");
    let stored: Vec<Value> = app.messages(&chat).await.into_iter().filter(|m| m["role"] != "user").collect();
    let streamed = stored.iter().filter(|m| m["metadata"]["scripted"] == true).count();
    assert!(streamed >= 2, "the demo's agents streamed their answers: {stored:?}");
    let shown = seen["messages"].as_array().unwrap();
    for m in &stored {
        let id = m["id"].as_str().unwrap();
        let on_page =
            shown.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id} not shown: {seen}"));
        assert_eq!(on_page["shown"], m["content"], "{id}: the page shows the stored text");
        if m["metadata"]["scripted"] == true {
            assert_eq!(seen["streamed"][id], m["content"], "{id}: the deltas assemble the stored text");
        }
    }
    browser.close().await;
}

/// Calls the gateway's REST API from the page's origin: a GET and a POST
/// that needs a preflight (`X-API-KEY`, JSON); resolves with the statuses,
/// or with the error a blocked request raises.
const REST: &str = r#"async () => {
  const headers = { "X-API-KEY": "$KEY", "Content-Type": "application/json" };
  try {
    const list = await fetch("$GATEWAY/chats", { headers });
    const body = JSON.stringify({ name: "cors", from_type: "flow", from_flow: "demo" });
    const made = await fetch("$GATEWAY/chats", { method: "POST", headers, body });
    return { list: list.status, created: made.status, id: (await made.json()).id };
  } catch (e) {
    return { blocked: e.name };
  }
}"#;

#[tokio::test]
async fn an_allowed_origin_can_call_rest_and_another_origin_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = test_config(dir.path().to_path_buf());
    config.cors.allowed_origins = vec![format!("http://localhost:{port}")];
    let app = spawn_on(config, listener).await;
    let Some(browser) = Browser::launch("an_allowed_origin_can_call_rest").await else { return };
    let script = REST.replace("$KEY", KEY).replace("$GATEWAY", &app.base);

    // `*.localhost` is loopback in Chromium: the same gateway, other origins.
    let allowed = run(&browser.open(&format!("http://localhost:{port}/healthz")).await, &script).await;
    assert_eq!((allowed["list"].as_u64(), allowed["created"].as_u64()), (Some(200), Some(201)), "{allowed}");
    let other =
        run(&browser.open(&format!("http://elsewhere.localhost:{port}/healthz")).await, &script).await;
    assert_eq!(other, json!({"blocked": "TypeError"}));
    let (_, chats) = app.get("/chats?limit=100").await;
    assert_eq!(chats["data"].as_array().unwrap().len(), 1, "only the allowed origin created a chat");
    browser.close().await;
}
