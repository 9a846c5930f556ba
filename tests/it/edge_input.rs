//! Input hygiene at the edge: JSON nested deeper than the documented bound
//! (32 levels) is a 422 naming the field on every transport, and is never
//! stored, so the tenant's listings keep answering.

use crate::support::app::{send, spawn_app};
use crate::support::ws::connect;
use serde_json::{Value, json};

fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "a": value });
    }
    value
}

#[tokio::test]
async fn chat_metadata_nested_126_deep_is_422_naming_it_and_the_chat_list_stays_200() {
    let app = spawn_app().await;
    let body = json!({"from_flow": "demo", "metadata": nested(125)});
    let (status, err) = app.post("/chats", body).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "invalid_request");
    assert_eq!(err["error"]["param"], "metadata");

    let (status, page) = app.get("/chats").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"], json!([]), "nothing was stored");
    let (status, _) = app.post("/chats", json!({"from_flow": "demo", "metadata": nested(30)})).await;
    assert_eq!(status, 201, "a value within the bound is kept");
}

#[tokio::test]
async fn a_flow_or_flowgen_graph_nested_too_deep_is_422_and_the_flow_list_stays_200() {
    let app = spawn_app().await;
    let graph = json!({"flow": {"nodes": [{"id": "1", "data": nested(126)}], "edges": []}});
    let (status, err) = send(app.client.post(app.url("/flows")).json(&graph)).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["param"], "flow");
    let array = Value::Array(vec![nested(200)]);
    let (status, err) = send(app.client.post(app.url("/flows")).json(&array)).await;
    assert_eq!((status, err["error"]["param"].as_str()), (422, Some("body")), "{err}");
    let (status, page) = app.get("/flows").await;
    assert_eq!(status, 200, "{page}");
}

#[tokio::test]
async fn a_websocket_command_nested_too_deep_gets_an_invalid_request_frame_and_the_socket_stays() {
    let app = spawn_app().await;
    let mut ws = connect(&app, "/ws").await;
    ws.send(json!({"op": "ping", "ref": 1, "extra": nested(40)})).await;
    let frame = ws.next().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "invalid_request");
    assert!(frame["message"].as_str().unwrap_or_default().contains("extra"), "{frame}");
    let pong = ws.call(json!({"op": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}
