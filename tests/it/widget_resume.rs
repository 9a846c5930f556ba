//! `<flowgate-chat>` resuming an answer in flight, in real headless Chromium:
//! across a gateway restart on the same address and data (the widget
//! reconnects on its own and shows the answer once), and across a page reload
//! (the subscription's `message.snapshot` shows the partial answer at once).

use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::fake_openai::Behaviour;
use crate::support::widget::{mount, until};
use crate::widget::{assert_shows_the_stored_messages, held_answer, strings, with_model};

/// How often `needle` occurs in all the text the widget shows.
fn occurrences(view: &Value, needle: &str) -> usize {
    let messages = view["messages"].as_array().unwrap();
    messages.iter().map(|m| m["text"].as_str().unwrap().matches(needle).count()).sum()
}

#[tokio::test]
async fn after_a_restart_mid_answer_the_widget_reconnects_on_its_own_and_shows_the_answer_once() {
    let (fake, app, chat) = held_answer(&["The answer ", "is "], &["forty-two."]).await;
    // The run resumed after the restart asks the model again.
    fake.push(Behaviour::Stream(strings(&["The answer ", "is ", "forty-two."])));
    let Some(browser) = Browser::launch("after_a_restart_mid_answer_the_widget_reconnects").await else {
        return;
    };
    let page = browser.open(&app.url("/healthz")).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;
    app.say(&chat, "What is the answer?").await;
    until(&page, "v.messages.some((m) => m.partial && m.text === 'The answer is ')").await;

    let app = app.restart_in_place(with_model(&fake)).await;
    let v = until(&page, "v.status === 'completed' && v.messages.every((m) => !m.partial)").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    assert_eq!(occurrences(&v, "The answer"), 1, "the answer is shown once: {v:#}");
    assert_eq!(v["messages"][1]["text"], "The answer is forty-two.");
    let states: Vec<&str> =
        v["seen"]["connection"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(states.contains(&"waiting"), "the widget saw the socket drop: {states:?}");
    assert_eq!(states.last(), Some(&"open"), "and reconnected on its own: {states:?}");
    assert!(!v["reconnecting"].as_bool().unwrap(), "the reconnecting indicator is gone");
    assert_eq!(fake.request_count(), 2);
    fake.release();
    browser.close().await;
}

/// The reloaded page's new socket gets the `message.snapshot` of the answer
/// in flight, then the live deltas.
#[tokio::test]
async fn a_page_reloaded_mid_answer_shows_the_partial_answer_at_once_then_the_rest() {
    let (fake, app, chat) = held_answer(&["Resumable ", "streams "], &["keep every word."]).await;
    let Some(browser) = Browser::launch("a_page_reloaded_mid_answer_shows_the_partial_answer").await else {
        return;
    };
    let page = browser.open(&app.url("/healthz")).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;
    app.say(&chat, "Tell me about resumable streams").await;
    until(&page, "v.messages.some((m) => m.partial && m.text === 'Resumable streams ')").await;

    tokio::time::timeout(crate::support::app::WAIT, page.reload()).await.expect("in time").expect("reloads");
    mount(&page, &app, &chat).await;
    // The model is still held: only the snapshot can show this text.
    let v = until(&page, "v.messages.some((m) => m.partial && m.text === 'Resumable streams ')").await;
    assert_eq!(v["status"], "running");
    fake.release();
    let v = until(&page, "v.status === 'completed' && v.messages.every((m) => !m.partial)").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    assert_eq!(occurrences(&v, "Resumable streams"), 1, "{v:#}");
    assert_eq!(v["messages"][1]["text"], "Resumable streams keep every word.");
    browser.close().await;
}
