//! Security roles the way ftrack grants them, end to end over a real slapd and the emulator
//! (which answers like the documented server: no grant of a role the user does not hold),
//! read back through the official Python client; and rule modules held to their bounds.

use crate::support;

use ftrack_emulator::{EmulatorConfig, RunningEmulator, StateDump};
use ldap2ftrack::directory::{ldif, Value as LdapValue};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::slapd::{Slapd, SUFFIX, SYNC_DN, SYNC_PASSWORD};
use support::{entry, plan_ops, text};

const API_USER: &str = "sync-bot";
const API_KEY: &str = "roles-e2e-key";

const ARTIST: &str = "10000000-0000-4000-8000-000000000001";
const SUPERVISOR: &str = "10000000-0000-4000-8000-000000000002";
const SHORT_FILM: &str = "20000000-0000-4000-8000-000000000002";
const SECRET_SHOW: &str = "20000000-0000-4000-8000-000000000003";

/// ann: staff + leads; bob: staff + privates; cy: staff; dee, fay: admins; eve: supers.
fn directory() -> String {
    let mut entries = support::slapd::people_and_groups();
    for uid in ["ann", "bob", "cy", "dee", "eve", "fay"] {
        entries.push(entry(
            format!("uid={uid},ou=people,{SUFFIX}"),
            &[
                ("objectClass", "inetOrgPerson"),
                ("uid", uid),
                ("cn", &format!("{uid} Person")),
                ("sn", "Person"),
                ("givenName", uid),
                ("mail", &format!("{uid}@example.org")),
            ],
        ));
    }
    for (group, members) in [
        ("staff", &["ann", "bob", "cy"][..]),
        ("leads", &["ann"][..]),
        ("privates", &["bob"][..]),
        ("admins", &["dee", "fay"][..]),
        ("supers", &["eve"][..]),
    ] {
        let mut g = entry(
            format!("cn={group},ou=groups,{SUFFIX}"),
            &[("objectClass", "groupOfNames"), ("cn", group)],
        );
        for m in members {
            g.push(
                "member",
                LdapValue::Text(format!("uid={m},ou=people,{SUFFIX}")),
            );
        }
        // groupOfNames needs a member: this one (no selected entry) stays when people leave.
        g.push(
            "member",
            LdapValue::Text(format!("cn=placeholder,{SUFFIX}")),
        );
        entries.push(g);
    }
    ldif::write(&entries)
}

async fn emulator() -> RunningEmulator {
    let state = StateDump::from_json(&format!(
        r#"{{
        "SecurityRole": [
            {{"id": "{ARTIST}", "name": "Artist", "type": "PROJECT"}},
            {{"id": "{SUPERVISOR}", "name": "Supervisor", "type": "PROJECT"}},
            {{"id": "10000000-0000-4000-8000-000000000003", "name": "Administrator", "type": "API"}}
        ],
        "Project": [
            {{"id": "20000000-0000-4000-8000-000000000001", "name": "spring_commercial"}},
            {{"id": "{SHORT_FILM}", "name": "short_film"}},
            {{"id": "{SECRET_SHOW}", "name": "secret_show", "is_private": true}}
        ]
    }}"#
    ))
    .unwrap();
    ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .unwrap()
}

fn ad_roles() -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples-rules/target/wasm32-wasip2/release/ad_roles.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the example rule modules with `bash tests/run.sh`",
            path.display()
        )
    });
    (path, format!("{:x}", Sha256::digest(&bytes)))
}

/// The studio's config: built-in mappings for staff, leads and privates; the shared
/// `ad-roles` module for admins (it proposes Administrator, an API role) and supers (it
/// proposes Supervisor, outside the bounds this studio gave it).
fn write_config(dir: &Path, slapd: &Slapd, emulator: &RunningEmulator, bounds: &str) {
    let (module, sha) = ad_roles();
    std::fs::write(
        dir.join("sync.toml"),
        format!(
            r#"
[ldap]
url = "{}"
bind_dn = "{SYNC_DN}"
bind_password_env = "SYNC_BIND_PASSWORD"
user_base_dn = "ou=people,{SUFFIX}"
group_base_dn = "ou=groups,{SUFFIX}"

[ftrack]
server_url = "{}"
api_user = "{API_USER}"

# eve is left out on purpose (her module proposal is outside its bounds).
[guards]
max_skipped = 1

[group_mappings]
"staff" = {{ groups = ["Staff"], roles = ["Artist"] }}
"leads" = {{ project_roles = {{ "short_film" = ["Supervisor"] }} }}
"privates" = {{ project_roles = {{ "secret_show" = ["Artist"] }} }}

[[rules]]
module = "{}"
sha256 = "{sha}"
on_error = "skip"
{bounds}
[rules.config]
mappings = [
    {{ ldap_group = "admins", roles = ["Administrator"] }},
    {{ ldap_group = "supers", roles = ["Supervisor"] }},
]
"#,
            slapd.url,
            emulator.url(),
            module.display()
        ),
    )
    .unwrap();
}

fn run(dir: &Path, args: &[&str]) -> Output {
    support::run(
        dir,
        args,
        &[
            ("FTRACK_API_KEY", API_KEY),
            ("SYNC_BIND_PASSWORD", SYNC_PASSWORD),
        ],
    )
}

fn plan(dir: &Path) -> Value {
    let out = run(dir, &["plan", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (kind, user, role, scope, add_role) of each role operation.
fn role_ops(plan: &Value) -> Vec<(String, String, String, String, bool)> {
    plan_ops(plan)
        .into_iter()
        .filter(|o| o.kind == "grant_role" || o.kind == "revoke_role")
        .map(|o| {
            let role = o
                .role
                .unwrap_or_else(|| panic!("{} {} names no role", o.kind, o.target));
            let scope = o.scope.unwrap_or_else(|| "(whole role)".to_string());
            (o.kind, o.target, role, scope, o.add_role)
        })
        .collect()
}

fn op(
    kind: &str,
    user: &str,
    role: &str,
    scope: &str,
    add: bool,
) -> (String, String, String, String, bool) {
    (kind.into(), user.into(), role.into(), scope.into(), add)
}

/// Each user's security roles as the official Python client reads them:
/// username → role name → (is_all_open_projects, sorted project names).
fn roles_via_official_client(emulator: &RunningEmulator) -> Value {
    let script = r#"
import json, ftrack_api
s = ftrack_api.Session(plugin_paths=[], auto_connect_event_hub=False, schema_cache_path=False)
out = {}
for usr in s.query('select user.username, security_role.name, is_all_open_projects from UserSecurityRole').all():
    projects = sorted(p['project']['name'] for p in s.query(
        'select project.name from UserSecurityRoleProject where user_security_role_id is "%s"' % usr['id']).all())
    out.setdefault(usr['user']['username'], {})[usr['security_role']['name']] = [usr['is_all_open_projects'], projects]
print(json.dumps(out, sort_keys=True))
"#;
    let out = support::official_client(&emulator.url(), API_USER, API_KEY)
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "official client: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_added_then_widened_narrowed_and_removed_as_ftrack_documents() {
    let slapd = Slapd::start(&directory());
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &slapd,
        &emu,
        "groups = []\nroles = [\"Artist\", \"Administrator\"]",
    );

    // check lists the module's bounds and refuses the API role it names (exit 2).
    let out = run(dir.path(), &["check", "--output", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["rules"][0]["bounds"],
        serde_json::json!({"rule": "rules[0]", "groups": [], "roles": ["Artist", "Administrator"]})
    );
    let administrator = report["ftrack"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Administrator")
        .unwrap();
    assert_eq!(administrator["status"], "refused");
    assert_eq!(administrator["type"], "API");
    assert!(
        text(&out.stderr).contains("`Administrator` (rules[0].roles) has type API"),
        "{}",
        text(&out.stderr)
    );

    // rules inspect shows the bounds sync.toml gives the module, and a snippet with bounds.
    let out = run(
        dir.path(),
        &["rules", "inspect", &ad_roles().0.display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown
            .contains(r#"bounds:      rules[0]: groups = [], roles = ["Artist", "Administrator"]"#)
            && shown.contains("groups = []\nroles = []\n"),
        "{shown}"
    );

    let first = plan(dir.path());
    assert_eq!(
        role_ops(&first),
        vec![
            op("grant_role", "ann", "Artist", "all open projects", true),
            op("grant_role", "ann", "Supervisor", "short_film", true),
            op("grant_role", "bob", "Artist", "all open projects", true),
            op("grant_role", "bob", "Artist", "secret_show", false),
            op("grant_role", "cy", "Artist", "all open projects", true),
        ],
        "one add per role and user, before the first grant of it"
    );
    let notes: Vec<&str> = first["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 1, "one note for the refused role: {notes:?}");
    assert!(
        notes[0].starts_with("security role `Administrator` has type API: only PROJECT roles are granted per project")
            && notes[0].contains("rule module `ad-roles`")
            && notes[0].ends_with("2 users: `dee`, `fay`"),
        "{}",
        notes[0]
    );
    let skipped = first["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let why = skipped[0]["reason"].as_str().unwrap();
    assert!(
        skipped[0]["dn"].as_str().unwrap().starts_with("uid=eve")
            && why.contains("rule `ad-roles` failed in map-groups")
            && why.contains("for user `eve`: proposed role `Supervisor`, outside its bounds (roles = [\"Artist\", \"Administrator\"])"),
        "{why}"
    );
    let created: Vec<&str> = first["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "create_user")
        .map(|o| o["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        created,
        ["ann", "bob", "cy", "dee", "fay"],
        "eve is left out"
    );

    let out = run(dir.path(), &["apply", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(dir.path(), &["plan", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "converged: {}",
        text(&out.stdout)
    );

    assert_eq!(
        roles_via_official_client(&emu),
        serde_json::json!({
            "ann": {"Artist": [true, []], "Supervisor": [false, ["short_film"]]},
            "bob": {"Artist": [true, ["secret_show"]]},
            "cy": {"Artist": [true, []]},
        }),
        "nobody holds Administrator; the private project is granted by name"
    );
    let journal = std::fs::read_to_string(dir.path().join("ldap2ftrack-journal.jsonl")).unwrap();
    let ann_artist: Value = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["kind"] == "grant_role" && l["target"] == "ann" && l["role"] == "Artist")
        .unwrap();
    let actions: Vec<&str> = ann_artist["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["add_user_security_role", "grant_user_security_role_project"],
        "the journal records the wire calls"
    );

    // ann leaves leads (her only Supervisor scope), bob leaves privates.
    slapd.modify(
        &format!(
            "dn: cn=leads,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=ann,ou=people,{SUFFIX}\n\n\
             dn: cn=privates,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,{SUFFIX}\n"
        ),
    );
    let second = plan(dir.path());
    assert_eq!(
        role_ops(&second),
        vec![
            op("revoke_role", "ann", "Supervisor", "(whole role)", false),
            op("revoke_role", "bob", "Artist", "secret_show", false),
        ]
    );
    let out = run(dir.path(), &["apply", "-q", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        roles_via_official_client(&emu),
        serde_json::json!({
            "ann": {"Artist": [true, []]},
            "bob": {"Artist": [true, []]},
            "cy": {"Artist": [true, []]},
        }),
        "ann's Supervisor row is gone; bob keeps Artist on open projects only"
    );
    let out = run(dir.path(), &["plan", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_that_maps_groups_must_be_given_bounds() {
    let slapd = Slapd::start(&directory());
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &slapd, &emu, "");
    let before = serde_json::to_value(emu.dump()).unwrap();
    for command in ["plan", "apply", "check"] {
        let out = run(dir.path(), &[command]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("rules[0]")
                && err.contains("implements map-groups but its [[rules]] entry declares no bounds")
                && err.contains("add `groups = [...]` and `roles = [...]`"),
            "{command}: {err}"
        );
    }
    assert_eq!(
        serde_json::to_value(emu.dump()).unwrap(),
        before,
        "nothing written"
    );
}
