//! The layering holds: every `crate::` path a module uses names a module of a
//! lower layer (the table in `src/lib.rs` and the README), so the module graph
//! has no cycles and the transports never import each other.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module's layer; a module may use only lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("flow", 0),
    ("metrics", 0),
    ("config", 1),
    ("store", 2),
    ("bus", 2),
    ("ledger", 3),
    ("engine", 4),
    ("auth", 5),
    ("backends", 5),
    ("service", 6),
    ("http", 7),
    ("api", 8),
    ("realtime", 8),
    ("app", 9),
];

fn layer(module: &str) -> u8 {
    LAYERS.iter().find(|(m, _)| *m == module).unwrap_or_else(|| panic!("module `{module}` has no layer")).1
}

/// Every `(from, to)` edge of `crate::to` in the code (comments aside) of the
/// library's modules.
fn edges() -> BTreeSet<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeSet::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if rel != "bin" {
                    stack.push(path);
                }
                continue;
            }
            if !rel.ends_with(".rs") || rel == "main.rs" || rel == "lib.rs" {
                continue;
            }
            let from = rel.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (i, _) in line.match_indices("crate::") {
                    let to: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !to.is_empty() && to != from {
                        found.insert((from.clone(), to, rel.clone()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let edges = edges();
    assert!(edges.len() > 20, "the scan found the modules' edges: {edges:?}");
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(from, to, _)| layer(to) >= layer(from))
        .map(|(from, to, file)| {
            format!("{file}: {from} (layer {}) uses {to} (layer {})", layer(from), layer(to))
        })
        .collect();
    assert!(wrong.is_empty(), "edges the layering does not allow:\n{}", wrong.join("\n"));
}

#[test]
fn every_module_of_the_crate_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(module) = line.strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')) {
            layer(module);
        }
    }
}
