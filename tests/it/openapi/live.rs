//! The running server against its description: it serves the file verbatim,
//! and every answer it gives has a status, a content type and a body the
//! document lists for that route, and an error code the response names.

use flowgate::api::ROUTES;
use flowgate::flow::ModelSpec;
use flowgate::model::ChatStatus;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::doc::{self, Doc};
use crate::support::app::{KEY, TestApp, WAIT, spawn_app, spawn_configured};
use crate::support::flows::two_agent;
use crate::support::ws;

/// The route template of a concrete path (`/chats/chat_1/ws` →
/// `/chats/{chat_id}/ws`), from `ROUTES`.
fn template_of(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.strip_prefix("/v1").filter(|p| p.starts_with('/')).unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    let fits = |template: &str| {
        let t: Vec<&str> = template.split('/').collect();
        t.len() == parts.len() && t.iter().zip(&parts).all(|(t, p)| t == p || t.starts_with('{'))
    };
    ROUTES.iter().map(|(_, t)| *t).find(|t| fits(t)).unwrap_or_else(|| panic!("{path} is no route"))
}

/// Sends requests to a live server and checks each answer against the
/// document.
struct Probe {
    doc: Doc,
    base: String,
    client: reqwest::Client,
}

impl Probe {
    /// A probe sending the test key.
    fn new(app: &TestApp) -> Probe {
        Probe::with_client(app, app.client.clone())
    }

    /// A probe sending what `client` sends.
    fn with_client(app: &TestApp, client: reqwest::Client) -> Probe {
        Probe { doc: Doc::load(), base: app.base.clone(), client }
    }

    /// A request to a path.
    fn request(&self, method: &str, path: &str) -> RequestBuilder {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends `req` (a request to `method path`) and checks the answer: the
    /// status is documented for the route, so is the content type, the body
    /// fits the schema, and an error's code is one the response lists.
    /// Returns the status and the body (JSON, or text as a string; `Null` for
    /// 204 and SSE).
    async fn check(&self, method: &str, path: &str, req: RequestBuilder) -> (u16, Value) {
        let resp = tokio::time::timeout(WAIT, req.send()).await.expect("answered in time").expect("answered");
        let status = resp.status().as_u16();
        let route = format!("{method} {path} → {status}");
        let op = self.doc.operation(method, template_of(path));
        let documented = self.doc.response(op, status);
        let documented = documented
            .unwrap_or_else(|| panic!("{route} is not documented (documented: {:?})", self.doc.statuses(op)));
        if status == 204 {
            assert!(documented.get("content").is_none(), "{route} documents a body");
            return (status, Value::Null);
        }
        let header = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media = header.split(';').next().unwrap_or_default().trim().to_owned();
        let content = &documented["content"][&media];
        assert!(content.is_object(), "{route}: content type `{header}` is not documented");
        if media == "text/event-stream" {
            return (status, Value::Null);
        }
        let text = resp.text().await.expect("a body");
        let body = match media.as_str() {
            "application/json" => {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{route}: {e}: {text}"))
            }
            _ => Value::String(text),
        };
        let problems = self.doc.check(&content["schema"], &body, &route);
        assert!(problems.is_empty(), "{route}: the body does not fit its schema: {problems:#?}\n{body:#}");
        if status >= 400 && documented["x-not-error-envelope"] != true {
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let listed = super::error_codes(documented);
            assert!(listed.contains(&code), "{route}: code `{code}` is not among {listed:?}");
        }
        (status, body)
    }

    /// Sends `method path` with an optional JSON body, checks the answer and
    /// asserts its status; returns the body.
    async fn expect(&self, status: u16, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let (got, body) = self.check(method, path, req).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }

    /// Like [`Probe::expect`], with a raw body.
    async fn expect_raw(&self, status: u16, method: &str, path: &str, raw: &'static str) -> Value {
        let (got, body) = self.check(method, path, self.request(method, path).body(raw)).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }
}

#[tokio::test]
async fn the_server_serves_the_file_verbatim_at_both_prefixes() {
    let app = spawn_app().await;
    for path in ["/openapi.json", "/v1/openapi.json"] {
        let resp = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        let served = resp.text().await.unwrap();
        assert!(served == doc::text(), "{path} does not serve static/openapi.json as it is");
    }
}

#[tokio::test]
async fn every_parameterless_get_answers_with_a_documented_status_with_and_without_a_key() {
    let app = spawn_app().await;
    let keyed = Probe::new(&app);
    let anonymous = Probe::with_client(&app, reqwest::Client::new());
    for (_, path) in ROUTES.iter().filter(|(m, p)| *m == "GET" && !p.contains('{')) {
        for path in [path.to_string(), format!("/v1{path}")] {
            let (status, body) = keyed.check("GET", &path, keyed.request("GET", &path)).await;
            // `GET /session` reads the session cookie only: a key is no session.
            let cookie_only = path.ends_with("/session");
            assert!(cookie_only || status != 401, "GET {path} refused the test key {KEY}: {body}");
            anonymous.check("GET", &path, anonymous.request("GET", &path)).await;
        }
    }
}

#[tokio::test]
async fn the_flow_routes_answer_as_documented() {
    let app = spawn_app().await;
    let p = Probe::new(&app);
    let example = &p.doc.operation("POST", "/flows")["requestBody"]["content"]["application/json"];
    let native = example["examples"]["native"]["value"].clone();
    let created = p.expect(201, "POST", "/flows", Some(native)).await;
    let one = format!("/flows/{}", created["id"].as_str().unwrap());
    let quick = two_agent("NEVER", &["ok TERMINATE"]);
    p.expect(201, "PUT", "/flows/quick", Some(quick.clone())).await;
    p.expect(200, "PUT", "/flows/quick", Some(quick)).await;
    p.expect(422, "PUT", "/flows/bad%20id", Some(json!({}))).await;
    p.expect(422, "POST", "/flows", Some(json!({"name": "x", "agents": [], "chat": {"kind": "group"}})))
        .await;
    p.expect(422, "POST", "/flows", Some(json!({"name": "x", "agents": [], "chat": {}, "extra": 1}))).await;
    p.expect_raw(400, "POST", "/flows", "{\"name\": ").await;
    p.expect(200, "GET", "/flows?limit=1", None).await;
    p.expect(422, "GET", "/flows?limit=0", None).await;
    p.expect(200, "GET", &one, None).await;
    p.expect(200, "GET", "/flows/demo", None).await;
    p.expect(404, "GET", "/flows/nope", None).await;
    app.create_chat("quick").await;
    p.expect(409, "DELETE", "/flows/quick", None).await;
    p.expect(204, "DELETE", &one, None).await;
    p.expect(404, "DELETE", &one, None).await;
}

#[tokio::test]
async fn the_flowgen_example_registers_on_a_gateway_with_a_default_model() {
    let app = spawn_configured(|config| {
        let offline = ModelSpec::Scripted {
            replies: vec!["Done. TERMINATE".into()],
            echo: false,
            delay_ms: 0,
            tokens_per_sec: 0,
        };
        config.models.insert("default".into(), offline);
    })
    .await;
    let p = Probe::new(&app);
    let example = &p.doc.operation("POST", "/flows")["requestBody"]["content"]["application/json"];
    let graph = example["examples"]["flowgen"]["value"].clone();
    let created = p.expect(201, "POST", "/flows", Some(graph.clone())).await;
    assert_eq!(created["definition"]["agents"][1]["model"], "default", "{created}");
    p.expect(201, "PUT", "/flows/from-flowgen", Some(graph.clone())).await;
    // Without a model to give its assistant, the example cannot run: 422.
    let bare = spawn_app().await;
    Probe::new(&bare).expect(422, "POST", "/flows", Some(graph)).await;
}

#[tokio::test]
async fn the_chat_routes_answer_as_documented_through_a_whole_run() {
    let app = spawn_app().await;
    let p = Probe::new(&app);
    app.put_flow("quick", two_agent("NEVER", &["Done. TERMINATE"])).await;
    let new = json!({"name": "t", "from_type": "flow", "from_flow": "quick", "metadata": {"k": 1}});
    let chat = p.expect(201, "POST", "/chats", Some(new)).await;
    let at = |rest: &str| format!("/chats/{}{rest}", chat["id"].as_str().unwrap());
    p.expect(404, "POST", "/chats", Some(json!({"from_flow": "nope"}))).await;
    p.expect(422, "POST", "/chats", Some(json!({"from_flow": "quick", "from_type": "template"}))).await;
    p.expect_raw(400, "POST", "/chats", "{,}").await;
    p.expect(200, "GET", "/chats?status=ready&limit=5", None).await;
    p.expect(422, "GET", "/chats?status=sleeping", None).await;
    p.expect(200, "GET", &at(""), None).await;
    p.expect(422, "POST", &at("/messages"), Some(json!({"content": ""}))).await;
    p.expect(202, "POST", &at("/messages"), Some(json!({"message": "hi"}))).await;
    app.wait_for_status(chat["id"].as_str().unwrap(), 0, ChatStatus::Completed).await;
    p.expect(200, "GET", &at("/messages?order=desc&limit=2"), None).await;
    let page = p.expect(200, "GET", &at("/events"), None).await;
    assert!(page["data"].as_array().unwrap().len() >= 6, "{page}");
    let sse = |query: &str| p.request("GET", &at(query)).header("accept", "text/event-stream");
    assert_eq!(p.check("GET", &at("/events"), sse("/events?after_seq=1")).await.0, 200);
    assert_eq!(p.check("GET", &at("/events"), sse("/events?after_seq=999")).await.0, 422);
    p.expect(409, "POST", &at("/input"), Some(json!({"message": "x"}))).await;
    p.expect(409, "POST", &at("/cancel"), None).await;
    p.expect(409, "POST", &at("/abort"), None).await;
    p.expect(201, "POST", &at("/tokens"), None).await;
    p.expect(422, "POST", &at("/tokens"), Some(json!({"ttl_secs": 0}))).await;
    p.expect(204, "DELETE", &at(""), None).await;
    p.expect(404, "GET", &at(""), None).await;
}

#[tokio::test]
async fn a_chat_token_is_refused_tenant_wide_routes_as_documented() {
    let app = spawn_app().await;
    let id = app.create_chat("demo").await;
    let (_, minted) = app.post(&format!("/chats/{id}/tokens"), json!({})).await;
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {}", minted["token"].as_str().unwrap());
    headers.insert("authorization", bearer.parse().unwrap());
    let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
    let p = Probe::with_client(&app, client);
    p.expect(200, "GET", &format!("/chats/{id}"), None).await;
    p.expect(404, "GET", "/chats/chat_other", None).await;
    p.expect(403, "GET", "/chats", None).await;
    p.expect(403, "GET", "/flows", None).await;
    p.expect(403, "POST", &format!("/chats/{id}/tokens"), None).await;
}

#[tokio::test]
async fn the_api_key_routes_answer_as_documented() {
    let app = spawn_app().await;
    let p = Probe::new(&app);
    let key = p.expect(201, "POST", "/api-keys", Some(json!({"name": "ci", "environment": "test"}))).await;
    p.expect(422, "POST", "/api-keys", Some(json!({}))).await;
    p.expect(200, "GET", "/api-keys", None).await;
    let one = format!("/api-keys/{}", key["id"].as_str().unwrap());
    p.expect(204, "DELETE", &one, None).await;
    p.expect(404, "DELETE", &one, None).await;
}

/// Reads frames until `pred`, checking each against `WsServerFrame`.
async fn frames_until(doc: &Doc, socket: &mut ws::Ws, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let frames = socket.until(pred).await;
    for frame in &frames {
        assert_fits_ws_frame(doc, frame);
    }
    frames
}

fn assert_fits_ws_frame(doc: &Doc, frame: &Value) {
    let schema = json!({"$ref": "#/components/schemas/WsServerFrame"});
    let problems = doc.check(&schema, frame, "frame");
    assert!(problems.is_empty(), "a server frame does not fit WsServerFrame: {problems:#?}\n{frame:#}");
}

#[tokio::test]
async fn websocket_frames_fit_the_documented_protocol() {
    let app = spawn_app().await;
    let doc = Doc::load();
    app.put_flow("ask", two_agent("ALWAYS", &["Hello there"])).await;
    let chat = app.create_chat("ask").await;
    let mut socket = ws::connect(&app, "/ws").await;
    for command in [
        json!({"op": "ping", "ref": 1}),
        json!({"op": "watch_status", "ref": 2}),
        json!({"op": "dance", "ref": 3}),
        json!({"op": "subscribe", "chat_id": chat, "after_seq": 0, "ref": 4}),
        json!({"op": "message", "chat_id": chat, "message": "hi", "ref": 5}),
    ] {
        let reference = command["ref"].clone();
        socket.send(command).await;
        frames_until(&doc, &mut socket, |f| f["ref"] == reference).await;
    }
    frames_until(&doc, &mut socket, |f| f["type"] == "input.requested").await;
    socket.send(json!({"op": "input", "chat_id": chat, "message": "exit", "ref": 6})).await;
    frames_until(&doc, &mut socket, |f| f["type"] == "run.completed").await;
    let mut bound = ws::connect(&app, &format!("/chats/{chat}/ws?after_seq=2")).await;
    let first = frames_until(&doc, &mut bound, |_| true).await;
    assert_eq!(first[0]["type"], "subscribed");
    app.delete(&format!("/chats/{chat}")).await;
    // The bound socket closes with 4004; every frame before the close fits too.
    let ended = loop {
        match bound.next_or_end(WAIT).await {
            Ok(frame) => assert_fits_ws_frame(&doc, &frame),
            Err(end) => break end,
        }
    };
    assert_eq!(ended, ws::Ended::Closed(4004));
}

#[tokio::test]
async fn refused_upgrades_answer_with_documented_statuses_and_codes() {
    let app = spawn_app().await;
    let doc = Doc::load();
    let refusals =
        [("/ws", None), ("/ws?token=fgk_never_in_a_url", None), ("/chats/chat_nope/ws", Some(KEY))];
    for (path, key) in refusals {
        let refused = ws::connect_with(&app, path, key).await.err().expect("the upgrade is refused");
        let op = doc.operation("GET", template_of(path));
        let documented = doc.response(op, refused.status);
        let documented = documented.unwrap_or_else(|| panic!("{path}: {} is not documented", refused.status));
        let listed = super::error_codes(documented);
        let code = refused.body["error"]["code"].as_str().unwrap_or_default();
        assert!(listed.contains(&code), "{path}: `{code}` is not among {listed:?}");
    }
}
