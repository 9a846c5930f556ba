//! The operator's bounds on a run while it executes (`[runs]`): its wall time
//! per running stretch (`max_run_secs`), the bytes of one agent reply
//! (`max_reply_bytes`: a longer reply is cut there and the model call
//! stopped), and the durable events one run writes (`max_events_per_run`).
//! A run over its time or events ends with `run.failed`, the code naming the
//! cap.
//!
//! A stretch is one runner task's drive: from the run's start (or a human's
//! answer, or its resumption on a node) until it ends or asks the human. The
//! events are counted from the store's seqs, so they survive a restart.
//!
//! Pure apart from reading the clock.

use serde_json::{Map, Value};
use tokio::time::{Duration, Instant};

use crate::config::RunLimits;
use crate::engine::provider::Completion;
use crate::model::{Message, RunId};

/// The metadata key marking a cut reply.
pub(super) const TRUNCATED_KEY: &str = "truncated";

/// One stretch's bounds.
pub(super) struct Bounds {
    deadline: Instant,
    max_run_secs: u64,
    max_reply_bytes: usize,
    max_events: u64,
}

/// A cap the run went over: the `run.failed` code and message.
#[derive(Debug)]
pub(super) struct Exceeded {
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl Bounds {
    /// The bounds of a stretch starting now.
    pub(super) fn starting_now(caps: &RunLimits) -> Self {
        Self {
            deadline: Instant::now() + Duration::from_secs(caps.max_run_secs),
            max_run_secs: caps.max_run_secs,
            max_reply_bytes: caps.max_reply_bytes,
            max_events: caps.max_events_per_run,
        }
    }

    /// When the stretch's time is up.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the stretch's time is up.
    pub(super) fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The cap the run is at, before its next step: its time, then its events
    /// (those from the run's first message, at seq `first`, to `seen_seq`).
    pub(super) fn exceeded(&self, history: &[Message], run_id: &RunId, seen_seq: u64) -> Option<Exceeded> {
        if self.out_of_time() {
            let message =
                format!("the run reached the operator's cap runs.max_run_secs = {}", self.max_run_secs);
            return Some(Exceeded { code: "max_run_secs", message });
        }
        let first = first_seq(history, run_id)?;
        let written = seen_seq.saturating_sub(first) + 1;
        (written >= self.max_events).then(|| Exceeded {
            code: "max_events_per_run",
            message: format!(
                "the run wrote {written} events, the operator's cap runs.max_events_per_run = {}",
                self.max_events
            ),
        })
    }

    /// A fresh cut for one reply.
    pub(super) fn reply_cut(&self) -> ReplyCut {
        ReplyCut { max: self.max_reply_bytes, kept: String::new() }
    }
}

/// The seq of the run's first message: the earliest of the messages at the
/// end of `history` that belong to `run_id`.
fn first_seq(history: &[Message], run_id: &RunId) -> Option<u64> {
    history.iter().rev().take_while(|m| m.run_id.as_ref() == Some(run_id)).last().map(|m| m.seq)
}

/// One reply streamed under `max_reply_bytes`.
pub(super) struct ReplyCut {
    max: usize,
    kept: String,
}

impl ReplyCut {
    /// Bytes kept so far.
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    /// The part of `delta` within the cap, and whether the cap cut it (the
    /// call should stop: what is kept is the reply).
    pub(super) fn take(&mut self, delta: String) -> (String, bool) {
        let room = self.max - self.kept.len();
        if delta.len() <= room {
            self.kept.push_str(&delta);
            return (delta, false);
        }
        let part = &delta[..floor_boundary(&delta, room)];
        self.kept.push_str(part);
        (part.to_owned(), true)
    }

    /// The reply the cap cut mid-stream: what was kept, marked (the
    /// provider's own metadata never came).
    pub(super) fn cut(self) -> Completion {
        let metadata = Map::from_iter([(TRUNCATED_KEY.to_owned(), Value::Bool(true))]);
        Completion { content: self.kept, metadata: Value::Object(metadata), tool_calls: Vec::new() }
    }

    /// A finished reply, cut to the cap (and marked) if longer.
    pub(super) fn finish(self, mut done: Completion) -> Completion {
        if done.content.len() <= self.max {
            return done;
        }
        done.content.truncate(floor_boundary(&done.content, self.max));
        match &mut done.metadata {
            Value::Object(map) => {
                map.insert(TRUNCATED_KEY.into(), Value::Bool(true));
            }
            other => {
                let provider = std::mem::take(other);
                *other = serde_json::json!({"provider_metadata": provider, TRUNCATED_KEY: true});
            }
        }
        done
    }
}

/// The largest char boundary of `s` at or below `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    (0..=at.min(s.len())).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_cut_on_a_char_boundary_and_marked() {
        let bounds = Bounds::starting_now(&RunLimits { max_reply_bytes: 5, ..RunLimits::default() });
        let mut cut = bounds.reply_cut();
        assert_eq!(cut.take("abc".into()), ("abc".to_owned(), false));
        assert_eq!(cut.take("dé!".into()), ("d".to_owned(), true));
        let done = cut.cut();
        assert_eq!(done.content, "abcd");
        assert_eq!(done.metadata[TRUNCATED_KEY], true);
        let whole = Completion {
            content: "exactly".into(),
            metadata: serde_json::json!({"scripted": true}),
            tool_calls: Vec::new(),
        };
        let done = bounds.reply_cut().finish(whole);
        assert_eq!((done.content.as_str(), &done.metadata[TRUNCATED_KEY]), ("exact", &Value::Bool(true)));
        assert_eq!(done.metadata["scripted"], true);
    }
}
