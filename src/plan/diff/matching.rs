//! Which ftrack user each directory user is: by the anchor ldap2ftrack stored on it, or by
//! username on first adoption. What is left over — anchored ftrack users LDAP no longer has,
//! and matched users LDAP has disabled — is departed, and goes to the rules' `deprovision`
//! hook before the diff.

use super::index::{FtrackPositions, Index};
use super::{PlanSettings, ANCHOR_KEY, MISSING_SINCE_KEY};
use crate::caseless::lowercase;
use crate::ftrack::snapshot::{FtrackSnapshot, FtrackUser};
use crate::rules::pipeline::{DesiredUser, Evaluation, SkippedEntry};
use crate::rules::DepartedUser;
use rustc_hash::FxHashSet;

/// The directory users matched to ftrack, and the ftrack users that departed.
pub struct Matching<'a> {
    pub(super) index: Index<'a>,
    pub(super) evaluation: &'a Evaluation,
    pub(super) ftrack: &'a FtrackSnapshot,
    pub(super) protected: Protected,
    /// Enabled directory users to plan for, sorted by username, with their ftrack user.
    pub(super) users: Vec<Matched<'a>>,
    /// ftrack users LDAP no longer has (`None`) or has disabled (its entry), in a fixed order.
    pub(super) departed: Vec<(&'a FtrackUser, Option<&'a DesiredUser>)>,
    /// Entries left out because their ftrack user belongs to another entry.
    pub(super) skipped: Vec<SkippedEntry>,
    /// Protected users the directory names.
    pub(super) notes: Vec<String>,
}

pub(super) struct Matched<'a> {
    pub(super) user: &'a DesiredUser,
    pub(super) anchor: String,
    /// The ftrack user, when there is one.
    pub(super) current: Option<&'a FtrackUser>,
}

impl<'a> Matching<'a> {
    /// Matches `evaluation`'s users to `ftrack`'s, indexing ftrack with `positions` when
    /// they were built for it already ([`FtrackPositions::new`]).
    pub fn new(
        evaluation: &'a Evaluation,
        ftrack: &'a FtrackSnapshot,
        positions: Option<&'a FtrackPositions>,
        settings: &PlanSettings,
    ) -> Matching<'a> {
        // ftrack's index and the directory users' order are independent: for a large
        // directory they are built side by side (at a million users, seconds each).
        let sorted = || {
            let mut desired: Vec<&DesiredUser> = evaluation.users.iter().collect();
            desired.sort_by_cached_key(|u| lowercase(&u.fields.username));
            desired
        };
        let large = crate::parallel::threads_for(evaluation.users.len()) > 1;
        let (desired, index) =
            crate::parallel::join(large, sorted, || Index::new(ftrack, positions));
        let protected = Protected::new(settings);
        // Each user's ftrack user is looked up on a thread per core (at a million users, a
        // second of hash lookups); what the lookups mean is then decided in order.
        let parts = crate::parallel::threads_for(desired.len());
        let found = crate::parallel::map_chunks(&desired, parts, |chunk, _| {
            chunk
                .iter()
                .map(|user| Found::of(user, &index, &protected))
                .collect::<Vec<_>>()
        });
        let mut users = Vec::new();
        let mut departed = Vec::new();
        let mut skipped = Vec::new();
        let mut notes = Vec::new();
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for (user, found) in desired.into_iter().zip(found.into_iter().flatten()) {
            let Found {
                anchor,
                matched,
                protected,
            } = found;
            let matched = match matched {
                Ok(matched) => matched,
                Err(other) => {
                    skipped.push(SkippedEntry::of(&user.entry, format!(
                        "ftrack user `{}` belongs to another LDAP entry (anchor {}); rename one of them",
                        other.username,
                        other.metadata.get(ANCHOR_KEY).map(String::as_str).unwrap_or("")
                    )));
                    continue;
                }
            };
            if let Some(u) = matched {
                seen.insert(u.id.as_str());
                if protected {
                    notes.push(format!("`{}` is protected; left as it is", u.username));
                    continue;
                }
            } else if protected {
                let username = user.fields.username.trim();
                notes.push(format!("`{username}` is protected; not created"));
                continue;
            }
            if user.entry.disabled {
                if let Some(u) = matched {
                    departed.push((u, Some(user)));
                }
                continue;
            }
            users.push(Matched {
                user,
                anchor,
                current: matched,
            });
        }

        // An entry left out of this run is still in LDAP: its user is not departed.
        for entry in evaluation.skipped.iter().chain(&skipped) {
            if let Some(u) = index.user_by_anchor(&entry.anchor) {
                seen.insert(u.id.as_str());
            }
        }
        for u in &ftrack.users {
            let anchored = u.metadata.contains_key(ANCHOR_KEY);
            if anchored && !seen.contains(u.id.as_str()) && !protected.contains(&u.username) {
                departed.push((u, None));
            }
        }
        Matching {
            index,
            evaluation,
            ftrack,
            protected,
            users,
            departed,
            skipped,
            notes,
        }
    }

    /// The departed users as the `deprovision` hook sees them, in [`Matching`] order.
    pub fn departed_users(&self, today: &str) -> Vec<DepartedUser> {
        self.departed
            .iter()
            .map(|(user, still_in_ldap)| DepartedUser {
                username: user.username.clone(),
                email: user.email.clone(),
                ldap_disabled: still_in_ldap.is_some(),
                missing_since: Some(
                    user.metadata
                        .get(MISSING_SINCE_KEY)
                        .cloned()
                        .unwrap_or_else(|| today.to_string()),
                ),
                today: today.to_string(),
                entry: still_in_ldap.map(|d| d.entry.clone()),
            })
            .collect()
    }
}

/// What the index says of one directory user.
struct Found<'a> {
    anchor: String,
    /// The ftrack user by anchor, else by username (`None`: none yet); `Err`: the user of
    /// that username carries another entry's anchor.
    matched: Result<Option<&'a FtrackUser>, &'a FtrackUser>,
    /// The matched user, or the username to create, is protected.
    protected: bool,
}

impl<'a> Found<'a> {
    fn of(user: &DesiredUser, index: &Index<'a>, protected: &Protected) -> Found<'a> {
        let anchor = user.entry.anchor();
        let username = user.fields.username.trim();
        let matched = match index.user_by_anchor(&anchor) {
            Some(u) => Ok(Some(u)),
            None => match index.user_by_name(&lowercase(username)) {
                Some(u) if u.metadata.get(ANCHOR_KEY).is_some_and(|a| *a != anchor) => Err(u),
                other => Ok(other),
            },
        };
        let protected = match matched {
            Ok(Some(u)) => protected.contains(&u.username),
            Ok(None) => protected.contains(username),
            Err(_) => false,
        };
        Found {
            anchor,
            matched,
            protected,
        }
    }
}

/// The API user and `protected_users`, compared case-insensitively.
pub(super) struct Protected(FxHashSet<String>);

impl Protected {
    fn new(settings: &PlanSettings) -> Protected {
        Protected(
            std::iter::once(&settings.api_user)
                .chain(&settings.protected_users)
                .map(|u| u.to_lowercase())
                .collect(),
        )
    }

    pub(super) fn contains(&self, username: &str) -> bool {
        self.0.contains(lowercase(username).as_ref())
    }
}
