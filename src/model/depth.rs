//! The nesting bound on client JSON: a body, query or WebSocket frame nested
//! deeper than [`MAX_JSON_DEPTH`] is refused at the edge (422
//! `invalid_request` naming the top-level field), before it is parsed, so
//! nothing that deep is ever stored (serde_json itself stops at 128 levels,
//! and a stored record wraps a client value in a few more).
//!
//! Pure: scans bytes, touches nothing.

use super::ClientError;

/// The deepest nesting of arrays and objects a client value may have (the
/// document itself is level 1).
pub const MAX_JSON_DEPTH: usize = 32;

/// Refuses JSON text nested deeper than [`MAX_JSON_DEPTH`]; `param` names the
/// top-level field that holds the deep value (`body` when the document is not
/// an object). Text that is not JSON passes: the parser reports it.
pub fn check_json_depth(bytes: &[u8]) -> Result<(), ClientError> {
    match deepest_field(bytes, MAX_JSON_DEPTH) {
        None => Ok(()),
        Some(field) => {
            Err(ClientError::invalid(&field, format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")))
        }
    }
}

/// The top-level field (or `body`) where nesting first passes `max`, if it does.
fn deepest_field(bytes: &[u8], max: usize) -> Option<String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    let mut last_string: Option<(usize, usize)> = None;
    let mut key: Option<(usize, usize)> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    if depth == 1 {
                        last_string = Some((start, i));
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                start = i + 1;
            }
            b':' if depth == 1 => key = last_string,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                    let name = key
                        .filter(|_| object)
                        .map(|(s, e)| String::from_utf8_lossy(&bytes[s..e]).into_owned());
                    return Some(name.unwrap_or_else(|| "body".to_owned()));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn a_value_at_the_bound_passes_and_one_level_more_names_its_field() {
        let ok = format!("{{\"a\": 1, \"metadata\": {}}}", nested(MAX_JSON_DEPTH - 1));
        assert!(check_json_depth(ok.as_bytes()).is_ok());
        let deep = format!("{{\"a\": \"x:{{[\", \"metadata\": {}}}", nested(MAX_JSON_DEPTH));
        let err = check_json_depth(deep.as_bytes()).unwrap_err();
        assert_eq!(err.details["param"], "metadata");
    }

    #[test]
    fn a_deep_array_document_names_the_body_and_strings_do_not_count() {
        assert_eq!(check_json_depth(nested(200).as_bytes()).unwrap_err().details["param"], "body");
        let quoted = format!("{{\"s\": \"{}\"}}", "[".repeat(100));
        assert!(check_json_depth(quoted.as_bytes()).is_ok());
        let escaped = format!("{{\"s\": \"\\\"{}\"}}", "[".repeat(100));
        assert!(check_json_depth(escaped.as_bytes()).is_ok());
    }
}
