//! The WebAssembly rule host against real modules: the three example rules, and adversarial
//! modules (endless loop, memory bomb, huge output, panic, malformed output, another ABI
//! version). Each failure must be contained, named (module, hook, entry) and leave the
//! process able to run a good module afterwards.
//!
//! The modules are built by `bash tests/run.sh` (cargo build --target wasm32-wasip2); this
//! test fails, never skips, when they are missing.

use crate::support;

use ldap2ftrack::config::{ModuleBounds, ModuleSource, OnRuleError, RuleModuleSettings};
use ldap2ftrack::rules::wasm::{self, Compilation, RuleLoadError, WasmStage};
use ldap2ftrack::rules::{
    Access, DepartedUser, GroupRef, RoleGrant, RoleScope, RuleEntry, Stage, UserDecision,
    UserFields, Verdict,
};
use std::path::{Path, PathBuf};
use support::root;

/// A built module, or a failure saying how to build it.
fn module(name: &str) -> PathBuf {
    let (dir, file) = match name {
        "hostile" | "abi2" => ("tests/rule-modules", name.to_string()),
        other => ("examples-rules", other.replace('-', "_")),
    };
    let path = root()
        .join(dir)
        .join("target/wasm32-wasip2/release")
        .join(format!("{file}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the rule modules with `bash tests/run.sh` (or `cargo build --release \
         --target wasm32-wasip2 --manifest-path {dir}/Cargo.toml`)",
        path.display()
    );
    path
}

/// The compile cache every load here uses, passed explicitly: the `modules/` folder of the
/// cache the binary gets in the other tests (support::rule_cache_dir), never the user's.
fn cache() -> PathBuf {
    support::rule_cache_dir().join("compiled")
}

/// `WasmStage::load` with the tests' compile cache.
fn load_stage(settings: &RuleModuleSettings, index: usize) -> Result<WasmStage, RuleLoadError> {
    WasmStage::load_with_cache(settings, index, Some(&cache()))
}

/// `wasm::inspect` with the tests' compile cache.
fn inspect(path: &Path) -> Result<wasm::ModuleInfo, RuleLoadError> {
    wasm::inspect_with_cache(path, Some(&cache()))
}

fn sha(path: &Path) -> String {
    wasm::sha256_hex(&std::fs::read(path).unwrap())
}

fn settings(name: &str, config: &str) -> RuleModuleSettings {
    let path = module(name);
    RuleModuleSettings {
        sha256: sha(&path),
        source: ModuleSource::Path(path.clone()),
        module: path,
        config: toml::from_str(config).unwrap(),
        on_error: OnRuleError::Abort,
        bounds: ModuleBounds::everything(),
        max_run_seconds: 300,
        compile_cache: None,
    }
}

fn load(name: &str, config: &str) -> WasmStage {
    load_stage(&settings(name, config), 0).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn entry(uid: &str) -> RuleEntry {
    RuleEntry {
        dn: format!("uid={uid},ou=people,dc=studio,dc=example"),
        stable_id: Some(format!("uuid-{uid}")),
        disabled: false,
        attributes: vec![
            ("uid".into(), vec![uid.into()]),
            ("mail".into(), vec![format!("{uid}@Studio.Example")]),
            ("givenName".into(), vec!["Ada".into()]),
            ("sn".into(), vec!["Lovelace".into()]),
            ("cn".into(), vec!["Ada Lovelace".into()]),
        ],
        groups: vec![
            GroupRef {
                dn: "cn=animators,ou=groups,dc=studio,dc=example".into(),
                name: "animators".into(),
                direct: true,
            },
            GroupRef {
                dn: "cn=leads,ou=groups,dc=studio,dc=example".into(),
                name: "leads".into(),
                direct: false,
            },
        ],
    }
}

fn with_attr(mut e: RuleEntry, name: &str, value: &str) -> RuleEntry {
    e.attributes.push((name.into(), vec![value.into()]));
    e
}

fn proposal(username: &str) -> UserDecision {
    UserDecision::Sync(UserFields {
        username: username.into(),
        ..UserFields::default()
    })
}

/// The good module still works: proof that a failure did not take the host down.
fn good_module_still_works() {
    let mut good = load("studio-basics", "");
    let got = good.transform_user(&entry("Ada"), proposal("x")).unwrap();
    assert_eq!(
        got,
        UserDecision::Sync(UserFields {
            username: "ada".into(),
            email: Some("Ada@studio.example".into()),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
        })
    );
}

#[test]
fn studio_basics_maps_normalises_and_validates() {
    let mut stage = load("studio-basics", "email_domain = 'studio.example'");
    assert_eq!(stage.name(), "studio-basics");
    good_module_still_works();

    let bad_mail = with_attr(entry("STUDIO\\Chen"), "x", "y");
    let mut bad_mail = bad_mail;
    bad_mail.attributes[1].1 = vec!["chen at studio".into()];
    let UserDecision::Sync(u) = stage.transform_user(&bad_mail, proposal("c")).unwrap() else {
        panic!("skipped")
    };
    assert_eq!(u.username, "chen");
    assert_eq!(u.email.as_deref(), Some("chen@studio.example"));

    // A skip from an earlier stage stays a skip; hooks the module lacks pass through.
    let skip = UserDecision::Skip("earlier".into());
    assert_eq!(
        stage.transform_user(&entry("a"), skip.clone()).unwrap(),
        skip
    );
    let access = Access {
        groups: [arcstr::literal!("Animation")].into(),
        roles: Default::default(),
    };
    assert_eq!(
        stage
            .map_groups(&entry("a"), &UserFields::default(), access.clone())
            .unwrap(),
        access
    );
}

#[test]
fn studio_basics_reject_policy_is_an_error_naming_module_hook_and_entry() {
    let mut stage = load("studio-basics", "invalid_email = 'reject'");
    let mut e = entry("dora");
    e.attributes[1].1 = vec!["not-a-mail".into()];
    let err = stage.transform_user(&e, proposal("d")).unwrap_err();
    assert_eq!(err.stage, "studio-basics");
    assert_eq!(err.hook, "transform-user");
    assert_eq!(err.entry, "uid=dora,ou=people,dc=studio,dc=example");
    assert!(err.message.contains("rejected the entry"), "{err}");
    assert!(
        err.message.contains("`not-a-mail` is not a valid e-mail"),
        "{err}"
    );
    // A rejection is a value, not a trap: the same instance goes on.
    assert!(stage.transform_user(&entry("ed"), proposal("e")).is_ok());
    assert_eq!(stage.instances(), 1);
}

fn hostile(mode: &str) -> WasmStage {
    load("hostile", &format!("mode = '{mode}'"))
}

fn hostile_error(mode: &str) -> String {
    let mut stage = hostile(mode);
    let started = std::time::Instant::now();
    let err = stage
        .transform_user(&entry("mallory"), proposal("m"))
        .unwrap_err();
    assert!(
        started.elapsed().as_secs() < 5,
        "{mode} took {:?}",
        started.elapsed()
    );
    assert_eq!(err.stage, "hostile");
    assert_eq!(err.hook, "transform-user");
    assert_eq!(err.entry, "uid=mallory,ou=people,dc=studio,dc=example");
    // The same stage makes a fresh instance for the next entry (which fails again the same
    // way, or succeeds for output problems that do not trap).
    let _ = stage.transform_user(&entry("next"), proposal("n"));
    good_module_still_works();
    err.to_string()
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let e = hostile_error("loop");
    assert!(e.contains("ran out of fuel"), "{e}");
    assert!(
        e.starts_with("rule `hostile` failed in transform-user for uid=mallory"),
        "{e}"
    );
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let e = hostile_error("memory-bomb");
    assert!(e.contains("exceeded the memory cap of 64 MiB"), "{e}");
}

#[test]
fn a_huge_output_is_refused() {
    let e = hostile_error("huge-output");
    assert!(e.contains("more than the 1 MiB output cap"), "{e}");
}

#[test]
fn a_panic_is_a_trap_with_the_panic_message() {
    let e = hostile_error("panic");
    assert!(
        e.contains("trapped (a panic or abort in the module)"),
        "{e}"
    );
    assert!(e.contains("boom: uid=mallory"), "{e}");
}

#[test]
fn malformed_output_is_refused() {
    let e = hostile_error("empty-username");
    assert!(
        e.contains("malformed answer: returned an empty username"),
        "{e}"
    );
}

#[test]
fn a_module_cannot_block_in_a_sleep_or_a_wait() {
    // std::thread::sleep of an hour, and a timer's `block`: stopped at once, not waited.
    for mode in ["sleep", "block"] {
        let e = hostile_error(mode);
        assert!(e.contains("rule modules cannot block"), "{mode}: {e}");
        assert!(
            e.starts_with("rule `hostile` failed in transform-user for uid=mallory"),
            "{e}"
        );
    }
    // Asking a timer in a loop (through `poll` or `ready`) never waits either: `poll`
    // refuses to wait, and a loop of `ready` is stopped by fuel or the per-call deadline.
    let e = hostile_error("poll-forever");
    assert!(e.contains("rule modules cannot block"), "{e}");
    // Mostly host calls, so the per-call time limit stops it before fuel does.
    let e = hostile_error("spin-on-timer");
    assert!(
        e.contains("ran out of fuel") || e.contains("exceeded the time limit of 1000 ms"),
        "{e}"
    );
    // A timer that is due now is ready, so code that polls without waiting still works.
    let mut stage = hostile("zero-sleep");
    assert_eq!(
        stage.transform_user(&entry("a"), proposal("a")).unwrap(),
        proposal("a")
    );
}

#[test]
fn a_trapped_instance_is_replaced_for_the_next_entry() {
    let mut stage = hostile("by-entry");
    let ok = stage.transform_user(&entry("a"), proposal("a")).unwrap();
    assert_eq!(ok, proposal("a"));
    for mode in ["panic", "loop", "memory-bomb"] {
        let bad = with_attr(entry("b"), "mode", mode);
        assert!(stage.transform_user(&bad, proposal("b")).is_err(), "{mode}");
        assert_eq!(
            stage.transform_user(&entry("c"), proposal("c")).unwrap(),
            proposal("c")
        );
    }
    assert_eq!(stage.instances(), 4);
}

#[test]
fn log_floods_are_capped_and_the_call_still_answers() {
    let mut stage = hostile("log-flood");
    assert_eq!(
        stage.transform_user(&entry("a"), proposal("a")).unwrap(),
        proposal("a")
    );
}

#[test]
fn the_sandbox_has_no_files_env_or_real_clock() {
    let mut stage = hostile("clock");
    let got = stage.transform_user(&entry("a"), proposal("a")).unwrap();
    assert_eq!(
        got,
        UserDecision::Skip("clock=946684800 fs=false env=0".into())
    );
}

#[test]
fn another_abi_version_is_refused_at_load() {
    let err = load_stage(&settings("abi2", ""), 3).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let e = err.to_string();
    assert!(
        e.contains("built for rule ABI ldap2ftrack:rules@2.0.0"),
        "{e}"
    );
    assert!(e.contains("runs ldap2ftrack:rules@1.x"), "{e}");
    assert_eq!(err.config_problems()[0].key, "rules[3].module");
    let err = inspect(&module("abi2")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    good_module_still_works();
}

#[test]
fn a_hash_mismatch_is_a_configuration_error_showing_both_hashes() {
    let mut s = settings("studio-basics", "");
    let actual = s.sha256.clone();
    s.sha256 = "0".repeat(64);
    let err = load_stage(&s, 1).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let e = err.to_string();
    assert!(e.contains(&actual) && e.contains(&"0".repeat(64)), "{e}");
    assert!(matches!(err, RuleLoadError::HashMismatch { index: 1, .. }));
    assert_eq!(err.config_problems()[0].key, "rules[1].sha256");
}

#[test]
fn configuration_is_checked_against_the_module_schema() {
    let err = load_stage(
        &settings(
            "grace-deprovision",
            "grace_dayz = 3\nprotected_users = 'admin'",
        ),
        2,
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let keys: Vec<String> = err.config_problems().into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "rules[2].config.grace_dayz",
            "rules[2].config.protected_users"
        ]
    );
    let e = err.to_string();
    assert!(e.contains("did you mean `grace_days`"), "{e}");
    assert!(e.contains("must be a list of strings"), "{e}");

    // The module's own check (configure returning Err) is a configuration error too.
    let err = load_stage(&settings("hostile", "mode = 'refuse'"), 0).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains("refused its configuration"),
        "{err}"
    );
    // A required key.
    let err = load_stage(&settings("hostile", ""), 0).unwrap_err();
    assert!(
        err.to_string().contains("rules[0].config.mode: missing"),
        "{err}"
    );
    // A panic in configure is a runtime failure (exit 1), not a crash.
    let err = load_stage(&settings("hostile", "mode = 'panic-in-configure'"), 0).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("configure exploded"), "{err}");
}

#[test]
fn not_a_component_is_refused() {
    // Refused before any compile: the compile cache is never reached.
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let e = inspect(&core).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string()
            .contains("core WebAssembly module, not a component"),
        "{e}"
    );
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, b"hello").unwrap();
    assert!(inspect(&text)
        .unwrap_err()
        .to_string()
        .contains("not a WebAssembly file"));
}

#[test]
fn compiled_modules_are_cached_and_a_corrupt_cache_entry_is_recompiled() {
    // A cache folder of its own, so no other test writes into it meanwhile.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = settings("ad-roles", "");
    let load = |_: &str, _: &str| WasmStage::load_with_cache(&s, 0, Some(dir)).unwrap();
    let first = load("ad-roles", "");
    assert_eq!(first.compilation(), Compilation::CompiledNow);
    let second = load("ad-roles", "");
    assert_eq!(second.compilation(), Compilation::CacheHit);
    let sha = sha(&module("ad-roles"));
    let artifacts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&sha) && n.ends_with(".cwasm")
        })
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let mut bytes = std::fs::read(&artifacts[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifacts[0], &bytes).unwrap();
    let third = load("ad-roles", "");
    assert_eq!(third.compilation(), Compilation::CompiledNow);
    assert_eq!(load("ad-roles", "").compilation(), Compilation::CacheHit);
}

/// The compiled artefact of `name` in the compile cache `dir`.
fn artefact_of(dir: &Path, name: &str) -> PathBuf {
    let sha = sha(&module(name));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&sha) && n.ends_with(".cwasm")
        })
        .unwrap_or_else(|| panic!("no artefact of {name} in {}", dir.display()))
}

#[test]
fn a_poisoned_compile_cache_is_compiled_again_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("compiled");
    let ad_roles = settings("ad-roles", "");
    let studio = settings("studio-basics", "email_domain = 'studio.example'");
    let load = |s: &RuleModuleSettings| WasmStage::load_with_cache(s, 0, Some(&dir)).unwrap();
    assert_eq!(load(&ad_roles).compilation(), Compilation::CompiledNow);
    assert_eq!(load(&studio).compilation(), Compilation::CompiledNow);
    assert_eq!(load(&ad_roles).compilation(), Compilation::CacheHit);
    let (victim, other) = (
        artefact_of(&dir, "ad-roles"),
        artefact_of(&dir, "studio-basics"),
    );
    let mac = |p: &Path| PathBuf::from(format!("{}.mac", p.display()));

    // Another module's valid artefact under the pinned module's name, with a checksum of
    // its bytes recomputed, then with the other module's own MAC: compiled again both times.
    let poison = std::fs::read(&other).unwrap();
    for tag in [
        wasm::sha256_hex(&poison),
        std::fs::read_to_string(mac(&other)).unwrap(),
    ] {
        std::fs::write(&victim, &poison).unwrap();
        std::fs::write(mac(&victim), tag).unwrap();
        let stage = load(&ad_roles);
        assert_eq!(stage.compilation(), Compilation::CompiledNow);
        assert_eq!(
            stage.name(),
            "ad-roles",
            "the pinned module runs, not the planted one"
        );
        assert_eq!(
            load(&ad_roles).compilation(),
            Compilation::CacheHit,
            "stored again, this time ours"
        );
    }

    // A compile cache other users may write is not used at all.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(load(&ad_roles).compilation(), Compilation::CompiledNow);
    assert_eq!(load(&ad_roles).compilation(), Compilation::CompiledNow);
    // Its key is 0600.
    let key = std::fs::metadata(dir.join("host.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

#[test]
fn inspect_shows_each_example() {
    for (name, hooks, key) in [
        ("studio-basics", vec!["transform-user"], "email_domain"),
        ("ad-roles", vec!["map-groups"], "mappings"),
        ("grace-deprovision", vec!["deprovision"], "grace_days"),
    ] {
        let info = inspect(&module(name)).unwrap();
        assert_eq!(info.name, name);
        assert_eq!(info.abi_version, "1.0.0");
        assert_eq!(info.hooks, hooks);
        assert!(info.config.iter().any(|k| k.name == key), "{info}");
        assert_eq!(info.sha256.len(), 64);
        // The [[rules]] entry is the snippet printer's (commands/rules/snippet.rs), tested
        // with `check`; the description names the hash.
        let human = info.to_string();
        assert!(
            human.contains(&format!("sha256:      {}", info.sha256)),
            "{human}"
        );
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["name"], name);
        assert!(json["config"][0]["type"].is_string());
    }
}

fn roles_config() -> &'static str {
    r#"
direct_only = false
[[mappings]]
ldap_group = "animators"
groups = ["Animation"]
roles = ["Artist"]
[[mappings]]
ldap_group = "cn=leads,ou=groups,dc=studio,dc=example"
groups = ["Leads"]
roles = ["Supervisor"]
projects = ["spring_commercial", "winter_promo"]
"#
}

#[test]
fn ad_roles_maps_groups_and_project_scoped_roles() {
    let mut stage = load("ad-roles", roles_config());
    let previous = Access {
        groups: [arcstr::literal!("Everyone")].into(),
        roles: Default::default(),
    };
    let got = stage
        .map_groups(&entry("ada"), &UserFields::default(), previous)
        .unwrap();
    assert_eq!(
        got.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        ["Animation", "Everyone", "Leads"]
    );
    let role = |r: &str, s: RoleScope| RoleGrant {
        role: r.into(),
        scope: s,
    };
    assert_eq!(
        got.roles.into_iter().collect::<Vec<_>>(),
        [
            role("Artist", RoleScope::AllOpenProjects),
            role("Supervisor", RoleScope::Project("spring_commercial".into())),
            role("Supervisor", RoleScope::Project("winter_promo".into())),
        ]
    );
}

fn departed(username: &str, since: Option<&str>) -> DepartedUser {
    DepartedUser {
        username: username.into(),
        email: None,
        ldap_disabled: false,
        missing_since: since.map(str::to_string),
        today: "2026-03-01".into(),
        entry: None,
    }
}

#[test]
fn grace_deprovision_waits_and_never_touches_protected_users() {
    let mut stage = load(
        "grace-deprovision",
        "grace_days = 14\nprotected_users = ['render-farm']",
    );
    let disable = Verdict::Disable("left LDAP".into());
    let keep = stage
        .deprovision(&departed("ada", Some("2026-02-20")), disable.clone())
        .unwrap();
    assert!(
        matches!(&keep, Verdict::Keep(r) if r.contains("9 of 14")),
        "{keep:?}"
    );
    let gone = stage
        .deprovision(&departed("ada", Some("2026-02-01")), disable.clone())
        .unwrap();
    assert!(
        matches!(&gone, Verdict::Disable(r) if r.contains("28 days")),
        "{gone:?}"
    );
    let protected = stage
        .deprovision(
            &departed("Render-Farm", Some("2020-01-01")),
            disable.clone(),
        )
        .unwrap();
    assert!(
        matches!(&protected, Verdict::Keep(r) if r.contains("protected")),
        "{protected:?}"
    );
    let err = stage
        .deprovision(&departed("bob", Some("yesterday")), disable)
        .unwrap_err();
    assert_eq!(err.hook, "deprovision");
    assert_eq!(err.entry, "bob");
    assert!(err.message.contains("yesterday"), "{err}");
}

#[test]
fn on_error_comes_from_settings() {
    let mut s = settings("studio-basics", "");
    s.on_error = OnRuleError::Skip;
    let stage = load_stage(&s, 0).unwrap();
    assert_eq!(stage.on_error(), OnRuleError::Skip);
}

#[test]
fn an_oversized_module_is_refused_before_reading_it() {
    // Refused before reading: the compile cache is never reached.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(33 << 20).unwrap();
    let e = inspect(&big).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("limited to 32 MiB"), "{e}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_module_log_goes_to_tracing_with_the_module_name() {
    let mut stage = load("studio-basics", "");
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let mut e = entry("fay");
    e.attributes[1].1 = vec!["fay at studio".into()];
    tracing::subscriber::with_default(subscriber, || {
        stage.transform_user(&e, proposal("f")).unwrap();
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("rule=\"studio-basics\""), "{text}");
    assert!(
        text.contains("mail `fay at studio` is not a valid e-mail address; synced without it"),
        "{text}"
    );
}
