//! Guards: refuse a plan that changes more than an admin would expect from one run — the
//! sign of a broken filter or a half-read directory — before anything is written.

use super::operation::OperationKind;
use super::Plan;
use crate::config::{Allowance, GuardSettings};
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

/// One guard as it stands for a plan: what it counts, out of what total, what it allows
/// there and how many the plan has. The one place `check`, the metrics and the refusal
/// read the four guards from, so they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardFigure {
    /// Its key in `[guards]`.
    pub key: &'static str,
    /// What it counts, singular then plural: ("user to disable", "users to disable").
    pub what: (&'static str, &'static str),
    /// What its total is of: "managed users", "directory users", …
    pub of: &'static str,
    /// How many the plan has.
    pub planned: u64,
    pub allowance: Allowance,
}

impl GuardFigure {
    pub fn exceeded(&self) -> bool {
        self.planned > self.allowance.allowed
    }

    /// "1 user to disable" / "3 users to disable".
    pub fn planned_text(&self) -> String {
        let (one, many) = self.what;
        format!(
            "{} {}",
            self.planned,
            if self.planned == 1 { one } else { many }
        )
    }

    /// The limit as written and why it allows what it does, e.g.
    /// `[guards] max_disable = "10% or 3" (10% of 8 allows 0, so the count of 3 applies: allows 3)`.
    fn limit_text(&self, default: &GuardFigure) -> String {
        let a = &self.allowance;
        let mut text = format!(
            "[guards] {} = {} ({}",
            self.key,
            a.limit.toml(),
            a.explain()
        );
        // A percentage alone allows little in a small studio: say what the floor would do.
        if let (None, Some(floor)) = (a.count, default.allowance.count) {
            let with_floor = a.limit.with_count(floor);
            if with_floor.allowed(a.total) > a.allowed {
                text.push_str(&format!(
                    "; {} would allow {}",
                    with_floor.toml(),
                    with_floor.allowed(a.total)
                ));
            }
        }
        text.push(')');
        text
    }
}

/// The four guards for `plan`; `directory_users` is how many users LDAP returned.
pub fn figures(plan: &Plan, guards: &GuardSettings, directory_users: usize) -> [GuardFigure; 4] {
    let counts = plan.counts();
    let figure = |key,
                  what,
                  of,
                  kind: Option<OperationKind>,
                  total: usize,
                  limit: &crate::config::GuardLimit| {
        let planned = match kind {
            Some(kind) => counts[kind as usize],
            // Entries a rule deliberately left out are not a failure.
            None => plan
                .skipped
                .iter()
                .filter(|s| s.cause != SkipCause::Excluded)
                .count(),
        };
        GuardFigure {
            key,
            what,
            of,
            planned: planned as u64,
            allowance: limit.allowance(total as u64),
        }
    };
    [
        figure(
            "max_disable",
            ("user to disable", "users to disable"),
            "managed users",
            Some(OperationKind::DisableUser),
            plan.managed.users,
            &guards.max_disable,
        ),
        figure(
            "max_membership_removals",
            ("membership removal", "membership removals"),
            "managed memberships",
            Some(OperationKind::RemoveMembership),
            plan.managed.memberships,
            &guards.max_membership_removals,
        ),
        figure(
            "max_role_revocations",
            ("role revocation", "role revocations"),
            "managed role grants",
            Some(OperationKind::RevokeRole),
            plan.managed.role_grants,
            &guards.max_role_revocations,
        ),
        figure(
            "max_skipped",
            ("entry left out", "entries left out"),
            "directory users",
            None,
            directory_users,
            &guards.max_skipped,
        ),
    ]
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
    let defaults = figures(plan, &GuardSettings::default(), directory_users);
    for (figure, default) in figures(plan, guards, directory_users).iter().zip(&defaults) {
        if !figure.exceeded() {
            continue;
        }
        let total = figure.allowance.total;
        let limit = figure.limit_text(default);
        reasons.push(if figure.key == "max_skipped" {
            format!(
                "{} of {total} directory entries were left out because a rule failed on them or they are invalid, which exceeds {limit}; the plan's skipped list says why for each",
                figure.planned
            )
        } else {
            format!(
                "{} of {total} managed exceeds {limit}",
                figure.planned_text()
            )
        });
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
    use crate::config::GuardLimit;
    use crate::plan::{ManagedCounts, Operation};
    use crate::rules::pipeline::SkippedEntry;

    /// The four guards, each with what it counts in a plan.
    #[derive(Debug, Clone, Copy)]
    enum Guard {
        Disable,
        Memberships,
        Roles,
        Skipped,
    }
    const GUARDS: [Guard; 4] = [
        Guard::Disable,
        Guard::Memberships,
        Guard::Roles,
        Guard::Skipped,
    ];
    const SIZES: [usize; 4] = [8, 20, 200, 2000];

    /// A plan with `changes` of what `guard` counts, out of `total` of its managed objects
    /// (every total is `total`, the directory too).
    fn plan(guard: Guard, changes: usize, total: usize) -> Plan {
        let kind = match guard {
            Guard::Disable => Some(OperationKind::DisableUser),
            Guard::Memberships => Some(OperationKind::RemoveMembership),
            Guard::Roles => Some(OperationKind::RevokeRole),
            Guard::Skipped => None,
        };
        let mut plan = Plan {
            managed: ManagedCounts {
                users: total,
                memberships: total,
                role_grants: total,
            },
            ..Plan::default()
        };
        for i in 0..changes {
            match kind {
                Some(kind) => {
                    plan.operations
                        .push(Box::new(Operation::new(kind, format!("u{i}"), "test")))
                }
                None => plan.skipped.push(SkippedEntry {
                    dn: format!("uid=u{i},dc=x"),
                    reason: "`nope` is not a valid e-mail address".into(),
                    anchor: format!("a{i}"),
                    cause: SkipCause::Invalid,
                }),
            }
        }
        plan
    }

    fn key(guard: Guard) -> &'static str {
        match guard {
            Guard::Disable => "max_disable",
            Guard::Memberships => "max_membership_removals",
            Guard::Roles => "max_role_revocations",
            Guard::Skipped => "max_skipped",
        }
    }

    /// What the defaults allow at 8, 20, 200 and 2,000 (README's table).
    fn default_allows(guard: Guard) -> [u64; 4] {
        match guard {
            Guard::Disable => [3, 3, 20, 200],
            Guard::Memberships => [4, 4, 40, 400],
            Guard::Roles => [4, 4, 20, 200],
            Guard::Skipped => [3, 3, 10, 100],
        }
    }

    #[test]
    fn the_defaults_allow_the_documented_figures_at_every_size() {
        let defaults = GuardSettings::default();
        for guard in GUARDS {
            for (size, allows) in SIZES.iter().zip(default_allows(guard)) {
                let figures = figures(&plan(guard, 0, *size), &defaults, *size);
                let figure = figures.iter().find(|f| f.key == key(guard)).unwrap();
                assert_eq!(figure.allowance.total, *size as u64, "{guard:?} at {size}");
                assert_eq!(figure.allowance.allowed, allows, "{guard:?} at {size}");
            }
        }
    }

    /// At every size, for every guard: one ordinary change (and a few, up to the limit)
    /// passes; a broken filter that drops 60% is refused, naming the guard and its figures.
    #[test]
    fn ordinary_change_passes_and_a_60_percent_drop_is_refused_at_every_size() {
        let defaults = GuardSettings::default();
        for guard in GUARDS {
            for (size, allows) in SIZES.iter().zip(default_allows(guard)) {
                let at = |changes| check(&plan(guard, changes, *size), &defaults, *size);
                assert_eq!(at(1), Ok(()), "one change, {guard:?} at {size}");
                assert_eq!(at(allows as usize), Ok(()), "{allows}, {guard:?} at {size}");
                let refusal = at(allows as usize + 1).unwrap_err();
                assert_eq!(refusal.reasons.len(), 1, "{guard:?} at {size}: {refusal}");
                // 60% of the managed objects, rounded up: 5 of 8, 12 of 20, …
                let mass = (size * 6).div_ceil(10);
                let refusal = at(mass).unwrap_err();
                assert_eq!(refusal.reasons.len(), 1, "{refusal}");
                let reason = &refusal.reasons[0];
                assert!(
                    reason.contains(&format!("[guards] {} = ", key(guard)))
                        && reason.contains(&format!("{mass} "))
                        && reason.contains(&format!(" of {size} "))
                        && reason.contains(&format!("allows {allows})")),
                    "{guard:?} at {size}: {reason}"
                );
            }
        }
    }

    #[test]
    fn the_refusal_says_both_figures_and_which_applied() {
        let defaults = GuardSettings::default();
        let small = check(&plan(Guard::Disable, 5, 8), &defaults, 8).unwrap_err();
        assert_eq!(
            small.reasons,
            ["5 users to disable of 8 managed exceeds [guards] max_disable = \"10% or 3\" (10% of 8 allows 0, so the count of 3 applies: allows 3)"]
        );
        let large = check(&plan(Guard::Disable, 1200, 2000), &defaults, 2000).unwrap_err();
        assert_eq!(
            large.reasons,
            ["1200 users to disable of 2000 managed exceeds [guards] max_disable = \"10% or 3\" (10% of 2000 allows 200, more than the count of 3: allows 200)"]
        );
        assert!(large.to_string().contains("--force"));
        let skipped = check(&plan(Guard::Skipped, 12, 20), &defaults, 20).unwrap_err();
        assert_eq!(
            skipped.reasons,
            ["12 of 20 directory entries were left out because a rule failed on them or they are invalid, which exceeds [guards] max_skipped = \"5% or 3\" (5% of 20 allows 1, so the count of 3 applies: allows 3); the plan's skipped list says why for each"]
        );
    }

    /// The case: a config that still says "10%" (as the shipped one did) refuses the
    /// demo's one revocation; the message says so in singular and shows what a floor would do.
    #[test]
    fn a_percentage_alone_is_refused_with_what_a_floor_would_allow() {
        let guards = GuardSettings {
            max_role_revocations: GuardLimit::percent(10),
            ..GuardSettings::default()
        };
        let refusal = check(&plan(Guard::Roles, 1, 8), &guards, 8).unwrap_err();
        assert_eq!(
            refusal.reasons,
            ["1 role revocation of 8 managed exceeds [guards] max_role_revocations = \"10%\" (10% of 8 allows 0; \"10% or 4\" would allow 4)"]
        );
        // No hint once the percentage alone allows as much as the floor would.
        let refusal = check(&plan(Guard::Roles, 21, 200), &guards, 200).unwrap_err();
        assert!(!refusal.reasons[0].contains("would allow"), "{refusal}");
        // A count alone: fixed, whatever the total.
        let counted = GuardSettings {
            max_disable: GuardLimit::count(2),
            ..GuardSettings::default()
        };
        let refusal = check(&plan(Guard::Disable, 3, 2000), &counted, 2000).unwrap_err();
        assert_eq!(
            refusal.reasons,
            ["3 users to disable of 2000 managed exceeds [guards] max_disable = 2 (allows 2)"]
        );
    }

    #[test]
    fn every_exceeded_guard_is_named() {
        let mut both = plan(Guard::Disable, 5, 8);
        both.operations.extend(plan(Guard::Roles, 5, 8).operations);
        let refusal = check(&both, &GuardSettings::default(), 8).unwrap_err();
        assert_eq!(refusal.reasons.len(), 2, "{refusal}");
        assert!(refusal.reasons[1].starts_with("5 role revocations of 8 managed"));
    }

    #[test]
    fn an_empty_directory_is_refused_unless_allowed() {
        let mut guards = GuardSettings::default();
        let refusal = check(&plan(Guard::Disable, 0, 0), &guards, 0).unwrap_err();
        assert!(refusal.reasons[0].contains("allow_empty_source"));
        guards.allow_empty_source = true;
        assert_eq!(check(&plan(Guard::Disable, 0, 0), &guards, 0), Ok(()));
    }

    #[test]
    fn excluded_entries_do_not_count_as_skipped() {
        let mut p = plan(Guard::Skipped, 10, 20);
        for s in &mut p.skipped {
            s.cause = SkipCause::Excluded;
        }
        assert_eq!(check(&p, &GuardSettings::default(), 20), Ok(()));
    }
}
