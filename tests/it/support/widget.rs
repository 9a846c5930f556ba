//! Driving `<flowgate-chat>` in headless Chromium: mount it on a page of the
//! gateway's origin, read what its shadow root shows, wait for a condition
//! (a MutationObserver in the page, bounded), type and click as a user does,
//! and take the README's screenshots when `FLOWGATE_SCREENSHOTS=1`.

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::layout::Point;
use chromiumoxide::page::{Page, ScreenshotParams};
use serde_json::{Value, json};

use super::app::{TestApp, WAIT};
use super::browser::run;

/// The host page: the embed as the README shows it (the module, the element
/// with its `chat`, a `token` provider), on the gateway's origin. Records the
/// widget's DOM events in `window.seen`; defines `window.view()` (what the
/// widget shows, as JSON).
const MOUNT: &str = r#"async () => {
  const meta = Object.assign(document.createElement("meta"), { name: "viewport", content: "width=device-width" });
  document.documentElement.replaceChildren(document.createElement("head"), document.createElement("body"));
  document.head.append(meta);
  document.body.style.cssText = "margin: 0; padding: 24px; background: #e9edf3; font-family: system-ui";
  await import("/static/flowgate-chat.js");
  const el = document.createElement("flowgate-chat");
  el.setAttribute("chat", $CHAT);
  el.style.cssText = "max-width: 760px; margin: 0 auto";
  el.token = () => Promise.resolve($TOKEN);
  window.seen = { status: [], connection: [], messages: [] };
  el.addEventListener("flowgate-status", (e) => seen.status.push(e.detail));
  el.addEventListener("flowgate-connection", (e) => seen.connection.push(e.detail.state));
  el.addEventListener("flowgate-message", (e) => seen.messages.push(e.detail.id));
  window.view = () => {
    const root = el.shadowRoot, q = (s) => root.querySelector(s);
    return {
      status: q(".status-value").textContent,
      reconnecting: !q(".conn").hidden,
      messages: [...root.querySelectorAll("li.msg")].map((li) => ({
        id: li.dataset.id, sender: li.querySelector(".who b").textContent, role: li.dataset.role,
        text: li.querySelector(".text").textContent, partial: li.classList.contains("partial") })),
      request: q(".request").hidden ? null : {
        text: q(".request").textContent,
        buttons: [...q(".request").querySelectorAll("button")].map((b) => b.textContent) },
      error: q(".error").hidden ? null : q(".error").textContent,
      cancel_enabled: !q(".cancel").disabled,
      live: q(".live").textContent,
      seen,
    };
  };
  document.body.append(el);
  return true;
}"#;

/// Mounts the widget for `chat` (with a chat token minted for it) on `page`,
/// which must be on the gateway's origin.
pub async fn mount(page: &Page, app: &TestApp, chat: &str) {
    mount_with_token(page, chat, &chat_token(app, chat).await).await;
}

/// Mounts the widget for `chat` with `token` as its chat token on `page`,
/// which must be on the origin of the gateway that minted the token.
pub async fn mount_with_token(page: &Page, chat: &str, token: &str) {
    let script =
        MOUNT.replace("$CHAT", &json!(chat).to_string()).replace("$TOKEN", &json!(token).to_string());
    assert_eq!(run(page, &script).await, json!(true));
}

/// A chat token for `chat`, minted with the test key.
pub async fn chat_token(app: &TestApp, chat: &str) -> String {
    let (status, body) = app.post(&format!("/chats/{chat}/tokens"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// What the widget shows now.
pub async fn view(page: &Page) -> Value {
    run(page, "async () => window.view()").await
}

/// Waits until `condition` (JavaScript over `v`, the widget's [`view`]) holds,
/// checked on every change of the shadow root; returns the view then. Fails
/// with the last view if it does not hold in time.
pub async fn until(page: &Page, condition: &str) -> Value {
    let bound = WAIT.as_millis() - 1500;
    let script = format!(
        r#"async () => {{
  const root = document.querySelector("flowgate-chat").shadowRoot;
  const holds = () => {{ const v = window.view(); return ({condition}) ? v : null; }};
  return await new Promise((resolve) => {{
    let timer;
    const observer = new MutationObserver(() => check());
    const finish = (result) => {{ observer.disconnect(); clearTimeout(timer); resolve(result); }};
    const check = () => {{ const v = holds(); if (v) finish({{ ok: true, view: v }}); }};
    observer.observe(root, {{ subtree: true, childList: true, characterData: true, attributes: true }});
    timer = setTimeout(() => finish({{ ok: false, view: window.view() }}), {bound});
    check();
  }});
}}"#
    );
    let result = run(page, &script).await;
    assert_eq!(result["ok"], true, "the widget never showed `{condition}`; it shows {:#}", result["view"]);
    result["view"].clone()
}

/// Types `text` into the widget's composer with real key presses, then Enter.
pub async fn type_and_enter(page: &Page, text: &str) {
    let focused = "async () => { const t = document.querySelector('flowgate-chat').shadowRoot.querySelector('textarea'); t.focus(); return t.matches(':focus'); }";
    assert_eq!(run(page, focused).await, json!(true), "the composer takes the focus");
    let host = page.find_element("flowgate-chat").await.expect("the widget is on the page");
    host.type_str(text).await.expect("typing reaches the page");
    host.press_key("Enter").await.expect("Enter reaches the page");
}

/// Clicks (with the mouse) the widget's button whose text is `label`.
pub async fn click(page: &Page, label: &str) {
    let script = r#"async () => {
  const b = [...document.querySelector("flowgate-chat").shadowRoot.querySelectorAll("button")]
    .find((b) => b.textContent === $LABEL && !b.disabled);
  if (!b) return null;
  b.scrollIntoView({ block: "center" });
  const r = b.getBoundingClientRect();
  return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
}"#;
    let at = run(page, &script.replace("$LABEL", &json!(label).to_string())).await;
    assert!(at.is_object(), "no enabled button `{label}` in the widget: {:#}", view(page).await);
    let point = Point { x: at["x"].as_f64().unwrap(), y: at["y"].as_f64().unwrap() };
    tokio::time::timeout(WAIT, page.click(point)).await.expect("the click in time").expect("the click");
}

/// Sets the page's viewport to `width` x `height` CSS pixels.
pub async fn viewport(page: &Page, width: i64, height: i64) {
    let metrics = SetDeviceMetricsOverrideParams::new(width, height, 1.0, width < 500);
    tokio::time::timeout(WAIT, page.execute(metrics)).await.expect("in time").expect("the viewport is set");
}

/// With `FLOWGATE_SCREENSHOTS=1`, saves the page as `docs/img/{name}.png`.
pub async fn screenshot(page: &Page, name: &str) {
    if std::env::var("FLOWGATE_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
    let png =
        tokio::time::timeout(WAIT, page.screenshot(params)).await.expect("in time").expect("a screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}
