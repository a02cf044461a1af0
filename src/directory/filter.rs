//! LDAP search filters (RFC 4515), evaluated against entries read from an LDIF file.
//!
//! A server evaluates `user_filter` and `group_filter` itself; an `ldif:` source has no
//! server, so the same filter is evaluated here to select the same entries. Matching is
//! case-insensitive, as for the attributes filters use in practice (objectClass, uid, cn,
//! mail). AD's bitwise matching rules are supported; anything else unknown is an error,
//! never a silent "no match".

use super::entry::Entry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equal(String, String),
    Present(String),
    Substring {
        attribute: String,
        initial: Option<String>,
        any: Vec<String>,
        last: Option<String>,
    },
    GreaterOrEqual(String, String),
    LessOrEqual(String, String),
    /// AD `attr:1.2.840.113556.1.4.803:=N` (all bits) or `…804:=N` (any bit).
    Bitwise {
        attribute: String,
        all_bits: bool,
        mask: u64,
    },
}

const BIT_AND: &str = "1.2.840.113556.1.4.803";
const BIT_OR: &str = "1.2.840.113556.1.4.804";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LDAP filter `{filter}` at character {position}: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub position: usize,
    pub reason: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut p = FilterParser {
            chars: text.trim().chars().collect(),
            pos: 0,
            depth: 0,
        };
        let result = p.filter().and_then(|f| {
            if p.pos == p.chars.len() {
                Ok(f)
            } else {
                Err("unexpected text after the filter".to_string())
            }
        });
        result.map_err(|reason| FilterError {
            filter: text.to_string(),
            position: p.pos + 1,
            reason,
        })
    }

    /// The attributes the filter tests, by base name (options dropped), in order of first
    /// appearance, each once (case-insensitively). An entry without them cannot be matched
    /// here as the server matched it.
    pub fn attributes(&self) -> Vec<&str> {
        fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
            let name = match f {
                Filter::And(fs) | Filter::Or(fs) => {
                    fs.iter().for_each(|f| walk(f, out));
                    return;
                }
                Filter::Not(f) => return walk(f, out),
                Filter::Equal(a, _)
                | Filter::Present(a)
                | Filter::GreaterOrEqual(a, _)
                | Filter::LessOrEqual(a, _)
                | Filter::Substring { attribute: a, .. }
                | Filter::Bitwise { attribute: a, .. } => base_name(a),
            };
            if !out.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                out.push(name);
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        let texts = |attr: &str| entry.texts(base_name(attr)).collect::<Vec<_>>();
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(entry)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(entry)),
            Filter::Not(f) => !f.matches(entry),
            Filter::Present(a) => {
                a.eq_ignore_ascii_case("objectClass") || !entry.values(base_name(a)).is_empty()
            }
            Filter::Equal(a, v) if a.eq_ignore_ascii_case("objectClass") => texts(a)
                .iter()
                .any(|class| superclasses(&fold(class)).any(|c| c == fold(v))),
            Filter::Equal(a, v) => texts(a).iter().any(|t| fold(t) == fold(v)),
            Filter::GreaterOrEqual(a, v) => texts(a).iter().any(|t| compare(t, v).is_ge()),
            Filter::LessOrEqual(a, v) => texts(a).iter().any(|t| compare(t, v).is_le()),
            Filter::Substring {
                attribute,
                initial,
                any,
                last,
            } => texts(attribute)
                .iter()
                .any(|t| substring_match(&fold(t), initial, any, last)),
            Filter::Bitwise {
                attribute,
                all_bits,
                mask,
            } => texts(attribute)
                .iter()
                .any(|t| match t.trim().parse::<i64>() {
                    Ok(v) => {
                        let v = v as u64;
                        if *all_bits {
                            v & mask == *mask
                        } else {
                            v & mask != 0
                        }
                    }
                    Err(_) => false,
                }),
        }
    }
}

/// A structural class and its superclasses, as a server's schema knows them: an entry written
/// with `objectClass: inetOrgPerson` matches `(objectClass=person)` on a server, so here too.
fn superclasses(class: &str) -> impl Iterator<Item = String> {
    const PARENTS: &[(&str, &str)] = &[
        ("inetorgperson", "organizationalperson"),
        ("organizationalperson", "person"),
        ("user", "organizationalperson"),
        ("computer", "user"),
        ("inetuser", "top"),
        ("person", "top"),
        ("groupofnames", "top"),
        ("groupofuniquenames", "top"),
        ("group", "top"),
        ("posixgroup", "top"),
    ];
    let mut next = Some(class.to_string());
    std::iter::from_fn(move || {
        let current = next.take()?;
        next = PARENTS
            .iter()
            .find(|(c, _)| *c == current)
            .map(|(_, p)| p.to_string());
        Some(current)
    })
}

fn base_name(attr: &str) -> &str {
    attr.split(';').next().unwrap_or(attr)
}

fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Integers compare as numbers (uidNumber>=1000), everything else as folded text.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => fold(a).cmp(&fold(b)),
    }
}

fn substring_match(
    value: &str,
    initial: &Option<String>,
    any: &[String],
    last: &Option<String>,
) -> bool {
    let mut rest = value;
    if let Some(i) = initial {
        match rest.strip_prefix(fold(i).as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for part in any {
        let part = fold(part);
        match rest.find(&part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    match last {
        Some(l) => rest.ends_with(fold(l).as_str()),
        None => true,
    }
}

struct FilterParser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl FilterParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("`{c}` expected"))
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > 100 {
            return Err("filter nested too deeply".into());
        }
        self.expect('(')?;
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
                Filter::Not(Box::new(self.filter()?))
            }
            _ => self.item()?,
        };
        self.expect(')')?;
        self.depth -= 1;
        Ok(f)
    }

    fn list(&mut self) -> Result<Vec<Filter>, String> {
        let mut items = Vec::new();
        while self.peek() == Some('(') {
            items.push(self.filter()?);
        }
        Ok(items)
    }

    fn item(&mut self) -> Result<Filter, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';' | ':') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let lhs: String = self.chars[start..self.pos].iter().collect();
        if lhs.is_empty() {
            return Err("an attribute name is missing".into());
        }
        let op = match (self.peek(), self.chars.get(self.pos + 1)) {
            (Some('='), _) => "=",
            (Some('>'), Some('=')) => ">=",
            (Some('<'), Some('=')) => "<=",
            (Some('~'), Some('=')) => "~=",
            _ => return Err("`=`, `>=`, `<=` or `~=` expected".into()),
        };
        self.pos += op.len();
        if let Some(rule_part) = lhs.strip_suffix(':') {
            return self.extensible(rule_part);
        }
        let raw = self.raw_value()?;
        match op {
            ">=" => Ok(Filter::GreaterOrEqual(lhs, unescape(&raw)?)),
            "<=" => Ok(Filter::LessOrEqual(lhs, unescape(&raw)?)),
            // Approximate match: equality is the honest approximation here.
            "~=" => Ok(Filter::Equal(lhs, unescape(&raw)?)),
            _ if raw == "*" => Ok(Filter::Present(lhs)),
            _ if raw.contains('*') => {
                let parts: Vec<&str> = raw.split('*').collect();
                let non_empty = |s: &str| -> Result<Option<String>, String> {
                    if s.is_empty() {
                        Ok(None)
                    } else {
                        unescape(s).map(Some)
                    }
                };
                let initial = non_empty(parts[0])?;
                let last = non_empty(parts[parts.len() - 1])?;
                let any = parts[1..parts.len() - 1]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| unescape(s))
                    .collect::<Result<_, _>>()?;
                Ok(Filter::Substring {
                    attribute: lhs,
                    initial,
                    any,
                    last,
                })
            }
            _ => Ok(Filter::Equal(lhs, unescape(&raw)?)),
        }
    }

    fn extensible(&mut self, lhs: &str) -> Result<Filter, String> {
        let raw = self.raw_value()?;
        let (attribute, rule) = lhs
            .split_once(':')
            .ok_or("an extensible match needs `attr:rule:=value`")?;
        let all_bits = match rule {
            BIT_AND => true,
            BIT_OR => false,
            other => {
                return Err(format!(
                    "matching rule {other} is not supported for ldif: sources (only AD's bitwise {BIT_AND} and {BIT_OR})"
                ))
            }
        };
        let mask = unescape(&raw)?
            .trim()
            .parse()
            .map_err(|_| "a bitwise match needs a number".to_string())?;
        Ok(Filter::Bitwise {
            attribute: attribute.to_string(),
            all_bits,
            mask,
        })
    }

    /// The value text up to the closing parenthesis, escapes still in place.
    fn raw_value(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                ')' => break,
                '(' => return Err("`(` inside a value must be escaped as \\28".into()),
                _ => self.pos += 1,
            }
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }
}

/// Resolves `\XX` hex escapes in a filter value.
fn unescape(raw: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let hex: String = chars.by_ref().take(2).collect();
            let byte = u8::from_str_radix(&hex, 16)
                .map_err(|_| format!("`\\{hex}` is not a two-digit hex escape"))?;
            bytes.push(byte);
        } else {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(bytes).map_err(|_| "an escaped value is not valid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::entry::Value;

    fn entry(pairs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new("uid=x,dc=example");
        for (k, v) in pairs {
            e.push(k, Value::Text(v.to_string()));
        }
        e
    }

    fn m(filter: &str, e: &Entry) -> bool {
        Filter::parse(filter).unwrap().matches(e)
    }

    #[test]
    fn the_usual_filters_select_what_a_server_would() {
        let ada = entry(&[
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "person"),
            ("uid", "ada"),
            ("cn", "Ada Lovelace"),
            ("uidNumber", "1500"),
            ("userAccountControl", "514"),
        ]);
        assert!(m("(objectClass=person)", &ada));
        assert!(m("(OBJECTCLASS=InetOrgPerson)", &ada));
        let only_leaf_class = entry(&[("objectClass", "inetOrgPerson")]);
        assert!(
            m("(objectClass=person)", &only_leaf_class),
            "superclasses match as on a server"
        );
        assert!(m("(objectClass=organizationalPerson)", &only_leaf_class));
        assert!(!m("(objectClass=groupOfNames)", &only_leaf_class));
        assert!(m("(&(objectClass=person)(uid=*))", &ada));
        assert!(!m("(&(objectClass=person)(mail=*))", &ada));
        assert!(m("(|(mail=*)(uid=ADA))", &ada));
        assert!(m("(!(objectClass=computer))", &ada));
        assert!(m("(cn=ada*)", &ada));
        assert!(m("(cn=*love*)", &ada));
        assert!(m("(cn=A*l*e)", &ada));
        assert!(!m("(cn=*xyz*)", &ada));
        assert!(m("(uidNumber>=1000)", &ada));
        assert!(!m("(uidNumber<=999)", &ada));
        assert!(m("(userAccountControl:1.2.840.113556.1.4.803:=2)", &ada));
        assert!(!m(
            "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
            &ada
        ));
        assert!(m("(userAccountControl:1.2.840.113556.1.4.804:=6)", &ada));
        assert!(m("(cn=Ada\\20Lovelace)", &ada));
    }

    #[test]
    fn a_filter_names_the_attributes_it_tests_once_each() {
        let f = Filter::parse(
            "(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2))\
             (|(cn;lang-en=a*)(OBJECTCLASS=user)(employeeType>=b)(mail=*)))",
        )
        .unwrap();
        assert_eq!(
            f.attributes(),
            vec![
                "objectClass",
                "userAccountControl",
                "cn",
                "employeeType",
                "mail"
            ]
        );
    }

    #[test]
    fn bad_filters_are_errors_with_a_position() {
        for bad in [
            "objectClass=person",
            "(objectClass=person",
            "(&(a=b)(c=d)",
            "(=x)",
            "(a=b))",
            "(a=\\zz)",
            "(memberOf:1.2.840.113556.1.4.1941:=cn=x)",
            "(a=(b))",
        ] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.position >= 1, "{bad}");
        }
        let deep = "(!".repeat(500) + "(a=b)" + &")".repeat(500);
        assert!(Filter::parse(&deep).is_err());
    }
}
