//! The shared helper vectors (`testdata/helpers.json`) against the Rust SDK: the same file
//! `python/tests/test_vectors.py` runs against the Python SDK, so a rule gives the same
//! answers in either language. Also checks that the Python SDK's copies of Rust's character
//! classes (`python/src/ldap2ftrack_rules/_unicode.py`) match this toolchain.

use ldap2ftrack_rules::{dn, email, names};
use serde_json::{json, Value};
use std::path::Path;

/// The functions the vectors cover; the Python test checks the same set against the Python
/// modules' public functions. A new helper gets vectors and a line here.
const FUNCTIONS: [&str; 18] = [
    "names.normalize_username",
    "names.is_valid_username",
    "names.normalize_group",
    "names.same_group",
    "names.strip_prefix",
    "names.title_case",
    "email.is_valid",
    "email.normalize",
    "email.domain",
    "dn.parse",
    "dn.rdn_value",
    "dn.parent",
    "dn.values_of",
    "dn.domain",
    "dn.normalize",
    "dn.same",
    "dn.is_under",
    "dn.escape",
];

fn call(function: &str, args: &[Value]) -> Value {
    let s = |i: usize| {
        args.get(i)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{function}: argument {i} must be a string"))
    };
    match function {
        "names.normalize_username" => json!(names::normalize_username(s(0))),
        "names.is_valid_username" => json!(names::is_valid_username(s(0))),
        "names.normalize_group" => json!(names::normalize_group(s(0))),
        "names.same_group" => json!(names::same_group(s(0), s(1))),
        "names.strip_prefix" => json!(names::strip_prefix(s(0), s(1))),
        "names.title_case" => json!(names::title_case(s(0))),
        "email.is_valid" => json!(email::is_valid(s(0))),
        "email.normalize" => json!(email::normalize(s(0))),
        "email.domain" => json!(email::domain(s(0))),
        "dn.parse" => json!(dn::parse(s(0))
            .into_iter()
            .map(|r| [r.attr, r.value])
            .collect::<Vec<_>>()),
        "dn.rdn_value" => json!(dn::rdn_value(s(0))),
        "dn.parent" => json!(dn::parent(s(0))),
        "dn.values_of" => json!(dn::values_of(s(0), s(1))),
        "dn.domain" => json!(dn::domain(s(0))),
        "dn.normalize" => json!(dn::normalize(s(0))),
        "dn.same" => json!(dn::same(s(0), s(1))),
        "dn.is_under" => json!(dn::is_under(s(0), s(1))),
        "dn.escape" => json!(dn::escape(s(0))),
        other => panic!("no Rust function for the vectors of `{other}`: add it to `call`"),
    }
}

fn sdk_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_rust_sdk_gives_the_vectors_answers() {
    let path = sdk_dir().join("testdata/helpers.json");
    let text = std::fs::read_to_string(&path).expect("testdata/helpers.json");
    let vectors: Value = serde_json::from_str(&text).expect("helpers.json is JSON");
    let functions = vectors["functions"]
        .as_object()
        .expect("a `functions` object");
    let mut named: Vec<&str> = functions.keys().map(String::as_str).collect();
    named.sort_unstable();
    let mut covered = FUNCTIONS.to_vec();
    covered.sort_unstable();
    assert_eq!(
        named, covered,
        "helpers.json and FUNCTIONS list different functions"
    );

    let mut failures = Vec::new();
    let mut known_bugs = 0;
    for (function, cases) in functions {
        for case in cases.as_array().expect("a list of cases") {
            let args = case["args"].as_array().expect("`args` is a list");
            let got = call(function, args);
            let (wanted, what) = match case.get("rust_bug") {
                Some(bug) => {
                    known_bugs += 1;
                    (&bug["actual"], "the known Rust bug's answer (if Rust now gives `expected`, it is fixed: delete the case's `rust_bug`)")
                }
                None => (&case["expected"], "expected"),
            };
            if &got != wanted {
                failures.push(format!(
                    "{function}({}): got {got}, {what}: {wanted}",
                    Value::from(args.clone())
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{known_bugs} vectors record a known Rust bug (see their `rust_bug`)");
}

/// The ranges of a `NAME = """..."""` table in `_unicode.py`, as (first, last) code points.
fn python_table(source: &str, name: &str) -> Vec<(u32, u32)> {
    let start = source
        .find(&format!("{name} = \"\"\""))
        .unwrap_or_else(|| panic!("_unicode.py has no {name} table"))
        + name.len()
        + 6;
    let end = start
        + source[start..]
            .find("\"\"\"")
            .expect("the table's closing quotes");
    source[start..end]
        .split_whitespace()
        .map(|item| {
            let (first, last) = item.split_once('-').unwrap_or((item, item));
            let hex = |h: &str| u32::from_str_radix(h, 16).expect("a hex code point");
            (hex(first), hex(last))
        })
        .collect()
}

fn rust_table(class: impl Fn(char) -> bool) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for c in (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|&c| class(c))
    {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == c as u32 => *last = c as u32,
            _ => ranges.push((c as u32, c as u32)),
        }
    }
    ranges
}

#[test]
fn the_python_sdks_character_tables_match_this_toolchain() {
    let path = sdk_dir().join("python/src/ldap2ftrack_rules/_unicode.py");
    let source = std::fs::read_to_string(&path).expect("_unicode.py");
    let regenerate =
        "the tables in rules-sdk/python/src/ldap2ftrack_rules/_unicode.py are not this \
                      toolchain's: replace them with what `cargo test -p ldap2ftrack-rules-sdk \
                      --test vectors -- --ignored --nocapture` prints";
    assert_eq!(
        python_table(&source, "WHITE_SPACE"),
        rust_table(char::is_whitespace),
        "{regenerate}"
    );
    assert_eq!(
        python_table(&source, "ALPHANUMERIC"),
        rust_table(|c| !c.is_ascii() && c.is_alphanumeric()),
        "{regenerate}"
    );
}

/// Prints the tables for `_unicode.py` (run with `--ignored --nocapture` after a toolchain
/// update makes the test above fail).
#[test]
#[ignore]
fn print_the_python_character_tables() {
    let format = |ranges: Vec<(u32, u32)>| {
        let items: Vec<String> = ranges
            .into_iter()
            .map(|(first, last)| {
                if first == last {
                    format!("{first:04X}")
                } else {
                    format!("{first:04X}-{last:04X}")
                }
            })
            .collect();
        let mut lines = vec![String::new()];
        for item in items {
            let line = lines.last_mut().expect("a line");
            if line.len() + item.len() + 1 > 92 {
                lines.push(item);
            } else {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&item);
            }
        }
        lines.join("\n")
    };
    println!(
        "WHITE_SPACE = \"\"\"\n{}\n\"\"\"\n",
        format(rust_table(char::is_whitespace))
    );
    println!(
        "ALPHANUMERIC = \"\"\"\n{}\n\"\"\"",
        format(rust_table(|c| !c.is_ascii() && c.is_alphanumeric()))
    );
}
