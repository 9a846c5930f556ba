//! No SSRF: a flow's own `openai` model URL must be on the operator's
//! allow-list, and internal addresses (after DNS) are refused unless allowed
//! by name, at registration (422 naming the field) and at call time, and a
//! redirect off the allowed hosts is not followed.

use flowgate::model::{ChatStatus, FlowRecord, now};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::app::{TestApp, spawn_app, spawn_configured};
use crate::support::fake_openai::FakeOpenAi;

fn flow_calling(base_url: &str) -> Value {
    json!({
        "name": "own model",
        "models": {"own": {"provider": "openai", "base_url": base_url, "model": "m", "timeout_secs": 5}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "max_consecutive_auto_reply": 0},
            {"name": "assistant", "kind": "assistant", "model": "own"}
        ],
        "chat": {"kind": "two_agent"}
    })
}

async fn refused(app: &TestApp, base_url: &str) -> Value {
    let (status, err) = app.post("/flows", flow_calling(base_url)).await;
    assert_eq!(status, 422, "{base_url}: {err}");
    assert_eq!(err["error"]["code"], "invalid_request");
    assert_eq!(err["error"]["param"], "models.own.base_url");
    err
}

#[tokio::test]
async fn a_flow_model_off_the_allow_list_or_on_an_internal_address_is_refused_at_registration() {
    let app = spawn_app().await;
    refused(&app, "https://api.example.com/v1").await;
    let app = spawn_configured(|c| {
        c.outbound.flow_model_hosts =
            ["127.0.0.1", "localhost", "::1", "::ffff:127.0.0.1", "169.254.169.254", "10.0.0.1"]
                .map(String::from)
                .to_vec();
    })
    .await;
    for url in [
        "http://127.0.0.1:9/v1",
        "http://localhost:9/v1",
        "http://[::1]:9/v1",
        "http://[::ffff:127.0.0.1]:9/v1",
        "http://169.254.169.254/v1",
        "http://10.0.0.1/v1",
    ] {
        let err = refused(&app, url).await;
        assert!(err["error"]["message"].as_str().unwrap().contains("internal"), "{err}");
    }
}

#[tokio::test]
async fn a_stored_flow_naming_localhost_cannot_reach_it_at_call_time() {
    let fake = FakeOpenAi::start().await;
    let local = fake.base_url().replace("127.0.0.1", "localhost");
    let app = spawn_configured(|c| c.outbound.flow_model_hosts = vec!["localhost".into()]).await;
    // As if registered before the rules: written to the store directly.
    let at = now();
    let record = FlowRecord {
        id: flowgate::model::FlowId::parse("old").unwrap(),
        tenant: flowgate::model::TenantId::default(),
        name: "old".into(),
        definition: flow_calling(&local),
        source: None,
        created_at: at,
        updated_at: at,
    };
    app.state.store.put_flow(&record).await.unwrap();
    let chat = app.create_chat("old").await;
    app.say(&chat, "hi").await;
    app.wait_for_status(&chat, 0, ChatStatus::Error).await;
    let error = &app.chat(&chat).await["error"];
    assert_eq!(error["code"], "model_error", "{error}");
    assert_eq!(fake.request_count(), 0, "nothing reached the internal address");
}

#[tokio::test]
async fn an_allowed_and_named_local_model_is_called() {
    let fake = FakeOpenAi::start().await;
    let app = spawn_configured(|c| {
        c.outbound.flow_model_hosts = vec!["127.0.0.1".into()];
        c.outbound.allow_private_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let (status, body) = app.post("/flows", flow_calling(&fake.base_url())).await;
    assert_eq!(status, 201, "{body}");
}

/// A server on `localhost` that answers every request with `status` and
/// `Location: target`; its address.
async fn redirecting_to(status: &str, target: String) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer =
        format!("HTTP/1.1 {status}\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

/// Reads one request, head and `Content-Length` body.
async fn read_request(stream: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let length = text[..end]
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if got.len() >= end + 4 + length {
            return;
        }
    }
}

#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_an_unlisted_or_internal_one_is_not_followed() {
    let fake = FakeOpenAi::start().await;
    let target = format!("{}/chat/completions", fake.base_url());
    let app = spawn_configured(|c| {
        // 127.0.0.1 is listed but not allowed private: a redirect there is
        // refused as internal; ::1 is not listed at all.
        c.outbound.flow_model_hosts = vec!["localhost".into(), "127.0.0.1".into()];
        c.outbound.allow_private_hosts = vec!["localhost".into()];
    })
    .await;
    let unlisted = target.replace("127.0.0.1", "[::1]");
    for (status, to) in
        [("307 Temporary Redirect", &target), ("302 Found", &target), ("307 Temporary Redirect", &unlisted)]
    {
        let redirector = redirecting_to(status, to.clone()).await;
        let flow = flow_calling(&format!("http://localhost:{}/v1", redirector.port()));
        let (code, body) = app.post("/flows", flow).await;
        assert_eq!(code, 201, "the allowed host registers: {body}");
        let chat = app.create_chat(body["id"].as_str().unwrap()).await;
        app.say(&chat, "hi").await;
        app.wait_for_status(&chat, 0, ChatStatus::Error).await;
        let error = &app.chat(&chat).await["error"];
        assert_eq!(error["code"], "model_error", "{status} to {to}: {error}");
    }
    assert_eq!(fake.request_count(), 0, "no redirect reached the internal server");
}
