//! Cheap reading of server frames: the bench looks at substrings instead of
//! parsing every frame as JSON. Correct because the gateway serializes an
//! event envelope with its fields in a fixed order (`seq`, `chat_id`, `type`,
//! `created_at`, `data`), so the first `"type":"` of a frame that starts with
//! `{"seq":` is the envelope's own, and a quote inside a JSON string is
//! always escaped. Control replies (`subscribed`, `ack`, `error`, `pong`) are
//! rare and parsed in full.
//!
//! Pure: no I/O.

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
    fn replies_to_commands_are_control_frames() {
        let sub = r#"{"chat_id":"chat_1","last_seq":0,"type":"subscribed"}"#;
        assert_eq!(kind(sub), Kind::Control);
        assert_eq!(control(sub).map(|(t, _)| t).as_deref(), Some("subscribed"));
    }
}
