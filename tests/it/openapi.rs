//! `static/openapi.json` is kept true: it is OpenAPI 3.1, it documents every
//! route of `flowgate::api::ROUTES` and nothing else, its `$ref`s resolve, its
//! operations are named and answer, its errors have the contract's shape, its
//! WebSocket protocol names the server's ops and close codes, and its examples
//! fit its schemas. `openapi/live.rs` then checks the running server against it.

mod doc;
mod live;

use std::collections::{BTreeMap, BTreeSet};

use doc::Doc;
use flowgate::api::ROUTES;
use flowgate::model::{ChatStatus, EventKind, Role};
use serde_json::Value;

/// The error codes a response lists (`x-error-codes`).
fn error_codes(response: &Value) -> Vec<&str> {
    response["x-error-codes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// The `{name}`s of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

#[test]
fn the_document_is_openapi_3_1_with_paths_and_the_three_security_schemes() {
    let doc = Doc::load();
    let version = doc.root["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert!(doc.root["paths"].as_object().is_some_and(|p| !p.is_empty()));
    assert!(doc.root["info"]["title"].is_string() && doc.root["info"]["version"].is_string());
    let servers: Vec<&str> =
        doc.root["servers"].as_array().unwrap().iter().filter_map(|s| s["url"].as_str()).collect();
    assert_eq!(servers, ["http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"]);
    let schemes = &doc.root["components"]["securitySchemes"];
    assert_eq!(
        (schemes["ApiKey"]["in"].as_str(), schemes["ApiKey"]["name"].as_str()),
        (Some("header"), Some("X-API-KEY"))
    );
    assert_eq!(
        (schemes["Bearer"]["scheme"].as_str(), schemes["Bearer"]["bearerFormat"].as_str()),
        (Some("bearer"), Some("JWT"))
    );
    assert_eq!(
        (schemes["ChatToken"]["in"].as_str(), schemes["ChatToken"]["name"].as_str()),
        (Some("query"), Some("token"))
    );
}

#[test]
fn every_route_is_documented_and_nothing_else_is() {
    let doc = Doc::load();
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let documented: BTreeSet<(String, String)> =
        doc.operations().iter().map(|o| (o.method.clone(), o.path.to_owned())).collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "routes missing from openapi.json: {missing:?}");
    assert!(extra.is_empty(), "openapi.json documents routes the server does not serve: {extra:?}");
}

#[test]
fn every_path_parameter_is_declared_and_every_declared_one_is_in_the_template() {
    let doc = Doc::load();
    for o in doc.operations() {
        let declared: Vec<&Value> = [&o.item["parameters"], &o.op["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| doc.resolve(p))
            .filter(|p| p["in"] == "path")
            .collect();
        let names: BTreeSet<String> =
            declared.iter().filter_map(|p| p["name"].as_str()).map(str::to_owned).collect();
        assert_eq!(names, template_params(o.path), "{} {}", o.method, o.path);
        assert!(
            declared.iter().all(|p| p["required"] == true),
            "{} {}: path parameters are required",
            o.method,
            o.path
        );
    }
}

#[test]
fn every_ref_resolves_within_the_document() {
    let doc = Doc::load();
    let mut found = Vec::new();
    doc::refs(&doc.root, "#", &mut found);
    assert!(found.len() > 100, "only {} refs: is the document complete?", found.len());
    let broken: Vec<_> = found.iter().filter(|(_, r)| doc.target(r).is_none()).collect();
    assert!(broken.is_empty(), "unresolved $refs (at, ref): {broken:#?}");
}

#[test]
fn every_operation_has_a_unique_operation_id_and_a_success_response() {
    let doc = Doc::load();
    let mut seen = BTreeMap::new();
    for o in doc.operations() {
        let id = o.op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{} {} has no operationId", o.method, o.path));
        if let Some(other) = seen.insert(id.to_owned(), format!("{} {}", o.method, o.path)) {
            panic!("operationId {id} is used by {other} and {} {}", o.method, o.path);
        }
        let ok = doc.statuses(o.op).iter().any(|s| s.starts_with('2') || s == "101");
        assert!(ok, "{} {} documents no 2xx or 101 response", o.method, o.path);
    }
}

#[test]
fn every_error_response_is_the_shared_error_envelope_with_codes_of_its_status() {
    let doc = Doc::load();
    let known = strings(&doc.root["components"]["schemas"]["ErrorCode"]["enum"]);
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    let mut exceptions = Vec::new();
    for o in doc.operations() {
        for status in doc.statuses(o.op).into_iter().filter(|s| s.starts_with('4') || s.starts_with('5')) {
            let route = format!("{} {} {status}", o.method, o.path);
            let response = doc.resolve(&o.op["responses"][&status]);
            if response["x-not-error-envelope"] == true {
                exceptions.push(route);
                continue;
            }
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(schema, "#/components/schemas/Error", "{route}");
            let codes = error_codes(response);
            assert!(!codes.is_empty(), "{route} lists no x-error-codes");
            for code in codes {
                assert!(known.contains(code), "{route}: `{code}` is not in ErrorCode");
                let first = status_of.entry(code.to_owned()).or_insert_with(|| status.clone());
                assert_eq!(*first, status, "{route}: `{code}` is documented under two statuses");
            }
        }
    }
    assert!(exceptions.is_empty(), "every error is the envelope: {exceptions:?}");
}

#[test]
fn the_events_route_documents_both_a_json_page_and_server_sent_events() {
    let doc = Doc::load();
    let ok = doc.response(doc.operation("GET", "/chats/{chat_id}/events"), 200).unwrap();
    assert_eq!(ok["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/EventPage");
    assert!(ok["content"]["text/event-stream"].is_object());
    let params = doc.operation("GET", "/chats/{chat_id}/events")["parameters"].as_array().unwrap();
    let names: BTreeSet<&str> = params.iter().filter_map(|p| doc.resolve(p)["name"].as_str()).collect();
    assert!(names.contains("Last-Event-ID") && names.contains("after_seq"), "{names:?}");
}

#[test]
fn the_websocket_routes_document_the_upgrade_every_op_and_every_close_code() {
    use flowgate::model::Disconnect;
    let doc = Doc::load();
    let ops: BTreeSet<String> = flowgate::realtime::protocol::OPS.iter().map(|o| o.to_string()).collect();
    for path in ["/ws", "/chats/{chat_id}/ws"] {
        let op = doc.operation("GET", path);
        assert!(doc.response(op, 101).is_some(), "{path}: no 101");
        let schemes: BTreeSet<String> = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s.as_object().unwrap().keys().cloned())
            .collect();
        assert!(schemes.contains("ChatToken"), "{path}: `?token=` is not a security scheme");
        let protocol = &op["x-websocket-protocol"];
        let documented: BTreeSet<String> =
            protocol["client_ops"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(documented, ops, "{path}: client ops");
        for frame in ["event", "subscribed", "ack", "error", "pong"] {
            assert!(protocol["server_frames"][frame]["$ref"].is_string(), "{path}: frame {frame}");
        }
        let closes = protocol["close_codes"].as_object().unwrap();
        for d in Disconnect::ALL {
            let c = d.code().to_string();
            assert!(closes.contains_key(&c), "{path}: close code {c} is not documented");
            assert_eq!(closes[&c]["reconnect"], d.reconnect(), "{path}: close code {c}: reconnect");
        }
        let description = op["description"].as_str().unwrap();
        for word in ["subscribe", "watch_status", "4010", "4029", "1001", "4000"] {
            assert!(description.contains(word), "{path}: the description does not mention {word}");
        }
    }
}

/// Every event kind; the match makes a new kind a compile error here until it
/// is listed (and documented).
fn every_event_kind() -> Vec<EventKind> {
    use EventKind::*;
    let all = vec![
        ChatStatus,
        MessageCreated,
        MessageDelta,
        MessageSnapshot,
        InputRequested,
        InputResolved,
        RunStarted,
        RunCompleted,
        RunFailed,
        RunCancelled,
        ChatDeleted,
    ];
    for kind in &all {
        match kind {
            ChatStatus | MessageCreated | MessageDelta | MessageSnapshot | InputRequested | InputResolved => {
            }
            RunStarted | RunCompleted | RunFailed | RunCancelled | ChatDeleted => {}
        }
    }
    all
}

/// Every chat status (exhaustive, as above).
fn every_status() -> Vec<ChatStatus> {
    use ChatStatus::*;
    let all = vec![Ready, Running, WaitForHumanInput, Completed, Error];
    for status in &all {
        match status {
            Ready | Running | WaitForHumanInput | Completed | Error => {}
        }
    }
    all
}

/// Every message role (exhaustive, as above).
fn every_role() -> Vec<Role> {
    use Role::*;
    let all = vec![User, Assistant, HumanInput, System];
    for role in &all {
        match role {
            User | Assistant | HumanInput | System => {}
        }
    }
    all
}

fn wire_names<T: serde::Serialize>(items: &[T]) -> BTreeSet<String> {
    items.iter().map(|i| serde_json::to_value(i).unwrap().as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_documented_enums_are_the_servers() {
    let doc = Doc::load();
    let schemas = &doc.root["components"]["schemas"];
    assert_eq!(strings(&schemas["EventType"]["enum"]), wire_names(&every_event_kind()));
    assert_eq!(strings(&schemas["ChatStatus"]["enum"]), wire_names(&every_status()));
    assert_eq!(strings(&schemas["Role"]["enum"]), wire_names(&every_role()));
}

#[test]
fn every_example_fits_its_schema() {
    let doc = Doc::load();
    let mut problems = Vec::new();
    for o in doc.operations() {
        let route = format!("{} {}", o.method, o.path);
        let bodies = o.op["requestBody"]["content"].as_object().into_iter().flatten();
        let responses = o.op["responses"].as_object().into_iter().flatten();
        let contents = bodies
            .chain(responses.flat_map(|(_, r)| doc.resolve(r)["content"].as_object().into_iter().flatten()));
        for (media, content) in contents {
            let examples = content["examples"].as_object().into_iter().flatten().map(|(_, e)| &e["value"]);
            for example in content.get("example").into_iter().chain(examples) {
                problems.extend(doc.check(&content["schema"], example, &format!("{route} {media}")));
            }
        }
    }
    let schemas = doc.root["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        for example in schema["examples"].as_array().into_iter().flatten() {
            problems.extend(doc.check(schema, example, name));
        }
    }
    assert!(problems.is_empty(), "examples that do not fit: {problems:#?}");
}
