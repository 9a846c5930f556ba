//! HTTP plumbing shared by the REST routes (`api`) and the realtime ones
//! (`realtime`): the error envelope ([`ClientError`](crate::model::ClientError)
//! as a response), the body, query and typed-id path extractors, the
//! `Caller` extractor, and the CORS layer for configured origins.
//!
//! Also the server itself (`serve`): connections under timeouts and caps; and
//! the access log with the HTTP series (`access`).
//!
//! Touches the domain services (to authenticate), the config (CORS), the
//! metrics (`access`), and the listening socket and its connections (`serve`).

pub mod access;
pub mod cors;
mod error;
mod extract;
mod idempotency;
mod page;
mod path;
pub mod serve;

pub use extract::{BodyBytes, JsonBody, QueryParams, parse_json, parse_value, presented, session_cookie};
pub use idempotency::IdempotencyHeader;
pub use page::{SeqPage, SeqParams};
pub use path::{IdPath, NamedId};
