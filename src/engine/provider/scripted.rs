//! The scripted model: deterministic replies for the offline demo and the
//! tests, streamed word by word like a real model, and saying plainly in its
//! metadata that it is scripted.
//!
//! Reply choice: `replies[turn % len]` (the request's `turn`, so a resumed run
//! repeats the same text), else with `echo` the last message's content, else
//! `"(scripted reply)"`. Touches nothing but the clock (its optional delay).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Completion, CompletionRequest, ModelProvider, ProviderError, TurnRole};

/// The reply when nothing is scripted.
pub const DEFAULT_REPLY: &str = "(scripted reply)";

/// A `ModelSpec::Scripted` model.
#[derive(Debug, Clone)]
pub struct ScriptedProvider {
    name: String,
    replies: Vec<String>,
    echo: bool,
    delay: Duration,
}

impl ScriptedProvider {
    /// A scripted model named `name` (its name in the flow or registry).
    pub fn new(name: impl Into<String>, replies: Vec<String>, echo: bool, delay_ms: u64) -> Self {
        Self { name: name.into(), replies, echo, delay: Duration::from_millis(delay_ms) }
    }

    /// The whole text it answers `request` with.
    pub fn reply_for(&self, request: &CompletionRequest) -> String {
        if !self.replies.is_empty() {
            let i = (request.turn % self.replies.len() as u64) as usize;
            return self.replies[i].clone();
        }
        if self.echo {
            return request
                .messages
                .iter()
                .rev()
                .find(|t| t.role != TurnRole::System)
                .map(|t| t.content.clone())
                .unwrap_or_default();
        }
        DEFAULT_REPLY.to_owned()
    }
}

/// Splits text into word chunks, each keeping its trailing whitespace, so the
/// chunks concatenate back to the text.
pub fn chunks(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(char::is_whitespace)
}

#[async_trait]
impl ModelProvider for ScriptedProvider {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn complete(
        &self,
        request: CompletionRequest,
        deltas: mpsc::Sender<String>,
        cancel: CancellationToken,
    ) -> Result<Completion, ProviderError> {
        let content = self.reply_for(&request);
        for chunk in chunks(&content) {
            if cancel.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            if !self.delay.is_zero() {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                    _ = tokio::time::sleep(self.delay) => {}
                }
            }
            // A closed receiver only means nobody listens to the stream.
            let _ = deltas.send(chunk.to_owned()).await;
        }
        if cancel.is_cancelled() {
            return Err(ProviderError::Cancelled);
        }
        Ok(Completion {
            content,
            metadata: json!({"provider": "scripted", "scripted": true, "model": self.name}),
            tool_calls: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Turn;
    use super::*;

    fn request(turn: u64, last: &str) -> CompletionRequest {
        CompletionRequest {
            agent: "writer".into(),
            turn,
            messages: vec![
                Turn { role: TurnRole::System, content: "be brief".into(), ..Turn::default() },
                Turn {
                    role: TurnRole::User,
                    name: Some("user".into()),
                    content: last.into(),
                    ..Turn::default()
                },
            ],
            tools: Vec::new(),
        }
    }

    async fn run(p: &ScriptedProvider, req: CompletionRequest) -> (Completion, Vec<String>) {
        let (tx, mut rx) = mpsc::channel(64);
        let done = p.complete(req, tx, CancellationToken::new()).await.unwrap();
        let mut got = Vec::new();
        while let Some(d) = rx.recv().await {
            got.push(d);
        }
        (done, got)
    }

    #[tokio::test]
    async fn replies_cycle_by_turn_and_stream_word_by_word() {
        let p = ScriptedProvider::new("offline", vec!["one two".into(), "three".into()], false, 0);
        let (done, deltas) = run(&p, request(2, "hi")).await;
        assert_eq!(done.content, "one two");
        assert_eq!(deltas, vec!["one ", "two"]);
        assert_eq!(done.metadata["scripted"], true);
        assert_eq!(done.metadata["model"], "offline");
        assert_eq!(run(&p, request(3, "hi")).await.0.content, "three");
    }

    #[tokio::test]
    async fn echo_repeats_the_last_message_and_nothing_scripted_says_so() {
        let echo = ScriptedProvider::new("e", vec![], true, 0);
        assert_eq!(run(&echo, request(0, "hello there")).await.0.content, "hello there");
        let plain = ScriptedProvider::new("p", vec![], false, 0);
        assert_eq!(run(&plain, request(0, "x")).await.0.content, DEFAULT_REPLY);
    }

    #[tokio::test]
    async fn a_cancelled_call_returns_cancelled_promptly() {
        let p = ScriptedProvider::new("slow", vec!["a b c d e f".into()], false, 60_000);
        let (tx, _rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let call = p.complete(request(0, "x"), tx, cancel.clone());
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), call).await;
        assert!(matches!(result, Ok(Err(ProviderError::Cancelled))));
    }
}
