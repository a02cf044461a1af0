//! Rule hooks: each hook of each example module, 100,000 entries through one reused instance
//! (the way a sync runs them), against the same rule logic compiled natively and called
//! directly. Also times compiling a module and loading it from the compile cache. The
//! figures go into BENCHMARKS.md ("Rule hooks").
//!
//! Run: `bash tests/run.sh` once (builds the modules), then `cargo bench --bench rules`.
//! `LDAP2FTRACK_BENCH_N` changes the entry count.

use ldap2ftrack::config::{ModuleBounds, ModuleSource, OnRuleError, RuleModuleSettings};
use ldap2ftrack::rules::wasm::{sha256_hex, Compilation, WasmStage};
use ldap2ftrack::rules::{
    Access, DepartedUser, GroupRef, RuleEntry, Stage, UserDecision, UserFields, Verdict,
};
use ldap2ftrack_rules as sdk;
use sdk::Rules;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

const ROLES: &str = r#"
group_prefix = "ftrack-"
[[mappings]]
ldap_group = "animators"
groups = ["Animation"]
roles = ["Artist"]
[[mappings]]
ldap_group = "cn=leads,ou=groups,dc=studio,dc=example"
groups = ["Leads"]
roles = ["Supervisor"]
projects = ["spring_commercial", "winter_promo"]
"#;

fn module(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples-rules/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !p.is_file() {
        eprintln!("{} is missing: run `bash tests/run.sh` first", p.display());
        std::process::exit(1);
    }
    p
}

fn settings(name: &str, config: &str) -> RuleModuleSettings {
    let module = module(name);
    RuleModuleSettings {
        sha256: sha256_hex(&std::fs::read(&module).unwrap()),
        source: ModuleSource::Path(module.clone()),
        module,
        config: toml::from_str(config).unwrap(),
        on_error: OnRuleError::Abort,
        bounds: ModuleBounds::everything(),
        max_run_seconds: 300,
        compile_cache: None,
    }
}

/// A directory user like a studio's: 8 attributes, 14 values, 4 groups.
fn entry(i: usize) -> RuleEntry {
    let uid = format!("user{i:06}");
    let mut groups = vec![
        GroupRef {
            dn: "cn=animators,ou=groups,dc=studio,dc=example".into(),
            name: "animators".into(),
            direct: true,
        },
        GroupRef {
            dn: "cn=everyone,ou=groups,dc=studio,dc=example".into(),
            name: "everyone".into(),
            direct: true,
        },
        GroupRef {
            dn: "cn=ftrack-Comp Team,ou=groups,dc=studio,dc=example".into(),
            name: "ftrack-Comp Team".into(),
            direct: true,
        },
    ];
    if i.is_multiple_of(5) {
        groups.push(GroupRef {
            dn: "cn=leads,ou=groups,dc=studio,dc=example".into(),
            name: "leads".into(),
            direct: false,
        });
    }
    RuleEntry {
        dn: format!("uid={uid},ou=people,dc=studio,dc=example"),
        stable_id: Some(format!("6f1c1c1e-3d1a-4a53-9a51-{i:012}")),
        disabled: false,
        attributes: vec![
            (
                "objectClass".into(),
                vec!["top".into(), "person".into(), "inetOrgPerson".into()],
            ),
            ("uid".into(), vec![uid.clone()]),
            ("cn".into(), vec![format!("Ada Lovelace {i}")]),
            ("givenName".into(), vec!["Ada".into()]),
            ("sn".into(), vec![format!("Lovelace{i}")]),
            ("mail".into(), vec![format!("{uid}@Studio.Example")]),
            (
                "telephoneNumber".into(),
                vec!["+44 20 7946 0000".into(), "+44 20 7946 0001".into()],
            ),
            (
                "departmentNumber".into(),
                vec!["anim".into(), "vfx".into(), "rnd".into()],
            ),
        ],
        groups,
    }
}

fn sdk_entry(e: &RuleEntry) -> sdk::Entry {
    sdk::Entry {
        dn: e.dn.clone(),
        stable_id: e.stable_id.clone(),
        disabled: e.disabled,
        attributes: e
            .attributes
            .iter()
            .map(|(n, v)| sdk::Attribute {
                name: n.clone(),
                values: v.clone(),
            })
            .collect(),
        groups: e
            .groups
            .iter()
            .map(|g| sdk::GroupRef {
                dn: g.dn.to_string(),
                name: g.name.to_string(),
                direct: g.direct,
            })
            .collect(),
    }
}

fn departed(i: usize) -> DepartedUser {
    DepartedUser {
        username: format!("user{i:06}"),
        email: Some(format!("user{i:06}@studio.example")),
        ldap_disabled: i.is_multiple_of(7),
        missing_since: Some(format!("2026-02-{:02}", 1 + i % 28)),
        today: "2026-03-01".into(),
        entry: None,
    }
}

fn sdk_departed(d: &DepartedUser) -> sdk::DepartedUser {
    sdk::DepartedUser {
        username: d.username.clone(),
        email: d.email.clone(),
        ldap_disabled: d.ldap_disabled,
        missing_since: d.missing_since.clone(),
        today: d.today.clone(),
        entry: None,
    }
}

struct Stats {
    /// CPU time of this thread per call, median over chunks of 1,000 calls: what a call
    /// costs, unaffected by other processes taking the core away (this machine is shared).
    cpu_us: f64,
    /// Wall-clock time per call over the whole run.
    wall_us: f64,
    /// The slowest chunk's CPU time per call.
    worst_chunk_us: f64,
}

/// This thread's CPU time.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `f` for each i in 0..n (after a warm-up), timing chunks of 1,000 calls.
fn measure(n: usize, mut f: impl FnMut(usize)) -> Stats {
    const CHUNK: usize = 1_000;
    for i in 0..n.min(2_000) {
        f(i);
    }
    let mut chunks: Vec<f64> = Vec::with_capacity(n / CHUNK + 1);
    let wall = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + CHUNK).min(n);
        let t = thread_cpu();
        for j in i..end {
            f(j);
        }
        chunks.push((thread_cpu() - t) * 1e6 / (end - i) as f64);
        i = end;
    }
    let wall = wall.elapsed();
    chunks.sort_by(f64::total_cmp);
    Stats {
        cpu_us: chunks[chunks.len() / 2],
        wall_us: wall.as_secs_f64() * 1e6 / n as f64,
        worst_chunk_us: chunks[chunks.len() - 1],
    }
}

fn main() {
    let n: usize = std::env::var("LDAP2FTRACK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cache = tempfile::tempdir().unwrap();

    println!("## Rule hooks\n");
    println!("| Module | size | compile (Cranelift) | load from cache |");
    println!("|---|---|---|---|");
    for (name, config) in [
        ("studio-basics", ""),
        ("ad-roles", ROLES),
        ("grace-deprovision", ""),
    ] {
        let s = settings(name, config);
        let size = std::fs::metadata(&s.module).unwrap().len();
        let t = Instant::now();
        let a = WasmStage::load_with_cache(&s, 0, Some(cache.path())).unwrap();
        let compile = t.elapsed();
        assert_eq!(a.compilation(), Compilation::CompiledNow);
        let mut cached = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let b = WasmStage::load_with_cache(&s, 0, Some(cache.path())).unwrap();
            cached.push(t.elapsed());
            assert_eq!(b.compilation(), Compilation::CacheHit);
        }
        cached.sort();
        println!(
            "| {name} | {:.1} KB | {:.1} ms | {:.2} ms |",
            size as f64 / 1e3,
            compile.as_secs_f64() * 1e3,
            cached[2].as_secs_f64() * 1e3
        );
    }

    let entries: Vec<RuleEntry> = (0..n).map(entry).collect();
    let sdk_entries: Vec<sdk::Entry> = entries.iter().map(sdk_entry).collect();
    let gone: Vec<DepartedUser> = (0..n).map(departed).collect();
    let sdk_gone: Vec<sdk::DepartedUser> = gone.iter().map(sdk_departed).collect();
    let proposal = |e: &RuleEntry| {
        UserDecision::Sync(UserFields {
            username: e.first("uid").unwrap_or_default().to_string(),
            email: e.first("mail").map(str::to_string),
            first_name: None,
            last_name: None,
        })
    };

    let mut rows = Vec::new();

    // transform-user
    let mut stage = WasmStage::load(
        &settings("studio-basics", "email_domain = 'studio.example'"),
        0,
    )
    .unwrap();
    let wasm = measure(n, |i| {
        black_box(
            stage
                .transform_user(&entries[i], proposal(&entries[i]))
                .unwrap(),
        );
    });
    let native_rules: studio_basics::StudioBasics =
        sdk::testing::configure(r#"{"email_domain":"studio.example"}"#).unwrap();
    let native = measure(n, |i| {
        let e = &sdk_entries[i];
        let p = sdk::UserDecision::Sync(sdk::UserFields {
            username: e.first("uid").unwrap_or_default().to_string(),
            email: e.first("mail").map(str::to_string),
            first_name: None,
            last_name: None,
        });
        black_box(native_rules.transform_user(e, p).unwrap());
    });
    rows.push((
        "transform-user",
        "studio-basics",
        wasm,
        native,
        stage.instances(),
        stage.last_fuel_used(),
    ));

    // The fixed cost of a call: the same hook on an entry with a DN and a uid only.
    let minimal: Vec<RuleEntry> = entries
        .iter()
        .map(|e| RuleEntry {
            attributes: vec![("uid".into(), e.values("uid").to_vec())],
            groups: Vec::new(),
            ..e.clone()
        })
        .collect();
    let sdk_minimal: Vec<sdk::Entry> = minimal.iter().map(sdk_entry).collect();
    let wasm = measure(n, |i| {
        black_box(
            stage
                .transform_user(&minimal[i], proposal(&minimal[i]))
                .unwrap(),
        );
    });
    let native = measure(n, |i| {
        let e = &sdk_minimal[i];
        let p = sdk::UserDecision::Sync(sdk::UserFields {
            username: e.first("uid").unwrap_or_default().to_string(),
            ..sdk::UserFields::default()
        });
        black_box(native_rules.transform_user(e, p).unwrap());
    });
    rows.push((
        "transform-user, DN + uid only",
        "studio-basics",
        wasm,
        native,
        stage.instances(),
        stage.last_fuel_used(),
    ));

    // map-groups
    let mut stage = WasmStage::load(&settings("ad-roles", ROLES), 0).unwrap();
    let user = UserFields::default();
    let wasm = measure(n, |i| {
        black_box(
            stage
                .map_groups(&entries[i], &user, Access::default())
                .unwrap(),
        );
    });
    let roles_json = serde_json::to_string(&ldap2ftrack_toml_to_json(ROLES)).unwrap();
    let native_rules: ad_roles::AdRoles = sdk::testing::configure(&roles_json).unwrap();
    let sdk_user = sdk::UserFields::default();
    let native = measure(n, |i| {
        black_box(
            native_rules
                .map_groups(&sdk_entries[i], &sdk_user, sdk::Access::default())
                .unwrap(),
        );
    });
    rows.push((
        "map-groups",
        "ad-roles",
        wasm,
        native,
        stage.instances(),
        stage.last_fuel_used(),
    ));

    // deprovision
    let mut stage = WasmStage::load(
        &settings(
            "grace-deprovision",
            "grace_days = 14\nprotected_users = ['admin']",
        ),
        0,
    )
    .unwrap();
    let wasm = measure(n, |i| {
        black_box(
            stage
                .deprovision(&gone[i], Verdict::Disable("left LDAP".into()))
                .unwrap(),
        );
    });
    let native_rules: grace_deprovision::GraceDeprovision =
        sdk::testing::configure(r#"{"grace_days":14,"protected_users":["admin"]}"#).unwrap();
    let native = measure(n, |i| {
        black_box(
            native_rules
                .deprovision(&sdk_gone[i], sdk::Verdict::Disable("left LDAP".into()))
                .unwrap(),
        );
    });
    rows.push((
        "deprovision",
        "grace-deprovision",
        wasm,
        native,
        stage.instances(),
        stage.last_fuel_used(),
    ));

    println!();
    println!("{n} entries per hook, one reused instance, fuel + epoch deadline on every call.");
    println!();
    println!("Per call: CPU time of the calling thread, median of 1,000-call chunks (worst chunk");
    println!("in brackets); wall = wall-clock mean over the run, which includes other load.");
    println!();
    println!(
        "| Hook (module) | wasm, CPU | wasm, wall | native, CPU | native, wall | wasm/native | fuel/call |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (hook, module, w, nat, instances, fuel) in rows {
        assert_eq!(
            instances, 1,
            "{hook}: the instance was replaced during the run"
        );
        println!(
            "| {hook} ({module}) | {:.2} µs ({:.2}) | {:.2} µs | {:.3} µs ({:.3}) | {:.3} µs | {:.1}× | {fuel} |",
            w.cpu_us,
            w.worst_chunk_us,
            w.wall_us,
            nat.cpu_us,
            nat.worst_chunk_us,
            nat.wall_us,
            w.cpu_us / nat.cpu_us
        );
    }
}

/// The `[rules.config]` TOML as the JSON the host hands to `configure`.
fn ldap2ftrack_toml_to_json(toml_text: &str) -> serde_json::Value {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    serde_json::to_value(table).unwrap()
}
