//! Reading what changed on an Active Directory (or Samba AD) domain controller since a
//! stored update sequence number, for accounts and servers without syncrepl.
//!
//! Every write on a domain controller takes that DC's next USN and stamps it on the object
//! (`uSNChanged`); the root DSE gives the highest one committed (`highestCommittedUSN`). A
//! run reads that number H' first, then asks for objects with `uSNChanged` in (H, H'], H
//! being the number stored by the last run, and stores H'. What this rests on:
//!
//! * USNs are one DC's own. The position is bound to the DC (`dsServiceName`) and to its
//!   database (`invocationId`, which a restore changes); another DC answering, another
//!   invocationId, or a highestCommittedUSN below the stored one is [`RefreshError::Stale`]:
//!   the caller reads everything.
//! * A membership change bumps the group, not the member (`memberOf` is a back-link), so as
//!   with syncrepl, runs whose rules read `memberOf` stay full.
//! * Renaming or deleting a member does not bump the groups that list it (AD links members
//!   by object and shows their current DN), so the stored groups are rewritten for them
//!   when the state is brought forward ([`ChangeSource::Usn`](super::change_source::ChangeSource)).
//! * What left — deleted, moved out of the base, or no longer matching the filter — is
//!   found by a second search over the base's whole naming context for anything changed in
//!   the same window (objectGUID only; with the show-deleted control, deleted objects come
//!   back to accounts allowed to read them: Domain Admins on Samba). What changed there but
//!   did not match is gone. An account that cannot see deleted objects sees a delete at the
//!   next full read (`[sync] full_every`), never as a guess.
//! * The matching search runs before the changed-objects search, and both stop at H'. An
//!   object written in between has a USN above H', so this window sees it as it matched, or
//!   not at all — never as gone while it is there.

use super::change_source::{Refresh, RefreshError};
use super::connect::Reader;
use crate::config::LdapSettings;
use crate::directory::snapshot::guid_string;
use crate::directory::{DirectoryError, Entry, ReadStats, Value};
use ldap3::controls::RawControl;
use ldap3::Scope;
use std::collections::HashSet;
use std::sync::Arc;

/// Makes deleted objects (tombstones) visible to a search (no value).
const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// Keeps a search from returning referrals to other partitions (no value).
const DOMAIN_SCOPE_OID: &str = "1.2.840.113556.1.4.1339";

/// Where a run's read of a domain controller stopped: kept as the sync cookie.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The DC's highestCommittedUSN when the read started.
    pub usn: u64,
    /// The DC's dsServiceName (its NTDS Settings object).
    pub dc: String,
    /// The DC database's invocationId, hex: a restore gives it a new one.
    pub invocation_id: String,
}

impl Position {
    /// The position as stored in the sync state.
    pub fn cookie(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn from_cookie(cookie: &[u8]) -> Result<Position, RefreshError> {
        serde_json::from_slice(cookie).map_err(|e| {
            RefreshError::Stale(format!("the stored USN position cannot be read ({e})"))
        })
    }

    /// Why `self` (now) cannot continue from `stored`, if it cannot.
    fn refuses(&self, stored: &Position) -> Option<String> {
        if !self.dc.eq_ignore_ascii_case(&stored.dc) {
            Some(format!(
                "another domain controller answered ({}, not {}), and USNs are each DC's own",
                self.dc, stored.dc
            ))
        } else if self.invocation_id != stored.invocation_id {
            Some(format!(
                "the domain controller's invocationId changed ({} to {}): its database was restored",
                stored.invocation_id, self.invocation_id
            ))
        } else if self.usn < stored.usn {
            Some(format!(
                "the domain controller's highestCommittedUSN ({}) is below the stored one ({})",
                self.usn, stored.usn
            ))
        } else {
            None
        }
    }
}

/// Reads everything, keyed by objectGUID, with the position to continue from: the
/// position first, so that what changes during the read is read again next time.
pub fn read_full<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
    user_attributes: Option<Vec<String>>,
) -> impl std::future::Future<Output = Result<[Refresh; 2], RefreshError>> + Send + 's {
    let prepared = super::prepare(settings, env);
    let user_attributes = super::change_user_attributes(settings, user_attributes);
    async move {
        let reader = Arc::new(prepared?);
        let (position, _) = read_position(&reader).await?;
        let entries = super::read_prepared(settings, reader, user_attributes).await?;
        let cookie = position.cookie();
        Ok([
            keyed(entries.users, cookie.clone(), entries.stats)?,
            keyed(entries.groups, cookie, ReadStats::default())?,
        ])
    }
}

/// What changed since the stored positions (`[users, groups]`).
pub fn refresh<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
    user_attributes: Option<Vec<String>>,
    cookies: [Vec<u8>; 2],
) -> impl std::future::Future<Output = Result<[Refresh; 2], RefreshError>> + Send + 's {
    let prepared = super::prepare(settings, env);
    let user_attributes = super::change_user_attributes(settings, user_attributes);
    async move {
        let reader = Arc::new(prepared?);
        let [users_from, groups_from] = [
            Position::from_cookie(&cookies[0])?,
            Position::from_cookie(&cookies[1])?,
        ];
        let (now, contexts) = read_position(&reader).await?;
        for stored in [&users_from, &groups_from] {
            if let Some(why) = now.refuses(stored) {
                return Err(RefreshError::Stale(why));
            }
        }
        let cookie = now.cookie();
        if now.usn == users_from.usn && now.usn == groups_from.usn {
            let unchanged = || Refresh {
                cookie: cookie.clone(),
                ..Refresh::default()
            };
            return Ok([unchanged(), unchanged()]);
        }
        let window = |from: &Position| {
            format!(
                "(uSNChanged>={})(uSNChanged<={})",
                from.usn.saturating_add(1),
                now.usn
            )
        };
        let matching =
            |filter: &str, from: &Position| format!("(&{}{})", parenthesized(filter), window(from));
        let filters = [
            matching(&settings.user_filter, &users_from),
            matching(&settings.group_filter, &groups_from),
        ];
        // First what matches, then what changed at all (see the module comment).
        let matched = super::read_both(settings, reader.clone(), user_attributes, filters).await?;
        let mut stats = matched.stats;
        let user_search = (
            naming_context(&settings.user_base_dn, &contexts)?,
            window(&users_from),
        );
        let group_search = (
            naming_context(&settings.group_base_dn, &contexts)?,
            window(&groups_from),
        );
        let users_changed = changed_objects(&reader, &user_search.0, &user_search.1).await?;
        stats.entries += users_changed.len() as u64;
        // Users and groups usually live in one domain, searched once.
        let groups_changed = if group_search == user_search {
            users_changed.clone()
        } else {
            let found = changed_objects(&reader, &group_search.0, &group_search.1).await?;
            stats.entries += found.len() as u64;
            found
        };
        let mut users = keyed(matched.users, cookie.clone(), stats)?;
        let mut groups = keyed(matched.groups, cookie, ReadStats::default())?;
        users.deleted = gone(&users, users_changed);
        groups.deleted = gone(&groups, groups_changed);
        Ok([users, groups])
    }
}

/// Rings `wake` whenever the DC's highestCommittedUSN moves (and once at the start),
/// reading the root DSE every `every` on one connection. Returns when the connection
/// fails; the caller re-opens it.
pub fn poll<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
    every: std::time::Duration,
    wake: tokio::sync::mpsc::Sender<()>,
) -> impl std::future::Future<Output = Result<(), DirectoryError>> + Send + 's {
    let prepared = super::prepare(settings, env);
    async move {
        let reader = Arc::new(prepared?);
        let mut conn = reader.connect().await?;
        let mut last = None;
        loop {
            let root = conn.root_dse(&ROOT_DSE).await?;
            let usn = root.first_text("highestCommittedUSN").map(str::to_string);
            if last.is_none() || usn != last {
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = wake.try_send(()) {
                    conn.close().await;
                    return Ok(());
                }
            }
            last = usn;
            tokio::time::sleep(every).await;
        }
    }
}

/// What this module reads of the root DSE.
const ROOT_DSE: [&str; 3] = ["highestCommittedUSN", "dsServiceName", "namingContexts"];

/// The DC's position now, and its naming contexts.
async fn read_position(reader: &Arc<Reader>) -> Result<(Position, Vec<String>), RefreshError> {
    let mut conn = reader.connect().await?;
    let root = conn.root_dse(&ROOT_DSE).await?;
    let not_a_dc = || {
        RefreshError::Stale(
            "the server's root DSE has no highestCommittedUSN or dsServiceName, so it is not an Active Directory domain controller".into(),
        )
    };
    let usn = root
        .first_text("highestCommittedUSN")
        .and_then(|u| u.trim().parse::<u64>().ok())
        .ok_or_else(not_a_dc)?;
    let dc = root
        .first_text("dsServiceName")
        .ok_or_else(not_a_dc)?
        .to_string();
    let mut settings = Vec::new();
    conn.search(
        &dc,
        Scope::Base,
        "(objectClass=*)",
        &["invocationId".to_string()],
        Vec::new(),
        &mut settings,
    )
    .await?;
    conn.close().await;
    let invocation_id = settings
        .first()
        .and_then(|s| s.values("invocationId").first())
        .and_then(|v| match v {
            Value::Binary(bytes) => Some(hex::encode(bytes)),
            Value::Text(_) => None,
        })
        .ok_or_else(|| {
            RefreshError::Stale(format!(
                "the invocationId of {dc} cannot be read, so a restored database could not be told apart; give the bind account read access to it"
            ))
        })?;
    let contexts = root.texts("namingContexts").map(str::to_string).collect();
    Ok((
        Position {
            usn,
            dc,
            invocation_id,
        },
        contexts,
    ))
}

/// objectGUIDs of everything in `context` changed in `window`, deleted objects included
/// when the account may see them.
async fn changed_objects(
    reader: &Arc<Reader>,
    context: &str,
    window: &str,
) -> Result<HashSet<String>, DirectoryError> {
    let mut conn = reader.connect().await?;
    let control = |oid: &str| RawControl {
        ctype: oid.to_string(),
        crit: false,
        val: None,
    };
    let mut stats = ReadStats::default();
    let found = conn
        .paged_search(
            context,
            &format!("(&{window})"),
            &["objectGUID".to_string()],
            &[control(SHOW_DELETED_OID), control(DOMAIN_SCOPE_OID)],
            &mut stats,
        )
        .await?;
    conn.close().await;
    Ok(found.iter().filter_map(object_guid).collect())
}

/// What changed in the window but was not sent as matching: it left.
fn gone(matched: &Refresh, changed: HashSet<String>) -> Vec<String> {
    let sent: HashSet<&str> = matched.changed.iter().map(|(id, _)| id.as_str()).collect();
    let mut gone: Vec<String> = changed
        .into_iter()
        .filter(|id| !sent.contains(id.as_str()))
        .collect();
    gone.sort();
    gone
}

fn object_guid(entry: &Entry) -> Option<String> {
    match entry.values("objectGUID").first()? {
        Value::Binary(bytes) => guid_string(bytes),
        Value::Text(_) => None,
    }
}

/// Entries keyed by objectGUID; an entry without one cannot be followed.
fn keyed(entries: Vec<Entry>, cookie: Vec<u8>, stats: ReadStats) -> Result<Refresh, RefreshError> {
    let changed = entries
        .into_iter()
        .map(|entry| match object_guid(&entry) {
            Some(id) => Ok((id, entry)),
            None => Err(RefreshError::Stale(format!(
                "{} came back without a 16-byte objectGUID, so its changes cannot be followed",
                entry.dn
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Refresh {
        changed,
        cookie,
        stats,
        ..Refresh::default()
    })
}

fn parenthesized(filter: &str) -> String {
    let filter = filter.trim();
    if filter.starts_with('(') {
        filter.to_string()
    } else {
        format!("({filter})")
    }
}

/// The naming context (partition root) that holds `base`: the longest one it ends with.
fn naming_context(base: &str, contexts: &[String]) -> Result<String, DirectoryError> {
    let squeeze = |dn: &str| {
        dn.split(',')
            .map(|part| part.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let base_parts = squeeze(base);
    contexts
        .iter()
        .filter(|c| {
            let parts = squeeze(c);
            parts.len() <= base_parts.len() && base_parts.ends_with(&parts)
        })
        .max_by_key(|c| c.len())
        .cloned()
        .ok_or_else(|| DirectoryError::Search {
            base_dn: base.to_string(),
            cause: format!(
                "it is in none of the server's naming contexts ({}); check the base DN",
                contexts.join("; ")
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(usn: u64, dc: &str, id: &str) -> Position {
        Position {
            usn,
            dc: dc.into(),
            invocation_id: id.into(),
        }
    }

    #[test]
    fn a_position_continues_only_on_the_same_dc_and_database_going_forward() {
        let stored = at(100, "CN=NTDS Settings,CN=DC1", "aa");
        assert_eq!(
            at(100, "cn=ntds settings,cn=dc1", "aa").refuses(&stored),
            None
        );
        assert_eq!(
            at(150, "CN=NTDS Settings,CN=DC1", "aa").refuses(&stored),
            None
        );
        for (now, says) in [
            (
                at(150, "CN=NTDS Settings,CN=DC2", "aa"),
                "another domain controller",
            ),
            (at(150, "CN=NTDS Settings,CN=DC1", "bb"), "restored"),
            (
                at(99, "CN=NTDS Settings,CN=DC1", "aa"),
                "below the stored one",
            ),
        ] {
            let why = now.refuses(&stored).unwrap();
            assert!(why.contains(says), "{why}");
        }
    }

    #[test]
    fn a_cookie_round_trips_and_garbage_is_stale() {
        let p = at(7, "CN=x", "00ff");
        assert_eq!(Position::from_cookie(&p.cookie()).unwrap(), p);
        assert!(matches!(
            Position::from_cookie(b"rid=000,csn=2026"),
            Err(RefreshError::Stale(_))
        ));
    }

    #[test]
    fn the_naming_context_is_the_longest_that_holds_the_base() {
        let contexts = [
            "DC=ad,DC=test".to_string(),
            "CN=Configuration,DC=ad,DC=test".to_string(),
        ];
        assert_eq!(
            naming_context("OU=People, dc=AD,dc=test", &contexts).unwrap(),
            "DC=ad,DC=test"
        );
        assert_eq!(
            naming_context("CN=Sites,CN=Configuration,DC=ad,DC=test", &contexts).unwrap(),
            "CN=Configuration,DC=ad,DC=test"
        );
        assert!(naming_context("OU=People,DC=other", &contexts).is_err());
        assert_eq!(parenthesized(" objectClass=user "), "(objectClass=user)");
        assert_eq!(parenthesized("(cn=*)"), "(cn=*)");
    }

    #[test]
    fn what_changed_but_did_not_match_is_gone() {
        let mut e = Entry::new("CN=a");
        e.push("objectGUID", Value::Binary(vec![1; 16]));
        let matched = keyed(vec![e], Vec::new(), ReadStats::default()).unwrap();
        let id = matched.changed[0].0.clone();
        let changed: HashSet<String> = [id.clone(), "other".to_string()].into();
        assert_eq!(gone(&matched, changed), vec!["other".to_string()]);
        let no_guid = keyed(vec![Entry::new("CN=b")], Vec::new(), ReadStats::default());
        assert!(matches!(no_guid, Err(RefreshError::Stale(why)) if why.contains("CN=b")));
    }
}
