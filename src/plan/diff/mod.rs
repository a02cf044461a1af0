//! The diff: what must change in ftrack so it matches what the rules want, under the
//! ownership rules — the sync touches only users it can match to LDAP (by the anchor it
//! stores on them, or by username on first adoption), only groups and roles it manages,
//! and never the API user or protected users.
//!
//! A plain function of its inputs: the [`Matching`] of directory users to ftrack users, the
//! rules' verdicts on the departed ones (evaluated before, in the rules stage), and the
//! reasons each stage gives. A [`Planner`] value carries the run's indexes and the plan
//! being built; `users`, `access` and `departed` each add one kind of change to it. A large
//! directory's users are planned in consecutive parts, a `Planner` and a thread each, then
//! absorbed in order into the one that plans the rest.

mod access;
mod departed;
mod index;
mod matching;
mod notes;
mod users;

pub use index::FtrackPositions;
pub use matching::Matching;

use super::operation::{Name, Operation, OperationKind};
use super::{ManagedCounts, Plan, PlanSettings};
use crate::caseless::lowercase;
use crate::directory::DirectorySnapshot;
use crate::rules::pipeline::{GroupNames, Pipeline};
use crate::rules::Verdict;
use arcstr::ArcStr;
use index::Index;
use matching::{Matched, Protected};
use notes::Notes;
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::collections::BTreeMap;

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
    planned_uuid(kind, &[key]).to_string()
}

/// The version 5 UUID of `{kind}:{key…}` in [`ID_NAMESPACE`], what `Uuid::new_v5` gives for
/// that text. The name is hashed in its pieces, not built first, with the `sha1` crate, which
/// uses the CPU's SHA instructions where it has them: a first run of 100,000 users plans
/// 440,000 ids.
fn planned_uuid(kind: &str, key: &[&str]) -> uuid::Uuid {
    use sha1::Digest;
    let mut sha1 = sha1::Sha1::new();
    sha1.update(ID_NAMESPACE.as_bytes());
    sha1.update(kind.as_bytes());
    sha1.update(b":");
    for piece in key {
        sha1.update(piece.as_bytes());
    }
    let digest = sha1.finalize();
    let mut first = [0; 16];
    first.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(first).into_uuid()
}

/// The rules' verdict on each departed user of a [`Matching`], in its order, with the rule
/// that settled it.
pub type Verdicts = [(Verdict, String)];

/// Computes the plan.
pub fn diff(
    matching: &Matching,
    directory: &DirectorySnapshot,
    settings: &PlanSettings,
    verdicts: &Verdicts,
    pipeline: &Pipeline,
) -> Plan {
    let parts = crate::parallel::threads_for(matching.users.len());
    diff_in_parts(matching, directory, settings, verdicts, pipeline, parts)
}

/// [`diff`], the users planned in `parts` parts.
fn diff_in_parts(
    matching: &Matching,
    directory: &DirectorySnapshot,
    settings: &PlanSettings,
    verdicts: &Verdicts,
    pipeline: &Pipeline,
    parts: usize,
) -> Plan {
    let managed = Managed::new(settings, matching);
    let mut planner = Planner::new(&matching.index, settings, &managed);
    planner.plan.skipped = matching
        .evaluation
        .skipped
        .iter()
        .chain(&matching.skipped)
        .cloned()
        .collect();
    planner.plan.notes = matching.notes.clone();
    let parts = plan_users(&matching.users, directory, pipeline, &planner, parts);
    // Room for every user's operation at once, not grown by doubling as parts come in.
    planner.ops.reserve_for(parts.iter().map(|p| &p.ops));
    for part in parts {
        planner.absorb(part);
    }
    planner.created_groups();
    for ((user, still_in_ldap), (verdict, by)) in matching.departed.iter().zip(verdicts) {
        planner.departed(user, still_in_ldap.is_some(), verdict, by);
    }
    planner.plan.managed = managed_counts(matching, &managed);
    planner.finish()
}

/// Each matched user's own changes and access, planned in `parts` consecutive parts, each
/// on its own thread (a user's operations depend only on that user and the indexes). The
/// parts come back in order, so absorbing them one after the other gives what one thread
/// planning every user would.
fn plan_users<'a>(
    users: &[Matched],
    directory: &DirectorySnapshot,
    pipeline: &Pipeline,
    like: &Planner<'a>,
    parts: usize,
) -> Vec<Planner<'a>> {
    let plan_part = |part: &[Matched]| {
        let mut planner = Planner::new(like.index, like.settings, like.managed);
        let names = GroupNames::of(directory);
        for matched in part {
            let reasons = pipeline.reasons(directory, &names, matched.user);
            if let Some(user_id) = planner.user(matched, &reasons) {
                planner.access(matched, &reasons, &user_id);
            }
        }
        // Sorted here, on the part's thread: the plan's sort then finds each kind's parts
        // in order already, and a stable sort of stably sorted parts in order is the
        // stable sort of the whole.
        planner.ops.sort();
        planner
    };
    crate::parallel::map_chunks(users, parts, |part, _| plan_part(part))
}

/// The plan being built, and what building it needs.
struct Planner<'a> {
    index: &'a Index<'a>,
    settings: &'a PlanSettings,
    managed: &'a Managed<'a>,
    ops: ByKind,
    /// The names and ids the operations share.
    names: Names,
    notes: Notes,
    /// (user id, role id) of grants for a role the user does not hold yet: the first grant
    /// of each, in plan order, adds the role before widening it.
    lacking: FxHashSet<(Name, Name)>,
    /// Groups the rules name that ftrack lacks: name → planned id.
    created_groups: BTreeMap<String, String>,
    /// Each group the rules named so far, by the name they gave.
    group_targets: FxHashMap<ArcStr, GroupTarget<'a>>,
    plan: Plan,
}

impl<'a> Planner<'a> {
    fn new(index: &'a Index<'a>, settings: &'a PlanSettings, managed: &'a Managed<'a>) -> Self {
        Planner {
            index,
            settings,
            managed,
            ops: ByKind::default(),
            names: Names::default(),
            notes: Notes::default(),
            lacking: FxHashSet::default(),
            created_groups: BTreeMap::new(),
            group_targets: FxHashMap::default(),
            plan: Plan::default(),
        }
    }

    /// Takes in what `later` planned for the users after this planner's.
    fn absorb(&mut self, later: Planner) {
        self.ops.append(later.ops);
        self.notes.absorb(later.notes);
        self.lacking.extend(later.lacking);
        for (name, id) in later.created_groups {
            self.created_groups.entry(name).or_insert(id);
        }
        self.plan.notes.extend(later.plan.notes);
        self.plan.skipped.extend(later.plan.skipped);
    }

    fn created_groups(&mut self) {
        for (name, id) in &self.created_groups {
            let mut op = Operation::new(
                OperationKind::CreateGroup,
                self.names.get(name),
                "named by the rules and not in ftrack yet",
            );
            op.group = Some(self.names.get(name));
            op.group_id = Some(self.names.get(id));
            self.ops.push(Box::new(op));
        }
    }

    /// Orders the operations, marks the first grant of each role a user lacks, and adds
    /// the notes.
    fn finish(mut self) -> Plan {
        self.ops.sort();
        for op in &mut self.ops.lists[OperationKind::GrantRole as usize] {
            if let (Some(user), Some(role)) = (&op.user_id, &op.role_id) {
                op.add_role = self.lacking.remove(&(user.clone(), role.clone()));
            }
        }
        self.plan.operations = self.ops.in_plan_order();
        self.plan.notes.extend(self.notes.render());
        self.plan
    }
}

/// Planned operations, a list per kind. A plan is ordered by kind first, so kept apart they
/// need no sort by kind; and users are planned in username order, so each kind's list is
/// nearly in plan order already and its sort compares about once per operation. A list
/// made of sorted parts in order is not even compared again.
#[derive(Default)]
struct ByKind {
    lists: [OperationList; OperationKind::ALL.len()],
    /// How many operations at the start of each list are known to be in plan order.
    sorted: [usize; OperationKind::ALL.len()],
}

/// Boxed, as `Plan::operations` is (why: there).
type OperationList = Vec<Box<Operation>>;

impl ByKind {
    fn push(&mut self, op: Box<Operation>) {
        self.lists[op.kind as usize].push(op);
    }

    fn extend(&mut self, ops: impl IntoIterator<Item = Box<Operation>>) {
        for op in ops {
            self.push(op);
        }
    }

    /// Makes room for the operations of `parts` at once.
    fn reserve_for<'p>(&mut self, parts: impl Iterator<Item = &'p ByKind> + Clone) {
        for (kind, list) in self.lists.iter_mut().enumerate() {
            list.reserve_exact(parts.clone().map(|p| p.lists[kind].len()).sum());
        }
    }

    /// Appends `later`'s operations, each after this list's of its kind. Two lists in plan
    /// order make one when the first's last operation does not come after the second's first.
    fn append(&mut self, mut later: ByKind) {
        for (kind, more) in later.lists.iter_mut().enumerate() {
            let list = &mut self.lists[kind];
            let in_order = self.sorted[kind] == list.len()
                && later.sorted[kind] == more.len()
                && match (list.last(), more.first()) {
                    (Some(last), Some(first)) => last.plan_order(first).is_le(),
                    _ => true,
                };
            list.append(more);
            if in_order {
                self.sorted[kind] = list.len();
            }
        }
    }

    /// Sorts each kind's list stably in [`Operation::plan_order`].
    fn sort(&mut self) {
        for (list, sorted) in self.lists.iter_mut().zip(&mut self.sorted) {
            if *sorted < list.len() {
                list.sort_by(|a, b| a.plan_order(b));
                *sorted = list.len();
            }
        }
    }

    /// Every operation, in plan order.
    fn in_plan_order(mut self) -> OperationList {
        self.sort();
        let mut all = Vec::with_capacity(self.lists.iter().map(Vec::len).sum());
        for list in self.lists {
            all.extend(list);
        }
        all
    }
}

/// A group the rules name, as the operations on it carry it.
#[derive(Clone)]
struct GroupTarget<'a> {
    /// Its id in ftrack; `None` when the plan creates it.
    existing: Option<&'a str>,
    id: Name,
    name: Name,
}

/// One shared copy of each name, id and reason the plan's operations carry: a first run
/// of 100,000 users puts a few thousand distinct ones into 540,000 operations.
#[derive(Default)]
pub(super) struct Names(FxHashSet<Name>);

impl Names {
    pub(super) fn get(&mut self, name: &str) -> Name {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Name = name.into();
        self.0.insert(shared.clone());
        shared
    }
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
    fn new(settings: &PlanSettings, matching: &Matching<'a>) -> Managed<'a> {
        let index = &matching.index;
        let users = &matching.evaluation.users;
        let groups = settings.managed_groups.iter().map(String::as_str).chain(
            users
                .iter()
                .flat_map(|u| u.access.groups.iter().map(ArcStr::as_str)),
        );
        let roles = settings.managed_roles.iter().map(String::as_str).chain(
            users
                .iter()
                .flat_map(|u| u.access.roles.iter().map(|g| g.role.as_str())),
        );
        // Only PROJECT roles are ever granted, so only they are ever revoked.
        let mut role_ids: Vec<&str> = ids_of(roles, &index.roles_by_name)
            .into_iter()
            .filter(|id| access::is_project_role(index.role_types.get(id).copied().flatten()))
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

fn managed_counts(matching: &Matching, managed: &Managed) -> ManagedCounts {
    let protected: &Protected = &matching.protected;
    let managed_users: Vec<_> = matching
        .ftrack
        .users
        .iter()
        .filter(|u| u.metadata.contains_key(ANCHOR_KEY) && !protected.contains(&u.username))
        .collect();
    let ids: FxHashSet<&str> = managed_users.iter().map(|u| u.id.as_str()).collect();
    // Millions of links at a million users: counted on a thread per core.
    let ftrack = matching.ftrack;
    let parts = crate::parallel::threads_for(ftrack.users.len());
    let memberships = crate::parallel::map_chunks(&ftrack.memberships, parts, |chunk, _| {
        chunk
            .iter()
            .filter(|m| {
                ids.contains(m.user_id.as_str()) && managed.group_ids.contains(m.group_id.as_str())
            })
            .count()
    })
    .into_iter()
    .sum();
    let role_grants =
        crate::parallel::map_chunks(&ftrack.user_security_roles, parts, |chunk, _| {
            chunk
                .iter()
                .filter(|g| {
                    ids.contains(g.user_id.as_str())
                    && managed.role_ids.contains(&g.security_role_id.as_str())
                    // One grant per user and role: the one the index keeps.
                    && matching
                        .index
                        .grant(&g.user_id, &g.security_role_id)
                        .is_some_and(|kept| std::ptr::eq(kept, *g))
                })
                .map(|g| usize::from(g.is_all_open_projects) + g.project_ids.len())
                .sum::<usize>()
        })
        .into_iter()
        .sum();
    ManagedCounts {
        users: managed_users.iter().filter(|u| u.is_active).count(),
        memberships,
        role_grants,
    }
}

#[cfg(test)]
mod tests;
