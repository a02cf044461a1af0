//! Search filters evaluated against entries read from an LDIF file.
//!
//! A server evaluates `user_filter` and `group_filter` itself; an `ldif:` source has no
//! server, so the same filter (parsed by [`crate::ldap_syntax::filter`]) is evaluated here to
//! select the same entries. Matching is case-insensitive, as for the attributes filters use in
//! practice (objectClass, uid, cn, mail); `~=` is taken as equality. Of the extensible matches,
//! AD's bitwise rules and a plain `attr:=value` are evaluated; anything else (another matching
//! rule, `:dn`) is refused when the filter is built, never a silent "no match".

use super::entry::{Entry, Value};
use crate::ldap_syntax::filter::{base_name, AssertionValue, Filter};

const BIT_AND: &str = "1.2.840.113556.1.4.803";
const BIT_OR: &str = "1.2.840.113556.1.4.804";

/// A filter this module can evaluate as a server would.
#[derive(Debug, Clone)]
pub struct EntryFilter(Filter);

impl EntryFilter {
    /// Parses `text` and checks that every part of it can be evaluated here; the error says
    /// what to change.
    pub fn parse(text: &str) -> Result<EntryFilter, String> {
        let filter = Filter::parse(text).map_err(|e| e.to_string())?;
        EntryFilter::new(filter).map_err(|why| format!("LDAP filter `{text}`: {why}"))
    }

    pub fn new(filter: Filter) -> Result<EntryFilter, String> {
        evaluable(&filter)?;
        Ok(EntryFilter(filter))
    }

    pub fn filter(&self) -> &Filter {
        &self.0
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        matches(&self.0, entry)
    }
}

/// Refuses what [`matches`] cannot answer as a server would.
fn evaluable(filter: &Filter) -> Result<(), String> {
    match filter {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().try_for_each(evaluable),
        Filter::Not(f) => evaluable(f),
        Filter::Extensible {
            dn_attributes: true,
            ..
        } => Err("`:dn` (matching the entry's DN parts) is not supported for ldif: sources".into()),
        Filter::Extensible {
            attribute: None, ..
        } => Err(
            "an extensible match without an attribute is not supported for ldif: sources".into(),
        ),
        Filter::Extensible {
            rule: Some(rule),
            value,
            ..
        } => {
            if rule != BIT_AND && rule != BIT_OR {
                return Err(format!(
                    "matching rule {rule} is not supported for ldif: sources (only AD's \
                     bitwise {BIT_AND} and {BIT_OR})"
                ));
            }
            bit_mask(value)
                .map(drop)
                .ok_or_else(|| format!("a bitwise match needs a number, not `{}`", text_of(value)))
        }
        _ => Ok(()),
    }
}

fn bit_mask(value: &AssertionValue) -> Option<u64> {
    value.as_text()?.trim().parse().ok()
}

fn text_of(value: &AssertionValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn matches(filter: &Filter, entry: &Entry) -> bool {
    let texts = |attr: &str| entry.texts(base_name(attr)).collect::<Vec<_>>();
    // A value that is not UTF-8 matches only the same bytes (an objectGUID).
    let equal = |attr: &str, wanted: &AssertionValue| {
        entry
            .values(base_name(attr))
            .iter()
            .any(|value| match (value, wanted.as_text()) {
                (Value::Text(t), Some(w)) => fold(t) == fold(w),
                (Value::Text(_), None) => false,
                (Value::Binary(b), _) => b.as_slice() == wanted.as_bytes(),
            })
    };
    let ordered = |attr: &str, bound: &AssertionValue, wanted: fn(std::cmp::Ordering) -> bool| {
        bound
            .as_text()
            .is_some_and(|b| texts(attr).iter().any(|t| wanted(compare(t, b))))
    };
    match filter {
        Filter::And(fs) => fs.iter().all(|f| matches(f, entry)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, entry)),
        Filter::Not(f) => !matches(f, entry),
        Filter::Present(a) => {
            a.eq_ignore_ascii_case("objectClass") || !entry.values(base_name(a)).is_empty()
        }
        Filter::Equal(a, v) | Filter::Approximate(a, v)
            if a.eq_ignore_ascii_case("objectClass") =>
        {
            v.as_text().is_some_and(|v| {
                texts(a)
                    .iter()
                    .any(|class| superclasses(&fold(class)).any(|c| c == fold(v)))
            })
        }
        Filter::Equal(a, v) | Filter::Approximate(a, v) => equal(a, v),
        Filter::GreaterOrEqual(a, v) => ordered(a, v, std::cmp::Ordering::is_ge),
        Filter::LessOrEqual(a, v) => ordered(a, v, std::cmp::Ordering::is_le),
        Filter::Substring {
            attribute,
            initial,
            any,
            last,
        } => {
            // A part that is not UTF-8 is never inside a text value.
            let (Some(initial), Some(last)) = (folded(initial), folded(last)) else {
                return false;
            };
            let Some(any) = any
                .iter()
                .map(|v| v.as_text().map(fold))
                .collect::<Option<Vec<_>>>()
            else {
                return false;
            };
            texts(attribute)
                .iter()
                .any(|t| substring_match(&fold(t), initial.as_deref(), &any, last.as_deref()))
        }
        Filter::Extensible {
            attribute: Some(a),
            rule: None,
            value,
            dn_attributes: false,
        } => equal(a, value),
        Filter::Extensible {
            attribute: Some(attribute),
            rule: Some(rule),
            value,
            dn_attributes: false,
        } => {
            let Some(mask) = bit_mask(value) else {
                return false;
            };
            let all_bits = rule == BIT_AND;
            texts(attribute)
                .iter()
                .any(|t| match t.trim().parse::<i64>() {
                    Ok(v) => {
                        let v = v as u64;
                        if all_bits {
                            v & mask == mask
                        } else {
                            v & mask != 0
                        }
                    }
                    Err(_) => false,
                })
        }
        // Refused by `evaluable` before any entry is matched.
        Filter::Extensible { .. } => false,
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

/// An optional substring part folded: `None` when it is there but not UTF-8.
fn folded(part: &Option<AssertionValue>) -> Option<Option<String>> {
    match part {
        None => Some(None),
        Some(v) => v.as_text().map(|t| Some(fold(t))),
    }
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

fn substring_match(value: &str, initial: Option<&str>, any: &[String], last: Option<&str>) -> bool {
    let mut rest = value;
    if let Some(i) = initial {
        match rest.strip_prefix(i) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for part in any {
        match rest.find(part.as_str()) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    match last {
        Some(l) => rest.ends_with(l),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new("uid=x,dc=example");
        for (k, v) in pairs {
            e.push(k, Value::Text(v.to_string()));
        }
        e
    }

    fn m(filter: &str, e: &Entry) -> bool {
        EntryFilter::parse(filter)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(e)
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
        assert!(m("(uid~=Ada)", &ada));
        assert!(m("(uid:=ADA)", &ada));
        assert!(m("(userAccountControl:1.2.840.113556.1.4.803:=2)", &ada));
        assert!(!m(
            "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
            &ada
        ));
        assert!(m("(userAccountControl:1.2.840.113556.1.4.804:=6)", &ada));
        assert!(m("(cn=Ada\\20Lovelace)", &ada));
        assert!(m("(&)", &ada), "the empty and is true");
        assert!(!m("(|)", &ada), "the empty or is false");
    }

    #[test]
    fn binary_values_match_their_bytes_only() {
        let mut e = entry(&[("uid", "ada")]);
        e.push("objectGUID", Value::Binary(vec![0xa1, 0xff, 0x00]));
        assert!(m("(objectGUID=\\a1\\ff\\00)", &e));
        assert!(!m("(objectGUID=\\a1\\ff)", &e));
        assert!(
            !m("(uid=\\ff)", &e),
            "bytes that are not UTF-8 never equal text"
        );
        assert!(!m("(uid=a*\\ff)", &e));
        assert!(!m("(uid>=\\ff)", &e));
    }

    /// The syntax `config` checks with is the one a server search goes through: ldap3 takes a
    /// filter exactly when [`Filter::parse`] does (it also takes a bare `a=b` and none of the
    /// white space around a filter, which `config` trims).
    fn agrees_with_ldap3(text: &str) -> Result<(), String> {
        let ours = Filter::parse(text);
        let theirs = ldap3::parse_filter(text);
        if ours.is_ok() == theirs.is_ok() {
            Ok(())
        } else {
            Err(format!("{text:?}: ours {ours:?}, ldap3 {theirs:?}"))
        }
    }

    #[test]
    fn ldap3_takes_the_filters_the_syntax_takes() {
        for text in [
            "(objectClass=person)",
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            "(memberOf:1.2.840.113556.1.4.1941:=cn=x,dc=y)",
            "(ou:dn:=People)",
            "(:dn:2.5.13.5:=x)",
            "(cn;lang-en=a*b*c)",
            "(cn=*)",
            "(cn=\\2a*)",
            "(objectGUID=\\a1\\ff)",
            "(&)",
            "(uid=a b)",
            "(cn=a**b)",
            "(cn=**)",
            "(a>=1*)",
            "(01=x)",
            "(1.=x)",
            "(cn;=x)",
            "(under_score=x)",
            "(cn:dnx:=y)",
            "(:=x)",
            "(!(a=b)(c=d))",
            "(a=\\4)",
            "(a=\0)",
            "(& (a=b))",
        ] {
            agrees_with_ldap3(text).unwrap();
        }
    }

    /// Filters near the grammar: items of every kind, nested, with values that may need
    /// escapes; the test below also breaks them one character at a time.
    fn filter_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let attribute = prop::sample::select(vec!["cn", "objectClass", "2.5.4.3", "cn;x-1", ""]);
        let operator = prop::sample::select(vec![
            "=",
            ">=",
            "<=",
            "~=",
            ":=",
            ":dn:=",
            ":1.2.3:=",
            ":dn:caseExactMatch:=",
            "<",
        ]);
        let leaf = (attribute, operator, "[ab*\\\\0-9f()é ]{0,5}")
            .prop_map(|(a, o, v)| format!("({a}{o}{v})"));
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("(&{})", v.concat())),
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("(|{})", v.concat())),
                inner.prop_map(|f| format!("(!{f})")),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn ldap3_and_the_syntax_agree_near_the_grammar(
            text in filter_text(),
            at in 0usize..60,
            with in proptest::sample::select(vec!["", "(", ")", "*", "\\", "=", ":", " ", "a"]),
        ) {
            agrees_with_ldap3(&text).map_err(proptest::test_runner::TestCaseError::fail)?;
            let chars: Vec<char> = text.chars().collect();
            let at = at.min(chars.len().saturating_sub(1));
            // One character replaced by `with` (or removed).
            let broken = chars[..at].iter().collect::<String>()
                + with
                + &chars[(at + 1).min(chars.len())..].iter().collect::<String>();
            if broken.starts_with('(') && broken.trim_end() == broken {
                agrees_with_ldap3(&broken).map_err(proptest::test_runner::TestCaseError::fail)?;
            }
        }

        #[test]
        fn ldap3_and_the_syntax_agree_on_any_text(
            body in "[()&|!=*~<>:;.\\\\a-dn0-2 \\u{0}é-]{0,30}"
        ) {
            let text = format!("({body}");
            if text.trim_end() == text {
                agrees_with_ldap3(&text).map_err(proptest::test_runner::TestCaseError::fail)?;
            }
        }
    }

    #[test]
    fn what_cannot_be_evaluated_here_is_refused_up_front() {
        for (filter, says) in [
            (
                "(memberOf:1.2.840.113556.1.4.1941:=cn=x)",
                "matching rule 1.2.840.113556.1.4.1941 is not supported for ldif: sources",
            ),
            ("(|(uid=a)(ou:dn:=People))", "`:dn`"),
            ("(:caseExactMatch:=x)", "without an attribute"),
            (
                "(userAccountControl:1.2.840.113556.1.4.803:=two)",
                "needs a number, not `two`",
            ),
        ] {
            let e = EntryFilter::parse(filter).unwrap_err();
            assert!(e.contains(says), "{filter}: {e}");
            assert!(e.contains(filter), "the filter is named: {e}");
        }
        let e = EntryFilter::parse("(uid=a").unwrap_err();
        assert!(e.contains("is not closed"), "{e}");
    }
}
