//! The `openai` provider against a fake OpenAI-compatible server on a real
//! socket: streaming, whole answers, retries, timeouts, cancel, and secrecy of
//! the API key.

use crate::support::fake_openai;

use std::time::Duration;

use fake_openai::{Behaviour, FakeOpenAi};
use flowgate::engine::provider::openai::{OpenAiConfig, OpenAiProvider};
use flowgate::engine::provider::{
    Completion, CompletionRequest, ModelProvider, ProviderError, Turn, TurnRole,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-test-5f3a9c1e77";
const WAIT: Duration = Duration::from_secs(10);

fn config(fake: &FakeOpenAi) -> OpenAiConfig {
    let mut config = OpenAiConfig::new("fake", fake.base_url(), "fake-model");
    config.api_key = Some(KEY.into());
    config.max_retries = 2;
    config.backoff_base = Duration::from_millis(10);
    config.timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    config
}

fn turn(role: TurnRole, name: Option<&str>, content: &str) -> Turn {
    Turn { role, name: name.map(Into::into), content: content.into(), ..Turn::default() }
}

fn request() -> CompletionRequest {
    CompletionRequest {
        agent: "writer".into(),
        turn: 0,
        messages: vec![
            turn(TurnRole::System, None, "You write haiku."),
            turn(TurnRole::User, Some("user"), "A haiku about rust."),
            turn(TurnRole::Assistant, Some("Dr. Who"), "Iron sleeps in red."),
        ],
        tools: Vec::new(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs one call to the end and collects the deltas it sent.
async fn call(config: OpenAiConfig) -> (Result<Completion, ProviderError>, Vec<String>) {
    let provider = OpenAiProvider::new(config).expect("provider");
    let (tx, mut rx) = mpsc::channel(64);
    let result = timeout(WAIT, provider.complete(request(), tx, CancellationToken::new()))
        .await
        .expect("the call ends in time");
    let mut deltas = Vec::new();
    while let Ok(Some(delta)) = timeout(WAIT, rx.recv()).await {
        deltas.push(delta);
    }
    (result, deltas)
}

#[tokio::test]
async fn streamed_deltas_arrive_in_order_and_make_up_the_content() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream(strings(&["Iron ", "sleeps ", "in red."])));
    let (result, deltas) = call(config(&fake)).await;
    let completion = result.expect("a reply");
    assert_eq!(deltas, strings(&["Iron ", "sleeps ", "in red."]));
    assert_eq!(completion.content, deltas.concat());
}

#[tokio::test]
async fn usage_and_finish_reason_land_in_the_metadata() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream(strings(&["a", "b"])));
    let (result, _) = call(config(&fake)).await;
    let metadata = result.expect("a reply").metadata;
    assert_eq!(metadata["provider"], "openai");
    assert_eq!(metadata["model"], "fake-model");
    assert_eq!(metadata["finish_reason"], "stop");
    assert_eq!(metadata["usage"], json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}));
}

#[tokio::test]
async fn the_request_carries_model_messages_options_and_the_bearer_key() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream(strings(&["ok"])));
    let mut config = config(&fake);
    config.temperature = Some(0.25);
    config.max_tokens = Some(64);
    call(config).await.0.expect("a reply");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(
        sent.body,
        json!({
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": "You write haiku."},
                {"role": "user", "content": "A haiku about rust.", "name": "user"},
                {"role": "assistant", "content": "Iron sleeps in red."},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.25,
            "max_tokens": 64,
        })
    );
}

#[tokio::test]
async fn no_authorization_header_is_sent_without_a_key() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream(strings(&["ok"])));
    let mut config = config(&fake);
    config.api_key = None;
    call(config).await.0.expect("a reply");
    assert!(!fake.requests()[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn a_non_streamed_json_answer_is_read_whole() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Json("Iron sleeps in red.".into()));
    let (result, deltas) = call(config(&fake)).await;
    let completion = result.expect("a reply");
    assert_eq!(completion.content, "Iron sleeps in red.");
    assert_eq!(deltas, strings(&["Iron sleeps in red."]));
    assert_eq!(completion.metadata["usage"]["completion_tokens"], 1);
    assert_eq!(completion.metadata["finish_reason"], "stop");
}

#[tokio::test]
async fn a_non_streaming_config_asks_for_a_whole_answer() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Json("whole".into()));
    let mut config = config(&fake);
    config.stream = false;
    let completion = call(config).await.0.expect("a reply");
    assert_eq!(completion.content, "whole");
    let body = &fake.requests()[0].body;
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none(), "{body}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_then_succeeds() {
    let fake = FakeOpenAi::start().await;
    let limited = r#"{"error":{"message":"Rate limit reached"}}"#;
    fake.push(Behaviour::Status(429, limited.into(), Some("1".into())))
        .push(Behaviour::Stream(strings(&["late ", "but fine"])));
    let (result, deltas) = call(config(&fake)).await;
    assert_eq!(result.expect("a reply").content, "late but fine");
    assert_eq!(deltas.concat(), "late but fine");
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn a_500_is_retried_a_bounded_number_of_times_then_fails_with_the_servers_message() {
    let fake = FakeOpenAi::start().await;
    for _ in 0..5 {
        fake.push(Behaviour::Status(500, r#"{"error":{"message":"The server had an error"}}"#.into(), None));
    }
    let (result, _) = call(config(&fake)).await;
    match result {
        Err(ProviderError::Http { model, status, message }) => {
            assert_eq!((model.as_str(), status), ("fake", 500));
            assert_eq!(message, "The server had an error");
        }
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    assert_eq!(fake.request_count(), 3, "one attempt and max_retries = 2");
}

#[tokio::test]
async fn a_400_fails_at_once_without_retry() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Status(400, r#"{"error":{"message":"Invalid 'messages'"}}"#.into(), None))
        .push(Behaviour::Stream(strings(&["never"])));
    let (result, _) = call(config(&fake)).await;
    assert!(
        matches!(&result, Err(ProviderError::Http { status: 400, message, .. }) if message == "Invalid 'messages'"),
        "{result:?}"
    );
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_malformed_chunk_fails_as_malformed() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::MalformedChunk).push(Behaviour::Stream(strings(&["never"])));
    let (result, _) = call(config(&fake)).await;
    assert!(matches!(result, Err(ProviderError::Malformed { .. })), "{result:?}");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_connection_closed_mid_stream_fails_and_is_not_retried_after_deltas_went_out() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::CloseMidStream(strings(&["Iron ", "sleeps"])))
        .push(Behaviour::Stream(strings(&["a retry would repeat text"])));
    let provider = OpenAiProvider::new(config(&fake)).expect("provider");
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let run = provider.complete(request(), tx, cancel);
    let watch = async {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match rx.recv().await {
                Some(delta) => seen.push(delta),
                None => break,
            }
        }
        fake.cut();
        seen
    };
    let (result, seen) =
        timeout(WAIT, async { tokio::join!(run, watch) }).await.expect("the call ends in time");
    assert_eq!(seen, strings(&["Iron ", "sleeps"]));
    assert!(matches!(result, Err(ProviderError::Connect { .. })), "{result:?}");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_connection_closed_before_any_delta_is_retried() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::CloseMidStream(Vec::new())).push(Behaviour::Stream(strings(&["second ", "try"])));
    let (result, deltas) = call(config(&fake)).await;
    assert_eq!(result.expect("a reply").content, "second try");
    assert_eq!(deltas.concat(), "second try");
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn a_stream_with_a_finish_reason_but_no_done_is_complete() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::RawEvents(strings(&[
        r#"{"choices":[{"index":0,"delta":{"content":"done"},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
    ])));
    let (result, _) = call(config(&fake)).await;
    let completion = result.expect("a reply");
    assert_eq!(completion.content, "done");
    assert_eq!(completion.metadata["finish_reason"], "length");
    assert!(completion.metadata.get("usage").is_none());
}

#[tokio::test]
async fn a_stream_ending_without_finish_reason_or_done_fails_as_a_broken_connection() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::RawEvents(strings(&[
        r#"{"choices":[{"index":0,"delta":{"content":"half"},"finish_reason":null}]}"#,
    ])));
    let (result, deltas) = call(config(&fake)).await;
    assert_eq!(deltas, strings(&["half"]));
    assert!(matches!(result, Err(ProviderError::Connect { .. })), "{result:?}");
    assert_eq!(fake.request_count(), 1, "no retry after a delta went out");
}

#[tokio::test]
async fn an_error_reported_inside_the_stream_fails_with_its_message() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::RawEvents(strings(&[r#"{"error":{"message":"context length exceeded"}}"#])));
    let (result, _) = call(config(&fake)).await;
    match result {
        Err(err @ ProviderError::Malformed { .. }) => {
            assert!(err.to_string().contains("context length exceeded"), "{err}");
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stall);
    let mut config = config(&fake);
    config.timeout = Duration::from_millis(300);
    let (result, _) = call(config).await;
    assert!(matches!(result, Err(ProviderError::Timeout { ref model, .. }) if model == "fake"), "{result:?}");
    assert_eq!(fake.request_count(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn cancel_during_a_stalled_stream_returns_cancelled_promptly() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::StallAfter(strings(&["Iron "])));
    let mut config = config(&fake);
    config.timeout = Duration::from_secs(600);
    let provider = OpenAiProvider::new(config).expect("provider");
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let run = provider.complete(request(), tx, cancel.clone());
    let cancel_after_first_delta = async {
        let first = rx.recv().await;
        cancel.cancel();
        first
    };
    let (result, first) =
        timeout(WAIT, async { tokio::join!(run, cancel_after_first_delta) }).await.expect("cancel is prompt");
    assert_eq!(first.as_deref(), Some("Iron "));
    assert!(matches!(result, Err(ProviderError::Cancelled)), "{result:?}");
}

#[tokio::test]
async fn cancel_while_waiting_for_the_answer_returns_cancelled_promptly() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stall);
    let mut config = config(&fake);
    config.timeout = Duration::from_secs(600);
    let provider = OpenAiProvider::new(config).expect("provider");
    let (tx, _rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let run = provider.complete(request(), tx, cancel.clone());
    let cancel_once_received = async {
        fake.wait_for_requests(1).await;
        cancel.cancel();
    };
    let (result, ()) =
        timeout(WAIT, async { tokio::join!(run, cancel_once_received) }).await.expect("cancel is prompt");
    assert!(matches!(result, Err(ProviderError::Cancelled)), "{result:?}");
}

#[tokio::test]
async fn the_api_key_never_appears_in_error_text_even_when_echoed() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::EchoAuth(401)).push(Behaviour::Status(
        403,
        format!("plain text: your key {KEY} is not allowed here"),
        None,
    ));
    for _ in 0..2 {
        let (result, _) = call(config(&fake)).await;
        let err = result.expect_err("refused");
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(matches!(err, ProviderError::Http { status: 401 | 403, .. }), "{err:?}");
    }
    let echoed = fake.requests();
    assert_eq!(echoed.len(), 2);
    assert!(echoed.iter().all(|r| r.headers["authorization"] == format!("Bearer {KEY}")));
}

#[tokio::test]
async fn an_unreachable_server_fails_with_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let mut config = OpenAiConfig::new("gone", format!("http://127.0.0.1:{port}/v1"), "m");
    config.api_key = Some(KEY.into());
    config.max_retries = 1;
    config.backoff_base = Duration::from_millis(10);
    let (result, deltas) = call(config).await;
    assert!(deltas.is_empty());
    match result {
        Err(err @ ProviderError::Connect { .. }) => {
            assert!(err.to_string().contains("gone"), "{err}");
            assert!(!err.to_string().contains(KEY), "{err}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_delta_receiver_is_not_an_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream(strings(&["nobody ", "listens"])));
    let provider = OpenAiProvider::new(config(&fake)).expect("provider");
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let result = timeout(WAIT, provider.complete(request(), tx, CancellationToken::new()))
        .await
        .expect("the call ends in time");
    assert_eq!(result.expect("a reply").content, "nobody listens");
}

#[tokio::test]
async fn a_base_url_that_is_not_http_is_refused() {
    let config = OpenAiConfig::new("odd", "ftp://example.com/v1", "m");
    let err = OpenAiProvider::new(config).expect_err("refused");
    assert!(err.to_string().contains("ftp://example.com/v1"), "{err}");
    let config = OpenAiConfig::new("odd", "not a url", "m");
    assert!(OpenAiProvider::new(config).is_err());
}
