//! Incremental runs against a real Active Directory domain controller (Samba's): each kind of
//! change reaches ftrack through a run that reads only the objects whose uSNChanged moved,
//! and plans what a full run plans on the same data; a position from another or a restored
//! DC falls back to a full read; `watch` polls the DC and applies a change within seconds;
//! an account that cannot see deleted objects leaves deletes to the full read.

use crate::live_sync::{emulator, is_active, kinds, ok, plan, run, step, Watching};
use crate::support;
use crate::support::samba::{SambaDc, ADMIN_DN, ADMIN_PASSWORD, SUFFIX, URL};
use ftrack_emulator::RunningEmulator;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn people() -> String {
    format!("OU=People,{SUFFIX}")
}

fn groups() -> String {
    format!("OU=Groups,{SUFFIX}")
}

fn person(name: &str) -> String {
    format!(
        "dn: CN={name},{}\nobjectClass: user\nsAMAccountName: {name}\nuserAccountControl: 512\ngivenName: Person\nsn: {name}\nmail: {name}@ad.test\n\n",
        people()
    )
}

fn group(name: &str, members: &[&str]) -> String {
    let mut g = format!(
        "dn: CN={name},{}\nobjectClass: group\nsAMAccountName: {name}\n",
        groups()
    );
    for m in members {
        let base = if *m == "leads" { groups() } else { people() };
        g.push_str(&format!("member: CN={m},{base}\n"));
    }
    g + "\n"
}

/// Six people; `artists` holds three and the nested `leads`.
fn directory() -> String {
    let mut ldif = format!(
        "dn: {}\nobjectClass: organizationalUnit\n\ndn: {}\nobjectClass: organizationalUnit\n\n",
        people(),
        groups()
    );
    for name in ["ann", "bob", "cat", "dan", "eve", "fay"] {
        ldif.push_str(&person(name));
    }
    ldif.push_str(&group("leads", &["dan"]));
    ldif.push_str(&group("artists", &["ann", "bob", "cat", "leads"]));
    ldif
}

/// A configuration bound as `bind_dn` with `password` (from a file: the shared `run` sets
/// only the slapd tests' variable).
fn write_config(dir: &Path, emulator: &RunningEmulator, bind_dn: &str, password: &str) {
    support::private_file(&dir.join("bind-password"), password);
    std::fs::write(
        dir.join("sync.toml"),
        format!(
            r#"[ldap]
url = "{URL}"
bind_dn = "{bind_dn}"
bind_password_file = "bind-password"
user_base_dn = "{}"
user_filter = "(&(objectCategory=person)(objectClass=user))"
group_base_dn = "{}"
group_filter = "(objectClass=group)"

[mappings]
username = "sAMAccountName"

[ftrack]
server_url = "{}"
api_user = "sync-bot"

[group_mappings]
"artists" = {{ groups = ["Artists"], roles = ["Artist"] }}
"leads" = {{ groups = ["Leads"] }}

[deprovision]
action = "disable"
"#,
            people(),
            groups(),
            emulator.url()
        ),
    )
    .unwrap();
}

/// A fresh DC holding [`directory`], an emulator, and a configuration bound as the
/// Administrator.
async fn setup() -> (SambaDc, RunningEmulator, tempfile::TempDir) {
    let dc = SambaDc::start(&directory());
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &emu, ADMIN_DN, ADMIN_PASSWORD);
    (dc, emu, dir)
}

fn uac(name: &str, value: u32) -> String {
    format!(
        "dn: CN={name},{}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {value}\n",
        people()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_change_reaches_ftrack_incrementally_from_active_directory_as_a_full_run_would_plan_it(
) {
    let (dc, emu, dir) = setup().await;
    let modify = |change: &str| dc.modify(change);

    let out = run(dir.path(), &["check"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sync     incremental (usn): an Active Directory domain controller"),
        "{text}"
    );

    let log = ok(&run(dir.path(), &["apply", "-q"]));
    assert!(
        log.contains("full read: there is no sync state yet"),
        "{log}"
    );
    assert_eq!(is_active(&emu, "dan"), Some(true));

    // Nothing changed: the root DSE and the DC's invocationId are read, nothing else, and
    // ftrack is not read at all.
    emu.reset_counters();
    let (ops, log) = plan(dir.path(), false);
    assert_eq!(ops, serde_json::json!([]));
    assert!(log.contains("nothing changed"), "{log}");
    assert_eq!(emu.counters().requests, 0, "ftrack is not read");

    let (people, groups) = (people(), groups());
    step(
        dir.path(),
        &modify,
        "add",
        &format!(
            "{}dn: CN=artists,{groups}\nchangetype: modify\nadd: member\nmember: CN=gus,{people}\n",
            person("gus").replace("objectClass:", "changetype: add\nobjectClass:")
        ),
        &[
            ("create_user", "gus"),
            ("add_membership", "gus"),
            ("grant_role", "gus"),
        ],
    );
    step(
        dir.path(),
        &modify,
        "modify",
        &format!("dn: CN=bob,{people}\nchangetype: modify\nreplace: mail\nmail: robert@ad.test\n"),
        &[("update_user", "bob")],
    );
    // AD shows the group's member under the new DN without touching the group: a run that
    // kept the old DN would take cat out of artists.
    step(
        dir.path(),
        &modify,
        "move (a new DN, nothing ftrack sees)",
        &format!("dn: CN=cat,{people}\nchangetype: modrdn\nnewrdn: CN=Kit\ndeleteoldrdn: 1\n"),
        &[],
    );
    step(
        dir.path(),
        &modify,
        "rename",
        &format!("dn: CN=Kit,{people}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: kit\n"),
        // Named by its ftrack username until the update renames it.
        &[("update_user", "cat")],
    );
    step(
        dir.path(),
        &modify,
        "disable",
        &uac("eve", 514),
        &[("disable_user", "eve")],
    );
    step(
        dir.path(),
        &modify,
        "group change",
        &format!(
            "dn: CN=leads,{groups}\nchangetype: modify\nadd: member\nmember: CN=fay,{people}\n\n\
             dn: CN=artists,{groups}\nchangetype: modify\ndelete: member\nmember: CN=ann,{people}\n"
        ),
        &[
            ("add_membership", "fay"),
            ("add_membership", "fay"),
            ("grant_role", "fay"),
            ("remove_membership", "ann"),
            ("revoke_role", "ann"),
        ],
    );
    step(
        dir.path(),
        &modify,
        "delete",
        &format!("dn: CN=dan,{people}\nchangetype: delete\n"),
        &[("disable_user", "dan")],
    );
    // A new user under a deleted one's DN is not in the deleted one's groups.
    step(
        dir.path(),
        &modify,
        "a new user where a deleted one was",
        &person("dan")
            .replace("objectClass:", "changetype: add\nobjectClass:")
            .replace("sAMAccountName: dan", "sAMAccountName: dani"),
        &[("create_user", "dani")],
    );
}

/// The state file with its cookies' positions changed by `edit`.
fn edit_positions(state: &str, edit: &dyn Fn(&mut Value)) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut state: Value = serde_json::from_str(state).unwrap();
    for key in ["user_cookie", "group_cookie"] {
        let bytes = b64.decode(state[key].as_str().unwrap()).unwrap();
        let mut position: Value = serde_json::from_slice(&bytes).unwrap();
        edit(&mut position);
        state[key] = Value::String(b64.encode(position.to_string()));
    }
    state.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_position_from_a_restored_or_another_dc_falls_back_to_a_full_read_and_a_plain_account_leaves_deletes_to_it(
) {
    let (dc, emu, dir) = setup().await;
    ok(&run(dir.path(), &["apply", "-q"]));
    let state_file = dir.path().join("ldap2ftrack-sync-state.json");
    let good = std::fs::read_to_string(&state_file).unwrap();
    assert!(good.contains("\"source\":\"usn\""), "{good}");

    for (edit, says) in [
        (
            &(|p: &mut Value| p["invocation_id"] = Value::String("00".repeat(16)))
                as &dyn Fn(&mut Value),
            "its database was restored",
        ),
        (
            &|p: &mut Value| p["dc"] = Value::String(format!("CN=NTDS Settings,CN=DC2,{SUFFIX}")),
            "another domain controller answered",
        ),
        (
            &|p: &mut Value| p["usn"] = Value::from(p["usn"].as_u64().unwrap() + 1_000_000),
            "below the stored one",
        ),
    ] {
        std::fs::write(&state_file, edit_positions(&good, edit)).unwrap();
        let (ops, log) = plan(dir.path(), false);
        assert_eq!(ops, serde_json::json!([]), "nobody is disabled: {log}");
        let why: Vec<&str> = log.lines().filter(|l| l.contains("full read:")).collect();
        assert_eq!(why.len(), 1, "{log}");
        assert!(log.contains(says), "{says}: {log}");
    }

    // A plain account (not a Domain Admin) reads users and groups, but not deleted objects:
    // a delete is not seen by an incremental run, so nobody is disabled on a guess; the full
    // read disables them.
    dc.add_user("svc-sync", "Svc-Pa55word!");
    write_config(
        dir.path(),
        &emu,
        &format!("CN=svc-sync,CN=Users,{SUFFIX}"),
        "Svc-Pa55word!",
    );
    let log = ok(&run(dir.path(), &["apply", "-q"]));
    assert!(log.contains("full read:"), "another configuration: {log}");
    dc.modify(&format!("dn: CN=fay,{}\nchangetype: delete\n", people()));
    let (ops, log) = plan(dir.path(), false);
    assert!(log.contains("incremental read"), "{log}");
    assert_eq!(ops, serde_json::json!([]), "{log}");
    let (ops, _) = plan(dir.path(), true);
    assert_eq!(kinds(&ops), support::pairs(&[("disable_user", "fay")]));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_polls_the_domain_controller_and_applies_a_change_within_seconds() {
    let (dc, emu, dir) = setup().await;
    ok(&run(dir.path(), &["apply", "-q"]));
    assert_eq!(is_active(&emu, "eve"), Some(true));

    let watching = Watching::start(dir.path(), &[]);
    std::thread::sleep(Duration::from_secs(1));

    dc.modify(&uac("eve", 514));
    let took = watching.wait_for("eve disabled in ftrack", &|| {
        is_active(&emu, "eve") == Some(false)
    });
    dc.modify(&format!("dn: CN=fay,{}\nchangetype: delete\n", people()));
    watching.wait_for("fay disabled in ftrack", &|| {
        is_active(&emu, "fay") == Some(false)
    });
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: {}",
        watching.log()
    );
    assert!(
        watching.log().contains("incremental read"),
        "{}",
        watching.log()
    );
}
