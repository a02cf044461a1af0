//! The built-in first stage: `[mappings]` (LDAP attributes → ftrack user fields) and
//! `[group_mappings]` (LDAP groups → ftrack groups and security roles), straight from
//! `sync.toml`, so the common case needs no rule module at all.

use super::{
    Access, GroupRef, ReasonKey, RoleGrant, RoleScope, RuleEntry, RuleError, Stage, UserDecision,
    UserFields,
};
use crate::config::{AttributeMappings, GroupMapping};
use crate::ldap_syntax::NormalizedDn;
use arcstr::ArcStr;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

pub const STAGE_NAME: &str = "mappings";

pub struct BuiltinStage {
    mappings: AttributeMappings,
    /// Canonical DN or lower-cased cn → the mapping.
    group_mappings: FxHashMap<String, Mapped>,
    /// Whether any key can equal a group's DN (has a `=`): if none, DN lookups are skipped.
    dn_keys: bool,
    /// Each group and role grant the mappings propose → the lookup keys of those proposing
    /// it: a reason looks at the entry's groups that can have one of these keys, not at all.
    proposers: FxHashMap<ReasonKey, Vec<String>>,
    /// The LDAP attributes `[mappings]` names: all this stage reads of an entry (groups
    /// come from the group entries).
    reads: Vec<String>,
}

impl BuiltinStage {
    pub fn new(
        mappings: &AttributeMappings,
        group_mappings: &BTreeMap<String, GroupMapping>,
    ) -> BuiltinStage {
        let group_mappings: FxHashMap<String, Mapped> = group_mappings
            .iter()
            .map(|(key, m)| (lookup_key(key), Mapped::new(key, m)))
            .collect();
        let reads = [
            &mappings.username,
            &mappings.email,
            &mappings.first_name,
            &mappings.last_name,
        ]
        .into_iter()
        .chain(&mappings.name_fallbacks)
        .cloned()
        .collect();
        let mut proposers: FxHashMap<ReasonKey, Vec<String>> = FxHashMap::default();
        for (key, mapped) in &group_mappings {
            let groups = mapped.groups.iter().cloned().map(ReasonKey::Group);
            let roles = mapped.grants.iter().cloned().map(ReasonKey::Role);
            for proposal in groups.chain(roles) {
                proposers.entry(proposal).or_default().push(key.clone());
            }
        }
        BuiltinStage {
            reads,
            mappings: mappings.clone(),
            dn_keys: group_mappings.keys().any(|k| k.contains('=')),
            group_mappings,
            proposers,
        }
    }

    fn mapping_for(&self, group: &GroupRef) -> Option<&Mapped> {
        if self.dn_keys {
            if let Some(found) = self.group_mappings.get(group.dn.as_str()) {
                return Some(found);
            }
        }
        self.group_mappings
            .get(crate::caseless::lowercase(&group.name).as_ref())
    }

    /// Splits a full name ("Jane Q. Doe") into first ("Jane Q.") and last ("Doe") names.
    fn fallback_names(&self, entry: &RuleEntry) -> Option<(String, String)> {
        self.mappings.name_fallbacks.iter().find_map(|attr| {
            let full = entry.first(attr)?;
            let (first, last) = full.rsplit_once(' ').unwrap_or(("", full));
            Some((first.trim().to_string(), last.trim().to_string()))
        })
    }

    /// Why the built-in stage proposed `what` for this entry, with the LDAP value behind it.
    fn reason(&self, entry: &RuleEntry, what: &ReasonKey) -> String {
        let attr_reason = |attr: &str| match entry.first(attr) {
            Some(v) => format!("[mappings] {attr} = {v:?}"),
            None => format!("[mappings] {attr} is empty"),
        };
        match what {
            ReasonKey::Field("username") => attr_reason(&self.mappings.username),
            ReasonKey::Field("email") => attr_reason(&self.mappings.email),
            ReasonKey::Field(field) => {
                let attr = if *field == "first_name" {
                    &self.mappings.first_name
                } else {
                    &self.mappings.last_name
                };
                if entry.first(attr).is_some() {
                    attr_reason(attr)
                } else {
                    let fallback = self
                        .mappings
                        .name_fallbacks
                        .iter()
                        .find(|a| entry.first(a).is_some())
                        .map(String::as_str)
                        .unwrap_or("cn");
                    format!("{} (no {attr})", attr_reason(fallback))
                }
            }
            other => {
                // A group or a role: name the LDAP group(s) that map to it. Only a group
                // whose DN or name is the key of a mapping proposing it can.
                let keys = self.proposers.get(other).map_or(&[][..], Vec::as_slice);
                let mut text = String::new();
                let sources = entry
                    .groups
                    .iter()
                    .filter(|g| keys.iter().any(|key| may_be_keyed(g, key)));
                for g in sources {
                    let Some(Mapped {
                        key, mapping: m, ..
                    }) = self.mapping_for(g)
                    else {
                        continue;
                    };
                    if grants(m, other) {
                        // `[group_mappings] "key" (member of dn[, nested])`, each after a
                        // `; `, put together without `format!`: a first run words 440,000.
                        let via = if g.direct { "" } else { ", nested" };
                        let parts = [
                            if text.is_empty() { "" } else { "; " },
                            "[group_mappings] \"",
                            key,
                            "\" (member of ",
                            &g.dn,
                            via,
                            ")",
                        ];
                        text.reserve(parts.iter().map(|p| p.len()).sum());
                        parts.iter().for_each(|p| text.push_str(p));
                    }
                }
                if text.is_empty() {
                    text.push_str("[group_mappings]");
                }
                text
            }
        }
    }
}

/// Whether `group` can be found under the lookup `key` ([`lookup_key`]): by its DN, or by
/// its name lower-cased. Never false when it can; [`BuiltinStage::mapping_for`] decides.
fn may_be_keyed(group: &GroupRef, key: &str) -> bool {
    let name = group.name.as_str();
    group.dn.as_str() == key
        || if name.is_ascii() {
            name.eq_ignore_ascii_case(key)
        } else {
            crate::caseless::lowercase(name) == key
        }
}

fn grants(m: &GroupMapping, what: &ReasonKey) -> bool {
    match what {
        ReasonKey::Group(group) => m.groups.iter().any(|g| g == group),
        ReasonKey::Role(RoleGrant {
            role,
            scope: RoleScope::AllOpenProjects,
        }) => m.roles.iter().any(|r| r == role),
        ReasonKey::Role(RoleGrant {
            role,
            scope: RoleScope::Project(scope),
        }) => m
            .project_roles
            .get(scope.as_str())
            .is_some_and(|roles| roles.iter().any(|r| r == role)),
        ReasonKey::Field(_) => false,
    }
}

/// A `[group_mappings]` entry, and what it proposes, built once and shared by every user it
/// maps.
struct Mapped {
    /// The key as written.
    key: String,
    mapping: GroupMapping,
    groups: Vec<ArcStr>,
    grants: Vec<RoleGrant>,
}

impl Mapped {
    fn new(key: &str, mapping: &GroupMapping) -> Mapped {
        let everywhere = mapping.roles.iter().map(|role| RoleGrant {
            role: role.as_str().into(),
            scope: RoleScope::AllOpenProjects,
        });
        let per_project = mapping.project_roles.iter().flat_map(|(project, roles)| {
            let project = ArcStr::from(project.as_str());
            roles.iter().map(move |role| RoleGrant {
                role: role.as_str().into(),
                scope: RoleScope::Project(project.clone()),
            })
        });
        Mapped {
            key: key.to_string(),
            groups: mapping.groups.iter().map(|g| g.as_str().into()).collect(),
            grants: everywhere.chain(per_project).collect(),
            mapping: mapping.clone(),
        }
    }
}

/// How a `[group_mappings]` key is looked up: canonical DN when it is a DN, else lower-cased cn.
fn lookup_key(key: &str) -> String {
    if key.contains('=') {
        if let Ok(dn) = NormalizedDn::parse(key) {
            return dn.as_str().to_string();
        }
    }
    key.trim().to_lowercase()
}

impl Stage for BuiltinStage {
    fn name(&self) -> &str {
        STAGE_NAME
    }

    fn describe(&self, entry: &RuleEntry, what: &ReasonKey) -> String {
        self.reason(entry, what)
    }

    fn attributes_read(&self) -> Option<&[String]> {
        Some(&self.reads)
    }

    fn transform_user(
        &mut self,
        entry: &RuleEntry,
        _proposal: UserDecision,
    ) -> Result<UserDecision, RuleError> {
        let Some(username) = entry.first(&self.mappings.username) else {
            if !entry
                .values(&format!("{};base64", self.mappings.username))
                .is_empty()
            {
                return Ok(UserDecision::Skip(format!(
                    "the `{}` attribute is not valid UTF-8 text",
                    self.mappings.username
                )));
            }
            return Ok(UserDecision::Skip(format!(
                "no `{}` attribute to take the username from ([mappings] username)",
                self.mappings.username
            )));
        };
        let mut first_name = entry.first(&self.mappings.first_name).map(str::to_string);
        let mut last_name = entry.first(&self.mappings.last_name).map(str::to_string);
        if first_name.is_none() || last_name.is_none() {
            if let Some((first, last)) = self.fallback_names(entry) {
                first_name = first_name.or((!first.is_empty()).then_some(first));
                last_name = last_name.or((!last.is_empty()).then_some(last));
            }
        }
        Ok(UserDecision::Sync(UserFields {
            username: username.to_string(),
            email: entry.first(&self.mappings.email).map(str::to_string),
            first_name,
            last_name,
        }))
    }

    fn map_groups(
        &mut self,
        entry: &RuleEntry,
        _user: &UserFields,
        mut proposal: Access,
    ) -> Result<Access, RuleError> {
        for group in &entry.groups {
            let Some(mapped) = self.mapping_for(group) else {
                continue;
            };
            proposal.groups.extend(mapped.groups.iter().cloned());
            proposal.roles.extend(mapped.grants.iter().cloned());
        }
        Ok(proposal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attrs: &[(&str, &str)], groups: &[(&str, &str, bool)]) -> RuleEntry {
        RuleEntry {
            dn: "uid=x,dc=example".into(),
            stable_id: None,
            disabled: false,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
            groups: groups
                .iter()
                .map(|(dn, name, direct)| GroupRef {
                    dn: (*dn).into(),
                    name: (*name).into(),
                    direct: *direct,
                })
                .collect(),
        }
    }

    fn stage() -> BuiltinStage {
        let mut gm = BTreeMap::new();
        gm.insert(
            "animators".to_string(),
            GroupMapping {
                groups: vec!["Animation".into()],
                roles: vec!["Artist".into()],
                project_roles: BTreeMap::new(),
            },
        );
        gm.insert(
            "CN=Leads,OU=Groups,DC=Example".to_string(),
            GroupMapping {
                groups: vec!["Leads".into()],
                roles: vec![],
                project_roles: [("proj_a".to_string(), vec!["Supervisor".to_string()])].into(),
            },
        );
        BuiltinStage::new(&AttributeMappings::default(), &gm)
    }

    #[test]
    fn maps_attributes_with_name_fallbacks() {
        let mut s = stage();
        let e = entry(
            &[
                ("uid", "emeka"),
                ("sn", "Okafor"),
                ("displayName", "Emeka N. Okafor"),
                ("mail", " e@x.example "),
            ],
            &[],
        );
        let d = s
            .transform_user(&e, UserDecision::Skip(String::new()))
            .unwrap();
        assert_eq!(
            d,
            UserDecision::Sync(UserFields {
                username: "emeka".into(),
                email: Some("e@x.example".into()),
                first_name: Some("Emeka N.".into()),
                last_name: Some("Okafor".into()),
            })
        );
        assert!(
            s.describe(&e, &ReasonKey::Field("first_name"))
                .contains("displayName"),
            "{}",
            s.describe(&e, &ReasonKey::Field("first_name"))
        );
        assert_eq!(
            s.describe(&e, &ReasonKey::Field("email")),
            "[mappings] mail = \"e@x.example\""
        );
        let none = s
            .transform_user(
                &entry(&[("cn", "x")], &[]),
                UserDecision::Skip(String::new()),
            )
            .unwrap();
        assert!(matches!(none, UserDecision::Skip(r) if r.contains("`uid`")));
    }

    #[test]
    fn maps_groups_by_cn_or_dn_to_groups_and_scoped_roles() {
        let mut s = stage();
        let e = entry(
            &[("uid", "chen")],
            &[
                ("cn=animators,ou=groups,dc=example", "Animators", false),
                ("cn=leads,ou=groups,dc=example", "leads", true),
                ("cn=other,dc=example", "other", true),
            ],
        );
        let a = s
            .map_groups(&e, &UserFields::default(), Access::default())
            .unwrap();
        assert_eq!(
            a.groups.iter().collect::<Vec<_>>(),
            vec!["Animation", "Leads"]
        );
        assert_eq!(
            a.roles.iter().cloned().collect::<Vec<_>>(),
            vec![
                RoleGrant {
                    role: "Artist".into(),
                    scope: RoleScope::AllOpenProjects
                },
                RoleGrant {
                    role: "Supervisor".into(),
                    scope: RoleScope::Project("proj_a".into())
                },
            ]
        );
        let why = s.describe(&e, &ReasonKey::Group("Animation".into()));
        assert!(
            why.contains("\"animators\"") && why.contains("nested"),
            "{why}"
        );
        assert!(s
            .describe(
                &e,
                &ReasonKey::Role(RoleGrant {
                    role: "Supervisor".into(),
                    scope: RoleScope::Project("proj_a".into()),
                }),
            )
            .contains("CN=Leads"));
    }

    #[test]
    fn a_reason_names_each_group_whose_mapping_proposes_it_in_the_entrys_order() {
        let mapping = |groups: &[&str]| GroupMapping {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            roles: vec![],
            project_roles: BTreeMap::new(),
        };
        let gm: BTreeMap<String, GroupMapping> = [
            ("ÉQUIPE Lumière".to_string(), mapping(&["Light"])),
            ("lighters".to_string(), mapping(&["Light"])),
            // This group's DN is a key of its own: its name key is never used for it.
            ("misc".to_string(), mapping(&["Light"])),
            ("cn=misc,ou=g,dc=example".to_string(), mapping(&["Other"])),
        ]
        .into();
        let s = BuiltinStage::new(&AttributeMappings::default(), &gm);
        let e = entry(
            &[("uid", "x")],
            &[
                ("cn=a,ou=g,dc=example", "Lighters", true),
                ("cn=equipe,ou=g,dc=example", "Équipe lumière", false),
                ("cn=misc,ou=g,dc=example", "Misc", true),
            ],
        );
        assert_eq!(
            s.describe(&e, &ReasonKey::Group("Light".into())),
            "[group_mappings] \"lighters\" (member of cn=a,ou=g,dc=example); \
             [group_mappings] \"ÉQUIPE Lumière\" (member of cn=equipe,ou=g,dc=example, nested)"
        );
        assert_eq!(
            s.describe(&e, &ReasonKey::Group("Other".into())),
            "[group_mappings] \"cn=misc,ou=g,dc=example\" (member of cn=misc,ou=g,dc=example)"
        );
        assert_eq!(
            s.describe(&e, &ReasonKey::Group("Nobody maps this".into())),
            "[group_mappings]"
        );
    }
}
