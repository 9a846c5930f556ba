//! Rate limits (contract §6, §8): each REST request and each WebSocket
//! command counts against the caller's API key and its tenant; over either,
//! `429 rate_limited` with `Retry-After`, `RateLimit-Policy` and `RateLimit`
//! (a socket: a `rate_limited` error frame, then 4029 if it keeps going).
//! With `store = "redis"` the limits hold across nodes.

use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::app::{TestApp, client_with_key, spawn_configured};
use crate::support::redis_server::RedisServer;
use crate::support::ws::{Ended, connect};
use flowgate::config::{Config, StoreKind};
use flowgate::model::TenantId;

/// A second key of tenant `default`.
const KEY_B: &str = "fgk_second_key_for_tenant_default_0000000000";

/// Sends `GET /chats` with `client` until one is refused (at most 50);
/// returns the refusal.
async fn until_refused(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    for _ in 0..50 {
        let resp = client.get(app.url("/chats")).send().await.unwrap();
        if resp.status() == 429 {
            return resp;
        }
        assert_eq!(resp.status(), 200);
    }
    panic!("50 requests and none refused");
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_owned()
}

/// Sends once with `client`: `Some(limit)` when refused, naming the limit.
async fn refused_by(app: &TestApp, client: &reqwest::Client) -> Option<String> {
    let resp = client.get(app.url("/chats")).send().await.unwrap();
    if resp.status() != 429 {
        return None;
    }
    Some(header(&resp, "ratelimit"))
}

#[tokio::test]
async fn a_burst_over_the_key_limit_gets_429_rate_limited_with_retry_after_and_the_draft_headers() {
    let app = spawn_configured(|c| {
        c.rate_limits.per_key_per_sec = 2;
        c.rate_limits.per_tenant_per_sec = 1000;
    })
    .await;
    let resp = until_refused(&app, &app.client).await;
    let retry_after: u64 = header(&resp, "retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(header(&resp, "ratelimit-policy"), "\"key\";q=2;w=1, \"tenant\";q=1000;w=1");
    assert_eq!(header(&resp, "ratelimit"), format!("\"key\";r=0;t={retry_after}"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["retryable"], true);
    assert_eq!(body["error"]["limit"], "key");
}

#[tokio::test]
async fn the_keys_of_a_tenant_share_the_tenants_limit() {
    let app = spawn_configured(|c| {
        c.rate_limits.per_key_per_sec = 10_000;
        c.rate_limits.per_tenant_per_sec = 1;
        c.rate_limits.burst_secs = 5;
    })
    .await;
    app.state.services.keys.seed(&TenantId::default(), KEY_B).await.unwrap();
    let b = client_with_key(KEY_B);
    // Key A spends the tenant's quota; key B, unused so far, is refused by the
    // tenant's limit (a refill between the two can admit B: try again).
    for _ in 0..3 {
        until_refused(&app, &app.client).await;
        if let Some(limit) = refused_by(&app, &b).await {
            assert!(limit.starts_with("\"tenant\";r=0;t="), "{limit}");
            return;
        }
    }
    panic!("key B was never refused after key A spent the tenant's quota");
}

#[tokio::test]
async fn a_socket_over_its_limit_gets_rate_limited_frames_binary_ones_count_and_then_closes_with_4029() {
    let app = spawn_configured(|c| c.rate_limits.per_key_per_sec = 3).await;
    let mut ws = connect(&app, "/ws").await;
    let mut rate_limited = Vec::new();
    let end = loop {
        assert!(rate_limited.len() < 200, "the socket was never closed");
        let _ = ws.socket.send(Message::Binary(vec![1, 2, 3].into())).await;
        match ws.next_or_end(crate::support::app::WAIT).await {
            Ok(frame) if frame["code"] == "rate_limited" => rate_limited.push(frame),
            Ok(frame) => assert_eq!(frame["code"], "invalid_request", "{frame}"),
            Err(end) => break end,
        }
    };
    assert_eq!(end, Ended::Closed(4029));
    assert!(rate_limited.len() >= 10, "{rate_limited:?}");
    let frame = &rate_limited[0];
    assert_eq!((frame["type"].as_str(), frame["limit"].as_str()), (Some("error"), Some("key")));
    assert!(frame["retry_after"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn with_limits_off_a_burst_is_never_refused() {
    let app = spawn_configured(|c| {
        c.rate_limits.per_key_per_sec = 0;
        c.rate_limits.per_tenant_per_sec = 0;
    })
    .await;
    for _ in 0..200 {
        assert_eq!(app.get("/chats").await.0, 200);
    }
}

/// A node on `redis` with a small per-key limit.
async fn node(redis: &RedisServer, name: &str) -> TestApp {
    let (url, name) = (redis.url(), name.to_owned());
    spawn_configured(move |c: &mut Config| {
        c.store = StoreKind::Redis;
        c.redis_url = Some(url);
        c.node_id = Some(name);
        c.rate_limits.per_key_per_sec = 1;
        c.rate_limits.per_tenant_per_sec = 0;
        c.rate_limits.burst_secs = 5;
    })
    .await
}

#[tokio::test]
async fn the_key_limit_holds_across_two_nodes_sharing_redis() {
    let Some(redis) = RedisServer::start() else { return };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    // The key spends its quota on node A; node B, which has not seen it yet,
    // refuses it too (a refill between the two can admit it: try again).
    for _ in 0..3 {
        until_refused(&a, &a.client).await;
        if let Some(limit) = refused_by(&b, &b.client).await {
            assert!(limit.starts_with("\"key\";r=0;t="), "{limit}");
            return;
        }
    }
    panic!("node B never refused the key that node A had limited");
}
