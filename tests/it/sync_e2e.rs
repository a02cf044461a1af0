//! The sync end to end: the `ldap2ftrack` binary against a directory (LDIF source) and the
//! ftrack emulator over HTTP — first run, idempotence, each kind of LDAP change, guards,
//! an apply dying midway, and what the sync must never touch.

use crate::support;

use ftrack_emulator::{EmulatorConfig, Faults, RunningEmulator, StateDump};
use ldap2ftrack::directory::{Entry, Value as LdapValue};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use support::{entry, plan_ops, triples};

pub(crate) const API_USER: &str = "sync-bot";
pub(crate) const API_KEY: &str = "e2e-key-3c1f9a";

#[derive(Clone)]
pub(crate) struct Person {
    /// The leaf RDN when it is not `uid=<uid>`.
    rdn: Option<String>,
    uid: String,
    /// The uid's bytes when they are not UTF-8 (`uid` then names the entry in groups only).
    uid_bytes: Option<Vec<u8>>,
    mail: Option<String>,
    pub(crate) locked: bool,
    /// Extra attribute values for the entry.
    extra: Vec<(&'static str, String)>,
}

fn person(i: usize) -> Person {
    Person {
        rdn: None,
        uid: format!("user{i:02}"),
        uid_bytes: None,
        mail: Some(format!("user{i:02}@studio.example")),
        locked: false,
        extra: Vec::new(),
    }
}

fn uuid_of(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// A directory of `people` keyed by their original index (the index fixes the entryUUID).
pub(crate) struct Studio {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) emulator: RunningEmulator,
    pub(crate) people: BTreeMap<usize, Person>,
    animators: Vec<usize>,
    compositors: Vec<usize>,
    leads: Vec<usize>,
}

fn seed_state() -> Value {
    json!({
        "SecurityRole": [
            {"id": "10000000-0000-4000-8000-000000000001", "name": "Artist"},
            {"id": "10000000-0000-4000-8000-000000000002", "name": "Supervisor"},
            {"id": "10000000-0000-4000-8000-000000000003", "name": "Manager"}
        ],
        "Project": [{"id": "20000000-0000-4000-8000-000000000001", "name": "proj_a"}],
        "Group": [{"id": "30000000-0000-4000-8000-000000000001", "name": "Freelancers"}],
        "User": [
            {"id": "40000000-0000-4000-8000-000000000001", "username": "admin", "is_active": true},
            {"id": "40000000-0000-4000-8000-000000000002", "username": "user03", "email": "old@studio.example", "is_active": true}
        ],
        "Membership": [
            {"id": "50000000-0000-4000-8000-000000000001", "user_id": "40000000-0000-4000-8000-000000000002", "group_id": "30000000-0000-4000-8000-000000000001"}
        ],
        "UserSecurityRole": [
            {"id": "60000000-0000-4000-8000-000000000001", "user_id": "40000000-0000-4000-8000-000000000002", "security_role_id": "10000000-0000-4000-8000-000000000003", "is_all_open_projects": true}
        ]
    })
}

impl Studio {
    pub(crate) async fn new() -> Studio {
        let state = StateDump::from_json(&seed_state().to_string()).unwrap();
        let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
            .await
            .unwrap();
        let studio = Studio {
            dir: tempfile::tempdir().unwrap(),
            emulator,
            people: (1..=20).map(|i| (i, person(i))).collect(),
            animators: (1..=10).collect(),
            compositors: (11..=20).collect(),
            leads: vec![1, 2],
        };
        std::fs::write(
            studio.dir.path().join("sync.toml"),
            format!(
                r#"
[ldap]
url = "ldif:directory.ldif"
user_base_dn = "ou=people,dc=studio,dc=example"
group_base_dn = "ou=groups,dc=studio,dc=example"

[ftrack]
server_url = "{}"
api_user = "{API_USER}"

[group_mappings]
"animators" = {{ groups = ["Animation"], roles = ["Artist"] }}
"compositors" = {{ groups = ["Compositing"], roles = ["Artist"] }}
"leads" = {{ groups = ["Leads"], project_roles = {{ "proj_a" = ["Supervisor"] }} }}

[deprovision]
protected_users = ["admin"]
"#,
                studio.emulator.url()
            ),
        )
        .unwrap();
        studio.write_directory();
        studio
    }

    pub(crate) fn write_directory(&self) {
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
        for (i, p) in &self.people {
            let rdn = p.rdn.clone().unwrap_or(format!("uid={}", p.uid));
            let mut e = entry(
                format!("{rdn},ou=people,dc=studio,dc=example"),
                &[("objectClass", "inetOrgPerson")],
            );
            e.push(
                "uid",
                match &p.uid_bytes {
                    Some(bytes) => LdapValue::Binary(bytes.clone()),
                    None => LdapValue::Text(p.uid.clone()),
                },
            );
            let text = |e: &mut Entry, name: &str, value: String| {
                e.push(name, LdapValue::Text(value));
            };
            text(&mut e, "cn", format!("Person {i}"));
            text(&mut e, "givenName", "Person".into());
            text(&mut e, "sn", format!("Number{i}"));
            text(&mut e, "entryUUID", uuid_of(*i));
            if let Some(mail) = &p.mail {
                text(&mut e, "mail", mail.clone());
            }
            if p.locked {
                text(&mut e, "pwdAccountLockedTime", "000001010000Z".into());
            }
            for (name, value) in &p.extra {
                text(&mut e, name, value.clone());
            }
            entries.push(e);
        }
        let group = |name: &str, members: &[usize]| {
            let mut g = entry(
                format!("cn={name},ou=groups,dc=studio,dc=example"),
                &[("objectClass", "groupOfNames"), ("cn", name)],
            );
            for p in members.iter().filter_map(|m| self.people.get(m)) {
                g.push(
                    "member",
                    LdapValue::Text(format!("uid={},ou=people,dc=studio,dc=example", p.uid)),
                );
            }
            g
        };
        entries.push(group("animators", &self.animators));
        entries.push(group("compositors", &self.compositors));
        entries.push(group("leads", &self.leads));
        support::write_ldif(&self.dir.path().join("directory.ldif"), &entries);
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        support::run(
            self.dir.path(),
            args,
            &[
                ("FTRACK_API_KEY", API_KEY),
                ("LDAP2FTRACK_TODAY", "2026-11-27"),
            ],
        )
    }

    /// The `plan --output json` document; the test fails with stderr if the plan does.
    pub(crate) fn plan_json(&self) -> Value {
        let out = self.run(&["plan", "--output", "json"]);
        assert!(
            out.status.success(),
            "plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `plan --output json` → (kind, target, group/role/scope) triples, in plan order.
    fn plan(&self) -> Vec<(String, String, String)> {
        plan_ops(&self.plan_json())
            .iter()
            .map(|op| op.triple())
            .collect()
    }

    fn apply(&self) -> Output {
        let out = self.run(&["apply"]);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub(crate) fn state(&self) -> Value {
        serde_json::to_value(self.emulator.dump()).unwrap()
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("ldap2ftrack-journal.jsonl")
    }
}

fn user<'a>(state: &'a Value, username: &str) -> &'a Value {
    state["User"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no user {username}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_creates_everything_and_the_second_plans_nothing() {
    let s = Studio::new().await;
    let plan = s.plan();
    let count = |kind: &str| plan.iter().filter(|(k, _, _)| k == kind).count();
    assert_eq!(count("create_group"), 3);
    assert_eq!(count("create_user"), 19, "user03 exists and is adopted");
    assert_eq!(count("update_user"), 1);
    assert_eq!(count("add_membership"), 22);
    assert_eq!(
        count("grant_role"),
        22,
        "20 Artist + 2 Supervisor on proj_a"
    );
    assert_eq!(
        count("remove_membership") + count("revoke_role") + count("disable_user"),
        0
    );
    s.apply();
    assert_eq!(s.plan(), vec![], "a second run plans nothing");

    let state = s.state();
    let users = state["User"].as_array().unwrap();
    assert_eq!(users.len(), 22, "20 + admin + API user, no duplicates");
    let u3 = user(&state, "user03");
    assert_eq!(
        u3["id"], "40000000-0000-4000-8000-000000000002",
        "adopted, not recreated"
    );
    assert_eq!(u3["email"], "user03@studio.example");
    // Unmanaged group membership and unmanaged role stay.
    assert!(state["Membership"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "50000000-0000-4000-8000-000000000001"));
    assert!(state["UserSecurityRole"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["id"] == "60000000-0000-4000-8000-000000000001"
            && g["is_all_open_projects"] == true));
    let journal = std::fs::read_to_string(s.journal()).unwrap();
    assert_eq!(
        journal.lines().count(),
        plan.len(),
        "one journal line per applied operation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_ldap_change_gives_exactly_its_operations() {
    let mut s = Studio::new().await;
    s.apply();

    // Mail change.
    s.people.get_mut(&5).unwrap().mail = Some("five@studio.example".into());
    s.write_directory();
    assert_eq!(s.plan(), triples(&[("update_user", "user05", "")]));
    s.apply();

    // Rename: same entryUUID, new uid → the same ftrack user is renamed.
    s.people.get_mut(&6).unwrap().uid = "sixtus".into();
    s.write_directory();
    assert_eq!(s.plan(), triples(&[("update_user", "user06", "")]));
    s.apply();
    let state = s.state();
    assert_eq!(user(&state, "sixtus")["email"], "user06@studio.example");
    assert!(state["User"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["username"] != "user06"));

    // Group change: user07 moves from animators to compositors (same role, other group).
    s.animators.retain(|&i| i != 7);
    s.compositors.push(7);
    s.write_directory();
    assert_eq!(
        s.plan(),
        triples(&[
            ("add_membership", "user07", "Compositing"),
            ("remove_membership", "user07", "Animation")
        ])
    );
    s.apply();

    // Leaving leads: the project role and the group go.
    s.leads.retain(|&i| i != 2);
    s.write_directory();
    assert_eq!(
        s.plan(),
        triples(&[
            ("remove_membership", "user02", "Leads"),
            ("revoke_role", "user02", "Supervisor"),
        ])
    );
    s.apply();

    // Removed from LDAP → disabled, with the date it went missing.
    let removed = s.people.remove(&8).unwrap();
    s.write_directory();
    assert_eq!(s.plan(), triples(&[("disable_user", "user08", "")]));
    s.apply();
    let state = s.state();
    assert_eq!(user(&state, "user08")["is_active"], false);

    // Disabled (locked) in LDAP → disabled in ftrack.
    s.people.get_mut(&9).unwrap().locked = true;
    s.write_directory();
    assert_eq!(s.plan(), triples(&[("disable_user", "user09", "")]));
    s.apply();

    // Back → enabled again, with no duplicate.
    s.people.insert(8, removed);
    s.people.get_mut(&9).unwrap().locked = false;
    s.write_directory();
    assert_eq!(
        s.plan(),
        triples(&[("enable_user", "user08", ""), ("enable_user", "user09", "")])
    );
    s.apply();
    assert_eq!(s.plan(), vec![]);
    let state = s.state();
    assert_eq!(user(&state, "user08")["is_active"], true);
    assert_eq!(state["User"].as_array().unwrap().len(), 22);
    // The protected admin was never touched.
    assert_eq!(user(&state, "admin")["is_active"], true);
}

/// A role the rules now want only on a project ftrack does not have: the grant goes as a
/// whole, not scope by scope — which would leave the role granted on nothing, a row no later
/// run removes.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_wanted_only_on_a_missing_project_is_revoked_whole() {
    let s = Studio::new().await;
    s.apply();
    s.set_config(
        r#""proj_a" = ["Supervisor"]"#,
        r#""proj_gone" = ["Supervisor"]"#,
    );

    assert_eq!(
        s.plan(),
        triples(&[
            ("revoke_role", "user01", "Supervisor"),
            ("revoke_role", "user02", "Supervisor"),
        ])
    );
    let out = s.run(&["plan"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("i project `proj_gone` does not exist in ftrack; grants of Supervisor on it are skipped; 2 users: `user01`, `user02`\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    s.apply();
    let state = s.state();
    let supervisor = "10000000-0000-4000-8000-000000000002";
    let left: Vec<&Value> = state["UserSecurityRole"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["security_role_id"] == supervisor)
        .collect();
    assert!(left.is_empty(), "Supervisor grants left: {left:?}");
    assert_eq!(s.plan(), triples(&[]), "converged");
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_half_the_users_is_refused_and_changes_nothing() {
    let mut s = Studio::new().await;
    s.apply();
    let before = s.state();
    s.people.retain(|&i, _| i % 2 == 0);
    s.write_directory();
    let out = s.run(&["apply"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("10 users to disable of 20 managed") && err.contains("max_disable"),
        "{err}"
    );
    assert_eq!(s.state(), before, "nothing written");
    // --force overrides.
    let out = s.run(&["apply", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_directory_is_refused() {
    let mut s = Studio::new().await;
    s.people.clear();
    s.write_directory();
    let out = s.run(&["apply"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_empty_source"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_dying_midway_converges_on_the_next_run_without_duplicates() {
    let s = Studio::new().await;
    // Small batches so the apply takes several requests; the server dies after the 3rd.
    s.set_config(
        "api_user = \"sync-bot\"",
        "api_user = \"sync-bot\"\nbatch_size = 10",
    );
    let total = s.plan().len();
    // The run reads ftrack with 8 queries (one page each), then applies in batches:
    // the server dies after the 3rd batch.
    s.emulator.set_faults(Faults {
        fail_after_requests: Some(8 + 3),
        ..Faults::none()
    });
    let out = s.run(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run again to converge"), "{err}");
    s.emulator.set_faults(Faults::none());
    let remaining = s.plan().len();
    assert!(
        remaining > 0 && remaining < total,
        "{remaining} of {total} left"
    );
    s.apply();
    assert_eq!(s.plan(), vec![]);
    let state = s.state();
    assert_eq!(
        state["User"].as_array().unwrap().len(),
        22,
        "no duplicate users"
    );
    let memberships = state["Membership"].as_array().unwrap();
    let mut pairs: Vec<(String, String)> = memberships
        .iter()
        .map(|m| (m["user_id"].to_string(), m["group_id"].to_string()))
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), memberships.len(), "no duplicate memberships");
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_replies_and_rate_limits_still_land_every_operation_once() {
    let s = Studio::new().await;
    s.set_config(
        "api_user = \"sync-bot\"",
        "api_user = \"sync-bot\"\nbatch_size = 7",
    );
    let total = s.plan().len();
    // Every 4th request executes and then answers 500: the reply is lost, the retry must
    // recognise the batch as done.
    s.emulator.set_faults(Faults {
        error_every_nth: Some(4),
        error_after_execute: true,
        ..Faults::none()
    });
    let out = s.run(&["apply", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["applied"], total);
    s.emulator.set_faults(Faults::none());
    assert_eq!(s.plan(), vec![]);
    assert_eq!(s.state()["User"].as_array().unwrap().len(), 22);
    let counters = s.emulator.counters();
    assert!(
        counters.operations_of("add_user_security_role") > 0 && counters.errors > 0,
        "roles were added under lost replies: {counters:?}"
    );

    // Revokes whose replies are lost: the retried remove is refused ("does not have the
    // security role"), and reading the roles back shows the work done.
    s.set_config(
        r#""animators" = { groups = ["Animation"], roles = ["Artist"] }"#,
        r#""animators" = { groups = ["Animation"] }"#,
    );
    let revokes = s.plan();
    assert!(
        revokes.len() >= 4 && revokes.iter().all(|op| op.0 == "revoke_role"),
        "{revokes:?}"
    );
    s.emulator.reset_counters();
    s.emulator.set_faults(Faults {
        error_every_nth: Some(2),
        error_after_execute: true,
        ..Faults::none()
    });
    let out = s.run(&["apply", "--force", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.emulator.set_faults(Faults::none());
    assert!(s.emulator.counters().errors > 0);
    assert_eq!(s.plan(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_check_exits_4_when_changes_are_pending_and_0_when_not() {
    let s = Studio::new().await;
    assert_eq!(s.run(&["plan", "--check"]).status.code(), Some(4));
    s.apply();
    assert_eq!(s.run(&["plan", "--check"]).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_applies_exactly_and_refuses_after_drift() {
    let mut s = Studio::new().await;
    let out = s.run(&["plan", "--out", "plan.json"]);
    assert!(out.status.success());
    let out = s.run(&["apply", "--plan", "plan.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.plan(), vec![]);

    s.people.get_mut(&4).unwrap().mail = Some("four@studio.example".into());
    s.write_directory();
    assert!(s.run(&["plan", "--out", "plan.json"]).status.success());
    // ftrack changes behind the plan's back.
    s.emulator
        .call(&[json!({"action": "update", "entity_type": "User", "entity_key": ["40000000-0000-4000-8000-000000000001"], "entity_data": {"__entity_type__": "User", "first_name": "Changed"}})])
        .unwrap();
    let out = s.run(&["apply", "--plan", "plan.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftrack changed since the plan was made"));
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_names_the_rule_and_ldap_value_behind_each_change() {
    let s = Studio::new().await;
    let out = s.run(&["explain", "user01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("uid=user01,ou=people,dc=studio,dc=example"),
        "{text}"
    );
    assert!(
        text.contains("+ user01 role Supervisor on proj_a"),
        "{text}"
    );
    assert!(text.contains("[group_mappings] \"leads\""), "{text}");
    assert!(
        text.contains("[mappings] mail = \"user01@studio.example\""),
        "{text}"
    );
    let out = s.run(&["explain", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_duplicate_entries_are_skipped_and_reported() {
    let mut s = Studio::new().await;
    s.people.get_mut(&11).unwrap().mail = Some("not-an-address".into());
    let twelve = s.people.get_mut(&12).unwrap();
    twelve.uid = "User13".into();
    twelve.rdn = Some("cn=Person 12".into());
    s.write_directory();
    let v = s.plan_json();
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dn"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        vec![
            "cn=Person 12,ou=people,dc=studio,dc=example",
            "uid=user11,ou=people,dc=studio,dc=example",
            "uid=user13,ou=people,dc=studio,dc=example"
        ]
    );
    assert_eq!(v["summary"]["create_user"], 16);
}

impl Studio {
    pub(crate) fn set_config(&self, from: &str, to: &str) {
        let path = self.dir.path().join("sync.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in sync.toml");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        support::ldap2ftrack(self.dir.path())
            .args(args)
            .env("FTRACK_API_KEY", API_KEY)
            .env("LDAP2FTRACK_TODAY", "2026-11-27")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Waits until the emulator has received `n` requests (the child is mid-apply).
    async fn wait_for_requests(&self, n: u64) {
        for _ in 0..400 {
            if self.emulator.counters().requests >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the run never reached {n} requests");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_concurrent_run_is_refused_by_the_lock_and_applies_nothing() {
    let s = Studio::new().await;
    s.set_config(
        "api_user = \"sync-bot\"",
        "api_user = \"sync-bot\"\nbatch_size = 5",
    );
    s.emulator.set_faults(Faults {
        latency_ms: 150,
        ..Faults::none()
    });
    s.emulator.reset_counters();
    let mut first = s.spawn(&["apply"]);
    s.wait_for_requests(10).await;
    let second = s.run(&["apply"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(".ldap2ftrack.lock") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    assert!(first.wait().unwrap().success());
    s.emulator.set_faults(Faults::none());
    assert_eq!(s.plan(), vec![], "the first run applied everything, once");
    assert_eq!(s.state()["User"].as_array().unwrap().len(), 22);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_apply_is_taken_over_and_converges_without_duplicates() {
    let s = Studio::new().await;
    s.set_config(
        "api_user = \"sync-bot\"",
        "api_user = \"sync-bot\"\nbatch_size = 4",
    );
    s.emulator.set_faults(Faults {
        latency_ms: 100,
        ..Faults::none()
    });
    s.emulator.reset_counters();
    let mut child = s.spawn(&["apply"]);
    s.wait_for_requests(12).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let lock = std::fs::read_to_string(s.dir.path().join(".ldap2ftrack.lock")).unwrap();
    assert!(
        lock.starts_with(&format!("pid {}", child.id())),
        "the dead run's record stays: {lock}"
    );
    s.emulator.set_faults(Faults::none());
    let out = s.run(&["apply", "-v"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("taking over the lock"));
    assert_eq!(s.plan(), vec![]);
    let state = s.state();
    assert_eq!(
        state["User"].as_array().unwrap().len(),
        22,
        "no duplicate users"
    );
    assert_eq!(
        state["Membership"].as_array().unwrap().len(),
        23,
        "22 managed + 1 unmanaged, none twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_ftrack_is_exit_1_and_nothing_else() {
    let s = Studio::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.set_config(&s.emulator.url(), &format!("http://127.0.0.1:{port}"));
    let started = std::time::Instant::now();
    let out = s.run(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && !err.contains(API_KEY),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(150));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_run_id_and_the_metrics_file_the_run() {
    let s = Studio::new().await;
    s.set_config(
        "[deprovision]",
        "[run]\nmetrics_file = \"metrics/ldap2ftrack.prom\"\n\n[deprovision]",
    );
    let out = s.run(&["apply", "--log-format", "json", "-v"]);
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    let finished: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "run finished")
        .unwrap_or_else(|| panic!("no run finished line in {logs}"));
    assert_eq!(
        finished["span"]["run_id"].as_str().map(str::len),
        Some(12),
        "{finished}"
    );
    assert_eq!(finished["fields"]["exit_code"], 0);
    let metrics = std::fs::read_to_string(s.dir.path().join("metrics/ldap2ftrack.prom")).unwrap();
    for needle in [
        "ldap2ftrack_exit_code{command=\"apply\"} 0",
        "ldap2ftrack_planned_operations{kind=\"create_user\"} 19",
        "ldap2ftrack_applied_operations 67",
        "ldap2ftrack_phase_duration_seconds{phase=\"ldap_read\"}",
        "ldap2ftrack_phase_duration_seconds{phase=\"apply\"}",
        "ldap2ftrack_guard_margin{guard=\"max_disable\"}",
        "ldap2ftrack_last_success_timestamp_seconds ",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_values_skip_their_entry_only_and_never_disable_it() {
    let mut s = Studio::new().await;
    s.apply();
    // user05: a uid that is not UTF-8; user06: a 2 MiB value; user07: 10,000 values.
    s.people.get_mut(&5).unwrap().uid_bytes = Some(vec![0xff, 0xfe, 0xff]);
    s.people.get_mut(&5).unwrap().rdn = Some("cn=Person 5".into());
    s.people.get_mut(&6).unwrap().extra = vec![("description", "x".repeat(2 * 1024 * 1024))];
    s.people.get_mut(&7).unwrap().extra = (0..10_000)
        .map(|i| ("description", format!("v{i}")))
        .collect();
    s.people.get_mut(&9).unwrap().mail = Some("user09-changed@studio.example".into());
    s.write_directory();

    let v = s.plan_json();
    let skipped: Vec<(String, String)> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["dn"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped[0].0.starts_with("cn=Person 5") && skipped[0].1.contains("not valid UTF-8"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].0.starts_with("uid=user06") && skipped[1].1.contains("KiB"),
        "{skipped:?}"
    );
    assert!(
        skipped[2].0.starts_with("uid=user07") && skipped[2].1.contains("10000 values"),
        "{skipped:?}"
    );
    // The rest of the run goes on, and the skipped users are not treated as departed.
    let ops = plan_ops(&v);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].kind, "update_user");
    assert_eq!(ops[0].target, "user09");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_exit_1_with_the_servers_message_and_never_the_key() {
    let s = Studio::new().await;
    let wrong = "wrong-key-7f3a9c1e5b";
    for args in [&["check"][..], &["plan"][..], &["apply"][..]] {
        let out = support::ldap2ftrack(s.dir.path())
            .args(args)
            .arg("-vv")
            .env("FTRACK_API_KEY", wrong)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("InvalidCredentialsError"), "{args:?}: {all}");
        assert!(!all.contains(wrong), "{args:?} printed the key: {all}");
    }
    assert_eq!(
        s.state()["User"].as_array().unwrap().len(),
        3,
        "nothing created"
    );
}
