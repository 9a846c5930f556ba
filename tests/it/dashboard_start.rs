//! The newcomer's path through the dashboard in real headless Chromium: sign
//! in, start the demo chat from the page, type the first message into the
//! `<flowgate-chat>` widget the dashboard opens (its socket authenticated by
//! the session cookie alone), and see the stored answer, exactly. Skipped
//! loudly without a browser.

use serde_json::json;

use crate::dashboard::{script, signed_in};
use crate::support::app::spawn_app;
use crate::support::browser::{Browser, run};
use crate::support::widget::type_and_enter;
use flowgate::model::ChatStatus;

/// What the dashboard's widget shows: its messages (sender, text, partial).
const SHOWN: &str = r##"
  const shown = () => [...(document.querySelector("#transcript flowgate-chat")?.shadowRoot
      ?.querySelectorAll("li.msg") ?? [])]
    .map((li) => ({ sender: li.querySelector(".who b").textContent,
                    text: li.querySelector(".text").textContent,
                    partial: li.classList.contains("partial") }));
"##;

#[tokio::test]
async fn a_newcomer_starts_the_demo_chat_from_the_dashboard_and_the_widget_shows_the_stored_answer() {
    let app = spawn_app().await;
    let Some(browser) = Browser::launch("a_newcomer_starts_the_demo_chat_from_the_dashboard").await else {
        return;
    };
    let page = signed_in(&browser, &app).await;
    let chat = run(
        &page,
        &script(
            r##"await until(() => [...$("new-flow").options].some((o) => o.value === "demo"), "the demo flow");
            $("new-flow").value = "demo";
            $("new-name").value = "My first chat";
            $("new-chat").requestSubmit();
            const widget = await until(() => document.querySelector("#transcript flowgate-chat"), "the widget");
            await until(() => widget.shadowRoot?.querySelector("textarea"), "the widget's composer");
            return widget.getAttribute("chat");"##,
        ),
    )
    .await;
    let chat = chat.as_str().expect("the widget names its chat").to_owned();
    assert_eq!(app.chat(&chat).await["name"], json!("My first chat"));

    type_and_enter(&page, "Hello, demo!").await;
    app.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await;
    let stored: Vec<_> = app
        .messages(&chat)
        .await
        .iter()
        .map(|m| json!({"sender": m["sender"], "text": m["content"], "partial": false}))
        .collect();
    let shown = run(
        &page,
        &script(&format!(
            r#"{SHOWN}
            const want = {n};
            await until(() => shown().length === want && shown().every((m) => !m.partial), "every stored message");
            return shown();"#,
            n = stored.len()
        )),
    )
    .await;
    assert_eq!(shown, json!(stored), "the widget shows exactly the stored messages");
    assert_eq!(stored[0]["text"], json!("Hello, demo!"));
    browser.close().await;
}
