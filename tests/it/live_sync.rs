//! Incremental runs against a real slapd with the syncprov overlay: each kind of change
//! (add, modify, rename, disable, group change, delete) reaches ftrack through a run that
//! reads only what changed, and the plan it makes equals a full run's on the same data.
//! `watch` applies a change within seconds and survives the directory and ftrack going
//! away and coming back. A
//! stored state that is corrupt, foreign or refused falls back to a full read, saying why
//! in one line, and disables nobody on its account.

use crate::support;

use ftrack_emulator::RunningEmulator;
use ldap2ftrack::directory::{ldif, Value as LdapValue};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use support::entry;
use support::slapd::{Overlays, Slapd, SUFFIX, SYNC_DN, SYNC_PASSWORD};

const API_USER: &str = "sync-bot";
const API_KEY: &str = "live-sync-key";

fn person(uid: &str) -> ldap2ftrack::directory::Entry {
    entry(
        format!("uid={uid},ou=people,{SUFFIX}"),
        &[
            ("objectClass", "inetOrgPerson"),
            ("uid", uid),
            ("cn", &format!("Person {uid}")),
            ("sn", uid),
            ("givenName", "Person"),
            ("mail", &format!("{uid}@example.org")),
        ],
    )
}

fn group(name: &str, members: &[&str]) -> ldap2ftrack::directory::Entry {
    let mut g = entry(
        format!("cn={name},ou=groups,{SUFFIX}"),
        &[("objectClass", "groupOfNames"), ("cn", name)],
    );
    for m in members {
        let dn = if m.starts_with("cn=") {
            format!("{m},ou=groups,{SUFFIX}")
        } else {
            format!("uid={m},ou=people,{SUFFIX}")
        };
        g.push("member", LdapValue::Text(dn));
    }
    g
}

/// Six people; `artists` holds three and the nested `leads`.
fn directory() -> String {
    let mut entries = support::slapd::people_and_groups();
    for uid in ["ann", "bob", "cat", "dan", "eve", "fay"] {
        entries.push(person(uid));
    }
    entries.push(group("leads", &["dan"]));
    entries.push(group("artists", &["ann", "bob", "cat", "cn=leads"]));
    ldif::write(&entries)
}

pub(crate) async fn emulator() -> RunningEmulator {
    support::emulator_with_artist_role(API_USER, API_KEY).await
}

fn write_config(dir: &Path, slapd: &Slapd, emulator: &RunningEmulator) {
    std::fs::write(
        dir.join("sync.toml"),
        format!(
            r#"[ldap]
url = "{}"
bind_dn = "{SYNC_DN}"
bind_password_env = "SYNC_BIND_PASSWORD"
user_base_dn = "ou=people,{SUFFIX}"
group_base_dn = "ou=groups,{SUFFIX}"

[ftrack]
server_url = "{}"
api_user = "{API_USER}"

[group_mappings]
"artists" = {{ groups = ["Artists"], roles = ["Artist"] }}
"leads" = {{ groups = ["Leads"] }}

[deprovision]
action = "disable"
"#,
            slapd.url,
            emulator.url()
        ),
    )
    .unwrap();
}

pub(crate) fn run(dir: &Path, args: &[&str]) -> Output {
    support::run(
        dir,
        args,
        &[
            ("FTRACK_API_KEY", API_KEY),
            ("SYNC_BIND_PASSWORD", SYNC_PASSWORD),
            ("LDAP2FTRACK_LOG", "info"),
        ],
    )
}

pub(crate) fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    err
}

/// `plan --output json` (`--full` when asked): its operations, and what it logged.
pub(crate) fn plan(dir: &Path, full: bool) -> (Value, String) {
    let mut args = vec!["plan", "--output", "json"];
    if full {
        args.push("--full");
    }
    let out = run(dir, &args);
    let log = ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["operations"].clone(), log)
}

pub(crate) fn kinds(ops: &Value) -> Vec<(String, String)> {
    support::plan_ops(&serde_json::json!({ "operations": ops }))
        .iter()
        .map(|o| o.pair())
        .collect()
}

/// Makes `change` in LDAP, then checks that the incremental plan is the full plan, that it
/// was incremental, and that it is `expected`; applies it incrementally and checks that a
/// full plan is then empty.
pub(crate) fn step(
    dir: &Path,
    modify: &dyn Fn(&str),
    what: &str,
    change: &str,
    expected: &[(&str, &str)],
) {
    modify(change);
    let (incremental, log) = plan(dir, false);
    assert!(
        log.contains("incremental read") && !log.contains("full read"),
        "{what}: the run read incrementally: {log}"
    );
    let (full, full_log) = plan(dir, true);
    assert!(
        full_log.contains("full read: --full was given"),
        "{full_log}"
    );
    assert_eq!(
        incremental, full,
        "{what}: the incremental plan is the full one"
    );
    assert_eq!(kinds(&incremental), support::pairs(expected), "{what}");
    let log = ok(&run(dir, &["apply", "-q"]));
    assert!(log.contains("incremental read"), "{what}: {log}");
    let (after, _) = plan(dir, true);
    assert_eq!(
        after,
        serde_json::json!([]),
        "{what}: applied, ftrack matches"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_change_reaches_ftrack_incrementally_as_a_full_run_would_plan_it() {
    // No session log: a refresh from a cookie is a present phase (deletes by absence).
    for overlays in [
        Overlays::Syncprov { sessionlog: 0 },
        Overlays::Syncprov { sessionlog: 100 },
    ] {
        let slapd = Slapd::start_with(&directory(), overlays);
        let emu = emulator().await;
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &slapd, &emu);
        let modify = |change: &str| slapd.modify(change);

        let log = ok(&run(dir.path(), &["apply", "-q"]));
        assert!(
            log.contains("full read: there is no sync state yet"),
            "{log}"
        );
        assert!(dir.path().join("ldap2ftrack-sync-state.json").is_file());

        // Nothing changed: nothing read but the refresh, ftrack not read at all.
        emu.reset_counters();
        let (ops, log) = plan(dir.path(), false);
        assert_eq!(ops, serde_json::json!([]));
        assert!(log.contains("nothing changed"), "{log}");
        assert_eq!(
            emu.counters().requests,
            0,
            "ftrack is not read when LDAP says nothing changed"
        );

        let people = format!("ou=people,{SUFFIX}");
        let groups = format!("ou=groups,{SUFFIX}");

        // One user changed: ftrack's users are read whole (a username is matched against
        // all of them), memberships and grants only the changed user's.
        slapd.modify(&format!(
            "dn: uid=ann,{people}\nchangetype: modify\nreplace: mail\nmail: ann@studio.example.org\n"
        ));
        emu.reset_counters();
        let (ops, _) = plan(dir.path(), false);
        assert_eq!(kinds(&ops), support::pairs(&[("update_user", "ann")]));
        let narrowed = emu.counters();
        emu.reset_counters();
        plan(dir.path(), true);
        let whole = emu.counters();
        assert_eq!(narrowed.rows_of("Membership"), 1, "ann's one membership");
        assert_eq!(narrowed.rows_of("UserSecurityRole"), 1, "ann's one grant");
        assert!(whole.rows_of("Membership") >= 5, "{whole:?}");
        assert_eq!(narrowed.rows_of("User"), whole.rows_of("User"));
        ok(&run(dir.path(), &["apply", "-q"]));

        step(
            dir.path(),
            &modify,
            "add",
            &format!(
                "dn: uid=gus,{people}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: gus\ncn: Person gus\nsn: gus\ngivenName: Person\nmail: gus@example.org\n\n\
                 dn: cn=artists,{groups}\nchangetype: modify\nadd: member\nmember: uid=gus,{people}\n"
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
            &format!("dn: uid=bob,{people}\nchangetype: modify\nreplace: mail\nmail: robert@example.org\n"),
            &[("update_user", "bob")],
        );
        step(
            dir.path(),
            &modify,
            "rename",
            &format!(
                "dn: uid=cat,{people}\nchangetype: modrdn\nnewrdn: uid=kit\ndeleteoldrdn: 1\n\n\
                 dn: cn=artists,{groups}\nchangetype: modify\ndelete: member\nmember: uid=cat,{people}\n-\nadd: member\nmember: uid=kit,{people}\n"
            ),
            // Named by its ftrack username until the update renames it.
            &[("update_user", "cat")],
        );
        step(
            dir.path(),
            &modify,
            "disable",
            &format!(
                "dn: uid=eve,{people}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
            ),
            &[("disable_user", "eve")],
        );
        step(
            dir.path(),
            &modify,
            "group change",
            &format!(
                "dn: cn=leads,{groups}\nchangetype: modify\nadd: member\nmember: uid=fay,{people}\n\n\
                 dn: cn=artists,{groups}\nchangetype: modify\ndelete: member\nmember: uid=ann,{people}\n"
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
            &format!("dn: uid=dan,{people}\nchangetype: delete\n"),
            // Disabled, as [deprovision] says; what they held stays for their return.
            &[("disable_user", "dan")],
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_or_refused_sync_state_falls_back_to_a_full_read_and_disables_nobody() {
    let slapd = Slapd::start_with(&directory(), Overlays::Syncprov { sessionlog: 0 });
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &slapd, &emu);
    ok(&run(dir.path(), &["apply", "-q"]));
    let state_file = dir.path().join("ldap2ftrack-sync-state.json");
    let good = std::fs::read_to_string(&state_file).unwrap();

    // Corrupt: one line says why, the run reads everything, and plans nothing.
    std::fs::write(&state_file, &good[..good.len() / 2]).unwrap();
    let (ops, log) = plan(dir.path(), false);
    assert_eq!(ops, serde_json::json!([]), "nothing is disabled: {log}");
    let why: Vec<&str> = log.lines().filter(|l| l.contains("full read:")).collect();
    assert_eq!(why.len(), 1, "{log}");
    assert!(why[0].contains("the sync state cannot be read"), "{log}");

    // A cookie the server cannot use (garbage: slapd sends everything back, no cookie).
    let mut state: Value = serde_json::from_str(&good).unwrap();
    state["user_cookie"] = Value::String("Z2FyYmFnZQ==".into());
    std::fs::write(&state_file, state.to_string()).unwrap();
    let (ops, log) = plan(dir.path(), false);
    assert_eq!(ops, serde_json::json!([]), "nothing is disabled: {log}");
    assert!(
        log.contains("did not accept the stored position") && log.contains("full read:"),
        "{log}"
    );

    // A cookie from a newer database (a restored server): refused by slapd, full read.
    state["user_cookie"] = Value::String(base64_of(
        "rid=000,csn=29991231235959.000000Z#000000#000#000000",
    ));
    std::fs::write(&state_file, state.to_string()).unwrap();
    let (ops, log) = plan(dir.path(), false);
    assert_eq!(ops, serde_json::json!([]), "nothing is disabled: {log}");
    assert!(log.contains("asked for a full reload"), "{log}");

    // Another configuration: the state is not used.
    std::fs::write(&state_file, &good).unwrap();
    let config = std::fs::read_to_string(dir.path().join("sync.toml")).unwrap();
    std::fs::write(
        dir.path().join("sync.toml"),
        config.replace(
            "[deprovision]",
            "[guards]\nmax_disable = 5\n\n[deprovision]",
        ),
    )
    .unwrap();
    let (ops, log) = plan(dir.path(), false);
    assert_eq!(ops, serde_json::json!([]));
    assert!(
        log.contains("the configuration or a rule module changed"),
        "{log}"
    );

    // The entries are read only when something changed; damaged, they are no state either.
    std::fs::write(dir.path().join("sync.toml"), &config).unwrap();
    let entries = dir.path().join("ldap2ftrack-sync-state.json.entries");
    std::fs::write(&entries, "{\"id\": \"someone else's\"}").unwrap();
    slapd.modify(&format!(
        "dn: uid=bob,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: b@example.org\n"
    ));
    let (ops, log) = plan(dir.path(), false);
    assert_eq!(
        kinds(&ops),
        support::pairs(&[("update_user", "bob")]),
        "{log}"
    );
    let why: Vec<&str> = log.lines().filter(|l| l.contains("full read:")).collect();
    assert_eq!(why.len(), 1, "{log}");
    assert!(why[0].contains(".entries"), "{log}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn check_says_which_mode_each_server_gets_and_a_server_without_syncprov_stays_full() {
    for (overlays, mode, why) in [
        (
            Overlays::Syncprov { sessionlog: 0 },
            "sync     incremental (syncrepl): the server offers the sync control",
            None,
        ),
        (
            Overlays::Usual,
            "sync     full: the server reports no changes: it does not offer syncrepl",
            Some("the server does not offer syncrepl"),
        ),
    ] {
        let slapd = Slapd::start_with(&directory(), overlays);
        let emu = emulator().await;
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &slapd, &emu);
        let out = run(dir.path(), &["check"]);
        ok(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(mode), "{text}");
        let log = ok(&run(dir.path(), &["apply", "-q"]));
        let state = dir.path().join("ldap2ftrack-sync-state.json");
        match why {
            Some(why) => {
                assert!(log.contains(why), "{log}");
                assert!(!state.exists(), "no state from a paged read");
            }
            None => assert!(state.is_file(), "{log}"),
        }
    }
}

/// Whether ftrack's user `username` is active, from the emulator's state.
pub(crate) fn is_active(emu: &RunningEmulator, username: &str) -> Option<bool> {
    emu.dump().entities.get("User")?.iter().find_map(|u| {
        (u["username"] == username).then(|| u["is_active"].as_bool().unwrap_or(false))
    })
}

/// `ldap2ftrack watch` running in `dir` with `env` (and the API key), logging at info to
/// `watch.log`; killed when dropped. Started once it says it is watching.
pub(crate) struct Watching {
    pub child: support::KillOnDrop,
    log: std::path::PathBuf,
}

impl Watching {
    pub(crate) fn start(dir: &Path, env: &[(&str, &str)]) -> Watching {
        let log = dir.join("watch.log");
        let child = support::ldap2ftrack(dir)
            .arg("watch")
            .env("FTRACK_API_KEY", API_KEY)
            .env("LDAP2FTRACK_LOG", "info")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let watching = Watching {
            child: support::KillOnDrop(child),
            log,
        };
        watching.wait_for("watching", &|| {
            watching.log().contains("watching the directory")
        });
        watching
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `done` (at most 15 s, then fails with the log); how long it took.
    pub(crate) fn wait_for(&self, what: &str, done: &dyn Fn() -> bool) -> std::time::Duration {
        let started = std::time::Instant::now();
        while !done() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(15),
                "{what}: not within 15 s: {}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        started.elapsed()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_applies_a_change_within_seconds_survives_the_directory_going_away_and_stops_on_sigterm(
) {
    use std::time::{Duration, Instant};
    let mut slapd = Slapd::start_with(&directory(), Overlays::Syncprov { sessionlog: 100 });
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &slapd, &emu);
    ok(&run(dir.path(), &["apply", "-q"]));
    assert_eq!(is_active(&emu, "eve"), Some(true));

    let mut watching = Watching::start(dir.path(), &[("SYNC_BIND_PASSWORD", SYNC_PASSWORD)]);
    // Let the first apply (nothing to do) and the persistent search settle.
    std::thread::sleep(Duration::from_secs(1));

    slapd.modify(&format!(
        "dn: uid=eve,ou=people,{SUFFIX}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
    ));
    let took = watching.wait_for("eve disabled in ftrack", &|| {
        is_active(&emu, "eve") == Some(false)
    });
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: {}",
        watching.log()
    );
    slapd.modify(&format!(
        "dn: uid=fay,ou=people,{SUFFIX}\nchangetype: delete\n"
    ));
    watching.wait_for("fay disabled in ftrack", &|| {
        is_active(&emu, "fay") == Some(false)
    });
    assert!(
        watching.log().contains("incremental read"),
        "{}",
        watching.log()
    );

    // The journal holds what the watch applied, as for any apply.
    let journal = std::fs::read_to_string(dir.path().join("ldap2ftrack-journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"eve\"") && journal.contains("\"fay\""),
        "{journal}"
    );

    // The directory goes away and comes back: the watch retries, reads everything once, and
    // follows changes again.
    slapd.stop();
    watching.wait_for("the apply failing while the directory is down", &|| {
        watching.log().contains("the apply failed")
    });
    slapd.restart();
    slapd.modify(&format!(
        "dn: uid=ann,ou=people,{SUFFIX}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
    ));
    watching.wait_for("ann disabled after the directory came back", &|| {
        is_active(&emu, "ann") == Some(false)
    });
    let log_text = watching.log();
    let after_failure = &log_text[log_text.find("the apply failed").unwrap()..];
    assert!(
        after_failure.contains("full read: --full was given"),
        "{log_text}"
    );

    // ftrack goes away (every request answered with HTTP 500) while a change waits: the
    // apply retries, nothing lands meanwhile, and the change lands once ftrack is back.
    emu.set_faults(ftrack_emulator::Faults {
        fail_after_requests: Some(0),
        ..ftrack_emulator::Faults::none()
    });
    slapd.modify(&format!(
        "dn: uid=bob,ou=people,{SUFFIX}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
    ));
    watching.wait_for("a retry while ftrack is down", &|| {
        watching.log().contains("ftrack request failed")
    });
    assert_eq!(
        is_active(&emu, "bob"),
        Some(true),
        "nothing lands while ftrack is down"
    );
    std::thread::sleep(Duration::from_secs(2));
    emu.set_faults(ftrack_emulator::Faults::none());
    watching.wait_for("bob disabled after ftrack came back", &|| {
        is_active(&emu, "bob") == Some(false)
    });

    // SIGTERM: a clean stop.
    let status = Command::new("kill")
        .args(["-TERM", &watching.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = watching.child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "watch did not stop: {}",
            watching.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}: {}", watching.log());
}

#[test]
fn watch_refuses_a_directory_that_cannot_report_its_changes() {
    let slapd = Slapd::start(&directory());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(emulator());
    write_config(dir.path(), &slapd, &emu);
    let out = run(dir.path(), &["watch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`watch` needs a directory that reports its changes")
            && err.contains("does not offer syncrepl"),
        "{err}"
    );
}
