//! Rule modules in a real run: the example modules built for wasm32-wasip2 (by
//! `tests/run.sh`) configured in sync.toml, pinned by hash, changing the plan as their
//! configuration says — and refused with exit 2 when pinned or configured wrongly.

use crate::support;

use ldap2ftrack::directory::{Entry, Value as LdapValue};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{entry, pairs, PlannedOp};

fn module(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples-rules/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the example rule modules with `bash tests/run.sh` (or `cargo build --release --target wasm32-wasip2 --manifest-path examples-rules/Cargo.toml`)",
            path.display()
        )
    });
    (path, format!("{:x}", Sha256::digest(&bytes)))
}

/// The studio above the people: its root, `ou=people`, and `animators` (ann and bob).
fn directory_head() -> Vec<Entry> {
    vec![
        entry(
            "dc=studio,dc=example",
            &[("objectClass", "organization"), ("o", "s")],
        ),
        entry(
            "ou=people,dc=studio,dc=example",
            &[("objectClass", "organizationalUnit"), ("ou", "people")],
        ),
        entry(
            "cn=animators,dc=studio,dc=example",
            &[
                ("objectClass", "groupOfNames"),
                ("cn", "animators"),
                ("member", "uid=ann,ou=people,dc=studio,dc=example"),
                ("member", "uid=bob,ou=people,dc=studio,dc=example"),
            ],
        ),
    ]
}

/// A person; `locked` marks the account disabled (ppolicy's pwdAccountLockedTime).
fn person(uid: &str, n: u32, locked: bool) -> Entry {
    let mut person = entry(
        format!("uid={uid},ou=people,dc=studio,dc=example"),
        &[
            ("objectClass", "inetOrgPerson"),
            ("uid", uid),
            ("cn", &format!("{uid} Person")),
            ("sn", "Person"),
            ("givenName", uid),
            ("mail", &format!("{uid}@studio.example")),
            ("entryUUID", &format!("00000000-0000-4000-8000-{n:012}")),
        ],
    );
    if locked {
        person.push(
            "pwdAccountLockedTime",
            LdapValue::Text("000001010000Z".into()),
        );
    }
    person
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(rules: &str, people: &[(&str, u32)]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("seed.json"),
            r#"{"SecurityRole": [{"id": "10000000-0000-4000-8000-000000000001", "name": "Artist"}]}"#,
        )
        .unwrap();
        let case = Case { dir };
        case.set_rules(rules);
        case.set_people(people);
        case
    }

    fn set_rules(&self, rules: &str) {
        std::fs::write(
            self.dir.path().join("sync.toml"),
            format!(
                "[ldap]\nurl = \"ldif:directory.ldif\"\nuser_base_dn = \"dc=studio,dc=example\"\n\n\
                 [ftrack]\nserver_url = \"emulator:state.json\"\nemulator_seed = \"seed.json\"\napi_user = \"sync-bot\"\n\n\
                 [guards]\nmax_disable = 5\n\n{rules}"
            ),
        )
        .unwrap();
    }

    fn set_people(&self, people: &[(&str, u32)]) {
        self.set_directory(people, &[]);
    }

    /// The directory with `people`, those named in `locked` disabled.
    fn set_directory(&self, people: &[(&str, u32)], locked: &[&str]) {
        let mut entries = directory_head();
        for (uid, n) in people {
            entries.push(person(uid, *n, locked.contains(uid)));
        }
        support::write_ldif(&self.dir.path().join("directory.ldif"), &entries);
    }

    fn run(&self, args: &[&str], today: &str) -> Output {
        support::run(self.dir.path(), args, &[("LDAP2FTRACK_TODAY", today)])
    }

    fn plan(&self, today: &str) -> Vec<Value> {
        let out = self.run(&["plan", "--output", "json"], today);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["operations"].as_array().unwrap().clone()
    }

    fn apply(&self, today: &str) {
        let out = self.run(&["apply"], today);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn kinds(ops: &[Value]) -> Vec<(String, String)> {
    ops.iter().map(|o| PlannedOp::from_json(o).pair()).collect()
}

#[test]
fn grace_deprovision_disables_only_after_the_grace_period() {
    let (wasm, sha) = module("grace_deprovision");
    let rules = format!(
        "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\n[rules.config]\ngrace_days = 14\n",
        wasm.display()
    );
    let case = Case::new(&rules, &[("ann", 1), ("bob", 2), ("cy", 3)]);
    case.apply("2026-03-01");
    case.set_people(&[("ann", 1), ("bob", 2)]);

    // Day 0: kept, and the day it went missing is recorded.
    let ops = case.plan("2026-03-01");
    assert_eq!(kinds(&ops), pairs(&[("update_user", "cy")]));
    assert_eq!(
        ops[0]["metadata"]["ldap2ftrack.missing_since"]["to"],
        "2026-03-01"
    );
    assert!(
        ops[0]["reason"]
            .as_str()
            .unwrap()
            .contains("grace-deprovision"),
        "{}",
        ops[0]
    );
    case.apply("2026-03-01");

    // Within the grace period: nothing to do.
    assert_eq!(case.plan("2026-03-10"), Vec::<Value>::new());
    // After it: disabled, the rule named as the reason.
    let ops = case.plan("2026-03-16");
    assert_eq!(kinds(&ops), pairs(&[("disable_user", "cy")]));
    assert!(
        ops[0]["reason"]
            .as_str()
            .unwrap()
            .contains("grace-deprovision"),
        "{}",
        ops[0]
    );
}

#[test]
fn one_module_two_configurations_two_plans() {
    let (wasm, sha) = module("ad_roles");
    let rules = |group: &str| {
        format!(
            "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\ngroups = [\"*\"]\nroles = [\"Artist\"]\n[rules.config]\nmappings = [{{ ldap_group = \"animators\", groups = [\"{group}\"], roles = [\"Artist\"] }}]\n",
            wasm.display()
        )
    };
    let case = Case::new(&rules("Animation"), &[("ann", 1), ("bob", 2)]);
    let groups = |ops: &[Value]| -> Vec<String> {
        ops.iter()
            .filter(|o| o["kind"] == "create_group")
            .map(|o| o["target"].as_str().unwrap().to_string())
            .collect()
    };
    let first = case.plan("2026-03-01");
    assert_eq!(groups(&first), vec!["Animation"]);
    assert_eq!(
        first.iter().filter(|o| o["kind"] == "grant_role").count(),
        2
    );
    case.set_rules(&rules("Animation Dept"));
    let second = case.plan("2026-03-01");
    assert_eq!(groups(&second), vec!["Animation Dept"]);
    let reason = second
        .iter()
        .find(|o| o["kind"] == "add_membership")
        .unwrap()["reason"]
        .clone();
    assert!(reason.as_str().unwrap().contains("ad-roles"), "{reason}");
}

#[test]
fn a_changed_module_or_a_bad_module_config_is_a_configuration_error() {
    let (wasm, sha) = module("grace_deprovision");
    let wrong = "0".repeat(64);
    let case = Case::new(
        &format!(
            "[[rules]]\nmodule = \"{}\"\nsha256 = \"{wrong}\"\n",
            wasm.display()
        ),
        &[("ann", 1)],
    );
    let out = case.run(&["plan"], "2026-03-01");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&sha) && err.contains(&wrong) && err.contains("rules[0].sha256"),
        "{err}"
    );

    case.set_rules(&format!(
        "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\n[rules.config]\ngrace_days = \"ten\"\ngrace_dayz = 3\n",
        wasm.display()
    ));
    let out = case.run(&["check"], "2026-03-01");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules[0].config.grace_days"), "{err}");
    assert!(err.contains("grace_dayz"), "{err}");
}

#[test]
fn check_reports_each_module_with_its_hooks() {
    let (wasm, sha) = module("studio_basics");
    let case = Case::new(
        &format!(
            "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\n",
            wasm.display()
        ),
        &[("ann", 1)],
    );
    let out = case.run(&["check", "--output", "json"], "2026-03-01");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rules"][0]["sha256"], sha);
    assert_eq!(report["rules"][0]["name"], "studio-basics");
    assert_eq!(
        report["rules"][0]["hooks"],
        serde_json::json!(["transform-user"])
    );
}

#[test]
fn a_user_disabled_in_ldap_gets_the_grace_period_too_when_configured() {
    let (wasm, sha) = module("grace_deprovision");
    let rules = format!(
        "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\n[rules.config]\ngrace_days = 14\ndisabled_in_ldap = \"grace\"\n",
        wasm.display()
    );
    let case = Case::new(&rules, &[("ann", 1), ("bob", 2)]);
    case.apply("2026-03-01");
    case.set_directory(&[("ann", 1), ("bob", 2)], &["bob"]);
    // Day 0: kept, and the day it was first seen disabled is recorded.
    let ops = case.plan("2026-03-01");
    assert_eq!(kinds(&ops), pairs(&[("update_user", "bob")]));
    assert_eq!(
        ops[0]["metadata"]["ldap2ftrack.missing_since"]["to"],
        "2026-03-01"
    );
    case.apply("2026-03-01");
    assert_eq!(case.plan("2026-03-10"), Vec::<Value>::new());
    assert_eq!(
        kinds(&case.plan("2026-03-16")),
        pairs(&[("disable_user", "bob")])
    );
}

/// A test module from tests/rule-modules that misbehaves as its `mode` says.
fn hostile() -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rule-modules/target/wasm32-wasip2/release/hostile.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the test rule modules with `bash tests/run.sh`",
            path.display()
        )
    });
    (path, format!("{:x}", Sha256::digest(&bytes)))
}

fn many_people(n: u32) -> Vec<(String, u32)> {
    (1..=n).map(|i| (format!("p{i:04}"), 100 + i)).collect()
}

fn borrowed(people: &[(String, u32)]) -> Vec<(&str, u32)> {
    people.iter().map(|(u, n)| (u.as_str(), *n)).collect()
}

#[test]
fn a_module_failing_on_every_entry_under_skip_is_refused_by_a_guard() {
    let (wasm, sha) = hostile();
    let people = many_people(60);
    let case = Case::new(
        &format!(
            "[run]\nmetrics_file = \"metrics.prom\"\n\n[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\non_error = \"skip\"\n[rules.config]\nmode = \"panic\"\n",
            wasm.display()
        ),
        &borrowed(&people),
    );
    let out = case.run(&["apply"], "2026-03-01");
    assert_eq!(out.status.code(), Some(3), "{}", support::text(&out.stderr));
    let err = support::text(&out.stderr);
    assert!(
        err.contains("60 of 60 directory entries were left out because a rule failed on them or they are invalid, which exceeds [guards] max_skipped = \"5% or 3\" (5% of 60 allows 3, as does the count: allows 3)"),
        "{err}"
    );
    assert!(
        !case.dir.path().join("state.json").exists(),
        "nothing written"
    );
    let metrics = std::fs::read_to_string(case.dir.path().join("metrics.prom")).unwrap();
    assert!(
        metrics.contains("ldap2ftrack_skipped_entries{cause=\"failed\"} 60")
            && metrics.contains("ldap2ftrack_guard_margin{guard=\"max_skipped\"} -57")
            && metrics.contains("ldap2ftrack_exit_code{command=\"apply\"} 3"),
        "{metrics}"
    );
}

#[test]
fn a_module_over_its_run_budget_stops_the_run_naming_its_cost() {
    let (wasm, sha) = hostile();
    // Each call spins until it runs out of fuel (5–25 ms, by machine and load): 2,000 of
    // them are well over the 1 s budget on any machine, and the run stops long before.
    let people = many_people(2000);
    let case = Case::new(
        &format!(
            "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\non_error = \"skip\"\nmax_run_seconds = 1\n[rules.config]\nmode = \"loop\"\n",
            wasm.display()
        ),
        &borrowed(&people),
    );
    let started = std::time::Instant::now();
    let out = case.run(&["apply"], "2026-03-01");
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", support::text(&out.stderr));
    let err = support::text(&out.stderr);
    assert!(
        err.contains("rule module `hostile` used")
            && err.contains("more than its run budget (max_run_seconds = 1)")
            && err.contains("ms per call"),
        "{err}"
    );
    assert!(
        !case.dir.path().join("state.json").exists(),
        "nothing written"
    );
    assert!(elapsed.as_secs() < 30, "stopped early: {elapsed:?}");
}

/// `apply` with the hostile module in `mode` over `people` users, `max_run_seconds = 5`:
/// (exit code, stderr, seconds taken), after checking nothing reached ftrack.
fn apply_hostile(mode: &str, on_error: &str, people: u32) -> (Option<i32>, String, f64) {
    let (wasm, sha) = hostile();
    let people = many_people(people);
    let case = Case::new(
        &format!(
            "[[rules]]\nmodule = \"{}\"\nsha256 = \"{sha}\"\non_error = \"{on_error}\"\nmax_run_seconds = 5\n[rules.config]\nmode = \"{mode}\"\n",
            wasm.display()
        ),
        &borrowed(&people),
    );
    let started = std::time::Instant::now();
    let out = case.run(&["apply"], "2026-03-01");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        !case.dir.path().join("state.json").exists(),
        "{mode}: something was written"
    );
    (out.status.code(), support::text(&out.stderr), elapsed)
}

#[test]
fn a_module_that_sleeps_or_polls_for_ever_cannot_hold_the_run() {
    // An hour's std::thread::sleep, and a loop polling an hour-long timer: each call is
    // stopped at once (rule modules cannot block), the run exits 1 naming module and hook.
    for mode in ["sleep", "poll-forever"] {
        let (code, err, elapsed) = apply_hostile(mode, "abort", 20);
        assert_eq!(code, Some(1), "{mode}: {err}");
        assert!(
            err.contains("rule `hostile` failed in transform-user")
                && err.contains("rule modules cannot block"),
            "{mode}: {err}"
        );
        assert!(elapsed < 15.0, "{mode} took {elapsed:.1} s");
    }
}

#[test]
fn the_run_budget_stops_a_module_within_a_call_not_after_it() {
    // Each call spins on a timer until the per-call deadline (1 s); under on_error = "skip"
    // every entry would be skipped, one second each. The 5 s budget ends the run at about
    // 5 s, the last call cut short, naming module and hook.
    let (code, err, elapsed) = apply_hostile("spin-on-timer", "skip", 60);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("rule module `hostile` used")
            && err.contains("max_run_seconds = 5")
            && err.contains("stopped in `transform-user`"),
        "{err}"
    );
    assert!(elapsed < 15.0, "took {elapsed:.1} s");
}

#[test]
fn a_wrong_pin_is_found_before_any_server_is_contacted() {
    let (wasm, sha) = module("studio_basics");
    let wrong = "0".repeat(64);
    let dir = tempfile::tempdir().unwrap();
    // Servers that would take many seconds to fail: an unroutable documentation address.
    std::fs::write(
        dir.path().join("sync.toml"),
        format!(
            "[ldap]\nurl = \"ldap://192.0.2.1:389\"\nuser_base_dn = \"dc=studio,dc=example\"\ntimeout_s = 30\n\n\
             [ftrack]\nserver_url = \"https://192.0.2.1\"\napi_user = \"sync-bot\"\n\n\
             [[rules]]\nmodule = \"{}\"\nsha256 = \"{wrong}\"\n",
            wasm.display()
        ),
    )
    .unwrap();
    for command in ["check", "plan", "apply"] {
        let started = std::time::Instant::now();
        let out = support::run(dir.path(), &[command], &[("FTRACK_API_KEY", "k")]);
        let elapsed = started.elapsed();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command}: {}",
            support::text(&out.stderr)
        );
        let err = support::text(&out.stderr);
        assert!(
            err.contains(&sha) && err.contains(&wrong),
            "{command} names both hashes: {err}"
        );
        assert!(
            elapsed < std::time::Duration::from_secs(2),
            "{command} took {elapsed:?}: it waited for a server"
        );
    }
}
