//! `<flowgate-chat>` (static/flowgate-chat.js) in real headless Chromium
//! against the real gateway: it streams an answer and ends on the stored
//! message, answers an input request from its answer box, shows an HTML reply
//! as inert text, cancels a run with its button, and fits a phone screen.
//! Answers are paced by the fake OpenAI-compatible server (held until the
//! test releases them) or by scripted flows. Skipped loudly without a browser.

use flowgate::config::Config;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_configured};
use crate::support::browser::{Browser, run};
use crate::support::fake_openai::{Behaviour, FakeOpenAi};
use crate::support::widget::{click, mount, screenshot, type_and_enter, until, view, viewport};

/// A config tweak: the registry model `gpt` is the fake.
pub fn with_model(fake: &FakeOpenAi) -> impl FnOnce(&mut Config) + use<> {
    let gpt = fake.model();
    move |config| {
        config.models.insert("gpt".into(), gpt);
    }
}

/// One `gpt` answer per message, then `completed`.
pub fn one_answer_flow() -> Value {
    json!({
        "name": "one answer",
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "max_consecutive_auto_reply": 0},
            {"name": "assistant", "kind": "assistant", "model": "gpt"}
        ],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    })
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A gateway whose `gpt` is a fake holding its first answer after `first`,
/// and a chat of [`one_answer_flow`].
pub async fn held_answer(first: &[&str], rest: &[&str]) -> (FakeOpenAi, TestApp, String) {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Held(strings(first), strings(rest)));
    let app = spawn_configured(with_model(&fake)).await;
    app.put_flow("one", one_answer_flow()).await;
    let chat = app.create_chat("one").await;
    (fake, app, chat)
}

/// The widget shows exactly the stored messages, in order, none partial;
/// its `flowgate-message` events named each once.
pub async fn assert_shows_the_stored_messages(app: &TestApp, chat: &str, shown: &Value) {
    assert_shows_these_messages(&app.messages(chat).await, shown);
}

/// The widget shows exactly `messages` (as the REST API lists them), in
/// order, none partial; its `flowgate-message` events named each once.
pub fn assert_shows_these_messages(messages: &[Value], shown: &Value) {
    let stored: Vec<Value> = messages
        .iter()
        .map(|m| json!({"id": m["id"], "sender": m["sender"], "role": m["role"], "text": m["content"], "partial": false}))
        .collect();
    assert_eq!(shown["messages"].as_array().unwrap(), &stored, "the widget shows the stored messages");
    let ids: Vec<&Value> = stored.iter().map(|m| &m["id"]).collect();
    let events: Vec<&Value> = shown["seen"]["messages"].as_array().unwrap().iter().collect();
    assert_eq!(events, ids, "one flowgate-message per stored message");
}

#[tokio::test]
async fn the_widget_streams_an_answer_and_ends_showing_exactly_the_stored_message() {
    let (fake, app, chat) = held_answer(&["A graph ", "is nodes "], &["and edges."]).await;
    let Some(browser) = Browser::launch("the_widget_streams_an_answer").await else { return };
    let page = browser.open(&app.url("/healthz")).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;

    type_and_enter(&page, "What is a graph?").await;
    let v = until(&page, "v.messages.some((m) => m.partial && m.text === 'A graph is nodes ')").await;
    assert_eq!(v["messages"][0]["text"], "What is a graph?", "{v:#}");
    assert_eq!((v["status"].as_str(), v["cancel_enabled"].as_bool()), (Some("running"), Some(true)));
    fake.release();

    let v = until(&page, "v.status === 'completed' && v.messages.every((m) => !m.partial)").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    assert_eq!(v["messages"][1]["text"], "A graph is nodes and edges.");
    let statuses: Vec<&str> =
        v["seen"]["status"].as_array().unwrap().iter().filter_map(|s| s["status"].as_str()).collect();
    assert_eq!(statuses, ["ready", "running", "completed"]);
    assert_eq!(v["seen"]["status"][2]["previous"], "running", "flowgate-status carries the previous status");
    browser.close().await;
}

/// A group of the user proxy (asked every turn) and a scripted assistant,
/// four messages long: the opening one, a question, the human's answer, the
/// assistant's last word.
fn one_question_flow() -> Value {
    json!({
        "name": "one question",
        "models": {"script": {"provider": "scripted", "replies": ["Shall I go on?", "Done, thank you."], "delay_ms": 5}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "ALWAYS"},
            {"name": "assistant", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "group", "speaker_selection": "round_robin", "max_round": 4}
    })
}

#[tokio::test]
async fn the_widget_answers_an_input_request_from_its_answer_box_and_the_run_completes() {
    let app = spawn_app().await;
    app.put_flow("question", one_question_flow()).await;
    let chat = app.create_chat("question").await;
    let Some(browser) = Browser::launch("the_widget_answers_an_input_request").await else { return };
    let page = browser.open(&app.url("/healthz")).await;
    viewport(&page, 1100, 720).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;
    type_and_enter(&page, "Please write a haiku").await;

    let v = until(&page, "v.request !== null && v.status === 'wait_for_human_input'").await;
    assert_eq!(v["request"]["buttons"], json!(["Auto reply", "Exit"]), "{v:#}");
    assert!(v["request"]["text"].as_str().unwrap().starts_with("user asks:"), "{v:#}");
    assert!(v["live"].as_str().unwrap().contains("asks"), "the live region announces the request: {v:#}");
    screenshot(&page, "widget").await;

    type_and_enter(&page, "Yes, go on").await;
    let v = until(&page, "v.status === 'completed'").await;
    assert_eq!(v["request"], Value::Null, "the answered request is gone");
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    let said: Vec<(&str, &str)> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("user", "Please write a haiku"),
            ("assistant", "Shall I go on?"),
            ("human_input", "Yes, go on"),
            ("assistant", "Done, thank you.")
        ]
    );
    assert_eq!(app.chat(&chat).await["status"], "completed");
    browser.close().await;
}

const XSS: &str = "<img src=x onerror=alert(1)>";

#[tokio::test]
async fn an_agent_reply_of_html_is_shown_as_inert_text() {
    use chromiumoxide::cdp::browser_protocol::page::EventJavascriptDialogOpening;
    let app = spawn_app().await;
    app.put_flow("xss", crate::support::flows::two_agent("NEVER", &[XSS])).await;
    let chat = app.create_chat("xss").await;
    let Some(browser) = Browser::launch("an_agent_reply_of_html_is_shown_as_inert_text").await else {
        return;
    };
    let page = browser.open(&app.url("/healthz")).await;
    let mut dialogs = page.event_listener::<EventJavascriptDialogOpening>().await.expect("dialog events");
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;
    app.say(&chat, "<script>alert(2)</script><b>bold?</b>").await;

    let v = until(&page, "v.status === 'completed'").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    assert_eq!(v["messages"][0]["text"], "<script>alert(2)</script><b>bold?</b>");
    let replies: Vec<&Value> =
        v["messages"].as_array().unwrap().iter().filter(|m| m["sender"] == "assistant").collect();
    assert!(replies.len() >= 2 && replies.iter().all(|m| m["text"] == XSS), "{v:#}");
    let elements = "async () => { const root = document.querySelector('flowgate-chat').shadowRoot; \
        return root.querySelectorAll('img, script, .text *').length + document.querySelectorAll('img, script').length; }";
    assert_eq!(run(&page, elements).await, json!(0), "no element came from the text");
    assert!(dialogs.next().now_or_never().is_none(), "no dialog opened");
    browser.close().await;
}

#[tokio::test]
async fn the_widgets_cancel_button_cancels_a_running_chat() {
    let (fake, app, chat) = held_answer(&["Counting: ", "one, "], &["two."]).await;
    let Some(browser) = Browser::launch("the_widgets_cancel_button_cancels").await else { return };
    let page = browser.open(&app.url("/healthz")).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready' && !v.cancel_enabled").await;
    app.say(&chat, "Count to two").await;
    until(&page, "v.messages.some((m) => m.partial && m.text === 'Counting: one, ')").await;

    click(&page, "Cancel run").await;
    let v = until(&page, "v.status === 'ready'").await;
    assert_eq!((v["cancel_enabled"].as_bool(), v["error"].as_str()), (Some(false), None), "{v:#}");
    assert!(
        v["messages"].as_array().unwrap().iter().all(|m| m["partial"] == false),
        "no partial left: {v:#}"
    );
    assert_eq!(app.chat(&chat).await["status"], "ready");
    let cancelled =
        app.events(&chat).await.iter().any(|e| e.kind == flowgate::model::EventKind::RunCancelled);
    assert!(cancelled, "the run was cancelled");
    fake.release();
    browser.close().await;
}

#[tokio::test]
async fn at_phone_width_the_widget_fits_and_its_exit_action_ends_the_chat() {
    let app = spawn_app().await;
    let chat = app.create_chat("demo").await;
    let Some(browser) = Browser::launch("at_phone_width_the_widget_fits").await else { return };
    let page = browser.open(&app.url("/healthz")).await;
    viewport(&page, 360, 740).await;
    mount(&page, &app, &chat).await;
    run(&page, "async () => { document.body.style.padding = '0'; return true; }").await;
    until(&page, "v.status === 'ready'").await;
    app.say(&chat, "Write one line about realtime gateways").await;
    until(&page, "v.request !== null && v.status === 'wait_for_human_input'").await;
    screenshot(&page, "widget-phone").await;

    let fits = r#"async () => {
  const root = document.querySelector("flowgate-chat").shadowRoot;
  const out = [...root.querySelectorAll("button, textarea, li.msg")]
    .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth; })
    .map((e) => e.className || e.tagName);
  return { overflow: document.documentElement.scrollWidth - innerWidth, out, width: innerWidth };
}"#;
    assert_eq!(run(&page, fits).await, json!({"overflow": 0, "out": [], "width": 360}));
    click(&page, "Exit").await;
    let v = until(&page, "v.status === 'completed'").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    assert_eq!(view(&page).await["request"], Value::Null);
    browser.close().await;
}

#[tokio::test]
async fn the_widget_is_served_as_javascript_and_sets_no_html_but_its_own_template() {
    let app = spawn_app().await;
    let source = include_str!("../../static/flowgate-chat.js");
    let js = reqwest::get(app.url("/static/flowgate-chat.js")).await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.text().await.unwrap(), source);
    let html_sinks: Vec<&str> = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| {
            ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"].iter().any(|s| l.contains(s))
        })
        .map(str::trim)
        .collect();
    assert_eq!(
        html_sinks,
        ["root.innerHTML = `<style>${STYLE}</style>${TEMPLATE}`;   // constant markup only"]
    );
}

#[tokio::test]
async fn manual_speaker_selection_shows_the_choices_as_buttons_and_a_click_picks_the_speaker() {
    let app = spawn_app().await;
    let flow = json!({
        "name": "manual",
        "models": {"script": {"provider": "scripted", "replies": ["I speak."]}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER"},
            {"name": "writer", "kind": "assistant", "model": "script"},
            {"name": "critic", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "group", "speaker_selection": "manual", "max_round": 3}
    });
    app.put_flow("manual", flow).await;
    let chat = app.create_chat("manual").await;
    let Some(browser) = Browser::launch("manual_speaker_selection_shows_the_choices").await else { return };
    let page = browser.open(&app.url("/healthz")).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;
    app.say(&chat, "Who speaks?").await;

    for (turn, pick) in ["critic", "writer"].into_iter().enumerate() {
        let condition = format!("v.request !== null && v.messages.length === {}", turn + 1);
        let v = until(&page, &condition).await;
        assert_eq!(v["request"]["buttons"], json!(["user", "writer", "critic"]), "{v:#}");
        click(&page, pick).await;
    }
    let v = until(&page, "v.status === 'completed'").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    let senders: Vec<&str> =
        v["messages"].as_array().unwrap().iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["user", "critic", "writer"]);
    browser.close().await;
}
