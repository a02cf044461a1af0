//! Tokeniser for the ftrack query language (ftrack-api.md §4).
//!
//! Kept separate from the parser so that quoting rules (both quote styles, no escapes,
//! a closing quote directly followed by `and`) live in one place. Linear, never panics.

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
                let mut s = String::new();
                let mut closed = false;
                for (_, ch) in it.by_ref() {
                    if ch == c {
                        closed = true;
                        break;
                    }
                    s.push(ch);
                }
                if !closed {
                    return Err(format!(
                        "unterminated string starting at character {pos}: add the closing {c}"
                    ));
                }
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
}
