//! WebSocket clients: connect to `GET /ws` with the API key, subscribe to one
//! chat, and open many such clients with a bounded number of handshakes in
//! flight.
//!
//! Touches only loopback sockets to the gateway.

use std::time::Duration;

use futures::{SinkExt, StreamExt, TryStreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::BenchError;
use crate::api::{Chat, Target};
use crate::frame;

/// A client socket.
pub type Socket = WebSocketStream<TcpStream>;

/// How long one handshake plus subscribe may take.
const SETUP_WAIT: Duration = Duration::from_secs(30);
/// Frames read while waiting for the `subscribed` reply, at most.
const SETUP_FRAMES: usize = 10_000;

/// Opens one `/ws` client with a read buffer of `read_buffer` bytes.
pub async fn connect(target: &Target, read_buffer: usize) -> Result<Socket, BenchError> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let mut request = format!("ws://{}/ws", target.authority).into_client_request()?;
    let key = HeaderValue::from_str(&target.key)
        .map_err(|_| BenchError::Usage("the API key is not a valid header value"))?;
    request.headers_mut().insert("x-api-key", key);
    let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await?;
    Ok(socket)
}

/// Subscribes `socket` to `chat` after its creation seq and waits for the
/// `subscribed` reply.
pub async fn subscribe(socket: &mut Socket, chat: &Chat) -> Result<(), BenchError> {
    let op = json!({"op": "subscribe", "chat_id": chat.id, "after_seq": chat.last_seq});
    socket.send(Message::Text(op.to_string().into())).await?;
    for _ in 0..SETUP_FRAMES {
        let text = match socket.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => {
                let detail = f.map(|f| format!("closed {}", u16::from(f.code))).unwrap_or_default();
                return Err(BenchError::Protocol { what: "subscribe", detail });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::Protocol { what: "subscribe", detail: "socket ended".into() }),
        };
        if frame::kind(&text) != frame::Kind::Control {
            continue;
        }
        match frame::control(&text) {
            Some((t, _)) if t == "subscribed" => return Ok(()),
            Some((t, v)) if t == "error" => {
                return Err(BenchError::Protocol { what: "subscribe", detail: v.to_string() });
            }
            _ => continue,
        }
    }
    Err(BenchError::Protocol { what: "subscribe", detail: "no `subscribed` reply".into() })
}

/// How each client is set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Read buffer per client, bytes.
    pub read_buffer: usize,
    /// Subscribe to a chat (else: a bare connection).
    pub subscribe: bool,
}

impl Setup {
    /// Subscribed clients with this read buffer.
    pub fn subscribed(read_buffer: usize) -> Self {
        Setup { read_buffer, subscribe: true }
    }
}

/// One client connected (and, per `setup`, subscribed to `chat`), bounded in time.
pub async fn open(target: &Target, chat: &Chat, setup: Setup) -> Result<Socket, BenchError> {
    let steps = async {
        let mut socket = connect(target, setup.read_buffer).await?;
        if setup.subscribe {
            subscribe(&mut socket, chat).await?;
        }
        Ok(socket)
    };
    tokio::time::timeout(SETUP_WAIT, steps).await.map_err(|_| BenchError::Timeout("connect and subscribe"))?
}

/// Opens `count` clients, client `i` (per `setup`) subscribed to `chats[i % chats.len()]`,
/// with at most `target.connect_concurrency` handshakes in flight. Returns
/// them in order of `i`.
pub async fn open_many(
    target: &Target,
    chats: &[Chat],
    count: usize,
    setup: Setup,
) -> Result<Vec<Socket>, BenchError> {
    if chats.is_empty() {
        return Err(BenchError::Usage("at least one chat is needed"));
    }
    futures::stream::iter(0..count)
        .map(|i| open(target, &chats[i % chats.len()], setup))
        .buffered(target.connect_concurrency)
        .try_collect()
        .await
}
