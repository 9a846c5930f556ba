//! No SSRF: a flow's own `openai` model URL must be on the operator's
//! allow-list, and internal addresses (after DNS) are refused unless allowed
//! by name, at registration (422 naming the field) and at call time.

use flowgate::model::{ChatStatus, FlowRecord, now};
use serde_json::{Value, json};

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
