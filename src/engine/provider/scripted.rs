//! The scripted model: deterministic replies for the offline demo and the
//! tests, streamed word by word like a real model, and saying plainly in its
//! metadata that it is scripted.
//!
//! Reply choice: `replies[turn % len]` (the request's `turn`, so a resumed run
//! repeats the same text), else with `echo` the last message's content, else
//! `"(scripted reply)"`.
//!
//! Pace ([`Pace`]): unpaced, a fixed pause before each chunk (`delay_ms`), or
//! a rate (`tokens_per_sec`) kept by absolute deadlines, chunk n due n / rate
//! after the call starts, so the timer's 1 ms granularity delays single
//! chunks but never the average; a chunk overdue (the receiver was slow) goes
//! at once. A cancel stops either wait at once. Touches nothing but the clock.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
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
    pace: Pace,
}

/// How fast a scripted model streams its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the receiver takes them.
    Unpaced,
    /// This pause before each chunk (`delay_ms`).
    Delay(Duration),
    /// This many chunks per second on average (`tokens_per_sec`).
    Rate(u32),
}

impl Pace {
    /// The pace a `ModelSpec::Scripted` asks for; `tokens_per_sec` wins if
    /// both are set (validation refuses that).
    pub fn from_spec(delay_ms: u64, tokens_per_sec: u32) -> Self {
        match (tokens_per_sec, delay_ms) {
            (0, 0) => Pace::Unpaced,
            (0, ms) => Pace::Delay(Duration::from_millis(ms)),
            (rate, _) => Pace::Rate(rate),
        }
    }

    /// When chunk `n` (counted from 1) of a call that started at `start` may
    /// go; `None` when it may go now.
    fn due(&self, start: Instant, n: u64) -> Option<Instant> {
        let due = match *self {
            Pace::Unpaced => return None,
            Pace::Delay(d) => Instant::now() + d,
            Pace::Rate(rate) => {
                let nanos = u128::from(n) * 1_000_000_000 / u128::from(rate.max(1));
                start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        };
        (due > Instant::now()).then_some(due)
    }
}

impl ScriptedProvider {
    /// A scripted model named `name` (its name in the flow or registry).
    pub fn new(name: impl Into<String>, replies: Vec<String>, echo: bool, pace: Pace) -> Self {
        Self { name: name.into(), replies, echo, pace }
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
        let start = Instant::now();
        for (n, chunk) in (1..).zip(chunks(&content)) {
            if cancel.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            if let Some(due) = self.pace.due(start, n) {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                    _ = tokio::time::sleep_until(due) => {}
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
        let p =
            ScriptedProvider::new("offline", vec!["one two".into(), "three".into()], false, Pace::Unpaced);
        let (done, deltas) = run(&p, request(2, "hi")).await;
        assert_eq!(done.content, "one two");
        assert_eq!(deltas, vec!["one ", "two"]);
        assert_eq!(done.metadata["scripted"], true);
        assert_eq!(done.metadata["model"], "offline");
        assert_eq!(run(&p, request(3, "hi")).await.0.content, "three");
    }

    #[tokio::test]
    async fn echo_repeats_the_last_message_and_nothing_scripted_says_so() {
        let echo = ScriptedProvider::new("e", vec![], true, Pace::Unpaced);
        assert_eq!(run(&echo, request(0, "hello there")).await.0.content, "hello there");
        let plain = ScriptedProvider::new("p", vec![], false, Pace::Unpaced);
        assert_eq!(run(&plain, request(0, "x")).await.0.content, DEFAULT_REPLY);
    }

    #[tokio::test]
    async fn a_cancelled_call_returns_cancelled_promptly() {
        let p = ScriptedProvider::new(
            "slow",
            vec!["a b c d e f".into()],
            false,
            Pace::Delay(Duration::from_secs(60)),
        );
        let (tx, _rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let call = p.complete(request(0, "x"), tx, cancel.clone());
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), call).await;
        assert!(matches!(result, Ok(Err(ProviderError::Cancelled))));
    }

    /// 1,000 chunks at 400/s on tokio's paused clock: each chunk goes at its
    /// own deadline (n × 2.5 ms, the timer rounding it up by under 1 ms) and
    /// the last at exactly 2.5 s, so the average is exact.
    #[tokio::test(start_paused = true)]
    async fn a_rate_is_kept_by_deadlines_so_the_average_is_exact() {
        let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let p = ScriptedProvider::new("paced", vec![words.join(" ")], false, Pace::Rate(400));
        let (tx, mut rx) = mpsc::channel(8);
        let start = Instant::now();
        let call =
            tokio::spawn(async move { p.complete(request(0, "x"), tx, CancellationToken::new()).await });
        let mut n = 0u64;
        while let Some(_chunk) = rx.recv().await {
            n += 1;
            let at = start.elapsed();
            let due = Duration::from_micros(n * 2500);
            assert!(at >= due && at < due + Duration::from_millis(1), "chunk {n} at {at:?}, due {due:?}");
        }
        assert_eq!(n, 1000);
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
        assert!(call.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_stops_a_paced_stream_at_once() {
        let p = ScriptedProvider::new("paced", vec!["a b c d e f".into()], false, Pace::Rate(1));
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let call = tokio::spawn({
            let cancel = cancel.clone();
            async move { p.complete(request(0, "x"), tx, cancel).await }
        });
        assert_eq!(rx.recv().await.as_deref(), Some("a "));
        let start = Instant::now();
        cancel.cancel();
        assert!(matches!(call.await.unwrap(), Err(ProviderError::Cancelled)));
        assert_eq!(start.elapsed(), Duration::ZERO, "no wait for the next deadline");
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn the_spec_picks_the_pace() {
        assert_eq!(Pace::from_spec(0, 0), Pace::Unpaced);
        assert_eq!(Pace::from_spec(25, 0), Pace::Delay(Duration::from_millis(25)));
        assert_eq!(Pace::from_spec(0, 400), Pace::Rate(400));
    }
}
