//! The values rules work with: the WIT types under friendly names, with the helpers a rule
//! needs (attribute look-up, group membership, builders). They are the generated types
//! themselves, so nothing is copied between the ABI and the rule.

use crate::bindings::ldap2ftrack::rules::types as wit;

pub use wit::{
    Access, Attribute, ConfigKey, ConfigType, DepartedUser, EntryFields, GroupRef, Hook, LogLevel,
    RoleGrant, RoleScope, UserDecision, UserFields, Verdict,
};

/// One directory user (`ldap-entry` in the WIT).
pub type Entry = wit::LdapEntry;

/// What a module says about itself (`module-metadata` in the WIT).
pub type Metadata = wit::ModuleMetadata;

impl Entry {
    /// A new entry with a DN and nothing else.
    pub fn new(dn: impl Into<String>) -> Entry {
        Entry {
            dn: dn.into(),
            stable_id: None,
            disabled: false,
            attributes: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// All values of an attribute, the name compared case-insensitively.
    pub fn values(&self, name: &str) -> &[String] {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map_or(&[], |a| a.values.as_slice())
    }

    /// The first non-blank value of an attribute, trimmed.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }

    /// The first non-blank value among several attributes, in order (e.g. `displayName`, `cn`).
    pub fn first_of(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.first(n))
    }

    /// True when the attribute has a value equal to `value` (case-insensitively).
    pub fn has_value(&self, name: &str, value: &str) -> bool {
        self.values(name)
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case(value))
    }

    /// True when the user is in the group, directly or nested. `group` is a DN (compared
    /// after normalisation) or a group name (cn, case-insensitive).
    pub fn in_group(&self, group: &str) -> bool {
        self.group(group).is_some()
    }

    /// The group matching `group` (a DN or a cn), if the user is in it.
    pub fn group(&self, group: &str) -> Option<&GroupRef> {
        if group.contains('=') {
            self.groups.iter().find(|g| crate::dn::same(&g.dn, group))
        } else {
            self.groups
                .iter()
                .find(|g| crate::names::same_group(&g.name, group))
        }
    }

    /// The value of the entry's RDN (e.g. `jdoe` for `uid=jdoe,ou=people,dc=example,dc=com`).
    pub fn rdn_value(&self) -> Option<String> {
        crate::dn::rdn_value(&self.dn)
    }
}

impl EntryFields {
    /// Every attribute and the groups: what a module gets unless it says otherwise.
    pub fn all() -> EntryFields {
        EntryFields {
            attributes: None,
            groups: true,
        }
    }

    /// Only these attributes (and no groups until [`EntryFields::with_groups`]).
    pub fn only<I, S>(attributes: I) -> EntryFields
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EntryFields {
            attributes: Some(attributes.into_iter().map(Into::into).collect()),
            groups: false,
        }
    }

    /// Also the user's groups.
    pub fn with_groups(mut self) -> EntryFields {
        self.groups = true;
        self
    }

    /// True when the attribute is among the ones read.
    pub fn includes(&self, attribute: &str) -> bool {
        self.attributes
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(attribute)))
    }

    /// The entry as the host hands it to the module: only these attributes, and groups only
    /// when read. Tests use it (see [`crate::testing::as_passed`]).
    pub fn filter(&self, entry: &Entry) -> Entry {
        Entry {
            dn: entry.dn.clone(),
            stable_id: entry.stable_id.clone(),
            disabled: entry.disabled,
            attributes: entry
                .attributes
                .iter()
                .filter(|a| self.includes(&a.name))
                .cloned()
                .collect(),
            groups: if self.groups {
                entry.groups.clone()
            } else {
                Vec::new()
            },
        }
    }
}

impl Access {
    /// Adds a group unless it is already there (names compared case-insensitively).
    pub fn add_group(&mut self, group: impl Into<String>) {
        let group = group.into();
        if !self.has_group(&group) {
            self.groups.push(group);
        }
    }

    /// Builder form of [`Access::add_group`].
    pub fn with_group(mut self, group: impl Into<String>) -> Access {
        self.add_group(group);
        self
    }

    /// Removes a group (case-insensitively); true when it was there.
    pub fn remove_group(&mut self, group: &str) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| !g.eq_ignore_ascii_case(group));
        before != self.groups.len()
    }

    /// True when the group is in the proposal (case-insensitively).
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g.eq_ignore_ascii_case(group))
    }

    /// Adds a security role grant unless the same grant is already there.
    pub fn add_role(&mut self, role: impl Into<String>, scope: RoleScope) {
        let grant = RoleGrant {
            role: role.into(),
            scope,
        };
        if !self.roles.contains(&grant) {
            self.roles.push(grant);
        }
    }

    /// Builder form of [`Access::add_role`].
    pub fn with_role(mut self, role: impl Into<String>, scope: RoleScope) -> Access {
        self.add_role(role, scope);
        self
    }
}

impl RoleScope {
    /// A project-scoped grant.
    pub fn project(name: impl Into<String>) -> RoleScope {
        RoleScope::Project(name.into())
    }
}

impl UserDecision {
    /// The fields, when the decision is to sync.
    pub fn fields(&self) -> Option<&UserFields> {
        match self {
            UserDecision::Sync(f) => Some(f),
            UserDecision::Skip(_) => None,
        }
    }
}

impl Metadata {
    /// Name, version and description; add configuration keys with [`Metadata::key`].
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Metadata {
        Metadata {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            abi_version: crate::ABI_VERSION.to_string(),
            hooks: Vec::new(),
            config_schema: Vec::new(),
        }
    }

    /// Declares a `[rules.config]` key.
    pub fn key(mut self, key: ConfigKey) -> Metadata {
        self.config_schema.push(key);
        self
    }
}

impl ConfigKey {
    fn of(name: &str, value_type: ConfigType) -> ConfigKey {
        ConfigKey {
            name: name.to_string(),
            value_type,
            default: None,
            description: String::new(),
            required: false,
        }
    }

    /// A string key.
    pub fn string(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::String)
    }

    /// An integer key.
    pub fn integer(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::Integer)
    }

    /// A number key (integers are accepted too).
    pub fn float(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::Float)
    }

    /// A boolean key.
    pub fn boolean(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::Boolean)
    }

    /// A list of strings.
    pub fn string_list(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::StringList)
    }

    /// A table (`[rules.config.NAME]`).
    pub fn table(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::Table)
    }

    /// A list of tables (`[[rules.config.NAME]]`).
    pub fn table_list(name: &str) -> ConfigKey {
        ConfigKey::of(name, ConfigType::TableList)
    }

    /// The default, as a JSON/TOML literal: `"text"`, `30`, `true`, `["a", "b"]`.
    pub fn default_value(mut self, literal: &str) -> ConfigKey {
        self.default = Some(literal.to_string());
        self
    }

    /// What the key means, shown by `ldap2ftrack rules inspect`.
    pub fn describe(mut self, description: &str) -> ConfigKey {
        self.description = description.to_string();
        self
    }

    /// The key must be present.
    pub fn required(mut self) -> ConfigKey {
        self.required = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_lookup_is_case_insensitive_and_skips_blanks() {
        let e = crate::testing::entry("uid=a,dc=x")
            .attr("mail", [" ", "A@x.org "])
            .build();
        assert_eq!(e.first("MAIL"), Some("A@x.org"));
        assert_eq!(e.first_of(&["displayName", "mail"]), Some("A@x.org"));
        assert!(e.values("cn").is_empty());
        assert!(e.has_value("mail", "a@x.org"));
    }

    #[test]
    fn group_lookup_by_dn_or_name() {
        let e = crate::testing::entry("uid=a,dc=x")
            .group("cn=Comp Artists,ou=groups,dc=x", false)
            .build();
        assert!(e.in_group("CN=comp artists, OU=Groups, DC=x"));
        assert!(e.in_group("comp  artists"));
        assert!(!e.in_group("lighting"));
        assert!(!e.group("comp artists").unwrap().direct);
    }

    #[test]
    fn access_deduplicates() {
        let mut a = Access::default().with_group("Comp").with_group("comp");
        a.add_role("Artist", RoleScope::AllOpenProjects);
        a.add_role("Artist", RoleScope::AllOpenProjects);
        a.add_role("Artist", RoleScope::project("P1"));
        assert_eq!(a.groups, vec!["Comp"]);
        assert_eq!(a.roles.len(), 2);
        assert!(a.remove_group("COMP"));
        assert!(a.groups.is_empty());
    }
}
