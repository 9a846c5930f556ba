//! Reading `static/openapi.json`: its operations, local `$ref`s, responses, and
//! a small structural check of a JSON value against one of its schemas.
//!
//! The check covers the keywords the document uses (`$ref`, `type`, `const`,
//! `enum`, `required`, `properties`, `additionalProperties`, `items`, `allOf`,
//! `anyOf`, `oneOf`): enough to catch a renamed, missing or retyped field in a
//! live answer. It is not a general JSON Schema validator.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The document's path on disk.
pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/static/openapi.json");

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The file's text, as it is on disk now.
pub fn text() -> String {
    std::fs::read_to_string(PATH).expect("static/openapi.json is readable")
}

/// One operation of the document.
pub struct Operation<'a> {
    /// Upper-case method, as in `ROUTES`.
    pub method: String,
    /// The path template.
    pub path: &'a str,
    /// The path item (for path-level parameters).
    pub item: &'a Value,
    /// The operation object.
    pub op: &'a Value,
}

/// The parsed document.
pub struct Doc {
    /// The whole document.
    pub root: Value,
}

impl Doc {
    /// Parses the file.
    pub fn load() -> Doc {
        let root = serde_json::from_str(&text()).expect("static/openapi.json is JSON");
        Doc { root }
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let paths = self.root["paths"].as_object().expect("`paths` is an object");
        let mut ops = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(*method) {
                    ops.push(Operation { method: method.to_uppercase(), path, item, op });
                }
            }
        }
        ops
    }

    /// The operation for a route; panics when it is not documented.
    pub fn operation(&self, method: &str, path: &str) -> &Value {
        let op = &self.root["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        op
    }

    /// The target of a local `$ref` (`#/…`), if it resolves.
    pub fn target(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// Follows `$ref`s until an object without one.
    pub fn resolve<'v>(&'v self, mut value: &'v Value) -> &'v Value {
        for _ in 0..32 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(r) => value = self.target(r).unwrap_or_else(|| panic!("unresolved $ref {r}")),
                None => return value,
            }
        }
        panic!("a $ref cycle")
    }

    /// The documented response of an operation for a status, resolved.
    pub fn response<'v>(&'v self, op: &'v Value, status: u16) -> Option<&'v Value> {
        op["responses"].get(status.to_string()).map(|r| self.resolve(r))
    }

    /// The documented statuses of an operation.
    pub fn statuses(&self, op: &Value) -> BTreeSet<String> {
        op["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    }

    /// Problems found checking `value` against `schema` (empty: it fits).
    pub fn check(&self, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        let schema = self.resolve(schema);
        let mut out = Vec::new();
        if let Some(t) = schema.get("type")
            && !type_fits(t, value)
        {
            out.push(format!("{at}: expected type {t}, got {value}"));
            return out;
        }
        if schema.get("const").is_some_and(|c| c != value) {
            out.push(format!("{at}: expected {}, got {value}", schema["const"]));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            out.push(format!("{at}: {value} is not one of {}", schema["enum"]));
        }
        for sub in list(schema, "allOf") {
            out.extend(self.check(sub, value, at));
        }
        if let Some(subs) = schema.get("anyOf").and_then(Value::as_array)
            && !subs.iter().any(|s| self.check(s, value, at).is_empty())
        {
            out.push(format!("{at}: matches no branch of anyOf: {value}"));
        }
        if let Some(branch) = self.discriminated(schema, value) {
            out.extend(self.check(branch, value, at));
        } else if let Some(subs) = schema.get("oneOf").and_then(Value::as_array) {
            let fits: Vec<_> = subs.iter().map(|s| self.check(s, value, at)).collect();
            let matched = fits.iter().filter(|f| f.is_empty()).count();
            if matched != 1 {
                let why = fits.iter().flatten().take(6).cloned().collect::<Vec<_>>().join("; ");
                out.push(format!("{at}: matches {matched} branches of oneOf (want 1): {why}"));
            }
        }
        if let Some(object) = value.as_object() {
            out.extend(self.check_object(schema, object, at));
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                out.extend(self.check(items, item, &format!("{at}[{i}]")));
            }
        }
        out
    }

    /// The branch a `discriminator` mapping picks for `value`, if any.
    fn discriminated<'v>(&'v self, schema: &'v Value, value: &Value) -> Option<&'v Value> {
        let discriminator = schema.get("discriminator")?;
        let tag = value.get(discriminator["propertyName"].as_str()?)?.as_str()?;
        self.target(discriminator["mapping"].get(tag)?.as_str()?)
    }

    fn check_object(&self, schema: &Value, object: &Map<String, Value>, at: &str) -> Vec<String> {
        let mut out = Vec::new();
        for key in list(schema, "required").filter_map(Value::as_str) {
            if !object.contains_key(key) {
                out.push(format!("{at}: missing required `{key}`"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, v) in object {
            let at = format!("{at}.{key}");
            match (properties.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                (Some(s), _) => out.extend(self.check(s, v, &at)),
                (None, Some(Value::Bool(false))) => out.push(format!("{at}: not allowed here")),
                (None, Some(s @ Value::Object(_))) => out.extend(self.check(s, v, &at)),
                (None, _) => {}
            }
        }
        out
    }
}

fn list<'v>(schema: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    schema.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn type_fits(t: &Value, value: &Value) -> bool {
    let fits = |name: &str| match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    match t {
        Value::String(name) => fits(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(fits),
        _ => false,
    }
}

/// Every `$ref` string in a value, with where it sits; discriminator
/// mappings count too.
pub fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{at}/{key}");
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push((here, r.clone())),
                    ("mapping", Value::Object(m)) if at.ends_with("/discriminator") => {
                        out.extend(
                            m.values().filter_map(Value::as_str).map(|r| (here.clone(), r.to_owned())),
                        );
                    }
                    _ => refs(v, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}
