//! hyper answers a request it cannot parse (a bad header, a target or head
//! too large) with a bare status and an empty body. The connection's writer
//! swaps that answer for the same status with the JSON error envelope.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::Held;
use crate::model::ErrorCode;

/// The replacement bytes, how many are written, and how many of the
/// caller's bytes they stand for.
pub(super) struct Swap {
    pub(super) bytes: Vec<u8>,
    pub(super) at: usize,
    pub(super) stands_for: usize,
}

/// hyper's own answer to a request it could not parse: a bare head with an
/// empty body. Returns the same answer with the JSON error envelope.
pub(super) fn enveloped(head: &[u8]) -> Option<Vec<u8>> {
    let (code, message) = match head.get(..13)? {
        b"HTTP/1.1 400 " => (ErrorCode::BadRequest, "the request is not valid HTTP"),
        b"HTTP/1.1 414 " => (ErrorCode::UriTooLong, "the request target is too long"),
        b"HTTP/1.1 431 " => (ErrorCode::HeadersTooLarge, "too many or too large request headers"),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?;
    if !text.ends_with("\r\n\r\n") || !text.to_ascii_lowercase().contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let body = serde_json::json!({"error": {"code": code.as_str(), "message": message, "retryable": false}});
    let body = body.to_string();
    let status_line = &text[..text.find("\r\n")?];
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl Held {
    /// Writes the pending swap, then reports the caller's bytes as written.
    pub(super) fn poll_swap(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(swap) = &mut self.swap else { return Poll::Ready(Ok(0)) };
        while swap.at < swap.bytes.len() {
            match Pin::new(&mut self.tcp).poll_write(cx, &swap.bytes[swap.at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => swap.at += n,
                other => return other,
            }
        }
        let stands_for = swap.stands_for;
        self.swap = None;
        Poll::Ready(Ok(stands_for))
    }
}
