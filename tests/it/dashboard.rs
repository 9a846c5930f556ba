//! The monitoring dashboard at `/` in real headless Chromium (issue #10 item
//! 5): signing in through the page, a chat's row changing live while another
//! client drives the chat over REST, answering its pending input and signing
//! out from the page; and a page on another origin that cannot use the
//! dashboard's session (CORS and CSRF refuse it, its socket is refused) while
//! an allowed origin calls REST with a key. Skipped loudly without a browser.

use chromiumoxide::page::{Page, ScreenshotParams};
use serde_json::{Value, json};

use crate::support::app::{KEY, TestApp, spawn_app, spawn_on, test_config};
use crate::support::browser::{Browser, run};
use flowgate::model::ChatStatus;

/// In-page helpers: `until(pred, what)` resolves with `pred()`'s first truthy
/// value, re-checked on every DOM change (bounded: 8 s); `status(id)` is the
/// status a chat's row shows.
const HELPERS: &str = r#"
  const $ = (id) => document.getElementById(id);
  const until = (pred, what) => new Promise((resolve, reject) => {
    let timer;
    const observer = new MutationObserver(() => check());
    const check = () => {
      const value = pred();
      if (value) { observer.disconnect(); clearTimeout(timer); resolve(value); }
    };
    timer = setTimeout(() => { observer.disconnect(); reject(new Error(`timed out: ${what}`)); }, 8000);
    observer.observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
    check();
  });
  const status = (id) => document.querySelector(`tr[data-chat="${id}"] .status`)?.textContent;
"#;

/// An async function running `body` after the helpers.
fn script(body: &str) -> String {
    format!("async () => {{ {HELPERS} {body} }}")
}

/// Opens the dashboard and signs in through its form with the test key.
async fn signed_in(browser: &Browser, app: &TestApp) -> Page {
    let page = browser.open(&app.url("/")).await;
    let signed = run(
        &page,
        &script(&format!(
            r#"await until(() => !$("sign-in").hidden, "the sign-in form");
            $("api-key").value = "{KEY}";
            $("sign-in-form").requestSubmit();
            await until(() => !$("board").hidden, "the board");
            return {{ who: $("who").textContent, key_kept: $("api-key").value, stored: localStorage.length,
                      cookie_visible: document.cookie.includes("flowgate_session") }};"#
        )),
    )
    .await;
    let expected = json!({"who": "tenant default", "key_kept": "", "stored": 0, "cookie_visible": false});
    assert_eq!(signed, expected, "signed in; the key is kept nowhere and the cookie is HttpOnly");
    page
}

#[tokio::test]
async fn the_dashboard_changes_a_chats_row_live_when_another_client_drives_it() {
    let app = spawn_app().await;
    let Some(browser) = Browser::launch("the_dashboard_changes_a_chats_row_live").await else { return };
    let chat = app.create_chat("demo").await;
    let (_, xss) = app
        .post(
            "/chats",
            json!({"name": "<img src=x onerror=alert(1)>", "from_type": "flow", "from_flow": "demo"}),
        )
        .await;
    let page = signed_in(&browser, &app).await;
    let ready = run(
        &page,
        &script(&format!(
            r#"await until(() => status("{chat}") === "ready", "the row shows ready");
            await until(() => document.querySelector('#counts [data-status="ready"]')?.dataset.count === "2", "2 ready");
            await until(() => $("socket").textContent === "live", "the status socket is open");
            return {{ images: document.querySelectorAll('#chats img').length,
                      name: document.querySelector(`tr[data-chat="{xss_id}"] td span`).textContent }};"#,
            xss_id = xss["id"].as_str().unwrap()
        )),
    )
    .await;
    assert_eq!(ready, json!({"images": 0, "name": "<img src=x onerror=alert(1)>"}), "names are text");

    // Another client (REST, the test key) drives the chat; the row follows.
    app.say(&chat, "Hello from REST").await;
    let waiting = run(
        &page,
        &script(&format!(
            r#"await until(() => status("{chat}") === "wait_for_human_input", "the row shows the wait");
            await until(() => document.querySelector('#counts [data-status="wait_for_human_input"]')?.dataset.count === "1", "1 waiting");
            document.querySelector(`tr[data-chat="{chat}"]`).dispatchEvent(new KeyboardEvent("keydown", {{ key: "Enter" }}));
            await until(() => !$("pending").hidden, "the pending input");
            return {{ agent: $("pending-agent").textContent, status: $("detail-status").textContent }};"#
        )),
    )
    .await;
    assert_eq!(waiting, json!({"agent": "user", "status": "wait_for_human_input"}));
    if std::env::var("FLOWGATE_SCREENSHOTS").as_deref() == Ok("1") {
        screenshot(&page, "docs/img/dashboard.png").await;
    }

    // Answering from the page (a cookie POST with the CSRF token) ends the chat.
    let last = app.chat(&chat).await["last_seq"].as_u64().unwrap();
    run(&page, &script(r#"$("answer").value = "exit"; $("answer-form").requestSubmit(); return true;"#))
        .await;
    app.wait_for_status(&chat, last, ChatStatus::Completed).await;
    let done = run(
        &page,
        &script(&format!(
            r#"await until(() => status("{chat}") === "completed", "the row shows completed");
            $("sign-out").click();
            await until(() => !$("sign-in").hidden, "the sign-in form again");
            return (await fetch("/session")).status;"#
        )),
    )
    .await;
    assert_eq!(done, json!(401), "signed out: the cookie is gone");
    browser.close().await;
}

/// From a page on another origin: a credentialed GET, a credentialed simple
/// POST (no preflight: it reaches the server with the cookie) and a socket
/// to the dashboard's gateway; resolves with what the page could see.
const FOREIGN: &str = r#"async () => {
  const attempt = (p) => p.then((r) => `answered ${r.status}`, (e) => e.name);
  const list = await attempt(fetch("$GATEWAY/chats", { credentials: "include" }));
  const body = JSON.stringify({ name: "csrf", from_type: "flow", from_flow: "demo" });
  const post = await attempt(fetch("$GATEWAY/chats", {
    method: "POST", credentials: "include", headers: { "Content-Type": "text/plain" }, body }));
  const socket = await new Promise((resolve) => {
    const ws = new WebSocket("$GATEWAY".replace("http", "ws") + "/ws");
    ws.onopen = () => { resolve("open"); ws.close(); };
    ws.onclose = (e) => resolve(`closed ${e.code}`);
  });
  return { list, post, socket };
}"#;

/// From the allowed origin: REST with a key, and a credentialed read.
const ALLOWED: &str = r#"async () => {
  const keyed = await fetch("$GATEWAY/chats", { headers: { "X-API-KEY": "$KEY" } });
  const cookie = await fetch("$GATEWAY/session", { credentials: "include" }).then((r) => r.status, (e) => e.name);
  return { keyed: keyed.status, cookie };
}"#;

#[tokio::test]
async fn a_page_on_another_origin_cannot_use_the_dashboard_session() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = test_config(dir.path().to_path_buf());
    config.cors.allowed_origins = vec![format!("http://localhost:{port}")];
    let app = spawn_on(config, listener).await;
    // A second listener: 127.0.0.1 on another port is another origin of the
    // same site, so the browser does send the SameSite=Strict cookie there.
    let elsewhere = spawn_app().await;
    let Some(browser) = Browser::launch("a_page_on_another_origin_cannot_use_the_dashboard_session").await
    else {
        return;
    };
    signed_in(&browser, &app).await;

    let foreign = browser.open(&elsewhere.url("/healthz")).await;
    let seen = run(&foreign, &FOREIGN.replace("$GATEWAY", &app.base)).await;
    let expected = json!({"list": "TypeError", "post": "TypeError", "socket": "closed 1006"});
    assert_eq!(seen, expected, "CORS hides every answer and the upgrade is refused");
    let (_, chats) = app.get("/chats").await;
    assert_eq!(chats["data"], json!([]), "the POST that reached the server was refused (no CSRF token)");
    let metrics = app.state.metrics.render();
    let refused = r#"method="POST",route="/chats",status="403""#;
    assert!(metrics.contains(refused), "the cookie reached the server and was refused 403:\n{metrics}");

    let allowed = browser.open(&format!("http://localhost:{port}/healthz")).await;
    let seen: Value = run(&allowed, &ALLOWED.replace("$GATEWAY", &app.base).replace("$KEY", KEY)).await;
    assert_eq!(seen, json!({"keyed": 200, "cookie": "TypeError"}), "a key works, credentials never do");
    browser.close().await;
}

/// Saves a screenshot of the page (the README shows it).
async fn screenshot(page: &Page, path: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let params = ScreenshotParams::builder().full_page(true).build();
    page.save_screenshot(params, &path).await.expect("the screenshot is saved");
}
