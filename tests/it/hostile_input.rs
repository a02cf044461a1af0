//! Hostile input, property-tested: whatever bytes arrive, the parsers answer with a value or
//! an error — never a panic — and the transformations keep their promises (a quoted value
//! stays one value; normalised DNs are stable; LDIF written is LDIF read back).
//!
//! Bounded by proptest's case count: `PROPTEST_CASES=20000 cargo test --test it
//! hostile_input::`
//! runs a longer search (see README, Development).

use ldap2ftrack::config::Config;
use ldap2ftrack::directory::filter::EntryFilter;
use ldap2ftrack::directory::{ldif, Entry, Value};
use ldap2ftrack::ftrack::query;
use ldap2ftrack::ldap_syntax::{Filter, NormalizedDn};
use proptest::prelude::*;
use std::path::Path;

/// Strings biased towards the characters each grammar gives meaning to.
fn tricky(alphabet: &'static str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(chars),
            1 => any::<char>(),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn dn_parsing_never_panics_and_normal_forms_are_stable(text in tricky("cnoudcCN=,+;\\\"#<> 0123456789abcdefÄé")) {
        if let Ok(dn) = NormalizedDn::parse(&text) {
            let again = NormalizedDn::parse(dn.as_str());
            prop_assert_eq!(again.as_ref(), Ok(&dn), "normal form of {:?} is not stable", text);
            let _ = dn.leaf_value();
            let _ = dn.rdns().count();
        }
    }

    #[test]
    fn filter_parsing_never_panics(text in tricky("()&|!=*~<>:\\objectClass0123456789.ab ")) {
        if let Ok(filter) = Filter::parse(&text) {
            let _ = filter.attributes();
            if let Ok(filter) = EntryFilter::new(filter) {
                let mut entry = Entry::new("uid=x,dc=example");
                entry.push("objectClass", Value::Text("person".into()));
                let _ = filter.matches(&entry);
            }
        }
    }

    #[test]
    fn ldif_parsing_never_panics(bytes in prop::collection::vec(prop_oneof![
        3 => prop::sample::select(b"dn: \n:<#-=,abcuid\r\t+/=".to_vec()),
        1 => any::<u8>(),
    ], 0..200)) {
        let _ = ldif::parse(&bytes);
    }

    #[test]
    fn ldif_written_is_ldif_read_back(values in prop::collection::vec(
        prop_oneof![
            any::<String>().prop_map(Value::Text),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Binary),
        ],
        0..6,
    )) {
        let mut entry = Entry::new("cn=Doe\\, Jane,dc=example");
        for (i, v) in values.into_iter().enumerate() {
            // Binary values keep their bytes only under a binary attribute name.
            let name = match &v { Value::Binary(_) => "objectGUID".to_string(), Value::Text(_) => format!("description{i}") };
            entry.push(&name, v);
        }
        let text = ldif::write(std::slice::from_ref(&entry));
        let parsed = ldif::parse(text.as_bytes()).map_err(|(l, m)| TestCaseError::fail(format!("line {l}: {m}\n{text}")))?;
        // Text values come back as text when they are UTF-8, which they are.
        prop_assert_eq!(parsed, vec![entry]);
    }

    #[test]
    fn config_parsing_never_panics(text in tricky("[]=\"'.ldapurl_user_base_dn#\n{}, 0123456789%guards")) {
        let _ = Config::from_toml(&text, Path::new("/nonexistent/sync.toml"), &|_| None);
    }

    #[test]
    fn a_quoted_value_is_one_value(value in tricky("\"' andorlike%is\\()")) {
        // Read back by the emulator's own lexer: one string token, the value exactly.
        use ftrack_emulator::query::lexer::{lex, Tok};
        let quoted = query::quote(&value);
        let tokens = lex(&quoted).map_err(TestCaseError::fail)?;
        let kinds: Vec<Tok> = tokens.into_iter().map(|t| t.kind).collect();
        prop_assert_eq!(kinds, vec![Tok::Str(value.clone())], "{}", quoted);
    }
}

/// The same promise, end to end: hostile usernames go through the emulator's real query
/// parser and select exactly their own user.
#[tokio::test]
async fn quoted_usernames_select_exactly_themselves_on_the_emulator() {
    use serde_json::json;
    let emulator = ftrack_emulator::spawn(ftrack_emulator::EmulatorConfig::new("bot", "key"))
        .await
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 128,
        ..Default::default()
    });
    let names = tricky("\"' andorlike%is\\()x");
    // lower-cased → spelling, so names differing only in case are not created twice.
    let created = std::cell::RefCell::new(std::collections::BTreeMap::new());
    runner
        .run(&names, |name| {
            if name.trim().is_empty() {
                return Ok(());
            }
            let known = created.borrow().get(&name.to_lowercase()).cloned();
            match known {
                Some(existing) if existing != name => return Ok(()),
                Some(_) => {}
                None => {
                    created.borrow_mut().insert(name.to_lowercase(), name.clone());
                let id = uuid::Uuid::new_v4().to_string();
                emulator
                    .call(&[json!({"action": "create", "entity_type": "User", "entity_key": [id],
                        "entity_data": {"__entity_type__": "User", "id": id, "username": name, "is_active": true}})])
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                }
            }
            let expr = format!("select username from User where {}", query::equals("username", &name));
            let result = emulator
                .call(&[json!({"action": "query", "expression": expr})])
                .map_err(|e| TestCaseError::fail(format!("{expr}: {e:?}")))?;
            let rows = result[0]["data"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(rows.len(), 1, "{}", expr);
            prop_assert_eq!(rows[0]["username"].as_str(), Some(name.as_str()));
            Ok(())
        })
        .unwrap();
}
