//! The gap-free feed on its own: a chat that is already gone when the feed
//! starts (deleted before the subscribe, or during a bus outage that swallowed
//! its `chat.deleted`) ends the feed with `chat.deleted` instead of idling.

use std::sync::Arc;

use crate::support::app::{WAIT, spawn_app};
use flowgate::bus::Frame;
use flowgate::model::EventKind;
use flowgate::realtime::feed::{FeedEnd, Follow, FrameSink};
use tokio_util::sync::CancellationToken;

/// Keeps every frame it is given.
#[derive(Clone, Default)]
struct Kept(Arc<std::sync::Mutex<Vec<Arc<Frame>>>>);

impl FrameSink for Kept {
    fn push(&mut self, frame: Arc<Frame>) -> bool {
        self.0.lock().unwrap().push(frame);
        true
    }

    async fn replay(&mut self, frame: Arc<Frame>) -> bool {
        self.push(frame)
    }
}

#[tokio::test]
async fn a_feed_for_a_chat_deleted_before_it_subscribed_ends_with_chat_deleted() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let seen = app.chat(&chat).await["last_seq"].as_u64().unwrap();
    let (status, _) = app.delete(&format!("/chats/{chat}")).await;
    assert_eq!(status, 204);
    let cancel = CancellationToken::new();
    let kept = Kept::default();
    let follow = Follow {
        journal: app.state.services.chats.journal(),
        chat_id: &crate::support::app::chat_id(&chat),
        after_seq: seen,
        sink: kept.clone(),
        cancel: &cancel,
    };
    let end = tokio::time::timeout(WAIT, follow.run()).await.expect("the feed ends by itself");
    assert_eq!(end, FeedEnd::Deleted);
    let frames = kept.0.lock().unwrap();
    let last = frames.last().expect("a frame");
    assert_eq!((last.kind, last.seq), (EventKind::ChatDeleted, Some(seen + 1)));
}
