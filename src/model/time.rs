//! RFC 3339 UTC timestamps with millisecond precision, as every object carries.

use std::cell::Cell;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, always UTC, serialized as `2026-12-01T07:17:41.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

/// The current time, to the millisecond (what is stored and shown).
pub fn now() -> Timestamp {
    let t = Utc::now();
    Timestamp(DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t))
}

impl Timestamp {
    /// The RFC 3339 text form.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Parses RFC 3339 text.
    pub fn parse(s: &str) -> Result<Self, chrono::ParseError> {
        Ok(Timestamp(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc)))
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

/// The last timestamp a thread formatted, to the millisecond: a token stream
/// stamps many frames within one millisecond, and chrono's formatting (plus
/// its `String`) per frame showed in profiles. The text is chrono's own.
#[derive(Clone, Copy)]
struct Formatted {
    secs: i64,
    millis: u32,
    len: usize,
    text: [u8; 32],
}

thread_local! {
    static LAST: Cell<Option<Formatted>> = const { Cell::new(None) };
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The key is all the millisecond format shows (a leap second's
        // millis run past 999, and print as `:60`).
        let (secs, millis) = (self.0.timestamp(), self.0.timestamp_subsec_millis());
        if let Some(f) = LAST.get().filter(|f| f.secs == secs && f.millis == millis) {
            // Cached from a `String`, so valid UTF-8.
            return s.serialize_str(std::str::from_utf8(&f.text[..f.len]).unwrap_or_default());
        }
        let text = self.to_rfc3339();
        if text.len() <= 32 {
            let mut f = Formatted { secs, millis, len: text.len(), text: [0; 32] };
            f.text[..text.len()].copy_from_slice(text.as_bytes());
            LAST.set(Some(f));
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn json(t: &Timestamp) -> String {
        serde_json::to_string(t).unwrap()
    }

    #[test]
    fn the_cached_text_is_chronos_for_every_millisecond() {
        let base = Utc.with_ymd_and_hms(2026, 12, 1, 7, 17, 41).unwrap();
        let leap =
            NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_milli_opt(23, 59, 59, 1_500).unwrap();
        let mut times: Vec<Timestamp> = [0, 0, 1, 999, 1_000, 1_000, 0]
            .iter()
            .map(|ms| Timestamp(base + chrono::Duration::milliseconds(*ms)))
            .collect();
        times.push(Timestamp(base + chrono::Duration::microseconds(1_234)));
        times.push(Timestamp(Utc.from_utc_datetime(&leap)));
        times.push(Timestamp(Utc.with_ymd_and_hms(12_345, 1, 1, 0, 0, 0).unwrap()));
        for t in &times {
            assert_eq!(json(t), format!("\"{}\"", t.to_rfc3339()));
            assert_eq!(json(t), format!("\"{}\"", t.to_rfc3339()));
        }
        assert_eq!(json(&times[0]), "\"2026-12-01T07:17:41.000Z\"");
    }
}
