//! Integer fields as JSON Schema reads them: `integer` is any number with no
//! fractional part, so `2656` and `2656.0` are the same integer (Python's
//! `json` writes the second). serde's integer types refuse `2656.0`; these
//! helpers (for `#[serde(deserialize_with)]`) take it, and still refuse
//! `2656.5`, negatives and values out of the field's range.
//!
//! Pure: no I/O.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// An unsigned integer field that also takes an integral float.
pub fn unsigned<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_any(Unsigned(PhantomData))
}

/// An optional unsigned integer field (absent or `null` is `None`) that also
/// takes an integral float. Use with `#[serde(default)]`.
pub fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_option(OptionalUnsigned(PhantomData))
}

struct Unsigned<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Unsigned<T> {
    fn fit<E: de::Error>(n: u64) -> Result<T, E> {
        T::try_from(n).map_err(|_| {
            E::invalid_value(de::Unexpected::Unsigned(n), &"an unsigned integer in the field's range")
        })
    }
}

impl<'de, T: TryFrom<u64>> Visitor<'de> for Unsigned<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an unsigned integer")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::fit(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        let n = u64::try_from(n).map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))?;
        Self::fit(n)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<T, E> {
        // Below 2^64 and with no fraction: exactly one u64.
        if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            Self::fit(f as u64)
        } else {
            Err(E::invalid_type(de::Unexpected::Float(f), &self))
        }
    }
}

struct OptionalUnsigned<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for OptionalUnsigned<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an unsigned integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        unsigned(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        ttl: Option<u32>,
        #[serde(default, deserialize_with = "super::unsigned")]
        delay: u64,
    }

    fn read(v: serde_json::Value) -> Result<(Option<u32>, u64), String> {
        serde_json::from_value::<Body>(v).map(|b| (b.ttl, b.delay)).map_err(|e| e.to_string())
    }

    #[test]
    fn an_integer_field_takes_integers_and_integral_floats_only() {
        assert_eq!(read(json!({"ttl": 2656, "delay": 7})), Ok((Some(2656), 7)));
        assert_eq!(read(json!({"ttl": 2656.0, "delay": 7.0})), Ok((Some(2656), 7)));
        assert_eq!(read(json!({"ttl": null})), Ok((None, 0)));
        assert_eq!(read(json!({})), Ok((None, 0)));
        for bad in [json!({"ttl": 2656.5}), json!({"ttl": -1}), json!({"ttl": -1.0}), json!({"ttl": "5"})] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        assert!(read(json!({"ttl": 4_294_967_296u64})).is_err(), "out of u32's range");
        assert!(read(json!({"delay": 1e20})).is_err(), "out of u64's range");
    }
}
