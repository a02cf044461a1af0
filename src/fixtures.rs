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

use crate::cli::Failure;
use crate::config::Config;
use crate::directory::EntrySet;
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
pub fn run_case(case: &Path, update: bool) -> Result<CaseOutcome, Failure> {
    let (config, today) = case_config(case)?;
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

/// The configuration of a case: its fragment plus defaults for the offline sources.
fn case_config(case: &Path) -> Result<(Config, String), Failure> {
    let fragment_path = case.join(CONFIG_FILE);
    let mut table: toml::Table = match std::fs::read_to_string(&fragment_path) {
        Ok(text) => text.parse().map_err(|e: toml::de::Error| {
            Failure::Usage(format!("{}: {}", fragment_path.display(), e.message()))
        })?,
        Err(_) => toml::Table::new(),
    };
    let today = match table.remove("test") {
        Some(toml::Value::Table(mut t)) => match t.remove("today") {
            Some(toml::Value::String(d)) if crate::clock::is_date(&d) => d,
            Some(other) => {
                return Err(Failure::Usage(format!(
                    "{}: [test] today must be a date like \"2026-01-01\", not {other}",
                    fragment_path.display()
                )))
            }
            None => DEFAULT_TODAY.to_string(),
        },
        _ => DEFAULT_TODAY.to_string(),
    };
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
    Ok((config, today))
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
