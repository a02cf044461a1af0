//! From raw entries to the [`DirectorySnapshot`] the rules and the planner read: stable ids,
//! disabled state, and each user's direct and flattened (nested) groups.
//!
//! Membership comes from the groups' own member lists (`member`, `uniqueMember`,
//! `memberUid`), compared by normalised DN, so it is the same whether or not the server keeps
//! `memberOf`. Members that are not users (contacts, unknown DNs, a `memberUid` nobody has)
//! are skipped and counted, never guessed.

use super::entry::{Entry, Value};
use super::{DirectoryError, EntrySet, ReadStats};
use crate::ldap_syntax::dn::{self, DnError, NormalizedDn};
use rustc_hash::FxHashMap;
use std::collections::{HashMap, VecDeque};

/// Index of a group in [`DirectorySnapshot::groups`].
pub type GroupId = u32;

/// Everything the directory says, complete.
#[derive(Debug, Clone, Default)]
pub struct DirectorySnapshot {
    /// Users, sorted by normalised DN.
    pub users: Vec<DirectoryUser>,
    /// Groups, sorted by normalised DN.
    pub groups: Vec<DirectoryGroup>,
    pub skipped: SkippedMembers,
    pub stats: ReadStats,
}

#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub entry: Entry,
    pub dn: NormalizedDn,
    /// entryUUID, nsUniqueId, or objectGUID in canonical GUID form; lower case.
    pub stable_id: Option<String>,
    /// Disabled or locked in the directory (AD userAccountControl, nsAccountLock, ppolicy).
    pub disabled: bool,
    /// Groups that list this user directly.
    pub direct_groups: Vec<GroupId>,
    /// Direct groups and every group containing them, sorted, without repeats.
    pub groups: Vec<GroupId>,
}

impl DirectoryUser {
    /// The anchor stored on the user's ftrack user ([`anchor`]).
    pub fn anchor(&self) -> String {
        anchor(self.stable_id.as_deref(), &self.entry.dn)
    }
}

/// The anchor ldap2ftrack stores on an entry's ftrack user (`ldap2ftrack.anchor`): its
/// stable id, or `dn:` and its lower-cased DN when the directory has none.
pub fn anchor(stable_id: Option<&str>, dn: &str) -> String {
    match stable_id {
        Some(id) => id.to_string(),
        None => format!("dn:{}", dn.to_lowercase()),
    }
}

#[derive(Debug, Clone)]
pub struct DirectoryGroup {
    /// The group entry, without its member values (they are resolved into ids).
    pub entry: Entry,
    pub dn: NormalizedDn,
    /// The group's cn (or its DN's leaf value), as written.
    pub name: String,
    /// Groups listed as members of this one.
    pub subgroups: Vec<GroupId>,
    /// True when the group (indirectly) contains itself.
    pub in_cycle: bool,
}

/// How many skipped member values are kept as examples for the log.
const SKIPPED_EXAMPLES: usize = 5;

/// Member values that did not name a user or a group of the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkippedMembers {
    /// `member`/`uniqueMember` DNs that are neither a selected user nor a selected group.
    pub unknown_dn: u64,
    /// Member values that are not valid DNs.
    pub invalid_dn: u64,
    /// `memberUid` values that no selected user has as `uid`.
    pub missing_uid: u64,
    /// A few examples, for the log.
    pub examples: Vec<String>,
}

impl SkippedMembers {
    pub fn total(&self) -> u64 {
        self.unknown_dn + self.invalid_dn + self.missing_uid
    }

    fn note(&mut self, example: impl FnOnce() -> String) {
        if self.examples.len() < SKIPPED_EXAMPLES {
            self.examples.push(example());
        }
    }

    /// Adds the counts and examples of members skipped in later groups.
    fn absorb(&mut self, later: SkippedMembers) {
        self.unknown_dn += later.unknown_dn;
        self.invalid_dn += later.invalid_dn;
        self.missing_uid += later.missing_uid;
        let room = SKIPPED_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(later.examples.into_iter().take(room));
    }
}

impl DirectorySnapshot {
    pub fn disabled_users(&self) -> usize {
        self.users.iter().filter(|u| u.disabled).count()
    }

    /// (user, group) pairs after flattening nested groups.
    pub fn memberships(&self) -> usize {
        self.users.iter().map(|u| u.groups.len()).sum()
    }

    pub fn group(&self, id: GroupId) -> &DirectoryGroup {
        &self.groups[id as usize]
    }
}

const MEMBER_DN_ATTRIBUTES: [&str; 2] = ["member", "uniqueMember"];
/// The user attribute a group's `memberUid` values are compared with.
pub const MEMBER_UID_ATTRIBUTE: &str = "uid";

/// Derives the snapshot. Fails only on a user or group entry whose own DN is invalid, which a
/// server never sends: better no run than a run that silently drops someone.
pub fn assemble(set: EntrySet) -> Result<DirectorySnapshot, DirectoryError> {
    assemble_in_parts(set, None)
}

/// [`assemble`] in `parts` parts, a thread each (`None`: by the number of users): the users
/// read and sorted, and the groups' members resolved.
fn assemble_in_parts(
    set: EntrySet,
    parts: Option<usize>,
) -> Result<DirectorySnapshot, DirectoryError> {
    let invalid = |dn: &str, e: DnError| DirectoryError::Incomplete {
        base_dn: dn.to_string(),
        reason: format!("the directory returned an entry with an invalid DN: {e}"),
    };
    let parts = parts.unwrap_or_else(|| crate::parallel::threads_for(set.users.len()));
    let total = set.users.len();
    // For a large directory each part's users are read and sorted on a thread of their
    // own; the sort of the whole then only merges the sorted parts. The first part has room
    // for everyone, so the others are moved in after it and it is never moved itself.
    let sorted_parts: Vec<Result<Vec<DirectoryUser>, DirectoryError>> =
        crate::parallel::map_parts(set.users, parts, |entries, first| {
            let mut users = Vec::with_capacity(if first == 0 { total } else { entries.len() });
            for entry in entries {
                let dn = NormalizedDn::parse(&entry.dn).map_err(|e| invalid(&entry.dn, e))?;
                users.push(DirectoryUser {
                    stable_id: stable_id(&entry),
                    disabled: is_disabled(&entry),
                    dn,
                    entry,
                    direct_groups: Vec::new(),
                    groups: Vec::new(),
                });
            }
            users.sort_by(|a, b| a.dn.cmp(&b.dn));
            Ok(users)
        });
    let mut sorted_parts = sorted_parts.into_iter();
    let mut users: Vec<DirectoryUser> = sorted_parts.next().transpose()?.unwrap_or_default();
    for part in sorted_parts {
        users.extend(part?);
    }
    users.sort_by(|a, b| a.dn.cmp(&b.dn));
    users.dedup_by(|a, b| a.dn == b.dn);

    let mut raw_groups: Vec<(NormalizedDn, Entry)> = set
        .groups
        .into_iter()
        .map(|entry| {
            Ok((
                NormalizedDn::parse(&entry.dn).map_err(|e| invalid(&entry.dn, e))?,
                entry,
            ))
        })
        .collect::<Result<_, DirectoryError>>()?;
    raw_groups.sort_by(|a, b| a.0.cmp(&b.0));
    raw_groups.dedup_by(|a, b| a.0 == b.0);

    // Keyed by the canonical text, so a member DN in the usual simple shape is looked up
    // from a reused buffer: no parse and no allocation per member value.
    // A member value is nearly always written exactly as the member's own entry DN, so the
    // DNs as the server sent them are looked up first: no canonical form to build for most
    // of a million values. The two users' maps are built side by side for a large directory.
    let by_dn = || -> FxHashMap<&str, usize> {
        users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.dn.as_str(), i))
            .collect()
    };
    let by_sent_dn = || -> FxHashMap<&str, usize> {
        users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.entry.dn.as_str(), i))
            .collect()
    };
    let (user_by_sent_dn, user_by_dn) = crate::parallel::join(parts > 1, by_sent_dn, by_dn);
    let group_by_dn: FxHashMap<&str, GroupId> = raw_groups
        .iter()
        .enumerate()
        .map(|(i, (dn, _))| (dn.as_str(), i as GroupId))
        .collect();
    // A group that is also a selected user is left to the canonical lookup, which finds
    // users first.
    let group_by_sent_dn: FxHashMap<&str, GroupId> = raw_groups
        .iter()
        .enumerate()
        .filter(|(_, (dn, _))| !user_by_dn.contains_key(dn.as_str()))
        .map(|(i, (_, entry))| (entry.dn.as_str(), i as GroupId))
        .collect();
    // Built only when some group lists members by uid.
    let lists_uids = raw_groups
        .iter()
        .any(|(_, entry)| entry.texts("memberUid").next().is_some());
    let user_by_uid: Option<HashMap<String, usize>> = lists_uids.then(|| {
        let mut by_uid = HashMap::new();
        for (i, u) in users.iter().enumerate() {
            for uid in u.entry.texts(MEMBER_UID_ATTRIBUTE) {
                by_uid.entry(uid.trim().to_lowercase()).or_insert(i);
            }
        }
        by_uid
    });
    let lookups = MemberLookups {
        user_by_dn,
        group_by_dn,
        user_by_sent_dn,
        group_by_sent_dn,
        user_by_uid,
    };

    // The groups' member values resolved in consecutive parts of the groups, a thread each
    // for a large directory (a million values are a million hash lookups), then put
    // together in group order.
    // The parts carry about as many member values each: one group may hold them all.
    let member_values = |(_, entry): &(NormalizedDn, Entry)| {
        MEMBER_DN_ATTRIBUTES
            .iter()
            .chain(&["memberUid"])
            .map(|a| entry.values(a).len())
            .sum()
    };
    let resolved =
        crate::parallel::map_weighted(&raw_groups, parts, member_values, |groups, first| {
            lookups.resolve(groups, first)
        });
    drop(lookups);
    // Each user's direct groups, placed one user after another (a counting sort of the
    // (user, group) pairs: one vector, not a small one per user).
    let mut starts = vec![0usize; users.len() + 1];
    for part in &resolved {
        for &(user, _) in &part.direct {
            starts[user as usize + 1] += 1;
        }
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut placed: Vec<GroupId> = vec![0; starts[users.len()]];
    let mut next = starts.clone();
    let mut skipped = SkippedMembers::default();
    let mut subgroups: Vec<Vec<GroupId>> = Vec::with_capacity(raw_groups.len());
    for part in resolved {
        for (user, group) in part.direct {
            placed[next[user as usize]] = group;
            next[user as usize] += 1;
        }
        subgroups.extend(part.subgroups);
        skipped.absorb(part.skipped);
    }
    drop(next);

    // Direct groups sorted, and flattened with their ancestors, a thread per part.
    let ancestors = ancestors_of_every_group(&subgroups);
    let flattened = crate::parallel::map_chunks(&starts[..users.len()], parts, |chunk, first| {
        chunk
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let mut groups = placed[start..starts[first + i + 1]].to_vec();
                groups.sort_unstable();
                groups.dedup();
                let mut all: Vec<GroupId> = groups
                    .iter()
                    .flat_map(|&g| std::iter::once(g).chain(ancestors[g as usize].iter().copied()))
                    .collect();
                all.sort_unstable();
                all.dedup();
                (groups, all)
            })
            .collect::<Vec<_>>()
    });
    for (user, (groups, all)) in users.iter_mut().zip(flattened.into_iter().flatten()) {
        user.direct_groups = groups;
        user.groups = all;
    }

    let groups = raw_groups
        .into_iter()
        .zip(subgroups)
        .enumerate()
        .map(|(gid, ((dn, mut entry), mut subs))| {
            entry.attributes.retain(|a| {
                !MEMBER_DN_ATTRIBUTES.iter().chain(&["memberUid"]).any(|m| {
                    a.name
                        .split(';')
                        .next()
                        .is_some_and(|n| n.eq_ignore_ascii_case(m))
                })
            });
            subs.sort_unstable();
            subs.dedup();
            let name = entry
                .first_text("cn")
                .map(str::to_string)
                .or_else(|| dn.leaf_value())
                .unwrap_or_default();
            DirectoryGroup {
                in_cycle: ancestors[gid].contains(&(gid as GroupId)),
                entry,
                dn,
                name,
                subgroups: subs,
            }
        })
        .collect();

    Ok(DirectorySnapshot {
        users,
        groups,
        skipped,
        stats: set.stats,
    })
}

/// Where a member value may point: users and groups by their DN as sent and in canonical
/// form, and users by uid (only when some group lists `memberUid`).
struct MemberLookups<'a> {
    user_by_dn: FxHashMap<&'a str, usize>,
    group_by_dn: FxHashMap<&'a str, GroupId>,
    user_by_sent_dn: FxHashMap<&'a str, usize>,
    group_by_sent_dn: FxHashMap<&'a str, GroupId>,
    user_by_uid: Option<HashMap<String, usize>>,
}

/// What the member values of some consecutive groups point at.
struct ResolvedMembers {
    /// (user, group) for each value naming a user.
    direct: Vec<(u32, GroupId)>,
    /// Each of the groups' member groups, in group order.
    subgroups: Vec<Vec<GroupId>>,
    skipped: SkippedMembers,
}

impl MemberLookups<'_> {
    /// Resolves the member values of `groups`, the first of which has id `first_gid`.
    fn resolve(&self, groups: &[(NormalizedDn, Entry)], first_gid: usize) -> ResolvedMembers {
        let mut resolved = ResolvedMembers {
            direct: Vec::new(),
            subgroups: vec![Vec::new(); groups.len()],
            skipped: SkippedMembers::default(),
        };
        let skipped = &mut resolved.skipped;
        let mut simple = String::new();
        for (i, (group_dn, entry)) in groups.iter().enumerate() {
            let gid = (first_gid + i) as GroupId;
            let subgroups = &mut resolved.subgroups[i];
            let mut member_user = |u: usize| resolved.direct.push((u as u32, gid));
            for attr in MEMBER_DN_ATTRIBUTES {
                for value in entry.values(attr) {
                    let Value::Text(text) = value else {
                        skipped.invalid_dn += 1;
                        continue;
                    };
                    let written = strip_unique_member_uid(text);
                    if let Some(&u) = self.user_by_sent_dn.get(written) {
                        member_user(u);
                        continue;
                    }
                    if let Some(&g) = self.group_by_sent_dn.get(written) {
                        subgroups.push(g);
                        continue;
                    }
                    let parsed;
                    let member: &str = if dn::simple_canonical_into(written, &mut simple) {
                        &simple
                    } else {
                        match NormalizedDn::parse(written) {
                            Ok(dn) => {
                                parsed = dn;
                                parsed.as_str()
                            }
                            Err(_) => {
                                skipped.invalid_dn += 1;
                                skipped.note(|| format!("{group_dn}: invalid member DN `{text}`"));
                                continue;
                            }
                        }
                    };
                    if let Some(&u) = self.user_by_dn.get(member) {
                        member_user(u);
                    } else if let Some(&g) = self.group_by_dn.get(member) {
                        subgroups.push(g);
                    } else {
                        skipped.unknown_dn += 1;
                        skipped.note(|| {
                            format!("{group_dn}: member `{text}` is not a selected user or group")
                        });
                    }
                }
            }
            for uid in entry.texts("memberUid") {
                let found = self
                    .user_by_uid
                    .as_ref()
                    .and_then(|by_uid| by_uid.get(&uid.trim().to_lowercase()));
                match found {
                    Some(&u) => member_user(u),
                    None => {
                        skipped.missing_uid += 1;
                        skipped.note(|| format!("{group_dn}: memberUid `{uid}` has no user"));
                    }
                }
            }
        }
        resolved
    }
}

/// For each group, every group that contains it directly or through nesting (cycle-safe).
fn ancestors_of_every_group(subgroups: &[Vec<GroupId>]) -> Vec<Vec<GroupId>> {
    let mut parents: Vec<Vec<GroupId>> = vec![Vec::new(); subgroups.len()];
    for (parent, children) in subgroups.iter().enumerate() {
        for &child in children {
            parents[child as usize].push(parent as GroupId);
        }
    }
    let mut seen = vec![u32::MAX; subgroups.len()];
    let mut queue = VecDeque::new();
    (0..subgroups.len())
        .map(|start| {
            let mut found = Vec::new();
            queue.clear();
            queue.push_back(start as GroupId);
            while let Some(g) = queue.pop_front() {
                for &p in &parents[g as usize] {
                    if seen[p as usize] != start as u32 {
                        seen[p as usize] = start as u32;
                        found.push(p);
                        queue.push_back(p);
                    }
                }
            }
            found.sort_unstable();
            found
        })
        .collect()
}

/// `uniqueMember` may carry an optional `#'0101'B` unique identifier after the DN.
fn strip_unique_member_uid(value: &str) -> &str {
    if let Some(at) = value.rfind("#'") {
        if value.ends_with("'B")
            && value[at + 2..value.len() - 2]
                .chars()
                .all(|c| c == '0' || c == '1')
        {
            return &value[..at];
        }
    }
    value
}

fn stable_id(entry: &Entry) -> Option<String> {
    if let Some(id) = entry
        .first_text("entryUUID")
        .or_else(|| entry.first_text("nsUniqueId"))
    {
        return Some(id.trim().to_ascii_lowercase());
    }
    match entry.values("objectGUID").first()? {
        Value::Binary(bytes) => guid_string(bytes),
        Value::Text(text) => Some(text.trim().trim_matches(['{', '}']).to_ascii_lowercase()),
    }
}

/// AD's objectGUID bytes as the canonical GUID string: the first three fields little-endian.
pub fn guid_string(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// AD `userAccountControl` bit 2 (ACCOUNTDISABLE), 389/FreeIPA `nsAccountLock`, OpenLDAP
/// ppolicy `pwdAccountLockedTime`.
fn is_disabled(entry: &Entry) -> bool {
    let uac_disabled = entry
        .texts("userAccountControl")
        .any(|v| v.trim().parse::<i64>().is_ok_and(|n| n & 2 != 0));
    let ns_locked = entry
        .texts("nsAccountLock")
        .any(|v| v.trim().eq_ignore_ascii_case("true"));
    let ppolicy_locked = !entry.values("pwdAccountLockedTime").is_empty();
    uac_disabled || ns_locked || ppolicy_locked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, pairs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(dn);
        for (k, v) in pairs {
            e.push(k, Value::Text(v.to_string()));
        }
        e
    }

    fn names(snapshot: &DirectorySnapshot, ids: &[GroupId]) -> Vec<String> {
        ids.iter()
            .map(|&g| snapshot.group(g).name.clone())
            .collect()
    }

    /// Users and groups with every kind of member value: nested groups through a cycle and
    /// a diamond, `uniqueMember` with a uid suffix, `memberUid`, unknown and invalid DNs.
    fn nested_set() -> EntrySet {
        let users = vec![
            entry("uid=a,ou=p,dc=x", &[("uid", "a")]),
            entry("uid=b,ou=p,dc=x", &[("uid", "b")]),
        ];
        // a ∈ leaf; leaf ⊂ mid1, mid2 (diamond) ⊂ top; top ⊂ leaf (cycle); b via memberUid.
        let groups = vec![
            entry(
                "cn=leaf,ou=g,dc=x",
                &[
                    ("cn", "leaf"),
                    ("member", "UID=A,OU=P,DC=X"),
                    ("member", "cn=top,ou=g,dc=x"),
                ],
            ),
            entry(
                "cn=mid1,ou=g,dc=x",
                &[("cn", "mid1"), ("member", "cn=leaf,ou=g,dc=x")],
            ),
            entry(
                "cn=mid2,ou=g,dc=x",
                &[
                    ("cn", "mid2"),
                    ("uniqueMember", "cn=leaf,ou=g,dc=x#'0101'B"),
                ],
            ),
            entry(
                "cn=top,ou=g,dc=x",
                &[
                    ("cn", "top"),
                    ("member", "cn=mid1,ou=g,dc=x"),
                    ("member", "cn=mid2,ou=g,dc=x"),
                ],
            ),
            entry(
                "cn=posix,ou=g,dc=x",
                &[("cn", "posix"), ("memberUid", "B"), ("memberUid", "ghost")],
            ),
            entry(
                "cn=odd,ou=g,dc=x",
                &[
                    ("cn", "odd"),
                    ("member", "cn=contact,ou=c,dc=x"),
                    ("member", "not a dn"),
                ],
            ),
        ];
        EntrySet {
            users,
            groups,
            ..EntrySet::default()
        }
    }

    #[test]
    fn nested_groups_flatten_through_cycles_and_diamonds() {
        let s = assemble(nested_set()).unwrap();
        let a = &s.users[0];
        assert_eq!(names(&s, &a.direct_groups), vec!["leaf"]);
        assert_eq!(names(&s, &a.groups), vec!["leaf", "mid1", "mid2", "top"]);
        let b = &s.users[1];
        assert_eq!(names(&s, &b.groups), vec!["posix"]);
        assert_eq!(s.memberships(), 5);
        assert!(s.groups.iter().filter(|g| g.in_cycle).count() == 4);
        assert!(
            !s.groups
                .iter()
                .find(|g| g.name == "posix")
                .unwrap()
                .in_cycle
        );
        assert_eq!(s.skipped.unknown_dn, 1);
        assert_eq!(s.skipped.invalid_dn, 1);
        assert_eq!(s.skipped.missing_uid, 1);
        assert!(s.groups.iter().all(|g| g.entry.values("member").is_empty()));
    }

    #[test]
    fn assembled_in_parts_on_several_threads_give_the_snapshot_of_one() {
        let one = assemble_in_parts(nested_set(), Some(1)).unwrap();
        assert_eq!(one.skipped.total(), 3);
        for parts in [2, 4, 6] {
            let split = assemble_in_parts(nested_set(), Some(parts)).unwrap();
            assert_eq!(format!("{split:?}"), format!("{one:?}"), "{parts} parts");
        }
        // Users read in parts and sorted apart: two spellings of one DN, in different parts,
        // are still one user (the first read), as on one thread.
        let spelled_twice = || EntrySet {
            users: vec![
                entry("uid=dup,ou=p,dc=x", &[("uid", "first")]),
                entry("uid=b,ou=p,dc=x", &[("uid", "b")]),
                entry("uid=a,ou=p,dc=x", &[("uid", "a")]),
                entry("UID=dup,OU=p,DC=x", &[("uid", "second")]),
            ],
            groups: vec![entry("cn=g,dc=x", &[("member", "uid=dup,ou=p,dc=x")])],
            ..EntrySet::default()
        };
        let one = assemble_in_parts(spelled_twice(), Some(1)).unwrap();
        assert_eq!(one.users.len(), 3);
        for parts in [2, 3, 4] {
            let split = assemble_in_parts(spelled_twice(), Some(parts)).unwrap();
            assert_eq!(format!("{split:?}"), format!("{one:?}"), "{parts} parts");
        }
        // An invalid DN fails the assembly whichever part holds it.
        for parts in [1, 2, 3] {
            let mut set = spelled_twice();
            set.users[2].dn = "not a dn".into();
            assert!(
                assemble_in_parts(set, Some(parts)).is_err(),
                "{parts} parts"
            );
        }
    }

    #[test]
    fn members_match_as_sent_or_by_canonical_dn_and_users_come_first() {
        // `both` is selected as a user and as a group, spelled differently; the two spellings
        // of `dup` are one user, kept once.
        let users = vec![
            entry("uid=a, ou=p,dc=x", &[("uid", "a")]),
            entry("CN=both,OU=g,DC=x", &[("uid", "both")]),
            entry("uid=dup,ou=p,dc=x", &[("uid", "dup")]),
            entry("UID=dup,OU=p,DC=x", &[("uid", "dup")]),
        ];
        let groups = vec![
            entry(
                "cn=g,ou=g,dc=x",
                &[
                    ("cn", "g"),
                    // as sent, then in another spelling: one membership
                    ("member", "uid=a, ou=p,dc=x"),
                    ("member", "UID=A,OU=P,DC=X"),
                    // both spellings of the deduplicated user
                    ("member", "uid=dup,ou=p,dc=x"),
                    ("member", "UID=dup,OU=p,DC=x"),
                    ("member", "cn=both,ou=g,dc=x"),
                    ("member", "cn=sub,ou=g,dc=x"),
                ],
            ),
            entry("cn=both,ou=g,dc=x", &[("cn", "both")]),
            entry("CN=sub,OU=g,DC=x", &[("cn", "sub")]),
        ];
        let s = assemble(EntrySet {
            users,
            groups,
            ..EntrySet::default()
        })
        .unwrap();
        let user = |uid: &str| {
            s.users
                .iter()
                .find(|u| u.entry.first_text("uid") == Some(uid))
                .unwrap()
        };
        assert_eq!(s.users.len(), 3);
        assert_eq!(names(&s, &user("a").direct_groups), vec!["g"]);
        assert_eq!(names(&s, &user("dup").direct_groups), vec!["g"]);
        assert_eq!(names(&s, &user("both").direct_groups), vec!["g"]);
        let g = s.groups.iter().find(|g| g.name == "g").unwrap();
        assert_eq!(g.subgroups.len(), 1, "only sub: both is a user first");
        assert_eq!(s.group(g.subgroups[0]).name, "sub");
        assert_eq!(s.skipped.unknown_dn + s.skipped.invalid_dn, 0);
    }

    #[test]
    fn stable_ids_and_disabled_state_from_every_directory_kind() {
        let mut ad = entry("cn=ad,dc=x", &[("userAccountControl", "514")]);
        ad.push("objectGUID", Value::Binary((0u8..16).collect()));
        let s = assemble(EntrySet {
            users: vec![
                ad,
                entry(
                    "cn=ol,dc=x",
                    &[
                        ("entryUUID", "6F1C1C1E-3D1A-4A53-9A51-0B3F0F7E0001"),
                        ("pwdAccountLockedTime", "000001010000Z"),
                    ],
                ),
                entry(
                    "cn=ipa,dc=x",
                    &[("nsUniqueId", "abc-DEF"), ("nsAccountLock", "TRUE")],
                ),
                entry(
                    "cn=ok,dc=x",
                    &[("userAccountControl", "512"), ("nsAccountLock", "false")],
                ),
            ],
            ..EntrySet::default()
        })
        .unwrap();
        let by = |cn: &str| {
            s.users
                .iter()
                .find(|u| u.entry.dn == format!("cn={cn},dc=x"))
                .unwrap()
        };
        assert_eq!(
            by("ad").stable_id.as_deref(),
            Some("03020100-0504-0706-0809-0a0b0c0d0e0f")
        );
        assert_eq!(
            by("ol").stable_id.as_deref(),
            Some("6f1c1c1e-3d1a-4a53-9a51-0b3f0f7e0001")
        );
        assert_eq!(by("ipa").stable_id.as_deref(), Some("abc-def"));
        assert_eq!(by("ok").stable_id, None);
        assert!(by("ad").disabled && by("ol").disabled && by("ipa").disabled);
        assert!(!by("ok").disabled);
        assert_eq!(s.disabled_users(), 3);
    }

    #[test]
    fn an_invalid_user_dn_fails_the_read() {
        let err = assemble(EntrySet {
            users: vec![entry("cn=\"broken", &[])],
            ..EntrySet::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("invalid DN"), "{err}");
    }
}
