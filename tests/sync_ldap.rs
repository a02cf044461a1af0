//! The sync end to end against a real OpenLDAP slapd (StartTLS, paging past the sync
//! account's size limit) and an Active-Directory-like server, with the ftrack emulator: the
//! first run creates, the second plans nothing, an LDAP change is exactly its operations,
//! and an LDAP failure mid-read changes nothing in ftrack.

mod support;

use ftrack_emulator::{EmulatorConfig, RunningEmulator};
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
    let state = ftrack_emulator::StateDump::from_json(
        r#"{"SecurityRole": [{"id": "10000000-0000-4000-8000-000000000001", "name": "Artist"}]}"#,
    )
    .unwrap();
    ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .unwrap()
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
