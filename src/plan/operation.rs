//! The unit of a plan: one change to ftrack, with everything `apply` needs to carry it out
//! and the reason a person needs to trust it.

use crate::ftrack::row_id::RowId;
use litemap::LiteMap;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A name or id in an operation: shared, not copied, between the operations that carry it
/// (a group's name and id, a user's id, a reason worded once per LDAP group are each in
/// thousands of operations of a first run). A thin pointer (8 bytes, its length in the
/// allocation), as an operation has ten of them and a first run half a million operations.
pub type Name = arcstr::ArcStr;

/// A user field or metadata key: nearly always one of a few literals, so not allocated.
pub type FieldName = std::borrow::Cow<'static, str>;

/// The kinds of change, in the order a plan applies them: groups exist before members are
/// added, users exist before they are granted anything, removals come after additions, and
/// disabling comes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    CreateGroup,
    CreateUser,
    UpdateUser,
    EnableUser,
    AddMembership,
    GrantRole,
    RemoveMembership,
    RevokeRole,
    DisableUser,
}

impl OperationKind {
    pub const ALL: [OperationKind; 9] = [
        OperationKind::CreateGroup,
        OperationKind::CreateUser,
        OperationKind::UpdateUser,
        OperationKind::EnableUser,
        OperationKind::AddMembership,
        OperationKind::GrantRole,
        OperationKind::RemoveMembership,
        OperationKind::RevokeRole,
        OperationKind::DisableUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::CreateGroup => "create_group",
            OperationKind::CreateUser => "create_user",
            OperationKind::UpdateUser => "update_user",
            OperationKind::EnableUser => "enable_user",
            OperationKind::AddMembership => "add_membership",
            OperationKind::GrantRole => "grant_role",
            OperationKind::RemoveMembership => "remove_membership",
            OperationKind::RevokeRole => "revoke_role",
            OperationKind::DisableUser => "disable_user",
        }
    }
}

/// Inserts into a field map, which starts with room for one: most operations change one
/// field or one metadata key, and a vector's first growth makes room for four (a first
/// run's 100,000 anchors alone left 21 MB unused that way).
fn insert_sized(map: &mut LiteMap<FieldName, Change>, key: FieldName, change: Change) {
    if map.is_empty() {
        *map = LiteMap::with_capacity(1);
    }
    map.insert(key, change);
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field's old and new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One planned change. `target` is the username (or group name for `create_group`).
///
/// The fields are in alphabetical order on purpose: the plan document is streamed straight
/// from this struct, and its keys have always been sorted (`plan --output json` is read by
/// programs and diffed by people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// For a grant: the user does not hold the role yet, so apply adds it
    /// (`add_user_security_role`) before widening it to the scope.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub add_role: bool,
    /// User fields set by create/update/enable/disable, by field name.
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    pub changes: LiteMap<FieldName, Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Name>,
    pub kind: OperationKind,
    /// The membership to remove, or the id chosen for one being added. A [`RowId`], not a
    /// shared name: each is distinct, and a first run of 100,000 users plans 315,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_id: Option<RowId>,
    /// ldap2ftrack metadata on the user: key → change (`to: null` deletes it).
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    pub metadata: LiteMap<FieldName, Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Name>,
    /// Which rule decided this, and the LDAP value behind it.
    pub reason: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<Name>,
    /// For grant/revoke: `all open projects`, a project name, or absent for the whole role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Name>,
    pub target: Name,
    /// The ftrack user (existing, or the id chosen for a user being created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Name>,
}

impl Operation {
    pub fn new(kind: OperationKind, target: impl Into<Name>, reason: impl Into<Name>) -> Operation {
        Operation {
            kind,
            target: target.into(),
            reason: reason.into(),
            user_id: None,
            group: None,
            group_id: None,
            membership_id: None,
            role: None,
            role_id: None,
            scope: None,
            project_id: None,
            add_role: false,
            changes: LiteMap::new(),
            metadata: LiteMap::new(),
        }
    }

    /// Records a user field change.
    pub fn set(&mut self, field: impl Into<FieldName>, from: Option<String>, to: Option<String>) {
        insert_sized(&mut self.changes, field.into(), Change { from, to });
    }

    /// Records a change of ldap2ftrack metadata on the user (`to: None` deletes the key).
    pub fn set_metadata(
        &mut self,
        key: impl Into<FieldName>,
        from: Option<String>,
        to: Option<String>,
    ) {
        insert_sized(&mut self.metadata, key.into(), Change { from, to });
    }

    /// The order that makes plans deterministic: kind, then the target without regard to
    /// case, then group, role and scope. Compared in place: a cached key per operation cost
    /// 70 MB for a first run of 100,000 users.
    pub fn plan_order(&self, other: &Operation) -> Ordering {
        self.kind
            .cmp(&other.kind)
            .then_with(|| lowercase_cmp(&self.target, &other.target))
            .then_with(|| or_empty(&self.group).cmp(or_empty(&other.group)))
            .then_with(|| or_empty(&self.role).cmp(or_empty(&other.role)))
            .then_with(|| or_empty(&self.scope).cmp(or_empty(&other.scope)))
    }

    /// One line of the human diff.
    pub fn summary(&self) -> String {
        let scope = match &self.scope {
            Some(s) => format!(" on {s}"),
            None => String::new(),
        };
        match self.kind {
            OperationKind::CreateGroup => format!("+ group {}", self.target),
            OperationKind::CreateUser => format!("+ user {}", self.target),
            OperationKind::UpdateUser => format!("~ user {}", self.target),
            OperationKind::EnableUser => format!("~ user {}: enable", self.target),
            OperationKind::DisableUser => format!("- user {}: disable", self.target),
            OperationKind::AddMembership => format!(
                "+ {} in group {}",
                self.target,
                self.group.as_deref().unwrap_or("?")
            ),
            OperationKind::RemoveMembership => format!(
                "- {} from group {}",
                self.target,
                self.group.as_deref().unwrap_or("?")
            ),
            OperationKind::GrantRole => format!(
                "+ {} role {}{scope}",
                self.target,
                self.role.as_deref().unwrap_or("?")
            ),
            OperationKind::RevokeRole => format!(
                "- {} role {}{}",
                self.target,
                self.role.as_deref().unwrap_or("?"),
                if self.scope.is_none() {
                    " (entirely)".to_string()
                } else {
                    scope
                }
            ),
        }
    }
}

/// An absent name sorts as an empty one.
fn or_empty(name: &Option<Name>) -> &str {
    name.as_deref().unwrap_or("")
}

/// `a.to_lowercase().cmp(&b.to_lowercase())`, without allocating when both are ASCII (the
/// usual username).
fn lowercase_cmp(a: &str, b: &str) -> Ordering {
    // The same shared name: a user's operations all carry one.
    if std::ptr::eq(a, b) {
        return Ordering::Equal;
    }
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.to_lowercase().cmp(&b.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_order_compares_targets_as_their_lower_case_would() {
        let names = [
            "Ana",
            "ana",
            "Zoë",
            "zoe",
            "ÉMILE",
            "emile",
            "b",
            "B_",
            "ΣΊΣΥΦΟΣ",
            "σίσυφος",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    lowercase_cmp(a, b),
                    a.to_lowercase().cmp(&b.to_lowercase()),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn kinds_are_numbered_in_plan_order() {
        // The diff keeps a list per kind, indexed by `kind as usize`.
        for (i, kind) in OperationKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind}");
        }
        assert!(OperationKind::ALL.is_sorted());
    }

    #[test]
    fn plan_order_is_kind_then_target_then_group() {
        let op = |kind, target: &str, group: Option<&str>| {
            let mut op = Operation::new(kind, target, "");
            op.group = group.map(Name::from);
            op
        };
        let create = op(OperationKind::CreateUser, "zed", None);
        let add_a = op(OperationKind::AddMembership, "Ann", Some("B"));
        let add_b = op(OperationKind::AddMembership, "ann", Some("A"));
        assert_eq!(create.plan_order(&add_a), Ordering::Less);
        assert_eq!(add_b.plan_order(&add_a), Ordering::Less);
        assert_eq!(add_a.plan_order(&add_a), Ordering::Equal);
    }
}
