//! `<flowgate-chat>` resuming an answer in flight, in real headless Chromium:
//! across a gateway restart on the same address and data (in-process and
//! graceful, or a `flowgate` process SIGKILLed and started again; either way
//! the widget reconnects on its own and shows the answer once), and across a
//! page reload (the subscription's `message.snapshot` shows the partial
//! answer at once).

use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::fake_openai::{Behaviour, FakeOpenAi};
use crate::support::process::{ProcessNode, ProcessSpec};
use crate::support::widget::{mount, mount_with_token, until};
use crate::widget::{
    assert_shows_the_stored_messages, assert_shows_these_messages, held_answer, one_answer_flow, strings,
    with_model,
};

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
    assert_reconnected_on_its_own(&v);
    assert_eq!(fake.request_count(), 2);
    fake.release();
    browser.close().await;
}

/// The widget saw its socket drop and opened a new one by itself.
fn assert_reconnected_on_its_own(v: &Value) {
    let states: Vec<&str> =
        v["seen"]["connection"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(states.contains(&"waiting"), "the widget saw the socket drop: {states:?}");
    assert_eq!(states.last(), Some(&"open"), "and reconnected on its own: {states:?}");
    assert!(!v["reconnecting"].as_bool().unwrap(), "the reconnecting indicator is gone");
}

/// The registry model `gpt` (the operator's, so no outbound allow-list
/// applies) as the fake, in a config file.
fn config_with_model(fake: &FakeOpenAi) -> String {
    format!(
        "[models.gpt]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\ntimeout_secs = 10\n",
        fake.base_url()
    )
}

/// The gateway is a real `flowgate` process on the default SQLite store: it
/// is SIGKILLed mid-answer (nothing stops gracefully, the socket just drops)
/// and a new process starts on the same port and data dir, resuming the run.
#[tokio::test]
async fn after_the_gateway_process_is_killed_mid_answer_the_widget_reconnects_and_shows_the_answer_once() {
    let Some(browser) = Browser::launch("after_the_gateway_process_is_killed_mid_answer").await else {
        return;
    };
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Held(strings(&["The answer ", "is "]), strings(&["forty-two."])));
    let dir = tempfile::tempdir().unwrap();
    let spec = ProcessSpec::new(dir.path()).config_file(&config_with_model(&fake));
    let mut node = ProcessNode::start(spec).await;
    let (status, body) = node.put("/flows/one", one_answer_flow()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = node.post("/chats", json!({"name": "t", "from_flow": "one"})).await;
    assert_eq!(status, 201, "{body}");
    let chat = body["id"].as_str().unwrap().to_owned();
    let (status, body) = node.post(&format!("/chats/{chat}/tokens"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    let page = browser.open(&node.url("/healthz")).await;
    mount_with_token(&page, &chat, body["token"].as_str().unwrap()).await;
    until(&page, "v.status === 'ready'").await;
    let (status, body) =
        node.post(&format!("/chats/{chat}/messages"), json!({"message": "What is the answer?"})).await;
    assert_eq!(status, 202, "{body}");
    until(&page, "v.messages.some((m) => m.partial && m.text === 'The answer is ')").await;

    // The run left `running` resumes at the next start and asks the model again.
    fake.push(Behaviour::Stream(strings(&["The answer ", "is ", "forty-two."])));
    node.kill().await;
    until(&page, "v.reconnecting && v.seen.connection.includes('waiting')").await;
    let node = node.restart_in_place().await;
    let v = until(&page, "v.status === 'completed' && v.messages.every((m) => !m.partial)").await;
    let (status, body) = node.get(&format!("/chats/{chat}/messages?limit=1000")).await;
    assert_eq!(status, 200, "{body}");
    assert_shows_these_messages(body["data"].as_array().unwrap(), &v);
    assert_eq!(occurrences(&v, "The answer"), 1, "the answer is shown once: {v:#}");
    assert_eq!(v["messages"][1]["text"], "The answer is forty-two.");
    assert_reconnected_on_its_own(&v);
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
