//! Rule test cases: a directory (LDIF), an ftrack state (the emulator's dump format), an
//! optional `sync.toml` fragment and the expected plan — run offline through the real
//! pipeline by `ldap2ftrack test`, and captured from a live run by `plan --snapshot`.
//!
//! A case folder holds:
//! - `directory.ldif` — the directory, base DN entries included;
//! - `ftrack.json` — the ftrack state (optional: an empty ftrack);
//! - `sync.toml` — a configuration fragment: mappings, group mappings, rule modules and their
//!   config, deprovision and guard settings; `[ldap]` base DNs and filters when the defaults
//!   (the LDIF's first entry, standard filters) do not fit; `[test] today = "YYYY-MM-DD"`
//!   pins the date (default 2026-01-01);
//! - `expected.json` — the plan, as `plan --output json` prints it.
//!
//! ## How a case pins its rule modules
//!
//! `[[rules]] module` paths resolve against the case folder. A module with a `sha256` is
//! checked exactly as in production: a different file fails the case. A case may instead
//! leave `sha256` out — *only* when its fragment also says `[test] trust_unpinned_modules =
//! true`. That is for a module's own repository, whose fixtures test whatever the last
//! `cargo build` produced: a rebuilt module has a new hash with every code change, the same
//! Rust source hashes differently where the SDK or cargo's registry sits elsewhere (rustc
//! embeds their source paths), and componentize-py output differs on every build, so a hash
//! committed next to the fixtures could not pass in a CI checkout. The
//! test report names each module it trusted this way with the hash it actually tested.
//! The opt-in is per case and written in the case, `[test]` exists only in test cases (a
//! real `sync.toml` with it is refused as an unknown key), and a captured case (`plan
//! --snapshot`) keeps production's hashes: a production run is never unpinned.

use crate::config::Config;
use crate::directory::EntrySet;
use crate::failure::Failure;
use crate::ftrack::FtrackSnapshot;
use crate::plan::Plan;
use crate::run;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const DIRECTORY_FILE: &str = "directory.ldif";
pub const FTRACK_FILE: &str = "ftrack.json";
pub const CONFIG_FILE: &str = "sync.toml";
pub const EXPECTED_FILE: &str = "expected.json";
const DEFAULT_TODAY: &str = "2026-01-01";
/// The keys a case's `[test]` table may hold.
const TEST_KEYS: [&str; 2] = ["today", "trust_unpinned_modules"];

/// A module a case ran without a pinned hash (`[test] trust_unpinned_modules = true`): the
/// file and the SHA-256 it had when tested.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnpinnedModule {
    pub module: PathBuf,
    pub sha256: String,
}

/// One case's result: the outcome and the modules it trusted unpinned.
#[derive(Debug)]
pub struct CaseRun {
    pub outcome: CaseOutcome,
    pub unpinned: Vec<UnpinnedModule>,
}

/// The outcome of one case.
#[derive(Debug)]
pub enum CaseOutcome {
    Passed,
    Updated,
    /// The readable difference between expected and actual.
    Failed(String),
}

/// Finds the cases under `dir`: `dir` itself when it holds a `directory.ldif`, else each
/// sub-folder that does (sorted).
pub fn find_cases(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    if dir.join(DIRECTORY_FILE).is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::Usage(format!(
            "cannot read the test folder {}: {e}",
            dir.display()
        ))
    })?;
    let mut cases: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(DIRECTORY_FILE).is_file())
        .collect();
    cases.sort();
    if cases.is_empty() {
        return Err(Failure::Usage(format!(
            "{} holds no test case (a folder with {DIRECTORY_FILE}, {FTRACK_FILE}, {CONFIG_FILE} and {EXPECTED_FILE})",
            dir.display()
        )));
    }
    Ok(cases)
}

/// Runs one case; with `update`, rewrites its expected.json instead of comparing.
pub fn run_case(case: &Path, update: bool) -> Result<CaseRun, Failure> {
    let (config, today, unpinned) = case_config(case)?;
    let outcome = run_case_with(case, config, today, update)?;
    Ok(CaseRun { outcome, unpinned })
}

fn run_case_with(
    case: &Path,
    config: Config,
    today: String,
    update: bool,
) -> Result<CaseOutcome, Failure> {
    let state_dir = tempfile::tempdir()
        .map_err(|e| Failure::Runtime(format!("cannot create a temporary folder: {e}")))?;
    let mut config = config;
    if let Some(crate::config::FtrackServer::Emulator { state, .. }) = &mut config.ftrack.server_url
    {
        *state = state_dir.path().join("state.json");
    }
    let rt = run::runtime()?;
    let inputs = rt.block_on(run::read_inputs(&config, false))?;
    let mut pipeline = run::pipeline(&config)?;
    let planned = run::plan_on(&config, &inputs, &mut pipeline, today)?;
    let actual = plan_document(&planned.plan);
    let expected_path = case.join(EXPECTED_FILE);
    if update {
        write_json(&expected_path, &actual)?;
        return Ok(CaseOutcome::Updated);
    }
    let expected_text = std::fs::read_to_string(&expected_path).map_err(|e| {
        Failure::Usage(format!(
            "cannot read {}: {e}; run `ldap2ftrack test --update {}` to create it from the current plan",
            expected_path.display(),
            case.display()
        ))
    })?;
    let expected: Value = serde_json::from_str(&expected_text)
        .map_err(|e| Failure::Usage(format!("{} is not JSON: {e}", expected_path.display())))?;
    if expected == actual {
        Ok(CaseOutcome::Passed)
    } else {
        Ok(CaseOutcome::Failed(readable_diff(&expected, &actual)))
    }
}

/// What a case compares: the plan's operations, skipped entries and notes (the summary is
/// derived from the operations, so it is left out to keep expectations short).
pub fn plan_document(plan: &Plan) -> Value {
    json!({
        "operations": plan.operations,
        "skipped": plan.skipped,
        "notes": plan.notes,
    })
}

fn write_json(path: &Path, value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Runtime(format!("cannot encode JSON: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))
}

/// A line diff of the two documents, pretty-printed, with a few lines of context.
fn readable_diff(expected: &Value, actual: &Value) -> String {
    let left = serde_json::to_string_pretty(expected).unwrap_or_default();
    let right = serde_json::to_string_pretty(actual).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&left, &right);
    let mut out = String::new();
    for group in diff.grouped_ops(3) {
        out.push_str("    @@\n");
        for op in group {
            for change in diff.iter_changes(&op) {
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => "-",
                    similar::ChangeTag::Insert => "+",
                    similar::ChangeTag::Equal => " ",
                };
                out.push_str(&format!("    {sign} {}", change.value()));
                if change.missing_newline() {
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The configuration of a case: its fragment plus defaults for the offline sources, the
/// date it runs on, and the modules it trusts unpinned.
fn case_config(case: &Path) -> Result<(Config, String, Vec<UnpinnedModule>), Failure> {
    let fragment_path = case.join(CONFIG_FILE);
    let mut table: toml::Table = match std::fs::read_to_string(&fragment_path) {
        Ok(text) => text.parse().map_err(|e: toml::de::Error| {
            Failure::Usage(format!("{}: {}", fragment_path.display(), e.message()))
        })?,
        Err(_) => toml::Table::new(),
    };
    let settings = test_settings(table.remove("test"), &fragment_path)?;
    let unpinned = pin_modules(&mut table, case, &fragment_path, settings.trust_unpinned)?;
    let today = settings.today;
    let root_dn = first_dn(&case.join(DIRECTORY_FILE))?;
    let ldap = table
        .entry("ldap")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(ldap) = ldap {
        ldap.entry("url")
            .or_insert(format!("ldif:{DIRECTORY_FILE}").into());
        ldap.entry("user_base_dn").or_insert(root_dn.clone().into());
        ldap.entry("group_base_dn").or_insert(root_dn.into());
    }
    let ftrack = table
        .entry("ftrack")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(ftrack) = ftrack {
        ftrack.insert("server_url".into(), "emulator:state.json".into());
        if case.join(FTRACK_FILE).is_file() {
            ftrack.insert("emulator_seed".into(), FTRACK_FILE.into());
        }
        ftrack.entry("api_user").or_insert("ldap2ftrack".into());
    }
    let text = toml::to_string(&table)
        .map_err(|e| Failure::Runtime(format!("cannot rebuild the case config: {e}")))?;
    let config = Config::from_toml(&text, &fragment_path, &|_| None).map_err(Failure::Config)?;
    Ok((config, today, unpinned))
}

/// A case's `[test]` table.
#[derive(Debug, PartialEq, Eq)]
struct TestSettings {
    today: String,
    trust_unpinned: bool,
}

fn test_settings(value: Option<toml::Value>, fragment: &Path) -> Result<TestSettings, Failure> {
    let shown = fragment.display();
    let mut table = match value {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            return Err(Failure::Usage(format!(
                "{shown}: `test` must be a table ([test]), not {other}"
            )))
        }
    };
    if let Some(key) = table.keys().find(|k| !TEST_KEYS.contains(&k.as_str())) {
        return Err(Failure::Usage(format!(
            "{shown}: unknown key `test.{key}`; [test] takes {}",
            TEST_KEYS.join(", ")
        )));
    }
    let today = match table.remove("today") {
        Some(toml::Value::String(d)) if crate::clock::is_date(&d) => d,
        Some(other) => {
            return Err(Failure::Usage(format!(
                "{shown}: [test] today must be a date like \"2026-01-01\", not {other}"
            )))
        }
        None => DEFAULT_TODAY.to_string(),
    };
    let trust_unpinned = match table.remove("trust_unpinned_modules") {
        Some(toml::Value::Boolean(b)) => b,
        Some(other) => {
            return Err(Failure::Usage(format!(
                "{shown}: [test] trust_unpinned_modules must be true or false, not {other}"
            )))
        }
        None => false,
    };
    Ok(TestSettings {
        today,
        trust_unpinned,
    })
}

/// Fills in the hash of each `[[rules]]` module that has none, when the case trusts
/// unpinned modules; refuses an unpinned module otherwise. Pinned modules are left as
/// written, so the pipeline checks them as in production.
fn pin_modules(
    table: &mut toml::Table,
    case: &Path,
    fragment: &Path,
    trust: bool,
) -> Result<Vec<UnpinnedModule>, Failure> {
    let shown = fragment.display();
    let mut unpinned = Vec::new();
    let Some(toml::Value::Array(rules)) = table.get_mut("rules") else {
        return Ok(unpinned);
    };
    for (i, rule) in rules.iter_mut().enumerate() {
        let toml::Value::Table(rule) = rule else {
            continue; // the configuration check reports it
        };
        if rule.contains_key("sha256") {
            continue;
        }
        let Some(toml::Value::String(module)) = rule.get("module") else {
            continue; // the configuration check reports the missing module
        };
        let path = case.join(module);
        if !trust {
            return Err(Failure::Usage(format!(
                "{shown}: rules[{i}].sha256 is missing: pin the module with `sha256 = \"...\"` \
                 (`ldap2ftrack rules inspect {}` prints it), or, in a test case only, add \
                 `[test] trust_unpinned_modules = true` to test whatever module is at that path",
                path.display()
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::Usage(format!(
                "{shown}: rules[{i}].module: cannot read {}: {e}; build the module first \
                 (`cargo build --release --target wasm32-wasip2` in its crate), or fix the \
                 path (relative to the case folder)",
                path.display()
            ))
        })?;
        let sha256 = crate::rules::wasm::sha256_hex(&bytes);
        rule.insert("sha256".into(), sha256.clone().into());
        unpinned.push(UnpinnedModule {
            module: tidy(&path),
            sha256,
        });
    }
    Ok(unpinned)
}

/// `a/b/../c` → `a/c`, for showing a path (lexically; the file was already read).
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn first_dn(ldif: &Path) -> Result<String, Failure> {
    let bytes = std::fs::read(ldif)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", ldif.display())))?;
    let entries = crate::directory::ldif::parse(&bytes)
        .map_err(|(line, m)| Failure::Usage(format!("{}:{line}: {m}", ldif.display())))?;
    entries
        .first()
        .map(|e| e.dn.clone())
        .ok_or_else(|| Failure::Usage(format!("{} has no entries", ldif.display())))
}

/// `plan --snapshot DIR`: writes what was read (and the plan) as a test case.
pub fn capture(
    dir: &Path,
    config: &Config,
    entries: &EntrySet,
    ftrack: &FtrackSnapshot,
    plan: &Plan,
    today: &str,
) -> Result<(), Failure> {
    let fail = |what: &str, e: std::io::Error| {
        Failure::Runtime(format!("cannot write {what} in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("the folder", e))?;
    let mut all = base_entries(config);
    all.extend(entries.users.iter().cloned());
    all.extend(entries.groups.iter().cloned());
    std::fs::write(
        dir.join(DIRECTORY_FILE),
        crate::directory::ldif::write(&all),
    )
    .map_err(|e| fail(DIRECTORY_FILE, e))?;
    write_json(&dir.join(FTRACK_FILE), &state_dump(ftrack))?;
    std::fs::write(dir.join(CONFIG_FILE), fragment(config, today)?)
        .map_err(|e| fail(CONFIG_FILE, e))?;
    write_json(&dir.join(EXPECTED_FILE), &plan_document(plan))
}

/// Entries for the base DNs, so the LDIF answers searches as the server did.
fn base_entries(config: &Config) -> Vec<crate::directory::Entry> {
    let mut bases = vec![config.ldap.user_base_dn.clone()];
    if !config
        .ldap
        .group_base_dn
        .eq_ignore_ascii_case(&config.ldap.user_base_dn)
    {
        bases.push(config.ldap.group_base_dn.clone());
    }
    bases.sort_by_key(|b| b.len());
    bases
        .into_iter()
        .map(|dn| {
            let mut e = crate::directory::Entry::new(dn);
            e.push("objectClass", crate::directory::Value::Text("top".into()));
            e
        })
        .collect()
}

/// The configuration fragment of a captured case: everything but where the servers are and
/// how to log in to them.
fn fragment(config: &Config, today: &str) -> Result<String, Failure> {
    let original = std::fs::read_to_string(&config.file)
        .map_err(|e| Failure::Runtime(format!("cannot re-read {}: {e}", config.file.display())))?;
    let mut table: toml::Table = original.parse().map_err(|e: toml::de::Error| {
        Failure::Runtime(format!(
            "cannot re-read {}: {}",
            config.file.display(),
            e.message()
        ))
    })?;
    table.remove("ftrack");
    let mut ldap = toml::Table::new();
    ldap.insert(
        "user_base_dn".into(),
        config.ldap.user_base_dn.clone().into(),
    );
    ldap.insert("user_filter".into(), config.ldap.user_filter.clone().into());
    ldap.insert(
        "group_base_dn".into(),
        config.ldap.group_base_dn.clone().into(),
    );
    ldap.insert(
        "group_filter".into(),
        config.ldap.group_filter.clone().into(),
    );
    table.insert("ldap".into(), toml::Value::Table(ldap));
    if let Some(toml::Value::Array(rules)) = table.get_mut("rules") {
        for (rule, settings) in rules.iter_mut().zip(&config.rules) {
            if let toml::Value::Table(rule) = rule {
                rule.insert(
                    "module".into(),
                    settings.module.display().to_string().into(),
                );
            }
        }
    }
    let mut test = toml::Table::new();
    test.insert("today".into(), today.into());
    table.insert("test".into(), toml::Value::Table(test));
    toml::to_string(&table)
        .map_err(|e| Failure::Runtime(format!("cannot write the case config: {e}")))
}

/// An ftrack snapshot in the emulator's state format (absent values left out).
pub fn state_dump(f: &FtrackSnapshot) -> Value {
    let mut dump = full_state_dump(f);
    if let Value::Object(types) = &mut dump {
        for rows in types.values_mut() {
            for row in rows.as_array_mut().into_iter().flatten() {
                if let Value::Object(fields) = row {
                    fields.retain(|_, v| !v.is_null());
                }
            }
        }
    }
    dump
}

fn full_state_dump(f: &FtrackSnapshot) -> Value {
    let scope_id = |grant: &str, project: &str| {
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{grant}/{project}").as_bytes(),
        )
        .to_string()
    };
    json!({
        "User": f.users.iter().map(|u| json!({
            "id": u.id, "username": u.username, "email": u.email,
            "first_name": u.first_name, "last_name": u.last_name, "is_active": u.is_active,
        })).collect::<Vec<_>>(),
        "Metadata": f.users.iter().flat_map(|u| u.metadata.iter().map(move |(k, v)| json!({
            "parent_id": u.id, "parent_type": "User", "key": k, "value": v,
        }))).collect::<Vec<_>>(),
        "Group": f.groups.iter().map(|g| json!({"id": g.id, "name": g.name, "parent_id": g.parent_id, "local": g.local})).collect::<Vec<_>>(),
        "Membership": f.memberships.iter().map(|m| json!({"id": m.id, "user_id": m.user_id, "group_id": m.group_id})).collect::<Vec<_>>(),
        "SecurityRole": f.security_roles.iter().map(|r| json!({"id": r.id, "name": r.name, "type": r.role_type})).collect::<Vec<_>>(),
        "UserSecurityRole": f.user_security_roles.iter().map(|g| json!({
            "id": g.id, "user_id": g.user_id, "security_role_id": g.security_role_id, "is_all_open_projects": g.is_all_open_projects,
        })).collect::<Vec<_>>(),
        "UserSecurityRoleProject": f.user_security_roles.iter().flat_map(|g| g.project_ids.iter().map(move |p| json!({
            "id": scope_id(&g.id, p), "user_security_role_id": g.id, "project_id": p,
        }))).collect::<Vec<_>>(),
        "Project": f.projects.iter().map(|p| json!({"id": p.id, "name": p.name, "status": p.status})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<TestSettings, String> {
        let mut t: toml::Table = text.parse().unwrap();
        test_settings(t.remove("test"), Path::new("case/sync.toml")).map_err(|e| match e {
            Failure::Usage(m) => m,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn test_table_defaults_and_checks() {
        assert_eq!(
            settings("").unwrap(),
            TestSettings {
                today: DEFAULT_TODAY.into(),
                trust_unpinned: false
            }
        );
        let s = settings("[test]\ntoday = \"2026-03-15\"\ntrust_unpinned_modules = true").unwrap();
        assert_eq!(s.today, "2026-03-15");
        assert!(s.trust_unpinned);
        let e = settings("[test]\ntrust_unpinned = true").unwrap_err();
        assert!(e.contains("unknown key `test.trust_unpinned`"), "{e}");
        let e = settings("[test]\ntrust_unpinned_modules = \"yes\"").unwrap_err();
        assert!(e.contains("must be true or false"), "{e}");
        let e = settings("[test]\ntoday = \"15/03/2026\"").unwrap_err();
        assert!(e.contains("[test] today must be a date"), "{e}");
    }

    #[test]
    fn unpinned_modules_need_the_opt_in_and_are_hashed_with_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.wasm"), b"module bytes").unwrap();
        let fragment = dir.path().join(CONFIG_FILE);
        let rules = "[[rules]]\nmodule = \"m.wasm\"\n\n[[rules]]\nmodule = \"m.wasm\"\nsha256 = \"pinned\"\n";

        let mut table: toml::Table = rules.parse().unwrap();
        let e = pin_modules(&mut table, dir.path(), &fragment, false).unwrap_err();
        let Failure::Usage(m) = e else { panic!() };
        assert!(m.contains("rules[0].sha256 is missing"), "{m}");
        assert!(m.contains("trust_unpinned_modules = true"), "{m}");

        let mut table: toml::Table = rules.parse().unwrap();
        let unpinned = pin_modules(&mut table, dir.path(), &fragment, true).unwrap();
        let hash = crate::rules::wasm::sha256_hex(b"module bytes");
        assert_eq!(
            unpinned,
            vec![UnpinnedModule {
                module: dir.path().join("m.wasm"),
                sha256: hash.clone()
            }]
        );
        let rules = table["rules"].as_array().unwrap();
        assert_eq!(rules[0]["sha256"].as_str(), Some(hash.as_str()));
        // A pinned module stays pinned as written: the pipeline checks it.
        assert_eq!(rules[1]["sha256"].as_str(), Some("pinned"));

        let mut table: toml::Table = "[[rules]]\nmodule = \"missing.wasm\"".parse().unwrap();
        let Err(Failure::Usage(m)) = pin_modules(&mut table, dir.path(), &fragment, true) else {
            panic!()
        };
        assert!(m.contains("build the module first"), "{m}");
    }

    #[test]
    fn tidy_paths_for_the_report() {
        assert_eq!(
            tidy(Path::new("x/fixtures/case/../../../target/m.wasm")),
            PathBuf::from("target/m.wasm")
        );
        assert_eq!(tidy(Path::new("../a/./b")), PathBuf::from("../a/b"));
    }
}
