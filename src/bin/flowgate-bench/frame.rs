//! Cheap reading of server frames: the bench looks at substrings instead of
//! parsing every frame as JSON. Correct because the gateway serializes an
//! event envelope with its fields in a fixed order (`seq`, `chat_id`, `type`,
//! `created_at`, `data`), so the first `"type":"` of a frame that starts with
//! `{"seq":` is the envelope's own, and a quote inside a JSON string is
//! always escaped. Control replies (`subscribed`, `ack`, `error`, `pong`) are
//! rare and parsed in full.
//!
//! Pure: no I/O.

use std::borrow::Cow;

use serde_json::Value;

/// What one text frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// An event envelope of this `type`.
    Event(&'a str),
    /// A reply to a command (`subscribed`, `ack`, `error`, `pong`), or anything else.
    Control,
}

/// Classifies a frame by its prefix and first `"type":"`.
pub fn kind(text: &str) -> Kind<'_> {
    if !text.starts_with("{\"seq\":") {
        return Kind::Control;
    }
    match string_after(text, "\"type\":\"") {
        Some(t) => Kind::Event(t),
        None => Kind::Control,
    }
}

/// The JSON string value that follows `key` (which ends with its opening
/// quote), up to the next quote. For values that never hold a quote.
fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// One `message.delta` as its frame carries it (`data`: `message_id`,
/// `sender`, `delta`, `offset`, in that order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta<'a> {
    /// The message being streamed.
    pub message_id: &'a str,
    /// UTF-8 bytes of the message streamed before this chunk.
    pub offset: u64,
    /// The chunk (unescaped).
    pub text: Cow<'a, str>,
}

/// Reads a `message.delta` frame without parsing it all: the first
/// `"message_id":"` and `"delta":"` are `data`'s own (a quote inside a string
/// is escaped, so neither key can occur inside a value), and `"offset":`
/// follows the chunk.
pub fn delta(text: &str) -> Option<Delta<'_>> {
    let message_id = string_after(text, "\"message_id\":\"")?;
    let key = "\"delta\":\"";
    let start = text.find(key)? + key.len();
    let end = start + string_len(&text[start..])?;
    let raw = &text[start..end];
    let chunk = if raw.contains('\\') {
        Cow::Owned(serde_json::from_str(&text[start - 1..=end]).ok()?)
    } else {
        Cow::Borrowed(raw)
    };
    let rest = text[end + 1..].strip_prefix(",\"offset\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let offset = rest[..digits].parse().ok()?;
    Some(Delta { message_id, offset, text: chunk })
}

/// Bytes of a JSON string's body up to its closing (unescaped) quote.
fn string_len(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A `message.snapshot` or `message.created` frame's message id, sender and
/// whole text (parsed in full: one per message, or per lagged feed).
pub fn message_text(text: &str) -> Option<(String, String, String)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let data = v.get("data")?;
    let id = data.get("message_id").or_else(|| data.get("id"))?.as_str()?;
    let sender = data.get("sender")?.as_str()?;
    let content = data.get("content")?.as_str()?;
    Some((id.to_owned(), sender.to_owned(), content.to_owned()))
}

/// The envelope's `created_at` as Unix milliseconds.
pub fn created_at_ms(text: &str) -> Option<i64> {
    let t = string_after(text, "\"created_at\":\"")?;
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis())
}

/// For a `chat.status` envelope: whether the new status ends a run
/// (`completed`, `error` or `ready` after a cancel). `data` holds `status`
/// and `previous`, so the key `"status":` names the new one.
pub fn run_ended(text: &str) -> Option<&str> {
    let status = string_after(text, "\"status\":\"")?;
    matches!(status, "completed" | "error").then_some(status)
}

/// The microsecond stamp a latency probe message carries (`lat:<micros>`),
/// read from a `message.created` envelope.
pub fn probe_micros(text: &str) -> Option<i64> {
    let start = text.find(PROBE_KEY)? + PROBE_KEY.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

/// The text of a probe message stamped now-ish (`lat:<micros>`).
pub fn probe_text(micros: i64) -> String {
    format!("lat:{micros}")
}

const PROBE_KEY: &str = "\"content\":\"lat:";

/// A control frame parsed in full: its `type` and the whole value.
pub fn control(text: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let t = v.get("type")?.as_str()?.to_owned();
    Some((t, v))
}

#[cfg(test)]
mod tests {
    use flowgate::bus::Frame;
    use flowgate::model::{ChatId, Event, EventKind, Timestamp};
    use serde_json::json;

    use super::*;

    fn envelope(seq: Option<u64>, kind: EventKind, data: Value) -> String {
        let at = Timestamp::parse("2026-01-02T03:04:05.678Z").unwrap();
        let event = Event { seq, chat_id: ChatId::new(), kind, created_at: at, data };
        Frame::from_event(&event).json.as_str().to_owned()
    }

    #[test]
    fn an_envelope_is_told_by_its_own_type_even_when_its_data_has_one() {
        let text = envelope(
            None,
            EventKind::MessageDelta,
            json!({"delta": "\"type\":\"chat.status\"", "meta": {"type": "x"}}),
        );
        assert_eq!(kind(&text), Kind::Event("message.delta"));
        assert_eq!(created_at_ms(&text), Some(1_767_323_045_678));
    }

    #[test]
    fn a_completed_status_ends_the_run_and_a_running_one_does_not() {
        let done =
            envelope(Some(9), EventKind::ChatStatus, json!({"status": "completed", "previous": "running"}));
        assert_eq!(kind(&done), Kind::Event("chat.status"));
        assert_eq!(run_ended(&done), Some("completed"));
        let running =
            envelope(Some(2), EventKind::ChatStatus, json!({"status": "running", "previous": "completed"}));
        assert_eq!(run_ended(&running), None);
    }

    #[test]
    fn a_probe_message_carries_its_stamp() {
        let m = envelope(
            Some(3),
            EventKind::MessageCreated,
            json!({"role": "user", "content": probe_text(1234567)}),
        );
        assert_eq!(kind(&m), Kind::Event("message.created"));
        assert_eq!(probe_micros(&m), Some(1234567));
    }

    #[test]
    fn a_delta_gives_its_message_offset_and_unescaped_chunk() {
        let chat = ChatId::new();
        let plain = Frame::delta(&chat, "msg_1", "a", "w1 ", 42);
        let d = delta(plain.json.as_str()).unwrap();
        assert_eq!((d.message_id, d.offset, d.text.as_ref()), ("msg_1", 42, "w1 "));
        let tricky = "say \"delta\":\"x\" \\ é\n";
        let escaped = Frame::delta(&chat, "msg_2", "a\"b", tricky, 7);
        let d = delta(escaped.json.as_str()).unwrap();
        assert_eq!((d.message_id, d.offset, d.text.as_ref()), ("msg_2", 7, tricky));
    }

    #[test]
    fn a_snapshot_and_a_created_message_give_their_whole_text() {
        let snap = envelope(
            None,
            EventKind::MessageSnapshot,
            json!({"message_id": "msg_1", "sender": "a", "content": "w1 w2 "}),
        );
        assert_eq!(message_text(&snap), Some(("msg_1".into(), "a".into(), "w1 w2 ".into())));
        let created = envelope(
            Some(4),
            EventKind::MessageCreated,
            json!({"id": "msg_1", "sender": "a", "role": "assistant", "content": "w1 w2 w3"}),
        );
        assert_eq!(message_text(&created), Some(("msg_1".into(), "a".into(), "w1 w2 w3".into())));
    }

    #[test]
    fn replies_to_commands_are_control_frames() {
        let sub = r#"{"chat_id":"chat_1","last_seq":0,"type":"subscribed"}"#;
        assert_eq!(kind(sub), Kind::Control);
        assert_eq!(control(sub).map(|(t, _)| t).as_deref(), Some("subscribed"));
    }
}
