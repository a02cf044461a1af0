//! Rules: what ftrack should look like for each directory user, decided by a pipeline of
//! stages — the built-in `[mappings]`/`[group_mappings]` stage first, then each WebAssembly
//! rule module in `sync.toml` order.
//!
//! Every stage sees the entry and the previous stage's proposal and returns a new proposal.
//! These types are the host-side mirror of the WIT contract in `rules-sdk/wit/`; the
//! pipeline ([`pipeline`]) records which stage changed what, so every planned operation can
//! name the rule and the LDAP value behind it.

pub mod attributes;
pub mod bounds;
pub mod budget;
pub mod builtin;
pub mod fetch;
pub mod pipeline;
pub mod registry;
pub mod sorted_set;
pub mod wasm;

use arcstr::ArcStr;
use sorted_set::SortedSet;
use std::fmt;

/// One directory user as rules see it: text attributes only. Binary values are handed over
/// base64-encoded under `<name>;base64`, never as garbage text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    pub dn: String,
    pub stable_id: Option<String>,
    pub disabled: bool,
    pub attributes: Vec<(String, Vec<String>)>,
    /// Flattened groups (direct and nested), sorted by DN.
    pub groups: Vec<GroupRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// Canonical (normalised) DN. Shared, like `name`: each user of a large directory is in
    /// many groups, and copying both texts per user was most of the rules stage's allocation.
    pub dn: ArcStr,
    /// The group's cn.
    pub name: ArcStr,
    /// True when the group lists the user itself (not through a nested group).
    pub direct: bool,
}

impl RuleEntry {
    /// Values of an attribute, name compared case-insensitively.
    pub fn values(&self, name: &str) -> &[String] {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The anchor stored on the entry's ftrack user: its stable id, or its DN when the
    /// directory has none.
    pub fn anchor(&self) -> String {
        crate::directory::snapshot::anchor(self.stable_id.as_deref(), &self.dn)
    }

    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// The most attribute-value bytes an entry may carry into the rules.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// The most values one attribute of a user entry may have.
pub const MAX_VALUES_PER_ATTRIBUTE: usize = 5_000;

impl RuleEntry {
    /// Why this entry is too malformed or too big to evaluate, if it is. Such an entry is
    /// skipped and reported; the run goes on.
    pub fn problem(&self) -> Option<String> {
        let mut bytes = 0;
        for (name, values) in &self.attributes {
            if values.len() > MAX_VALUES_PER_ATTRIBUTE {
                return Some(format!(
                    "attribute `{name}` has {} values, more than the {MAX_VALUES_PER_ATTRIBUTE} a user entry may have; check the entry in the directory",
                    values.len()
                ));
            }
            bytes += values.iter().map(String::len).sum::<usize>();
        }
        (bytes > MAX_ENTRY_BYTES).then(|| {
            format!(
                "the entry carries {} KiB of attribute values, more than the {} KiB a rule may be given; check the entry in the directory",
                bytes / 1024,
                MAX_ENTRY_BYTES / 1024
            )
        })
    }
}

/// The ftrack user fields a stage proposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFields {
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// `transform-user`'s answer: sync the user with these fields, or leave the entry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDecision {
    Sync(UserFields),
    Skip(String),
}

/// Where a security role applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleScope {
    AllOpenProjects,
    /// A project, by name.
    Project(ArcStr),
}

impl fmt::Display for RoleScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleScope::AllOpenProjects => f.write_str("all open projects"),
            RoleScope::Project(p) => write!(f, "project {p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleGrant {
    pub role: ArcStr,
    pub scope: RoleScope,
}

/// One thing the rules proposed for a user, as a key for the reason behind it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasonKey {
    /// A user field: `username`, `email`, `first_name` or `last_name`.
    Field(&'static str),
    /// Membership of an ftrack group.
    Group(ArcStr),
    /// A security role on a scope.
    Role(RoleGrant),
}

/// How `explain` shows a proposal: `email`, `group:Animation`, `role:Artist`,
/// `role:Supervisor@proj_a`.
impl fmt::Display for ReasonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReasonKey::Field(field) => f.write_str(field),
            ReasonKey::Group(group) => write!(f, "group:{group}"),
            ReasonKey::Role(RoleGrant {
                role,
                scope: RoleScope::AllOpenProjects,
            }) => write!(f, "role:{role}"),
            ReasonKey::Role(RoleGrant {
                role,
                scope: RoleScope::Project(p),
            }) => write!(f, "role:{role}@{p}"),
        }
    }
}

/// `map-groups`'s answer: the ftrack groups and security roles the user should have.
///
/// Names are shared (`ArcStr`): the built-in stage proposes the same few names for every user,
/// and a copy each was 14 MB at 100,000 users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub groups: SortedSet<ArcStr>,
    pub roles: SortedSet<RoleGrant>,
}

/// A managed ftrack user that LDAP no longer has, or has disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartedUser {
    pub username: String,
    pub email: Option<String>,
    /// Still in LDAP, but disabled there (otherwise: missing from LDAP).
    pub ldap_disabled: bool,
    /// When the user was first found missing (`YYYY-MM-DD`), from ftrack metadata.
    pub missing_since: Option<String>,
    /// Today (`YYYY-MM-DD`), supplied by the host so rules stay deterministic.
    pub today: String,
    /// The LDAP entry, when the user is still there (disabled).
    pub entry: Option<RuleEntry>,
}

/// `deprovision`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep(String),
    Disable(String),
}

/// How a departed user left, in the words of reasons: disabled in LDAP, or gone from it.
pub fn departure(ldap_disabled: bool) -> &'static str {
    if ldap_disabled {
        "disabled in LDAP"
    } else {
        "no longer in LDAP"
    }
}

impl Verdict {
    /// The verdict before any rule module: what `[deprovision] action` says.
    pub fn initial(user: &DepartedUser, action: crate::config::DeprovisionAction) -> Verdict {
        let why = departure(user.ldap_disabled);
        match action {
            crate::config::DeprovisionAction::Disable => Verdict::Disable(why.to_string()),
            crate::config::DeprovisionAction::Keep => {
                Verdict::Keep(format!("{why}; [deprovision] action = keep"))
            }
        }
    }
}

/// A stage failed on one entry. Names the stage, the hook and the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{stage}` failed in {hook} for {entry}: {message}")]
pub struct RuleError {
    pub stage: String,
    pub hook: &'static str,
    pub entry: String,
    pub message: String,
}

/// What to do when a stage fails on an entry.
pub use crate::config::OnRuleError;

/// One stage of the pipeline. Stages that do not implement a hook return the proposal as is.
/// Hooks take `&mut self`; `Sync` because the diff asks one set of stages for reasons
/// ([`Stage::describe`]) from several threads at once.
pub trait Stage: Send + Sync {
    /// The name used in reasons and errors (module name, or `mappings`).
    fn name(&self) -> &str;

    fn on_error(&self) -> OnRuleError {
        OnRuleError::Abort
    }

    /// The groups and roles this stage may manage; `None` for the studio's own built-in
    /// mappings, which are not bounded.
    fn bounds(&self) -> Option<&crate::config::ModuleBounds> {
        None
    }

    /// The user attributes this stage reads (names case-insensitive); `None`: every
    /// attribute, which is also what a stage that does not say is taken to read. The run asks
    /// LDAP only for what its stages read (see [`attributes`]).
    fn attributes_read(&self) -> Option<&[String]> {
        None
    }

    /// Why this stage may not be called again this run (it used its run budget), if so.
    fn over_budget(&self) -> Option<String> {
        None
    }

    /// Why this stage proposed `what` for this entry: the reason shown with each planned
    /// operation.
    fn describe(&self, entry: &RuleEntry, what: &ReasonKey) -> String {
        let _ = (entry, what);
        format!("rule module `{}`", self.name())
    }

    fn transform_user(
        &mut self,
        entry: &RuleEntry,
        proposal: UserDecision,
    ) -> Result<UserDecision, RuleError> {
        let _ = entry;
        Ok(proposal)
    }

    fn map_groups(
        &mut self,
        entry: &RuleEntry,
        user: &UserFields,
        proposal: Access,
    ) -> Result<Access, RuleError> {
        let _ = (entry, user);
        Ok(proposal)
    }

    fn deprovision(
        &mut self,
        user: &DepartedUser,
        proposal: Verdict,
    ) -> Result<Verdict, RuleError> {
        let _ = user;
        Ok(proposal)
    }
}
