//! Reading one answer: a Server-Sent Events stream of chunks (each delta
//! passed on as it comes) or a whole JSON completion, into a [`Reply`].
//!
//! Touches only the HTTP response it is given and the deltas channel.

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use reqwest::Response;
use serde_json::Value;
use tokio::sync::mpsc;

use super::wire::{CallDelta, ChatChunk, ChatResponse, json_message, truncate};
use super::{Failure, OpenAiConfig};
use crate::engine::provider::ToolCall;

/// The most we read of a whole JSON answer.
const JSON_LIMIT: usize = 16 * 1024 * 1024;

/// What one attempt read.
#[derive(Debug, Default)]
pub(super) struct Reply {
    /// The assembled text.
    pub(super) content: String,
    /// The server's token counts, if it sent them.
    pub(super) usage: Option<Value>,
    /// Why the model stopped (`stop`, `length`, …), if it said.
    pub(super) finish_reason: Option<String>,
    /// Tool calls, assembled from their pieces by `index`.
    pub(super) calls: Vec<ToolCall>,
}

/// Most tool calls one answer may make.
const MAX_CALLS: usize = 128;
/// Most bytes of one answer's tool calls (names, ids and arguments).
const MAX_CALL_BYTES: usize = 1 << 20;

impl Reply {
    /// Adds one piece of a tool call (a whole call is one piece): pieces with
    /// the same `index` (or, without one, the last call) extend one call.
    fn take_call(&mut self, config: &OpenAiConfig, piece: CallDelta) -> Result<(), Failure> {
        let index = match piece.index {
            Some(i) => i,
            None if piece.id.is_some() || self.calls.is_empty() => self.calls.len(),
            None => self.calls.len() - 1,
        };
        if index >= MAX_CALLS {
            return Err(config.malformed(format!("more than {MAX_CALLS} tool calls")));
        }
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, ToolCall::default);
        }
        let call = &mut self.calls[index];
        if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = piece.function {
            call.name.push_str(function.name.as_deref().unwrap_or_default());
            call.arguments.push_str(function.arguments.as_deref().unwrap_or_default());
        }
        let size: usize = self.calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len()).sum();
        if size > MAX_CALL_BYTES {
            return Err(config.malformed(format!("tool calls over {MAX_CALL_BYTES} bytes")));
        }
        Ok(())
    }
}

/// Where deltas go, remembering whether any went out (then a retry would
/// repeat streamed text).
pub(super) struct Sink<'a> {
    deltas: &'a mpsc::Sender<String>,
    /// Whether any non-empty delta was passed on.
    pub(super) sent_any: bool,
}

impl<'a> Sink<'a> {
    /// A sink sending into `deltas`.
    pub(super) fn new(deltas: &'a mpsc::Sender<String>) -> Self {
        Self { deltas, sent_any: false }
    }

    /// Passes `text` on; a closed receiver is not an error.
    async fn send(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.sent_any = true;
        // The receiver may have gone away; the caller still gets the reply.
        let _ = self.deltas.send(text).await;
    }
}

/// Reads an SSE answer until `[DONE]`.
pub(super) async fn read_stream(
    config: &OpenAiConfig,
    response: Response,
    sink: &mut Sink<'_>,
) -> Result<Reply, Failure> {
    let mut events = response.bytes_stream().eventsource();
    let mut reply = Reply::default();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            // The model had finished; only the trailer (usage, [DONE]) is lost.
            Err(EventStreamError::Transport(_)) if reply.finish_reason.is_some() => {
                return Ok(reply);
            }
            Err(EventStreamError::Transport(err)) => {
                return Err(config.connect_failure(format!("the stream broke: {}", super::describe(&err))));
            }
            Err(err) => return Err(config.malformed(format!("not an event stream: {err}"))),
        };
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(reply);
        }
        if data.is_empty() {
            continue;
        }
        let chunk: ChatChunk = serde_json::from_str(data)
            .map_err(|err| config.malformed(format!("a chunk is not valid JSON: {err}")))?;
        take_chunk(config, chunk, &mut reply, sink).await?;
    }
    match reply.finish_reason {
        Some(_) => Ok(reply),
        None => Err(config.connect_failure("the stream ended before [DONE]")),
    }
}

/// Adds one chunk to `reply`, passing its text on.
async fn take_chunk(
    config: &OpenAiConfig,
    chunk: ChatChunk,
    reply: &mut Reply,
    sink: &mut Sink<'_>,
) -> Result<(), Failure> {
    if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
        let message = json_message(&serde_json::json!({ "error": error }))
            .unwrap_or_else(|| truncate(&error.to_string(), 300));
        return Err(config.malformed(format!("the stream reported an error: {message}")));
    }
    if let Some(usage) = chunk.usage.filter(|u| !u.is_null()) {
        reply.usage = Some(usage);
    }
    if let Some(choice) = chunk.choices.into_iter().next() {
        if let Some(reason) = choice.finish_reason {
            reply.finish_reason = Some(reason);
        }
        let Some(delta) = choice.delta else { return Ok(()) };
        for piece in delta.tool_calls {
            reply.take_call(config, piece)?;
        }
        if let Some(text) = delta.content {
            reply.content.push_str(&text);
            sink.send(text).await;
        }
    }
    Ok(())
}

/// Reads a whole JSON completion (the server did not stream), passing its
/// text on as one delta.
pub(super) async fn read_json(
    config: &OpenAiConfig,
    response: Response,
    sink: &mut Sink<'_>,
) -> Result<Reply, Failure> {
    let body = read_limited(response, JSON_LIMIT)
        .await
        .map_err(|err| config.connect_failure(format!("the answer broke: {}", super::describe(&err))))?;
    if body.len() >= JSON_LIMIT {
        return Err(config.malformed("the answer is too large"));
    }
    let answer: ChatResponse = serde_json::from_slice(&body)
        .map_err(|err| config.malformed(format!("the answer is not valid JSON: {err}")))?;
    let choice =
        answer.choices.into_iter().next().ok_or_else(|| config.malformed("the answer has no choices"))?;
    let mut reply = Reply {
        usage: answer.usage.filter(|u| !u.is_null()),
        finish_reason: choice.finish_reason,
        ..Reply::default()
    };
    if let Some(message) = choice.message {
        for (i, call) in message.tool_calls.into_iter().enumerate() {
            reply.take_call(config, CallDelta { index: Some(i), ..call })?;
        }
        reply.content = message.content.unwrap_or_default();
    }
    sink.send(reply.content.clone()).await;
    Ok(reply)
}

/// The body, or its first `limit` bytes.
pub(super) async fn read_limited(response: Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}
