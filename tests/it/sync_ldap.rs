//! The sync end to end against a real OpenLDAP slapd (StartTLS, paging past the sync
//! account's size limit) and an Active-Directory-like server, with the ftrack emulator: the
//! first run creates, the second plans nothing, an LDAP change is exactly its operations,
//! and an LDAP failure mid-read changes nothing in ftrack.

use crate::support;

use ftrack_emulator::RunningEmulator;
use ldap2ftrack::directory::{ldif, Value as LdapValue};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use support::fake_ad::{self, AdObject, FakeAd, Fault};
use support::slapd::{Slapd, SUFFIX, SYNC_DN, SYNC_PASSWORD};
use support::{entry, pairs, plan_ops};

const API_USER: &str = "sync-bot";
const API_KEY: &str = "ldap-e2e-key";

/// 1,500 people (more than the sync account's 1,000-entry limit), three groups, one nested.
fn directory() -> String {
    let mut entries = support::slapd::people_and_groups();
    for i in 0..1500 {
        let uid = format!("p{i:04}");
        entries.push(entry(
            format!("uid={uid},ou=people,{SUFFIX}"),
            &[
                ("objectClass", "inetOrgPerson"),
                ("uid", &uid),
                ("cn", &format!("Person {i}")),
                ("sn", &i.to_string()),
                ("givenName", "Person"),
                ("mail", &format!("{uid}@example.org")),
            ],
        ));
    }
    let group = |name: &str, members: &mut dyn Iterator<Item = String>| {
        let mut g = entry(
            format!("cn={name},ou=groups,{SUFFIX}"),
            &[("objectClass", "groupOfNames"), ("cn", name)],
        );
        for m in members {
            g.push("member", LdapValue::Text(m));
        }
        g
    };
    entries.push(group(
        "leads",
        &mut (0..5).map(|i| format!("uid=p{i:04},ou=people,{SUFFIX}")),
    ));
    entries.push(group(
        "artists",
        &mut (0..1000)
            .map(|i| format!("UID=P{i:04},OU=People,{}", SUFFIX.to_uppercase()))
            .chain(std::iter::once(format!("cn=leads,ou=groups,{SUFFIX}"))),
    ));
    ldif::write(&entries)
}

fn write_config(dir: &Path, ldap: &str, emulator: &RunningEmulator) {
    std::fs::write(
        dir.join("sync.toml"),
        format!(
            r#"
{ldap}

[ftrack]
server_url = "{}"
api_user = "{API_USER}"

[group_mappings]
"artists" = {{ groups = ["Artists"], roles = ["Artist"] }}
"leads" = {{ groups = ["Leads"] }}
"#,
            emulator.url()
        ),
    )
    .unwrap();
}

async fn emulator() -> RunningEmulator {
    support::emulator_with_artist_role(API_USER, API_KEY).await
}

fn run(dir: &Path, args: &[&str], password: &str) -> Output {
    support::run(
        dir,
        args,
        &[
            ("FTRACK_API_KEY", API_KEY),
            ("SYNC_BIND_PASSWORD", password),
        ],
    )
}

fn plan_kinds(dir: &Path) -> Vec<(String, String)> {
    let out = run(dir, &["plan", "--output", "json"], SYNC_PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    plan_ops(&v).iter().map(|o| o.pair()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_from_slapd_over_starttls_converges_and_follows_changes() {
    let slapd = Slapd::start(&directory());
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let ldap = format!(
        "[ldap]\nurl = \"{}\"\nstarttls = true\nca_file = \"{}\"\nbind_dn = \"{SYNC_DN}\"\nbind_password_env = \"SYNC_BIND_PASSWORD\"\nuser_base_dn = \"ou=people,{SUFFIX}\"\ngroup_base_dn = \"ou=groups,{SUFFIX}\"\npage_size = 500",
        slapd.url,
        slapd.ca_file.display()
    );
    write_config(dir.path(), &ldap, &emu);

    let plan = plan_kinds(dir.path());
    let count = |k: &str| plan.iter().filter(|(kind, _)| kind == k).count();
    assert_eq!(
        count("create_user"),
        1500,
        "paging got past the 1,000-entry limit"
    );
    assert_eq!(count("create_group"), 2);
    assert_eq!(
        count("add_membership"),
        1000 + 5,
        "1000 in Artists (leads are members too) + 5 in Leads"
    );
    assert_eq!(count("grant_role"), 1000);
    let out = run(dir.path(), &["apply", "-q"], SYNC_PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        plan_kinds(dir.path()),
        vec![],
        "the second run plans nothing"
    );

    // A change made on the server: a new mail and one member fewer.
    let change = format!(
        "dn: uid=p0042,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: answer@example.org\n\n\
         dn: cn=artists,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=p0007,ou=people,{SUFFIX}\n"
    );
    slapd.modify(&change);
    assert_eq!(
        plan_kinds(dir.path()),
        pairs(&[
            ("update_user", "p0042"),
            ("remove_membership", "p0007"),
            ("revoke_role", "p0007"),
        ])
    );

    // A wrong password is a bind error, exit 1, and never printed.
    let out = run(dir.path(), &["plan"], "not-the-password-123");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bind") && !err.contains("not-the-password-123"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_answering_with_a_malformed_sync_control_is_read_in_full_and_disables_nobody() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<AdObject> = (0..5)
        .map(|i| {
            AdObject::new(format!("CN=User {i},{}", fake_ad::USERS_BASE))
                .text("objectClass", "user")
                .text("uid", &format!("user{i}"))
        })
        .collect();
    let ad = FakeAd::start(users, Vec::new(), Fault::MalformedSyncControl).await;
    let ldap = format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"{}\"\nbind_password_env = \"SYNC_BIND_PASSWORD\"\nuser_base_dn = \"{}\"\ngroup_base_dn = \"{}\"\nuser_filter = \"(objectClass=user)\"\ngroup_filter = \"(objectClass=group)\"\ntimeout_s = 5",
        ad.url,
        fake_ad::BIND_DN,
        fake_ad::USERS_BASE,
        fake_ad::GROUPS_BASE
    );
    write_config(dir.path(), &ldap, &emu);
    // Each run's sync search is refused for the malformed control: one warning, a paged
    // read of everything, no state kept; the second run plans nothing (nobody disabled).
    for expected_creates in [5, 0] {
        let out = run(
            dir.path(),
            &["apply", "--output", "json"],
            fake_ad::BIND_PASSWORD,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("malformed")).collect();
        assert_eq!(warnings.len(), 1, "{err}");
        assert!(
            warnings[0].contains("sync state")
                && warnings[0].contains("reading everything with a paged search"),
            "{err}"
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            summary["summary"]["create_user"].as_u64().unwrap_or(0),
            expected_creates,
            "{summary}"
        );
        assert_eq!(
            summary["summary"]["disable_user"].as_u64().unwrap_or(0),
            0,
            "{summary}"
        );
        assert!(!dir.path().join("ldap2ftrack-sync-state.json").exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ldap_server_gone_before_or_during_the_read_changes_nothing() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();

    // Dropped mid-search (after the first page) by an AD-like server.
    let users: Vec<AdObject> = (0..2500)
        .map(|i| {
            AdObject::new(format!("CN=User {i:04},{}", fake_ad::USERS_BASE))
                .text("objectClass", "user")
                .text("uid", &format!("user{i:04}"))
        })
        .collect();
    let ad = FakeAd::start(users, Vec::new(), Fault::DropConnection).await;
    let ldap = format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"{}\"\nbind_password_env = \"SYNC_BIND_PASSWORD\"\nuser_base_dn = \"{}\"\ngroup_base_dn = \"{}\"\nuser_filter = \"(objectClass=user)\"\ngroup_filter = \"(objectClass=group)\"\npage_size = 1000\ntimeout_s = 5",
        ad.url,
        fake_ad::BIND_DN,
        fake_ad::USERS_BASE,
        fake_ad::GROUPS_BASE
    );
    write_config(dir.path(), &ldap, &emu);
    let before = serde_json::to_value(emu.dump()).unwrap();
    emu.reset_counters();
    let out = run(dir.path(), &["apply"], fake_ad::BIND_PASSWORD);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(fake_ad::USERS_BASE),
        "names the base DN: {err}"
    );
    assert_eq!(
        serde_json::to_value(emu.dump()).unwrap(),
        before,
        "nothing written"
    );
    let counters = emu.counters();
    assert_eq!(
        counters.operations_of("create") + counters.operations_of("update"),
        0
    );

    // A real slapd killed before the run: a connection error, nothing written.
    let mut slapd = Slapd::start(&directory());
    let ldap = format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"{SYNC_DN}\"\nbind_password_env = \"SYNC_BIND_PASSWORD\"\nuser_base_dn = \"ou=people,{SUFFIX}\"\ntimeout_s = 5",
        slapd.url
    );
    write_config(dir.path(), &ldap, &emu);
    slapd.stop();
    let out = run(dir.path(), &["apply"], SYNC_PASSWORD);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(serde_json::to_value(emu.dump()).unwrap(), before);
}

/// People with more attributes than any rule reads, one of them a contractor the user
/// filter leaves out, and `leads` (ann and bob).
fn directory_with_unread_attributes() -> String {
    let mut entries = support::slapd::people_and_groups();
    let person = |uid: &str, kind: &str, extra: &[(&str, &str)]| {
        let mut attributes = vec![
            ("objectClass", "inetOrgPerson"),
            ("uid", uid),
            ("cn", uid),
            ("sn", "Person"),
            ("mail", "placeholder"),
            ("employeeType", kind),
            ("description", "a long biography nobody syncs"),
            ("telephoneNumber", "+44 20 7946 0000"),
        ];
        attributes.extend_from_slice(extra);
        let mail = format!("{uid}@example.org");
        for a in attributes.iter_mut().filter(|a| a.0 == "mail") {
            a.1 = &mail;
        }
        entry(format!("uid={uid},ou=people,{SUFFIX}"), &attributes)
    };
    entries.push(person("ann", "staff", &[("givenName", "Ann")]));
    // No givenName or displayName: studio-basics takes the first name from `initials`,
    // which only that module reads.
    entries.push(person("bob", "staff", &[("initials", "Bo B.")]));
    entries.push(person("cal", "contractor", &[("givenName", "Cal")]));
    let mut leads = entry(
        format!("cn=leads,ou=groups,{SUFFIX}"),
        &[("objectClass", "groupOfNames"), ("cn", "leads")],
    );
    for uid in ["ann", "bob"] {
        leads.push(
            "member",
            LdapValue::Text(format!("uid={uid},ou=people,{SUFFIX}")),
        );
    }
    entries.push(leads);
    ldif::write(&entries)
}

/// Without `[ldap] user_attributes`, a run asks slapd only for what the built-in mappings,
/// the rule module's declared reads and the directory itself (ids, disabled state, the user
/// filter) need: `description` and `telephoneNumber` never leave the server. Observed in
/// what `plan --snapshot` keeps of each entry, and in `check`'s account of the request. The
/// plan is the one reading everything gives, and the captured case replays: the filter's
/// `employeeType` was read, so the file selects the same people.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_asks_ldap_only_for_the_attributes_its_rules_read() {
    let slapd = Slapd::start(&directory_with_unread_attributes());
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let module = support::root().join("tests/demo/rules/studio_basics.wasm");
    let sha256 = {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(std::fs::read(&module).unwrap()))
    };
    let config = |user_attributes: &str| {
        format!(
            r#"
[ldap]
url = "{url}"
bind_dn = "{SYNC_DN}"
bind_password_env = "SYNC_BIND_PASSWORD"
user_base_dn = "ou=people,{SUFFIX}"
user_filter = "(&(objectClass=inetOrgPerson)(employeeType=staff))"
group_base_dn = "ou=groups,{SUFFIX}"
{user_attributes}

[ftrack]
server_url = "{ftrack}"
api_user = "{API_USER}"

[group_mappings]
"leads" = {{ groups = ["Leads"] }}

[[rules]]
module = "{module}"
sha256 = "{sha256}"
[rules.config]
name_fallbacks = ["displayName", "initials"]
"#,
            url = slapd.url,
            ftrack = emu.url(),
            module = module.display(),
        )
    };
    std::fs::write(dir.path().join("sync.toml"), config("")).unwrap();
    std::fs::write(
        dir.path().join("everything.toml"),
        config("user_attributes = [\"*\"]"),
    )
    .unwrap();
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };

    let out = ok(run(dir.path(), &["check"], SYNC_PASSWORD));
    let report = String::from_utf8_lossy(&out.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("user attributes requested: "))
        .unwrap_or_else(|| panic!("no requested attributes in: {report}"));
    let requested: Vec<&str> = line
        .split("requested: ")
        .nth(1)
        .and_then(|l| l.split(" (").next())
        .unwrap()
        .split(", ")
        .collect();
    for needed in [
        "uid",
        "mail",
        "givenName",
        "sn",
        "initials",
        "employeeType",
        "entryUUID",
    ] {
        assert!(requested.contains(&needed), "{needed} in {line}");
    }
    for unread in ["*", "description", "telephoneNumber"] {
        assert!(!requested.contains(&unread), "{unread} in {line}");
    }
    assert!(
        line.ends_with("(for [mappings], rule module `studio-basics` and the directory itself)"),
        "{line}"
    );

    let plan_capturing =
        |config: &str, folder: &str| -> (Value, Vec<ldap2ftrack::directory::Entry>) {
            let out = ok(run(
                dir.path(),
                &[
                    "plan",
                    "--config",
                    config,
                    "--snapshot",
                    folder,
                    "--output",
                    "json",
                ],
                SYNC_PASSWORD,
            ));
            let ldif = std::fs::read(dir.path().join(folder).join("directory.ldif")).unwrap();
            let people = ldif::parse(&ldif)
                .unwrap()
                .into_iter()
                .filter(|e| e.dn.starts_with("uid="))
                .collect();
            (serde_json::from_slice(&out.stdout).unwrap(), people)
        };
    let (plan, people) = plan_capturing("sync.toml", "captured");
    let (plan_reading_all, people_all) = plan_capturing("everything.toml", "captured-all");

    assert_eq!(people.len(), 2, "ann and bob, not the contractor");
    for person in &people {
        for read in [
            "uid",
            "mail",
            "sn",
            "cn",
            "employeeType",
            "objectClass",
            "entryUUID",
        ] {
            assert!(person.attribute(read).is_some(), "{read} of {}", person.dn);
        }
        for unread in ["description", "telephoneNumber"] {
            assert!(
                person.attribute(unread).is_none(),
                "{unread} of {}",
                person.dn
            );
        }
    }
    assert!(
        people_all
            .iter()
            .all(|p| p.attribute("description").is_some()
                && p.attribute("telephoneNumber").is_some()),
        "reading everything does bring them: the check above can fail"
    );
    assert_eq!(plan["operations"], plan_reading_all["operations"]);
    assert_eq!(plan["skipped"], plan_reading_all["skipped"]);
    let bob = plan_ops(&plan)
        .into_iter()
        .find(|o| o.pair() == ("create_user".to_string(), "bob".to_string()))
        .map(|_| ());
    assert!(bob.is_some(), "{plan}");
    assert!(
        plan.to_string().contains("\"Bo\""),
        "bob's first name from initials, which only the module reads: {plan}"
    );

    let out = ok(run(dir.path(), &["test", "captured"], SYNC_PASSWORD));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed, 0 failed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
