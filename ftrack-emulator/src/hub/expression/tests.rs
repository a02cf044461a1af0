//! Unit tests of the hub expression language: grammar, evaluation and the strict
//! refusals.

use super::{parse, Expr, Op, MAX_DEPTH};
use serde_json::{json, Value};

fn event() -> Value {
    json!({
        "id": "e1",
        "topic": "ftrack.action.launch",
        "data": {"actionIdentifier": "ldap2ftrack.sync", "count": 3, "flag": true,
                 "empty": "", "nested": {"deep": "x y"}, "list": ["a"]},
        "source": {"id": "hub-1", "user": {"username": "alice@studio.test"}},
        "target": "",
        "sent": null,
        "inReplyToEvent": null
    })
}

fn m(expr: &str) -> bool {
    parse(expr)
        .unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"))
        .matches(&event())
}

fn refused(expr: &str) -> String {
    match parse(expr) {
        Ok(e) => panic!("{expr:?} should be refused, parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn equality_and_dotted_keys() {
    assert!(m("topic=ftrack.action.launch"));
    assert!(!m("topic=ftrack.action.discover"));
    assert!(m("data.actionIdentifier=ldap2ftrack.sync"));
    assert!(m("source.user.username=alice@studio.test"));
    assert!(m("data.nested.deep=\"x y\""));
    assert!(m("data.nested.deep='x y'"));
}

#[test]
fn every_operator_compares_strings() {
    assert!(m("topic!=ftrack.update"));
    assert!(!m("topic!=ftrack.action.launch"));
    assert!(m("data.actionIdentifier>ldap"));
    assert!(m("data.actionIdentifier>=ldap2ftrack.sync"));
    assert!(!m("data.actionIdentifier>ldap2ftrack.sync"));
    assert!(m("data.actionIdentifier<m"));
    assert!(m("data.actionIdentifier<=ldap2ftrack.sync"));
    assert!(!m("data.actionIdentifier<ldap2ftrack.sync"));
    // String order, not numeric: "10" < "9".
    let ev = json!({"n": "10"});
    assert!(parse("n<9").unwrap().matches(&ev));
}

#[test]
fn a_missing_key_never_matches_with_any_operator() {
    for op in ["=", "!=", ">=", "<=", ">", "<"] {
        assert!(!m(&format!("data.missing{op}x")), "op {op}");
        assert!(!m(&format!("data.nested.deep.deeper{op}x")), "op {op}");
        assert!(!m(&format!("nothing.at.all{op}x")), "op {op}");
    }
    assert!(m("not data.missing=x"));
}

#[test]
fn non_string_values_never_match() {
    for expr in [
        "data.count=3",
        "data.count!=4",
        "data.count>1",
        "data.flag=true",
        "data.flag!=false",
        "sent=None",
        "sent!=x",
        "data.list=a",
        "data.nested=x",
        "data.list.0=a",
    ] {
        assert!(!m(expr), "{expr}");
    }
}

#[test]
fn trailing_star_is_a_prefix_test_for_equality_only() {
    assert!(m("topic=ftrack.action.*"));
    assert!(m("topic=ftrack.*"));
    assert!(m("topic=*"));
    assert!(m("topic=\"ftrack.action*\""));
    // Python's client would match a substring; the emulator does not.
    assert!(!m("topic=action.*"));
    assert!(!m("topic=launch*"));
    // `!=` compares the literal text, star included.
    assert!(m("topic!=ftrack.*"));
    // The empty string is a string.
    assert!(m("data.empty=*"));
    assert!(!m("data.empty=x*"));
}

#[test]
fn and_or_not_and_parentheses() {
    assert!(m(
        "topic=ftrack.action.launch and data.actionIdentifier=ldap2ftrack.sync"
    ));
    assert!(!m(
        "topic=ftrack.action.launch and data.actionIdentifier=other"
    ));
    assert!(m("topic=x or topic=ftrack.action.launch"));
    assert!(!m("topic=x or topic=y"));
    assert!(m("not topic=x"));
    assert!(!m("not topic=ftrack.action.launch"));
    assert!(m("not not topic=ftrack.action.launch"));
    // `and` binds tighter than `or`: true or (false and false).
    assert!(m("topic=ftrack.* or topic=x and topic=y"));
    assert!(!m("(topic=ftrack.* or topic=x) and topic=y"));
    // `not` binds tighter than `and`.
    assert!(!m("not topic=x and topic=y"));
    assert!(m("not (topic=x and topic=y)"));
    assert!(m("((topic=ftrack.action.launch))"));
    assert_eq!(
        parse("a=1 and b=2 and c=3").unwrap(),
        Expr::And(vec![
            Expr::Cond {
                key: vec!["a".into()],
                op: Op::Eq,
                value: "1".into()
            },
            Expr::Cond {
                key: vec!["b".into()],
                op: Op::Eq,
                value: "2".into()
            },
            Expr::Cond {
                key: vec!["c".into()],
                op: Op::Eq,
                value: "3".into()
            },
        ])
    );
}

#[test]
fn keywords_are_case_insensitive_words() {
    assert!(m("topic=x OR topic=ftrack.action.launch"));
    assert!(m("NOT topic=x AnD topic=ftrack.action.launch"));
    assert!(m("Not(topic=x)"));
    // Keyword-like prefixes of keys stay keys.
    let ev = json!({"notes": "n", "order": "o", "android": "a"});
    assert!(parse("notes=n and order=o and android=a")
        .unwrap()
        .matches(&ev));
    // A bare value swallows letters: `1and` is one value.
    assert_eq!(
        parse("a=1and").unwrap(),
        Expr::Cond {
            key: vec!["a".into()],
            op: Op::Eq,
            value: "1and".into()
        }
    );
}

#[test]
fn whitespace_around_tokens_is_allowed() {
    assert!(m("  topic = ftrack.action.launch  "));
    assert!(m("topic\t!=\tx\nand\n(topic>=a)"));
    assert!(m(
        "topic=\"ftrack.action.launch\"and data.actionIdentifier=ldap2ftrack.sync"
    ));
}

#[test]
fn values_take_the_documented_characters() {
    let ev = json!({"v": "a-b_c,d.e/f*g@h+i"});
    assert!(parse("v=a-b_c,d.e/f*g@h+i").unwrap().matches(&ev));
    let ev = json!({"v": "sp ace (and) \"q\" é"});
    assert!(parse("v='sp ace (and) \"q\" é'").unwrap().matches(&ev));
}

#[test]
fn malformed_expressions_are_refused_with_a_position() {
    let cases = [
        ("", "empty"),
        ("   ", "empty"),
        ("topic", "operator"),
        ("topic=", "value"),
        ("=x", "key"),
        ("topic==x", "value"),
        ("topic=x and", "key"),
        ("topic=x or or topic=y", "keyword `or`"),
        ("(topic=x", "`)`"),
        ("topic=x)", "end of the expression"),
        ("topic=x topic=y", "end of the expression"),
        ("and=x", "keyword `and`"),
        ("1abc=x", "key"),
        (".topic=x", "key"),
        ("data..x=1", "empty part"),
        ("data.x.=1", "empty part"),
        ("topic=\"x", "not closed"),
        ("topic=\"a\\\"b\"", "backslash"),
        ("topic='a\\b'", "backslash"),
        ("topic=\"\"", "empty quoted"),
        ("topic=\"a\nb\"", "span lines"),
        ("topic=\"a\"\"b\"", "end of the expression"),
        ("topic=a:b", "end of the expression"),
        ("topic=é", "value"),
        ("tôpic=x", "operator"),
        ("topic~x", "operator"),
    ];
    for (expr, needle) in cases {
        let msg = refused(expr);
        assert!(msg.contains(needle), "{expr:?}: {msg}");
        assert!(msg.contains("position"), "{expr:?}: {msg}");
    }
    let err = parse("topic=x and 1=2").unwrap_err();
    assert_eq!(err.position, 12);
}

#[test]
fn nesting_is_capped() {
    let ok = format!("{}topic=x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = format!(
        "{}topic=x{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(refused(&deep).contains("nest deeper"));
    let nots = format!("{}topic=x", "not ".repeat(100_000));
    assert!(refused(&nots).contains("nest deeper"));
    let opens = "(".repeat(1_000_000);
    assert!(refused(&opens).contains("nest deeper"));
}

#[test]
fn targets_match_subscriber_metadata() {
    let meta = json!({"id": "abc", "applicationId": "ftrack.client.web", "user": {"id": "u1"}});
    assert!(parse("id=abc").unwrap().matches(&meta));
    assert!(!parse("id=abd").unwrap().matches(&meta));
    assert!(parse("applicationId=ftrack.client.web and user.id=\"u1\"")
        .unwrap()
        .matches(&meta));
}

#[test]
fn garbage_never_panics() {
    let alphabet = [
        "a", "=", "!", "<", ">", "(", ")", " ", "\"", "'", ".", "*", "and", "or", "NOT", "\\", "é",
        "\n", "_", "1",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..(seed % 12) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if let Ok(e) = parse(&s) {
            let _ = e.matches(&event());
        }
    }
}
