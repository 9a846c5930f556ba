//! Bad input gets the contract's error, never a 500: malformed JSON with its
//! position, missing fields named, unknown ids, wrong states, races.

use crate::support::app::{send, spawn_app};
use crate::support::flows::two_agent;
use flowgate::model::ChatStatus;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn the_seeds_own_create_body_gets_invalid_json_with_line_and_column() {
    let app = spawn_app().await;
    // Verbatim from the seed's step 1: backslashes inside the quotes and a trailing comma.
    let body =
        "{ \\\n\"name\": \"My Chatbot\", \\\n\"from_type\": \"flow\", \\\n\"from_flow\": \"flow_id\", \\\n}";
    let (status, err) =
        send(app.client.post(app.url("/chats")).header("content-type", "application/json").body(body)).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(code(&err), "invalid_json");
    assert_eq!(err["error"]["line"], 1);
    assert!(err["error"]["column"].as_u64().unwrap() > 0);
    assert_eq!(err["error"]["retryable"], false);
    // Without the backslashes, the trailing comma alone is named.
    let body = "{\n\"name\": \"My Chatbot\",\n\"from_type\": \"flow\",\n\"from_flow\": \"flow_id\",\n}";
    let (status, err) = send(app.client.post(app.url("/chats")).body(body)).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("trailing comma"), "{err}");
    assert_eq!(err["error"]["line"], 5);
}

#[tokio::test]
async fn missing_or_empty_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    let (status, err) = app.post("/chats", json!({"name": "x"})).await;
    assert_eq!((status, code(&err)), (422, "invalid_request"));
    assert_eq!(err["error"]["param"], "from_flow");
    let (status, err) = send(app.client.post(app.url("/chats"))).await;
    assert_eq!((status, err["error"]["param"].as_str()), (422, Some("from_flow")));
    let (status, err) = app.post("/chats", json!({"from_flow": "demo", "name": 5})).await;
    assert_eq!((status, err["error"]["param"].as_str()), (422, Some("name")));
    let id = app.create_chat("demo").await;
    for body in [json!({}), json!({"message": ""}), json!({"message": "   "}), json!({"content": null})] {
        let (status, err) = app.post(&format!("/chats/{id}/messages"), body.clone()).await;
        assert_eq!((status, err["error"]["param"].as_str()), (422, Some("message")), "{body}");
    }
    let (status, err) = app.get(&format!("/chats/{id}/messages?limit=abc")).await;
    assert_eq!((status, code(&err)), (422, "invalid_request"));
    let (status, err) = app.get("/chats?status=sleeping").await;
    assert_eq!((status, err["error"]["param"].as_str()), (422, Some("status")));
}

#[tokio::test]
async fn a_flow_that_does_not_exist_is_404_on_create() {
    let app = spawn_app().await;
    let (status, err) = app.post("/chats", json!({"from_flow": "nope"})).await;
    assert_eq!((status, code(&err)), (404, "flow_not_found"));
}

#[tokio::test]
async fn unknown_ids_are_404_on_every_chat_route() {
    let app = spawn_app().await;
    let id = "chat_01J0000000000000000000000";
    let checks = [
        app.get(&format!("/chats/{id}")).await,
        app.delete(&format!("/chats/{id}")).await,
        app.post(&format!("/chats/{id}/messages"), json!({"message": "x"})).await,
        app.get(&format!("/chats/{id}/messages")).await,
        app.post(&format!("/chats/{id}/input"), json!({"message": "x"})).await,
        app.post(&format!("/chats/{id}/cancel"), json!({})).await,
        app.post(&format!("/chats/{id}/abort"), json!({})).await,
        app.get(&format!("/chats/{id}/events")).await,
    ];
    for (status, body) in checks {
        assert_eq!((status, code(&body)), (404, "chat_not_found"), "{body}");
    }
    let (status, body) = app.delete("/api-keys/key_nope").await;
    assert_eq!((status, code(&body)), (404, "key_not_found"));
    let (status, body) = app.get("/no/such/route").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn twenty_racing_posts_start_exactly_one_run() {
    let app = spawn_app().await;
    app.put_flow("slow", crate::support::flows::slow(20)).await;
    let id = app.create_chat("slow").await;
    let url = app.url(&format!("/chats/{id}/messages"));
    let posts = (0..20).map(|i| {
        let req = app.client.post(&url).json(&json!({"message": format!("hi {i}")}));
        async move { send(req).await }
    });
    let results = futures::future::join_all(posts).await;
    let accepted = results.iter().filter(|(s, _)| *s == 202).count();
    let busy = results.iter().filter(|(s, b)| *s == 409 && code(b) == "chat_busy").count();
    assert_eq!((accepted, busy), (1, 19), "{results:?}");
    let runs =
        app.events(&id).await.iter().filter(|e| e.kind == flowgate::model::EventKind::RunStarted).count();
    assert_eq!(runs, 1);
    let users = app.messages(&id).await.iter().filter(|m| m["role"] == "user").count();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn wrong_states_get_their_409s() {
    let app = spawn_app().await;
    let id = app.create_chat("demo").await;
    let (status, err) = app.post(&format!("/chats/{id}/input"), json!({"message": "x"})).await;
    assert_eq!((status, code(&err)), (409, "not_waiting_for_input"));
    let (status, err) = app.post(&format!("/chats/{id}/cancel"), json!({})).await;
    assert_eq!((status, code(&err)), (409, "no_active_run"));
    app.say(&id, "hi").await;
    app.wait_for_status(&id, 0, ChatStatus::WaitForHumanInput).await;
    let pending = app.chat(&id).await["pending_input"].clone();
    let (status, err) = app.post(&format!("/chats/{id}/messages"), json!({"message": "again"})).await;
    assert_eq!((status, code(&err)), (409, "input_required"));
    assert_eq!(err["error"]["pending_input"]["request_id"], pending["request_id"]);
    let (status, err) =
        app.post(&format!("/chats/{id}/input"), json!({"message": "x", "request_id": "inp_stale"})).await;
    assert_eq!((status, code(&err)), (409, "input_request_mismatch"));
    let (status, _) = app
        .post(&format!("/chats/{id}/input"), json!({"message": "exit", "request_id": pending["request_id"]}))
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_busy_chat_refuses_a_second_message() {
    let app = spawn_app().await;
    app.put_flow("slow", crate::support::flows::slow(50)).await;
    let id = app.create_chat("slow").await;
    app.say(&id, "one").await;
    let (status, err) = app.post(&format!("/chats/{id}/messages"), json!({"message": "two"})).await;
    assert_eq!((status, code(&err)), (409, "chat_busy"));
    assert_eq!(err["error"]["retryable"], false);
}

#[tokio::test]
async fn an_invalid_flow_is_422_listing_its_issues() {
    let app = spawn_app().await;
    let mut flow = two_agent("NEVER", &["x"]);
    flow["agents"][1]["model"] = json!("no-such-model");
    let (status, err) = app.post("/flows", flow).await;
    assert_eq!((status, code(&err)), (422, "invalid_flow"));
    assert_eq!(err["error"]["issues"][0]["path"], "agents[1].model");
    let (status, err) =
        app.post("/flows", json!({"name": "x", "agents": [], "chat": {"kind": "triangle"}})).await;
    assert_eq!((status, code(&err)), (422, "invalid_request"), "{err}");
    assert_eq!(err["error"]["param"], "chat.kind");
}

#[tokio::test]
async fn a_flow_in_use_cannot_be_deleted() {
    let app = spawn_app().await;
    app.put_flow("f", two_agent("NEVER", &["x"])).await;
    let id = app.create_chat("f").await;
    let (status, err) = app.delete("/flows/f").await;
    assert_eq!((status, code(&err)), (409, "flow_in_use"));
    app.delete(&format!("/chats/{id}")).await;
    let (status, _) = app.delete("/flows/f").await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let id = app.create_chat("demo").await;
    let huge = "x".repeat(2 << 20);
    let (status, err) = app.post(&format!("/chats/{id}/messages"), json!({"message": huge})).await;
    assert_eq!((status, code(&err)), (413, "payload_too_large"));
}

#[tokio::test]
async fn a_flow_cannot_name_an_environment_variable_for_its_own_model() {
    let app = spawn_app().await;
    let flow = json!({
        "name": "exfiltrate",
        "models": {"x": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                         "api_key_env": "FLOWGATE_JWT__SECRET"}},
        "agents": [
            {"name": "user", "kind": "user_proxy"},
            {"name": "a", "kind": "assistant", "model": "x"}
        ],
        "chat": {"kind": "two_agent"}
    });
    let (status, err) = app.post("/flows", flow).await;
    assert_eq!((status, code(&err)), (422, "invalid_flow"));
    assert_eq!(err["error"]["issues"][0]["path"], "models.x.api_key_env");
}

#[tokio::test]
async fn a_scripted_model_paced_two_ways_or_too_fast_is_an_invalid_flow() {
    let app = spawn_app().await;
    for (model, expected) in [
        (json!({"provider": "scripted", "tokens_per_sec": 400, "delay_ms": 2}), "models.s.tokens_per_sec"),
        (json!({"provider": "scripted", "tokens_per_sec": 1_000_000}), "models.s.tokens_per_sec"),
    ] {
        let flow = json!({
            "name": "paced",
            "models": {"s": model},
            "agents": [{"name": "user", "kind": "user_proxy"}, {"name": "a", "kind": "assistant", "model": "s"}],
            "chat": {"kind": "two_agent"}
        });
        let (status, err) = app.post("/flows", flow).await;
        assert_eq!((status, code(&err)), (422, "invalid_flow"));
        assert_eq!(err["error"]["issues"][0]["path"], expected);
    }
}

#[tokio::test]
async fn an_id_that_does_not_parse_is_its_404_or_a_422_naming_it_never_a_store_error() {
    let app = spawn_app().await;
    for (path, expected) in [
        ("/chats/chat_%7Bx%7D", "chat_not_found"),
        ("/chats/flow_01JD0000000000000000000000", "chat_not_found"),
        ("/chats/chat_nope/messages", "chat_not_found"),
        ("/chats/chat_nope/events", "chat_not_found"),
        ("/flows/no%20such%20flow", "flow_not_found"),
        ("/flows/a.b", "flow_not_found"),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!((status, code(&body)), (404, expected), "{path}");
    }
    let (status, body) = send(app.client.delete(app.url("/api-keys/key_%7D"))).await;
    assert_eq!((status, code(&body)), (404, "key_not_found"));
    for (query, param) in
        [("after=chat_%7D", "after"), ("before=x", "before"), ("from_flow=a%20b", "from_flow")]
    {
        let (status, body) = app.get(&format!("/chats?{query}")).await;
        assert_eq!(
            (status, code(&body), body["error"]["param"].as_str()),
            (422, "invalid_request", Some(param))
        );
    }
    let (status, body) = app.post("/chats", json!({"from_flow": "no such flow"})).await;
    assert_eq!((status, code(&body)), (404, "flow_not_found"));
}

/// What Schemathesis checks against the spec (scripts/schemathesis.sh), one
/// case each: JSON Schema's `integer` includes `2656.0`; `null` is an optional
/// field left out; `/input` with `auto_reply` needs no text; a query cursor
/// that is no id is a 422 naming it.
#[tokio::test]
async fn bodies_read_integers_and_nulls_as_the_spec_says() {
    let app = spawn_app().await;
    let id = app.create_chat("demo").await;
    let tokens = format!("/chats/{id}/tokens");
    let (status, body) = app.post(&tokens, json!({"ttl_secs": 2656.0})).await;
    assert_eq!((status, body["expires_in"].as_u64().map(|s| s > 2600)), (201, Some(true)), "{body}");
    let (status, body) = app.post(&tokens, json!({"ttl_secs": null})).await;
    assert_eq!(status, 201, "{body}");
    for bad in [json!(2656.5), json!(-1), json!(0.0), json!("60")] {
        let (status, err) = app.post(&tokens, json!({"ttl_secs": bad})).await;
        assert_eq!((status, err["error"]["param"].as_str()), (422, Some("ttl_secs")), "{bad}: {err}");
    }

    let mut flow = two_agent("NEVER", &["ok TERMINATE"]);
    flow["chat"]["max_round"] = json!(3.0);
    flow["chat"]["selector_model"] = Value::Null;
    flow["agents"][1]["max_consecutive_auto_reply"] = json!(2.0);
    flow["description"] = Value::Null;
    let (status, body) = send(app.client.put(app.url("/flows/floats")).json(&flow)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["definition"]["chat"]["max_round"], 3);
    flow["chat"]["max_round"] = json!(3.5);
    let (status, err) = send(app.client.put(app.url("/flows/floats")).json(&flow)).await;
    assert_eq!((status, code(&err)), (422, "invalid_request"), "{err}");

    let (status, chat) = app
        .post("/chats", json!({"from_flow": "demo", "name": null, "from_type": null, "metadata": null}))
        .await;
    assert_eq!((status, &chat["metadata"]), (201, &json!({})), "{chat}");
    let (status, key) = app.post("/api-keys", json!({"name": "ci", "environment": null})).await;
    assert_eq!((status, &key["environment"]), (201, &Value::Null), "{key}");

    // Not waiting: the state is judged, not the body, once the body is valid.
    let input = format!("/chats/{id}/input");
    for body in
        [json!({"auto_reply": true}), json!({"auto_reply": null, "message": "hi", "request_id": null})]
    {
        let (status, err) = app.post(&input, body.clone()).await;
        assert_eq!((status, code(&err)), (409, "not_waiting_for_input"), "{body}: {err}");
    }
    for body in [json!({"auto_reply": null}), json!({"auto_reply": false, "content": " "})] {
        let (status, err) = app.post(&input, body.clone()).await;
        assert_eq!((status, err["error"]["param"].as_str()), (422, Some("message")), "{body}: {err}");
    }

    for (path, param) in [
        ("/chats?after=", "after"),
        ("/chats?before=chat_x", "before"),
        ("/chats?from_flow=", "from_flow"),
        ("/flows?after=no%20such", "after"),
    ] {
        let (status, err) = app.get(path).await;
        assert_eq!((status, err["error"]["param"].as_str()), (422, Some(param)), "{path}: {err}");
    }
}
