//! Between the pipeline's types (`crate::rules`) and the generated WIT types, in both
//! directions. What comes back from a module is untrusted: it is measured against the output
//! cap and checked for shape (empty usernames, blank group or role names, control
//! characters) before the pipeline sees it, so a malformed answer is an error naming the
//! module, hook and entry rather than a strange plan.

use super::bindings::ldap2ftrack::rules::types as wit;
use crate::rules::{
    Access, DepartedUser, GroupRef, RoleGrant, RoleScope, RuleEntry, UserDecision, UserFields,
    Verdict,
};

pub fn entry(e: &RuleEntry) -> wit::LdapEntry {
    wit::LdapEntry {
        dn: e.dn.clone(),
        stable_id: e.stable_id.clone(),
        disabled: e.disabled,
        attributes: e
            .attributes
            .iter()
            .map(|(name, values)| wit::Attribute {
                name: name.clone(),
                values: values.clone(),
            })
            .collect(),
        groups: e
            .groups
            .iter()
            .map(|g: &GroupRef| wit::GroupRef {
                dn: g.dn.clone(),
                name: g.name.clone(),
                direct: g.direct,
            })
            .collect(),
    }
}

pub fn user_fields(u: &UserFields) -> wit::UserFields {
    wit::UserFields {
        username: u.username.clone(),
        email: u.email.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
    }
}

pub fn decision(d: &UserDecision) -> wit::UserDecision {
    match d {
        UserDecision::Sync(u) => wit::UserDecision::Sync(user_fields(u)),
        UserDecision::Skip(why) => wit::UserDecision::Skip(why.clone()),
    }
}

pub fn access(a: &Access) -> wit::Access {
    wit::Access {
        groups: a.groups.iter().cloned().collect(),
        roles: a
            .roles
            .iter()
            .map(|r| wit::RoleGrant {
                role: r.role.clone(),
                scope: match &r.scope {
                    RoleScope::AllOpenProjects => wit::RoleScope::AllOpenProjects,
                    RoleScope::Project(p) => wit::RoleScope::Project(p.clone()),
                },
            })
            .collect(),
    }
}

pub fn departed(d: &DepartedUser) -> wit::DepartedUser {
    wit::DepartedUser {
        username: d.username.clone(),
        email: d.email.clone(),
        ldap_disabled: d.ldap_disabled,
        missing_since: d.missing_since.clone(),
        today: d.today.clone(),
        entry: d.entry.as_ref().map(entry),
    }
}

pub fn verdict(v: &Verdict) -> wit::Verdict {
    match v {
        Verdict::Keep(r) => wit::Verdict::Keep(r.clone()),
        Verdict::Disable(r) => wit::Verdict::Disable(r.clone()),
    }
}

/// Bytes of text in a module's answer, for the output cap.
pub trait OutputSize {
    fn output_size(&self) -> usize;
}

impl OutputSize for wit::UserDecision {
    fn output_size(&self) -> usize {
        match self {
            wit::UserDecision::Sync(u) => {
                u.username.len()
                    + [&u.email, &u.first_name, &u.last_name]
                        .iter()
                        .map(|s| s.as_ref().map_or(0, String::len))
                        .sum::<usize>()
            }
            wit::UserDecision::Skip(why) => why.len(),
        }
    }
}

impl OutputSize for wit::Access {
    fn output_size(&self) -> usize {
        self.groups.iter().map(|g| g.len() + 8).sum::<usize>()
            + self
                .roles
                .iter()
                .map(|r| {
                    r.role.len()
                        + 8
                        + match &r.scope {
                            wit::RoleScope::AllOpenProjects => 0,
                            wit::RoleScope::Project(p) => p.len(),
                        }
                })
                .sum::<usize>()
    }
}

impl OutputSize for wit::Verdict {
    fn output_size(&self) -> usize {
        match self {
            wit::Verdict::Keep(r) | wit::Verdict::Disable(r) => r.len(),
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn name(what: &str, s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("returned an empty {what}"));
    }
    if has_control(t) {
        return Err(format!("returned a {what} with control characters: {t:?}"));
    }
    Ok(t.to_string())
}

fn optional(what: &str, s: Option<String>) -> Result<Option<String>, String> {
    match s {
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => name(what, &v).map(Some),
        None => Ok(None),
    }
}

pub fn decision_back(d: wit::UserDecision) -> Result<UserDecision, String> {
    Ok(match d {
        wit::UserDecision::Sync(u) => UserDecision::Sync(UserFields {
            username: name("username", &u.username)?,
            email: optional("email", u.email)?,
            first_name: optional("first name", u.first_name)?,
            last_name: optional("last name", u.last_name)?,
        }),
        wit::UserDecision::Skip(why) => UserDecision::Skip(why),
    })
}

pub fn access_back(a: wit::Access) -> Result<Access, String> {
    let mut out = Access::default();
    for g in a.groups {
        out.groups.insert(name("group name", &g)?);
    }
    for r in a.roles {
        out.roles.insert(RoleGrant {
            role: name("security role name", &r.role)?,
            scope: match r.scope {
                wit::RoleScope::AllOpenProjects => RoleScope::AllOpenProjects,
                wit::RoleScope::Project(p) => RoleScope::Project(name("project name", &p)?),
            },
        });
    }
    Ok(out)
}

pub fn verdict_back(v: wit::Verdict) -> Result<Verdict, String> {
    Ok(match v {
        wit::Verdict::Keep(r) => Verdict::Keep(r),
        wit::Verdict::Disable(r) => Verdict::Disable(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_answers_are_refused() {
        let bad = wit::UserDecision::Sync(wit::UserFields {
            username: "  ".into(),
            email: None,
            first_name: None,
            last_name: None,
        });
        assert_eq!(
            decision_back(bad).unwrap_err(),
            "returned an empty username"
        );
        let bad = wit::Access {
            groups: vec!["a\u{0}b".into()],
            roles: vec![],
        };
        assert!(access_back(bad).unwrap_err().contains("control characters"));
        let ok = wit::Access {
            groups: vec![" Comp ".into(), "Comp".into()],
            roles: vec![wit::RoleGrant {
                role: "Artist".into(),
                scope: wit::RoleScope::Project("p1".into()),
            }],
        };
        let back = access_back(ok.clone()).unwrap();
        assert_eq!(back.groups.len(), 1);
        assert_eq!(access(&back).roles, ok.roles);
    }
}
