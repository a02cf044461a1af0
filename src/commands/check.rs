//! `ldap2ftrack check`: validate the configuration and report what each side looks like,
//! and what each guard allows at today's size, without changing anything. It reads and plans
//! as `plan` does (the guards' totals are of what the rules manage), but prints no plan.
//!
//! Every figure printed is read from the real source; a part that cannot be checked in this
//! version says so and makes the command exit 1 rather than print a guess.

use crate::commands::output::OutputFormat;
use crate::config::{Basis, BoundsReport, Config, DirectorySource};
use crate::directory::DirectorySnapshot;
use crate::failure::Failure;
use crate::ftrack::snapshot::FtrackSecurityRole;
use crate::plan::guard::GuardFigure;
use crate::rules::attributes::UserAttributes;
use crate::rules::wasm::WasmStage;
use crate::rules::Stage;
use serde::Serialize;
use std::collections::BTreeMap;

/// The `--output json` document.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub config: &'static str,
    pub ldap: LdapReport,
    /// How runs will read the directory: incrementally or in full, and why.
    pub sync: crate::run::incremental::Capability,
    pub ftrack: Option<FtrackReport>,
    pub rules: Vec<RuleReport>,
    /// Each `[guards]` limit at the size the directory and ftrack have now, by key.
    pub guards: BTreeMap<&'static str, GuardReport>,
}

/// What one guard allows now: its limit worked out on the totals a run would use.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct GuardReport {
    /// As written in `[guards]`, e.g. `10% or 3`.
    pub limit: String,
    /// What `total` counts: `managed users`, `managed memberships`, `managed role grants`
    /// or `directory users`.
    pub of: &'static str,
    pub total: u64,
    /// What the percentage alone allows of `total`, when the limit has one.
    pub percent_allows: Option<u64>,
    /// The limit's count, when it has one.
    pub count: Option<u64>,
    /// The most one run may do: the larger of the two.
    pub allows: u64,
    /// Which of the two decides: `percent` or `count`.
    pub basis: Basis,
    /// How many the plan has now (over `allows`: `apply` would exit 3).
    pub planned: u64,
}

impl GuardReport {
    fn of(figure: &GuardFigure) -> GuardReport {
        let a = &figure.allowance;
        GuardReport {
            limit: a.limit.to_string(),
            of: figure.of,
            total: a.total,
            percent_allows: a.by_percent,
            count: a.count,
            allows: a.allowed,
            basis: a.basis(),
            planned: figure.planned,
        }
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LdapReport {
    pub users: usize,
    pub disabled_users: usize,
    pub groups: usize,
    /// (user, group) pairs after flattening nested groups.
    pub memberships: usize,
    /// The attribute list a user search sends (`*` first when every attribute is read); an
    /// `ldif:` source is read whole, and this is what a server would be asked for.
    pub user_attributes: Vec<String>,
    /// Who needs them: the stages that read some and the directory itself, the module that
    /// reads every attribute, or `[ldap] user_attributes`.
    pub user_attributes_for: String,
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
    pub fn of(
        snapshot: &DirectorySnapshot,
        ldap: &crate::config::LdapSettings,
        attributes: UserAttributes,
    ) -> LdapReport {
        LdapReport {
            users: snapshot.users.len(),
            disabled_users: snapshot.disabled_users(),
            groups: snapshot.groups.len(),
            memberships: snapshot.memberships(),
            user_attributes: crate::directory::ldap::requested_user_attributes(
                ldap,
                attributes.needed.as_deref(),
            ),
            user_attributes_for: attributes.because,
        }
    }
}

pub fn check(config: &Config, output: OutputFormat) -> Result<(), Failure> {
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
    // One read and one plan, as `plan` does them, so the guards' totals are the ones a run
    // would use (managed users, memberships and grants depend on the rules).
    let mut pipeline = crate::run::pipeline(config)?;
    crate::run::preflight(config)?;
    let runtime = crate::run::runtime()?;
    let attributes = pipeline.user_attributes(&config.ldap);
    let inputs = runtime.block_on(crate::run::read_inputs(
        config,
        attributes.needed.clone(),
        false,
    ))?;
    let snapshot = &inputs.directory;
    if snapshot.skipped.total() > 0 {
        tracing::info!(
            unknown_dn = snapshot.skipped.unknown_dn,
            invalid_dn = snapshot.skipped.invalid_dn,
            missing_uid = snapshot.skipped.missing_uid,
            examples = ?snapshot.skipped.examples,
            "group members that are not selected users or groups were skipped"
        );
    }
    let ftrack = runtime.block_on(ftrack_report(config, &inputs))?;
    let sync = runtime.block_on(crate::run::incremental::capability(
        config,
        pipeline.reads_member_of(&config.ldap),
    ));
    let planned = crate::run::plan(config, &inputs, &mut pipeline)?;
    let figures = crate::plan::guard::figures(&planned.plan, &config.guards, snapshot.users.len());
    let report = CheckReport {
        config: "ok",
        ldap: LdapReport::of(snapshot, &config.ldap, attributes),
        sync,
        ftrack: Some(ftrack),
        rules,
        guards: figures
            .iter()
            .map(|f| (f.key, GuardReport::of(f)))
            .collect(),
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
            let asked = match config.ldap.source {
                DirectorySource::Server { .. } => "user attributes requested",
                DirectorySource::LdifFile(_) => "user attributes a server would be asked for",
            };
            println!(
                "         {asked}: {} ({})",
                l.user_attributes.join(", "),
                l.user_attributes_for
            );
            println!("sync     {}: {}", report.sync.mode, report.sync.why);
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
            for (i, f) in figures.iter().enumerate() {
                let a = &f.allowance;
                let over = if f.exceeded() {
                    ", over the limit: `apply` would be refused"
                } else {
                    ""
                };
                println!(
                    "{}{} = {} of {} {}: {} (planned now: {}{over})",
                    if i == 0 { "guards   " } else { "         " },
                    f.key,
                    a.limit.toml(),
                    a.total,
                    f.of,
                    a.explain(),
                    f.planned
                );
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
fn role_reports(config: &Config, roles: &[FtrackSecurityRole]) -> Vec<RoleReport> {
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

/// Server version and counts: the counts from the snapshot the run read.
async fn ftrack_report(
    config: &Config,
    inputs: &crate::run::Inputs,
) -> Result<FtrackReport, Failure> {
    let info = inputs
        .connection
        .session
        .server_information()
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(FtrackReport {
        server_version: info
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string(),
        users: inputs.ftrack.users.len(),
        groups: inputs.ftrack.groups.len(),
        roles: role_reports(config, &inputs.ftrack.security_roles),
    })
}
