//! The content check of `fanout`: one client's view of each streamed
//! message, assembled as a browser would from its `message.snapshot` (which
//! replaces the text) and `message.delta` frames (each appended at its byte
//! `offset`), then held against the stored text when its `message.created`
//! arrives. A delta whose offset lies past the assembled text opens a gap; a
//! later snapshot of the message closes it; a gap still open at
//! `message.created`, or assembled text that is not a prefix of the stored
//! text, is a hole: a user would have seen a broken answer. Assembled text
//! that is a proper prefix of the stored text with no gap was cut short: its
//! last deltas never came (a lagged feed caught up from the store after the
//! message was stored, so there was no partial to send), and the user saw the
//! answer stop, then arrive whole with its `message.created`.
//!
//! Pure: no I/O.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::frame::Delta;

/// What one client's messages came to (summed over clients for the report).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// `message.snapshot` frames.
    pub snapshots: u64,
    /// Deltas that arrived past the assembled text, later closed by a snapshot.
    pub gaps_closed: u64,
    /// Deltas that arrived past the assembled text with no snapshot closing
    /// the gap before the message's `message.created`.
    pub gaps_open: u64,
    /// Deltas at an offset already assembled (a snapshot held them).
    pub overlapping: u64,
    /// Deltas or snapshots of a message whose `message.created` came first.
    pub late: u64,
    /// Delta frames the bench could not read.
    pub unreadable: u64,
    /// `message.created` frames.
    pub created: u64,
    /// Streamed messages whose assembled text was the stored text.
    pub whole: u64,
    /// Streamed messages whose assembled text had a gap or differed.
    pub holes: u64,
    /// Streamed messages whose assembled text was a proper prefix of the
    /// stored text, with no gap: the tail came only in `message.created`.
    pub cut_short: u64,
    /// Messages of the streaming agent that arrived with nothing streamed.
    pub unstreamed_replies: u64,
    /// Messages streamed but never created before the run ended.
    pub unfinished: u64,
    /// Over the messages created: intervals between consecutive deltas of one message.
    pub streaming_intervals: u64,
    /// Over the messages created: the time from each one's first delta to its last.
    pub streaming_time: Duration,
}

impl Counts {
    /// Adds another client's counts.
    pub fn add(&mut self, o: &Counts) {
        self.snapshots += o.snapshots;
        self.gaps_closed += o.gaps_closed;
        self.gaps_open += o.gaps_open;
        self.overlapping += o.overlapping;
        self.late += o.late;
        self.unreadable += o.unreadable;
        self.created += o.created;
        self.whole += o.whole;
        self.holes += o.holes;
        self.cut_short += o.cut_short;
        self.unstreamed_replies += o.unstreamed_replies;
        self.unfinished += o.unfinished;
        self.streaming_intervals += o.streaming_intervals;
        self.streaming_time += o.streaming_time;
    }

    /// Deltas per second while a message streams (first to last delta of
    /// each), if any message streamed more than one.
    pub fn streaming_rate(&self) -> Option<f64> {
        let secs = self.streaming_time.as_secs_f64();
        (self.streaming_intervals > 0 && secs > 0.0).then(|| self.streaming_intervals as f64 / secs)
    }
}

/// One message being assembled.
#[derive(Debug, Default)]
struct Open {
    text: String,
    /// Deltas past `text` since the last snapshot.
    gapped: u64,
    /// Deltas received, and when the first and the last came.
    deltas: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// One client's messages in flight.
#[derive(Debug)]
pub struct Assembly {
    streamer: &'static str,
    open: HashMap<String, Open>,
    done: HashSet<String>,
    counts: Counts,
}

impl Assembly {
    /// A client's assembly; `streamer` is the agent whose replies stream.
    pub fn new(streamer: &'static str) -> Self {
        Assembly { streamer, open: HashMap::new(), done: HashSet::new(), counts: Counts::default() }
    }

    /// The message's assembly, begun if new; `None` (counted late) once created.
    fn open(&mut self, id: &str) -> Option<&mut Open> {
        if !self.open.contains_key(id) {
            if self.done.contains(id) {
                self.counts.late += 1;
                return None;
            }
            self.open.insert(id.to_owned(), Open::default());
        }
        self.open.get_mut(id)
    }

    /// A `message.delta` frame received `at` (`None`: it could not be read).
    pub fn delta(&mut self, delta: Option<Delta<'_>>, at: Instant) {
        let Some(d) = delta else {
            self.counts.unreadable += 1;
            return;
        };
        let Some(open) = self.open(d.message_id) else { return };
        open.deltas += 1;
        open.first.get_or_insert(at);
        open.last = Some(at);
        let len = open.text.len() as u64;
        if d.offset > len {
            open.gapped += 1;
            return;
        }
        // The part of the chunk past what is assembled (all of it, in order).
        let skip = (len - d.offset) as usize;
        if let Some(tail) = d.text.get(skip..) {
            open.text.push_str(tail);
        }
        if skip > 0 {
            self.counts.overlapping += 1;
        }
    }

    /// A `message.snapshot` frame: the text streamed so far replaces ours.
    pub fn snapshot(&mut self, id: &str, content: String) {
        self.counts.snapshots += 1;
        let Some(open) = self.open(id) else { return };
        open.text = content;
        let closed = std::mem::take(&mut open.gapped);
        self.counts.gaps_closed += closed;
    }

    /// A `message.created` frame: the stored text to compare with.
    pub fn created(&mut self, id: &str, sender: &str, content: &str) {
        self.counts.created += 1;
        match self.open.remove(id) {
            Some(open) => {
                if let (Some(first), Some(last)) = (open.first, open.last) {
                    self.counts.streaming_intervals += open.deltas - 1;
                    self.counts.streaming_time += last.duration_since(first);
                }
                self.counts.gaps_open += open.gapped;
                if open.gapped > 0 || !content.starts_with(&open.text) {
                    self.counts.holes += 1;
                } else if open.text.len() < content.len() {
                    self.counts.cut_short += 1;
                } else {
                    self.counts.whole += 1;
                }
                self.done.insert(id.to_owned());
            }
            None if sender == self.streamer => self.counts.unstreamed_replies += 1,
            None => {}
        }
    }

    /// The counts, with every message still open counted as unfinished.
    pub fn finish(mut self) -> Counts {
        self.counts.unfinished += self.open.len() as u64;
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn now() -> Instant {
        Instant::now()
    }

    fn d(id: &str, offset: u64, text: &str) -> Option<Delta<'static>> {
        let id: &'static str = Box::leak(id.to_owned().into_boxed_str());
        Some(Delta { message_id: id, offset, text: Cow::Owned(text.to_owned()) })
    }

    #[test]
    fn deltas_in_order_make_the_whole_text() {
        let mut a = Assembly::new("a");
        a.delta(d("m1", 0, "w1 "), now());
        a.delta(d("m1", 3, "w2"), now());
        a.created("m1", "a", "w1 w2");
        a.created("m0", "user", "go");
        let c = a.finish();
        assert_eq!((c.whole, c.holes, c.created, c.unstreamed_replies), (1, 0, 2, 0));
    }

    #[test]
    fn a_gap_is_a_hole_unless_a_snapshot_closes_it() {
        let mut a = Assembly::new("a");
        a.delta(d("m1", 0, "w1 "), now());
        a.delta(d("m1", 6, "w3 "), now());
        a.created("m1", "a", "w1 w2 w3 ");
        let c = a.finish();
        assert_eq!((c.whole, c.holes, c.gaps_open, c.gaps_closed), (0, 1, 1, 0));

        let mut a = Assembly::new("a");
        a.delta(d("m1", 0, "w1 "), now());
        a.delta(d("m1", 6, "w3 "), now());
        a.snapshot("m1", "w1 w2 w3 ".into());
        a.delta(d("m1", 6, "w3 "), now());
        a.delta(d("m1", 9, "w4"), now());
        a.created("m1", "a", "w1 w2 w3 w4");
        let c = a.finish();
        assert_eq!((c.whole, c.holes, c.gaps_open, c.gaps_closed), (1, 0, 0, 1));
        assert_eq!((c.snapshots, c.overlapping), (1, 1));
    }

    #[test]
    fn a_missing_tail_is_cut_short_and_a_reply_never_streamed_is_counted_apart() {
        let mut a = Assembly::new("a");
        a.delta(d("m1", 0, "w1 "), now());
        a.created("m1", "a", "w1 w2");
        a.created("m2", "a", "w1 w2");
        a.delta(d("m1", 3, "w2"), now());
        a.delta(d("m3", 0, "w1"), now());
        a.delta(d("m4", 0, "x1 "), now());
        a.created("m4", "a", "w1 w2");
        let c = a.finish();
        assert_eq!((c.cut_short, c.holes, c.unstreamed_replies, c.late, c.unfinished), (1, 1, 1, 1, 1));
    }
}
