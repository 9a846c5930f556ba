//! Tools executed by the client, never by the gateway, end to end: FlowGen
//! graphs with `functions` import (201) and run against a fake
//! OpenAI-compatible server; the model gets the `tools` declaration, its call
//! becomes a stored message and a pending `tool_calls` input, answered over
//! REST or the socket, and the model then gets the `tool` messages. Streamed
//! calls are assembled by index; a restart while a call is pending asks again
//! with the same ids; arguments the schema refuses go back to the model.

use std::path::Path;

use crate::support::app::{TestApp, spawn_configured};
use crate::support::fake_openai::{Behaviour, FakeOpenAi};
use crate::support::ws::connect;
use flowgate::config::Config;
use flowgate::flow::flowgen::{self, ModelCatalog};
use flowgate::model::ChatStatus;
use serde_json::{Value, json};

pub(crate) fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flowgen").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture exists")).expect("fixture is JSON")
}

/// Registers `name` as a keyless model served by the fake.
pub(crate) fn register(config: &mut Config, name: &str, base_url: String) {
    config.models.insert(name.into(), crate::support::fake_openai::model_at(base_url));
}

/// A fake and a gateway whose `name` model it serves.
pub(crate) async fn setup(name: &str) -> (FakeOpenAi, TestApp) {
    let fake = FakeOpenAi::start().await;
    let base_url = fake.base_url();
    let app = spawn_configured(|config| register(config, name, base_url)).await;
    (fake, app)
}

fn catalog() -> ModelCatalog {
    ModelCatalog::new(["default"], Some("default"))
}

pub(crate) fn call(id: &str, name: &str, arguments: &str) -> (String, String, String) {
    (id.into(), name.into(), arguments.into())
}

/// Imports a graph; asserts 201 and returns the flow body.
pub(crate) async fn import(app: &TestApp, graph: Value) -> Value {
    let (status, flow) = app.post("/flows", graph).await;
    assert_eq!(status, 201, "{flow}");
    flow
}

/// Waits for the chat to ask; returns its pending input.
pub(crate) async fn pending(app: &TestApp, chat: &str, after: u64) -> Value {
    app.wait_for_status(chat, after, ChatStatus::WaitForHumanInput).await;
    app.chat(chat).await["pending_input"].clone()
}

fn last_seq(chat: &Value) -> u64 {
    chat["last_seq"].as_u64().unwrap()
}

/// The FlowGen functions sample, on the gateway's `default` model.
pub(crate) async fn functions_chat(app: &TestApp) -> String {
    let flow = import(app, fixture("functions_sample.json")).await;
    app.create_chat(flow["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn flowgens_functions_sample_imports_and_its_tool_call_is_answered_by_the_client_over_rest() {
    let (fake, app) = setup("default").await;
    fake.push(Behaviour::ToolCalls(vec![call("call_1", "sh", r#"{"script": "ls"}"#)]));
    fake.push(Behaviour::Stream(vec!["TERMINATE".into()]));
    let flow = import(&app, fixture("functions_sample.json")).await;
    let warnings = flow["warnings"].to_string();
    assert!(warnings.contains("`sh`") && warnings.contains("answered by a client"), "{warnings}");
    let agents = flow["definition"]["agents"].as_array().unwrap();
    let bot = agents.iter().find(|a| a["name"] == "chatbot").expect("the assistant");
    let proxy = agents.iter().find(|a| a["name"] == "UserProxy").expect("the proxy");
    assert!(proxy.get("tools").is_none(), "the executor declares nothing: {proxy}");
    let tools = &bot["tools"];
    assert_eq!(tools[0]["name"], "sh", "{flow}");
    assert!(tools[0]["source"].as_str().unwrap().contains("execute_code_blocks"), "kept as data");
    let chat = app.create_chat(flow["id"].as_str().unwrap()).await;
    app.say(&chat, "List the files.").await;

    let asked = pending(&app, &chat, 0).await;
    assert_eq!(asked["kind"], "tool_calls", "{asked}");
    assert_eq!(asked["agent"], "UserProxy");
    assert_eq!(asked["calls"], json!([{"call_id": "call_1", "name": "sh", "arguments": {"script": "ls"}}]));
    let stored = app.messages(&chat).await;
    assert_eq!(stored[1]["sender"], "chatbot");
    assert_eq!(stored[1]["metadata"]["tool_calls"][0]["call_id"], "call_1");

    let after = last_seq(&app.chat(&chat).await);
    let answer = json!({"tool_results": [{"call_id": "call_1", "content": "a.txt\nb.txt"}]});
    let (status, body) = app.post(&format!("/chats/{chat}/input"), answer).await;
    assert_eq!(status, 202, "{body}");
    let events = app.wait_for_status(&chat, after, ChatStatus::Completed).await;
    let resolved = events.iter().rev().find(|e| e.kind == flowgate::model::EventKind::InputResolved);
    assert_eq!(resolved.unwrap().data["call_ids"], json!(["call_1"]));

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let declared = &requests[0].body["tools"];
    assert_eq!(declared[0]["type"], "function");
    assert_eq!(declared[0]["function"]["name"], "sh");
    assert_eq!(declared[0]["function"]["parameters"]["required"], json!(["script"]));
    assert_eq!(declared[1]["function"]["name"], "python");
    let messages = requests[1].body["messages"].as_array().unwrap().clone();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(messages[n - 2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(messages[n - 2]["tool_calls"][0]["function"]["arguments"], r#"{"script": "ls"}"#);
    assert_eq!(messages[n - 1], json!({"role": "tool", "content": "a.txt\nb.txt", "tool_call_id": "call_1"}));
}

#[tokio::test]
async fn flowgens_default_flow_with_a_function_runs_its_tool_round_trip_over_the_socket() {
    let (fake, app) = setup("gpt-4o").await;
    let mut graph = fixture("multimodal_default.json");
    for node in graph["nodes"].as_array_mut().unwrap() {
        match node["type"].as_str() {
            Some("config") => {
                node["data"]["functions"] = json!([{"name": "get_weather", "description": "The weather",
                    "parameters": [{"name": "city", "type": "string", "required": true}]}]);
            }
            Some("assistant") => node["data"]["max_consecutive_auto_reply"] = json!(2),
            _ => {}
        }
    }
    let flow = import(&app, graph).await;
    fake.push(Behaviour::ToolCalls(vec![call("w1", "get_weather", r#"{"city":"Paris"}"#)]));
    fake.push(Behaviour::Stream(vec!["Sunny in Paris.".into()]));
    let chat = app.create_chat(flow["id"].as_str().unwrap()).await;
    let mut ws = connect(&app, "/ws").await;
    let reply = ws.call(json!({"op": "subscribe", "chat_id": chat, "after_seq": 0})).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    app.say(&chat, "Weather in Paris?").await;
    let frames = ws.until(|f| f["type"] == "input.requested").await;
    let asked = &frames.last().unwrap()["data"];
    assert_eq!(asked["kind"], "tool_calls", "{asked}");
    assert_eq!(asked["calls"][0]["arguments"], json!({"city": "Paris"}));

    let answer = json!({"op": "input", "chat_id": chat, "request_id": asked["request_id"],
        "tool_results": [{"call_id": "w1", "content": "sunny, 21°C"}]});
    let ack = ws.call(answer).await;
    assert_eq!((ack["type"].as_str(), ack["status"].as_str()), (Some("ack"), Some("running")), "{ack}");
    ws.until_status("completed").await;
    let messages = app.messages(&chat).await;
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "human_input", "assistant"]);
    assert_eq!(messages[2]["metadata"]["tool_results"], json!([{"call_id": "w1", "content": "sunny, 21°C"}]));
    let second = &fake.requests()[1].body["messages"];
    let tool = second.as_array().unwrap().iter().find(|m| m["role"] == "tool").cloned();
    assert_eq!(tool, Some(json!({"role": "tool", "content": "sunny, 21°C", "tool_call_id": "w1"})));
}

/// One SSE event of a streamed completion.
fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_by_index_from_their_pieces() {
    let (fake, app) = setup("default").await;
    let piece = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [call]}), None)
    };
    fake.push(Behaviour::RawEvents(vec![
        chunk(json!({"role": "assistant", "content": "Running both."}), None),
        piece(0, Some("a"), Some("sh"), ""),
        piece(1, Some("b"), Some("python"), "{\"ce"),
        piece(0, None, None, "{\"script\": "),
        piece(1, None, None, "ll\": \"1+1\"}"),
        piece(0, None, None, "\"pwd\"}"),
        chunk(json!({}), Some("tool_calls")),
        "[DONE]".into(),
    ]));
    fake.push(Behaviour::Stream(vec!["TERMINATE".into()]));
    let chat = functions_chat(&app).await;
    app.say(&chat, "Where am I, and what is 1+1?").await;
    let asked = pending(&app, &chat, 0).await;
    assert_eq!(
        asked["calls"],
        json!([
            {"call_id": "a", "name": "sh", "arguments": {"script": "pwd"}},
            {"call_id": "b", "name": "python", "arguments": {"cell": "1+1"}}
        ])
    );
    assert_eq!(app.messages(&chat).await[1]["content"], "Running both.");
    let after = last_seq(&app.chat(&chat).await);
    let answer =
        json!({"tool_results": [{"call_id": "b", "content": "2"}, {"call_id": "a", "content": "/tmp"}]});
    assert_eq!(app.post(&format!("/chats/{chat}/input"), answer).await.0, 202);
    app.wait_for_status(&chat, after, ChatStatus::Completed).await;
    let sent = fake.requests()[1].body["messages"].as_array().unwrap().clone();
    let tools: Vec<(&str, &str)> = sent
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| (m["tool_call_id"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(tools, [("a", "/tmp"), ("b", "2")], "results in call order");
}

#[tokio::test]
async fn a_restart_while_a_tool_call_is_pending_loses_nothing_and_asks_again_with_the_same_ids() {
    let (fake, app) = setup("default").await;
    fake.push(Behaviour::ToolCalls(vec![call("keep_1", "sh", r#"{"script":"date"}"#)]));
    fake.push(Behaviour::Stream(vec!["TERMINATE".into()]));
    let chat = functions_chat(&app).await;
    app.say(&chat, "What time is it?").await;
    let before = pending(&app, &chat, 0).await;
    let seq_before = last_seq(&app.chat(&chat).await);
    let base_url = fake.base_url();
    let app = app.restart_in_place(|config| register(config, "default", base_url)).await;
    let after = app.chat(&chat).await;
    assert_eq!(after["status"], "wait_for_human_input");
    assert_eq!(after["pending_input"], before, "the same request, the same call ids");
    assert_eq!(last_seq(&after), seq_before);
    assert_eq!(fake.request_count(), 1, "the model is not asked again");
    let answer = json!({"tool_results": [{"call_id": "keep_1", "content": "noon"}]});
    assert_eq!(app.post(&format!("/chats/{chat}/input"), answer).await.0, 202);
    app.wait_for_status(&chat, seq_before, ChatStatus::Completed).await;
    assert_eq!(app.messages(&chat).await.len(), 4);
}

#[tokio::test]
async fn arguments_the_schema_refuses_go_back_to_the_model_as_a_tool_error_and_the_client_is_not_asked() {
    let (fake, app) = setup("default").await;
    fake.push(Behaviour::ToolCalls(vec![call("bad", "sh", r#"{"script": 42}"#), call("x", "rm", "{}")]));
    fake.push(Behaviour::Stream(vec!["TERMINATE".into()]));
    let chat = functions_chat(&app).await;
    app.say(&chat, "Go.").await;
    app.wait_for_status(&chat, 0, ChatStatus::Completed).await;
    let events = app.events(&chat).await;
    assert!(events.iter().all(|e| e.kind != flowgate::model::EventKind::InputRequested));
    let stored = &app.messages(&chat).await[1]["metadata"]["tool_calls"];
    assert!(stored[0]["error"].as_str().unwrap().contains("schema"), "{stored}");
    assert_eq!(stored[1]["error"], "Error: Function rm not found.");
    let sent = fake.requests()[1].body["messages"].as_array().unwrap().clone();
    let errors: Vec<&Value> = sent.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1]["tool_call_id"], "x");
}

#[test]
fn flowgens_retrieval_sample_is_still_refused_naming_each_node() {
    let issues = flowgen::import(&fixture("rag_sample.json"), &catalog()).expect_err("refused");
    let named = |node: &str| issues.iter().filter(|i| i.path.starts_with(&format!("nodes[{node}]"))).count();
    assert!(named("rag-user") > 0 && named("rag-assistant") > 0, "{issues:#?}");
    let text = format!("{issues:?}");
    assert!(text.contains("RetrieveUserProxyAgent") && text.contains("RetrieveAssistantAgent"), "{text}");
}

#[test]
fn flowgen_functions_import_as_tools_of_every_assistant_with_their_source_kept() {
    let imported = flowgen::import(&fixture("functions_sample.json"), &catalog()).expect("imports");
    let bot = imported.flow.agent("chatbot").expect("the assistant");
    let names: Vec<&str> = bot.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sh", "python"]);
    assert_eq!(
        bot.tools[0].parameters,
        json!({"type": "object", "properties": {"script": {"type": "string", "description": "The script to execute"}},
               "required": ["script"]})
    );
    assert!(bot.tools[1].source.as_deref().unwrap().contains("run_cell"));
    assert!(imported.flow.agent("UserProxy").unwrap().tools.is_empty());
    let warned: Vec<&str> = imported.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(
        warned.contains(&"nodes[999].data.functions[0]") && warned.contains(&"nodes[999].data.functions[1]")
    );
}
