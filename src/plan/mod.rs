//! The plan: the ordered, deterministic list of changes that would make ftrack match what the
//! rules want, each with its reason — printed by `plan`, checked by the guards, carried out
//! by `apply`.

pub mod diff;
pub mod guard;
pub mod operation;
mod render;
pub mod saved;

pub use operation::{Change, Name, Operation, OperationKind};
pub use saved::SavedPlan;

use crate::rules::pipeline::SkippedEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Boxed: a first run of 100,000 users plans 540,000 operations, and a growing vector
    /// of 300-byte operations held twice its length during the last reallocation (465 MB
    /// at once); of pointers it holds 8 MB.
    #[allow(clippy::vec_box)]
    pub operations: Vec<Box<Operation>>,
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
        self.counts()[kind as usize]
    }

    /// How many operations of each kind, in [`OperationKind::ALL`]'s order: one pass over
    /// the plan (a first run's half a million operations are each a separate allocation).
    pub fn counts(&self) -> [usize; OperationKind::ALL.len()] {
        let mut counts = [0; OperationKind::ALL.len()];
        for op in &self.operations {
            counts[op.kind as usize] += 1;
        }
        counts
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Counts by kind, every kind present (zeros included), in apply order.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        OperationKind::ALL
            .iter()
            .zip(self.counts())
            .map(|(k, n)| (k.as_str(), n))
            .collect()
    }

    /// The human diff as a string (for a report that is not streamed).
    pub fn render_human(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_human(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan using every field of an operation, a skipped entry and a note.
    fn full_plan() -> Plan {
        let mut grant = Operation::new(OperationKind::GrantRole, "ana", "member of cn=leads");
        grant.user_id = Some("u1".into());
        grant.role = Some("Lead".into());
        grant.role_id = Some("r1".into());
        grant.scope = Some("all open projects".into());
        grant.project_id = Some("p1".into());
        grant.add_role = true;
        let mut create = Operation::new(OperationKind::CreateUser, "bo", "in LDAP, not in ftrack");
        create.set("email", None, Some("bo@studio.example".into()));
        create.set_metadata("ldap2ftrack.anchor", None, Some("uuid-1".into()));
        let mut member = Operation::new(OperationKind::AddMembership, "bo", "member of cn=fx");
        member.group = Some("FX".into());
        member.group_id = Some("g1".into());
        member.membership_id = Some("m1".into());
        Plan {
            operations: vec![Box::new(create), Box::new(member), Box::new(grant)],
            skipped: vec![SkippedEntry {
                dn: "uid=x,ou=people".into(),
                reason: "no username".into(),
                anchor: String::new(),
                cause: Default::default(),
            }],
            notes: vec!["a note".into()],
            managed: ManagedCounts::default(),
        }
    }

    /// More operations than one batch renders at once, each distinct.
    fn long_plan() -> Plan {
        let mut plan = full_plan();
        let template = plan.operations.clone();
        plan.operations = (0..40_000)
            .map(|i| {
                let mut op = template[i % template.len()].clone();
                op.target = format!("user{i}").into();
                op
            })
            .collect();
        plan
    }

    #[test]
    fn the_streamed_json_document_is_the_pretty_tree_with_sorted_keys() {
        let empty = Plan::default();
        let no_operations = Plan {
            operations: Vec::new(),
            ..full_plan()
        };
        for plan in [full_plan(), empty, no_operations, long_plan()] {
            // The document as it was built before it was streamed: a JSON tree (sorted keys).
            let tree = serde_json::json!({
                "summary": plan.summary(),
                "operations": serde_json::to_value(&plan.operations).unwrap(),
                "skipped": plan.skipped,
                "notes": plan.notes,
            });
            let mut streamed = Vec::new();
            plan.write_json(&mut streamed).unwrap();
            assert!(
                String::from_utf8(streamed).unwrap()
                    == serde_json::to_string_pretty(&tree).unwrap() + "\n",
                "{} operations",
                plan.operations.len()
            );
        }
    }

    #[test]
    fn operations_are_written_as_serde_writes_them_escapes_included() {
        // The document's operations are written by hand (`render::write_operation`); serde's
        // pretty tree is the definition, for every field and text JSON must escape.
        let odd = "zoë \"z\" \\ o\n\t\u{1}\u{7f} ✓";
        let mut update = Operation::new(OperationKind::UpdateUser, odd, odd);
        update.user_id = Some(odd.into());
        update.set("last_name", Some(odd.into()), None);
        update.set("first_name", None, Some("Zoë".into()));
        update.set_metadata("ldap2ftrack.missing_since", Some("2026-11-01".into()), None);
        let mut removal = Operation::new(OperationKind::RemoveMembership, "bo", "");
        removal.membership_id = Some(uuid::Uuid::from_u128(0x5ca1e << 64 | 7).into());
        removal.group = Some(odd.into());
        removal.group_id = Some("g\"1".into());
        let mut plan = full_plan();
        plan.operations
            .extend([Box::new(update), Box::new(removal)]);
        for op in &plan.operations {
            let mut written = Vec::new();
            render::write_operation(op, &mut written);
            let expected = serde_json::to_string_pretty(op)
                .unwrap()
                .replace('\n', "\n    ");
            assert_eq!(String::from_utf8(written).unwrap(), expected, "{op:?}");
        }
    }

    #[test]
    fn the_human_diff_of_many_operations_keeps_their_order() {
        let plan = long_plan();
        let text = plan.render_human();
        let summaries: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
            .take(plan.operations.len())
            .collect();
        let expected: Vec<String> = plan.operations.iter().map(|op| op.summary()).collect();
        assert_eq!(summaries, expected);
        assert!(
            text.ends_with("\nPlan: 13334 create_user, 13333 add_membership, 13333 grant_role.\n"),
            "{}",
            &text[text.len() - 200..]
        );
    }

    #[test]
    fn a_saved_plan_reads_back_equal() {
        let plan = full_plan();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let ftrack = crate::ftrack::FtrackSnapshot::default();
        SavedPlan::write(&path, &ftrack, &["abc".into()], &plan).unwrap();
        let saved = SavedPlan::read(&path).unwrap();
        assert_eq!(saved.plan.operations, plan.operations);
        assert_eq!(saved.modules_sha256, ["abc"]);
        assert_eq!(saved.ftrack_sha256, saved::fingerprint(&ftrack));
        assert_eq!(saved.drift(&ftrack, &["abc".into()], &plan), None);
    }

    #[test]
    fn a_truncated_saved_plan_is_named_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut bytes = Vec::new();
        SavedPlan::write(&path, &Default::default(), &[], &full_plan()).unwrap();
        bytes.extend(std::fs::read(&path).unwrap());
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = SavedPlan::read(&path).unwrap_err();
        assert!(err.contains("plan.json is not a plan saved by"), "{err}");
    }
}
