//! `<flowgate-chat>` and a model's tool calls, in real headless Chromium: the
//! pending `tool_calls` input is shown read-only (each call's name and
//! arguments as text, the composer disabled, no answer from the widget), and
//! once a client answers with `tool_results` the widget follows the run to
//! `completed`. Skipped loudly without a browser.

use crate::support::browser::Browser;
use crate::support::fake_openai::Behaviour;
use crate::support::widget::{mount, until};
use crate::tools::{call, functions_chat, setup};
use crate::widget::assert_shows_the_stored_messages;
use serde_json::json;

#[tokio::test]
async fn the_widget_shows_a_pending_tool_call_as_text_and_follows_the_clients_answer_to_completion() {
    let (fake, app) = setup("default").await;
    let hostile = r#"{"script": "<img src=x onerror=alert(1)>"}"#;
    fake.push(Behaviour::ToolCalls(vec![call("call_1", "sh", hostile)]));
    fake.push(Behaviour::Stream(vec!["TERMINATE".into()]));
    let chat = functions_chat(&app).await;
    let Some(browser) = Browser::launch("the_widget_shows_a_pending_tool_call_as_text").await else { return };
    let page = browser.open(&app.url("/healthz")).await;
    mount(&page, &app, &chat).await;
    until(&page, "v.status === 'ready'").await;
    app.say(&chat, "List the files.").await;

    let v = until(&page, "v.status === 'wait_for_human_input' && v.request").await;
    let request = v["request"]["text"].as_str().unwrap();
    assert!(request.contains("sh") && request.contains("<img src=x onerror=alert(1)>"), "{request}");
    assert!(request.contains("must be answered by a client"), "{request}");
    assert_eq!(v["request"]["buttons"], json!([]), "the widget offers no answer of its own");
    let inert = "async () => document.querySelector('flowgate-chat').shadowRoot.querySelectorAll('img').length \
                 + document.querySelectorAll('img').length";
    assert_eq!(crate::support::browser::run(&page, inert).await, json!(0), "arguments are text");
    let composer =
        "async () => document.querySelector('flowgate-chat').shadowRoot.querySelector('textarea').disabled";
    assert_eq!(crate::support::browser::run(&page, composer).await, json!(true));

    let answer = json!({"tool_results": [{"call_id": "call_1", "content": "a.txt"}]});
    let (status, body) = app.post(&format!("/chats/{chat}/input"), answer).await;
    assert_eq!(status, 202, "{body}");
    let v =
        until(&page, "v.status === 'completed' && !v.request && v.messages.every((m) => !m.partial)").await;
    assert_shows_the_stored_messages(&app, &chat, &v).await;
    browser.close().await;
}
