//! A cancel or delete committed anywhere (here: straight through the journal,
//! as another node would, without this node's `Engine::stop`) stops the
//! in-flight model call of the run at once.

use crate::support::app::{WAIT, spawn_app};
use flowgate::bus::Channel;
use flowgate::ledger::transitions;
use flowgate::model::{ChatStatus, EventKind};

async fn until_no_runs(app: &crate::support::app::TestApp) {
    tokio::time::timeout(WAIT, app.state.engine.idle()).await.expect("the runner stops");
}

async fn streaming_chat(app: &crate::support::app::TestApp) -> String {
    // 10 words at 1.5 s each: a 15 s stream, longer than any wait here, so
    // only a prompt stop can pass these tests.
    app.put_flow("slow", crate::support::flows::slow(1500)).await;
    let chat = app.create_chat("slow").await;
    let mut sub = app.state.bus.subscribe(&Channel::Chat(crate::support::app::chat_id(&chat))).await.unwrap();
    app.say(&chat, "go").await;
    loop {
        let frame = tokio::time::timeout(WAIT, sub.receiver.recv()).await.expect("a delta").unwrap();
        if frame.kind == EventKind::MessageDelta {
            return chat;
        }
    }
}

#[tokio::test]
async fn a_cancel_committed_elsewhere_stops_the_stream_at_once() {
    let app = spawn_app().await;
    let chat = streaming_chat(&app).await;
    app.state
        .services
        .chats
        .journal()
        .update(&crate::support::app::chat_id(&chat), transitions::cancel)
        .await
        .unwrap();
    until_no_runs(&app).await;
    assert_eq!(app.chat(&chat).await["status"], "ready");
    let stored = app.messages(&chat).await;
    assert_eq!(stored.len(), 1, "the half-streamed reply is not stored");
    // The chat takes a new message and runs again.
    app.say(&chat, "again").await;
    assert_eq!(app.chat(&chat).await["status"], serde_json::json!(ChatStatus::Running));
    assert_eq!(app.state.engine.active_runs(), 1);
}

#[tokio::test]
async fn deleting_a_streaming_chat_stops_its_runner() {
    let app = spawn_app().await;
    let chat = streaming_chat(&app).await;
    let (status, _) = app.delete(&format!("/chats/{chat}")).await;
    assert_eq!(status, 204);
    until_no_runs(&app).await;
}

#[tokio::test]
async fn a_runs_control_channel_carries_its_cancel_and_none_of_its_deltas() {
    let app = spawn_app().await;
    app.put_flow("slow", crate::support::flows::slow(1500)).await;
    let chat = app.create_chat("slow").await;
    let id = crate::support::app::chat_id(&chat);
    let mut control = app.state.bus.subscribe(&Channel::Control(id.clone())).await.unwrap();
    let mut feed = app.state.bus.subscribe(&Channel::Chat(id.clone())).await.unwrap();
    app.say(&chat, "go").await;
    loop {
        let frame = tokio::time::timeout(WAIT, feed.receiver.recv()).await.expect("a delta").unwrap();
        if frame.kind == EventKind::MessageDelta {
            break;
        }
    }
    let (status, _) = app.post(&format!("/chats/{chat}/cancel"), serde_json::json!({})).await;
    assert_eq!(status, 200);
    let first = tokio::time::timeout(WAIT, control.receiver.recv()).await.expect("a control event").unwrap();
    assert_eq!(first.kind, EventKind::RunCancelled, "the first (and only) frame is the cancel");
    let (status, _) = app.delete(&format!("/chats/{chat}")).await;
    assert_eq!(status, 204);
    let next = tokio::time::timeout(WAIT, control.receiver.recv()).await.expect("a control event").unwrap();
    assert_eq!(next.kind, EventKind::ChatDeleted);
    assert!(control.receiver.is_empty(), "nothing else reached the control channel");
}
