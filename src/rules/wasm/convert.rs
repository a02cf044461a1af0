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
use arcstr::ArcStr;

/// The entry as the module sees it (only the attributes and groups it said it reads),
/// borrowed from the host's entry: lowering copies the strings into the module's memory
/// once, so nothing is cloned on the way.
pub struct EntryView<'a> {
    dn: &'a str,
    stable_id: Option<&'a str>,
    disabled: bool,
    names: Vec<&'a str>,
    values: Vec<Vec<&'a str>>,
    groups: Vec<wit::GroupRef<'a>>,
}

impl<'a> EntryView<'a> {
    pub fn new(e: &'a RuleEntry, reads: &wit::EntryFields) -> EntryView<'a> {
        let wanted = |name: &str| {
            reads
                .attributes
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        };
        let (names, values) = e
            .attributes
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(name, values)| (name.as_str(), values.iter().map(String::as_str).collect()))
            .unzip();
        EntryView {
            dn: &e.dn,
            stable_id: e.stable_id.as_deref(),
            disabled: e.disabled,
            names,
            values,
            groups: if reads.groups {
                e.groups
                    .iter()
                    .map(|g: &GroupRef| wit::GroupRef {
                        dn: &g.dn,
                        name: &g.name,
                        direct: g.direct,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The attribute records, to be borrowed by [`EntryView::lower`].
    pub fn attributes(&self) -> Vec<wit::Attribute<'_>> {
        self.names
            .iter()
            .zip(&self.values)
            .map(|(name, values)| wit::Attribute {
                name,
                values: values.as_slice(),
            })
            .collect()
    }

    pub fn lower<'b>(&'b self, attributes: &'b [wit::Attribute<'b>]) -> wit::LdapEntry<'b> {
        wit::LdapEntry {
            dn: self.dn,
            stable_id: self.stable_id,
            disabled: self.disabled,
            attributes,
            groups: &self.groups,
        }
    }
}

pub fn user_fields(u: &UserFields) -> wit::UserFieldsParam<'_> {
    wit::UserFieldsParam {
        username: &u.username,
        email: u.email.as_deref(),
        first_name: u.first_name.as_deref(),
        last_name: u.last_name.as_deref(),
    }
}

pub fn decision(d: &UserDecision) -> wit::UserDecisionParam<'_> {
    match d {
        UserDecision::Sync(u) => wit::UserDecisionParam::Sync(user_fields(u)),
        UserDecision::Skip(why) => wit::UserDecisionParam::Skip(why),
    }
}

/// Group names and role grants of an access proposal, to be borrowed by [`access`].
pub fn access_parts(a: &Access) -> (Vec<&str>, Vec<wit::RoleGrantParam<'_>>) {
    (
        a.groups.iter().map(ArcStr::as_str).collect(),
        a.roles
            .iter()
            .map(|r| wit::RoleGrantParam {
                role: &r.role,
                scope: match &r.scope {
                    RoleScope::AllOpenProjects => wit::RoleScopeParam::AllOpenProjects,
                    RoleScope::Project(p) => wit::RoleScopeParam::Project(p),
                },
            })
            .collect(),
    )
}

pub fn access<'a>(
    groups: &'a [&'a str],
    roles: &'a [wit::RoleGrantParam<'a>],
) -> wit::AccessParam<'a> {
    wit::AccessParam { groups, roles }
}

pub fn departed<'a>(
    d: &'a DepartedUser,
    entry: Option<wit::LdapEntry<'a>>,
) -> wit::DepartedUser<'a> {
    wit::DepartedUser {
        username: &d.username,
        email: d.email.as_deref(),
        ldap_disabled: d.ldap_disabled,
        missing_since: d.missing_since.as_deref(),
        today: &d.today,
        entry,
    }
}

pub fn verdict(v: &Verdict) -> wit::VerdictParam<'_> {
    match v {
        Verdict::Keep(r) => wit::VerdictParam::Keep(r),
        Verdict::Disable(r) => wit::VerdictParam::Disable(r),
    }
}

/// Bytes of text in a module's answer, for the output cap.
pub trait OutputSize {
    fn output_size(&self) -> usize;
}

impl OutputSize for wit::UserDecisionResult {
    fn output_size(&self) -> usize {
        match self {
            wit::UserDecisionResult::Sync(u) => {
                u.username.len()
                    + [&u.email, &u.first_name, &u.last_name]
                        .iter()
                        .map(|s| s.as_ref().map_or(0, String::len))
                        .sum::<usize>()
            }
            wit::UserDecisionResult::Skip(why) => why.len(),
        }
    }
}

impl OutputSize for wit::AccessResult {
    fn output_size(&self) -> usize {
        self.groups.iter().map(|g| g.len() + 8).sum::<usize>()
            + self
                .roles
                .iter()
                .map(|r| {
                    r.role.len()
                        + 8
                        + match &r.scope {
                            wit::RoleScopeResult::AllOpenProjects => 0,
                            wit::RoleScopeResult::Project(p) => p.len(),
                        }
                })
                .sum::<usize>()
    }
}

impl OutputSize for wit::VerdictResult {
    fn output_size(&self) -> usize {
        match self {
            wit::VerdictResult::Keep(r) | wit::VerdictResult::Disable(r) => r.len(),
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Characters a module must not send to a terminal, a plan or a journal as they are:
/// control characters (ESC starts the escape sequences that move the cursor, rewrite
/// lines or set a window title; CR overwrites what was shown) and the bidirectional
/// overrides that make text read other than it is.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Free text from a module (a reason, a log line, a rejection), with every unsafe
/// character written out as an escape (`\u{1b}`), so it shows what the module sent and
/// does nothing. Reuses the string when it is clean.
pub fn clean_text(s: String) -> String {
    if !s.chars().any(unsafe_char) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A non-empty name without control characters, trimmed (reusing the string when it is).
fn name(what: &str, s: String) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("returned an empty {what}"));
    }
    if has_control(t) {
        return Err(format!("returned a {what} with control characters: {t:?}"));
    }
    Ok(if t.len() == s.len() { s } else { t.to_string() })
}

fn optional(what: &str, s: Option<String>) -> Result<Option<String>, String> {
    match s {
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => name(what, v).map(Some),
        None => Ok(None),
    }
}

pub fn decision_back(d: wit::UserDecisionResult) -> Result<UserDecision, String> {
    Ok(match d {
        wit::UserDecisionResult::Sync(u) => UserDecision::Sync(UserFields {
            username: name("username", u.username)?,
            email: optional("email", u.email)?,
            first_name: optional("first name", u.first_name)?,
            last_name: optional("last name", u.last_name)?,
        }),
        wit::UserDecisionResult::Skip(why) => UserDecision::Skip(clean_text(why)),
    })
}

pub fn access_back(a: wit::AccessResult) -> Result<Access, String> {
    let mut out = Access::default();
    for g in a.groups {
        out.groups.insert(name("group name", g)?.into());
    }
    for r in a.roles {
        out.roles.insert(RoleGrant {
            role: name("security role name", r.role)?.into(),
            scope: match r.scope {
                wit::RoleScopeResult::AllOpenProjects => RoleScope::AllOpenProjects,
                wit::RoleScopeResult::Project(p) => {
                    RoleScope::Project(name("project name", p)?.into())
                }
            },
        });
    }
    Ok(out)
}

pub fn verdict_back(v: wit::VerdictResult) -> Result<Verdict, String> {
    Ok(match v {
        wit::VerdictResult::Keep(r) => Verdict::Keep(clean_text(r)),
        wit::VerdictResult::Disable(r) => Verdict::Disable(clean_text(r)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_module_reads_crosses() {
        let e = RuleEntry {
            dn: "uid=a,dc=x".into(),
            stable_id: None,
            disabled: false,
            attributes: vec![
                ("UID".into(), vec!["a".into()]),
                ("memberOf".into(), vec!["cn=g,dc=x".into()]),
            ],
            groups: vec![GroupRef {
                dn: "cn=g,dc=x".into(),
                name: "g".into(),
                direct: true,
            }],
        };
        let all = EntryView::new(
            &e,
            &wit::EntryFields {
                attributes: None,
                groups: true,
            },
        );
        let attrs = all.attributes();
        let lowered = all.lower(&attrs);
        assert_eq!((lowered.attributes.len(), lowered.groups.len()), (2, 1));
        let some = EntryView::new(
            &e,
            &wit::EntryFields {
                attributes: Some(vec!["uid".into()]),
                groups: false,
            },
        );
        let attrs = some.attributes();
        let lowered = some.lower(&attrs);
        assert_eq!(lowered.attributes[0].name, "UID");
        assert_eq!(lowered.attributes[0].values, ["a"]);
        assert_eq!((lowered.attributes.len(), lowered.groups.len()), (1, 0));
    }

    #[test]
    fn text_from_a_module_is_made_harmless() {
        assert_eq!(clean_text("plain text".into()), "plain text");
        assert_eq!(
            clean_text("\u{1b}]0;owned\u{7}red\u{1b}[31m\r\nx".into()),
            "\\u{1b}]0;owned\\u{7}red\\u{1b}[31m\\u{d}\\u{a}x"
        );
        assert_eq!(
            clean_text("a\u{202e}b\u{9b}c".into()),
            "a\\u{202e}b\\u{9b}c"
        );
        let skip = wit::UserDecisionResult::Skip("gone\u{1b}[2K".into());
        assert_eq!(
            decision_back(skip).unwrap(),
            UserDecision::Skip("gone\\u{1b}[2K".into())
        );
        let keep = verdict_back(wit::VerdictResult::Keep("\u{8}\u{8}ok".into())).unwrap();
        assert_eq!(keep, Verdict::Keep("\\u{8}\\u{8}ok".into()));
    }

    #[test]
    fn malformed_answers_are_refused() {
        let bad = wit::UserDecisionResult::Sync(wit::UserFieldsResult {
            username: "  ".into(),
            email: None,
            first_name: None,
            last_name: None,
        });
        assert_eq!(
            decision_back(bad).unwrap_err(),
            "returned an empty username"
        );
        let bad = wit::AccessResult {
            groups: vec!["a\u{0}b".into()],
            roles: vec![],
        };
        assert!(access_back(bad).unwrap_err().contains("control characters"));
        let ok = wit::AccessResult {
            groups: vec![" Comp ".into(), "Comp".into()],
            roles: vec![wit::RoleGrantResult {
                role: "Artist".into(),
                scope: wit::RoleScopeResult::Project("p1".into()),
            }],
        };
        let back = access_back(ok).unwrap();
        assert_eq!(back.groups.len(), 1);
        let (groups, roles) = access_parts(&back);
        assert_eq!(groups, ["Comp"]);
        assert_eq!(roles[0].role, "Artist");
    }
}
