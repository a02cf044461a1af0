//! The guards at the sizes studios have, through the real binary: an LDIF directory and the
//! ftrack emulator over HTTP, with the default `[guards]`. At 8, 20, 200 and 2,000 managed
//! objects, for each of the four guards, an ordinary change applies (exit 0) and a broken
//! filter that drops 60% is refused (exit 3) with ftrack unchanged. And the README's demo
//! flow (edit the LDIF, plan, apply) applies without `--force`.

use crate::support;

use ftrack_emulator::{EmulatorConfig, RunningEmulator, StateDump};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Output;
use support::{entry, plan_ops, text};

const API_USER: &str = "sync-bot";
const API_KEY: &str = "guards-key-7d2e";

/// The filters the studio runs with, and the broken ones a bad edit or a directory change
/// gives: each drops the 60% of people (or of their groups) marked `extra`.
const USER_FILTER: &str = "(objectClass=inetOrgPerson)";
const BROKEN_USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(departmentNumber=core))";
const GROUP_FILTER: &str = "(objectClass=groupOfNames)";
const DROPS_TEAM_EXTRA: &str = "(&(objectClass=groupOfNames)(!(cn=team-extra)))";
const DROPS_ARTISTS_EXTRA: &str = "(&(objectClass=groupOfNames)(!(cn=artists-extra)))";

/// A studio of `size` people, synced once, so each guard manages exactly `size` objects:
/// `size` users, each in the ftrack group Team (one membership each) and granted Artist on
/// all open projects (one grant each). The first 40% are `core`, the rest `extra`, in the
/// department attribute and in the LDAP groups that give Team and Artist.
struct Studio {
    dir: tempfile::TempDir,
    emulator: RunningEmulator,
    size: usize,
    /// People still in the directory, by index.
    people: BTreeSet<usize>,
    /// People whose mail is broken (not an address).
    bad_mail: BTreeSet<usize>,
    /// People taken out of the LDAP groups giving Team, and Artist.
    not_in_team: BTreeSet<usize>,
    not_artists: BTreeSet<usize>,
    user_filter: &'static str,
    group_filter: &'static str,
}

fn uid(i: usize) -> String {
    format!("p{i:04}")
}

impl Studio {
    /// The studio after its first, unguarded run: everything created, nothing left to plan.
    async fn synced(size: usize) -> Studio {
        let seed = json!({
            "SecurityRole": [{"id": "10000000-0000-4000-8000-000000000001", "name": "Artist", "type": "PROJECT"}],
            "Project": [{"id": "20000000-0000-4000-8000-000000000001", "name": "show"}],
            "User": [{"id": "40000000-0000-4000-8000-000000000001", "username": "admin", "is_active": true}]
        });
        let state = StateDump::from_json(&seed.to_string()).unwrap();
        let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
            .await
            .unwrap();
        let studio = Studio {
            dir: tempfile::tempdir().unwrap(),
            emulator,
            size,
            people: (0..size).collect(),
            bad_mail: BTreeSet::new(),
            not_in_team: BTreeSet::new(),
            not_artists: BTreeSet::new(),
            user_filter: USER_FILTER,
            group_filter: GROUP_FILTER,
        };
        studio.write();
        let out = studio.run(&["apply"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "first run: {}",
            text(&out.stderr)
        );
        let plan = studio.plan();
        assert_eq!(plan_ops(&plan), vec![], "the first run converged");
        studio
    }

    /// 60% of the studio, rounded up: 5 of 8, 12 of 20, 120 of 200, 1,200 of 2,000.
    fn extra(&self) -> usize {
        (self.size * 6).div_ceil(10)
    }

    fn is_core(&self, i: usize) -> bool {
        i < self.size - self.extra()
    }

    /// Writes `sync.toml` (default guards) and the directory as they stand.
    fn write(&self) {
        std::fs::write(
            self.dir.path().join("sync.toml"),
            format!(
                r#"
[ldap]
url = "ldif:directory.ldif"
user_base_dn = "ou=people,dc=studio,dc=example"
group_base_dn = "ou=groups,dc=studio,dc=example"
user_filter = "{}"
group_filter = "{}"

[ftrack]
server_url = "{}"
api_user = "{API_USER}"

[group_mappings]
"team-core" = {{ groups = ["Team"] }}
"team-extra" = {{ groups = ["Team"] }}
"artists-core" = {{ roles = ["Artist"] }}
"artists-extra" = {{ roles = ["Artist"] }}

[deprovision]
protected_users = ["admin"]
"#,
                self.user_filter,
                self.group_filter,
                self.emulator.url()
            ),
        )
        .unwrap();
        let mut entries = vec![
            entry(
                "dc=studio,dc=example",
                &[("objectClass", "organization"), ("o", "studio")],
            ),
            entry(
                "ou=people,dc=studio,dc=example",
                &[("objectClass", "organizationalUnit"), ("ou", "people")],
            ),
            entry(
                "ou=groups,dc=studio,dc=example",
                &[("objectClass", "organizationalUnit"), ("ou", "groups")],
            ),
        ];
        for &i in &self.people {
            let mail = if self.bad_mail.contains(&i) {
                format!("{} at studio", uid(i))
            } else {
                format!("{}@studio.example", uid(i))
            };
            entries.push(entry(
                format!("uid={},ou=people,dc=studio,dc=example", uid(i)),
                &[
                    ("objectClass", "inetOrgPerson"),
                    ("uid", &uid(i)),
                    ("cn", &format!("Person {i}")),
                    ("givenName", "Person"),
                    ("sn", &format!("Number{i}")),
                    ("mail", &mail),
                    (
                        "departmentNumber",
                        if self.is_core(i) { "core" } else { "extra" },
                    ),
                    ("entryUUID", &format!("00000000-0000-4000-8000-{i:012}")),
                ],
            ));
        }
        for (name, core, left_out) in [
            ("team-core", true, &self.not_in_team),
            ("team-extra", false, &self.not_in_team),
            ("artists-core", true, &self.not_artists),
            ("artists-extra", false, &self.not_artists),
        ] {
            let mut group = entry(
                format!("cn={name},ou=groups,dc=studio,dc=example"),
                &[("objectClass", "groupOfNames"), ("cn", name)],
            );
            for i in (0..self.size).filter(|&i| self.is_core(i) == core && !left_out.contains(&i)) {
                group.push(
                    "member",
                    ldap2ftrack::directory::Value::Text(format!(
                        "uid={},ou=people,dc=studio,dc=example",
                        uid(i)
                    )),
                );
            }
            entries.push(group);
        }
        support::write_ldif(&self.dir.path().join("directory.ldif"), &entries);
    }

    fn run(&self, args: &[&str]) -> Output {
        support::run(
            self.dir.path(),
            args,
            &[
                ("FTRACK_API_KEY", API_KEY),
                ("LDAP2FTRACK_TODAY", "2026-11-27"),
            ],
        )
    }

    fn plan(&self) -> Value {
        let out = self.run(&["plan", "--output", "json"]);
        assert!(out.status.success(), "plan: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn state(&self) -> Value {
        serde_json::to_value(self.emulator.dump()).unwrap()
    }

    fn journal(&self) -> std::path::PathBuf {
        self.dir.path().join("ldap2ftrack-journal.jsonl")
    }

    /// `apply` is refused with exit 3 and `reason` on stderr, and writes nothing to ftrack
    /// or the journal; `plan` still shows the change, warning that `apply` would refuse it.
    fn refuses(&self, reason: &str) {
        let before = self.state();
        let journal = std::fs::read_to_string(self.journal()).unwrap_or_default();
        let out = self.run(&["apply"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains(reason), "expected `{reason}` in:\n{err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert!(
            self.state() == before,
            "ftrack changed after a refused apply"
        );
        assert_eq!(
            std::fs::read_to_string(self.journal()).unwrap_or_default(),
            journal,
            "nothing journalled"
        );
        let out = self.run(&["plan"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("warning: `apply` would be refused by guards"),
            "{}",
            text(&out.stderr)
        );
    }

    /// `plan` has exactly these operations (kind, target) and no guard warning; `apply`
    /// exits 0 without `--force` and the next plan is empty.
    fn applies(&self, expected: &[(&str, String)]) {
        let out = self.run(&["plan", "--output", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("refused"),
            "{}",
            text(&out.stderr)
        );
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ops: Vec<(String, String)> = plan_ops(&plan).iter().map(|o| o.pair()).collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        assert_eq!(ops, expected);
        let out = self.run(&["apply"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(plan_ops(&self.plan()), vec![], "converged");
    }

    fn user<'a>(state: &'a Value, username: &str) -> &'a Value {
        state["User"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == username)
            .unwrap_or_else(|| panic!("no user {username}"))
    }

    fn count(state: &Value, entity: &str) -> usize {
        state[entity].as_array().map_or(0, Vec::len)
    }
}

/// What the default guards allow at `size` (the unit tests' table, seen from outside).
fn default_allows(key: &str, size: usize) -> (String, usize) {
    let (limit, percent, floor) = match key {
        "max_disable" => ("\"10% or 3\"", 10, 3),
        "max_membership_removals" => ("\"20% or 4\"", 20, 4),
        "max_role_revocations" => ("\"10% or 4\"", 10, 4),
        _ => ("\"5% or 3\"", 5, 3),
    };
    let by_percent = size * percent / 100;
    let why = if floor == by_percent {
        format!("{percent}% of {size} allows {by_percent}, as does the count: allows {floor}")
    } else if floor > by_percent {
        format!("{percent}% of {size} allows {by_percent}, so the count of {floor} applies: allows {floor}")
    } else {
        format!("{percent}% of {size} allows {by_percent}, more than the count of {floor}: allows {by_percent}")
    };
    (
        format!("[guards] {key} = {limit} ({why})"),
        by_percent.max(floor),
    )
}

/// Every guard at one size: four broken filters refused, then four ordinary changes applied.
async fn guards_at(size: usize) {
    let mut s = Studio::synced(size).await;
    let extra = s.extra();
    let state = s.state();
    assert_eq!(Studio::count(&state, "Membership"), size);
    assert_eq!(Studio::count(&state, "UserSecurityRole"), size);

    // A user filter that selects only the core 40%: the rest would be disabled.
    s.user_filter = BROKEN_USER_FILTER;
    s.write();
    let (limit, _) = default_allows("max_disable", size);
    s.refuses(&format!(
        "{extra} users to disable of {size} managed exceeds {limit}"
    ));
    s.user_filter = USER_FILTER;

    // A group filter that drops the group holding 60% of the Team memberships.
    s.group_filter = DROPS_TEAM_EXTRA;
    s.write();
    let (limit, _) = default_allows("max_membership_removals", size);
    s.refuses(&format!(
        "{extra} membership removals of {size} managed exceeds {limit}"
    ));

    // … and the one holding 60% of the Artist grants.
    s.group_filter = DROPS_ARTISTS_EXTRA;
    s.write();
    let (limit, _) = default_allows("max_role_revocations", size);
    s.refuses(&format!(
        "{extra} role revocations of {size} managed exceeds {limit}"
    ));
    s.group_filter = GROUP_FILTER;

    // A mail import gone wrong for 60% of the entries: all of them left out as invalid.
    s.bad_mail = (size - extra..size).collect();
    s.write();
    let (limit, _) = default_allows("max_skipped", size);
    s.refuses(&format!(
        "{extra} of {size} directory entries were left out because a rule failed on them or they are invalid, which exceeds {limit}"
    ));
    s.bad_mail.clear();
    s.write();
    assert_eq!(plan_ops(&s.plan()), vec![], "back where it was");

    // Ordinary days. One person has a broken mail: left out, reported, the run goes on.
    s.bad_mail.insert(1);
    s.write();
    s.applies(&[]);
    s.bad_mail.clear();
    // One person leaves a team, one loses a role, one leaves the studio.
    s.not_in_team.insert(2);
    s.write();
    s.applies(&[("remove_membership", uid(2))]);
    s.not_artists.insert(3);
    s.write();
    s.applies(&[("revoke_role", uid(3))]);
    s.people.remove(&0);
    s.write();
    s.applies(&[("disable_user", uid(0))]);
    let state = s.state();
    assert_eq!(Studio::user(&state, &uid(0))["is_active"], false);
    assert_eq!(Studio::count(&state, "Membership"), size - 1);
    assert_eq!(Studio::count(&state, "UserSecurityRole"), size - 1);

    // Up to the limit on one day still passes: as many leavers as max_disable allows of the
    // users still managed.
    let (_, allows) = default_allows("max_disable", size - 1);
    let leavers: Vec<usize> = (1..=allows).collect();
    for i in &leavers {
        s.people.remove(i);
    }
    s.write();
    s.applies(
        &leavers
            .iter()
            .map(|&i| ("disable_user", uid(i)))
            .collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_at_8_managed() {
    guards_at(8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_at_20_managed() {
    guards_at(20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_at_200_managed() {
    guards_at(200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_at_2000_managed() {
    guards_at(2000).await;
}

/// One past the limit is refused, at the size where the count floor decides (20) and where
/// the percentage does (200): the limit is the limit, not a rounding of it.
#[tokio::test(flavor = "multi_thread")]
async fn one_more_leaver_than_allowed_is_refused() {
    for size in [20, 200] {
        let mut s = Studio::synced(size).await;
        let (limit, allows) = default_allows("max_disable", size);
        for i in 0..=allows {
            s.people.remove(&i);
        }
        s.write();
        s.refuses(&format!(
            "{} users to disable of {size} managed exceeds {limit}",
            allows + 1
        ));
    }
}

/// The README's demo flow, exactly as it reads: the first run, then the edit it suggests
/// (hana's mail changed, emeka dropped from compositors), plan, apply: no `--force`.
#[test]
fn the_readme_demo_edit_applies_without_force() {
    let demo = support::demo_copy();
    let dir = demo.path();
    let run = |args: &[&str]| support::run(dir, args, &[]);
    let out = run(&["apply"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "first run: {}",
        text(&out.stderr)
    );

    let ldif = dir.join("tests/demo/directory.ldif");
    let before = std::fs::read_to_string(&ldif).unwrap();
    let edit = |text: &str, from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` once in the demo LDIF"
        );
        text.replace(from, to)
    };
    let edited = edit(
        &before,
        "mail: hana@studio.example\n",
        "mail: hana.sato@studio.example\n",
    );
    // emeka's line in compositors (the only group that lists emeka).
    let edited = edit(
        &edited,
        "member: uid=emeka,ou=people,dc=studio,dc=example\n",
        "",
    );
    std::fs::write(&ldif, edited).unwrap();

    let out = run(&["plan", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops: Vec<(String, String, String)> = plan_ops(&plan).iter().map(|o| o.triple()).collect();
    assert_eq!(
        ops,
        support::triples(&[
            ("update_user", "hana", ""),
            ("remove_membership", "emeka", "Compositing"),
            ("revoke_role", "emeka", "Artist"),
        ])
    );

    let out = run(&["apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&["plan", "--output", "json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan_ops(&plan), vec![], "converged");
    let state = std::fs::read_to_string(dir.join("target/demo/ftrack-state.json")).unwrap();
    assert!(state.contains("hana.sato@studio.example"), "applied");
}
