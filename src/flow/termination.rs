//! Declarative termination rules: which message ends a conversation.
//!
//! `{"contains": "TERMINATE"}`, `{"endswith": "…"}`, `{"equals": "…"}`, each with
//! an optional `"ignore_case": true`, `{"exactly": "…"}` (AutoGen's default rule:
//! no trimming, case-sensitive), combined with `{"any": [...]}` and
//! `{"all": [...]}`. `endswith` right-strips the content first, as FlowGen's
//! editor lambda (`x.get("content", "").rstrip().endswith("TERMINATE")`) does.

use serde::{Deserialize, Serialize};

use super::FlowIssue;

/// A termination rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Termination {
    /// The content contains the text.
    Contains {
        /// The text.
        contains: String,
        /// Compare without case.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ignore_case: bool,
    },
    /// The right-stripped content ends with the text.
    Endswith {
        /// The text.
        endswith: String,
        /// Compare without case.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ignore_case: bool,
    },
    /// The trimmed content equals the text.
    Equals {
        /// The text.
        equals: String,
        /// Compare without case.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ignore_case: bool,
    },
    /// The content is exactly the text: no trimming, case-sensitive
    /// (AutoGen's default `is_termination_msg` with `TERMINATE`).
    Exactly {
        /// The text.
        exactly: String,
    },
    /// Any of the rules matches.
    Any {
        /// The rules.
        any: Vec<Termination>,
    },
    /// Every one of the rules matches.
    All {
        /// The rules.
        all: Vec<Termination>,
    },
}

fn fold(s: &str, ignore_case: bool) -> String {
    if ignore_case { s.to_lowercase() } else { s.to_owned() }
}

impl Termination {
    /// AutoGen 0.2's default rule: the content is exactly `TERMINATE`.
    pub fn autogen_default() -> Self {
        Termination::Exactly { exactly: "TERMINATE".to_owned() }
    }

    /// Whether a message with this content ends the conversation.
    pub fn matches(&self, content: &str) -> bool {
        match self {
            Termination::Contains { contains, ignore_case } => {
                fold(content, *ignore_case).contains(&fold(contains, *ignore_case))
            }
            Termination::Endswith { endswith, ignore_case } => {
                fold(content.trim_end(), *ignore_case).ends_with(&fold(endswith, *ignore_case))
            }
            Termination::Equals { equals, ignore_case } => {
                fold(content.trim(), *ignore_case) == fold(equals, *ignore_case)
            }
            Termination::Exactly { exactly } => content == exactly,
            Termination::Any { any } => any.iter().any(|t| t.matches(content)),
            Termination::All { all } => all.iter().all(|t| t.matches(content)),
        }
    }

    pub(super) fn validate(&self, path: &str, issues: &mut Vec<FlowIssue>) {
        match self {
            Termination::Contains { contains: s, .. }
            | Termination::Endswith { endswith: s, .. }
            | Termination::Equals { equals: s, .. }
            | Termination::Exactly { exactly: s }
                if s.is_empty() =>
            {
                issues.push(FlowIssue::new(path, "the text to match must not be empty"))
            }
            Termination::Any { any: rules } | Termination::All { all: rules } => {
                if rules.is_empty() {
                    issues.push(FlowIssue::new(path, "needs at least one rule"));
                }
                for (i, r) in rules.iter().enumerate() {
                    r.validate(&format!("{path}[{i}]"), issues);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Termination {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn contains_endswith_and_equals_match_as_named() {
        assert!(rule(r#"{"contains":"TERMINATE"}"#).matches("ok. TERMINATE now"));
        assert!(!rule(r#"{"contains":"TERMINATE"}"#).matches("terminate"));
        assert!(rule(r#"{"contains":"TERMINATE","ignore_case":true}"#).matches("terminate"));
        assert!(rule(r#"{"endswith":"TERMINATE"}"#).matches("done TERMINATE \n"));
        assert!(!rule(r#"{"endswith":"TERMINATE"}"#).matches("TERMINATE done"));
        assert!(rule(r#"{"equals":"bye"}"#).matches("  bye "));
    }

    #[test]
    fn exactly_matches_the_whole_content_without_trimming_or_case_folding() {
        let r = rule(r#"{"exactly":"TERMINATE"}"#);
        assert_eq!(r, Termination::autogen_default());
        assert!(r.matches("TERMINATE"));
        assert!(!r.matches("TERMINATE "));
        assert!(!r.matches("terminate"));
        assert!(!r.matches("Done. TERMINATE"));
    }

    #[test]
    fn any_and_all_combine_rules() {
        let r = rule(r#"{"any":[{"equals":"bye"},{"all":[{"contains":"a"},{"contains":"b"}]}]}"#);
        assert!(r.matches("bye"));
        assert!(r.matches("ab"));
        assert!(!r.matches("a"));
    }
}
