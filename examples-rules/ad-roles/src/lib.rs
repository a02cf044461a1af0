//! `ad-roles`: LDAP (Active Directory) group membership → ftrack groups and security roles,
//! driven entirely by the module's configuration, so one `.wasm` serves every studio. Roles
//! apply to all open projects, or — with `projects` — to the named projects only.
//!
//! ```toml
//! [[rules]]
//! module = "examples-rules/target/wasm32-wasip2/release/ad_roles.wasm"
//! sha256 = "..."
//! [rules.config]
//! direct_only = false           # nested group membership counts too
//! group_prefix = "ftrack-"      # AD group "ftrack-Comp" → ftrack group "Comp"
//! [[rules.config.mappings]]
//! ldap_group = "CN=VFX Leads,OU=Groups,DC=corp,DC=example"   # a DN, or a group name (cn)
//! groups = ["Leads"]
//! roles = ["Supervisor"]
//! projects = ["spring_commercial"]                            # omit: all open projects
//! ```

use ldap2ftrack_rules::prelude::*;

/// One `[[rules.config.mappings]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub ldap_group: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub projects: Vec<String>,
}

pub struct AdRoles {
    mappings: Vec<Mapping>,
    direct_only: bool,
    replace: bool,
    group_prefix: Option<String>,
}

impl AdRoles {
    fn member_of(&self, entry: &Entry, group: &str) -> bool {
        entry
            .group(group)
            .is_some_and(|g| g.direct || !self.direct_only)
    }
}

fn mapping(i: usize, table: &Config) -> Result<Mapping, String> {
    let at = |k: &str| format!("mappings[{i}].{k}");
    let known = ["ldap_group", "groups", "roles", "projects"];
    if let Some(k) = table.values().keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{}` (known: {})",
            at(k),
            known.join(", ")
        ));
    }
    let list = |k: &str| table.string_list(k).map_err(|e| format!("{}: {e}", at(k)));
    let m = Mapping {
        ldap_group: table
            .string("ldap_group")
            .map_err(|e| format!("{}: {e}", at("ldap_group")))?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("`{}` is missing", at("ldap_group")))?,
        groups: list("groups")?,
        roles: list("roles")?,
        projects: list("projects")?,
    };
    if m.groups.is_empty() && m.roles.is_empty() {
        return Err(format!(
            "mappings[{i}] ({}) grants no groups and no roles",
            m.ldap_group
        ));
    }
    if !m.projects.is_empty() && m.roles.is_empty() {
        return Err(format!(
            "mappings[{i}] ({}) lists projects but no roles",
            m.ldap_group
        ));
    }
    Ok(m)
}

ldap2ftrack_rules::export_rules! {
    impl Rules for AdRoles {
        fn metadata() -> Metadata {
            Metadata::new(
                "ad-roles",
                "1.0.0",
                "LDAP group -> ftrack groups and security roles (all open projects or named projects)",
            )
            .key(ConfigKey::table_list("mappings").default_value("[]").describe(
                "[[mappings]] with ldap_group (cn or DN), groups, roles, and optional projects",
            ))
            .key(ConfigKey::boolean("direct_only").default_value("false")
                .describe("Only direct membership counts (not through nested groups)"))
            .key(ConfigKey::boolean("replace").default_value("false")
                .describe("Ignore earlier stages' groups and roles instead of adding to them"))
            .key(ConfigKey::string("group_prefix")
                .describe("LDAP groups named <prefix><name> become ftrack group <name>"))
        }

        fn configure(config: &Config) -> Result<Self, String> {
            let mappings = config
                .table_list("mappings")?
                .iter()
                .enumerate()
                .map(|(i, t)| mapping(i, t))
                .collect::<Result<Vec<_>, _>>()?;
            let group_prefix = config.string("group_prefix")?.filter(|p| !p.is_empty());
            if mappings.is_empty() && group_prefix.is_none() {
                log::warn("no mappings and no group_prefix: this module changes nothing");
            }
            Ok(AdRoles {
                mappings,
                direct_only: config.boolean("direct_only")?.unwrap_or(false),
                replace: config.boolean("replace")?.unwrap_or(false),
                group_prefix,
            })
        }

        fn reads(&self) -> EntryFields {
            // Groups only: no attribute crosses into the module.
            EntryFields::only(Vec::<String>::new()).with_groups()
        }

        fn map_groups(&self, entry: &Entry, _user: &UserFields, proposal: Access) -> Result<Access, String> {
            let mut access = if self.replace { Access::default() } else { proposal };
            for m in self.mappings.iter().filter(|m| self.member_of(entry, &m.ldap_group)) {
                for g in &m.groups {
                    access.add_group(g.as_str());
                }
                for r in &m.roles {
                    if m.projects.is_empty() {
                        access.add_role(r.as_str(), RoleScope::AllOpenProjects);
                    } else {
                        for p in &m.projects {
                            access.add_role(r.as_str(), RoleScope::project(p.as_str()));
                        }
                    }
                }
            }
            if let Some(prefix) = &self.group_prefix {
                for g in entry.groups.iter().filter(|g| g.direct || !self.direct_only) {
                    if let Some(rest) = names::strip_prefix(&g.name, prefix) {
                        let name = names::normalize_group(rest);
                        if !name.is_empty() {
                            access.add_group(name);
                        }
                    }
                }
            }
            Ok(access)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "direct_only": false,
        "group_prefix": "ftrack-",
        "mappings": [
            {"ldap_group": "animators", "groups": ["Animation"], "roles": ["Artist"]},
            {"ldap_group": "CN=Leads,OU=Groups,DC=studio,DC=example", "groups": ["Leads"],
             "roles": ["Supervisor"], "projects": ["spring_commercial"]}
        ]
    }"#;

    fn ada() -> Entry {
        testing::entry("uid=ada,ou=people,dc=studio,dc=example")
            .group("cn=animators,ou=groups,dc=studio,dc=example", true)
            .group("cn=leads,ou=groups,dc=studio,dc=example", false)
            .group("cn=ftrack-Comp  Team,ou=groups,dc=studio,dc=example", true)
            .build()
    }

    #[test]
    fn groups_and_scoped_roles() {
        let rules: AdRoles = testing::configure(CONFIG).unwrap();
        let a = rules
            .map_groups(
                &testing::as_passed(&rules, &ada()),
                &UserFields::default(),
                Access::default().with_group("Everyone"),
            )
            .unwrap();
        assert_eq!(a.groups, ["Everyone", "Animation", "Leads", "Comp Team"]);
        assert_eq!(
            a.roles,
            vec![
                RoleGrant {
                    role: "Artist".into(),
                    scope: RoleScope::AllOpenProjects
                },
                RoleGrant {
                    role: "Supervisor".into(),
                    scope: RoleScope::project("spring_commercial")
                },
            ]
        );
        assert_eq!(testing::hooks_of::<AdRoles>(), vec![Hook::MapGroups]);
    }

    #[test]
    fn direct_only_ignores_nested_groups_and_replace_drops_the_proposal() {
        let json = CONFIG.replace(
            "\"direct_only\": false",
            "\"direct_only\": true, \"replace\": true",
        );
        let rules: AdRoles = testing::configure(&json).unwrap();
        let a = rules
            .map_groups(
                &ada(),
                &UserFields::default(),
                Access::default().with_group("Everyone"),
            )
            .unwrap();
        assert_eq!(a.groups, ["Animation", "Comp Team"]);
        assert_eq!(a.roles.len(), 1);
    }

    #[test]
    fn bad_mappings_are_refused_with_their_position() {
        let e = testing::configure::<AdRoles>(
            r#"{"mappings":[{"ldap_group":"x","groups":["A"]},{"ldap_group":"y"}]}"#,
        )
        .err()
        .unwrap();
        assert!(
            e.contains("mappings[1] (y) grants no groups and no roles"),
            "{e}"
        );
        let e = testing::configure::<AdRoles>(r#"{"mappings":[{"ldap_grop":"x"}]}"#)
            .err()
            .unwrap();
        assert!(e.contains("unknown key `mappings[0].ldap_grop`"), "{e}");
        let e = testing::configure::<AdRoles>(r#"{"mappings":[{"ldap_group":"x","groups":"A"}]}"#)
            .err()
            .unwrap();
        assert!(e.contains("mappings[0].groups"), "{e}");
    }
}
