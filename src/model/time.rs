//! RFC 3339 UTC timestamps with millisecond precision, as every object carries.

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

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}
