//! The FlowGen chat API over real HTTP: the seed's walkthrough against the demo
//! flow, every route's happy path under `/` and `/v1`, pages and cursors.

use crate::support::app::{spawn_app, statuses};
use crate::support::flows::two_agent;
use flowgate::model::ChatStatus;
use serde_json::json;

/// The statuses of a chat whose run asks the human twice, then completes.
const ASKED_TWICE_THEN_COMPLETED: [&str; 7] =
    ["ready", "running", "wait_for_human_input", "running", "wait_for_human_input", "running", "completed"];

#[tokio::test]
async fn the_seeds_six_steps_work_against_the_demo_flow() {
    let app = spawn_app().await;
    // Step 1: create a chatbot from the demo flow.
    let (status, chat) =
        app.post("/chats", json!({"name": "My Chatbot", "from_type": "flow", "from_flow": "demo"})).await;
    assert_eq!(status, 201, "{chat}");
    assert_eq!(chat["status"], "ready");
    let id = chat["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("chat_"));
    // Step 2: send a message (the /v1 spelling, as the seed shows).
    let (status, msg) =
        app.post(&format!("/v1/chats/{id}/messages"), json!({"message": "Hello, FlowGen!"})).await;
    assert_eq!(status, 202, "{msg}");
    assert_eq!(msg["role"], "user");
    // Step 3: the status moves to running, then waits for the human.
    app.wait_for_status(&id, 0, ChatStatus::WaitForHumanInput).await;
    let chat = app.chat(&id).await;
    assert_eq!(chat["status"], "wait_for_human_input");
    assert_eq!(chat["pending_input"]["agent"], "user");
    // Step 4: the agents' messages are there.
    let messages = app.messages(&id).await;
    let senders: Vec<_> = messages.iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["user", "writer", "critic", "user", "writer", "critic"]);
    assert!(messages[5]["content"].as_str().unwrap().contains("TERMINATE"));
    // Step 5: answer; the run continues, then `exit` completes it.
    app.answer_then(&id, "Hello, FlowGen!", ChatStatus::WaitForHumanInput).await;
    let events = app.answer_then(&id, "exit", ChatStatus::Completed).await;
    assert_eq!(statuses(&events), ASKED_TWICE_THEN_COMPLETED);
    // Step 6: delete it.
    let (status, _) = app.delete(&format!("/chats/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = app.get(&format!("/chats/{id}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("chat_not_found")));
}

#[tokio::test]
async fn a_chat_has_every_field_of_the_contract() {
    let app = spawn_app().await;
    let (_, chat) = app.post("/chats", json!({"from_flow": "demo", "metadata": {"team": "a"}})).await;
    for field in [
        "id",
        "name",
        "from_type",
        "from_flow",
        "status",
        "created_at",
        "updated_at",
        "last_seq",
        "metadata",
        "error",
        "pending_input",
    ] {
        assert!(chat.get(field).is_some(), "missing {field}: {chat}");
    }
    assert_eq!(chat["from_type"], "flow");
    assert_eq!(chat["metadata"], json!({"team": "a"}));
    assert!(chat["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(chat["error"], json!(null));
}

#[tokio::test]
async fn every_route_answers_under_v1_too() {
    let app = spawn_app().await;
    for path in [
        "/healthz",
        "/v1/healthz",
        "/readyz",
        "/v1/readyz",
        "/chats",
        "/v1/chats",
        "/flows",
        "/v1/flows",
        "/api-keys",
        "/v1/api-keys",
        "/metrics",
        "/openapi.json",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn chats_list_newest_first_filter_and_page_without_overlap() {
    let app = spawn_app().await;
    app.put_flow("other", two_agent("NEVER", &["hi TERMINATE"])).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_chat(if i % 2 == 0 { "demo" } else { "other" }).await);
    }
    let (_, page1) = app.get("/chats?limit=2").await;
    assert_eq!(page1["has_more"], true);
    let first: Vec<_> =
        page1["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(first, [ids[4].clone(), ids[3].clone()]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/chats?limit=10&after={cursor}")).await;
    let rest: Vec<_> =
        page2["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(rest, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert_eq!(page2["has_more"], false);
    assert_eq!(page2["next_cursor"], json!(null));
    let (_, others) = app.get("/chats?from_flow=other").await;
    assert_eq!(others["data"].as_array().unwrap().len(), 2);
    let (_, ready) = app.get("/chats?status=ready").await;
    assert_eq!(ready["data"].as_array().unwrap().len(), 5);
    let (_, running) = app.get("/chats?status=running").await;
    assert_eq!(running["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn messages_page_by_after_seq_and_carry_last_seq() {
    let app = spawn_app().await;
    app.put_flow("f", two_agent("NEVER", &["a", "b", "c TERMINATE"])).await;
    let id = app.create_chat("f").await;
    app.say(&id, "go").await;
    app.wait_for_status(&id, 0, ChatStatus::Completed).await;
    let (_, page) = app.get(&format!("/chats/{id}/messages?limit=2")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let last_seq = page["last_seq"].as_u64().unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app.get(&format!("/chats/{id}/messages?after_seq={cursor}&limit=100")).await;
    let all = app.messages(&id).await;
    assert_eq!(2 + next["data"].as_array().unwrap().len(), all.len());
    let (_, desc) = app.get(&format!("/chats/{id}/messages?order=desc&limit=1")).await;
    assert_eq!(desc["data"][0]["id"], all.last().unwrap()["id"]);
    assert!(all.iter().all(|m| m["seq"].as_u64().unwrap() <= last_seq));
}

#[tokio::test]
async fn the_content_field_is_accepted_as_the_message() {
    let app = spawn_app().await;
    app.put_flow("f", two_agent("NEVER", &["ok TERMINATE"])).await;
    let id = app.create_chat("f").await;
    let (status, msg) = app.post(&format!("/chats/{id}/messages"), json!({"content": "via content"})).await;
    assert_eq!(status, 202, "{msg}");
    assert_eq!(msg["content"], "via content");
}

#[tokio::test]
async fn cancel_and_its_abort_alias_stop_a_waiting_run_and_keep_its_messages() {
    let app = spawn_app().await;
    for route in ["cancel", "abort"] {
        let id = app.create_chat("demo").await;
        app.say(&id, "hi").await;
        app.wait_for_status(&id, 0, ChatStatus::WaitForHumanInput).await;
        let before = app.messages(&id).await.len();
        let (status, chat) = app.post(&format!("/chats/{id}/{route}"), json!({})).await;
        assert_eq!(status, 200, "{chat}");
        assert_eq!(chat["status"], "ready");
        assert_eq!(chat["pending_input"], json!(null));
        assert_eq!(app.messages(&id).await.len(), before);
    }
}

#[tokio::test]
async fn the_events_page_is_gap_free_from_seq_one() {
    let app = spawn_app().await;
    let id = app.create_chat("demo").await;
    app.say(&id, "hi").await;
    app.wait_for_status(&id, 0, ChatStatus::WaitForHumanInput).await;
    app.answer(&id, "exit").await;
    app.wait_for_status(&id, 0, ChatStatus::Completed).await;
    app.say(&id, "again").await;
    app.wait_for_status(&id, 0, ChatStatus::WaitForHumanInput).await;
    app.post(&format!("/chats/{id}/cancel"), json!({})).await;
    let (status, page) = app.get(&format!("/chats/{id}/events?limit=1000")).await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> =
        page["data"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    assert_eq!(page["last_seq"].as_u64(), seqs.last().copied());
    let (_, chat) = app.get(&format!("/chats/{id}")).await;
    assert_eq!(chat["last_seq"].as_u64(), seqs.last().copied());
}

#[tokio::test]
async fn flows_can_be_registered_listed_shown_replaced_and_deleted() {
    let app = spawn_app().await;
    let (status, flow) = app.post("/flows", two_agent("NEVER", &["x"])).await;
    assert_eq!(status, 201, "{flow}");
    let id = flow["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("flow_"));
    let (_, list) = app.get("/flows").await;
    assert!(list["data"].as_array().unwrap().iter().any(|f| f["id"] == id));
    let (status, shown) = app.get(&format!("/flows/{id}")).await;
    assert_eq!((status, &shown["name"]), (200, &flow["name"]));
    let mut changed = two_agent("ALWAYS", &["y"]);
    changed["name"] = json!("renamed");
    let (status, replaced) =
        crate::support::app::send(app.client.put(app.url(&format!("/flows/{id}"))).json(&changed)).await;
    assert_eq!((status, replaced["name"].as_str()), (200, Some("renamed")));
    let (status, _) = app.delete(&format!("/flows/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = app.get(&format!("/flows/{id}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("flow_not_found")));
}

#[tokio::test]
async fn api_keys_are_created_once_listed_without_secrets_and_deleted() {
    let app = spawn_app().await;
    let (status, key) = app.post("/api-keys", json!({"name": "ci", "environment": "production"})).await;
    assert_eq!(status, 201, "{key}");
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("fgk_") && secret.len() >= 47);
    assert_eq!(key["environment"], "production");
    let (_, list) = app.get("/api-keys").await;
    let text = list.to_string();
    assert!(!text.contains(&secret) && !text.contains("hash"));
    assert!(list["data"].as_array().unwrap().iter().any(|k| k["id"] == key["id"]));
    let other = crate::support::app::client_with_key(&secret);
    let (status, _) = crate::support::app::send(other.get(app.url("/chats"))).await;
    assert_eq!(status, 200);
    let (status, _) = app.delete(&format!("/api-keys/{}", key["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn readiness_reports_the_store_and_bus() {
    let app = spawn_app().await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok", "store": "ok", "bus": "ok"}));
}

#[tokio::test]
async fn each_human_input_mode_gives_its_status_sequence() {
    let app = spawn_app().await;
    // ALWAYS: every assistant message is followed by a question to the human.
    app.put_flow("always", two_agent("ALWAYS", &["one", "two"])).await;
    let chat = app.create_chat("always").await;
    app.say(&chat, "go").await;
    app.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await;
    app.answer_then(&chat, "more", ChatStatus::WaitForHumanInput).await;
    let events = app.answer_then(&chat, "exit", ChatStatus::Completed).await;
    assert_eq!(statuses(&events), ASKED_TWICE_THEN_COMPLETED);
    // NEVER: no question; the proxy's auto-reply limit (2) ends the run.
    app.put_flow("never", two_agent("NEVER", &["one", "two"])).await;
    let chat = app.create_chat("never").await;
    app.say(&chat, "go").await;
    let events = app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    assert_eq!(statuses(&events), ["ready", "running", "completed"]);
    let senders: Vec<_> =
        app.messages(&chat).await.iter().map(|m| m["sender"].as_str().unwrap().to_owned()).collect();
    assert_eq!(senders, ["user", "assistant", "user", "assistant", "user", "assistant"]);
    // TERMINATE: asked only on the termination message.
    app.put_flow("terminate", two_agent("TERMINATE", &["working", "done TERMINATE"])).await;
    let chat = app.create_chat("terminate").await;
    app.say(&chat, "go").await;
    app.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await;
    let senders: Vec<_> =
        app.messages(&chat).await.iter().map(|m| m["sender"].as_str().unwrap().to_owned()).collect();
    assert_eq!(senders, ["user", "assistant", "user", "assistant"]);
    let (status, body) = app.post(&format!("/chats/{chat}/input"), json!({"auto_reply": true})).await;
    assert_eq!(status, 202, "{body}");
    let events = app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    assert_eq!(statuses(&events), ["ready", "running", "wait_for_human_input", "running", "completed"]);
}
