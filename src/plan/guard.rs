//! Guards: refuse a plan that changes more than an admin would expect from one run — the
//! sign of a broken filter or a half-read directory — before anything is written.

use super::operation::OperationKind;
use super::Plan;
use crate::config::{GuardLimit, GuardSettings};
use crate::rules::pipeline::SkipCause;

/// Why a plan was refused: every limit it exceeded, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRefusal {
    pub reasons: Vec<String>,
}

impl std::fmt::Display for GuardRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused by guards, nothing was written: {}. If this is intended, run again with --force or raise the limits in [guards]",
            self.reasons.join("; ")
        )
    }
}

/// Checks the plan against the limits; `directory_users` is how many users LDAP returned.
pub fn check(
    plan: &Plan,
    guards: &GuardSettings,
    directory_users: usize,
) -> Result<(), GuardRefusal> {
    let mut reasons = Vec::new();
    if directory_users == 0 && !guards.allow_empty_source {
        reasons.push(
            "the directory returned no users (a wrong base DN or filter?); set [guards] allow_empty_source = true if that is real".to_string(),
        );
    }
    let count = |kind| plan.count(kind) as u64;
    let mut limit = |what: &str, key: &str, n: u64, total: usize, limit: &GuardLimit| {
        if !limit.permits(n, total as u64) {
            reasons.push(format!(
                "{n} {what} of {total} managed exceeds [guards] {key} = {limit} (allows {})",
                limit.allowed(total as u64)
            ));
        }
    };
    limit(
        "users to disable",
        "max_disable",
        count(OperationKind::DisableUser),
        plan.managed.users,
        &guards.max_disable,
    );
    limit(
        "membership removals",
        "max_membership_removals",
        count(OperationKind::RemoveMembership),
        plan.managed.memberships,
        &guards.max_membership_removals,
    );
    limit(
        "role revocations",
        "max_role_revocations",
        count(OperationKind::RevokeRole),
        plan.managed.role_grants,
        &guards.max_role_revocations,
    );
    let skipped = plan
        .skipped
        .iter()
        .filter(|s| s.cause != SkipCause::Excluded)
        .count() as u64;
    if !guards.max_skipped.permits(skipped, directory_users as u64) {
        reasons.push(format!(
            "{skipped} of {directory_users} directory entries were left out because a rule failed on them or they are invalid, which exceeds [guards] max_skipped = {} (allows {}); the plan's skipped list says why for each",
            guards.max_skipped,
            guards.max_skipped.allowed(directory_users as u64)
        ));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(GuardRefusal { reasons })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ManagedCounts, Operation};

    fn plan(disables: usize, managed_users: usize) -> Plan {
        Plan {
            operations: (0..disables)
                .map(|i| Operation::new(OperationKind::DisableUser, format!("u{i}"), "gone"))
                .collect(),
            managed: ManagedCounts {
                users: managed_users,
                memberships: 0,
                role_grants: 0,
            },
            ..Plan::default()
        }
    }

    #[test]
    fn a_plan_within_the_limits_passes() {
        let guards = GuardSettings::default();
        assert_eq!(check(&plan(10, 100), &guards, 100), Ok(()));
    }

    #[test]
    fn a_plan_over_a_limit_is_refused_with_the_numbers() {
        let guards = GuardSettings::default();
        let refusal = check(&plan(11, 100), &guards, 100).unwrap_err();
        assert_eq!(
            refusal.reasons,
            ["11 users to disable of 100 managed exceeds [guards] max_disable = 10% (allows 10)"]
        );
        assert!(refusal.to_string().contains("--force"));
    }

    #[test]
    fn an_empty_directory_is_refused_unless_allowed() {
        let mut guards = GuardSettings::default();
        let refusal = check(&plan(0, 0), &guards, 0).unwrap_err();
        assert!(refusal.reasons[0].contains("allow_empty_source"));
        guards.allow_empty_source = true;
        assert_eq!(check(&plan(0, 0), &guards, 0), Ok(()));
    }
}
