//! ftrack's state indexed for the diff: by anchor, by lower-cased name, by id; memberships
//! and role grants by user. Built once per run, borrowed from the snapshot.

use super::ANCHOR_KEY;
use crate::caseless::lowercase;
use crate::ftrack::snapshot::{FtrackSnapshot, FtrackUser};
use rustc_hash::FxHashMap;
use std::borrow::Cow;

/// ftrack's state, indexed for the diff. Names are keyed lower-cased ([`lowercase`]).
pub(super) struct Index<'a> {
    pub(super) users_by_anchor: FxHashMap<&'a str, &'a FtrackUser>,
    pub(super) users_by_name: FxHashMap<Cow<'a, str>, &'a FtrackUser>,
    pub(super) groups_by_name: FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
    pub(super) roles_by_name: FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
    /// role id → its `SecurityRole.type` (`PROJECT`, `API`, …; `None` if ftrack sent none).
    pub(super) role_types: FxHashMap<&'a str, Option<&'a str>>,
    pub(super) projects_by_name: FxHashMap<Cow<'a, str>, &'a str>,
    pub(super) group_names: FxHashMap<&'a str, &'a str>,
    pub(super) role_names: FxHashMap<&'a str, &'a str>,
    pub(super) project_names: FxHashMap<&'a str, &'a str>,
    /// user id → memberships (group id, membership id)
    pub(super) memberships: FxHashMap<&'a str, Vec<(&'a str, &'a str)>>,
    /// (user id, role id) → (all open projects, project ids)
    pub(super) grants: FxHashMap<(&'a str, &'a str), (bool, Vec<&'a str>)>,
}

impl<'a> Index<'a> {
    pub(super) fn new(f: &'a FtrackSnapshot) -> Index<'a> {
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
