//! Tokeniser for the ftrack query language (ftrack-api.md §4).
//!
//! Kept separate from the parser so that quoting rules (both quote styles, backslash
//! escapes of `"`, `'` and `\` inside either, a closing quote directly followed by
//! `and`) live in one place. Linear, never panics.

use std::iter::Peekable;
use std::str::CharIndices;

/// A token with its byte offset in the expression (for error messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Tok,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Identifier, keyword, dotted path or bare value (uuid, number, True, None…).
    Word(String),
    /// A quoted string (either quote style), without the quotes.
    Str(String),
    LParen,
    RParen,
    Comma,
    /// `=`, `!=`, `<`, `>`, `<=`, `>=`.
    Sym(&'static str),
}

fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"' | '\'' | '=' | '!' | '<' | '>')
}

/// The rest of a string literal opened by `quote` at `start`, without the quotes.
///
/// A backslash escapes `"`, `'` or another backslash, in either quote style, as ftrack's
/// own JavaScript client writes values (README, query language). A backslash before
/// anything else is refused rather than guessed at: ftrack documents no other escape.
fn string_literal(
    it: &mut Peekable<CharIndices<'_>>,
    quote: char,
    start: usize,
) -> Result<String, String> {
    let mut s = String::new();
    // Whether the literal so far ends in an escaped quote of its own kind: then a missing
    // closing quote is most likely one that was escaped by mistake.
    let mut ends_in_escaped_quote = false;
    while let Some((at, ch)) = it.next() {
        if ch == quote {
            return Ok(s);
        }
        ends_in_escaped_quote = false;
        if ch != '\\' {
            s.push(ch);
            continue;
        }
        match it.next() {
            Some((_, e @ ('"' | '\'' | '\\'))) => {
                ends_in_escaped_quote = e == quote;
                s.push(e);
            }
            Some((_, other)) => {
                return Err(format!(
                    "unknown escape: a backslash before {other:?} at character {at}, in the string starting at character {start}; inside quotes a backslash escapes only \\\", \\' and \\\\ (write \\\\ for a backslash)"
                ))
            }
            None => {
                return Err(format!(
                    "unterminated string starting at character {start}: it ends in a lone backslash (write \\\\ for a backslash), then add the closing {quote}"
                ))
            }
        }
    }
    let hint = if ends_in_escaped_quote {
        format!(" (the \\{quote} at its end is an escaped quote, not the closing one)")
    } else {
        String::new()
    };
    Err(format!(
        "unterminated string starting at character {start}: add the closing {quote}{hint}"
    ))
}

/// Split `input` into tokens, or explain the first character that cannot start one.
pub fn lex(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut it = input.char_indices().peekable();
    while let Some(&(pos, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
            continue;
        }
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(kind) = simple {
            it.next();
            out.push(Token { kind, pos });
            continue;
        }
        match c {
            '"' | '\'' => {
                it.next();
                let s = string_literal(&mut it, c, pos)?;
                out.push(Token {
                    kind: Tok::Str(s),
                    pos,
                });
            }
            '=' => {
                it.next();
                out.push(Token {
                    kind: Tok::Sym("="),
                    pos,
                });
            }
            '!' | '<' | '>' => {
                it.next();
                let eq = matches!(it.peek(), Some(&(_, '=')));
                if eq {
                    it.next();
                }
                let sym = match (c, eq) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => {
                        return Err(format!(
                            "unexpected '!' at character {pos}: did you mean '!=' or is_not?"
                        ))
                    }
                };
                out.push(Token {
                    kind: Tok::Sym(sym),
                    pos,
                });
            }
            _ => {
                let mut w = String::new();
                while let Some(&(_, ch)) = it.peek() {
                    if is_delim(ch) {
                        break;
                    }
                    w.push(ch);
                    it.next();
                }
                out.push(Token {
                    kind: Tok::Word(w),
                    pos,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn quotes_and_glued_keywords() {
        assert_eq!(
            kinds(r#"(k is "a"and v is 'b')"#),
            vec![
                Tok::LParen,
                Tok::Word("k".into()),
                Tok::Word("is".into()),
                Tok::Str("a".into()),
                Tok::Word("and".into()),
                Tok::Word("v".into()),
                Tok::Word("is".into()),
                Tok::Str("b".into()),
                Tok::RParen
            ]
        );
    }

    #[test]
    fn symbols_and_bare_values() {
        assert_eq!(
            kinds("a>=1 b!=x-y c<d e=5.5"),
            vec![
                Tok::Word("a".into()),
                Tok::Sym(">="),
                Tok::Word("1".into()),
                Tok::Word("b".into()),
                Tok::Sym("!="),
                Tok::Word("x-y".into()),
                Tok::Word("c".into()),
                Tok::Sym("<"),
                Tok::Word("d".into()),
                Tok::Word("e".into()),
                Tok::Sym("="),
                Tok::Word("5.5".into()),
            ]
        );
    }

    #[test]
    fn errors() {
        assert!(lex("name is \"abc").is_err());
        assert!(lex("a ! b").is_err());
    }

    #[test]
    fn backslash_escapes_quotes_and_itself_in_both_quote_styles() {
        let want = Tok::Str(r#"o"brien's\x"#.into());
        assert_eq!(kinds(r#""o\"brien's\\x""#), vec![want.clone()]);
        assert_eq!(kinds(r#""o\"brien\'s\\x""#), vec![want.clone()]);
        assert_eq!(kinds(r#"'o"brien\'s\\x'"#), vec![want.clone()]);
        assert_eq!(kinds(r#"'o\"brien\'s\\x'"#), vec![want]);
        // An escaped quote does not close the string; the next quote does.
        assert_eq!(
            kinds(r#"a is "x\" or a is \"y" and"#),
            vec![
                Tok::Word("a".into()),
                Tok::Word("is".into()),
                Tok::Str(r#"x" or a is "y"#.into()),
                Tok::Word("and".into()),
            ]
        );
        assert_eq!(kinds(r#""\\""#), vec![Tok::Str("\\".into())]);
        assert_eq!(kinds(r#"'\\\''"#), vec![Tok::Str("\\'".into())]);
    }

    #[test]
    fn malformed_escapes_are_explained() {
        let err = lex(r#"name is "a\x""#).unwrap_err();
        assert!(err.contains("unknown escape"), "{err}");
        assert!(err.contains("'x'"), "{err}");
        assert!(err.contains("at character 10"), "{err}");
        assert!(err.contains(r"write \\ for a backslash"), "{err}");
        // No escape other than the quotes and the backslash: not \n, not LIKE's \%.
        assert!(lex(r#"name is "a\n""#).is_err());
        assert!(lex(r#"name like "50\%""#).is_err());
        // A quote escaped at the end leaves the string open, and says so.
        let err = lex(r#"name is "abc\""#).unwrap_err();
        assert!(
            err.contains("unterminated string starting at character 8"),
            "{err}"
        );
        assert!(err.contains("escaped quote"), "{err}");
        let err = lex(r#"name is 'abc\'"#).unwrap_err();
        assert!(err.contains("escaped quote"), "{err}");
        // A lone backslash at the very end.
        let err = lex(r#"name is "abc\"#).unwrap_err();
        assert!(err.contains("lone backslash"), "{err}");
        // An escaped quote of the other kind is no reason for the hint.
        let err = lex(r#"name is "abc\'"#).unwrap_err();
        assert!(!err.contains("escaped quote"), "{err}");
    }
}
