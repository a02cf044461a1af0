//! Reading only what changed in the directory, when the server can say (syncrepl, or an
//! Active Directory DC's update sequence numbers), and narrowing the run to the users it touches; a full read whenever that is not certain.
//!
//! The decision, in order: `[sync] mode = "full"`, an LDIF source, or `--full` read
//! everything; so does a missing, unreadable, foreign (another server, configuration or rule
//! module) or old (`[sync] full_every`) state, and a server that refuses the stored position
//! or answers doubtfully. Each of those is one log line saying why. A full read on a server
//! that offers syncrepl is itself a sync search from no cookie; on a domain controller it is
//! the paged read with the DC's position taken first; either yields the next state. On a
//! server that reports no changes it is the usual paged read, and runs stay full.
//!
//! An incremental run brings the stored entries forward by the refresh, assembles the
//! directory before and after, and names the users whose inputs to the rules differ (their
//! entry, disabled state, or groups — a changed group touches every user in it, directly or
//! nested) or who left. The planner sees only those users and the ftrack users that are
//! theirs (`scope`); see ARCHITECTURE.md for why that plan equals a full run's.

use crate::config::{Config, DirectorySource, SyncMode};
use crate::directory::ldap::change_source::{self, ChangeSource};
pub use crate::directory::ldap::change_source::{Refresh, RefreshError};
use crate::directory::ldap::{syncrepl, usn};
use crate::directory::snapshot::{self, DirectorySnapshot, DirectoryUser};
use crate::directory::sync_state::SyncState;
use crate::directory::{self, EntrySet};
use crate::failure::Failure;
use crate::ftrack::FtrackSnapshot;
use crate::plan::diff::ANCHOR_KEY;
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// What an incremental read found.
pub enum DirectoryRead {
    /// Only changes, and there were none.
    Unchanged { next: SyncState, total_users: usize },
    /// Only changes: the directory as it is now, and the users they touch.
    Changed {
        directory: DirectorySnapshot,
        scope: Scope,
        next: SyncState,
    },
}

/// The users an incremental run plans for, by anchor (stable id, else `dn:` and the DN).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Users whose inputs to the rules changed, or who appeared.
    pub touched: FxHashSet<String>,
    /// Users who left the directory (or stopped matching the filter).
    pub departed: FxHashSet<String>,
}

/// What the stored state is bound to: the configuration file, the rule modules' pins and
/// the attributes asked for. Any change means the stored entries may not be what this
/// configuration would read or decide.
pub fn fingerprint(config: &Config, user_attributes: &Option<Vec<String>>) -> String {
    let mut hash = Sha256::new();
    hash.update(std::fs::read(&config.file).unwrap_or_default());
    for rule in &config.rules {
        hash.update(b"\0module\0");
        hash.update(rule.sha256.as_bytes());
    }
    hash.update(format!("{user_attributes:?}").as_bytes());
    hex::encode(hash.finalize())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What this run will do, decided from local facts only (no network).
pub enum Decision {
    /// Refresh from the stored state.
    Incremental(Box<SyncState>),
    /// Read everything, for this reason. `next_fingerprint`: the server may hand over a
    /// state, to be bound to this fingerprint; `None`: runs here stay full.
    Full {
        why: String,
        next_fingerprint: Option<String>,
    },
}

/// Decides between an incremental and a full read: `[sync] mode`, the source, `--full`, and
/// the stored state (missing, unreadable, foreign or older than `full_every`).
pub fn decide(
    config: &Config,
    user_attributes: &Option<Vec<String>>,
    reads_member_of: bool,
    force_full: bool,
) -> Decision {
    let url = match &config.ldap.source {
        DirectorySource::Server { url, .. } if config.sync.mode == SyncMode::Auto => url,
        DirectorySource::Server { .. } => {
            return Decision::Full {
                why: "[sync] mode = \"full\"".into(),
                next_fingerprint: None,
            }
        }
        DirectorySource::LdifFile(_) => {
            return Decision::Full {
                why: "the directory is an LDIF file".into(),
                next_fingerprint: None,
            }
        }
    };
    if let Some(key) = filter_reading_member_of(&config.ldap.user_filter, &config.ldap.group_filter)
    {
        return Decision::Full {
            why: format!(
                "ldap.{key} tests memberOf, and neither syncrepl nor Active Directory's USNs report a user whose memberOf changed, so who matches could change unseen; to read incrementally, select users by group with [group_mappings] (or a rule module) instead of in the filter"
            ),
            next_fingerprint: None,
        };
    }
    if reads_member_of {
        return Decision::Full {
            why: "a rule stage reads memberOf (or every attribute), and neither syncrepl nor Active Directory's USNs report changes of memberOf".into(),
            next_fingerprint: None,
        };
    }
    let fingerprint = fingerprint(config, user_attributes);
    let full = |why: String| Decision::Full {
        why,
        next_fingerprint: Some(fingerprint.clone()),
    };
    if force_full {
        return full("--full was given".into());
    }
    match SyncState::load(&config.sync.state_file, url, &fingerprint) {
        Err(why) => full(why.to_string()),
        Ok(state) if now().saturating_sub(state.full_at) >= config.sync.full_every.as_secs() => {
            full(format!(
                "the last full read is older than [sync] full_every ({})",
                humantime::format_duration(config.sync.full_every)
            ))
        }
        Ok(state) => Decision::Incremental(Box::new(state)),
    }
}

/// The filter setting that tests `memberOf` (a back-link: changing a group changes it on
/// the member without marking the member changed), if one does.
fn filter_reading_member_of(user_filter: &str, group_filter: &str) -> Option<&'static str> {
    let tests_member_of = |filter: &str| match crate::ldap_syntax::filter::Filter::parse(filter) {
        Ok(parsed) => parsed
            .attributes()
            .iter()
            .any(|a| a.eq_ignore_ascii_case("memberOf")),
        // Validated with the configuration; unparsable here means: do not trust it.
        Err(_) => true,
    };
    if tests_member_of(user_filter) {
        Some("user_filter")
    } else if tests_member_of(group_filter) {
        Some("group_filter")
    } else {
        None
    }
}

/// How runs with this configuration will read the directory, and why: for `check`.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Capability {
    pub mode: ReadMode,
    pub why: String,
}

/// Whether runs read only what changed, and how.
#[derive(Debug, Clone, Copy, serde::Serialize, PartialEq, Eq)]
pub enum ReadMode {
    #[serde(rename = "incremental (syncrepl)")]
    Syncrepl,
    #[serde(rename = "incremental (usn)")]
    Usn,
    #[serde(rename = "full")]
    Full,
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadMode::Syncrepl => "incremental (syncrepl)",
            ReadMode::Usn => "incremental (usn)",
            ReadMode::Full => "full",
        })
    }
}

/// Asks the server what it offers (its root DSE) and says which mode runs will use.
pub async fn capability(config: &Config, reads_member_of: bool) -> Capability {
    let full = |why: String| Capability {
        mode: ReadMode::Full,
        why,
    };
    if let Decision::Full {
        next_fingerprint: None,
        why,
    } = decide(config, &None, reads_member_of, true)
    {
        return full(why);
    }
    let env = |name: &str| std::env::var(name).ok();
    let safety_net = format!(
        "a full read after each change of configuration or module, when the state is missing or refused, on --full, and every {}",
        humantime::format_duration(config.sync.full_every)
    );
    match change_source::detect(&config.ldap, &env).await {
        Ok(Some(ChangeSource::Syncrepl)) => Capability {
            mode: ReadMode::Syncrepl,
            why: format!("the server offers the sync control; {safety_net}"),
        },
        Ok(Some(ChangeSource::Usn)) => Capability {
            mode: ReadMode::Usn,
            why: format!(
                "an Active Directory domain controller: changes are the objects whose uSNChanged is above the stored highestCommittedUSN of this DC (another DC or a restored one means a full read); deletes are seen when the bind account may read deleted objects (Domain Admins), else at the next full read; {safety_net}"
            ),
        },
        Ok(None) => full(format!(
            "the server reports no changes: it does not offer syncrepl (its root DSE does not list the sync control {}; OpenLDAP: the syncprov overlay) and is not an Active Directory domain controller (no highestCommittedUSN)",
            syncrepl::SYNC_REQUEST_OID
        )),
        Err(e) => full(format!("the server's root DSE could not be read: {e}")),
    }
}

/// Reads everything: with a sync search from no cookie when the server offers syncrepl, or
/// the DC's position and a paged read on Active Directory (so the next run can be
/// incremental, from a state bound to `next_fingerprint`), else with the paged read.
pub async fn read_full(
    config: &Config,
    user_attributes: Option<Vec<String>>,
    why: &str,
    next_fingerprint: Option<String>,
) -> Result<(EntrySet, Option<SyncState>), Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let (url, fingerprint) = match (&config.ldap.source, next_fingerprint) {
        (DirectorySource::Server { url, .. }, Some(fingerprint)) => (url.clone(), fingerprint),
        _ => return full_paged(config, user_attributes).await,
    };
    // A server that cannot answer for its root DSE is read the usual way; if it is down,
    // that read says so.
    let source = match change_source::detect(&config.ldap, &env).await {
        Ok(Some(source)) => source,
        Ok(None) => {
            tracing::info!(
                "full read: the server does not offer syncrepl (no syncprov overlay) and is not an Active Directory domain controller; every run reads everything"
            );
            return full_paged(config, user_attributes).await;
        }
        Err(e) => {
            tracing::debug!("the root DSE could not be read ({e}); reading with a paged search");
            return full_paged(config, user_attributes).await;
        }
    };
    tracing::info!("full read: {why}");
    let read = match source {
        ChangeSource::Syncrepl => {
            syncrepl::refresh(&config.ldap, &env, user_attributes.clone(), [None, None]).await
        }
        ChangeSource::Usn => usn::read_full(&config.ldap, &env, user_attributes.clone()).await,
    };
    match read {
        Ok(refreshes) => {
            let state = SyncState::from_full(&url, source, &fingerprint, now(), refreshes);
            let entries = state.entries();
            Ok((entries, Some(state)))
        }
        Err(RefreshError::Stale(why)) => {
            tracing::warn!("{why}; reading everything with a paged search, and runs stay full");
            full_paged(config, user_attributes).await
        }
        Err(RefreshError::Failed(e)) => Err(Failure::Runtime(e.to_string())),
    }
}

async fn full_paged(
    config: &Config,
    user_attributes: Option<Vec<String>>,
) -> Result<(EntrySet, Option<SyncState>), Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let entries = directory::read_entries_with_env(&config.ldap, user_attributes, &env)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok((entries, None))
}

/// Refreshes from the stored cookies: what the server says changed. `Stale`: read
/// everything.
pub async fn refresh_from(
    config: &Config,
    user_attributes: &Option<Vec<String>>,
    state: &SyncState,
) -> Result<[Refresh; 2], RefreshError> {
    let env = |name: &str| std::env::var(name).ok();
    let [users, groups] = state
        .cookies()
        .map_err(|e| RefreshError::Stale(e.to_string()))?;
    let attributes = user_attributes.clone();
    match state.source {
        ChangeSource::Syncrepl => {
            syncrepl::refresh(&config.ldap, &env, attributes, [Some(users), Some(groups)]).await
        }
        ChangeSource::Usn => usn::refresh(&config.ldap, &env, attributes, [users, groups]).await,
    }
}

/// Brings the stored entries forward by the refreshes and works out whom that touches
/// (blocking: it reads the entries file and assembles the directory twice).
pub fn bring_forward(
    state_file: &std::path::Path,
    mut state: SyncState,
    refreshes: [Refresh; 2],
) -> Result<DirectoryRead, RefreshError> {
    let read: u64 = refreshes.iter().map(|r| r.stats.entries).sum();
    state
        .load_entries(state_file)
        .map_err(|e| RefreshError::Stale(e.to_string()))?;
    let before = state.entries();
    let changed = state.apply(refreshes);
    tracing::info!(
        entries_read = read,
        users_changed = changed.users.len(),
        groups_changed = changed.groups.len(),
        "incremental read"
    );
    if changed.is_empty() {
        let total_users = state.user_count;
        return Ok(DirectoryRead::Unchanged {
            next: state,
            total_users,
        });
    }
    let after = state.entries();
    let stale = |e: directory::DirectoryError| RefreshError::Stale(e.to_string());
    let before = snapshot::assemble(before).map_err(stale)?;
    let after = snapshot::assemble(after).map_err(stale)?;
    let scope = scope(&before, &after);
    Ok(DirectoryRead::Changed {
        directory: after,
        scope,
        next: state,
    })
}

/// A user's groups as the rules see them: DN, name, and whether it lists the user directly.
type GroupsSeen<'a> = Vec<(&'a str, &'a str, bool)>;

/// What the rules see of each user, by anchor: its entry (and disabled state), and its groups.
fn inputs_of(directory: &DirectorySnapshot) -> FxHashMap<String, (&DirectoryUser, GroupsSeen<'_>)> {
    directory
        .users
        .iter()
        .map(|u| {
            let groups = u
                .groups
                .iter()
                .map(|&g| {
                    let group = directory.group(g);
                    (
                        group.dn.as_str(),
                        group.name.as_str(),
                        u.direct_groups.binary_search(&g).is_ok(),
                    )
                })
                .collect();
            (u.anchor(), (u, groups))
        })
        .collect()
}

/// The users whose inputs differ between two assembled directories, and those who left.
pub fn scope(before: &DirectorySnapshot, after: &DirectorySnapshot) -> Scope {
    let old = inputs_of(before);
    let new = inputs_of(after);
    let mut scope = Scope::default();
    for (anchor, (user, groups)) in &new {
        let same = old.get(anchor).is_some_and(|(was, was_in)| {
            was.entry == user.entry && was.disabled == user.disabled && *was_in == *groups
        });
        if !same {
            scope.touched.insert(anchor.clone());
        }
    }
    for anchor in old.keys() {
        if !new.contains_key(anchor) {
            scope.departed.insert(anchor.clone());
        }
    }
    scope
}

/// The directory and ftrack narrowed to the users an incremental run plans for; `None`
/// when narrowing would not pay (most users touched). `ftrack` may lack the memberships and
/// grants (read for the narrowed users afterwards, [`FtrackSnapshot::read_links`]).
///
/// The narrowing grows until it is closed: an ftrack user found by a touched user's
/// username belongs to another directory user (the username moved), so that user is
/// evaluated too — as a full run would, which sees both claim the name.
pub fn narrow(
    directory: &DirectorySnapshot,
    ftrack: &FtrackSnapshot,
    scope: &Scope,
    pipeline: &mut crate::rules::pipeline::Pipeline,
) -> Result<Option<(DirectorySnapshot, FtrackSnapshot)>, Failure> {
    let mut anchors: FxHashSet<String> = scope.touched.union(&scope.departed).cloned().collect();
    let in_directory: FxHashSet<String> =
        directory.users.iter().map(DirectoryUser::anchor).collect();
    for _ in 0..8 {
        if anchors.len() * 2 > directory.users.len().max(1) {
            return Ok(None);
        }
        let narrowed = DirectorySnapshot {
            users: directory
                .users
                .iter()
                .filter(|u| anchors.contains(&u.anchor()))
                .cloned()
                .collect(),
            groups: directory.groups.clone(),
            skipped: directory.skipped.clone(),
            stats: directory.stats,
        };
        let evaluation = pipeline
            .evaluate(&narrowed)
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        let usernames: FxHashSet<String> = evaluation
            .users
            .iter()
            .map(|u| u.fields.username.trim().to_lowercase())
            .collect();
        let narrowed_ftrack = narrow_ftrack(ftrack, &anchors, &usernames);
        let more: Vec<String> = narrowed_ftrack
            .users
            .iter()
            .filter_map(|u| u.metadata.get(ANCHOR_KEY))
            .filter(|a| !anchors.contains(*a) && in_directory.contains(*a))
            .cloned()
            .collect();
        if more.is_empty() {
            return Ok(Some((narrowed, narrowed_ftrack)));
        }
        anchors.extend(more);
    }
    Ok(None)
}

/// ftrack's users that carry one of `anchors` or one of `usernames` (lower case), with
/// their memberships and grants; groups, roles and projects whole.
fn narrow_ftrack(
    ftrack: &FtrackSnapshot,
    anchors: &FxHashSet<String>,
    usernames: &FxHashSet<String>,
) -> FtrackSnapshot {
    let users: Vec<_> = ftrack
        .users
        .iter()
        .filter(|u| {
            u.metadata
                .get(ANCHOR_KEY)
                .is_some_and(|a| anchors.contains(a))
                || usernames.contains(&u.username.trim().to_lowercase())
        })
        .cloned()
        .collect();
    let ids: FxHashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
    FtrackSnapshot {
        memberships: ftrack
            .memberships
            .iter()
            .filter(|m| ids.contains(m.user_id.as_str()))
            .cloned()
            .collect(),
        user_security_roles: ftrack
            .user_security_roles
            .iter()
            .filter(|g| ids.contains(g.user_id.as_str()))
            .cloned()
            .collect(),
        groups: ftrack.groups.clone(),
        security_roles: ftrack.security_roles.clone(),
        projects: ftrack.projects.clone(),
        users,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_testing_member_of_keeps_runs_full() {
        let staff =
            "(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=Staff,DC=ad,DC=test))";
        let group = "(objectClass=group)";
        assert_eq!(filter_reading_member_of(staff, group), Some("user_filter"));
        let negated = "(&(objectClass=user)(!(MEMBEROF;binary=CN=x)))";
        assert_eq!(
            filter_reading_member_of(negated, group),
            Some("user_filter")
        );
        let nested = "(|(memberOf=CN=Groups,DC=x)(cn=a))";
        assert_eq!(
            filter_reading_member_of("(objectClass=user)", nested),
            Some("group_filter")
        );
        assert_eq!(filter_reading_member_of("(objectClass=user)", group), None);
        assert_eq!(
            filter_reading_member_of("(cn=(", group),
            Some("user_filter")
        );
    }
}
