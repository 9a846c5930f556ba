//! Long-poll: hold a `GET /messages?wait=S` until a message newer than the
//! cursor is stored, the chat is deleted, or S seconds pass (the way in for
//! REST clients that still poll).
//!
//! Touches the bus only: the chat service subscribes before reading the store,
//! then hands the subscription here, so a message committed in between is not
//! missed.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::bus::Subscription;
use crate::model::EventKind;

/// Waits until a `message.created` after `after_seq` (or `chat.deleted`)
/// arrives, `wait` passes, or shutdown. A lag or a bus resync counts as
/// "something may have arrived": the caller re-reads the store either way.
pub(crate) async fn wait_for_message(
    mut sub: Subscription,
    after_seq: u64,
    wait: Duration,
    shutdown: &CancellationToken,
) {
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = shutdown.cancelled() => return,
            _ = sub.resync.changed() => return,
            frame = sub.receiver.recv() => match frame {
                Ok(f) if f.kind == EventKind::ChatDeleted => return,
                Ok(f) if f.kind == EventKind::MessageCreated && f.seq > Some(after_seq) => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
        }
    }
}
