//! ftrack's subscription expressions (`topic=ftrack.action.launch and data.actionIdentifier=x`),
//! parsed once and matched against events (a subscription) or subscriber metadata (an event's
//! `target`). The hub delivers each event once per connection, so the client decides which of
//! its subscriptions an event is for, as the official clients do.
//!
//! The language: `key op value` with `= != >= <= > <`; dotted keys into nested objects (a
//! missing key never matches, not even `!=`); values bare (`[A-Za-z0-9-_,./*@+]+`) or quoted;
//! `and`, `or`, `not` and parentheses, keywords in any case. Values compare as strings; a
//! trailing `*` on a bare value is a prefix test (the JavaScript client's reading; the Python
//! client tests for a substring, which matches more).

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    Condition { key: String, op: Op, value: String },
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
    Not(Box<Expression>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Expression {
    /// Parses `text`; the error says where it stopped making sense.
    pub fn parse(text: &str) -> Result<Expression, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let expression = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(expression),
            Some(token) => Err(format!(
                "`{text}`: unexpected {token:?} after a whole expression"
            )),
        }
    }

    /// Whether `value` (an event, or a subscriber's metadata) satisfies the expression.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Expression::Condition {
                key,
                op,
                value: wanted,
            } => {
                let found = key.split('.').try_fold(value, |v, part| v.get(part));
                let Some(found) = found else {
                    return false;
                };
                let found = match found {
                    Value::String(s) => s.clone(),
                    Value::Null => return false,
                    other => other.to_string(),
                };
                compare(&found, *op, wanted)
            }
            Expression::And(a, b) => a.matches(value) && b.matches(value),
            Expression::Or(a, b) => a.matches(value) || b.matches(value),
            Expression::Not(a) => !a.matches(value),
        }
    }
}

fn compare(found: &str, op: Op, wanted: &str) -> bool {
    if let (Op::Eq | Op::Ne, Some(prefix)) = (op, wanted.strip_suffix('*')) {
        let hit = found.starts_with(prefix);
        return (op == Op::Eq) == hit;
    }
    match op {
        Op::Eq => found == wanted,
        Op::Ne => found != wanted,
        Op::Ge => found >= wanted,
        Op::Le => found <= wanted,
        Op::Gt => found > wanted,
        Op::Lt => found < wanted,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
    Open,
    Close,
}

fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_,./*@+".contains(c)
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let equals = chars.next_if(|&(_, n)| n == '=').is_some();
                tokens.push(Token::Op(match (c, equals) {
                    ('=', false) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', true) => Op::Le,
                    ('>', true) => Op::Ge,
                    ('<', false) => Op::Lt,
                    ('>', false) => Op::Gt,
                    _ => return Err(format!("`{text}`: `{c}` at {at} is not an operator")),
                }));
            }
            '"' | '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, escaped)) => value.push(escaped),
                            None => {
                                return Err(format!("`{text}`: the string at {at} is not closed"))
                            }
                        },
                        Some((_, other)) => value.push(other),
                        None => return Err(format!("`{text}`: the string at {at} is not closed")),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            c if is_bare(c) => {
                let mut word = String::new();
                while let Some((_, c)) = chars.next_if(|&(_, c)| is_bare(c)) {
                    word.push(c);
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("`{text}`: `{other}` at {at} is not allowed")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn keyword(&mut self, name: &str) -> bool {
        let hit = matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(name));
        if hit {
            self.at += 1;
        }
        hit
    }

    fn or(&mut self) -> Result<Expression, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expression::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, String> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expression::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expression, String> {
        if self.keyword("not") {
            return Ok(Expression::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expression, String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.tokens.get(self.at) {
                    Some(Token::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err("a `(` is not closed".to_string()),
                }
            }
            Some(Token::Word(key)) => {
                let op = match self.tokens.get(self.at) {
                    Some(Token::Op(op)) => *op,
                    _ => return Err(format!("`{key}` is not followed by an operator")),
                };
                self.at += 1;
                let value = match self.tokens.get(self.at) {
                    Some(Token::Word(v) | Token::Quoted(v)) => v.clone(),
                    _ => return Err(format!("`{key}` has no value to compare with")),
                };
                self.at += 1;
                Ok(Expression::Condition { key, op, value })
            }
            Some(other) => Err(format!("{other:?} where a condition should be")),
            None => Err("the expression ends where a condition should be".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(expression: &str, value: &Value) -> bool {
        Expression::parse(expression)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(value)
    }

    #[test]
    fn matches_as_the_official_clients_do() {
        let event = json!({
            "topic": "ftrack.action.launch",
            "data": {"actionIdentifier": "ldap2ftrack.apply", "n": 3},
            "source": {"user": {"username": "jane"}},
        });
        assert!(hit("topic=ftrack.action.launch", &event));
        assert!(hit(
            "topic=ftrack.action.launch and data.actionIdentifier=ldap2ftrack.apply",
            &event
        ));
        assert!(!hit(
            "topic=ftrack.action.launch AND data.actionIdentifier=ldap2ftrack.preview",
            &event
        ));
        assert!(hit("topic=ftrack.action.*", &event));
        assert!(!hit("topic=action.*", &event), "a prefix, not a substring");
        assert!(hit("topic=nope or (source.user.username=\"jane\")", &event));
        assert!(hit("not topic=ftrack.meta.reply", &event));
        assert!(hit("data.n=3 and data.n>=3 and data.n<4", &event));
        assert!(hit("topic != ftrack.meta.reply", &event));
        // A missing key never matches, not even `!=`.
        assert!(!hit("data.missing!=x", &event));
        assert!(!hit("data.missing=x", &event));
        assert!(hit("id=hub-1", &json!({"id": "hub-1"})));
        assert!(hit("id='a b\\'c'", &json!({"id": "a b'c"})));
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "",
            "topic",
            "topic=",
            "(topic=a",
            "topic=a and",
            "topic=\"open",
            "topic=a b=c",
            "topic=a;",
            "topic =! a",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
