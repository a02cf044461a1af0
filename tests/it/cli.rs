//! The command-line contract: subcommands, exit codes, and errors that name what is wrong.

use crate::support;

use std::process::{Command, Output};
use support::text;

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::run(dir.path(), &["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in ["plan", "apply", "test", "check", "explain", "rules"] {
        assert!(
            help.contains(&format!("  {sub}")),
            "{sub} missing from:\n{help}"
        );
    }
    assert!(help.contains("Exit codes"), "{help}");
    let out = support::run(dir.path(), &["rules", "--help"], &[]);
    let help = text(&out.stdout);
    assert!(help.contains("inspect") && help.contains("new"), "{help}");
}

#[test]
fn mistyped_key_exits_2_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[ldap]\nurl = \"ldap://x.example\"\nuser_base_dn = \"dc=x\"\nuser_filtr = \"(uid=*)\"\n",
    )
    .unwrap();
    let out = support::run(dir.path(), &["check", "--config", "bad.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml:4"), "{err}");
    assert!(err.contains("ldap.user_filtr"), "{err}");
    assert!(err.contains("did you mean `ldap.user_filter`?"), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout for an error");
}

#[test]
fn missing_config_file_exits_2_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::run(dir.path(), &["plan", "--config", "nope.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.toml"));
}

#[test]
fn plaintext_secret_exits_2_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "[ldap]\nurl = \"ldap://x.example\"\nuser_base_dn = \"dc=x\"\n[ftrack]\napi_key = \"k-123-secret\"\n",
    )
    .unwrap();
    let out = support::run(dir.path(), &["check", "--config", "s.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("ftrack.api_key_env"), "{err}");
    assert!(!err.contains("k-123-secret") && !text(&out.stdout).contains("k-123-secret"));
}

#[test]
fn a_clear_text_bind_to_another_machine_exits_2_before_any_network() {
    let dir = tempfile::tempdir().unwrap();
    let config = |extra: &str| {
        format!(
            "[ldap]\nurl = \"ldap://10.255.255.1\"\nuser_base_dn = \"dc=x\"\ntimeout_s = 2\n\
             bind_dn = \"cn=sync,dc=x\"\nbind_password_env = \"TEST_BIND_PW\"\n{extra}\
             [ftrack]\nserver_url = \"emulator:state.json\"\napi_user = \"sync-bot\"\n"
        )
    };
    std::fs::write(dir.path().join("plain.toml"), config("")).unwrap();
    let started = std::time::Instant::now();
    let out = support::run(dir.path(), &["plan", "--config", "plain.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let err = text(&out.stderr);
    assert!(err.contains("ldap.allow_insecure_ldap = true"), "{err}");
    assert!(err.contains("clear text"), "{err}");

    // Allowed: the run goes on (and fails to reach the unroutable server), warning first.
    std::fs::write(
        dir.path().join("allowed.toml"),
        config("allow_insecure_ldap = true\n"),
    )
    .unwrap();
    let out = support::run(
        dir.path(),
        &["plan", "--config", "allowed.toml"],
        &[("TEST_BIND_PW", "s3cret-bind"), ("FTRACK_API_KEY", "k")],
    );
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("in clear text"), "{err}");
    assert!(!err.contains("s3cret-bind"), "{err}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::run(dir.path(), &["sync"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_reports_the_demo_directory_exactly() {
    // The shipped sync.toml as-is, on a private copy of the demo: never the checkout's own
    // demo state (`target/demo`), which `cargo run -- apply` leaves behind.
    let demo = support::demo_copy();
    let out = support::run(demo.path(), &["check", "--output", "json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(report["config"], "ok");
    assert_eq!(
        report["ldap"],
        serde_json::json!({
            "users": 8, "disabled_users": 1, "groups": 4, "memberships": 10,
            // What a server would be asked for: what the mappings and studio-basics read,
            // the ids and disabled state, `uid` (memberUid) and the user filter's objectClass;
            // never `*`, and not memberOf, which no stage reads.
            "user_attributes": [
                "uid", "mail", "givenName", "sn", "displayName", "cn", "entryUUID",
                "nsUniqueId", "objectGUID", "pwdAccountLockedTime", "nsAccountLock",
                "userAccountControl", "objectClass"
            ],
            "user_attributes_for":
                "for [mappings], rule module `studio-basics` and the directory itself",
        })
    );
    assert_eq!(
        report["ftrack"]["users"], 3,
        "admin, ada and the API user from the seed"
    );
    assert_eq!(report["ftrack"]["groups"], 1);
    assert!(report["ftrack"]["server_version"].is_string());
    assert_eq!(
        report["rules"],
        serde_json::json!([{
            "module": "tests/demo/rules/studio_basics.wasm",
            "origin": "file",
            "name": "studio-basics",
            "sha256": "dfcbfb3b699386760ac4d1496044ffd6698b5ff0d48e8c4aa4ab44c1d703c7e8",
            "hooks": ["transform-user"],
            "bounds": {"rule": "rules[0]", "groups": null, "roles": null},
        }]),
        "the demo's pinned module"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// `check` reports each guard's limit at the demo's size, as JSON and in words, with the
/// totals a run uses: none managed before the first run, the demo's after it.
#[test]
fn check_reports_each_guards_limit_at_the_current_size() {
    let demo = support::demo_copy();
    let run = |args: &[&str]| support::run(demo.path(), args, &[]);
    let guards = |out: &Output| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["guards"].clone()
    };
    let fresh = guards(&run(&["check", "--output", "json"]));
    assert_eq!(
        fresh["max_disable"],
        serde_json::json!({
            "limit": "10% or 3", "of": "managed users", "total": 0, "percent_allows": 0,
            "count": 3, "allows": 3, "basis": "count", "planned": 0
        })
    );
    assert_eq!(fresh["max_skipped"]["total"], 8, "the directory's users");
    assert_eq!(fresh["max_skipped"]["allows"], 3);

    assert_eq!(run(&["apply"]).status.code(), Some(0));
    let synced = guards(&run(&["check", "--output", "json"]));
    let figures = |key: &str| {
        let g = &synced[key];
        (
            g["limit"].as_str().unwrap().to_string(),
            g["total"].as_u64().unwrap(),
            g["percent_allows"].as_u64().unwrap(),
            g["allows"].as_u64().unwrap(),
            g["basis"].as_str().unwrap().to_string(),
        )
    };
    // 7 active users (gus is locked), 8 memberships and 8 role grants in what is managed.
    assert_eq!(
        figures("max_disable"),
        ("10% or 3".into(), 7, 0, 3, "count".into())
    );
    assert_eq!(
        figures("max_membership_removals"),
        ("20% or 4".into(), 8, 1, 4, "count".into())
    );
    assert_eq!(
        figures("max_role_revocations"),
        ("10% or 4".into(), 8, 0, 4, "count".into())
    );
    assert_eq!(
        figures("max_skipped"),
        ("5% or 3".into(), 8, 0, 3, "count".into())
    );

    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(
        human.contains("guards   max_disable = \"10% or 3\" of 7 managed users: 10% of 7 allows 0, so the count of 3 applies: allows 3 (planned now: 0)\n"),
        "{human}"
    );
    assert!(
        human.contains("         max_role_revocations = \"10% or 4\" of 8 managed role grants: 10% of 8 allows 0, so the count of 4 applies: allows 4 (planned now: 0)\n"),
        "{human}"
    );

    // A filter that keeps only ada: check says the plan is over the limit, and still exits 0.
    let config = demo.path().join("sync.toml");
    let shipped = std::fs::read_to_string(&config).unwrap();
    let broken = shipped.replace(
        "user_filter = \"(objectClass=inetOrgPerson)\"",
        "user_filter = \"(&(objectClass=inetOrgPerson)(uid=ada))\"",
    );
    assert_ne!(broken, shipped);
    std::fs::write(&config, broken).unwrap();
    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(
        human.contains("allows 3 (planned now: 6, over the limit: `apply` would be refused)\n"),
        "{human}"
    );
}

#[test]
fn check_without_ftrack_settings_names_the_key_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let root = support::root();
    std::fs::copy(
        root.join("tests/demo/directory.ldif"),
        dir.path().join("d.ldif"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "[ldap]\nurl = \"ldif:d.ldif\"\nuser_base_dn = \"ou=people,dc=studio,dc=example\"\n",
    )
    .unwrap();
    let out = support::run(dir.path(), &["check", "--config", "s.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("ftrack.api_user") && err.contains("FTRACK_API_USER"),
        "{err}"
    );
}

#[test]
fn check_fails_closed_on_a_missing_base_dn() {
    let dir = tempfile::tempdir().unwrap();
    let root = support::root();
    std::fs::copy(
        root.join("tests/demo/directory.ldif"),
        dir.path().join("d.ldif"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "[ldap]\nurl = \"ldif:d.ldif\"\nuser_base_dn = \"ou=staff,dc=studio,dc=example\"\ngroup_base_dn = \"ou=groups,dc=studio,dc=example\"\n\n[ftrack]\nserver_url = \"emulator:state.json\"\napi_user = \"sync-bot\"\n",
    )
    .unwrap();
    let out = support::run(
        dir.path(),
        &["check", "--config", "s.toml", "--output", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report from a failed read");
    let err = text(&out.stderr);
    assert!(
        err.contains("ou=staff,dc=studio,dc=example") && err.contains("noSuchObject"),
        "{err}"
    );
}

/// Progress bars are for a person at a terminal: under a pseudo-terminal (`script`, from
/// util-linux) `plan` draws one per phase; in a pipe or with `--output json`, nothing.
#[test]
fn progress_bars_only_at_a_terminal() {
    let dir = support::demo_copy();
    let binary = support::bin::binary().display().to_string();
    let at_terminal = |args: &str| {
        let command = format!("{binary} --config sync.toml {args}");
        let out = support::clean_env(&mut Command::new("script"))
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .current_dir(dir.path())
            .env("TERM", "xterm")
            .output()
            .expect("`script` runs (Debian: apt install bsdutils)");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        text(&out.stdout)
    };
    let human = at_terminal("plan");
    for bar in ["LDAP read", "ftrack read", "\u{1b}["] {
        assert!(human.contains(bar), "no {bar:?} at a terminal:\n{human}");
    }
    assert!(human.contains("+ user bjorn"), "{human}");

    let json = at_terminal("--output json plan");
    assert!(
        !json.contains("LDAP read"),
        "bars drawn with --output json:\n{json}"
    );
    assert!(
        !json.contains('\u{1b}'),
        "escape codes with --output json:\n{json}"
    );

    let piped = support::run(dir.path(), &["--config", "sync.toml", "plan"], &[]);
    assert_eq!(piped.status.code(), Some(0), "{}", text(&piped.stderr));
    let stderr = text(&piped.stderr);
    assert!(
        !stderr.contains("LDAP read") && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
    assert!(text(&piped.stdout).contains("+ user bjorn"));
}

#[test]
fn logs_have_no_colour_off_a_terminal_and_an_error_is_said_once() {
    // Without NO_COLOR (the harness sets it): stderr is a pipe here, as in cron mail.
    let demo = support::demo_copy();
    let out = support::ldap2ftrack(demo.path())
        .args(["plan", "-v"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("INFO"), "logs at -v: {err}");
    assert!(!err.contains('\u{1b}'), "colour escapes in a pipe: {err:?}");

    let out = support::run(demo.path(), &["plan", "--config", "gone.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("gone.toml").count(),
        1,
        "the error is said once: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
}

/// Issue 25, item 4: the most verbose logs hold no credential. `plan -vv` (and again with
/// `LDAP2FTRACK_LOG` asking the HTTP and registry clients for trace) against the ftrack
/// emulator and a token-authenticated registry, while the ftrack API key, the registry
/// password and the bearer token it is exchanged for are all in use: none is on stderr.
#[tokio::test(flavor = "multi_thread")]
async fn the_most_verbose_logs_hold_no_credential() {
    use base64::Engine;
    use ftrack_emulator::{EmulatorConfig, StateDump};
    const API_KEY: &str = "ftrack-key-must-not-log-7f3a";
    let login = support::http::TokenRegistry {
        user: "studio-bot",
        password: "registry-pw-must-not-log",
        token: "registry-token-must-not-log",
    };
    let demo = support::demo_copy();
    let dir = demo.path();
    let seed = StateDump::from_file(dir.join("tests/demo/ftrack-seed.json")).unwrap();
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new("ldap2ftrack", API_KEY).state(seed))
        .await
        .unwrap();
    let module = std::fs::read(dir.join("tests/demo/rules/studio_basics.wasm")).unwrap();
    let registry = login.serve(module, |own| format!("{own}/token"), None);
    let reference = format!("oci://{}/rules/studio-basics:1.0.0", registry.authority());
    let shipped = std::fs::read_to_string(dir.join("sync.toml")).unwrap();
    let config = shipped
        .replace(
            "server_url = \"emulator:target/demo/ftrack-state.json\"",
            &format!("server_url = \"{}\"", emulator.url()),
        )
        .replace("emulator_seed = \"tests/demo/ftrack-seed.json\"\n", "")
        .replace(
            "module = \"tests/demo/rules/studio_basics.wasm\"",
            &format!("module = \"{reference}\""),
        );
    assert!(config.contains(&reference) && !config.contains("\"emulator:"));
    std::fs::write(
        dir.join("sync.toml"),
        format!("{config}\n[run]\ncache_dir = \"module-cache\"\n"),
    )
    .unwrap();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", login.user, login.password));
    let host = registry.authority();
    for log in [
        None,
        Some("trace,oci_client=trace,reqwest=trace,hyper_util=trace"),
    ] {
        // A fresh module cache each time, so the module is fetched with the login.
        let _ = std::fs::remove_dir_all(dir.join("module-cache"));
        let mut env = vec![
            ("FTRACK_API_KEY", API_KEY),
            ("LDAP2FTRACK_REGISTRY_USER", login.user),
            ("LDAP2FTRACK_REGISTRY_PASSWORD", login.password),
            ("LDAP2FTRACK_REGISTRY_HOST", host.as_str()),
        ];
        env.extend(log.map(|filter| ("LDAP2FTRACK_LOG", filter)));
        let out = support::run(dir, &["plan", "-vv"], &env);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{log:?}: {stderr}");
        assert!(
            stderr.contains("registry credentials from LDAP2FTRACK_REGISTRY_USER"),
            "{log:?}: not the verbose log of a fetch with the login: {stderr}"
        );
        for secret in [API_KEY, login.password, login.token, basic.as_str()] {
            assert!(!stderr.contains(secret), "{log:?}: {secret} is in the log");
        }
        assert!(!text(&out.stdout).contains(API_KEY));
    }
    // All three were in use: the token service got the login, the registry the token (and
    // ftrack the key: the emulator answers no other).
    let authorizations: Vec<String> = registry
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(
        authorizations.contains(&format!("Basic {basic}")),
        "{authorizations:?}"
    );
    assert!(
        authorizations.contains(&format!("Bearer {}", login.token)),
        "{authorizations:?}"
    );
}
