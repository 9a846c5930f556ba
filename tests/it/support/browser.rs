//! Headless Chromium for the browser tests, over the DevTools protocol
//! (chromiumoxide). One browser per test, on its own temporary profile, killed
//! when the test ends; every wait is bounded by [`WAIT`].
//!
//! Without a browser binary, [`Browser::launch`] prints a loud `SKIPPED` line
//! and returns `None`, unless `FLOWGATE_REQUIRE_BROWSER=1`, when it panics
//! instead (CI). `CHROME=/path/to/chromium` picks a binary.

use std::io::Write;

use chromiumoxide::browser::{Browser as Cdp, BrowserConfig};
use chromiumoxide::page::Page;
use futures::StreamExt;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;

use super::app::WAIT;

/// A running headless Chromium.
pub struct Browser {
    cdp: Cdp,
    handler: JoinHandle<()>,
    _profile: TempDir,
}

impl Browser {
    /// Starts headless Chromium (`--no-sandbox` as root), or `None` (loudly)
    /// when there is none and `FLOWGATE_REQUIRE_BROWSER` is not `1`.
    pub async fn launch(test: &str) -> Option<Browser> {
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let mut builder = BrowserConfig::builder()
            .new_headless_mode()
            .user_data_dir(profile.path())
            .launch_timeout(WAIT)
            .request_timeout(WAIT)
            .args(["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]);
        if running_as_root() {
            builder = builder.no_sandbox();
        }
        let config = match builder.build() {
            Ok(config) => config,
            Err(why) => {
                if std::env::var("FLOWGATE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                    panic!("{test}: no Chromium ({why}) and FLOWGATE_REQUIRE_BROWSER=1");
                }
                // Straight to stderr: the harness hides the output of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "*** SKIPPED: {test}: no Chromium found ({why}); this browser test did not run ***"
                );
                return None;
            }
        };
        let (cdp, mut events) = Cdp::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Some(Browser { cdp, handler, _profile: profile })
    }

    /// A new tab at `url`, once it has loaded.
    pub async fn open(&self, url: &str) -> Page {
        let page = tokio::time::timeout(WAIT, self.cdp.new_page(url)).await.expect("the page opens in time");
        page.unwrap_or_else(|e| panic!("opening {url}: {e}"))
    }

    /// Closes the browser and waits for it to exit (bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(WAIT, self.cdp.close()).await;
        let _ = tokio::time::timeout(WAIT, self.cdp.wait()).await;
        self.handler.abort();
    }
}

/// Runs `function` (JavaScript source of an async function) in the page and
/// returns what its promise resolves to, as JSON (bounded by [`WAIT`]).
pub async fn run(page: &Page, function: &str) -> Value {
    let result = tokio::time::timeout(WAIT, page.evaluate_function(function)).await;
    let result = result.expect("the page's script finishes in time");
    let result = result.unwrap_or_else(|e| panic!("the page's script failed: {e}"));
    result.into_value().unwrap_or(Value::Null)
}

/// Whether this process runs as root (Chromium's sandbox refuses root).
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}
