//! Random and garbage query input must never panic or hang: every expression yields
//! either a page or an error object. Deterministic pseudo-random generation (no seed
//! files, reproducible failures: the failing input is printed).

use ftrack_emulator::actions::Engine;
use ftrack_emulator::counters::Counters;
use ftrack_emulator::query::parser::KEYWORDS;
use ftrack_emulator::query::{execute, parse, QueryCache};
use serde_json::json;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// Everything but the keywords (taken from the parser itself): punctuation, quotes, names.
const OTHER_PIECES: &[&str] = &[
    "(",
    ")",
    ",",
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "\"",
    "'",
    "\"x\"",
    "'y'",
    "User",
    "Group",
    "Membership",
    "Metadata",
    "UserSecurityRole",
    "id",
    "username",
    "memberships",
    "group",
    "name",
    "parent",
    "children",
    "metadata",
    "key",
    "value",
    "user.username",
    "memberships.group.name",
    "is_active",
    "True",
    "False",
    "None",
    "0",
    "1",
    "-3",
    "1e999",
    "500",
    "a1b2-c3d4",
    "%",
    "%a%",
    ".",
    "..",
    "select id from User where",
    "ü",
    "\u{0}",
    "!",
];

fn engine() -> Engine {
    let mut e = Engine::new("admin");
    let mut c = Counters::default();
    let ops = json!([
        {"action": "create", "entity_type": "Group", "entity_data": {"id": "g1", "name": "a"}},
        {"action": "create", "entity_type": "Group", "entity_data": {"id": "g2", "name": "b", "parent_id": "g1"}},
        {"action": "create", "entity_type": "User", "entity_data": {"id": "u1", "username": "x"}},
        {"action": "create", "entity_type": "Membership", "entity_data": {"user_id": "u1", "group_id": "g2"}},
        {"action": "create", "entity_type": "Metadata", "entity_data": {"parent_id": "u1", "parent_type": "User", "key": "k", "value": "v"}},
    ]);
    e.execute_batch(ops.as_array().unwrap(), &mut c).unwrap();
    e
}

fn check(engine: &Engine, cache: &mut QueryCache, expr: &str) {
    let t = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = parse(expr);
        let _ = execute(&engine.store, cache, expr);
    }));
    assert!(r.is_ok(), "panicked on {expr:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "too slow on {expr:?}");
}

#[test]
fn token_soup_never_panics() {
    let engine = engine();
    let mut cache = QueryCache::default();
    let pieces: Vec<&str> = KEYWORDS.iter().chain(OTHER_PIECES).copied().collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let n = 1 + rng.below(14);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(rng.pick(&pieces));
            if rng.below(4) != 0 {
                s.push(' ');
            }
        }
        check(&engine, &mut cache, &s);
    }
}

#[test]
fn random_characters_never_panic() {
    let engine = engine();
    let mut cache = QueryCache::default();
    let mut rng = Rng(42);
    let alphabet: Vec<char> = "abcUserGroupid ()'\",.=!<>%_-0123456789\t\néß漢\u{1f600}\u{0}"
        .chars()
        .collect();
    for _ in 0..20_000 {
        let n = rng.below(60);
        let s: String = (0..n)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        check(&engine, &mut cache, &s);
        check(
            &engine,
            &mut cache,
            &format!("select id from User where {s}"),
        );
    }
}

/// Backslashes are the one character with a meaning only inside quotes: strings made of
/// quotes, backslashes and little else must also end in a page or an error.
#[test]
fn backslashes_and_quotes_never_panic() {
    let engine = engine();
    let mut cache = QueryCache::default();
    let mut rng = Rng(0x5eed);
    let alphabet: Vec<char> = "\\\\\\\"\"''x %é\u{0}".chars().collect();
    for _ in 0..20_000 {
        let n = rng.below(24);
        let s: String = (0..n)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        check(
            &engine,
            &mut cache,
            &format!("select id from User where username is {s}"),
        );
        check(
            &engine,
            &mut cache,
            &format!("select id from User where username in (\"{s}\", '{s}')"),
        );
    }
}

#[test]
fn mutated_valid_queries_never_panic() {
    let engine = engine();
    let mut cache = QueryCache::default();
    let seeds = [
        "select id, username, memberships.group.name from User where memberships any (group.parent has (name is \"a\")) order by username desc offset 0 limit 10",
        "select key, value from Metadata where (parent_id is \"u1\"and key is \"k\") or (parent_id is 'u2' and key is 'k')",
        "select id from User where id in (select user_id from Membership where group.name like '%b%') and not is_active is False",
        "Group where parent_id is None and children any () limit 2 offset 1",
    ];
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let mut s: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        for _ in 0..1 + rng.below(4) {
            if s.is_empty() {
                break;
            }
            let i = rng.below(s.len());
            match rng.below(3) {
                0 => {
                    s.remove(i);
                }
                1 => s.insert(i, ['(', ')', '"', '\'', ',', ' ', '.'][rng.below(7)]),
                _ => {
                    let j = rng.below(s.len());
                    s.swap(i, j);
                }
            }
        }
        let s: String = s.into_iter().collect();
        check(&engine, &mut cache, &s);
    }
}

#[test]
fn valid_queries_still_answer_after_fuzzing() {
    let engine = engine();
    let mut cache = QueryCache::default();
    let p = execute(
        &engine.store,
        &mut cache,
        "select memberships.group.parent.name from User where username is x",
    )
    .unwrap();
    let data: serde_json::Value = serde_json::from_str(p.data.get()).unwrap();
    assert_eq!(p.rows, 1);
    assert_eq!(data[0]["memberships"][0]["group"]["parent"]["name"], "a");
    assert_eq!(data[0]["__entity_type__"], "User");
    // Pathological sizes are rejected or handled quickly.
    let long_list = format!(
        "User where id in ({})",
        (0..50_000)
            .map(|i| format!("i{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    check(&engine, &mut cache, &long_list);
    check(&engine, &mut cache, &"(".repeat(100_000));
    check(&engine, &mut cache, &"not ".repeat(100_000));
    check(
        &engine,
        &mut cache,
        &format!("User where username like '{}'", "%a".repeat(2_000)),
    );
}
