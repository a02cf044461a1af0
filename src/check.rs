//! `ldap2ftrack check`: validate the configuration and report what each side looks like,
//! without planning or changing anything.
//!
//! Every figure printed is read from the real source; a part that cannot be checked in this
//! version says so and makes the command exit 1 rather than print a guess.

use crate::config::{BoundsReport, Config};
use crate::directory::{self, DirectorySnapshot};
use crate::failure::Failure;
use crate::ftrack::{Connection, OpenError};
use crate::output::OutputFormat;
use crate::rules::wasm::WasmStage;
use crate::rules::Stage;
use serde::Serialize;
use std::collections::BTreeMap;

/// The `--output json` document.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub config: &'static str,
    pub ldap: LdapReport,
    pub ftrack: Option<FtrackReport>,
    pub rules: Vec<RuleReport>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LdapReport {
    pub users: usize,
    pub disabled_users: usize,
    pub groups: usize,
    /// (user, group) pairs after flattening nested groups.
    pub memberships: usize,
}

#[derive(Debug, Serialize)]
pub struct FtrackReport {
    pub server_version: String,
    pub users: usize,
    pub groups: usize,
    /// Every security role `sync.toml` names by name, and whether ftrack can grant it.
    pub roles: Vec<RoleReport>,
}

#[derive(Debug, Serialize)]
pub struct RuleReport {
    /// The module as `sync.toml` names it: a path, `oci://…` or `https://…`.
    pub module: String,
    /// Where its bytes came from: `file`, `cached` (the module cache, no network call) or
    /// `fetched` (fetched now, then cached).
    pub origin: crate::rules::fetch::Provenance,
    /// The module cache file of a referenced module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_at: Option<String>,
    pub name: String,
    pub sha256: String,
    pub hooks: Vec<String>,
    /// What the module may manage (its `groups` and `roles`).
    pub bounds: BoundsReport,
}

/// A security role named in `sync.toml` (a `[group_mappings]` entry or a module's bounds).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RoleReport {
    pub name: String,
    /// Where it is named, e.g. `group_mappings."animators"` or `rules[0].roles`.
    pub named_by: Vec<String>,
    /// Its `SecurityRole.type` in ftrack, when it exists there.
    #[serde(rename = "type")]
    pub role_type: Option<String>,
    /// `ok` (a PROJECT role), `missing` (not in ftrack) or `refused` (not a PROJECT role:
    /// never granted).
    pub status: &'static str,
}

impl LdapReport {
    pub fn of(snapshot: &DirectorySnapshot) -> LdapReport {
        LdapReport {
            users: snapshot.users.len(),
            disabled_users: snapshot.disabled_users(),
            groups: snapshot.groups.len(),
            memberships: snapshot.memberships(),
        }
    }
}

pub fn run(config: &Config, output: OutputFormat) -> Result<(), Failure> {
    // Local facts first: every module's file, pin, ABI, bounds and configuration are
    // checked before LDAP or ftrack are contacted (a referenced module not yet in the module
    // cache is fetched here).
    let origins =
        crate::rules::fetch::ensure_all(config).map_err(|e| Failure::rule_load(&config.file, e))?;
    let rules = config
        .rules
        .iter()
        .enumerate()
        .map(|(index, settings)| {
            // Loading checks the hash (so the pinned one is the file's), the ABI and the
            // module's configuration.
            let stage = WasmStage::load(settings, index)
                .map_err(|e| Failure::rule_load(&config.file, e))?;
            Ok(RuleReport {
                module: settings.source.to_string(),
                origin: origins
                    .get(index)
                    .copied()
                    .unwrap_or(crate::rules::fetch::Provenance::File),
                cached_at: settings
                    .source
                    .is_remote()
                    .then(|| settings.module.display().to_string()),
                name: stage.name().to_string(),
                sha256: settings.sha256.trim().to_ascii_lowercase(),
                hooks: stage.hooks().iter().map(|h| h.to_string()).collect(),
                bounds: settings.bounds.report(index),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    crate::run::preflight(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let env = |name: &str| std::env::var(name).ok();
    let (snapshot, ftrack) = runtime.block_on(async {
        tokio::join!(directory::read(&config.ldap), ftrack_report(config, &env))
    });
    let snapshot = snapshot.map_err(|e| Failure::Runtime(e.to_string()))?;
    let ftrack = ftrack?;
    if snapshot.skipped.total() > 0 {
        tracing::info!(
            unknown_dn = snapshot.skipped.unknown_dn,
            invalid_dn = snapshot.skipped.invalid_dn,
            missing_uid = snapshot.skipped.missing_uid,
            examples = ?snapshot.skipped.examples,
            "group members that are not selected users or groups were skipped"
        );
    }
    let report = CheckReport {
        config: "ok",
        ldap: LdapReport::of(&snapshot),
        ftrack: Some(ftrack),
        rules,
    };
    match output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| Failure::Runtime(format!("cannot encode the report: {e}")))?;
            println!("{text}");
        }
        OutputFormat::Human => {
            println!("config   ok ({})", config.file.display());
            let l = &report.ldap;
            println!(
                "ldap     {} users ({} disabled), {} groups, {} memberships after flattening",
                l.users, l.disabled_users, l.groups, l.memberships
            );
            if snapshot.skipped.total() > 0 {
                println!(
                    "         {} group members skipped (not a selected user or group; -v lists examples)",
                    snapshot.skipped.total()
                );
            }
            if let Some(f) = &report.ftrack {
                println!(
                    "ftrack   server {}, {} users, {} groups",
                    f.server_version, f.users, f.groups
                );
                for role in &f.roles {
                    let state = match role.status {
                        "ok" => "a PROJECT role".to_string(),
                        "missing" => {
                            "MISSING in ftrack: create it there or stop naming it".to_string()
                        }
                        _ => format!(
                            "REFUSED: type {}; only PROJECT roles are granted per project",
                            role.role_type.as_deref().unwrap_or("(none)")
                        ),
                    };
                    println!(
                        "role     {} ({}): {state}",
                        role.name,
                        role.named_by.join(", ")
                    );
                }
            }
            for (settings, r) in config.rules.iter().zip(&report.rules) {
                println!(
                    "rule     {} ({}, sha256 {}), hooks: {}",
                    r.name,
                    r.module,
                    r.sha256,
                    r.hooks.join(", ")
                );
                match &r.cached_at {
                    Some(file) => println!("         {} ({file})", r.origin.describe()),
                    None => println!("         {}", r.origin.describe()),
                }
                println!("         may manage: {}", settings.bounds.describe());
            }
        }
    }
    let refused: Vec<String> = report
        .ftrack
        .iter()
        .flat_map(|f| &f.roles)
        .filter(|r| r.status == "refused")
        .map(|r| {
            format!(
                "security role `{}` ({}) has type {}: only PROJECT roles are granted per project; remove it",
                r.name,
                r.named_by.join(", "),
                r.role_type.as_deref().unwrap_or("(none)")
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(Failure::Usage(refused.join("\n")));
    }
    Ok(())
}

/// Every role `sync.toml` names by name (globs in bounds match whatever exists), with where.
fn named_roles(config: &Config) -> BTreeMap<String, Vec<String>> {
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ldap_group, mapping) in &config.group_mappings {
        for role in mapping
            .roles
            .iter()
            .chain(mapping.project_roles.values().flatten())
        {
            let place = format!("group_mappings.{ldap_group:?}");
            let places = named.entry(role.clone()).or_default();
            if !places.contains(&place) {
                places.push(place);
            }
        }
    }
    for (index, rule) in config.rules.iter().enumerate() {
        for role in rule.bounds.roles.iter().flat_map(|p| p.exact_names()) {
            named
                .entry(role.to_string())
                .or_default()
                .push(format!("rules[{index}].roles"));
        }
    }
    named
}

/// Whether each named role exists in ftrack and is a PROJECT role.
fn role_reports(config: &Config, roles: &[SecurityRoleRow]) -> Vec<RoleReport> {
    named_roles(config)
        .into_iter()
        .map(|(name, named_by)| {
            let found = roles.iter().find(|r| r.name.eq_ignore_ascii_case(&name));
            let status = match found {
                None => "missing",
                Some(r)
                    if r.role_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("PROJECT")) =>
                {
                    "ok"
                }
                Some(_) => "refused",
            };
            RoleReport {
                name,
                named_by,
                role_type: found.and_then(|r| r.role_type.clone()),
                status,
            }
        })
        .collect()
}

#[derive(Debug, serde::Deserialize)]
struct SecurityRoleRow {
    name: String,
    #[serde(default, rename = "type")]
    role_type: Option<String>,
}

/// Server version and counts, read with a few paged queries.
async fn ftrack_report(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FtrackReport, Failure> {
    let connection = Connection::open(&config.ftrack, env)
        .await
        .map_err(|e| match e {
            OpenError::Config(m) => Failure::Usage(m),
            other => Failure::Runtime(other.to_string()),
        })?;
    let session = &connection.session;
    let runtime_error = |e: crate::ftrack::FtrackError| Failure::Runtime(e.to_string());
    let info = session.server_information().await.map_err(runtime_error)?;
    let (users, groups, roles) = tokio::try_join!(
        session.query_all("select id from User"),
        session.query_all("select id from Group"),
        session.query_all_as::<SecurityRoleRow>("select name, type from SecurityRole"),
    )
    .map_err(runtime_error)?;
    Ok(FtrackReport {
        server_version: info
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string(),
        users: users.len(),
        groups: groups.len(),
        roles: role_reports(config, &roles),
    })
}
