//! `/metrics` (issue #10 item 6): after real traffic the Prometheus text shows
//! HTTP requests by route template and status with a latency histogram, runs
//! by outcome, open sockets, frames sent, rate-limit refusals, and model calls
//! (latency, errors by kind, reported tokens). Asserts
//! series, labels and that counters moved; never timings.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_configured};
use crate::support::fake_openai::{Behaviour, FakeOpenAi};
use crate::support::ws::connect;
use flowgate::model::ChatStatus;

/// The `/metrics` text, asserting its content type.
async fn scrape(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4");
    resp.text().await.unwrap()
}

/// The value of the sample `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let wanted = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (metric == name && wanted).then(|| value.parse().unwrap())
    })
}

/// Like [`sample`], but the series must be there.
fn must(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
}

/// A flow nothing ends but the operator's event cap.
fn runaway() -> Value {
    json!({
        "name": "runaway",
        "models": {"script": {"provider": "scripted", "replies": ["again"], "delay_ms": 0}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER",
             "max_consecutive_auto_reply": 4_294_967_295_u64, "default_auto_reply": "go on"},
            {"name": "alice", "kind": "assistant", "model": "script", "max_consecutive_auto_reply": 4_294_967_295_u64}
        ],
        "chat": {"kind": "group", "speaker_selection": "round_robin", "max_round": 4_294_967_295_u64}
    })
}

#[tokio::test]
async fn metrics_show_requests_by_route_runs_by_outcome_and_sockets() {
    let app = spawn_configured(|c| {
        c.runs.max_round = u32::MAX;
        c.runs.max_consecutive_auto_reply = u32::MAX;
        c.runs.max_events_per_run = 30;
    })
    .await;
    let [done, cancelled, failed] = three_runs(&app).await;
    assert_eq!(app.get("/no/such/route?token=secret").await.0, 404);

    // A socket bound to the completed chat replays its events.
    let mut ws = connect(&app, &format!("/chats/{done}/ws")).await;
    ws.next().await;
    let text = scrape_once_sent(&app).await;
    assert_eq!(must(&text, "flowgate_ws_connections", &[]), 1.0);
    assert!(must(&text, "flowgate_ws_frames_sent_total", &[]) >= 1.0);
    for gauge in ["flowgate_sse_streams", "flowgate_long_polls"] {
        assert_eq!(must(&text, gauge, &[]), 0.0, "{gauge}");
    }
    for counter in ["flowgate_ws_frames_dropped_total", "flowgate_ws_slow_closes_total"] {
        must(&text, counter, &[]);
    }
    assert_http(&text);
    for id in [&done, &cancelled, &failed] {
        assert!(!text.contains(id.as_str()), "a raw path leaked: {id}");
    }
    assert!(!text.contains("secret"));

    // Runs by outcome, failures by code; the older counters still move.
    assert_eq!(must(&text, "flowgate_runs_total", &[("outcome", "completed")]), 1.0);
    assert_eq!(must(&text, "flowgate_runs_total", &[("outcome", "cancelled")]), 1.0);
    let capped = [("outcome", "failed"), ("code", "max_events_per_run")];
    assert_eq!(must(&text, "flowgate_runs_total", &capped), 1.0);
    assert_eq!(must(&text, "flowgate_chats_created_total", &[]), 3.0);
    assert_eq!(must(&text, "flowgate_messages_posted_total", &[]), 3.0);

    drop(ws);
    for _ in 0..50 {
        if must(&scrape(&app).await, "flowgate_ws_connections", &[]) == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the closed socket is still counted");
}

/// Runs the demo to completion, the demo to a cancel (under `/v1`), and the
/// runaway to its event cap; returns the three chat ids.
async fn three_runs(app: &TestApp) -> [String; 3] {
    let done = app.create_chat("demo").await;
    app.say(&done, "hi").await;
    app.wait_for_status(&done, 0, ChatStatus::WaitForHumanInput).await;
    app.answer(&done, "exit").await;
    app.wait_for_status(&done, 0, ChatStatus::Completed).await;
    let cancelled = app.create_chat("demo").await;
    app.say(&cancelled, "hi").await;
    app.wait_for_status(&cancelled, 0, ChatStatus::WaitForHumanInput).await;
    assert_eq!(app.post(&format!("/v1/chats/{cancelled}/cancel"), json!({})).await.0, 200);
    app.put_flow("runaway", runaway()).await;
    let failed = app.create_chat("runaway").await;
    app.say(&failed, "start").await;
    app.wait_for_status(&failed, 0, ChatStatus::Error).await;
    [done, cancelled, failed]
}

/// Scrapes until the socket's first frame is counted (it is counted after
/// its flush, which can trail the client's read).
async fn scrape_once_sent(app: &TestApp) -> String {
    for _ in 0..50 {
        let text = scrape(app).await;
        if sample(&text, "flowgate_ws_frames_sent_total", &[]).is_some_and(|n| n >= 1.0) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scrape(app).await
}

/// HTTP by route template (never the raw path), method and status.
fn assert_http(text: &str) {
    let created = [("method", "POST"), ("route", "/chats"), ("status", "201")];
    assert_eq!(must(text, "flowgate_http_requests_total", &created), 3.0);
    let said = [("method", "POST"), ("route", "/chats/{chat_id}/messages"), ("status", "202")];
    assert_eq!(must(text, "flowgate_http_requests_total", &said), 3.0);
    let v1 = [("route", "/v1/chats/{chat_id}/cancel"), ("status", "200")];
    assert_eq!(must(text, "flowgate_http_requests_total", &v1), 1.0);
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(must(text, "flowgate_http_requests_total", &unmatched), 1.0);
    let timed = [("method", "POST"), ("route", "/chats")];
    assert_eq!(must(text, "flowgate_http_request_duration_seconds_count", &timed), 3.0);
}

#[tokio::test]
async fn metrics_count_rate_limit_refusals_by_policy() {
    let app = spawn_configured(|c| {
        c.rate_limits.per_key_per_sec = 2;
        c.rate_limits.per_tenant_per_sec = 1000;
    })
    .await;
    let mut refused = false;
    for _ in 0..50 {
        let resp = app.client.get(app.url("/chats")).send().await.unwrap();
        if resp.status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "50 requests and none refused");
    // `/metrics` is unauthenticated, so not rate limited.
    let text = scrape(&app).await;
    assert!(must(&text, "flowgate_rate_limited_total", &[("policy", "key")]) >= 1.0);
    let limited = [("method", "GET"), ("route", "/chats"), ("status", "429")];
    assert!(must(&text, "flowgate_http_requests_total", &limited) >= 1.0);
}

#[tokio::test]
async fn metrics_count_model_calls_with_latency_errors_by_kind_and_reported_tokens() {
    let fake = FakeOpenAi::start().await;
    let gpt = fake.model();
    let app = spawn_configured(move |c| {
        c.models.insert("gpt".into(), gpt);
    })
    .await;
    let flow = json!({
        "name": "one answer",
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "max_consecutive_auto_reply": 0},
            {"name": "assistant", "kind": "assistant", "model": "gpt"}
        ],
        "chat": {"kind": "two_agent"}
    });
    app.put_flow("one", flow).await;
    fake.push(Behaviour::Stream(vec!["Hel".into(), "lo".into()]));
    let answered = app.create_chat("one").await;
    app.say(&answered, "hi").await;
    app.wait_for_status(&answered, 0, ChatStatus::Completed).await;
    fake.push(Behaviour::Status(400, "bad request".into(), None));
    let failed = app.create_chat("one").await;
    app.say(&failed, "hi").await;
    app.wait_for_status(&failed, 0, ChatStatus::Error).await;

    let text = scrape(&app).await;
    let openai = ("provider", "openai");
    assert_eq!(must(&text, "flowgate_model_calls_total", &[openai, ("outcome", "ok")]), 1.0);
    assert_eq!(must(&text, "flowgate_model_calls_total", &[openai, ("outcome", "error")]), 1.0);
    assert_eq!(must(&text, "flowgate_model_call_errors_total", &[openai, ("kind", "http")]), 1.0);
    assert_eq!(must(&text, "flowgate_model_call_duration_seconds_count", &[openai]), 2.0);
    assert_eq!(must(&text, "flowgate_model_tokens_total", &[openai, ("kind", "completion")]), 2.0);
    assert!(must(&text, "flowgate_model_tokens_total", &[openai, ("kind", "prompt")]) >= 1.0);
    let node = app.get("/node").await.1;
    assert_eq!(node["model_errors"], 1, "GET /node reads the same counters: {node}");
    assert_eq!(node["runs_failed"], 1, "{node}");
}
