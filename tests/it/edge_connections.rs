//! Connection hygiene: half-sent requests, stalled bodies and idle kept-alive
//! connections are closed by the configured timeouts (the idle one distinct
//! from the header-read one), the node's and a client's open connections are
//! capped (a proxied client by its forwarded address, also once its
//! connection became a WebSocket), and `/healthz` keeps answering.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use serde_json::json;

use crate::support::app::{KEY, TestApp, WAIT, spawn_configured};
use crate::support::ws;

/// Reads until the server closes the connection; what it sent before.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
        .await
        .expect("the server closed the connection in time")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

async fn open(app: &TestApp, first: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream
}

async fn healthz(app: &TestApp) -> u16 {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let response = tokio::time::timeout(WAIT, client.get(app.url("/healthz")).send()).await.expect("in time");
    response.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test]
async fn half_sent_requests_and_idle_keep_alive_connections_are_closed_while_healthz_answers() {
    let app = spawn_configured(|c| {
        c.limits.http_header_read_secs = 1;
        c.limits.http_idle_secs = 1;
    })
    .await;
    let mut half_sent = Vec::new();
    for _ in 0..100 {
        half_sent.push(open(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await);
    }
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut stream = open(&app, b"GET /chats HTTP/1.1\r\nHost: x\r\nX-API-KEY: wrong\r\n\r\n").await;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 401");
        idle.push(stream);
    }
    assert_eq!(healthz(&app).await, 200, "healthz answers beside them");
    for stream in &mut half_sent {
        assert_eq!(until_closed(stream).await, "", "a half-sent request gets no answer, only a close");
    }
    for stream in &mut idle {
        until_closed(stream).await;
    }
    assert_eq!(healthz(&app).await, 200);
}

#[tokio::test]
async fn a_stalled_body_gets_the_error_envelope_and_the_connection_closes() {
    let app = spawn_configured(|c| c.limits.http_body_timeout_secs = 1).await;
    let head = format!(
        "POST /chats HTTP/1.1\r\nHost: x\r\nX-API-KEY: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"from_flow\"",
        crate::support::app::KEY
    );
    let mut stream = open(&app, head.as_bytes()).await;
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"invalid_body\""), "{answer}");
}

#[tokio::test]
async fn over_the_node_cap_a_connection_is_closed_at_once_and_healthz_answers_once_the_flood_ends() {
    let app = spawn_configured(|c| {
        c.limits.http_max_connections = 10;
        c.limits.http_header_read_secs = 1;
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(open(&app, b"GET /healthz HTTP/1.1\r\n").await);
    }
    // The flood holds every slot: the next connection is closed unanswered.
    let mut extra = open(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(until_closed(&mut extra).await, "");
    for stream in &mut flood {
        until_closed(stream).await;
    }
    // The slots free as the server closes its side; poll until one is free.
    let deadline = tokio::time::Instant::now() + WAIT;
    while healthz(&app).await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "healthz answers again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_address_over_its_cap_is_refused_while_a_trusted_proxy_is_not() {
    let capped = spawn_configured(|c| c.limits.http_max_connections_per_client = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(open(&capped, b"GET /healthz HTTP/1.1\r\n").await);
    }
    let mut fourth = open(&capped, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(until_closed(&mut fourth).await, "");

    let proxied = spawn_configured(|c| {
        c.limits.http_max_connections_per_client = 3;
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(open(&proxied, b"GET /healthz HTTP/1.1\r\n").await);
    }
    assert_eq!(healthz(&proxied).await, 200);
}

/// Sends one full request and reads the answer's status line.
async fn status_line(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(WAIT, stream.read_exact(&mut head)).await.expect("answered in time").unwrap();
    let mut rest = [0u8; 1024];
    // Drain the rest of the small answer (headers and body) off the socket.
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut rest)).await;
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_kept_alive_connection_waits_for_its_next_request_past_the_header_read_bound_until_the_idle_bound()
{
    let app = spawn_configured(|c| {
        c.limits.http_header_read_secs = 1;
        c.limits.http_idle_secs = 4;
    })
    .await;
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(status_line(&mut stream, request).await, "HTTP/1.1 200");
    // Longer than a head may take, well within the idle bound.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status_line(&mut stream, request).await, "HTTP/1.1 200", "still open after the head bound");
    assert_eq!(until_closed(&mut stream).await, "", "then closed, idle");
}

#[tokio::test]
async fn a_silent_connection_closes_at_the_idle_bound_and_a_half_sent_head_at_the_header_read_bound() {
    let idle_short = spawn_configured(|c| {
        c.limits.http_idle_secs = 1;
        c.limits.http_header_read_secs = 3600;
    })
    .await;
    let mut silent = TcpStream::connect(idle_short.addr).await.unwrap();
    assert_eq!(until_closed(&mut silent).await, "");
    let head_short = spawn_configured(|c| {
        c.limits.http_idle_secs = 3600;
        c.limits.http_header_read_secs = 1;
    })
    .await;
    let mut half_sent = open(&head_short, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert_eq!(until_closed(&mut half_sent).await, "");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_per_client_cap_counts_the_forwarded_client() {
    let app = spawn_configured(|c| {
        c.limits.http_max_connections_per_client = 2;
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let from = |xff: &str| format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        assert_eq!(status_line(&mut stream, &from("203.0.113.7")).await, "HTTP/1.1 200");
        held.push(stream);
    }
    // A third connection for the same client, even behind a forged entry on
    // the left (the proxy appends the real client on the right), is refused.
    for xff in ["203.0.113.7", "198.51.100.1, 203.0.113.7"] {
        let mut third = TcpStream::connect(app.addr).await.unwrap();
        third.write_all(from(xff).as_bytes()).await.unwrap();
        assert_eq!(until_closed(&mut third).await, "", "{xff}");
    }
    let mut other = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(status_line(&mut other, &from("203.0.113.8")).await, "HTTP/1.1 200");
    // The proxy's own connections without a forwarded client are not capped.
    assert_eq!(healthz(&app).await, 200);
    assert_eq!(healthz(&app).await, 200);
}

#[tokio::test]
async fn an_upgraded_socket_behind_a_trusted_proxy_keeps_its_forwarded_client_counted() {
    let app = spawn_configured(|c| {
        c.limits.http_max_connections_per_client = 1;
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let headers = [("x-api-key", KEY), ("x-forwarded-for", "203.0.113.7")];
    let mut socket = ws::connect_with_headers(&app, "/ws", &headers).await.expect("upgraded");
    // Reads on the upgraded stream, which then lets go of the connection's
    // HTTP state: the forwarded client's place must stay taken.
    for _ in 0..2 {
        assert_eq!(socket.call(json!({"op": "ping"})).await["type"], "pong");
    }
    let from = |xff: &str| format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\n\r\n");
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    second.write_all(from("203.0.113.7").as_bytes()).await.unwrap();
    assert_eq!(until_closed(&mut second).await, "");
    let mut other = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(status_line(&mut other, &from("203.0.113.8")).await, "HTTP/1.1 200");
    assert_eq!(socket.call(json!({"op": "ping"})).await["type"], "pong");
}
