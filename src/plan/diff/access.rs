//! What the user may reach: memberships of managed groups, and security roles on all open
//! projects or named ones — granted the documented way (only PROJECT roles; the role added
//! when the user lacks it), revoked scope by scope, or taken away whole when no wanted scope
//! remains.

use super::matching::Matched;
use super::users::UserId;
use super::{planned_id, planned_uuid, GroupTarget, Planner};
use crate::caseless::lowercase;
use crate::plan::{Name, Operation, OperationKind};
use crate::rules::pipeline::{DesiredUser, Reasons};
use crate::rules::{ReasonKey, RoleGrant, RoleScope};
use arcstr::ArcStr;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

impl<'a> Planner<'a> {
    /// The group the rules name `group`, as operations carry it; a group ftrack lacks is
    /// recorded as one to create. Looked up once per planner: a first run adds 340,000
    /// memberships of a few thousand groups.
    fn group_target(&mut self, group: &ArcStr) -> GroupTarget<'a> {
        if let Some(known) = self.group_targets.get(group) {
            return known.clone();
        }
        let target = match self.index.groups_by_name.get(lowercase(group).as_ref()) {
            Some(&(id, name)) => GroupTarget {
                existing: Some(id),
                id: self.names.get(id),
                name: self.names.get(name),
            },
            None => {
                let id = self
                    .created_groups
                    .entry(group.to_string())
                    .or_insert_with(|| planned_id("group", &group.to_lowercase()));
                GroupTarget {
                    existing: None,
                    id: self.names.get(id),
                    name: self.names.get(group),
                }
            }
        };
        self.group_targets.insert(group.clone(), target.clone());
        target
    }

    /// The memberships and role grants to add and remove for one user. `user_id` is its
    /// ftrack id (planned when it is being created).
    pub(super) fn access(&mut self, matched: &Matched, reasons: &Reasons, user_id: &UserId) {
        let user = matched.user;
        let username = user.fields.username.trim();
        // Interned only when an operation carries them: most users of a run need none.
        let mut target = None::<Name>;
        let mut shared_id = match user_id {
            UserId::Planned(id) => Some(id.clone()),
            UserId::Current(_) => None,
        };
        let user_id = user_id.as_str();
        let mut names = |names: &mut super::Names| {
            (
                target.get_or_insert_with(|| names.get(username)).clone(),
                shared_id.get_or_insert_with(|| names.get(user_id)).clone(),
            )
        };
        let current_id = matched.current.map(|u| u.id.as_str());
        let current_memberships = self.index.memberships_of(current_id);
        // Only groups that exist can be in `current_memberships`, so only their ids are kept.
        let mut wanted_group_ids: Vec<&str> = Vec::with_capacity(user.access.groups.len());
        for group in &user.access.groups {
            let GroupTarget {
                existing,
                id: group_id,
                name: group_name,
            } = self.group_target(group);
            if let Some(id) = existing {
                wanted_group_ids.push(id);
                if current_memberships.clone().any(|m| m.group_id == id) {
                    continue;
                }
            }
            let reason = self
                .names
                .get(&reasons.of(&ReasonKey::Group(group.clone())));
            let (target, shared_id) = names(&mut self.names);
            let mut op = Operation::new(OperationKind::AddMembership, target, reason);
            op.user_id = Some(shared_id);
            op.membership_id = Some(planned_uuid("membership", &[user_id, "/", &group_id]).into());
            op.group = Some(group_name);
            op.group_id = Some(group_id);
            self.ops.push(Box::new(op));
        }
        for membership in current_memberships {
            let group_id = membership.group_id.as_str();
            if !self.managed.group_ids.contains(group_id) || wanted_group_ids.contains(&group_id) {
                continue;
            }
            let name = self
                .index
                .group_names
                .get(group_id)
                .copied()
                .unwrap_or_default();
            let (target, shared_id) = names(&mut self.names);
            let mut op = Operation::new(
                OperationKind::RemoveMembership,
                target,
                format!(
                    "no LDAP group of {} maps to ftrack group {name}",
                    user.entry.dn
                ),
            );
            op.user_id = Some(shared_id);
            op.group = Some(self.names.get(name));
            op.group_id = Some(self.names.get(group_id));
            op.membership_id = Some(membership.id.clone());
            self.ops.push(Box::new(op));
        }

        // Roles: wanted scopes per role, compared with the current grant of each managed role.
        let mut wanted: BTreeMap<Cow<str>, BTreeSet<&RoleScope>> = BTreeMap::new();
        for grant in &user.access.roles {
            wanted
                .entry(lowercase(&grant.role))
                .or_default()
                .insert(&grant.scope);
        }
        // Roles this user is being granted a scope of, in this plan.
        let mut granting: Vec<&str> = Vec::new();
        for (role_lower, scopes) in &wanted {
            let written = grant_role_name(user, role_lower);
            let Some(&(role_id, role_name)) = self.index.roles_by_name.get(role_lower.as_ref())
            else {
                self.notes.add(format!("missing role {role_lower}"), username, || {
                    format!(
                        "security role `{written}` does not exist in ftrack; create it there (type PROJECT) or stop naming it in the rules (named by {})",
                        reasons.of(&first_role_proposal(user, role_lower))
                    )
                });
                continue;
            };
            let role_type = self.index.role_types.get(role_id).copied().flatten();
            if !is_project_role(role_type) {
                self.notes.add(format!("refused role {role_id}"), username, || {
                    format!(
                        "security role `{role_name}` has type {}: only PROJECT roles are granted per project, so it is not granted; remove it from the rules (named by {})",
                        role_type.unwrap_or("(none reported)"),
                        reasons.of(&first_role_proposal(user, role_lower))
                    )
                });
                continue;
            }
            let current = current_id.and_then(|uid| self.index.grant(uid, role_id));
            let (all_now, projects_now): (bool, &[String]) = current.map_or((false, &[]), |g| {
                (g.is_all_open_projects, g.project_ids.as_slice())
            });
            for &scope in scopes {
                let (has, project_id, scope_text) = match scope {
                    RoleScope::AllOpenProjects => (all_now, None, "all open projects".to_string()),
                    RoleScope::Project(p) => {
                        match self.index.projects_by_name.get(lowercase(p).as_ref()) {
                            Some(&pid) => (
                                projects_now.iter().any(|now| now == pid),
                                Some(pid),
                                p.to_string(),
                            ),
                            None => {
                                self.notes.add(format!("missing project {p} {role_id}"), username, || {
                                format!(
                                    "project `{p}` does not exist in ftrack; grants of {role_name} on it are skipped"
                                )
                            });
                                continue;
                            }
                        }
                    }
                };
                if has {
                    continue;
                }
                let reason = reasons.of(&ReasonKey::Role(RoleGrant {
                    role: written.clone(),
                    scope: scope.clone(),
                }));
                let reason = self.names.get(&reason);
                let (target, shared_id) = names(&mut self.names);
                let mut op = Operation::new(OperationKind::GrantRole, target, reason);
                op.user_id = Some(shared_id.clone());
                op.role = Some(self.names.get(role_name));
                let role_id_name = self.names.get(role_id);
                op.role_id = Some(role_id_name.clone());
                op.scope = Some(self.names.get(&scope_text));
                op.project_id = project_id.map(|p| self.names.get(p));
                self.ops.push(Box::new(op));
                granting.push(role_id);
                if current.is_none() {
                    self.lacking.insert((shared_id, role_id_name));
                }
            }
        }
        let Some(uid) = current_id else {
            return;
        };
        for &role_id in &self.managed.role_ids {
            let Some(grant) = self.index.grant(uid, role_id) else {
                continue;
            };
            let (all_now, projects_now) = (grant.is_all_open_projects, &grant.project_ids);
            let role_name = self
                .index
                .role_names
                .get(role_id)
                .copied()
                .unwrap_or_default();
            let scopes = wanted.get(lowercase(role_name).as_ref());
            let revoke = |scope: Option<String>, project_id: Option<String>| {
                let mut op = Operation::new(
                    OperationKind::RevokeRole,
                    username,
                    format!(
                        "no LDAP group of {} grants {role_name} there",
                        user.entry.dn
                    ),
                );
                op.user_id = Some(uid.into());
                op.role = Some(role_name.into());
                op.role_id = Some(role_id.into());
                op.scope = scope.map(Name::from);
                op.project_id = project_id.map(Name::from);
                Box::new(op)
            };
            let Some(scopes) = scopes else {
                self.ops.push(revoke(None, None));
                continue;
            };
            let revoke_all_open = all_now && !scopes.contains(&RoleScope::AllOpenProjects);
            let unwanted: Vec<(&str, &str)> = projects_now
                .iter()
                .map(|pid| {
                    (
                        pid.as_str(),
                        self.index
                            .project_names
                            .get(pid.as_str())
                            .copied()
                            .unwrap_or(pid),
                    )
                })
                .filter(|(_, name)| {
                    !scopes
                        .iter()
                        .any(|s| matches!(s, RoleScope::Project(p) if p.eq_ignore_ascii_case(name)))
                })
                .collect();
            let keeps_a_scope = (all_now && !revoke_all_open)
                || unwanted.len() < projects_now.len()
                || granting.contains(&role_id);
            if !keeps_a_scope {
                // Scope by scope would leave the role granted on nothing (an empty grant that no
                // later run removes): the rules want it only where ftrack has no such project.
                self.ops.push(revoke(None, None));
                continue;
            }
            if revoke_all_open {
                self.ops
                    .push(revoke(Some("all open projects".into()), None));
            }
            for (pid, name) in unwanted {
                self.ops
                    .push(revoke(Some(name.to_string()), Some(pid.to_string())));
            }
        }
    }
}

/// Whether a role of this `SecurityRole.type` may be granted per project: only `PROJECT`
/// roles are (API roles belong to global API keys, ASSIGNED ones to assigned tasks).
pub(super) fn is_project_role(role_type: Option<&str>) -> bool {
    role_type.is_some_and(|t| t.eq_ignore_ascii_case("PROJECT"))
}

/// The user's first grant of a role (any scope), for naming the rule that asked for it.
fn first_role_proposal(user: &DesiredUser, role_lower: &str) -> ReasonKey {
    let grant = user
        .access
        .roles
        .iter()
        .find(|g| lowercase(&g.role) == role_lower);
    ReasonKey::Role(grant.cloned().unwrap_or(RoleGrant {
        role: role_lower.into(),
        scope: RoleScope::AllOpenProjects,
    }))
}

/// The role name as the rules wrote it (for the reason lookup when ftrack's case differs).
fn grant_role_name(user: &DesiredUser, role_lower: &str) -> ArcStr {
    user.access
        .roles
        .iter()
        .find(|g| lowercase(&g.role) == role_lower)
        .map(|g| g.role.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_project_roles_are_granted() {
        assert!(is_project_role(Some("PROJECT")));
        assert!(is_project_role(Some("project")));
        assert!(!is_project_role(Some("API")));
        assert!(!is_project_role(Some("ASSIGNED")));
        assert!(!is_project_role(None));
    }
}
