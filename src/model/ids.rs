//! Typed ids, parsed and validated once at the edge: a [`ChatId`] is never a
//! [`FlowId`], so a swapped argument does not compile, and no id can smuggle
//! characters into a store key or a Redis hash tag (every id is a short run
//! of `[A-Za-z0-9_.-]`). Minted ids are a prefix plus a ULID, so they sort by
//! creation time (`chat_01JD…`).

use std::fmt;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Why a string is not an id of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}")]
pub struct IdError {
    /// The kind of id asked for (`chat id`, …).
    pub kind: &'static str,
    /// What was given (cut to 80 characters).
    pub value: String,
}

/// Whether `s` is a minted id: `prefix` then a 26-character ULID.
fn is_minted(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|ulid| ulid.len() == 26 && Ulid::from_string(ulid).is_ok())
}

/// Whether `s` is a chosen name: 1 to 64 of `[A-Za-z0-9_-]` (and `.` if `dot`).
fn is_name(s: &str, dot: bool) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dot && b == b'.'))
}

/// Declares one id type: its wire form, its rule, and minting where it has a
/// prefix.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id from the outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError { kind: $kind, value: s.chars().take(80).collect() })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s).map(|_| Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// Declares how an id type is minted.
macro_rules! minted {
    ($name:ident, $prefix:literal) => {
        impl $name {
            /// A new id: the prefix and a ULID.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(format!("{}{}", $prefix, Ulid::new()))
            }
        }
    };
}

typed_id!(
    /// `chat_…`: a chat.
    ChatId,
    "chat id",
    |s| is_minted(s, "chat_")
);
minted!(ChatId, "chat_");

typed_id!(
    /// A tenant: the owner of chats, flows and keys; 1 to 64 of
    /// `[A-Za-z0-9_.-]`. Every lookup is scoped by one.
    TenantId,
    "tenant",
    |s| is_name(s, true)
);

typed_id!(
    /// A flow: `flow_…`, or a name chosen at registration (1 to 64 of
    /// `[A-Za-z0-9_-]`; the demo is `demo`).
    FlowId,
    "flow id",
    |s| is_name(s, false)
);
minted!(FlowId, "flow_");

typed_id!(
    /// `key_…`: an API key.
    KeyId,
    "key id",
    |s| is_minted(s, "key_")
);
minted!(KeyId, "key_");

typed_id!(
    /// `run_…`: one run of a chat.
    RunId,
    "run id",
    |s| is_minted(s, "run_")
);
minted!(RunId, "run_");

typed_id!(
    /// `inp_…`: a request for human input.
    InputRequestId,
    "input request id",
    |s| is_minted(s, "inp_")
);
minted!(InputRequestId, "inp_");

impl Default for TenantId {
    /// `default`: the tenant the bootstrap key (`FLOWGATE_API_KEY`) and the
    /// demo flow belong to. Only a placeholder until a store fills in a flow
    /// record's real tenant.
    fn default() -> Self {
        TenantId("default".into())
    }
}

/// A new message id (`msg_` and a ULID). Messages are only ever named by the
/// server, so their id stays text.
pub fn new_message_id() -> String {
    format!("msg_{}", Ulid::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_carry_their_prefix_parse_back_and_sort_by_time() {
        let a = ChatId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ChatId::new();
        assert!(a.as_str().starts_with("chat_") && a.as_str().len() == 31);
        assert!(a < b);
        assert_eq!(ChatId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn an_id_of_another_kind_or_with_stray_characters_does_not_parse() {
        let flow = FlowId::new();
        assert!(ChatId::parse(flow.as_str()).is_err());
        for bad in ["chat_{x}", "chat_01JD", "", "chat_01JDXXXXXXXXXXXXXXXXXXXXX}", "a b"] {
            assert!(ChatId::parse(bad).is_err(), "{bad}");
        }
        assert!(TenantId::parse("acme}:chats").is_err());
        assert!(TenantId::parse(&"t".repeat(65)).is_err());
        assert!(FlowId::parse("demo").is_ok() && FlowId::parse("de.mo").is_err());
    }

    #[test]
    fn ids_read_back_from_json_are_validated() {
        let id: ChatId = serde_json::from_str(&format!("\"{}\"", ChatId::new())).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        assert!(serde_json::from_str::<ChatId>("\"chat_{oops}\"").is_err());
    }
}
