//! The unit of a plan: one change to ftrack, with everything `apply` needs to carry it out
//! and the reason a person needs to trust it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

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
    /// User fields set by create/update/enable/disable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub kind: OperationKind,
    /// The membership to remove, or the id chosen for one being added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_id: Option<String>,
    /// ldap2ftrack metadata on the user: key → change (`to: null` deletes it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Which rule decided this, and the LDAP value behind it.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// For grant/revoke: `all open projects`, a project name, or absent for the whole role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub target: String,
    /// The ftrack user (existing, or the id chosen for a user being created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Operation {
    pub fn new(
        kind: OperationKind,
        target: impl Into<String>,
        reason: impl Into<String>,
    ) -> Operation {
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
            changes: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Records a user field change.
    pub fn set(&mut self, field: &str, from: Option<String>, to: Option<String>) {
        self.changes.insert(field.to_string(), Change { from, to });
    }

    /// Records a change of ldap2ftrack metadata on the user (`to: None` deletes the key).
    pub fn set_metadata(&mut self, key: &str, from: Option<String>, to: Option<String>) {
        self.metadata.insert(key.to_string(), Change { from, to });
    }

    /// The sort key that makes plans deterministic.
    pub fn sort_key(&self) -> (OperationKind, String, String, String, String) {
        (
            self.kind,
            self.target.to_lowercase(),
            self.group.clone().unwrap_or_default(),
            self.role.clone().unwrap_or_default(),
            self.scope.clone().unwrap_or_default(),
        )
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
