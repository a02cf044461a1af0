//! The rules SDKs' shared DN vectors (`rules-sdk/testdata/helpers.json`) against the host's
//! DN code, so that the host, the Rust SDK and the Python SDK cannot drift apart: a rule that
//! calls `dn::same` must get the answer the host's membership comparison gives.
//!
//! The host keeps DNs in canonical form only, so its answers are mapped onto the SDK
//! functions: `normalize` is the canonical text, `same` equal canonical forms, `is_under`
//! [`NormalizedDn::is_within`], `escape` [`escape_value`], `rdn_value` the leaf value and
//! `parse` the canonical RDNs' parts (the host lower-cases values, so those two are compared
//! with the expected values lower-cased). `parent`, `values_of` and `domain` have no host
//! counterpart. The SDKs never fail on a malformed DN; the host refuses one, which a case
//! records with `"host_refuses": "why"`.

use super::dn::{escape_value, NormalizedDn};
use serde_json::{json, Value};

/// The `dn.*` functions of the vectors the host has no counterpart for.
const NOT_IN_THE_HOST: [&str; 3] = ["dn.parent", "dn.values_of", "dn.domain"];

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules-sdk/testdata/helpers.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The host's answer, or `Err` when the host refuses an argument as a DN.
fn host(function: &str, args: &[&str]) -> Result<Value, String> {
    let dn = |i: usize| NormalizedDn::parse(args[i]).map_err(|e| e.to_string());
    Ok(match function {
        "dn.normalize" => json!(dn(0)?.as_str()),
        "dn.same" => json!(dn(0)? == dn(1)?),
        "dn.is_under" => json!(dn(0)?.is_within(&dn(1)?)),
        "dn.escape" => json!(escape_value(args[0])),
        "dn.rdn_value" => json!(dn(0)?.leaf_value()),
        "dn.parse" => {
            let parsed = dn(0)?;
            let parts: Vec<[String; 2]> = parsed
                .rdns()
                .flat_map(|rdn| split_avas(rdn))
                .map(|ava| {
                    let one = NormalizedDn::parse(ava).expect("a canonical AVA parses");
                    let (ty, _) = ava.split_once('=').expect("a canonical AVA has `=`");
                    [ty.to_string(), one.leaf_value().unwrap_or_default()]
                })
                .collect();
            json!(parts)
        }
        other => {
            panic!("no host counterpart for `{other}`: map it here or list it in NOT_IN_THE_HOST")
        }
    })
}

/// The `type=value` parts of a canonical RDN (split at unescaped `+`).
fn split_avas(rdn: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in rdn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '+' => {
                parts.push(&rdn[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&rdn[start..]);
    parts
}

/// Values lower-cased, as the host's canonical form holds them.
fn lowered(value: &Value) -> Value {
    match value {
        Value::String(s) => json!(s.to_lowercase()),
        Value::Array(items) => Value::Array(items.iter().map(lowered).collect()),
        other => other.clone(),
    }
}

#[test]
fn the_host_gives_the_sdk_vectors_answers() {
    let vectors = vectors();
    let functions = vectors["functions"]
        .as_object()
        .expect("a `functions` object");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (function, cases) in functions.iter().filter(|(f, _)| f.starts_with("dn.")) {
        if NOT_IN_THE_HOST.contains(&function.as_str()) {
            continue;
        }
        for case in cases.as_array().expect("a list of cases") {
            let args: Vec<&str> = case["args"]
                .as_array()
                .expect("`args` is a list")
                .iter()
                .map(|a| a.as_str().expect("string arguments"))
                .collect();
            let wanted = match function.as_str() {
                "dn.rdn_value" | "dn.parse" => lowered(&case["expected"]),
                _ => case["expected"].clone(),
            };
            let got = host(function, &args);
            checked += 1;
            let problem = match (&got, case.get("host_refuses")) {
                (Err(_), Some(_)) => None,
                (Ok(got), Some(why)) => Some(format!(
                    "gives {got}, but the case says the host refuses it ({why}): delete \
                     `host_refuses` if the host is now right"
                )),
                (Ok(got), None) if *got != wanted => {
                    Some(format!("gives {got}, expected {wanted}"))
                }
                (Ok(_), None) => None,
                (Err(e), None) => Some(format!("refuses it ({e}), expected {wanted}")),
            };
            if let Some(problem) = problem {
                failures.push(format!("{function}({args:?}): the host {problem}"));
            }
        }
    }
    assert!(checked > 30, "only {checked} DN vectors found");
    assert!(
        failures.is_empty(),
        "{} DN vectors fail against the host:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_dn_function_of_the_vectors_is_mapped_or_excused() {
    let vectors = vectors();
    for function in vectors["functions"]
        .as_object()
        .expect("a `functions` object")
        .keys()
        .filter(|f| f.starts_with("dn.") && !NOT_IN_THE_HOST.contains(&f.as_str()))
    {
        // Panics with what to do for a function `host` does not map.
        let _ = host(function, &["cn=x", "cn=x"]);
    }
}
