//! Rule modules stay inside their bounds: whatever a module's `map-groups` adds to or drops
//! from the proposal it was handed must be a group or role its `[[rules]]` entry allows
//! ([`ModuleBounds`]). A module may come from another studio, so it never decides its own
//! reach; a proposal outside fails the entry under the module's `on_error` policy.

use super::{Access, RoleGrant};
use crate::config::{ModuleBounds, Patterns};
use std::fmt;

/// A proposal outside the bounds: what it was and which list would have to allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfBounds {
    /// `group` or `role`.
    pub kind: &'static str,
    pub name: String,
    /// True when the module dropped it from the proposal (rather than adding it).
    pub dropped: bool,
    /// The list as written, e.g. `["Artist"]`, or `not declared`.
    pub allowed: String,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dropped { "dropped" } else { "proposed" };
        let key = if self.kind == "group" {
            "groups"
        } else {
            "roles"
        };
        write!(
            f,
            "{verb} {} `{}`, outside its bounds ({key} = {}); the module may not manage it. \
             If you trust the module with it, add it to `{key}` in its [[rules]] entry",
            self.kind, self.name, self.allowed
        )
    }
}

/// The first group or role that `after` adds to or drops from `before` outside `bounds`.
pub fn check(bounds: &ModuleBounds, before: &Access, after: &Access) -> Result<(), OutOfBounds> {
    let group_changes = after
        .groups
        .symmetric_difference(&before.groups)
        .map(|g| (g, !after.groups.contains(g)));
    for (group, dropped) in group_changes {
        check_one(&bounds.groups, "group", group, dropped)?;
    }
    let role_changes = after
        .roles
        .symmetric_difference(&before.roles)
        .map(|g: &RoleGrant| (&g.role, !after.roles.contains(g)));
    for (role, dropped) in role_changes {
        check_one(&bounds.roles, "role", role, dropped)?;
    }
    Ok(())
}

fn check_one(
    patterns: &Option<Patterns>,
    kind: &'static str,
    name: &str,
    dropped: bool,
) -> Result<(), OutOfBounds> {
    match patterns {
        Some(p) if p.allows(name) => Ok(()),
        other => Err(OutOfBounds {
            kind,
            name: name.to_string(),
            dropped,
            allowed: other
                .as_ref()
                .map_or("not declared".to_string(), |p| p.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RoleScope;

    fn bounds(groups: &[&str], roles: &[&str]) -> ModuleBounds {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ModuleBounds {
            groups: Some(Patterns::new(&owned(groups)).unwrap()),
            roles: Some(Patterns::new(&owned(roles)).unwrap()),
        }
    }

    fn access(groups: &[&str], roles: &[&str]) -> Access {
        Access {
            groups: groups.iter().map(|&s| s.into()).collect(),
            roles: roles
                .iter()
                .map(|r| RoleGrant {
                    role: (*r).into(),
                    scope: RoleScope::AllOpenProjects,
                })
                .collect(),
        }
    }

    #[test]
    fn names_and_globs_match_case_insensitively() {
        let b = bounds(&["Comp *", "Animation"], &["artist"]);
        let before = access(&["Everyone"], &[]);
        let ok = access(&["Everyone", "comp team", "ANIMATION"], &["Artist"]);
        assert_eq!(check(&b, &before, &ok), Ok(()));
    }

    #[test]
    fn an_addition_outside_is_named() {
        let b = bounds(&["*"], &["Artist"]);
        let err = check(&b, &access(&[], &[]), &access(&[], &["Administrator"])).unwrap_err();
        assert_eq!(err.name, "Administrator");
        assert!(!err.dropped);
        let text = err.to_string();
        assert!(text.contains("proposed role `Administrator`"), "{text}");
        assert!(text.contains(r#"roles = ["Artist"]"#), "{text}");
    }

    #[test]
    fn dropping_an_earlier_proposal_is_managing_it_too() {
        let b = bounds(&["Comp*"], &[]);
        let err = check(&b, &access(&["Animation"], &[]), &access(&[], &[])).unwrap_err();
        assert!(err.dropped);
        assert!(err.to_string().contains("dropped group `Animation`"));
    }

    #[test]
    fn passing_the_proposal_through_needs_no_bounds() {
        let b = ModuleBounds::default();
        let same = access(&["Animation"], &["Artist"]);
        assert_eq!(check(&b, &same, &same), Ok(()));
        let err = check(&b, &same, &access(&["Animation", "X"], &["Artist"])).unwrap_err();
        assert_eq!(err.allowed, "not declared");
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Patterns::new(&["".into()]).is_err());
        assert!(Patterns::new(&["[abc".into()]).is_err());
        let p = Patterns::new(&["A*".into(), "Bee".into()]).unwrap();
        assert_eq!(p.exact_names().collect::<Vec<_>>(), ["Bee"]);
    }
}
