//! One WebSocket connection: the reader loop that parses commands and runs
//! them with the same rules as the REST routes, the subscriptions it holds
//! (one gap-free feed task each, in `session/subscriptions.rs`), and its
//! writer, joined to the reader in the connection's one task. A chat's
//! `chat.status` reaches the socket once: through its subscription while it
//! has one, else through `watch_status`.
//!
//! Touches the domain services (every command, and the access check of every
//! subscribe, is theirs), the journal they expose (feeds) and the node's
//! connection registry; every task it starts ends with the connection. A
//! refusal is an `error` frame, or a [`Disconnect`] where the error table
//! names one (a revoked or expired credential: 4001; a bound socket's chat
//! gone: 4004).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures::stream::SplitStream;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::outbox::{self, Closer, Liveness, Outbox};
use super::protocol::{self, Command, Op};
use super::{Permit, RealtimeState};
use crate::auth::Caller;
use crate::http::NamedId;
use crate::model::{ChatId, ClientError, Disconnect, ErrorCode, ToolResult};
use crate::service::{Answer, CredentialWatch, IdempotencyKey, Outcome};
use crate::store::MessageView;

mod subscriptions;
use subscriptions::Subscriptions;

/// Refused commands in a row after which a socket over its rate limit is
/// closed with 4029 (each before it gets a `rate_limited` error frame).
const RATE_STRIKES: u32 = 10;

/// What a session starts from.
pub struct SessionInit {
    /// The node's realtime state.
    pub state: RealtimeState,
    /// Who is connected.
    pub caller: Caller,
    /// The chat a `/chats/{id}/ws` socket is bound to (auto-subscribed).
    pub bound: Option<(ChatId, u64)>,
    /// The connection slot, released when the session ends.
    pub permit: Permit,
}

struct Session {
    state: RealtimeState,
    caller: Caller,
    bound: Option<ChatId>,
    outbox: Outbox,
    /// Cancelled when the connection ends; every subscription's feed follows it.
    token: CancellationToken,
    /// Shared with the status feed, which leaves these chats' statuses to them.
    subscriptions: Subscriptions,
    status_feed: Option<CancellationToken>,
    /// Commands refused for the rate limit in a row.
    strikes: u32,
}

/// The reading side of a connection, and what ends it.
struct Reader {
    stream: SplitStream<WebSocket>,
    /// A bound socket's chat and replay point, subscribed before the first read.
    bound: Option<(ChatId, u64)>,
    /// Ends the socket when its credential does (expired, or revoked anywhere).
    credential: CredentialWatch,
    closer: Closer,
    last_pong: Arc<AtomicU64>,
    epoch: Instant,
}

/// Runs a connection to its end: the reader and the writer are two futures
/// joined in one task (one task per socket). The setup runs here, before the
/// first poll: the returned future then holds each part once (an `async fn`
/// would keep room for its moved-from arguments as long as the socket lives).
/// Nothing the reader awaits may wait for the outbox to drain (only feeds, in
/// their own tasks, do): the writer runs only when this task does.
pub fn run(socket: WebSocket, init: Box<SessionInit>) -> impl Future<Output = ()> + Send + 'static {
    let SessionInit { state, caller, bound, permit } = *init;
    let credential = state.services.access.watch(&caller);
    let limits = &state.limits;
    let closer = Closer::default();
    let (outbox, inbox) =
        outbox::outbox(limits.ws_outbound_queue_bytes, closer.clone(), state.metrics.clone());
    let (sink, stream) = socket.split();
    let epoch = Instant::now();
    let last_pong = Arc::new(AtomicU64::new(0));
    let live = Liveness {
        ping_every: Duration::from_secs(limits.ws_ping_secs),
        pong_timeout: Duration::from_secs(limits.ws_pong_timeout_secs),
        last_pong_ms: last_pong.clone(),
        epoch,
    };
    let writer = outbox::write_loop(sink, inbox, closer.clone(), live, state.metrics.clone());
    let token = state.shutdown.child_token();
    let session = Session {
        bound: bound.as_ref().map(|(id, _)| id.clone()),
        state,
        caller,
        outbox,
        token,
        subscriptions: Subscriptions::default(),
        status_feed: None,
        strikes: 0,
    };
    let reader = Reader { stream, bound, credential, closer, last_pong, epoch };
    // The slot is held until the writer has sent the close frame too.
    futures::future::join(session.serve(reader), writer).map(move |_| drop(permit))
}

impl Session {
    /// Reads and runs commands until the connection closes (the writer, joined
    /// to it in `run`, then sends the close frame). Not an `async fn`: the
    /// block works on its captures in place, where an `async fn` would also
    /// keep a moved-from copy of its arguments.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps its moved-from arguments")]
    fn serve(mut self, mut reader: Reader) -> impl Future<Output = ()> + Send + 'static {
        async move {
            if let Some((chat_id, after_seq)) = reader.bound.take() {
                // Boxed: the command futures are large and only live while running,
                // so an idle session does not carry their space.
                Box::pin(self.subscribe(None, chat_id, after_seq, MessageView::All)).await;
            }
            loop {
                let next = tokio::select! {
                    biased;
                    _ = reader.closer.token().cancelled() => break,
                    _ = self.token.cancelled() => {
                        reader.closer.close(Disconnect::GoingAway, "server shutting down");
                        break
                    }
                    _ = reader.credential.ended() => {
                        reader.closer.close(Disconnect::Unauthenticated, "the credential was revoked or expired");
                        break
                    }
                    next = reader.stream.next() => next,
                };
                let Some(next) = next else {
                    reader.closer.close(Disconnect::Normal, "bye");
                    break;
                };
                if !self.read(next, &reader).await {
                    break;
                }
            }
            self.token.cancel();
        }
    }

    /// Handles one read; `false` once the connection is closing.
    async fn read(&mut self, read: Result<Message, axum::Error>, reader: &Reader) -> bool {
        match read {
            Ok(Message::Text(text)) => {
                if Box::pin(self.admit()).await {
                    Box::pin(self.handle(text.as_str())).await;
                }
            }
            Ok(Message::Binary(_)) => {
                if Box::pin(self.admit()).await {
                    let e = ClientError::new(
                        ErrorCode::InvalidRequest,
                        "binary frames are not supported; send JSON text",
                    );
                    self.send_error(None, e);
                }
            }
            Ok(Message::Pong(_)) => {
                reader.last_pong.store(reader.epoch.elapsed().as_millis() as u64, Ordering::Relaxed)
            }
            Ok(Message::Ping(_)) => {}
            Ok(Message::Close(_)) => {
                reader.closer.close(Disconnect::Normal, "bye");
                return false;
            }
            Err(e) => {
                let (close, why) = read_error(e);
                reader.closer.close(close, why);
                return false;
            }
        }
        true
    }

    /// Counts an inbound frame against the caller's rate limits. Over them,
    /// the frame is not run: it gets a `rate_limited` error frame, and the
    /// [`RATE_STRIKES`]th refusal in a row closes the socket with 4029.
    async fn admit(&mut self) -> bool {
        let Err(e) = self.state.services.access.throttle(&self.caller).await else {
            self.strikes = 0;
            return true;
        };
        self.strikes += 1;
        self.outbox.push(protocol::error(None, &e));
        if self.strikes >= RATE_STRIKES {
            self.outbox.closer().close(Disconnect::RateLimited, "too many commands over the rate limit");
        }
        false
    }

    /// Answers a refused command: an `error` frame, then a close where the
    /// error ends the socket (a dead credential always; a missing chat only
    /// on a socket bound to it).
    fn send_error(&self, reference: Option<&Value>, e: ClientError) {
        self.outbox.push(protocol::error(reference, &e));
        match e.code.disconnect() {
            Some(Disconnect::ChatGone) if self.bound.is_none() => {}
            Some(close) => self.outbox.closer().close(close, e.message),
            None => {}
        }
    }

    /// The chat an op names, defaulting to the bound chat; a bound socket
    /// refuses others.
    fn target(&self, chat_id: Option<String>) -> Result<ChatId, ClientError> {
        match (chat_id, &self.bound) {
            (Some(id), Some(bound)) if bound != id.as_str() => {
                Err(ClientError::new(ErrorCode::Forbidden, format!("this socket is bound to chat {bound}")))
            }
            (Some(id), _) => ChatId::named(&id),
            (None, Some(bound)) => Ok(bound.clone()),
            (None, None) => Err(ClientError::invalid("chat_id", "chat_id is required")),
        }
    }

    async fn handle(&mut self, text: &str) {
        let Command { reference, op } = match protocol::parse(text) {
            Ok(c) => c,
            Err(bad) => {
                return self.send_error(bad.reference.as_ref(), ClientError::new(bad.code, bad.message));
            }
        };
        let r = reference.as_ref();
        let result = match op {
            Op::Ping => {
                self.outbox.push(protocol::pong(r));
                Ok(())
            }
            Op::Subscribe { chat_id, after_seq, view } => match self.target(chat_id) {
                Ok(id) => {
                    self.subscribe(reference.clone(), id, after_seq.unwrap_or(0), view).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Op::Unsubscribe { chat_id } => self.unsubscribe(r, chat_id),
            Op::WatchStatus => self.watch_status(r).await,
            Op::UnwatchStatus => {
                if let Some(t) = self.status_feed.take() {
                    t.cancel();
                }
                self.outbox.push(protocol::ack(r, "unwatch_status", json!({})));
                Ok(())
            }
            Op::Message { chat_id, text, images, client_id } => {
                self.message(r, chat_id, (text, images), client_id).await
            }
            Op::Input { chat_id, text, request_id, auto_reply, tool_results, client_id } => {
                let text = if auto_reply { None } else { Some(text) };
                self.input(r, chat_id, (text, request_id, tool_results), client_id).await
            }
            Op::Cancel { chat_id } => self.cancel(r, chat_id).await,
        };
        if let Err(e) = result {
            self.send_error(r, e);
        }
    }

    async fn message(
        &mut self,
        r: Option<&Value>,
        chat_id: Option<String>,
        (text, images): (Option<String>, Vec<String>),
        client_id: Option<String>,
    ) -> Result<(), ClientError> {
        let id = self.target(chat_id)?;
        let key = client_id.map(|c| IdempotencyKey::parse(&c, "client_id")).transpose()?;
        let (services, caller) = (&self.state.services, &self.caller);
        // A text-only command keeps the fingerprint it always had.
        let fingerprint = if images.is_empty() { json!([id, text]) } else { json!([id, text, images]) };
        let request = ("ws message", &fingerprint);
        let answer = services.idempotent.once(caller, key.as_ref(), request, || async {
            let message = services.chats.post_message(caller, &id, text.as_deref(), &images).await?;
            Ok(Outcome::same(200, json!({"chat_id": id, "message": message})))
        });
        self.ack(r, "message", answer.await?);
        Ok(())
    }

    async fn input(
        &mut self,
        r: Option<&Value>,
        chat_id: Option<String>,
        (text, request_id, results): (Option<Option<String>>, Option<String>, Option<Vec<ToolResult>>),
        client_id: Option<String>,
    ) -> Result<(), ClientError> {
        let id = self.target(chat_id)?;
        let key = client_id.map(|c| IdempotencyKey::parse(&c, "client_id")).transpose()?;
        let (services, caller) = (&self.state.services, &self.caller);
        // A text answer keeps the fingerprint it always had.
        let fingerprint = match &results {
            None => json!([id, text, request_id]),
            Some(results) => json!([id, request_id, results]),
        };
        let request = ("ws input", &fingerprint);
        let answer = services.idempotent.once(caller, key.as_ref(), request, || async {
            let (answer, results) = (text.as_ref().map(Option::as_deref), results.as_deref());
            let chat =
                services.chats.answer_input(caller, &id, request_id.as_deref(), answer, results).await?;
            Ok(Outcome::same(200, json!({"chat_id": id, "status": chat.status})))
        });
        self.ack(r, "input", answer.await?);
        Ok(())
    }

    /// Acks a command with its (possibly replayed) answer.
    fn ack(&self, r: Option<&Value>, op: &str, answer: Answer) {
        let mut fields = answer.answer.body;
        if answer.replayed {
            fields["replayed"] = json!(true);
        }
        self.outbox.push(protocol::ack(r, op, fields));
    }

    async fn cancel(&mut self, r: Option<&Value>, chat_id: Option<String>) -> Result<(), ClientError> {
        let id = self.target(chat_id)?;
        let chat = self.state.services.chats.cancel(&self.caller, &id).await?;
        self.outbox.push(protocol::ack(r, "cancel", json!({"chat_id": id, "status": chat.status})));
        Ok(())
    }
}

/// How a failed read closes the socket: a frame or message over the size
/// limit 4009, a broken WebSocket protocol 1002, a text frame that is not
/// UTF-8 1007; anything else (the peer vanished) 1000.
fn read_error(e: axum::Error) -> (Disconnect, &'static str) {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e.into_inner().downcast_ref::<Error>() {
        Some(Error::Capacity(_)) => (Disconnect::TooLarge, "frame too large"),
        Some(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
            (Disconnect::Normal, "read error")
        }
        Some(Error::Protocol(_)) => (Disconnect::ProtocolError, "WebSocket protocol error"),
        Some(Error::Utf8(_)) => (Disconnect::InvalidData, "a text frame is not UTF-8"),
        _ => (Disconnect::Normal, "read error"),
    }
}
