//! The diff: what must change in ftrack so it matches what the rules want, under the
//! ownership rules — the sync touches only users it can match to LDAP (by the anchor it
//! stores on them, or by username on first adoption), only groups and roles it manages,
//! and never the API user or protected users.

use super::operation::{Operation, OperationKind};
use super::{ManagedCounts, Plan, PlanSettings};
use crate::caseless::lowercase;
use crate::directory::DirectorySnapshot;
use crate::ftrack::snapshot::{FtrackSnapshot, FtrackUser};
use crate::rules::pipeline::{role_key, DesiredUser, Evaluation, Pipeline, Reasons, SkippedEntry};
use crate::rules::{DepartedUser, RoleScope, RuleError, Verdict};
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Metadata key holding the LDAP stable id of the entry a user belongs to.
pub const ANCHOR_KEY: &str = "ldap2ftrack.anchor";
/// Metadata key: the date the user was first found missing from LDAP, or disabled there.
pub const MISSING_SINCE_KEY: &str = "ldap2ftrack.missing_since";
/// Metadata key: the date ldap2ftrack disabled the user (so only it re-enables them).
pub const DISABLED_BY_SYNC_KEY: &str = "ldap2ftrack.disabled_by_sync";

/// Fixed namespace for ids of entities the plan creates: the same input gives the same ids,
/// so plans are reproducible and a retried create is recognised as already done.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c64_6170_3266_7472_6163_6b00_0000_0001);

fn planned_id(kind: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("{kind}:{key}").as_bytes()).to_string()
}

/// ftrack's state, indexed for the diff. Names are keyed lower-cased ([`lowercase`]).
struct Index<'a> {
    users_by_anchor: FxHashMap<&'a str, &'a FtrackUser>,
    users_by_name: FxHashMap<Cow<'a, str>, &'a FtrackUser>,
    groups_by_name: FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
    roles_by_name: FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
    /// role id → its `SecurityRole.type` (`PROJECT`, `API`, …; `None` if ftrack sent none).
    role_types: FxHashMap<&'a str, Option<&'a str>>,
    projects_by_name: FxHashMap<Cow<'a, str>, &'a str>,
    group_names: FxHashMap<&'a str, &'a str>,
    role_names: FxHashMap<&'a str, &'a str>,
    project_names: FxHashMap<&'a str, &'a str>,
    /// user id → memberships (group id, membership id)
    memberships: FxHashMap<&'a str, Vec<(&'a str, &'a str)>>,
    /// (user id, role id) → (all open projects, project ids)
    grants: FxHashMap<(&'a str, &'a str), (bool, Vec<&'a str>)>,
}

impl<'a> Index<'a> {
    fn new(f: &'a FtrackSnapshot) -> Index<'a> {
        let mut memberships: FxHashMap<&str, Vec<(&str, &str)>> = FxHashMap::default();
        for m in &f.memberships {
            memberships
                .entry(m.user_id.as_str())
                .or_default()
                .push((m.group_id.as_str(), m.id.as_str()));
        }
        Index {
            users_by_anchor: f
                .users
                .iter()
                .filter_map(|u| u.metadata.get(ANCHOR_KEY).map(|a| (a.as_str(), u)))
                .collect(),
            users_by_name: f
                .users
                .iter()
                .map(|u| (lowercase(&u.username), u))
                .collect(),
            // Top-level groups only: managed groups are created at the top level.
            groups_by_name: f
                .groups
                .iter()
                .filter(|g| g.parent_id.is_none() && !g.local)
                .map(|g| (lowercase(&g.name), (g.id.as_str(), g.name.as_str())))
                .collect(),
            roles_by_name: f
                .security_roles
                .iter()
                .map(|r| (lowercase(&r.name), (r.id.as_str(), r.name.as_str())))
                .collect(),
            role_types: f
                .security_roles
                .iter()
                .map(|r| (r.id.as_str(), r.role_type.as_deref()))
                .collect(),
            projects_by_name: f
                .projects
                .iter()
                .map(|p| (lowercase(&p.name), p.id.as_str()))
                .collect(),
            project_names: f
                .projects
                .iter()
                .map(|p| (p.id.as_str(), p.name.as_str()))
                .collect(),
            group_names: f
                .groups
                .iter()
                .map(|g| (g.id.as_str(), g.name.as_str()))
                .collect(),
            role_names: f
                .security_roles
                .iter()
                .map(|r| (r.id.as_str(), r.name.as_str()))
                .collect(),
            memberships,
            grants: f
                .user_security_roles
                .iter()
                .map(|g| {
                    (
                        (g.user_id.as_str(), g.security_role_id.as_str()),
                        (
                            g.is_all_open_projects,
                            g.project_ids.iter().map(String::as_str).collect(),
                        ),
                    )
                })
                .collect(),
        }
    }
}

/// Computes the plan. Fails only when a rule module fails under `on_error = "abort"`.
pub fn diff(
    evaluation: &Evaluation,
    directory: &DirectorySnapshot,
    ftrack: &FtrackSnapshot,
    settings: &PlanSettings,
    pipeline: &mut Pipeline,
) -> Result<Plan, RuleError> {
    let index = Index::new(ftrack);
    let protected = Protected::new(settings);
    let managed = Managed::new(settings, evaluation, &index);

    let mut plan = Plan {
        skipped: evaluation.skipped.clone(),
        ..Plan::default()
    };
    let mut ops: Vec<Operation> = Vec::new();
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut departed: Vec<(&FtrackUser, Option<&DesiredUser>)> = Vec::new();
    let mut created_groups: BTreeMap<String, String> = BTreeMap::new();
    let mut notes = Notes::default();
    // (user id, role id) of grants for a role the user does not hold yet: the first grant of
    // each (in plan order) adds the role before widening it.
    let mut lacking: FxHashSet<(String, String)> = FxHashSet::default();

    let mut desired: Vec<&DesiredUser> = evaluation.users.iter().collect();
    desired.sort_by_cached_key(|u| lowercase(&u.fields.username));
    for user in desired {
        let reasons = pipeline.reasons(directory, user);
        let anchor = user.entry.anchor();
        let username = user.fields.username.trim();
        let by_name = index
            .users_by_name
            .get(lowercase(username).as_ref())
            .copied();
        let matched = match index.users_by_anchor.get(anchor.as_str()).copied() {
            Some(u) => Some(u),
            None => match by_name {
                Some(u) if u.metadata.get(ANCHOR_KEY).is_some_and(|a| *a != anchor) => {
                    plan.skipped.push(SkippedEntry::of(&user.entry, format!(
                            "ftrack user `{}` belongs to another LDAP entry (anchor {}); rename one of them",
                            u.username,
                            u.metadata.get(ANCHOR_KEY).map(String::as_str).unwrap_or("")
                        )));
                    continue;
                }
                other => other,
            },
        };
        if let Some(u) = matched {
            seen.insert(u.id.as_str());
            if protected.contains(&u.username) {
                plan.notes
                    .push(format!("`{}` is protected; left as it is", u.username));
                continue;
            }
        } else if protected.contains(username) {
            plan.notes
                .push(format!("`{username}` is protected; not created"));
            continue;
        }
        if user.entry.disabled {
            if let Some(u) = matched {
                departed.push((u, Some(user)));
            }
            continue;
        }
        let user_id = match matched {
            None => {
                let id = planned_id("user", &anchor);
                // The username's reason, and each other field's where another stage set it
                // (a module that only fills in the e-mail is named for the e-mail).
                let mut why = vec![reasons.of("username")];
                let mut op = Operation::new(OperationKind::CreateUser, username, "");
                op.user_id = Some(id.clone());
                for (field, value) in user_fields(user) {
                    if let Some(v) = value {
                        op.set(field, None, Some(v.to_string()));
                        if !reasons.same_stage(field, "username") {
                            why.push(format!("{field}: {}", reasons.of(field)));
                        }
                    }
                }
                op.reason = why.join("; ");
                op.set_metadata(ANCHOR_KEY, None, Some(anchor.clone()));
                ops.push(op);
                id
            }
            Some(current) => {
                let mut update = update_user(user, &reasons, current, &anchor, &index, &mut plan);
                if !current.is_active {
                    if current.metadata.contains_key(DISABLED_BY_SYNC_KEY) {
                        let mut op = Operation::new(
                            OperationKind::EnableUser,
                            username,
                            format!("back in LDAP and enabled there ({})", user.entry.dn),
                        );
                        op.user_id = Some(current.id.clone());
                        op.set("is_active", Some("false".into()), Some("true".into()));
                        op.set_metadata(
                            DISABLED_BY_SYNC_KEY,
                            current.metadata.get(DISABLED_BY_SYNC_KEY).cloned(),
                            None,
                        );
                        // Clearing "missing since" belongs to the return, not to a separate update.
                        if let Some(u) = update.as_mut() {
                            if let Some(change) = u.metadata.remove(MISSING_SINCE_KEY) {
                                op.metadata.insert(MISSING_SINCE_KEY.into(), change);
                            }
                            if u.changes.is_empty() && u.metadata.is_empty() {
                                update = None;
                            }
                        }
                        ops.push(op);
                    } else {
                        plan.notes.push(format!(
                            "`{}` is disabled in ftrack by someone else; ldap2ftrack leaves that to them",
                            current.username
                        ));
                        ops.extend(update);
                        continue;
                    }
                }
                ops.extend(update);
                current.id.clone()
            }
        };
        let current_id = matched.map(|u| u.id.as_str());
        access_diff(
            user,
            &reasons,
            username,
            &user_id,
            current_id,
            &index,
            &managed,
            &mut created_groups,
            &mut ops,
            &mut notes,
            &mut lacking,
        );
    }

    for (name, id) in &created_groups {
        let mut op = Operation::new(
            OperationKind::CreateGroup,
            name,
            "named by the rules and not in ftrack yet",
        );
        op.group = Some(name.clone());
        op.group_id = Some(id.clone());
        ops.push(op);
    }

    // An entry left out of this run is still in LDAP: its user is not departed.
    for skipped in &plan.skipped {
        if let Some(u) = index.users_by_anchor.get(skipped.anchor.as_str()) {
            seen.insert(u.id.as_str());
        }
    }
    for u in &ftrack.users {
        if seen.contains(u.id.as_str()) || !u.metadata.contains_key(ANCHOR_KEY) {
            continue;
        }
        if protected.contains(&u.username) {
            continue;
        }
        departed.push((u, None));
    }
    for (u, still_in_ldap) in departed {
        if let Some(op) = deprovision(u, still_in_ldap, settings, pipeline)? {
            ops.push(op);
        }
    }

    plan.managed = managed_counts(ftrack, &index, &protected, &managed);
    ops.sort_by_cached_key(Operation::sort_key);
    for op in &mut ops {
        if op.kind == OperationKind::GrantRole {
            if let (Some(user), Some(role)) = (&op.user_id, &op.role_id) {
                op.add_role = lacking.remove(&(user.clone(), role.clone()));
            }
        }
    }
    plan.operations = ops;
    plan.notes.extend(notes.render());
    Ok(plan)
}

fn user_fields(user: &DesiredUser) -> [(&'static str, Option<&str>); 4] {
    [
        ("username", Some(user.fields.username.trim())),
        ("email", user.fields.email.as_deref()),
        ("first_name", user.fields.first_name.as_deref()),
        ("last_name", user.fields.last_name.as_deref()),
    ]
}

fn update_user(
    user: &DesiredUser,
    reasons: &Reasons,
    current: &FtrackUser,
    anchor: &str,
    index: &Index,
    plan: &mut Plan,
) -> Option<Operation> {
    let mut op = Operation::new(OperationKind::UpdateUser, user.fields.username.trim(), "");
    op.user_id = Some(current.id.clone());
    let mut why = Vec::new();
    for (field, desired) in user_fields(user) {
        let Some(desired) = desired else {
            continue; // LDAP has no value: leave ftrack's as it is
        };
        let now = match field {
            "username" => Some(current.username.as_str()),
            "email" => current.email.as_deref(),
            "first_name" => current.first_name.as_deref(),
            _ => current.last_name.as_deref(),
        };
        if now == Some(desired) {
            continue;
        }
        if field == "username" {
            let taken = index
                .users_by_name
                .get(lowercase(desired).as_ref())
                .is_some_and(|other| other.id != current.id);
            if taken {
                plan.skipped.push(SkippedEntry::of(&user.entry, format!(
                        "renaming `{}` to `{desired}` is impossible: another ftrack user has that username",
                        current.username
                    )));
                continue;
            }
            op.target = current.username.clone();
        }
        op.set(field, now.map(str::to_string), Some(desired.to_string()));
        why.push(format!("{field}: {}", reasons.of(field)));
    }
    if current.metadata.get(ANCHOR_KEY).map(String::as_str) != Some(anchor) {
        op.set_metadata(
            ANCHOR_KEY,
            current.metadata.get(ANCHOR_KEY).cloned(),
            Some(anchor.to_string()),
        );
        why.push(format!("adopted: matched by username to {}", user.entry.dn));
    }
    if let Some(since) = current.metadata.get(MISSING_SINCE_KEY) {
        op.set_metadata(MISSING_SINCE_KEY, Some(since.clone()), None);
        why.push(format!("back in LDAP ({})", user.entry.dn));
    }
    if op.changes.is_empty() && op.metadata.is_empty() {
        return None;
    }
    op.reason = why.join("; ");
    Some(op)
}

/// What the sync owns in ftrack this run: the groups and roles named in `sync.toml` or by
/// the rules (by id; only those it adds members to, grants or revokes).
struct Managed<'a> {
    group_ids: FxHashSet<&'a str>,
    /// Sorted, so revocations come out in the same order every run.
    role_ids: Vec<&'a str>,
}

impl<'a> Managed<'a> {
    /// The groups and roles `sync.toml` names, and every one the rules gave a user.
    fn new(settings: &PlanSettings, evaluation: &Evaluation, index: &Index<'a>) -> Managed<'a> {
        let groups = settings.managed_groups.iter().map(String::as_str).chain(
            evaluation
                .users
                .iter()
                .flat_map(|u| u.access.groups.iter().map(String::as_str)),
        );
        let roles = settings.managed_roles.iter().map(String::as_str).chain(
            evaluation
                .users
                .iter()
                .flat_map(|u| u.access.roles.iter().map(|g| g.role.as_str())),
        );
        // Only PROJECT roles are ever granted, so only they are ever revoked.
        let mut role_ids: Vec<&str> = ids_of(roles, &index.roles_by_name)
            .into_iter()
            .filter(|id| is_project_role(index.role_types.get(id).copied().flatten()))
            .collect();
        role_ids.sort_unstable();
        Managed {
            group_ids: ids_of(groups, &index.groups_by_name),
            role_ids,
        }
    }
}

/// The ftrack ids of the names that exist in `by_name`, each name looked up once.
fn ids_of<'n, 'a>(
    names: impl Iterator<Item = &'n str>,
    by_name: &FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
) -> FxHashSet<&'a str> {
    let distinct: FxHashSet<&str> = names.collect();
    distinct
        .into_iter()
        .filter_map(|name| by_name.get(lowercase(name).as_ref()).map(|(id, _)| *id))
        .collect()
}

/// The API user and `protected_users`, compared case-insensitively.
struct Protected(FxHashSet<String>);

impl Protected {
    fn new(settings: &PlanSettings) -> Protected {
        Protected(
            std::iter::once(&settings.api_user)
                .chain(&settings.protected_users)
                .map(|u| u.to_lowercase())
                .collect(),
        )
    }

    fn contains(&self, username: &str) -> bool {
        self.0.contains(lowercase(username).as_ref())
    }
}

/// The memberships and role grants to add and remove for one user. `user_id` is the ftrack
/// user (planned id when it is being created); `current_id` the existing one, if any.
#[allow(clippy::too_many_arguments)]
fn access_diff(
    user: &DesiredUser,
    reasons: &Reasons,
    username: &str,
    user_id: &str,
    current_id: Option<&str>,
    index: &Index,
    managed: &Managed,
    created_groups: &mut BTreeMap<String, String>,
    ops: &mut Vec<Operation>,
    notes: &mut Notes,
    lacking: &mut FxHashSet<(String, String)>,
) {
    let current_memberships: &[(&str, &str)] = current_id
        .and_then(|id| index.memberships.get(id))
        .map_or(&[], Vec::as_slice);
    // Only groups that exist can be in `current_memberships`, so only their ids are kept.
    let mut wanted_group_ids: Vec<&str> = Vec::with_capacity(user.access.groups.len());
    for group in &user.access.groups {
        let (group_id, group_name) = match index.groups_by_name.get(lowercase(group).as_ref()) {
            Some(&(id, name)) => {
                wanted_group_ids.push(id);
                if current_memberships.iter().any(|(g, _)| *g == id) {
                    continue;
                }
                (id.to_string(), name.to_string())
            }
            None => {
                let id = created_groups
                    .entry(group.clone())
                    .or_insert_with(|| planned_id("group", &group.to_lowercase()))
                    .clone();
                (id, group.clone())
            }
        };
        let mut op = Operation::new(
            OperationKind::AddMembership,
            username,
            reasons.of(&format!("group:{group}")),
        );
        op.user_id = Some(user_id.to_string());
        op.membership_id = Some(planned_id("membership", &format!("{user_id}/{group_id}")));
        op.group = Some(group_name);
        op.group_id = Some(group_id);
        ops.push(op);
    }
    for &(group_id, membership_id) in current_memberships {
        if !managed.group_ids.contains(group_id) || wanted_group_ids.contains(&group_id) {
            continue;
        }
        let name = index
            .group_names
            .get(group_id)
            .copied()
            .unwrap_or_default()
            .to_string();
        let mut op = Operation::new(
            OperationKind::RemoveMembership,
            username,
            format!(
                "no LDAP group of {} maps to ftrack group {name}",
                user.entry.dn
            ),
        );
        op.user_id = Some(user_id.to_string());
        op.group = Some(name);
        op.group_id = Some(group_id.to_string());
        op.membership_id = Some(membership_id.to_string());
        ops.push(op);
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
        let Some(&(role_id, role_name)) = index.roles_by_name.get(role_lower.as_ref()) else {
            notes.add(format!("missing role {role_lower}"), username, || {
                format!(
                    "security role `{written}` does not exist in ftrack; create it there (type PROJECT) or stop naming it in the rules (named by {})",
                    reasons.of(&first_role_key(user, role_lower))
                )
            });
            continue;
        };
        let role_type = index.role_types.get(role_id).copied().flatten();
        if !is_project_role(role_type) {
            notes.add(format!("refused role {role_id}"), username, || {
                format!(
                    "security role `{role_name}` has type {}: only PROJECT roles are granted per project, so it is not granted; remove it from the rules (named by {})",
                    role_type.unwrap_or("(none reported)"),
                    reasons.of(&first_role_key(user, role_lower))
                )
            });
            continue;
        }
        let current = current_id.and_then(|uid| index.grants.get(&(uid, role_id)));
        let (all_now, projects_now): (bool, &[&str]) =
            current.map_or((false, &[]), |(all, projects)| (*all, projects.as_slice()));
        for &scope in scopes {
            let (has, project_id, scope_text) = match scope {
                RoleScope::AllOpenProjects => (all_now, None, "all open projects".to_string()),
                RoleScope::Project(p) => match index.projects_by_name.get(lowercase(p).as_ref()) {
                    Some(&pid) => (
                        projects_now.contains(&pid),
                        Some(pid.to_string()),
                        p.clone(),
                    ),
                    None => {
                        notes.add(format!("missing project {p} {role_id}"), username, || {
                            format!(
                                "project `{p}` does not exist in ftrack; grants of {role_name} on it are skipped"
                            )
                        });
                        continue;
                    }
                },
            };
            if has {
                continue;
            }
            let reason = reasons.of(&role_key(&written, scope));
            let mut op = Operation::new(OperationKind::GrantRole, username, reason);
            op.user_id = Some(user_id.to_string());
            op.role = Some(role_name.to_string());
            op.role_id = Some(role_id.to_string());
            op.scope = Some(scope_text);
            op.project_id = project_id;
            ops.push(op);
            granting.push(role_id);
            if current.is_none() {
                lacking.insert((user_id.to_string(), role_id.to_string()));
            }
        }
    }
    let Some(uid) = current_id else {
        return;
    };
    for &role_id in &managed.role_ids {
        let Some((all_now, projects_now)) = index.grants.get(&(uid, role_id)) else {
            continue;
        };
        let role_name = index.role_names.get(role_id).copied().unwrap_or_default();
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
            op.user_id = Some(uid.to_string());
            op.role = Some(role_name.to_string());
            op.role_id = Some(role_id.to_string());
            op.scope = scope;
            op.project_id = project_id;
            op
        };
        let Some(scopes) = scopes else {
            ops.push(revoke(None, None));
            continue;
        };
        let revoke_all_open = *all_now && !scopes.contains(&RoleScope::AllOpenProjects);
        let unwanted: Vec<(&str, &str)> = projects_now
            .iter()
            .map(|pid| (*pid, index.project_names.get(pid).copied().unwrap_or(pid)))
            .filter(|(_, name)| {
                !scopes
                    .iter()
                    .any(|s| matches!(s, RoleScope::Project(p) if p.eq_ignore_ascii_case(name)))
            })
            .collect();
        let keeps_a_scope = (*all_now && !revoke_all_open)
            || unwanted.len() < projects_now.len()
            || granting.contains(&role_id);
        if !keeps_a_scope {
            // Scope by scope would leave the role granted on nothing (an empty grant that no
            // later run removes): the rules want it only where ftrack has no such project.
            ops.push(revoke(None, None));
            continue;
        }
        if revoke_all_open {
            ops.push(revoke(Some("all open projects".into()), None));
        }
        for (pid, name) in unwanted {
            ops.push(revoke(Some(name.to_string()), Some(pid.to_string())));
        }
    }
}

/// Whether a role of this `SecurityRole.type` may be granted per project: only `PROJECT`
/// roles are (API roles belong to global API keys, ASSIGNED ones to assigned tasks).
fn is_project_role(role_type: Option<&str>) -> bool {
    role_type.is_some_and(|t| t.eq_ignore_ascii_case("PROJECT"))
}

/// The reason key of the user's first grant of a role (any scope), for naming who asked.
fn first_role_key(user: &DesiredUser, role_lower: &str) -> String {
    user.access
        .roles
        .iter()
        .find(|g| lowercase(&g.role) == role_lower)
        .map(|g| role_key(&g.role, &g.scope))
        .unwrap_or_default()
}

/// Notes about something missing or refused, one per subject however many users it
/// concerns: "… (12 users: a, b, c, d, e and 7 more)".
#[derive(Default)]
struct Notes {
    /// Subject → the note's text (worded for its first user) and the usernames it concerns.
    by_subject: FxHashMap<String, (String, Vec<String>)>,
}

/// How many usernames a note lists before "and N more".
const NOTE_NAMES: usize = 5;

impl Notes {
    /// Records the note about `subject` for `username`; `text` words it, the first time only.
    fn add(&mut self, subject: String, username: &str, text: impl FnOnce() -> String) {
        self.by_subject
            .entry(subject)
            .or_insert_with(|| (text(), Vec::new()))
            .1
            .push(username.to_string());
    }

    /// One line per subject, sorted by text.
    fn render(self) -> Vec<String> {
        let mut notes: Vec<(String, Vec<String>)> = self.by_subject.into_values().collect();
        notes.sort();
        notes
            .into_iter()
            .map(|(text, users)| {
                let shown: Vec<String> = users
                    .iter()
                    .take(NOTE_NAMES)
                    .map(|u| format!("`{u}`"))
                    .collect();
                let more = users.len().saturating_sub(NOTE_NAMES);
                let count = if users.len() == 1 {
                    "1 user".to_string()
                } else {
                    format!("{} users", users.len())
                };
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{text}; {count}: {}{tail}", shown.join(", "))
            })
            .collect()
    }
}

/// The role name as the rules wrote it (for the reason lookup when ftrack's case differs).
fn grant_role_name(user: &DesiredUser, role_lower: &str) -> String {
    user.access
        .roles
        .iter()
        .find(|g| lowercase(&g.role) == role_lower)
        .map(|g| g.role.clone())
        .unwrap_or_default()
}

fn deprovision(
    user: &FtrackUser,
    still_in_ldap: Option<&DesiredUser>,
    settings: &PlanSettings,
    pipeline: &mut Pipeline,
) -> Result<Option<Operation>, RuleError> {
    let ldap_disabled = still_in_ldap.is_some();
    let missing_since = user.metadata.get(MISSING_SINCE_KEY).cloned();
    let departed = DepartedUser {
        username: user.username.clone(),
        email: user.email.clone(),
        ldap_disabled,
        missing_since: missing_since
            .clone()
            .or_else(|| Some(settings.today.clone())),
        today: settings.today.clone(),
        entry: still_in_ldap.map(|d| d.entry.clone()),
    };
    let why = if ldap_disabled {
        "disabled in LDAP"
    } else {
        "no longer in LDAP"
    };
    let initial = match settings.deprovision_action {
        crate::config::DeprovisionAction::Disable => Verdict::Disable(why.to_string()),
        crate::config::DeprovisionAction::Keep => {
            Verdict::Keep(format!("{why}; [deprovision] action = keep"))
        }
    };
    let (verdict, by) = pipeline.deprovision(&departed, initial)?;
    let mut op = match verdict {
        Verdict::Disable(reason) if user.is_active => {
            let mut op = Operation::new(
                OperationKind::DisableUser,
                &user.username,
                format!("{by}: {reason}"),
            );
            op.set("is_active", Some("true".into()), Some("false".into()));
            op.set_metadata(DISABLED_BY_SYNC_KEY, None, Some(settings.today.clone()));
            op
        }
        Verdict::Disable(_) => Operation::new(
            OperationKind::UpdateUser,
            &user.username,
            format!("{why}; already disabled"),
        ),
        Verdict::Keep(reason) => Operation::new(
            OperationKind::UpdateUser,
            &user.username,
            format!("{by}: kept: {reason}"),
        ),
    };
    // Record when the user went missing (or was disabled in LDAP), so grace periods need no
    // local state.
    if missing_since.is_none() {
        op.set_metadata(MISSING_SINCE_KEY, None, Some(settings.today.clone()));
    }
    if op.kind == OperationKind::UpdateUser && op.metadata.is_empty() {
        return Ok(None);
    }
    op.user_id = Some(user.id.clone());
    Ok(Some(op))
}

fn managed_counts(
    ftrack: &FtrackSnapshot,
    index: &Index,
    protected: &Protected,
    managed: &Managed,
) -> ManagedCounts {
    let managed_users: Vec<&FtrackUser> = ftrack
        .users
        .iter()
        .filter(|u| u.metadata.contains_key(ANCHOR_KEY) && !protected.contains(&u.username))
        .collect();
    let ids: FxHashSet<&str> = managed_users.iter().map(|u| u.id.as_str()).collect();
    let memberships = ftrack
        .memberships
        .iter()
        .filter(|m| {
            ids.contains(m.user_id.as_str()) && managed.group_ids.contains(m.group_id.as_str())
        })
        .count();
    let role_grants = index
        .grants
        .iter()
        .filter(|((u, r), _)| ids.contains(u) && managed.role_ids.contains(r))
        .map(|(_, (all, projects))| usize::from(*all) + projects.len())
        .sum();
    ManagedCounts {
        users: managed_users.iter().filter(|u| u.is_active).count(),
        memberships,
        role_grants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_note_per_subject_with_a_count_and_five_names() {
        let mut notes = Notes::default();
        for user in ["u1", "u2", "u3", "u4", "u5", "u6", "u7"] {
            notes.add("role x".into(), user, || {
                format!("role X is missing (first: {user})")
            });
        }
        notes.add("project p".into(), "u9", || "project P is missing".into());
        assert_eq!(
            notes.render(),
            [
                "project P is missing; 1 user: `u9`",
                "role X is missing (first: u1); 7 users: `u1`, `u2`, `u3`, `u4`, `u5` and 2 more",
            ]
        );
    }

    #[test]
    fn only_project_roles_are_granted() {
        assert!(is_project_role(Some("PROJECT")));
        assert!(is_project_role(Some("project")));
        assert!(!is_project_role(Some("API")));
        assert!(!is_project_role(Some("ASSIGNED")));
        assert!(!is_project_role(None));
    }
}
