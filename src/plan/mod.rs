//! The plan: the ordered, deterministic list of changes that would make ftrack match what the
//! rules want, each with its reason — printed by `plan`, checked by the guards, carried out
//! by `apply`.

pub mod diff;
pub mod guard;
pub mod operation;
pub mod saved;

pub use operation::{Change, Operation, OperationKind};
pub use saved::SavedPlan;

use crate::rules::pipeline::SkippedEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the planner needs from the configuration.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub api_user: String,
    pub protected_users: Vec<String>,
    pub deprovision_action: crate::config::DeprovisionAction,
    /// Groups named in `[group_mappings]` (rules may name more).
    pub managed_groups: Vec<String>,
    /// Roles named in `[group_mappings]` (rules may name more).
    pub managed_roles: Vec<String>,
    /// Today as `YYYY-MM-DD` (for missing-since and grace periods).
    pub today: String,
}

impl PlanSettings {
    pub fn from_config(
        config: &crate::config::Config,
        api_user: &str,
        today: String,
    ) -> PlanSettings {
        let mappings = config.group_mappings.values();
        PlanSettings {
            api_user: api_user.to_string(),
            protected_users: config.deprovision.protected_users.clone(),
            deprovision_action: config.deprovision.action,
            managed_groups: mappings
                .clone()
                .flat_map(|m| m.groups.iter().cloned())
                .collect(),
            managed_roles: mappings
                .flat_map(|m| {
                    m.roles
                        .iter()
                        .chain(m.project_roles.values().flatten())
                        .cloned()
                })
                .collect(),
            today,
        }
    }
}

/// How much the sync manages now; the guards' percentages are of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedCounts {
    /// Active users carrying an ldap2ftrack anchor (protected users excluded).
    pub users: usize,
    /// Their memberships in managed groups.
    pub memberships: usize,
    /// Their grants of managed roles (one per scope).
    pub role_grants: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub operations: Vec<Operation>,
    /// LDAP entries left out of this run, and why.
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
    /// Things the admin should know that need no change (protected users, missing roles…).
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub managed: ManagedCounts,
}

impl Plan {
    pub fn count(&self, kind: OperationKind) -> usize {
        self.operations.iter().filter(|o| o.kind == kind).count()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Counts by kind, every kind present (zeros included), in apply order.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        OperationKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.count(*k)))
            .collect()
    }

    /// The `--output json` document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "summary": self.summary(),
            "operations": self.operations,
            "skipped": self.skipped,
            "notes": self.notes,
        })
    }

    /// The human diff: one line per change with its details and reason.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        if self.operations.is_empty() {
            out.push_str("No changes: ftrack matches the directory.\n");
        }
        for op in &self.operations {
            let _ = writeln!(out, "{}", op.summary());
            for (field, change) in op.changes.iter().chain(&op.metadata) {
                let _ = writeln!(
                    out,
                    "    {field}: {} -> {}",
                    change
                        .from
                        .as_deref()
                        .map_or("(none)".to_string(), |v| format!("{v:?}")),
                    change
                        .to
                        .as_deref()
                        .map_or("(removed)".to_string(), |v| format!("{v:?}")),
                );
            }
            if !op.reason.is_empty() {
                let _ = writeln!(out, "    because {}", op.reason);
            }
        }
        for s in &self.skipped {
            let _ = writeln!(out, "! skipped {}: {}", s.dn, s.reason);
        }
        for n in &self.notes {
            let _ = writeln!(out, "i {n}");
        }
        let counts: Vec<String> = OperationKind::ALL
            .iter()
            .map(|k| (k, self.count(*k)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if !counts.is_empty() {
            let _ = writeln!(out, "\nPlan: {}.", counts.join(", "));
        }
        out
    }
}
