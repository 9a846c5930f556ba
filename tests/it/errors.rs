//! The one error table (`flowgate::model::ErrorCode`) agrees with what the
//! project documents: `docs/errors.md` lists exactly its rows, and every code
//! `static/openapi.json` names is a row with the status it is documented under.

use std::collections::BTreeMap;
use std::path::Path;

use flowgate::model::{Disconnect, ErrorCode};
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn docs_errors_md_lists_exactly_the_table() {
    let doc = read("docs/errors.md");
    let mut documented = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        documented.insert(cells[1].trim_matches('`').to_owned(), (cells[2], cells[3], cells[4]));
    }
    assert_eq!(documented.len(), ErrorCode::ALL.len(), "docs/errors.md rows: {:?}", documented.keys());
    for code in ErrorCode::ALL {
        let (status, retryable, close) = documented
            .get(code.as_str())
            .unwrap_or_else(|| panic!("{} is not in docs/errors.md", code.as_str()));
        assert_eq!(*status, code.http_status().to_string(), "{}: status", code.as_str());
        assert_eq!(*retryable, if code.retryable() { "yes" } else { "no" }, "{}: retryable", code.as_str());
        let expected = code.disconnect().map_or("—".to_owned(), |d| d.code().to_string());
        assert_eq!(*close, expected, "{}: close code", code.as_str());
    }
    for d in Disconnect::ALL {
        assert!(
            doc.contains(&format!("| {} |", d.code())),
            "close code {} is not in docs/errors.md",
            d.code()
        );
    }
}

/// Every `x-error-codes` list in the document, with the status key it sits
/// under when it sits under one.
fn documented_codes(value: &Value, status: Option<u16>, out: &mut Vec<(String, Option<u16>)>) {
    match value {
        Value::Object(map) => {
            for code in map.get("x-error-codes").and_then(Value::as_array).into_iter().flatten() {
                out.push((code.as_str().unwrap().to_owned(), status));
            }
            for (key, v) in map {
                documented_codes(v, key.parse().ok().or(status.filter(|_| key != "responses")), out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| documented_codes(v, status, out)),
        _ => {}
    }
}

#[test]
fn every_code_the_openapi_document_names_is_in_the_table_with_its_status() {
    let doc: Value = serde_json::from_str(&read("static/openapi.json")).unwrap();
    let mut named = Vec::new();
    documented_codes(&doc, None, &mut named);
    assert!(named.len() > 10, "the scan found the document's codes");
    for (name, status) in named {
        let code = ErrorCode::ALL
            .iter()
            .find(|c| c.as_str() == name)
            .unwrap_or_else(|| panic!("openapi names `{name}`, which the error table does not have"));
        if let Some(status) = status.filter(|s| (400..600).contains(s)) {
            assert_eq!(code.http_status(), status, "openapi documents `{name}` under {status}");
        }
    }
}
