//! Recursive-descent parser turning query text into an [`Query`] AST.
//!
//! Grammar (ftrack-api.md §4):
//! ```text
//! query := [select path {, path} from] Type [where cond]
//!          {order by path [asc|desc] {, …} | offset N | limit N}
//! cond  := and {or and};  and := unary {and unary}
//! unary := not unary | ( cond ) | path op value | path (has|any) ( [cond] )
//! value := "str" | 'str' | bare | ( v {, v} ) | ( select … )
//! ```
//! Nesting depth is bounded so hostile input cannot overflow the stack.

use super::lexer::{lex, Tok, Token};

/// Maximum nesting of parentheses / `not` / `has` / subqueries.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `None` when the expression has no `select` clause (default projections apply).
    pub select: Option<Vec<Vec<String>>>,
    pub entity: String,
    pub filter: Option<Cond>,
    pub order: Vec<(Vec<String>, bool)>,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        path: Vec<String>,
        op: Op,
        value: Val,
    },
    /// `has` (reference) and `any` (collection): some related entity matches.
    Related {
        path: Vec<String>,
        cond: Option<Box<Cond>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    In,
    NotIn,
    Like,
    NotLike,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    /// A bare number; the text is kept for string comparison.
    Num(f64, String),
    Str(String),
    List(Vec<Val>),
    Sub(Box<Query>),
}

/// Parse a full expression.
pub fn parse(input: &str) -> Result<Query, String> {
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let q = p.query()?;
    if let Some(t) = p.peek() {
        return Err(format!(
            "unexpected {} at character {}; expected where, order by, offset, limit or the end",
            describe(&t.kind),
            t.pos
        ));
    }
    Ok(q)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Sym(s) => format!("'{s}'"),
    }
}

/// The words of the query language (reserved: not usable as bare values).
pub const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "order",
    "by",
    "asc",
    "desc",
    "offset",
    "limit",
    "and",
    "or",
    "not",
    "has",
    "any",
    "is",
    "is_not",
    "in",
    "not_in",
    "like",
    "not_like",
    "after",
    "before",
    "greater_than",
    "less_than",
];

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }
    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.i + n).map(|t| &t.kind)
    }
    fn pos(&self) -> String {
        match self.peek() {
            Some(t) => format!("at character {}", t.pos),
            None => "at the end of the query".to_string(),
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek_at(0), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(format!("expected '{kw}' {}", self.pos()))
        }
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek_at(0) == Some(t) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: &Tok) -> Result<(), String> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(format!("expected {} {}", describe(t), self.pos()))
        }
    }
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("query nested more than {MAX_DEPTH} levels deep"))
        } else {
            Ok(())
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.peek_at(0) {
            Some(Tok::Word(w))
                if !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
                    && w.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
            {
                let w = w.clone();
                self.i += 1;
                Ok(w)
            }
            _ => Err(format!("expected {what} {}", self.pos())),
        }
    }

    fn path(&mut self) -> Result<Vec<String>, String> {
        let w = self.ident("an attribute name")?;
        let parts: Vec<String> = w.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("malformed attribute path '{w}'"));
        }
        Ok(parts)
    }

    fn number(&mut self, what: &str) -> Result<u64, String> {
        match self.peek_at(0) {
            Some(Tok::Word(w)) => {
                let n = w
                    .parse::<u64>()
                    .map_err(|_| format!("{what} must be a non-negative integer, got '{w}'"))?;
                self.i += 1;
                Ok(n)
            }
            _ => Err(format!("expected a number after {what} {}", self.pos())),
        }
    }

    fn query(&mut self) -> Result<Query, String> {
        let mut select = None;
        if self.eat_kw("select") {
            let mut paths = vec![self.path()?];
            while self.eat(&Tok::Comma) {
                paths.push(self.path()?);
            }
            self.expect_kw("from")?;
            select = Some(paths);
        }
        let entity = self.ident("an entity type name")?;
        if entity.contains('.') {
            return Err(format!("'{entity}' is not an entity type name"));
        }
        let mut q = Query {
            select,
            entity,
            filter: None,
            order: Vec::new(),
            offset: None,
            limit: None,
        };
        if self.eat_kw("where") {
            q.filter = Some(self.or()?);
        }
        loop {
            if self.eat_kw("order") {
                self.expect_kw("by")?;
                loop {
                    let p = self.path()?;
                    let desc = if self.eat_kw("desc") {
                        true
                    } else {
                        self.eat_kw("asc");
                        false
                    };
                    q.order.push((p, desc));
                    if !self.eat(&Tok::Comma) {
                        break;
                    }
                }
            } else if self.eat_kw("offset") {
                q.offset = Some(self.number("offset")?);
            } else if self.eat_kw("limit") {
                q.limit = Some(self.number("limit")?);
            } else {
                break;
            }
        }
        Ok(q)
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut parts = vec![self.and()?];
        while self.eat_kw("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut parts = vec![self.unary()?];
        while self.eat_kw("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Cond, String> {
        self.enter()?;
        let r = if self.eat_kw("not") {
            self.unary().map(|c| Cond::Not(Box::new(c)))
        } else if self.eat(&Tok::LParen) {
            let c = self.or();
            c.and_then(|c| self.expect(&Tok::RParen).map(|_| c))
        } else {
            self.predicate()
        };
        self.depth -= 1;
        r
    }

    fn predicate(&mut self) -> Result<Cond, String> {
        let path = self.path()?;
        let op = match self.peek_at(0).cloned() {
            Some(Tok::Sym(s)) => {
                self.i += 1;
                match s {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    ">" => Op::Gt,
                    "<=" => Op::Le,
                    _ => Op::Ge,
                }
            }
            Some(Tok::Word(w)) => {
                let lw = w.to_ascii_lowercase();
                self.i += 1;
                match lw.as_str() {
                    "has" | "any" => return self.related(path),
                    "is" => {
                        if self.eat_kw("not") {
                            Op::Ne
                        } else {
                            Op::Eq
                        }
                    }
                    "is_not" => Op::Ne,
                    "in" => Op::In,
                    "not_in" => Op::NotIn,
                    "like" => Op::Like,
                    "not_like" => Op::NotLike,
                    "after" | "greater_than" => Op::Gt,
                    "before" | "less_than" => Op::Lt,
                    "not" if self.eat_kw("in") => Op::NotIn,
                    "not" if self.eat_kw("like") => Op::NotLike,
                    _ => {
                        self.i -= 1;
                        return Err(format!(
                            "expected an operator (is, is_not, =, !=, <, >, <=, >=, in, not_in, like, not_like, has, any) after '{}' {}",
                            path.join("."),
                            self.pos()
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "expected an operator after '{}' {}",
                    path.join("."),
                    self.pos()
                ))
            }
        };
        let value = self.value()?;
        match (&value, op) {
            (Val::List(_) | Val::Sub(_), Op::In | Op::NotIn) => {}
            (_, Op::In | Op::NotIn) => {
                return Err(format!(
                    "'in'/'not_in' on '{}' needs a parenthesised list or subquery",
                    path.join(".")
                ))
            }
            (Val::List(_) | Val::Sub(_), _) => {
                return Err(format!(
                    "a list or subquery can only follow 'in' or 'not_in' (on '{}')",
                    path.join(".")
                ))
            }
            _ => {}
        }
        Ok(Cond::Cmp { path, op, value })
    }

    fn related(&mut self, path: Vec<String>) -> Result<Cond, String> {
        self.expect(&Tok::LParen)?;
        if self.eat(&Tok::RParen) {
            return Ok(Cond::Related { path, cond: None });
        }
        self.enter()?;
        let c = self.or();
        self.depth -= 1;
        let c = c?;
        self.expect(&Tok::RParen)?;
        Ok(Cond::Related {
            path,
            cond: Some(Box::new(c)),
        })
    }

    fn literal(&mut self) -> Result<Val, String> {
        let v = match self.peek_at(0) {
            Some(Tok::Str(s)) => Val::Str(s.clone()),
            Some(Tok::Word(w)) => bare(w),
            _ => return Err(format!("expected a value {}", self.pos())),
        };
        self.i += 1;
        Ok(v)
    }

    fn value(&mut self) -> Result<Val, String> {
        if !self.eat(&Tok::LParen) {
            return self.literal();
        }
        if self.is_kw("select") {
            self.enter()?;
            let q = self.query();
            self.depth -= 1;
            let q = q?;
            self.expect(&Tok::RParen)?;
            return Ok(Val::Sub(Box::new(q)));
        }
        let mut items = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(Val::List(items));
        }
        loop {
            items.push(self.literal()?);
            if self.eat(&Tok::RParen) {
                break;
            }
            self.expect(&Tok::Comma)?;
        }
        Ok(Val::List(items))
    }
}

/// Interpret a bare (unquoted) token.
fn bare(w: &str) -> Val {
    match w {
        "True" | "true" => Val::Bool(true),
        "False" | "false" => Val::Bool(false),
        "None" | "null" => Val::Null,
        _ => match w.parse::<f64>() {
            Ok(n) if n.is_finite() && !w.starts_with(['+', '.']) => Val::Num(n, w.to_string()),
            _ => Val::Str(w.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Query {
        match parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn client_shapes() {
        let q = p("select id, username from User where id in (a1-b2, c3) offset 0 limit 500");
        assert_eq!(q.entity, "User");
        assert_eq!(q.offset, Some(0));
        assert_eq!(q.limit, Some(500));
        assert_eq!(
            q.filter,
            Some(Cond::Cmp {
                path: vec!["id".into()],
                op: Op::In,
                value: Val::List(vec![Val::Str("a1-b2".into()), Val::Str("c3".into())])
            })
        );
        let q = p(
            r#"select value from Metadata where (parent_id is "x"and key is "k") or (parent_id is "y"and key is "k")"#,
        );
        assert!(matches!(q.filter, Some(Cond::Or(ref v)) if v.len() == 2));
        let q = p("select id from T where k1 is \"s\" and flag is False limit 2");
        assert!(matches!(q.filter, Some(Cond::And(_))));
        let q = p("User where is_active = False and (id = 'x' or id = 'y')");
        assert_eq!(q.select, None);
        let q = p("select a.b.c from User order by username desc, id limit 10 offset 5");
        assert_eq!(q.order.len(), 2);
        assert!(q.order[0].1);
        assert_eq!(q.select.unwrap()[0], vec!["a", "b", "c"]);
    }

    #[test]
    fn relations_and_subqueries() {
        let q = p("User where memberships any (group.name is \"a\") and not user_type has ()");
        let Some(Cond::And(parts)) = q.filter else {
            panic!()
        };
        assert!(matches!(parts[0], Cond::Related { cond: Some(_), .. }));
        assert!(
            matches!(&parts[1], Cond::Not(b) if matches!(**b, Cond::Related { cond: None, .. }))
        );
        let q =
            p("User where id in (select user_id from Membership where group.name like \"%x%\")");
        assert!(matches!(
            q.filter,
            Some(Cond::Cmp {
                value: Val::Sub(_),
                ..
            })
        ));
        let q = p("User where a is 1 or b is 2 and c is 3");
        let Some(Cond::Or(parts)) = q.filter else {
            panic!()
        };
        assert!(matches!(parts[1], Cond::And(_)));
    }

    #[test]
    fn values() {
        let q = p("User where a is None and b is true and c >= -1.5 and d is 'None'");
        let Some(Cond::And(parts)) = q.filter else {
            panic!()
        };
        let vals: Vec<Val> = parts
            .into_iter()
            .map(|c| match c {
                Cond::Cmp { value, .. } => value,
                _ => Val::Null,
            })
            .collect();
        assert_eq!(
            vals,
            vec![
                Val::Null,
                Val::Bool(true),
                Val::Num(-1.5, "-1.5".into()),
                Val::Str("None".into())
            ]
        );
    }

    #[test]
    fn malformed_is_an_error() {
        for bad in [
            "",
            "select",
            "select id from",
            "User where",
            "User where id",
            "User where id is",
            "User where (id is 1",
            "User where id in 1",
            "User where id is (1,2)",
            "User limit x",
            "User limit -1",
            "User where id has (",
            "User extra",
            "User where id is 1 and",
            "select id, from User",
            "User.x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!(
            "User where {}id is 1{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse(&deep).unwrap_err().contains("nested"));
        let nots = format!("User where {}id is 1", "not ".repeat(10_000));
        assert!(parse(&nots).is_err());
        let subs = format!(
            "User where {} ",
            "id in (select id from User where ".repeat(5_000)
        );
        assert!(parse(&subs).is_err());
    }
}
