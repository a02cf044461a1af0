//! The event hub's expression language (`shared/ftrack-event-hub.md` §3): subscriptions
//! are matched against whole events, targets against a subscriber's metadata.
//!
//! ```text
//! expr      := or
//! or        := and ( OR and )*
//! and       := unary ( AND unary )*
//! unary     := NOT unary | "(" expr ")" | condition
//! condition := key op value
//! key       := segment ( "." segment )*     first character a letter or `_`
//! segment   := [A-Za-z0-9_]+
//! op        := "=" | "!=" | ">=" | "<=" | ">" | "<"
//! value     := [A-Za-z0-9-_,./*@+]+ | "…" | '…'   (quoted: not empty; no backslash,
//!                                                   line break or its own quote)
//! ```
//!
//! Keywords (`and`, `or`, `not`) are case-insensitive and cannot be keys. Whitespace may
//! surround every token. Evaluation: a key resolves through nested objects; a key that is
//! missing, or whose value is not a string, never matches (with any operator, `!=`
//! included); values compare as strings (code point order); `=` with a value ending in
//! `*` is a prefix test. The stricter choices are listed in the emulator's README.

mod parser;
#[cfg(test)]
mod tests;

pub use parser::parse;

use serde_json::Value;

/// Deepest nesting of parentheses and `not` accepted (a hostile subscription must not
/// exhaust the stack).
pub const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `key op value`; `key` split at its dots.
    Cond {
        key: Vec<String>,
        op: Op,
        value: String,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Why an expression was refused, with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse expression {text:?} at position {position}: {message}")]
pub struct ParseError {
    pub text: String,
    pub position: usize,
    pub message: String,
}

impl Expr {
    /// Whether `candidate` (an event, or a subscriber's metadata) satisfies the expression.
    pub fn matches(&self, candidate: &Value) -> bool {
        match self {
            Expr::Cond { key, op, value } => condition(candidate, key, *op, value),
            Expr::Not(inner) => !inner.matches(candidate),
            Expr::And(all) => all.iter().all(|e| e.matches(candidate)),
            Expr::Or(any) => any.iter().any(|e| e.matches(candidate)),
        }
    }
}

/// The value at a dotted key, if every step is an object holding the next key.
fn resolve<'a>(candidate: &'a Value, key: &[String]) -> Option<&'a Value> {
    key.iter()
        .try_fold(candidate, |at, part| at.as_object()?.get(part.as_str()))
}

fn condition(candidate: &Value, key: &[String], op: Op, value: &str) -> bool {
    let Some(Value::String(found)) = resolve(candidate, key) else {
        return false;
    };
    let found = found.as_str();
    match op {
        Op::Eq => match value.strip_suffix('*') {
            Some(prefix) => found.starts_with(prefix),
            None => found == value,
        },
        Op::Ne => found != value,
        Op::Ge => found >= value,
        Op::Le => found <= value,
        Op::Gt => found > value,
        Op::Lt => found < value,
    }
}
