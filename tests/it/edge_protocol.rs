//! Protocol and envelope hygiene at the edge: a client that breaks the
//! WebSocket protocol gets close 1002, a text frame that is not UTF-8 close
//! 1007 (hand-made frames on a raw socket, since a real client will not send
//! them); `/metrics` behind its token.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::{KEY, TestApp, WAIT, spawn_app};

/// Upgrades a raw TCP socket on `/ws`, sends `frame`, and returns the close
/// code the server answers with.
async fn close_code_after(app: &TestApp, frame: &[u8]) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-KEY: {KEY}\r\n\r\n",
        app.addr
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    tcp.write_all(frame).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut bytes)).await.expect("the server closes").unwrap();
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    assert!(bytes.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&bytes[..head_end]));
    let body = &bytes[head_end..];
    let close = body.windows(2).position(|w| w[0] == 0x88).expect("a close frame");
    u16::from_be_bytes([body[close + 2], body[close + 3]])
}

/// A masked client frame (mask key 0, so the payload goes as it is).
fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn a_frame_with_a_reserved_opcode_closes_with_1002() {
    let app = spawn_app().await;
    assert_eq!(close_code_after(&app, &masked(0x83, b"x")).await, 1002);
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let app = spawn_app().await;
    let frame = [0x81, 0x02, b'{', b'}'];
    assert_eq!(close_code_after(&app, &frame).await, 1002);
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let app = spawn_app().await;
    assert_eq!(close_code_after(&app, &masked(0x81, &[0xff, 0xfe, 0xfd])).await, 1007);
}

#[tokio::test]
async fn with_metrics_token_set_metrics_answers_only_that_bearer_token() {
    const TOKEN: &str = "metrics-token-0123456789";
    let app = crate::support::app::spawn_configured(|c| c.metrics.token = Some(TOKEN.into())).await;
    let plain = reqwest::Client::new();
    let (status, body) = crate::support::app::send(plain.get(app.url("/metrics"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let wrong = plain.get(app.url("/metrics")).bearer_auth("metrics-token-wrong-00000");
    assert_eq!(crate::support::app::send(wrong).await.0, 401);
    let resp = plain.get(app.url("/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("flowgate_http_requests_total"));
}

/// Sends raw bytes; returns the status line and the JSON body of the answer.
async fn raw_answer(app: &TestApp, request: &[u8]) -> (String, serde_json::Value) {
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut bytes)).await.expect("the server answers").unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    (head.lines().next().unwrap().to_owned(), serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test]
async fn a_header_the_http_parser_rejects_gets_400_bad_request_in_the_envelope() {
    let app = spawn_app().await;
    let (status, body) = raw_answer(&app, b"GET /chats HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["retryable"].as_bool()),
        (Some("bad_request"), Some(false))
    );
    let bad_length = b"POST /chats HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n";
    assert_eq!(raw_answer(&app, bad_length).await.1["error"]["code"], "bad_request");
}

#[tokio::test]
async fn too_many_headers_get_431_headers_too_large_in_the_envelope() {
    let app = spawn_app().await;
    let mut request = b"GET /chats HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        request.extend_from_slice(format!("X-Filler-{i}: y\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let (status, body) = raw_answer(&app, &request).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    assert_eq!(body["error"]["code"], "headers_too_large");
}

#[tokio::test]
async fn a_path_with_invalid_percent_encoding_gets_the_envelope() {
    let app = spawn_app().await;
    for path in ["/chats/%FF%FE", "/chats/%zz/messages", "/flows/%E0%A4"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["error"]["code"].as_str().is_some_and(|c| c.ends_with("not_found")), "{path}: {body}");
    }
}
