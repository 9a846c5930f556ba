//! The delivery guarantee of contract §5 over real sockets: per chat, every
//! durable event after the client's seq, in order, once, across reconnects and
//! subscribes that race a run; slow clients are cut off without slowing
//! anyone; deleted chats close their sockets.

use crate::support::app::{WAIT, spawn_app, spawn_configured, spawn_on, test_config};
use crate::support::ws::{Ended, assert_contiguous, connect, seqs};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A flow whose assistant streams `words` words per reply, `replies` times.
fn chatty(words: usize, replies: u32, delay_ms: u64) -> Value {
    let text = (0..words).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    json!({
        "name": "chatty",
        "models": {"s": {"provider": "scripted", "replies": [text], "delay_ms": delay_ms}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "max_consecutive_auto_reply": replies - 1},
            {"name": "assistant", "kind": "assistant", "model": "s"}
        ],
        "chat": {"kind": "two_agent"}
    })
}

fn durable(frames: &[Value]) -> Vec<Value> {
    frames.iter().filter(|f| f["seq"].is_u64()).cloned().collect()
}

#[tokio::test]
async fn a_reconnect_replays_exactly_the_missed_events() {
    let app = spawn_app().await;
    app.put_flow("chatty", chatty(5, 3, 0)).await;
    let chat = app.create_chat("chatty").await;
    let mut ws = connect(&app, &format!("/chats/{chat}/ws")).await;
    app.say(&chat, "first").await;
    let frames = ws.until_status("completed").await;
    let seen = *seqs(&frames).last().unwrap();
    drop(ws);
    // Missed while away: a second run.
    app.say(&chat, "second").await;
    app.wait_for_status(&chat, seen, flowgate::model::ChatStatus::Completed).await;
    let mut ws = connect(&app, &format!("/chats/{chat}/ws?after_seq={seen}")).await;
    let frames = ws.until_status("completed").await;
    assert_eq!(frames[0]["type"], "subscribed");
    let replayed = seqs(&frames);
    assert_contiguous(&replayed, seen + 1);
    let stored = app.events(&chat).await;
    assert_eq!(replayed.last().copied(), stored.last().and_then(|e| e.seq));
    // And nothing more arrives: a ping is answered next.
    assert_eq!(ws.call(json!({"op": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn subscribing_while_a_run_writes_misses_and_repeats_nothing() {
    let app = spawn_app().await;
    app.put_flow("chatty", chatty(3, 4, 1)).await;
    for round in 0..15u64 {
        let chat = app.create_chat("chatty").await;
        app.say(&chat, "go").await;
        // Subscribe from an early seq while the run is writing.
        let from = round % 3;
        let mut ws = connect(&app, "/ws").await;
        ws.send(json!({"op": "subscribe", "chat_id": chat, "after_seq": from})).await;
        let frames = ws.until_status("completed").await;
        let got = seqs(&frames);
        assert_contiguous(&got, from + 1);
        let stored: Vec<u64> = app.events(&chat).await.iter().filter_map(|e| e.seq).collect();
        assert_eq!(got, stored[from as usize..], "round {round}");
    }
}

#[tokio::test]
async fn two_sockets_on_one_chat_see_identical_sequences() {
    let app = spawn_app().await;
    app.put_flow("chatty", chatty(20, 3, 0)).await;
    let chat = app.create_chat("chatty").await;
    let mut a = connect(&app, &format!("/chats/{chat}/ws")).await;
    let mut b = connect(&app, "/ws").await;
    b.call(json!({"op": "subscribe", "chat_id": chat})).await;
    a.next().await;
    app.say(&chat, "go").await;
    let fa = durable(&a.until_status("completed").await);
    let fb = durable(&b.until_status("completed").await);
    assert_eq!(fa, fb);
    assert_contiguous(&seqs(&fa), 1);
}

#[tokio::test]
async fn deltas_stream_live_and_concatenate_to_the_stored_message() {
    let app = spawn_app().await;
    app.put_flow("chatty", chatty(12, 1, 0)).await;
    let chat = app.create_chat("chatty").await;
    let mut ws = connect(&app, &format!("/chats/{chat}/ws")).await;
    ws.next().await;
    app.say(&chat, "go").await;
    let frames = ws.until(|f| f["type"] == "message.created" && f["data"]["sender"] == "assistant").await;
    let created = frames.last().unwrap();
    let id = created["data"]["id"].as_str().unwrap();
    let deltas: Vec<&Value> = frames.iter().filter(|f| f["type"] == "message.delta").collect();
    assert!(deltas.len() > 1, "the reply streams in chunks");
    assert!(deltas.iter().all(|d| d["seq"].is_null() && d["data"]["message_id"] == id));
    let text: String = deltas.iter().map(|d| d["data"]["delta"].as_str().unwrap()).collect();
    assert_eq!(text, created["data"]["content"].as_str().unwrap());
    // Deltas are never replayed.
    let mut late = connect(&app, &format!("/chats/{chat}/ws")).await;
    let replay = late.until_status("completed").await;
    assert!(replay.iter().all(|f| f["type"] != "message.delta"));
}

#[tokio::test]
async fn deleting_a_chat_closes_its_socket_with_4004_and_tells_the_multiplexed_one() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let mut bound = connect(&app, &format!("/chats/{chat}/ws")).await;
    bound.next().await;
    let mut multi = connect(&app, "/ws").await;
    multi.call(json!({"op": "subscribe", "chat_id": chat})).await;
    let (status, _) = app.delete(&format!("/chats/{chat}")).await;
    assert_eq!(status, 204);
    let frames = multi.until(|f| f["type"] == "chat.deleted").await;
    assert_eq!(frames.last().unwrap()["chat_id"], chat.as_str());
    assert_eq!(multi.call(json!({"op": "ping"})).await["type"], "pong");
    let mut last = Vec::new();
    let end = loop {
        match bound.next_or_end(WAIT).await {
            Ok(v) => last.push(v),
            Err(end) => break end,
        }
    };
    assert_eq!(end, Ended::Closed(4004));
    assert_eq!(last.last().unwrap()["type"], "chat.deleted");
}

#[tokio::test]
async fn a_slow_client_is_cut_off_with_4008_while_a_fast_one_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path().to_path_buf());
    config.limits.ws_outbound_queue_bytes = 64 * 1024;
    config.limits.max_message_bytes = 16 * 1024;
    // Small kernel buffers, so a client that never reads fills them fast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(8 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let app = spawn_on(config, socket.listen(128).unwrap()).await;
    app.put_flow("chatty", chatty(1500, 2, 1)).await;
    let chat = app.create_chat("chatty").await;
    let slow_tcp = {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4 * 1024).unwrap();
        s.connect(app.addr).await.unwrap()
    };
    let request = format!("ws://{}/chats/{chat}/ws", app.addr);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(request).unwrap();
    request.headers_mut().insert("x-api-key", crate::support::app::KEY.parse().unwrap());
    let (mut slow, _) = tokio_tungstenite::client_async(request, slow_tcp).await.unwrap();
    let mut fast = connect(&app, &format!("/chats/{chat}/ws")).await;
    fast.next().await;
    app.say(&chat, "go").await;
    let frames = fast.until_status("completed").await;
    assert_contiguous(&seqs(&frames), 1);
    assert_eq!(app.state.metrics.ws_slow_closes.get(), 1, "the slow client was closed for slowness");
    // The slow client's stream ends: with 4008 if the close frame got through.
    let end = loop {
        use futures::StreamExt;
        match tokio::time::timeout(WAIT, slow.next()).await.expect("the slow socket ends") {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                break f.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break None,
        }
    };
    assert!(matches!(end, Some(4008) | None), "{end:?}");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let app = spawn_configured(|c| {
        c.limits.ws_ping_secs = 1;
        c.limits.ws_pong_timeout_secs = 2;
    })
    .await;
    // A hand-made client: it upgrades, then only listens, never answering.
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-KEY: {}\r\n\r\n",
        app.addr,
        crate::support::app::KEY
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let read_all = tcp.read_to_end(&mut bytes);
    tokio::time::timeout(WAIT, read_all).await.expect("the server closes the socket").unwrap();
    let body = &bytes[bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with(&[0x89, 0x00]), "the server pinged first");
    let close = body.windows(2).position(|w| w[0] == 0x88).expect("a close frame");
    let code = u16::from_be_bytes([body[close + 2], body[close + 3]]);
    assert_eq!(code, 4000);
}

#[tokio::test]
async fn sse_resumes_after_last_event_id() {
    let app = spawn_app().await;
    app.put_flow("chatty", chatty(3, 2, 0)).await;
    let chat = app.create_chat("chatty").await;
    app.say(&chat, "go").await;
    let events = app.wait_for_status(&chat, 0, flowgate::model::ChatStatus::Completed).await;
    let last = events.last().unwrap().seq.unwrap();
    let resp = app
        .client
        .get(app.url(&format!("/chats/{chat}/events")))
        .header("accept", "text/event-stream")
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.last() != Some(&last) {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(WAIT, stream.next()).await.expect("events arrive").unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        ids =
            text.lines().filter_map(|l| l.strip_prefix("id: ")).map(|s| s.parse::<u64>().unwrap()).collect();
    }
    assert_contiguous(&ids, 4);
    assert!(text.contains("event: chat.status"));
}

#[tokio::test]
async fn a_long_poll_answers_when_a_message_lands_and_empty_after_its_wait() {
    let app = spawn_app().await;
    app.put_flow("f", crate::support::flows::two_agent("NEVER", &["hello TERMINATE"])).await;
    let chat = app.create_chat("f").await;
    let last = app.chat(&chat).await["last_seq"].as_u64().unwrap();
    let (status, empty) = app.get(&format!("/chats/{chat}/messages?after_seq={last}&wait=1")).await;
    assert_eq!((status, empty["data"].as_array().map(Vec::len)), (200, Some(0)));
    let path = format!("/chats/{chat}/messages?after_seq={last}&wait=30");
    let poll = app.get(&path);
    let post = async {
        app.say(&chat, "wake up").await;
    };
    let ((status, page), ()) = tokio::time::timeout(WAIT, futures::future::join(poll, post))
        .await
        .expect("the long-poll answers before its 30 s wait");
    assert_eq!(status, 200);
    assert_eq!(page["data"][0]["content"], "wake up");
}

#[tokio::test]
async fn a_message_at_the_size_cap_reaches_its_subscriber_and_one_over_it_is_refused() {
    // The smallest queue the config allows for 16 KiB messages.
    let app = spawn_configured(|c| {
        c.limits.max_message_bytes = 16 * 1024;
        c.limits.ws_outbound_queue_bytes = 64 * 1024;
    })
    .await;
    app.put_flow("f", crate::support::flows::two_agent("NEVER", &["ok TERMINATE"])).await;
    let chat = app.create_chat("f").await;
    let mut ws = connect(&app, &format!("/chats/{chat}/ws")).await;
    ws.next().await;
    let (status, err) =
        app.post(&format!("/chats/{chat}/messages"), json!({"message": "x".repeat(16 * 1024 + 1)})).await;
    assert_eq!((status, err["error"]["param"].as_str()), (422, Some("message")));
    let big = "x".repeat(16 * 1024);
    app.say(&chat, &big).await;
    let frames = ws.until_status("completed").await;
    assert!(frames.iter().any(|f| f["data"]["content"].as_str().map(str::len) == Some(big.len())));
    // A reconnect replays it too, without a 4008.
    let mut again = connect(&app, &format!("/chats/{chat}/ws")).await;
    let replay = again.until_status("completed").await;
    assert!(replay.iter().any(|f| f["data"]["content"].as_str().map(str::len) == Some(big.len())));
}
