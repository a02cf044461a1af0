//! `ldap2ftrack check`: validate the configuration and report what each side looks like,
//! without planning or changing anything.
//!
//! Every figure printed is read from the real source; a part that cannot be checked in this
//! version says so and makes the command exit 1 rather than print a guess.

use crate::cli::{Failure, OutputFormat};
use crate::config::Config;
use crate::directory::{self, DirectorySnapshot};
use crate::ftrack::{Connection, OpenError};
use crate::rules::wasm::WasmStage;
use crate::rules::Stage;
use serde::Serialize;

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
}

#[derive(Debug, Serialize)]
pub struct RuleReport {
    pub module: String,
    pub name: String,
    pub sha256: String,
    pub hooks: Vec<String>,
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
    let rules = config
        .rules
        .iter()
        .enumerate()
        .map(|(index, settings)| {
            // Loading checks the hash (so the pinned one is the file's), the ABI and the
            // module's configuration.
            let stage = WasmStage::load(settings, index)
                .map_err(|e| crate::run::load_failure(config, e))?;
            Ok(RuleReport {
                module: settings.module.display().to_string(),
                name: stage.name().to_string(),
                sha256: settings.sha256.trim().to_ascii_lowercase(),
                hooks: stage.hooks().iter().map(|h| h.to_string()).collect(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
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
            }
            for r in &report.rules {
                println!(
                    "rule     {} ({}, sha256 {}), hooks: {}",
                    r.name,
                    r.module,
                    r.sha256,
                    r.hooks.join(", ")
                );
            }
        }
    }
    Ok(())
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
    let (users, groups) = tokio::try_join!(
        session.query_all("select id from User"),
        session.query_all("select id from Group"),
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
    })
}
