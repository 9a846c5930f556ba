//! The final-answer view (`docs/flows.md`, "Final answers") through the real
//! gateway: `GET /messages?view=final` and a WebSocket subscription with
//! `"view": "final"`, over a scripted flow whose agents talk among themselves
//! before each answer.

use std::collections::BTreeSet;

use crate::support::app::{TestApp, WAIT, spawn_app};
use crate::support::ws::{Ws, connect};
use serde_json::{Value, json};

use flowgate::model::{ChatStatus, Event, EventKind};

/// A two-agent flow: the writer says `one`, `two`, `done TERMINATE` with the
/// proxy's `Go on.` between them, then the human is asked (TERMINATE mode).
fn monologue(delay_ms: u64) -> Value {
    json!({
        "name": "monologue",
        "models": {"script": {"provider": "scripted", "delay_ms": delay_ms,
                              "replies": ["one", "two", "done TERMINATE"]}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "TERMINATE",
             "max_consecutive_auto_reply": 2, "default_auto_reply": "Go on."},
            {"name": "writer", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    })
}

/// The final view of the whole conversation below, as (role, content).
const FINAL_TRANSCRIPT: [(&str, &str); 5] = [
    ("user", "hi"),
    ("assistant", "done TERMINATE"),
    ("human_input", "shorter"),
    ("assistant", "done TERMINATE"),
    ("human_input", "exit"),
];

async fn app_with_chat() -> (TestApp, String) {
    let app = spawn_app().await;
    app.put_flow("monologue", monologue(0)).await;
    let chat = app.create_chat("monologue").await;
    (app, chat)
}

async fn last_seq(app: &TestApp, chat: &str) -> u64 {
    app.chat(chat).await["last_seq"].as_u64().expect("a last_seq")
}

/// Runs the conversation: `hi`, an answer, `shorter`, an answer, `exit`.
async fn converse(app: &TestApp, chat: &str) {
    let mut seen = last_seq(app, chat).await;
    app.say(chat, "hi").await;
    for reply in ["shorter", "exit"] {
        app.wait_for_status(chat, seen, ChatStatus::WaitForHumanInput).await;
        seen = last_seq(app, chat).await;
        app.answer(chat, reply).await;
    }
    app.wait_for_status(chat, seen, ChatStatus::Completed).await;
}

fn pairs(messages: &[Value]) -> Vec<(String, String)> {
    let field = |m: &Value, k: &str| m[k].as_str().unwrap_or_default().to_owned();
    messages.iter().map(|m| (field(m, "role"), field(m, "content"))).collect()
}

fn owned(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// The seqs a final-view subscriber must get: every durable event but the
/// `message.created` of agent messages not marked final.
fn view_seqs(events: &[Event]) -> Vec<u64> {
    let in_view = |e: &Event| {
        e.kind != EventKind::MessageCreated
            || matches!(e.data["role"].as_str(), Some("user" | "human_input"))
            || e.data["metadata"]["final"] == json!(true)
    };
    events.iter().filter(|e| in_view(e)).filter_map(|e| e.seq).collect()
}

async fn get_page(app: &TestApp, chat: &str, query: &str) -> Value {
    let (status, body) = app.get(&format!("/chats/{chat}/messages?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_final_view_lists_only_user_messages_human_input_and_final_answers() {
    let (app, chat) = app_with_chat().await;
    converse(&app, &chat).await;
    let everything = app.messages(&chat).await;
    assert_eq!(everything.len(), 13, "{everything:#?}");
    let finals: Vec<&Value> = everything.iter().filter(|m| m["metadata"]["final"] == true).collect();
    assert_eq!(finals.len(), 2);
    assert!(finals.iter().all(|m| m["content"] == "done TERMINATE" && m["sender"] == "writer"));
    let monologue =
        everything.iter().filter(|m| m["role"] == "assistant" && m["content"] != "done TERMINATE");
    assert!(monologue.into_iter().all(|m| m["metadata"].get("final").is_none()));

    let view = get_page(&app, &chat, "view=final").await;
    assert_eq!(pairs(view["data"].as_array().unwrap()), owned(&FINAL_TRANSCRIPT));
    assert_eq!(view["has_more"], false);
    assert_eq!(view["last_seq"].as_u64(), Some(last_seq(&app, &chat).await));
    let all = get_page(&app, &chat, "view=all&limit=1000").await;
    assert_eq!(all["data"].as_array().unwrap(), &everything);
}

#[tokio::test]
async fn final_view_pages_follow_the_cursor_both_ways() {
    let (app, chat) = app_with_chat().await;
    converse(&app, &chat).await;
    let mut got = Vec::new();
    let mut query = "view=final&limit=2".to_owned();
    loop {
        let page = get_page(&app, &chat, &query).await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        got.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page["has_more"], true);
                assert_eq!(data.last().unwrap()["seq"].to_string(), cursor);
                query = format!("view=final&limit=2&after_seq={cursor}");
            }
            None => break assert_eq!(page["has_more"], false),
        }
    }
    assert_eq!(pairs(&got), owned(&FINAL_TRANSCRIPT));
    let newest = get_page(&app, &chat, "view=final&limit=2&order=desc").await;
    assert_eq!(pairs(newest["data"].as_array().unwrap()), owned(&[FINAL_TRANSCRIPT[4], FINAL_TRANSCRIPT[3]]));
}

#[tokio::test]
async fn an_unknown_view_is_a_422_naming_view_and_events_take_none() {
    let (app, chat) = app_with_chat().await;
    for path in [
        format!("/chats/{chat}/messages?view=summary"),
        format!("/chats/{chat}/messages?view="),
        format!("/chats/{chat}/events?view=final"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!((status, body["error"]["param"].as_str()), (422, Some("view")), "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let (status, _) = app.get(&format!("/chats/{chat}/events?view=all")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_final_view_long_poll_holds_until_an_answer_of_the_view_is_stored() {
    let app = spawn_app().await;
    app.put_flow("slow", monologue(20)).await;
    let chat = app.create_chat("slow").await;
    let posted = app.say(&chat, "hi").await;
    let after = posted["seq"].as_u64().unwrap();
    let query = format!("view=final&after_seq={after}&wait=8");
    let page = tokio::time::timeout(WAIT, get_page(&app, &chat, &query)).await.expect("answered in time");
    let data = page["data"].as_array().unwrap();
    assert_eq!(pairs(data), owned(&[("assistant", "done TERMINATE")]));
    assert_eq!(data[0]["metadata"]["final"], true);
}

/// Subscribes `ws` to the chat's final view after `after_seq`.
async fn subscribe_final(ws: &mut Ws, chat: &str, after_seq: u64) {
    let reply =
        ws.call(json!({"op": "subscribe", "chat_id": chat, "after_seq": after_seq, "view": "final"})).await;
    assert_eq!(
        (reply["type"].as_str(), reply["view"].as_str()),
        (Some("subscribed"), Some("final")),
        "{reply}"
    );
}

fn durable_seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().filter(|f| f["chat_id"].is_string()).filter_map(|f| f["seq"].as_u64()).collect()
}

#[tokio::test]
async fn a_final_view_subscriber_gets_the_view_live_without_deltas_or_monologue() {
    let (app, chat) = app_with_chat().await;
    let mut ws = connect(&app, "/ws").await;
    subscribe_final(&mut ws, &chat, 0).await;
    let mut frames = Vec::new();
    app.say(&chat, "hi").await;
    frames.extend(ws.until_status("wait_for_human_input").await);
    app.answer(&chat, "shorter").await;
    frames.extend(ws.until_status("wait_for_human_input").await);
    app.answer(&chat, "exit").await;
    frames.extend(ws.until_status("completed").await);

    assert!(frames.iter().all(|f| f["type"] != "message.delta"), "no deltas in the final view");
    assert_eq!(durable_seqs(&frames), view_seqs(&app.events(&chat).await));
    let messages: Vec<Value> =
        frames.iter().filter(|f| f["type"] == "message.created").map(|f| f["data"].clone()).collect();
    assert_eq!(pairs(&messages), owned(&FINAL_TRANSCRIPT));
    let kinds: BTreeSet<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    for kind in ["chat.status", "run.started", "input.requested", "input.resolved", "run.completed"] {
        assert!(kinds.contains(kind), "{kind} is part of the final view");
    }
}

#[tokio::test]
async fn resuming_a_final_view_from_the_last_seq_seen_misses_nothing_and_repeats_nothing() {
    let (app, chat) = app_with_chat().await;
    let mut ws = connect(&app, "/ws").await;
    subscribe_final(&mut ws, &chat, 0).await;
    app.say(&chat, "hi").await;
    let first = ws.until(|f| f["type"] == "message.created" && f["data"]["metadata"]["final"] == true).await;
    drop(ws);

    let seen = durable_seqs(&first);
    app.wait_for_status(&chat, 0, ChatStatus::WaitForHumanInput).await;
    for (reply, then) in [("shorter", ChatStatus::WaitForHumanInput), ("exit", ChatStatus::Completed)] {
        let at = last_seq(&app, &chat).await;
        app.answer(&chat, reply).await;
        app.wait_for_status(&chat, at, then).await;
    }

    let mut ws = connect(&app, "/ws").await;
    let resume_from = *seen.last().expect("a seq was seen");
    subscribe_final(&mut ws, &chat, resume_from).await;
    let rest = ws.until_status("completed").await;
    let mut all = seen;
    all.extend(durable_seqs(&rest));
    assert_eq!(all, view_seqs(&app.events(&chat).await), "in order, nothing missing, nothing twice");
    assert!(rest.iter().all(|f| f["type"] != "message.delta"));
}

#[tokio::test]
async fn a_proxy_auto_reply_before_completion_leaves_the_answer_before_it_final() {
    let app = spawn_app().await;
    let group = json!({
        "name": "round robin",
        "models": {"script": {"provider": "scripted", "replies": ["idea", "refined"]}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "default_auto_reply": "ok"},
            {"name": "alice", "kind": "assistant", "model": "script"},
            {"name": "bob", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "group", "max_round": 4}
    });
    app.put_flow("group", group).await;
    let chat = app.create_chat("group").await;
    app.say(&chat, "brainstorm").await;
    app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    let everything = app.messages(&chat).await;
    let senders: Vec<&str> = everything.iter().filter_map(|m| m["sender"].as_str()).collect();
    assert_eq!(senders, ["user", "alice", "bob", "user"], "max_round 4, the proxy's auto reply last");
    assert_eq!(everything[3]["metadata"]["auto_reply"], true);
    assert_eq!(everything[3]["metadata"].get("final"), None, "an auto reply speaks for the human's seat");
    let view = get_page(&app, &chat, "view=final").await;
    let data = view["data"].as_array().unwrap();
    assert_eq!(pairs(data), owned(&[("user", "brainstorm"), ("assistant", "idea")]));
    assert_eq!(
        (data[1]["sender"].as_str(), data[1]["metadata"]["final"].as_bool()),
        (Some("bob"), Some(true))
    );
}
