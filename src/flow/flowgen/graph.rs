//! The React Flow graph as FlowGen and Agentok save it: nodes, edges, the
//! issue report the importers fill, and the few queries they need.
//!
//! Lenient about what the engine never reads (positions, styles, handles),
//! exact about ids and value types. Pure: touches nothing.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::flow::FlowIssue;

/// Problems (which make the import fail) and warnings (which do not).
#[derive(Debug, Default)]
pub(super) struct Report {
    pub issues: Vec<FlowIssue>,
    pub warnings: Vec<FlowIssue>,
}

impl Report {
    pub fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(FlowIssue::new(path, message));
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FlowIssue::new(path, message));
    }
}

/// One node: `{id, type, data, parentId?, …}`.
#[derive(Debug, Deserialize)]
pub(super) struct Node {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    /// Agentok nests group members with `parentId` (older React Flow:
    /// `parentNode`).
    #[serde(default, rename = "parentId", alias = "parentNode")]
    pub parent: Option<String>,
}

/// One edge: `{id, source, target, type?, data?}`.
#[derive(Debug, Deserialize)]
pub(super) struct Edge {
    #[serde(default)]
    pub id: Option<String>,
    pub source: String,
    pub target: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    /// Position in the `edges` array, for paths of edges without an id.
    #[serde(skip)]
    pub index: usize,
}

/// The parsed graph.
#[derive(Debug)]
pub(super) struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// The `name` of a FlowGen flow record wrapping the graph, if any.
    pub record_name: Option<String>,
}

/// The object holding `nodes` and `edges`: the body itself, or the `flow` of a
/// FlowGen flow record (`{"name", "flow": {"nodes", "edges"}, …}`).
pub(super) fn graph_body(value: &Value) -> Option<(&Map<String, Value>, Option<&str>)> {
    let object = value.as_object()?;
    let is_body = |o: &Map<String, Value>| {
        o.get("nodes").is_some_and(Value::is_array) && o.get("edges").is_some_and(Value::is_array)
    };
    if is_body(object) {
        return Some((object, None));
    }
    let inner = object.get("flow")?.as_object()?;
    is_body(inner).then(|| (inner, object.get("name").and_then(Value::as_str)))
}

impl Graph {
    /// Parses `nodes` and `edges`, reporting each malformed one.
    pub fn parse(body: &Map<String, Value>, record_name: Option<&str>, r: &mut Report) -> Self {
        let items = |key: &str| body.get(key).and_then(Value::as_array).cloned();
        let mut nodes: Vec<Node> = Vec::new();
        let mut ids = HashSet::new();
        for (i, v) in items("nodes").unwrap_or_default().iter().enumerate() {
            match Node::deserialize(v) {
                Ok(node) if !ids.insert(node.id.clone()) => {
                    r.issue(node.at(), "duplicate node id");
                }
                Ok(node) => nodes.push(node),
                Err(e) => r.issue(format!("nodes[#{i}]"), format!("not a node: {e}")),
            }
        }
        let mut edges = Vec::new();
        for (i, v) in items("edges").unwrap_or_default().iter().enumerate() {
            match Edge::deserialize(v).map(|e| Edge { index: i, ..e }) {
                Ok(edge) if !ids.contains(&edge.source) || !ids.contains(&edge.target) => {
                    r.warn(edge.at(), "connects a node that is not in the graph; ignored");
                }
                Ok(edge) => edges.push(edge),
                Err(e) => r.issue(format!("edges[#{i}]"), format!("not an edge: {e}")),
            }
        }
        Self { nodes, edges, record_name: record_name.map(str::to_owned) }
    }

    /// Nodes (in node order) with an edge into `id`.
    pub fn sources_into(&self, id: &str) -> Vec<&Node> {
        self.nodes.iter().filter(|n| self.edges.iter().any(|e| e.source == n.id && e.target == id)).collect()
    }

    /// Nodes (in node order) an edge from `id` points to.
    pub fn targets_of(&self, id: &str) -> Vec<&Node> {
        self.nodes.iter().filter(|n| self.edges.iter().any(|e| e.source == id && e.target == n.id)).collect()
    }

    /// Whether any edge leaves `id`.
    pub fn is_source(&self, id: &str) -> bool {
        self.edges.iter().any(|e| e.source == id)
    }

    /// The nodes of a type, in node order.
    pub fn of_kind<'g>(&'g self, kind: &'g str) -> impl Iterator<Item = &'g Node> + 'g {
        self.nodes.iter().filter(move |n| n.kind == kind)
    }
}

impl Edge {
    /// `edges[<id>]`, or `edges[#<index>]` for an edge without an id.
    pub fn at(&self) -> String {
        match &self.id {
            Some(id) => format!("edges[{id}]"),
            None => format!("edges[#{}]", self.index),
        }
    }

    /// `edges[<id>].data.<key>`
    pub fn field(&self, key: &str) -> String {
        format!("{}.data.{key}", self.at())
    }

    /// A data field, `null` counting as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.as_ref()?.get(key).filter(|v| !v.is_null())
    }
}

impl Node {
    /// `nodes[<id>]`
    pub fn at(&self) -> String {
        format!("nodes[{}]", self.id)
    }

    /// `nodes[<id>].data.<key>`
    pub fn field(&self, key: &str) -> String {
        format!("nodes[{}].data.{key}", self.id)
    }

    /// A data field, `null` counting as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.as_ref()?.get(key).filter(|v| !v.is_null())
    }

    /// A string field; anything else is reported.
    pub fn text(&self, key: &str, r: &mut Report) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                r.issue(self.field(key), "must be a string");
                None
            }
        }
    }

    /// A string field that is not blank.
    pub fn nonblank(&self, key: &str, r: &mut Report) -> Option<String> {
        self.text(key, r).filter(|s| !s.trim().is_empty())
    }

    /// A boolean field; anything else is reported.
    pub fn flag(&self, key: &str, r: &mut Report) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                r.issue(self.field(key), "must be true or false");
                None
            }
        }
    }

    /// A count: a non-negative integer (the editor may store it as a string of
    /// digits); anything else is reported.
    pub fn count(&self, key: &str, r: &mut Report) -> Option<u32> {
        let value = self.get(key)?;
        let parsed = match value {
            Value::Number(n) => {
                n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
            }
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match parsed.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                r.issue(self.field(key), "must be a whole number, 0 or more");
                None
            }
        }
    }
}
