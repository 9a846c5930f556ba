//! Cursor pages for seq-ordered lists (messages, events): query parameters,
//! clamping, and the `{"data", "has_more", "next_cursor", "last_seq"}` body.
//! Messages also take `view` (`all`, the default, or `final`).

use serde::{Deserialize, Serialize};

use crate::model::ClientError;
use crate::store::{MessageView, SeqQuery};

/// `?after_seq=&before_seq=&limit=&order=&view=` (plus route-specific extras).
#[derive(Debug, Default, Deserialize)]
pub struct SeqParams {
    /// Items after this seq.
    pub after_seq: Option<u64>,
    /// Items before this seq.
    pub before_seq: Option<u64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    /// Long-poll: hold up to this many seconds until something newer exists.
    pub wait: Option<f64>,
    /// Messages only: `all` (default) or `final` (user messages, human input
    /// and final answers); any other value is a 422 naming `view`.
    pub view: Option<MessageView>,
}

impl SeqParams {
    /// The store query, asking one extra item to learn `has_more`.
    pub fn query(&self) -> Result<SeqQuery, ClientError> {
        let descending = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ClientError::invalid("order", format!("`{other}` is not `asc` or `desc`")));
            }
        };
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ClientError::invalid("limit", "must be between 1 and 1000"));
        }
        Ok(SeqQuery {
            after_seq: self.after_seq,
            before_seq: self.before_seq,
            limit: limit + 1,
            descending,
            view: self.view.unwrap_or_default(),
        })
    }
}

/// A page of seq-ordered items.
#[derive(Debug, Serialize)]
pub struct SeqPage<T> {
    /// The items.
    pub data: Vec<T>,
    /// More items follow in this order.
    pub has_more: bool,
    /// The seq to pass as `after_seq` (or `before_seq` when descending).
    pub next_cursor: Option<String>,
    /// The chat's last seq.
    pub last_seq: u64,
}

impl<T> SeqPage<T> {
    /// Cuts the extra item and sets the cursor from `seq_of` the last kept one.
    pub fn new(mut items: Vec<T>, query: &SeqQuery, last_seq: u64, seq_of: impl Fn(&T) -> u64) -> Self {
        let has_more = items.len() >= query.limit;
        items.truncate(query.limit - 1);
        let next_cursor = if has_more { items.last().map(|i| seq_of(i).to_string()) } else { None };
        SeqPage { data: items, has_more, next_cursor, last_seq }
    }
}
