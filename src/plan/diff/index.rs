//! ftrack's state indexed for the diff: by anchor, by lower-cased name, by id; memberships
//! and role grants by user. Built once per run, borrowed from the snapshot.

use super::ANCHOR_KEY;
use crate::caseless::lowercase;
use crate::ftrack::snapshot::{
    FtrackMembership, FtrackSnapshot, FtrackUser, FtrackUserSecurityRole,
};
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
    /// Every membership, grouped by user id; [`Index::memberships_of`] finds a user's run.
    /// One vector and a range per user, not a vector per user: at 100,000 users those were
    /// 17 MB.
    memberships: Vec<&'a FtrackMembership>,
    membership_runs: FxHashMap<&'a str, std::ops::Range<usize>>,
    /// (user id, role id) → the grant
    pub(super) grants: FxHashMap<(&'a str, &'a str), &'a FtrackUserSecurityRole>,
}

impl<'a> Index<'a> {
    pub(super) fn new(f: &'a FtrackSnapshot) -> Index<'a> {
        // The users' maps and the memberships' and grants' are independent and, at a million
        // users, a second or so of hash inserts each: a large snapshot builds them side by side.
        let users = || UserMaps {
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
        };
        let (users, links) = if crate::parallel::threads_for(f.users.len()) < 2 {
            (users(), LinkMaps::new(f))
        } else {
            std::thread::scope(|scope| {
                let links = scope.spawn(|| LinkMaps::new(f));
                let users = users();
                match links.join() {
                    Ok(links) => (users, links),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            })
        };
        Index {
            users_by_anchor: users.users_by_anchor,
            users_by_name: users.users_by_name,
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
            memberships: links.memberships,
            membership_runs: links.membership_runs,
            grants: links.grants,
        }
    }

    /// The memberships of the ftrack user with this id.
    pub(super) fn memberships_of(&self, user_id: &str) -> &[&'a FtrackMembership] {
        self.membership_runs
            .get(user_id)
            .and_then(|run| self.memberships.get(run.clone()))
            .unwrap_or(&[])
    }
}

/// The users by anchor and by name.
struct UserMaps<'a> {
    users_by_anchor: FxHashMap<&'a str, &'a FtrackUser>,
    users_by_name: FxHashMap<Cow<'a, str>, &'a FtrackUser>,
}

/// The memberships grouped by user, and the grants by user and role.
struct LinkMaps<'a> {
    memberships: Vec<&'a FtrackMembership>,
    membership_runs: FxHashMap<&'a str, std::ops::Range<usize>>,
    grants: FxHashMap<(&'a str, &'a str), &'a FtrackUserSecurityRole>,
}

impl<'a> LinkMaps<'a> {
    fn new(f: &'a FtrackSnapshot) -> LinkMaps<'a> {
        let mut memberships: Vec<&FtrackMembership> = f.memberships.iter().collect();
        memberships.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        let mut membership_runs = FxHashMap::default();
        let mut start = 0;
        for run in memberships.chunk_by(|a, b| a.user_id == b.user_id) {
            membership_runs.insert(run[0].user_id.as_str(), start..start + run.len());
            start += run.len();
        }
        LinkMaps {
            memberships,
            membership_runs,
            grants: f
                .user_security_roles
                .iter()
                .map(|g| ((g.user_id.as_str(), g.security_role_id.as_str()), g))
                .collect(),
        }
    }
}
