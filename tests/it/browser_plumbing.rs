//! The server side of browser support (issue #10): CORS for configured
//! origins, `?token=` on the SSE route, the WebSocket close handshake, and one
//! `chat.status` per event on a socket that both subscribes and watches.

use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::app::{KEY, TestApp, WAIT, spawn_app, spawn_configured};
use crate::support::flows::two_agent;
use crate::support::ws::connect;

const ALLOWED: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/v1/chats"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key,content-type")
        .send()
        .await
        .unwrap()
}

fn grant(resp: &reqwest::Response) -> Option<&str> {
    resp.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_granted_and_one_from_another_origin_is_not() {
    let app = spawn_configured(|c| c.cors.allowed_origins = vec![ALLOWED.into()]).await;
    let ok = preflight(&app, ALLOWED).await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(grant(&ok), Some(ALLOWED));
    let allowed_headers = ok.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed_headers.contains("x-api-key"), "{allowed_headers}");

    assert_eq!(grant(&preflight(&app, "https://evil.example.com").await), None);
    let get = app.client.get(app.url("/chats")).header("origin", ALLOWED).send().await.unwrap();
    assert_eq!((get.status().as_u16(), grant(&get)), (200, Some(ALLOWED)));
    let other = app.client.get(app.url("/chats")).header("origin", "https://evil.example.com").send().await;
    assert_eq!(grant(&other.unwrap()), None);
}

#[tokio::test]
async fn without_configured_origins_no_origin_gets_a_cors_grant() {
    let app = spawn_app().await;
    assert_eq!(grant(&preflight(&app, ALLOWED).await), None);
    let get = app.client.get(app.url("/chats")).header("origin", ALLOWED).send().await.unwrap();
    assert_eq!((get.status().as_u16(), grant(&get)), (200, None));
}

async fn chat_token(app: &TestApp, chat: &str) -> String {
    let (status, body) = app.post(&format!("/chats/{chat}/tokens"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Opens `path` as an event stream without any header credential; returns
/// the status and, on 200, the first `id:` line's seq.
async fn event_stream(app: &TestApp, path: &str) -> (u16, Option<u64>) {
    let resp =
        reqwest::Client::new().get(app.url(path)).header("accept", "text/event-stream").send().await.unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let first_id = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if let Some(line) = text.lines().find(|l| l.starts_with("id:")) {
                return line[3..].trim().parse().ok();
            }
        }
        None
    });
    (status, first_id.await.expect("an event arrives in time"))
}

#[tokio::test]
async fn the_sse_route_takes_a_chat_token_in_the_query_but_never_an_api_key() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let other = app.create_chat("demo").await;
    let token = chat_token(&app, &chat).await;
    assert_eq!(event_stream(&app, &format!("/chats/{chat}/events?token={token}")).await, (200, Some(1)));
    assert_eq!(event_stream(&app, &format!("/v1/chats/{chat}/events?token={token}")).await, (200, Some(1)));
    assert_eq!(event_stream(&app, &format!("/chats/{other}/events?token={token}")).await.0, 404);
    assert_eq!(event_stream(&app, &format!("/chats/{chat}/events?token={KEY}")).await.0, 401);
    assert_eq!(event_stream(&app, &format!("/chats/{chat}/events")).await.0, 401);
}

#[tokio::test]
async fn a_clients_close_is_answered_with_a_close_echoing_its_code() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    for path in ["/ws".to_owned(), format!("/chats/{chat}/ws")] {
        let mut ws = connect(&app, &path).await;
        assert_eq!(ws.call(json!({"op": "ping"})).await["type"], "pong");
        let bye = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
        ws.socket.send(Message::Close(Some(bye))).await.unwrap();
        let answer = tokio::time::timeout(WAIT, async {
            loop {
                match ws.socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    other => panic!("{path}: the socket ended without a Close: {other:?}"),
                }
            }
        });
        assert_eq!(answer.await.expect("the Close is answered in time"), Some(1000), "{path}");
    }
}

/// Every `chat.status` frame read, by chat and seq: how often each arrived.
fn status_counts(frames: &[Value]) -> BTreeMap<(String, u64), usize> {
    let mut counts = BTreeMap::new();
    for f in frames.iter().filter(|f| f["type"] == "chat.status") {
        let key = (f["chat_id"].as_str().unwrap().to_owned(), f["seq"].as_u64().unwrap());
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_socket_that_subscribes_and_watches_gets_each_status_once() {
    let app = spawn_app().await;
    app.put_flow("quick", two_agent("NEVER", &["done TERMINATE"])).await;
    let (subscribed, watched) = (app.create_chat("quick").await, app.create_chat("quick").await);
    let mut ws = connect(&app, "/ws").await;
    ws.call(json!({"op": "subscribe", "chat_id": subscribed, "after_seq": 0})).await;
    ws.call(json!({"op": "watch_status"})).await;
    app.say(&subscribed, "go").await;
    app.wait_for_status(&subscribed, 1, flowgate::model::ChatStatus::Completed).await;
    app.say(&watched, "go").await;
    // The tenant's status feed is one ordered stream: once the watched chat's
    // completion arrives, every status before it has too.
    let frames = ws.until(|f| f["chat_id"] == watched.as_str() && f["data"]["status"] == "completed").await;
    let counts = status_counts(&frames);
    assert!(counts.values().all(|n| *n == 1), "a status arrived twice: {counts:?}");
    for chat in [&subscribed, &watched] {
        let stored = app.events(chat).await;
        let stored =
            stored.iter().filter(|e| e.kind == flowgate::model::EventKind::ChatStatus && e.seq > Some(1));
        for e in stored {
            assert!(counts.contains_key(&(chat.clone(), e.seq.unwrap())), "{chat} seq {:?} missing", e.seq);
        }
    }
}

#[tokio::test]
async fn flowgate_js_is_served_read_only_as_javascript_and_nothing_else_is() {
    let app = spawn_app().await;
    let js = reqwest::get(app.url("/static/flowgate.js")).await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.headers()["x-content-type-options"], "nosniff");
    assert_eq!(js.text().await.unwrap(), include_str!("../../static/flowgate.js"));
    for path in ["/static/", "/static", "/static/openapi.json", "/static/..%2FCargo.toml", "/static/nope.js"]
    {
        let (status, body) = crate::support::app::send(reqwest::Client::new().get(app.url(path))).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let post = reqwest::Client::new().post(app.url("/static/flowgate.js")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
