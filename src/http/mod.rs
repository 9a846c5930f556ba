//! HTTP plumbing shared by the REST routes (`api`) and the realtime ones
//! (`realtime`): the error envelope ([`ClientError`](crate::model::ClientError)
//! as a response), the body, query and typed-id path extractors, the
//! `Caller` extractor, and the CORS layer for configured origins.
//!
//! Touches the domain services (to authenticate) and the config (CORS).

pub mod cors;
mod error;
mod extract;
mod page;
mod path;

pub use extract::{BodyBytes, JsonBody, QueryParams, parse_json, parse_value, presented};
pub use page::{SeqPage, SeqParams};
pub use path::{IdPath, NamedId};
