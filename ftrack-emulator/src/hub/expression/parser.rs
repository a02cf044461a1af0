//! Recursive-descent parser for hub expressions (grammar in the parent module). Reads
//! bytes with one position; every token character is ASCII, so slicing at token
//! boundaries stays on `char` boundaries. Never panics; nesting is capped at
//! [`MAX_DEPTH`](super::MAX_DEPTH).

use super::{Expr, Op, ParseError, MAX_DEPTH};

/// Parse `text` into an expression. Empty or blank text is an error (the official Python
/// client crashes on it, so no server can be relied on to accept it).
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error("the expression is empty"));
    }
    let expr = p.or()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error("expected `and`, `or` or the end of the expression"));
    }
    Ok(expr)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn is_value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_,./*@+".contains(&b)
}

/// Characters that continue a word, so that `notes` or `order` are not keywords
/// (pyparsing's keyword rule: letters, digits, `_` and `$`).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            position: self.pos,
            message: message.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// The keyword at the current position (after whitespace), without consuming it.
    fn keyword(&mut self) -> Option<(Keyword, usize)> {
        self.skip_ws();
        let rest = self.bytes.get(self.pos..)?;
        for (word, kw) in [
            (&b"and"[..], Keyword::And),
            (&b"or"[..], Keyword::Or),
            (&b"not"[..], Keyword::Not),
        ] {
            let Some(head) = rest.get(..word.len()) else {
                continue;
            };
            let boundary = rest.get(word.len()).is_none_or(|b| !is_word_byte(*b));
            if head.eq_ignore_ascii_case(word) && boundary {
                return Some((kw, word.len()));
            }
        }
        None
    }

    fn eat_keyword(&mut self, want: Keyword) -> bool {
        match self.keyword() {
            Some((kw, len)) if kw == want => {
                self.pos += len;
                true
            }
            _ => false,
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "parentheses and `not` nest deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.and()?];
        while self.eat_keyword(Keyword::Or) {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.unary()?];
        while self.eat_keyword(Keyword::And) {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_keyword(Keyword::Not) {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.skip_ws();
        if self.peek() == Some(b'(') {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.skip_ws();
            if self.peek() != Some(b')') {
                return Err(self.error("expected `)`"));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, ParseError> {
        if let Some((kw, _)) = self.keyword() {
            let word = match kw {
                Keyword::And => "and",
                Keyword::Or => "or",
                Keyword::Not => "not",
            };
            return Err(self.error(format!("expected a key, found the keyword `{word}`")));
        }
        let key = self.key()?;
        self.skip_ws();
        let op = self.op()?;
        self.skip_ws();
        let value = self.value()?;
        Ok(Expr::Cond { key, op, value })
    }

    fn key(&mut self) -> Result<Vec<String>, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
            Some(_) => {
                return Err(self
                    .error("expected a key (a letter or `_`, then letters, digits, `_` and dots)"))
            }
            None => return Err(self.error("expected a key, found the end of the expression")),
        }
        while self.peek().is_some_and(is_key_byte) {
            self.pos += 1;
        }
        let text = self.text.get(start..self.pos).unwrap_or_default();
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            self.pos = start;
            return Err(self.error(format!("the key `{text}` has an empty part")));
        }
        Ok(parts)
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        let two = self.bytes.get(self.pos..self.pos + 2);
        let (op, len) = match (self.peek(), two) {
            (_, Some(b"!=")) => (Op::Ne, 2),
            (_, Some(b">=")) => (Op::Ge, 2),
            (_, Some(b"<=")) => (Op::Le, 2),
            (Some(b'='), _) => (Op::Eq, 1),
            (Some(b'>'), _) => (Op::Gt, 1),
            (Some(b'<'), _) => (Op::Lt, 1),
            _ => return Err(self.error("expected an operator: = != >= <= > <")),
        };
        self.pos += len;
        Ok(op)
    }

    fn value(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => {
                            self.pos = start;
                            return Err(self.error("the quoted value is not closed"));
                        }
                        Some(b) if b == q => break,
                        Some(b'\\') => {
                            return Err(self.error(
                                "a backslash in a quoted value is refused (clients disagree on its meaning)",
                            ))
                        }
                        Some(b'\n' | b'\r') => {
                            return Err(self.error("a quoted value cannot span lines"))
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                let inner = self.text.get(start + 1..self.pos).unwrap_or_default();
                self.pos += 1;
                if inner.is_empty() {
                    self.pos = start;
                    return Err(self.error(
                        "an empty quoted value is refused (the official Python client crashes on it)",
                    ));
                }
                Ok(inner.to_string())
            }
            Some(b) if is_value_byte(b) => {
                while self.peek().is_some_and(is_value_byte) {
                    self.pos += 1;
                }
                Ok(self
                    .text
                    .get(start..self.pos)
                    .unwrap_or_default()
                    .to_string())
            }
            _ => Err(self.error(
                "expected a value: letters, digits and - _ , . / * @ +, or a quoted string",
            )),
        }
    }
}
