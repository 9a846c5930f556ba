//! Recognises the one Python lambda FlowGen's editor writes for
//! `is_termination_msg` — "the content, right-stripped, ends with WORD" — and
//! turns it into a declarative [`Termination::Endswith`].
//!
//! The text is tokenized and matched against a small grammar; nothing is ever
//! evaluated. Accepted, with any parameter name, either quote style and any
//! whitespace:
//!
//! ```text
//! lambda x: x.get("content", "").rstrip().endswith("TERMINATE")
//! lambda msg: (msg.get('content') or '').rstrip().endswith('TERMINATE')
//! lambda x: x["content"].rstrip().endswith("TERMINATE")
//! lambda x: x.get("content", "") and x.get("content", "").rstrip().endswith("TERMINATE")
//! lambda x: x.get("content") is not None and x["content"].strip().endswith("DONE")
//! ```
//!
//! Pure: touches nothing.

use crate::flow::Termination;

/// The termination rule the lambda stands for, or `None` when it is not the
/// editor's pattern (the caller reports that; it is never run).
pub fn recognise(source: &str) -> Option<Termination> {
    let tokens = tokenize(source)?;
    let word = Parser::new(&tokens).lambda()?;
    if word.is_empty() {
        // `endswith("")` is true of every message: never what the editor meant.
        return None;
    }
    Some(Termination::Endswith { endswith: word, ignore_case: false })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
}

/// The editor's pattern is short and shallow; these bounds keep the
/// recursive matcher's depth and work small on any input.
const MAX_LEN: usize = 1_000;
const MAX_PARENS: usize = 16;

fn tokenize(src: &str) -> Option<Vec<Tok>> {
    if src.len() > MAX_LEN || src.matches(['(', '[']).count() > MAX_PARENS {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut ident = String::new();
            while let Some(&c) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                ident.push(c);
                chars.next();
            }
            out.push(Tok::Ident(ident));
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next()? {
                    // Escapes and string prefixes are outside the editor's pattern.
                    '\\' | '\n' => return None,
                    q if q == c => break,
                    other => text.push(other),
                }
            }
            out.push(Tok::Str(text));
        } else if "()[].,:".contains(c) {
            out.push(Tok::Punct(c));
            chars.next();
        } else {
            return None;
        }
    }
    Some(out)
}

/// Recursive descent over the tokens; every rule restores the position when
/// it fails, so alternatives can be tried in turn.
struct Parser<'t> {
    tokens: &'t [Tok],
    pos: usize,
    param: String,
}

impl<'t> Parser<'t> {
    fn new(tokens: &'t [Tok]) -> Self {
        Self { tokens, pos: 0, param: String::new() }
    }

    fn attempt<T>(&mut self, rule: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let found = rule(self);
        if found.is_none() {
            self.pos = start;
        }
        found
    }

    fn next(&mut self) -> Option<&'t Tok> {
        let tok = self.tokens.get(self.pos)?;
        self.pos += 1;
        Some(tok)
    }

    fn punct(&mut self, p: char) -> Option<()> {
        self.attempt(|s| (s.next()? == &Tok::Punct(p)).then_some(()))
    }

    fn ident(&mut self) -> Option<&'t str> {
        self.attempt(|s| match s.next()? {
            Tok::Ident(i) => Some(i.as_str()),
            _ => None,
        })
    }

    fn keyword(&mut self, word: &str) -> Option<()> {
        self.attempt(|s| (s.ident()? == word).then_some(()))
    }

    fn string(&mut self) -> Option<&'t str> {
        self.attempt(|s| match s.next()? {
            Tok::Str(t) => Some(t.as_str()),
            _ => None,
        })
    }

    fn literal(&mut self, text: &str) -> Option<()> {
        self.attempt(|s| (s.string()? == text).then_some(()))
    }

    fn end(&self) -> Option<()> {
        (self.pos == self.tokens.len()).then_some(())
    }

    /// `lambda P: BODY`, and nothing after it. Yields the word.
    fn lambda(&mut self) -> Option<String> {
        self.keyword("lambda")?;
        let param = self.ident()?;
        if param == "lambda" {
            return None;
        }
        self.param = param.to_owned();
        self.punct(':')?;
        let word = self.body()?;
        self.end()?;
        Some(word)
    }

    /// `( BODY )` or `[GUARD and] CHECK`.
    fn body(&mut self) -> Option<String> {
        if let Some(word) = self.attempt(|s| {
            s.punct('(')?;
            let word = s.body()?;
            s.punct(')')?;
            Some(word)
        }) {
            return Some(word);
        }
        if let Some(word) = self.attempt(|s| {
            s.guard()?;
            s.keyword("and")?;
            s.check()
        }) {
            return Some(word);
        }
        self.check()
    }

    /// `CONTENT [is not None]`: a guard that the content is present.
    fn guard(&mut self) -> Option<()> {
        self.content()?;
        let _ = self.attempt(|s| {
            s.keyword("is")?;
            s.keyword("not")?;
            s.keyword("None")
        });
        Some(())
    }

    /// `CONTENT.rstrip().endswith("WORD")` (`strip()` ends the same way).
    fn check(&mut self) -> Option<String> {
        self.attempt(|s| {
            s.content()?;
            s.punct('.')?;
            let strip = s.ident()?;
            if strip != "rstrip" && strip != "strip" {
                return None;
            }
            s.punct('(')?;
            s.punct(')')?;
            s.punct('.')?;
            s.keyword("endswith")?;
            s.punct('(')?;
            let word = s.string()?.to_owned();
            s.punct(')')?;
            Some(word)
        })
    }

    /// The message content: `P.get("content"[, ""])`, `P["content"]`, or
    /// `(CONTENT [or ""])`.
    fn content(&mut self) -> Option<()> {
        self.attempt(|s| {
            s.punct('(')?;
            s.content()?;
            let _ = s.attempt(|s| {
                s.keyword("or")?;
                s.literal("")
            });
            s.punct(')')
        })
        .or_else(|| {
            self.attempt(|s| {
                let param = s.param.clone();
                s.keyword(&param)?;
                s.punct('.')?;
                s.keyword("get")?;
                s.punct('(')?;
                s.literal("content")?;
                let _ = s.attempt(|s| {
                    s.punct(',')?;
                    s.literal("")
                });
                s.punct(')')
            })
        })
        .or_else(|| {
            self.attempt(|s| {
                let param = s.param.clone();
                s.keyword(&param)?;
                s.punct('[')?;
                s.literal("content")?;
                s.punct(']')
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(src: &str) -> Option<String> {
        match recognise(src)? {
            Termination::Endswith { endswith, .. } => Some(endswith),
            _ => None,
        }
    }

    #[test]
    fn the_editor_default_is_recognised() {
        assert_eq!(
            word(r#"lambda x: x.get("content", "").rstrip().endswith("TERMINATE")"#),
            Some("TERMINATE".into())
        );
    }

    #[test]
    fn quotes_whitespace_and_parameter_names_do_not_matter() {
        for src in [
            "lambda x: x.get('content', '').rstrip().endswith('TERMINATE')",
            "lambda msg:msg.get( \"content\" , \"\" ).rstrip( ).endswith( 'TERMINATE' )",
            "  lambda  m :\n  m.get('content','').rstrip().endswith(\"TERMINATE\")  ",
            "lambda message: (message.get('content') or '').rstrip().endswith('TERMINATE')",
            "lambda x: (x.get(\"content\", \"\")).rstrip().endswith(\"TERMINATE\")",
            "lambda x: x[\"content\"].rstrip().endswith(\"TERMINATE\")",
            "lambda x: x.get(\"content\").strip().endswith(\"TERMINATE\")",
            "lambda x: (x.get(\"content\", \"\").rstrip().endswith(\"TERMINATE\"))",
        ] {
            assert_eq!(word(src), Some("TERMINATE".into()), "{src}");
        }
    }

    #[test]
    fn a_presence_guard_before_the_check_is_recognised() {
        for src in [
            r#"lambda x: x.get("content", "") and x.get("content", "").rstrip().endswith("TERMINATE")"#,
            r#"lambda x: x.get("content") is not None and x["content"].rstrip().endswith("TERMINATE")"#,
            r#"lambda x: x.get("content") and (x.get("content") or "").rstrip().endswith("TERMINATE")"#,
        ] {
            assert_eq!(word(src), Some("TERMINATE".into()), "{src}");
        }
    }

    #[test]
    fn the_word_is_whatever_the_editor_wrote() {
        assert_eq!(word("lambda x: x.get('content', '').rstrip().endswith('DONE!')"), Some("DONE!".into()));
    }

    #[test]
    fn anything_else_is_not_recognised() {
        for src in [
            "",
            "TERMINATE",
            "lambda x: True",
            r#"lambda x: "TERMINATE" in x.get("content", "")"#,
            r#"lambda x: x.get("content", "").endswith("TERMINATE")"#,
            r#"lambda x: x.get("content", "").rstrip().endswith("")"#,
            r#"lambda x: x.get("content", "").rstrip().startswith("TERMINATE")"#,
            r#"lambda x: x.get("text", "").rstrip().endswith("TERMINATE")"#,
            r#"lambda x: x.get("content", "x").rstrip().endswith("TERMINATE")"#,
            r#"lambda x: y.get("content", "").rstrip().endswith("TERMINATE")"#,
            r#"lambda x: x.get("content", "").rstrip().endswith("TERMINATE") or True"#,
            r#"lambda x: x.get("content", "").rstrip().endswith("TERM\"INATE")"#,
            r#"lambda x: x.get("content", "").rstrip().endswith(f"TERMINATE")"#,
            r#"lambda x: __import__("os").system("rm -rf /")"#,
            r#"lambda x: x.get("content", "").rstrip().endswith("TERMINATE"); import os"#,
            r#"lambda x: x.get("content", "").rstrip().endswith("TERMINATE")  # done"#,
            r#"lambda: x.get("content", "").rstrip().endswith("TERMINATE")"#,
        ] {
            assert_eq!(recognise(src), None, "{src}");
        }
    }

    #[test]
    fn huge_or_deeply_nested_input_is_refused() {
        let deep = format!("lambda x: {}x{}", "(".repeat(100_000), ")".repeat(100_000));
        let long = format!("lambda x: x.get('content', '').rstrip().endswith('{}')", "A".repeat(2_000));
        for src in [deep, long] {
            assert_eq!(recognise(&src), None);
        }
    }
}
