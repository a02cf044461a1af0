//! ftrack's state indexed for the diff: by anchor, by lower-cased name, by id; memberships
//! and role grants by user. Built once per run, borrowed from the snapshot.
//!
//! The large part — users, memberships and grants, a second of hash inserts at a million
//! users — is [`FtrackPositions`]: positions in the snapshot, borrowing nothing, so a run
//! builds it as soon as ftrack is read, while the directory read is still going on.

use super::ANCHOR_KEY;
use crate::caseless::lowercase;
use crate::ftrack::snapshot::{
    FtrackMembership, FtrackSnapshot, FtrackUser, FtrackUserSecurityRole,
};
use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::hash::{BuildHasher, Hash};

/// ftrack's state, indexed for the diff. Names are keyed lower-cased ([`lowercase`]).
pub(super) struct Index<'a> {
    snapshot: &'a FtrackSnapshot,
    positions: Cow<'a, FtrackPositions>,
    pub(super) groups_by_name: FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
    pub(super) roles_by_name: FxHashMap<Cow<'a, str>, (&'a str, &'a str)>,
    /// role id → its `SecurityRole.type` (`PROJECT`, `API`, …; `None` if ftrack sent none).
    pub(super) role_types: FxHashMap<&'a str, Option<&'a str>>,
    pub(super) projects_by_name: FxHashMap<Cow<'a, str>, &'a str>,
    pub(super) group_names: FxHashMap<&'a str, &'a str>,
    pub(super) role_names: FxHashMap<&'a str, &'a str>,
    pub(super) project_names: FxHashMap<&'a str, &'a str>,
}

/// The users by anchor and by lower-cased username, the memberships grouped by user, and the
/// grants by user and role — as positions in one [`FtrackSnapshot`]'s vectors. Where two rows
/// share a key, the later one is kept.
#[derive(Debug, Clone)]
pub struct FtrackPositions {
    users_by_anchor: HashTable<u32>,
    users_by_name: HashTable<u32>,
    /// Positions of the memberships, sorted by user id (stable): one vector and a run per
    /// user, not a vector per user (17 MB at 100,000 users).
    memberships: Vec<u32>,
    /// Each user's run in `memberships`: start, end.
    membership_runs: HashTable<(u32, u32)>,
    grants: HashTable<u32>,
    /// The sizes of the snapshot indexed: positions are only read against a snapshot of
    /// these sizes (else [`Index::new`] indexes afresh), and every lookup compares the row it
    /// lands on with the key, so positions can never name a wrong row.
    indexed: [usize; 3],
}

fn hash(key: impl Hash) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// Inserts `position` under `key`, replacing a row of an equal key (the later row wins).
fn insert(
    table: &mut HashTable<u32>,
    key: u64,
    position: u32,
    same: impl Fn(u32) -> bool,
    rehash: impl Fn(&u32) -> u64,
) {
    match table.find_mut(key, |&p| same(p)) {
        Some(kept) => *kept = position,
        None => {
            table.insert_unique(key, position, rehash);
        }
    }
}

impl FtrackPositions {
    /// Indexes `f`. The users' tables and the links' are independent: a large snapshot
    /// builds them side by side.
    pub fn new(f: &FtrackSnapshot) -> FtrackPositions {
        let users = || {
            let anchor = |p: u32| {
                f.users[p as usize]
                    .metadata
                    .get(ANCHOR_KEY)
                    .map(String::as_str)
            };
            let name = |p: u32| lowercase(&f.users[p as usize].username);
            let mut by_anchor = HashTable::new();
            let mut by_name = HashTable::with_capacity(f.users.len());
            for (p, user) in f.users.iter().enumerate() {
                let p = p as u32;
                if let Some(a) = user.metadata.get(ANCHOR_KEY) {
                    let a = a.as_str();
                    insert(
                        &mut by_anchor,
                        hash(a),
                        p,
                        |q| anchor(q) == Some(a),
                        |&q| hash(anchor(q).unwrap_or_default()),
                    );
                }
                let n = lowercase(&user.username);
                insert(
                    &mut by_name,
                    hash(n.as_ref()),
                    p,
                    |q| name(q) == n,
                    |&q| hash(name(q).as_ref()),
                );
            }
            (by_anchor, by_name)
        };
        let links = || {
            let mut memberships: Vec<u32> = (0..f.memberships.len() as u32).collect();
            let user_of = |p: u32| f.memberships[p as usize].user_id.as_str();
            memberships.sort_by(|&a, &b| user_of(a).cmp(user_of(b)));
            let mut membership_runs = HashTable::new();
            let mut start = 0;
            for run in memberships.chunk_by(|&a, &b| user_of(a) == user_of(b)) {
                let end = start + run.len() as u32;
                membership_runs.insert_unique(hash(user_of(run[0])), (start, end), |&(s, _)| {
                    hash(user_of(memberships[s as usize]))
                });
                start = end;
            }
            let key = |p: u32| {
                let g = &f.user_security_roles[p as usize];
                (g.user_id.as_str(), g.security_role_id.as_str())
            };
            let mut grants = HashTable::with_capacity(f.user_security_roles.len());
            for p in 0..f.user_security_roles.len() as u32 {
                let k = key(p);
                insert(&mut grants, hash(k), p, |q| key(q) == k, |&q| hash(key(q)));
            }
            (memberships, membership_runs, grants)
        };
        let large = crate::parallel::threads_for(f.users.len()) > 1;
        let ((users_by_anchor, users_by_name), (memberships, membership_runs, grants)) =
            crate::parallel::join(large, users, links);
        FtrackPositions {
            users_by_anchor,
            users_by_name,
            memberships,
            membership_runs,
            grants,
            indexed: Self::sizes(f),
        }
    }

    fn sizes(f: &FtrackSnapshot) -> [usize; 3] {
        [
            f.users.len(),
            f.memberships.len(),
            f.user_security_roles.len(),
        ]
    }
}

impl<'a> Index<'a> {
    /// The index of `f`, with `positions` when they were built for it already.
    pub(super) fn new(f: &'a FtrackSnapshot, positions: Option<&'a FtrackPositions>) -> Index<'a> {
        let positions = match positions {
            Some(p) if p.indexed == FtrackPositions::sizes(f) => Cow::Borrowed(p),
            _ => Cow::Owned(FtrackPositions::new(f)),
        };
        Index {
            snapshot: f,
            positions,
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
        }
    }

    /// The ftrack user carrying this anchor.
    pub(super) fn user_by_anchor(&self, anchor: &str) -> Option<&'a FtrackUser> {
        let users = &self.snapshot.users;
        self.positions
            .users_by_anchor
            .find(hash(anchor), |&p| {
                users[p as usize]
                    .metadata
                    .get(ANCHOR_KEY)
                    .map(String::as_str)
                    == Some(anchor)
            })
            .map(|&p| &users[p as usize])
    }

    /// The ftrack user of this username, given lower-cased ([`lowercase`]).
    pub(super) fn user_by_name(&self, lowercased: &str) -> Option<&'a FtrackUser> {
        let users = &self.snapshot.users;
        self.positions
            .users_by_name
            .find(hash(lowercased), |&p| {
                lowercase(&users[p as usize].username) == lowercased
            })
            .map(|&p| &users[p as usize])
    }

    /// The memberships of the ftrack user with this id (none for a user not in ftrack yet),
    /// in the order ftrack sent them.
    pub(super) fn memberships_of(
        &self,
        user_id: Option<&str>,
    ) -> impl Iterator<Item = &'a FtrackMembership> + Clone + '_ {
        let all = &self.snapshot.memberships;
        let sorted = &self.positions.memberships;
        let run = user_id
            .and_then(|id| {
                self.positions
                    .membership_runs
                    .find(hash(id), |&(start, _)| {
                        all[sorted[start as usize] as usize].user_id == id
                    })
            })
            .map_or(&[][..], |&(start, end)| {
                &sorted[start as usize..end as usize]
            });
        run.iter().map(move |&p| &all[p as usize])
    }

    /// The grant of this role to this user.
    pub(super) fn grant(&self, user_id: &str, role_id: &str) -> Option<&'a FtrackUserSecurityRole> {
        let grants = &self.snapshot.user_security_roles;
        self.positions
            .grants
            .find(hash((user_id, role_id)), |&p| {
                let g = &grants[p as usize];
                g.user_id == user_id && g.security_role_id == role_id
            })
            .map(|&p| &grants[p as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftrack::snapshot::FtrackMembership;

    fn user(id: &str, username: &str, anchor: Option<&str>) -> FtrackUser {
        FtrackUser {
            id: id.into(),
            username: username.into(),
            metadata: anchor
                .map(|a| (ANCHOR_KEY.to_string(), a.to_string()))
                .into_iter()
                .collect(),
            ..FtrackUser::default()
        }
    }

    fn membership(id: &str, user_id: &str, group_id: &str) -> FtrackMembership {
        FtrackMembership {
            id: id.into(),
            user_id: user_id.into(),
            group_id: group_id.into(),
        }
    }

    fn grant(id: &str, user_id: &str, role_id: &str) -> FtrackUserSecurityRole {
        FtrackUserSecurityRole {
            id: id.into(),
            user_id: user_id.into(),
            security_role_id: role_id.into(),
            ..FtrackUserSecurityRole::default()
        }
    }

    /// Two rows of one key (an anchor, a username in two cases, a user and role) keep the
    /// later; memberships come back per user in the order ftrack sent them.
    fn snapshot() -> FtrackSnapshot {
        FtrackSnapshot {
            users: vec![
                user("u1", "Ann", Some("a-1")),
                user("u2", "bob", Some("a-2")),
                user("u3", "ann", Some("a-1")),
                user("u4", "carl", None),
            ],
            memberships: vec![
                membership("m1", "u2", "g1"),
                membership("m2", "u1", "g1"),
                membership("m3", "u2", "g2"),
                membership("m4", "u4", "g3"),
                membership("m5", "u1", "g2"),
            ],
            user_security_roles: vec![
                grant("s1", "u1", "r1"),
                grant("s2", "u2", "r1"),
                grant("s3", "u1", "r1"),
            ],
            ..FtrackSnapshot::default()
        }
    }

    fn ids<'a>(memberships: impl Iterator<Item = &'a FtrackMembership>) -> Vec<String> {
        memberships.map(|m| m.id.to_string()).collect()
    }

    fn assert_indexes(index: &Index<'_>) {
        let id = |u: Option<&FtrackUser>| u.map(|u| u.id.clone());
        assert_eq!(id(index.user_by_anchor("a-1")), Some("u3".into()));
        assert_eq!(id(index.user_by_anchor("a-2")), Some("u2".into()));
        assert_eq!(id(index.user_by_anchor("a-3")), None);
        assert_eq!(id(index.user_by_name("ann")), Some("u3".into()));
        assert_eq!(id(index.user_by_name("carl")), Some("u4".into()));
        assert_eq!(id(index.user_by_name("Carl")), None, "keys are lower-cased");
        assert_eq!(ids(index.memberships_of(Some("u1"))), ["m2", "m5"]);
        assert_eq!(ids(index.memberships_of(Some("u2"))), ["m1", "m3"]);
        assert_eq!(ids(index.memberships_of(Some("u3"))), [] as [&str; 0]);
        assert_eq!(ids(index.memberships_of(None)), [] as [&str; 0]);
        let grant = |u: &str, r: &str| index.grant(u, r).map(|g| g.id.to_string());
        assert_eq!(grant("u1", "r1"), Some("s3".into()));
        assert_eq!(grant("u2", "r1"), Some("s2".into()));
        assert_eq!(grant("u2", "r2"), None);
    }

    #[test]
    fn positions_find_the_later_row_of_a_key_built_here_or_during_the_reads() {
        let f = snapshot();
        assert_indexes(&Index::new(&f, None));
        let built_during_the_reads = FtrackPositions::new(&f);
        let index = Index::new(&f, Some(&built_during_the_reads));
        assert!(matches!(index.positions, Cow::Borrowed(_)));
        assert_indexes(&index);
    }

    #[test]
    fn positions_of_another_snapshot_are_not_used() {
        let f = snapshot();
        let mut smaller = snapshot();
        smaller.memberships.pop();
        let stale = FtrackPositions::new(&smaller);
        let index = Index::new(&f, Some(&stale));
        assert!(matches!(index.positions, Cow::Owned(_)));
        assert_indexes(&index);
    }
}
