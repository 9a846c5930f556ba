//! A real WebSocket client (tokio-tungstenite) with helpers that read like the
//! protocol: send an op, await the next JSON frame, await a close code.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::app::{KEY, TestApp, WAIT};

/// A connected client.
pub struct Ws {
    /// The socket.
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Why an upgrade was refused: the HTTP status and JSON body.
#[derive(Debug)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// The error body.
    pub body: Value,
}

/// Connects to `path` (e.g. `/ws`) with the test key.
pub async fn connect(app: &TestApp, path: &str) -> Ws {
    connect_with(app, path, Some(KEY)).await.expect("the upgrade is accepted")
}

/// Connects with an optional `X-API-KEY`; returns the refusal on a non-101.
pub async fn connect_with(app: &TestApp, path: &str, key: Option<&str>) -> Result<Ws, Refused> {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    connect_with_headers(app, path, &headers).await
}

/// Connects sending these headers (a cookie, an `Origin`); returns the
/// refusal on a non-101.
pub async fn connect_with_headers(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, Refused> {
    let url = format!("ws://{}{path}", app.addr);
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Ws { socket }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            Err(Refused { status, body })
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// What ended a socket.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// A close frame with this code.
    Closed(u16),
    /// The TCP stream ended without a close frame.
    Dropped,
}

impl Ws {
    /// Sends a JSON command.
    pub async fn send(&mut self, command: Value) {
        self.socket.send(Message::Text(command.to_string().into())).await.unwrap();
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::Text(text.to_owned().into())).await.unwrap();
    }

    /// The next JSON text frame (bounded wait); panics on a close.
    pub async fn next(&mut self) -> Value {
        match self.next_or_end(WAIT).await {
            Ok(v) => v,
            Err(end) => panic!("socket ended: {end:?}"),
        }
    }

    /// The next JSON text frame, or how the socket ended, within `wait`.
    pub async fn next_or_end(&mut self, wait: Duration) -> Result<Value, Ended> {
        loop {
            let msg = tokio::time::timeout(wait, self.socket.next()).await.expect("a frame arrives in time");
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ended::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Ended::Dropped),
            }
        }
    }

    /// Reads until a frame matching `pred`, returning every frame read.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self.next().await;
            let done = pred(&v);
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    /// Reads until the chat's status becomes `status`; returns every frame read.
    pub async fn until_status(&mut self, status: &str) -> Vec<Value> {
        self.until(|v| v["type"] == "chat.status" && v["data"]["status"] == status).await
    }

    /// Sends a command and reads frames until its reply (`ack`, `subscribed`,
    /// `error` or `pong` with this ref); returns the reply.
    pub async fn call(&mut self, mut command: Value) -> Value {
        let reference = json!(format!("r{}", rand_ref()));
        command["ref"] = reference.clone();
        self.send(command).await;
        loop {
            let v = self.next().await;
            if v["ref"] == reference {
                return v;
            }
        }
    }

    /// Reads until the socket ends (bounded); returns how.
    pub async fn closed(&mut self) -> Ended {
        loop {
            match self.next_or_end(WAIT).await {
                Ok(_) => continue,
                Err(end) => return end,
            }
        }
    }
}

fn rand_ref() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The seqs of the durable events among `frames`.
pub fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().filter_map(|f| f["seq"].as_u64()).collect()
}

/// Asserts `seqs` run from `from` with no gap and no duplicate.
pub fn assert_contiguous(seqs: &[u64], from: u64) {
    let expected: Vec<u64> = (from..from + seqs.len() as u64).collect();
    assert_eq!(seqs, expected.as_slice(), "seqs are not contiguous from {from}");
}
