//! LDAP search filters (RFC 4515) as text: parsed into a [`Filter`], or refused with the
//! character where the text goes wrong and why.
//!
//! The grammar is the RFC's as the LDAP client a server search goes through (ldap3) reads it,
//! so that `config` refuses at load time the filters a search would fail on, and no filter a
//! search would take: a filter is written in parentheses; an attribute is a name (`cn`,
//! `msDS-x`) or an OID (`2.5.4.3`), with `;options`; a value escapes `(`, `)`, `*`, `\` and
//! NUL as `\XX` and may spell any bytes that way (an objectGUID); `*` separates the parts of a
//! substring match, never an empty one; an extensible match (`attr:dn:rule:=value`,
//! `:rule:=value`) may name any matching rule, the server knowing its own. White space around
//! the filter is ignored; inside it, it is part of a value or an error, as for the client.
//!
//! Syntax only: what a filter selects from an LDIF file is `directory::filter`'s.

use std::fmt;

/// Nesting deeper than this is refused (no real filter comes close; the parser recurses).
const MAX_DEPTH: usize = 100;

/// An assertion value with its `\XX` escapes resolved. Text in practice, but an escape may
/// spell bytes that are not UTF-8 (an `objectGUID` searched for), so it is kept as bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AssertionValue(Vec<u8>);

impl AssertionValue {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, when it is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for AssertionValue {
    fn from(text: &str) -> AssertionValue {
        AssertionValue(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for AssertionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_text() {
            Some(text) => fmt::Debug::fmt(text, f),
            None => write!(f, "bytes({})", hex::encode(&self.0)),
        }
    }
}

/// A parsed filter. Attribute names and matching rules are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equal(String, AssertionValue),
    /// `(attr=*)`
    Present(String),
    /// `(attr=initial*any*…*last)`; no part is empty, and at least one `*` was written.
    Substring {
        attribute: String,
        initial: Option<AssertionValue>,
        any: Vec<AssertionValue>,
        last: Option<AssertionValue>,
    },
    GreaterOrEqual(String, AssertionValue),
    LessOrEqual(String, AssertionValue),
    /// `(attr~=value)`
    Approximate(String, AssertionValue),
    /// `(attr:dn:rule:=value)`: at least one of `attribute` and `rule` is present.
    Extensible {
        attribute: Option<String>,
        dn_attributes: bool,
        rule: Option<String>,
        value: AssertionValue,
    },
}

/// Why a text is not a filter: where (1-based character, counted in the text as given) and
/// what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LDAP filter `{filter}` at character {position}: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub position: usize,
    pub reason: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let start = text.trim_start();
        let mut p = Parser {
            chars: start.trim_end().chars().collect(),
            pos: 0,
            depth: 0,
            offset: text.chars().count() - start.chars().count(),
        };
        let result = if p.chars.is_empty() {
            Err(p.fail("the filter is empty; write one, e.g. (objectClass=person)"))
        } else {
            p.top()
        };
        result.map_err(|Fail { at, reason }| FilterError {
            filter: text.to_string(),
            position: p.offset + at + 1,
            reason,
        })
    }

    /// The attributes the filter tests, by base name (options dropped), in order of first
    /// appearance, each once (case-insensitively).
    pub fn attributes(&self) -> Vec<&str> {
        fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
            let name = match f {
                Filter::And(fs) | Filter::Or(fs) => {
                    fs.iter().for_each(|f| walk(f, out));
                    return;
                }
                Filter::Not(f) => return walk(f, out),
                Filter::Extensible {
                    attribute: None, ..
                } => return,
                Filter::Equal(a, _)
                | Filter::Present(a)
                | Filter::GreaterOrEqual(a, _)
                | Filter::LessOrEqual(a, _)
                | Filter::Approximate(a, _)
                | Filter::Substring { attribute: a, .. }
                | Filter::Extensible {
                    attribute: Some(a), ..
                } => base_name(a),
            };
            if !out.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                out.push(name);
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// An attribute description without its options: `cn` for `cn;lang-en`.
pub fn base_name(attribute: &str) -> &str {
    attribute.split(';').next().unwrap_or(attribute)
}

/// A parse failure at a character of the trimmed text.
struct Fail {
    at: usize,
    reason: String,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    /// Characters of leading white space trimmed off (for positions in the text as given).
    offset: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn fail(&self, reason: impl Into<String>) -> Fail {
        self.fail_at(self.pos, reason)
    }

    fn fail_at(&self, at: usize, reason: impl Into<String>) -> Fail {
        Fail {
            at,
            reason: reason.into(),
        }
    }

    /// ", found `x`" or ", but the filter ends", for messages about what was expected.
    fn found(&self) -> String {
        match self.peek() {
            None => ", but the filter ends there".into(),
            Some(c) if c.is_whitespace() => {
                ", found white space (not allowed between the parts of a filter)".into()
            }
            Some(c) => format!(", found `{c}`"),
        }
    }

    fn top(&mut self) -> Result<Filter, Fail> {
        if self.peek() != Some('(') {
            return Err(
                self.fail("a filter is written in parentheses: wrap it, e.g. (objectClass=person)")
            );
        }
        let filter = self.filter()?;
        match self.peek() {
            None => Ok(filter),
            Some(')') => Err(self.fail("one `)` too many")),
            Some(_) => Err(self.fail(
                "text after the filter's closing `)`; to combine filters write \
                 (&(a=1)(b=2)) or (|(a=1)(b=2))",
            )),
        }
    }

    /// `( filtercomp )`, at a `(`.
    fn filter(&mut self) -> Result<Filter, Fail> {
        let open = self.pos;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(format!("filters nested more than {MAX_DEPTH} deep")));
        }
        self.pos += 1; // `(`
        let f = match self.peek() {
            Some('&') => {
                self.pos += 1;
                Filter::And(self.list()?)
            }
            Some('|') => {
                self.pos += 1;
                Filter::Or(self.list()?)
            }
            Some('!') => {
                self.pos += 1;
                if self.peek() != Some('(') {
                    return Err(self.fail(format!(
                        "`!` is followed by one filter in parentheses, e.g. \
                         (!(objectClass=computer)){}",
                        self.found()
                    )));
                }
                let inner = self.filter()?;
                if self.peek() == Some('(') {
                    return Err(self
                        .fail("`!` takes one filter; to negate several, write (!(|(a=1)(b=2)))"));
                }
                Filter::Not(Box::new(inner))
            }
            _ => self.item()?,
        };
        if self.peek() != Some(')') {
            let what = match self.peek() {
                None => format!(
                    "the `(` at character {} is not closed: a `)` is missing",
                    self.offset + open + 1
                ),
                Some(_) => format!("`(` or `)` expected{}", self.found()),
            };
            return Err(self.fail(what));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(f)
    }

    fn list(&mut self) -> Result<Vec<Filter>, Fail> {
        let mut items = Vec::new();
        while self.peek() == Some('(') {
            items.push(self.filter()?);
        }
        Ok(items)
    }

    /// A simple item: equality, presence, substrings, `>=`, `<=`, `~=` or extensible.
    fn item(&mut self) -> Result<Filter, Fail> {
        if self.peek() == Some(':') {
            return self.extensible(None);
        }
        let attribute = self.attribute_description()?;
        match (self.peek(), self.peek_at(1)) {
            (Some('='), _) => {
                self.pos += 1;
                self.equality(attribute)
            }
            (Some(c @ ('>' | '<' | '~')), Some('=')) => {
                self.pos += 2;
                let value = self.single_value(&format!("{c}="))?;
                Ok(match c {
                    '>' => Filter::GreaterOrEqual(attribute, value),
                    '<' => Filter::LessOrEqual(attribute, value),
                    _ => Filter::Approximate(attribute, value),
                })
            }
            (Some(':'), _) => self.extensible(Some(attribute)),
            _ => Err(self.fail(format!(
                "`=`, `>=`, `<=`, `~=` or `:=` expected after the attribute `{attribute}`{}",
                self.found()
            ))),
        }
    }

    /// `attributetype *( ";" option )`, as written.
    fn attribute_description(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        if !self.attribute_type()? {
            let reason = match self.peek() {
                Some('=') => "an attribute name is missing before `=`".to_string(),
                _ => format!(
                    "an attribute name (e.g. cn) or OID (e.g. 2.5.4.3) expected{}",
                    self.found()
                ),
            };
            return Err(self.fail(reason));
        }
        while self.peek() == Some(';') {
            self.pos += 1;
            let option_start = self.pos;
            self.take_while(|c| c.is_ascii_alphanumeric() || c == '-');
            if self.pos == option_start {
                return Err(self.fail(format!(
                    "an attribute option (letters, digits, `-`) expected after `;`{}",
                    self.found()
                )));
            }
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// A name (`ALPHA *(ALPHA / DIGIT / "-")`) or a numeric OID; false when neither starts here.
    fn attribute_type(&mut self) -> Result<bool, Fail> {
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => {
                self.take_while(|c| c.is_ascii_alphanumeric() || c == '-');
                Ok(true)
            }
            Some(c) if c.is_ascii_digit() => loop {
                let number = self.pos;
                self.take_while(|c| c.is_ascii_digit());
                if self.pos == number {
                    return Err(self.fail(format!(
                        "a number expected after the `.` in an OID{}",
                        self.found()
                    )));
                }
                if self.pos - number > 1 && self.chars[number] == '0' {
                    return Err(self.fail_at(number, "an OID's numbers have no leading zeros"));
                }
                if self.peek() != Some('.') {
                    return Ok(true);
                }
                self.pos += 1;
            },
            _ => Ok(false),
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
    }

    /// After `attr=`: equality, presence or substrings.
    fn equality(&mut self, attribute: String) -> Result<Filter, Fail> {
        let mut parts = vec![self.value_part()?];
        let mut stars = Vec::new();
        while self.peek() == Some('*') {
            stars.push(self.pos);
            self.pos += 1;
            parts.push(self.value_part()?);
        }
        if stars.is_empty() {
            return Ok(Filter::Equal(attribute, pop(&mut parts)));
        }
        if parts.len() == 2 && parts.iter().all(|p| p.0.is_empty()) {
            return Ok(Filter::Present(attribute));
        }
        // parts[i] sits between stars[i - 1] and stars[i]: empty there means `**`.
        if let Some(i) = (1..parts.len() - 1).find(|&i| parts[i].0.is_empty()) {
            return Err(self.fail_at(
                stars[i],
                "two `*` in a row: the parts of a substring match cannot be empty",
            ));
        }
        let non_empty = |v: AssertionValue| (!v.0.is_empty()).then_some(v);
        let last = non_empty(pop(&mut parts));
        let mut parts = parts.into_iter();
        let initial = parts.next().and_then(non_empty);
        Ok(Filter::Substring {
            attribute,
            initial,
            any: parts.collect(),
            last,
        })
    }

    /// A value where `*` has no meaning (`>=`, `<=`, `~=`, `:=`).
    fn single_value(&mut self, operator: &str) -> Result<AssertionValue, Fail> {
        let value = self.value_part()?;
        if self.peek() == Some('*') {
            return Err(self.fail(format!(
                "`*` in a `{operator}` value must be escaped as \\2a (substrings are for `=` only)"
            )));
        }
        Ok(value)
    }

    /// Value characters up to `*`, `)` or the end, escapes resolved.
    fn value_part(&mut self) -> Result<AssertionValue, Fail> {
        let mut bytes = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                '*' | ')' => break,
                '(' => {
                    return Err(
                        self.fail("`(` inside a value must be escaped as \\28 (and `)` as \\29)")
                    )
                }
                '\0' => return Err(self.fail("a NUL inside a value must be escaped as \\00")),
                '\\' => {
                    let hex = |c: Option<char>| c.and_then(|c| c.to_digit(16));
                    match (hex(self.peek_at(1)), hex(self.peek_at(2))) {
                        (Some(hi), Some(lo)) => {
                            bytes.push((hi * 16 + lo) as u8);
                            self.pos += 3;
                        }
                        _ => {
                            let written: String = self.chars[self.pos..].iter().take(3).collect();
                            return Err(self.fail(format!(
                                "`{written}` is not an escape: `\\` is followed by two hex \
                                 digits (a backslash itself is \\5c)"
                            )));
                        }
                    }
                }
                _ => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.pos += 1;
                }
            }
        }
        Ok(AssertionValue(bytes))
    }

    /// At the `:` after the attribute (or opening the item): `[:dn][:rule]:=value`.
    fn extensible(&mut self, attribute: Option<String>) -> Result<Filter, Fail> {
        let dn_attributes = self.chars[self.pos..].starts_with(&[':', 'd', 'n']);
        if dn_attributes {
            self.pos += 3;
        }
        let mut rule = None;
        if self.peek() == Some(':') && self.peek_at(1) != Some('=') {
            self.pos += 1;
            let start = self.pos;
            if !self.attribute_type()? {
                return Err(self.fail(format!(
                    "a matching rule (a name or an OID such as 1.2.840.113556.1.4.803) \
                     expected after `:`{}",
                    self.found()
                )));
            }
            rule = Some(self.chars[start..self.pos].iter().collect::<String>());
        }
        if attribute.is_none() && rule.is_none() {
            return Err(self.fail(
                "an extensible match without an attribute names a matching rule, e.g. \
                 (:dn:2.5.13.5:=Lighting)",
            ));
        }
        if !(self.peek() == Some(':') && self.peek_at(1) == Some('=')) {
            return Err(self.fail(format!(
                "`:=` expected in the extensible match (attr:rule:=value){}",
                self.found()
            )));
        }
        self.pos += 2;
        let value = self.single_value(":=")?;
        Ok(Filter::Extensible {
            attribute,
            dn_attributes,
            rule,
            value,
        })
    }
}

/// The last element of a vector that has one.
fn pop(parts: &mut Vec<AssertionValue>) -> AssertionValue {
    parts.pop().unwrap_or(AssertionValue(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn v(text: &str) -> AssertionValue {
        AssertionValue::from(text)
    }

    fn eq(a: &str, value: &str) -> Filter {
        Filter::Equal(a.into(), v(value))
    }

    #[test]
    fn every_kind_of_item_parses() {
        assert_eq!(p("(objectClass=person)"), eq("objectClass", "person"));
        assert_eq!(
            p("  (uid=)\n"),
            eq("uid", ""),
            "surrounding space is ignored"
        );
        assert_eq!(p("(mail=*)"), Filter::Present("mail".into()));
        assert_eq!(
            p("(cn=A*b*c*D)"),
            Filter::Substring {
                attribute: "cn".into(),
                initial: Some(v("A")),
                any: vec![v("b"), v("c")],
                last: Some(v("D")),
            }
        );
        assert_eq!(
            p("(cn=*x*)"),
            Filter::Substring {
                attribute: "cn".into(),
                initial: None,
                any: vec![v("x")],
                last: None,
            }
        );
        assert_eq!(
            p("(uidNumber>=1000)"),
            Filter::GreaterOrEqual("uidNumber".into(), v("1000"))
        );
        assert_eq!(p("(sn<=m)"), Filter::LessOrEqual("sn".into(), v("m")));
        assert_eq!(
            p("(sn~=smyth)"),
            Filter::Approximate("sn".into(), v("smyth"))
        );
        assert_eq!(p("(2.5.4.3;lang-en=x)"), eq("2.5.4.3;lang-en", "x"));
        assert_eq!(
            p("(cn=a b \\28c\\29 \\2a\\5c Zoë)"),
            eq("cn", "a b (c) *\\ Zoë")
        );
        assert_eq!(
            p("(objectGUID=\\a1\\ff)"),
            Filter::Equal("objectGUID".into(), AssertionValue(vec![0xa1, 0xff])),
            "escapes may spell bytes that are not UTF-8"
        );
        assert_eq!(
            p("(memberOf:1.2.840.113556.1.4.1941:=cn=Leads,ou=groups,dc=x)"),
            Filter::Extensible {
                attribute: Some("memberOf".into()),
                dn_attributes: false,
                rule: Some("1.2.840.113556.1.4.1941".into()),
                value: v("cn=Leads,ou=groups,dc=x"),
            },
            "AD's in-chain rule is the server's to apply: valid syntax"
        );
        assert_eq!(
            p("(ou:dn:=People)"),
            Filter::Extensible {
                attribute: Some("ou".into()),
                dn_attributes: true,
                rule: None,
                value: v("People"),
            }
        );
        assert_eq!(
            p("(:dn:caseExactMatch:=x)"),
            Filter::Extensible {
                attribute: None,
                dn_attributes: true,
                rule: Some("caseExactMatch".into()),
                value: v("x"),
            }
        );
    }

    #[test]
    fn composites_nest() {
        assert_eq!(
            p("(&(objectClass=person)(!(uid=svc-*))(|(a=1)(b=2)))"),
            Filter::And(vec![
                eq("objectClass", "person"),
                Filter::Not(Box::new(Filter::Substring {
                    attribute: "uid".into(),
                    initial: Some(v("svc-")),
                    any: vec![],
                    last: None,
                })),
                Filter::Or(vec![eq("a", "1"), eq("b", "2")]),
            ])
        );
        assert_eq!(p("(&)"), Filter::And(vec![]), "RFC 4526's absolute true");
        assert_eq!(p("(|)"), Filter::Or(vec![]));
        let deep = "(!".repeat(99) + "(a=b)" + &")".repeat(99);
        assert!(Filter::parse(&deep).is_ok());
    }

    #[test]
    fn a_filter_names_the_attributes_it_tests_once_each() {
        let f = p(
            "(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2))\
             (|(cn;lang-en=a*)(OBJECTCLASS=user)(employeeType>=b)(mail=*)(:dn:1.2:=x)(sn~=y)))",
        );
        assert_eq!(
            f.attributes(),
            vec![
                "objectClass",
                "userAccountControl",
                "cn",
                "employeeType",
                "mail",
                "sn"
            ]
        );
    }

    /// (filter, position, what the reason says)
    const BAD: &[(&str, usize, &str)] = &[
        ("", 1, "empty"),
        ("   ", 4, "empty"),
        ("objectClass=person", 1, "wrap it"),
        (
            "(objectClass=person",
            20,
            "the `(` at character 1 is not closed",
        ),
        ("(&(a=b)(c=d)", 13, "the `(` at character 1 is not closed"),
        ("(&(a=b)(c=d)))", 14, "one `)` too many"),
        ("(a=b)(c=d)", 6, "to combine filters"),
        ("(& (a=b))", 3, "white space"),
        ("(=x)", 2, "attribute name is missing before `=`"),
        (
            "(a b=x)",
            3,
            "`=`, `>=`, `<=`, `~=` or `:=` expected after the attribute `a`",
        ),
        ("(1cn=x)", 3, "after the attribute `1`"),
        ("(01=x)", 2, "leading zeros"),
        ("(1.=x)", 4, "a number expected after the `.`"),
        ("(cn;=x)", 5, "option"),
        ("(under_score=x)", 7, "after the attribute `under`"),
        ("(a=\\zz)", 4, "`\\zz` is not an escape"),
        ("(a=b\\4)", 5, "two hex digits"),
        ("(a=(b))", 4, "escaped as \\28"),
        ("(a=\0)", 4, "NUL"),
        ("(cn=a**b)", 7, "two `*` in a row"),
        ("(cn=**)", 6, "two `*` in a row"),
        ("(uidNumber>=1*)", 14, "escaped as \\2a"),
        ("(a:=x*)", 6, "`:=` value"),
        ("(!a=b)", 3, "`!` is followed by one filter"),
        ("(!(a=b)(c=d))", 8, "`!` takes one filter"),
        ("(:=x)", 2, "names a matching rule"),
        ("(cn:x.1:=y)", 6, "`:=` expected"),
        ("(cn:1.2=y)", 8, "`:=` expected"),
        ("(cn:dnx:=y)", 7, "`:=` expected"),
    ];

    #[test]
    fn bad_filters_are_refused_where_they_go_wrong() {
        for (bad, position, says) in BAD {
            let e = Filter::parse(bad).expect_err(bad);
            assert_eq!(e.position, *position, "{bad}: {e}");
            assert!(e.reason.contains(says), "{bad}: {e}");
            assert_eq!(e.filter, *bad);
        }
        let deep = "(!".repeat(500) + "(a=b)" + &")".repeat(500);
        let e = Filter::parse(&deep).unwrap_err();
        assert!(e.reason.contains("nested more than 100 deep"), "{e}");
        let e = Filter::parse("  (a=b").unwrap_err();
        assert_eq!(e.position, 7, "positions count in the text as given: {e}");
        assert!(e.reason.contains("at character 3"), "{e}");
    }

    #[test]
    fn the_error_reads_as_a_sentence() {
        assert_eq!(
            Filter::parse("(&(objectClass=person)(uid=*)")
                .unwrap_err()
                .to_string(),
            "invalid LDAP filter `(&(objectClass=person)(uid=*)` at character 30: the `(` at \
             character 1 is not closed: a `)` is missing"
        );
    }
}
