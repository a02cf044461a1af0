//! Reading users and groups from an LDAP server (OpenLDAP, 389-ds/FreeIPA, Active Directory).
//!
//! This is the one place that talks LDAP on the wire. It exists to turn a live server into an
//! [`EntrySet`] that is either complete or an error — never a silently truncated list, which
//! would make the sync disable everyone it did not see. Concretely:
//!
//! * Users are asked only for the attributes the caller names (a run names what its rules
//!   read), else those `ldap.user_attributes` names, else all (`*`); the ids and disabled
//!   state always, and `memberOf` with `*` (it is operational on OpenLDAP, so `*` alone
//!   would not bring it) or when named. Groups always get [`GROUP_ATTRIBUTES`].
//! * Users and groups are read concurrently on two connections, each with a paged search
//!   (RFC 2696, marked critical). A page counts only when its entry stream ended normally
//!   *and* its SearchResultDone carried result code 0; a missing paging control, a size or
//!   time limit, a referral or continuation reference, a non-existent base DN, a timeout or a
//!   dropped connection each fail the whole read with the base DN and the cause.
//! * Active Directory returns large multi-valued attributes in slices (`member;range=0-1499`);
//!   the rest is fetched with base-scope searches (`member;range=1500-*`, …) until the server
//!   says `*`, and merged into one plain attribute. A missing or inconsistent slice fails.
//! * Entries are decoded straight from the BER the server sent into [`Entry`] values with
//!   [`Value::from_bytes`](super::Value::from_bytes), so binary attributes (objectGUID) stay
//!   bytes and malformed data is an error rather than a panic (ldap3's
//!   `SearchEntry::construct` panics on it).
//! * TLS (ldaps:// or StartTLS) verifies the server certificate and host name against
//!   `ldap.ca_file` when set, else the system trust store; ldap3 does not read ldap.conf or
//!   `LDAPTLS_CACERT`, so the CA is loaded here.
//! * Every failure maps to a distinct [`DirectoryError`] (DNS, connect, TLS, bind, timeout,
//!   incomplete, search) naming the URL or base DN and what to check. The bind password is
//!   only ever handed to ldap3's bind call; no message contains it.
//!
//! This file holds the public entry point, the two concurrent reads and the paging. The rest
//! is one job per file: `connect.rs` opens a bound connection (TCP, TLS, bind),
//! `search.rs` runs one search and accepts it only when it is complete, `decode.rs` turns the
//! server's BER into entries without panicking, and `range.rs` completes AD range slices.
//! Reading only what changed has its own files: `change_source.rs` tells from the root DSE
//! how a server reports changes, `syncrepl.rs` (with `sync_control.rs`, its decoder) reads
//! them by RFC 4533, and `usn.rs` from an Active Directory DC's update sequence numbers.

pub mod change_source;
mod connect;
mod decode;
mod range;
mod search;
mod sync_control;
pub mod syncrepl;
pub mod usn;

use super::{DirectoryError, Entry, EntrySet, ReadStats};
use crate::config::LdapSettings;
pub(crate) use connect::prepare;
use connect::{Conn, Reader};
use decode::parse_paged_cookie;
use ldap3::controls::{PagedResults, RawControl};
use ldap3::Scope;
use std::sync::Arc;

/// OID of the simple paged results control (RFC 2696).
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Operational attributes always requested for users, whatever `ldap.user_attributes` says:
/// stable ids (OpenLDAP, 389-ds, AD) and the disabled state.
pub const USER_OPERATIONAL_ATTRIBUTES: &[&str] = &[
    "entryUUID",
    "nsUniqueId",
    "objectGUID",
    "pwdAccountLockedTime",
    "nsAccountLock",
    "userAccountControl",
];

/// The group membership back-link. Membership comes from the groups' own member lists, so
/// it is asked for only for a rule that reads it (or with `*`): at an Active Directory
/// studio it is often the largest attribute of a user.
pub const MEMBER_OF: &str = "memberOf";

/// Attributes requested for groups: names, classes, the three membership styles, stable ids.
pub const GROUP_ATTRIBUTES: &[&str] = &[
    "cn",
    "objectClass",
    "member",
    "uniqueMember",
    "memberUid",
    "entryUUID",
    "nsUniqueId",
    "objectGUID",
];

/// Search result pages this process has read from LDAP servers (for the metrics textfile).
static PAGES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Pages read from LDAP servers so far by this process: one run, for the binary.
pub fn pages_read() -> u64 {
    PAGES_READ.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn count_pages(n: u64) {
    PAGES_READ.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Reads every user and group the settings select from the configured LDAP server, with the
/// user attributes `ldap.user_attributes` names (all of them when it is empty).
///
/// `env` looks up environment variables (for `ldap.bind_password_env`); pass
/// `&|k| std::env::var(k).ok()` in production. The password and the TLS configuration are
/// prepared before the returned future starts, so `env` is not held across an await and the
/// future is `Send`. Needs a Tokio runtime (connections are driven by spawned tasks).
pub fn read_entries<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl std::future::Future<Output = Result<EntrySet, DirectoryError>> + Send + 's {
    read_entries_requesting(settings, None, env)
}

/// [`read_entries`], asking for `user_attributes` instead of what `ldap.user_attributes`
/// says when it is given (see [`requested_user_attributes`]): a run passes what its rules
/// need, so the server neither sends nor this process decodes the rest.
pub fn read_entries_requesting<'s>(
    settings: &'s LdapSettings,
    user_attributes: Option<Vec<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl std::future::Future<Output = Result<EntrySet, DirectoryError>> + Send + 's {
    let prepared = prepare(settings, env);
    let user_attributes = requested_user_attributes(settings, user_attributes.as_deref());
    async move { read_prepared(settings, Arc::new(prepared?), user_attributes).await }
}

/// The attribute list a user search sends: `user_attributes` when given, else
/// `ldap.user_attributes`, else every user attribute (`*`); always followed by
/// [`USER_OPERATIONAL_ATTRIBUTES`] (and [`MEMBER_OF`] after `*`), and each name once
/// (attribute names are case-insensitive, the first spelling is kept).
pub fn requested_user_attributes(
    settings: &LdapSettings,
    user_attributes: Option<&[String]>,
) -> Vec<String> {
    let all = ["*".to_string()];
    let named: &[String] = match user_attributes {
        Some(names) => names,
        None if settings.user_attributes.is_empty() => &all,
        None => &settings.user_attributes,
    };
    let mut requested: Vec<String> =
        Vec::with_capacity(named.len() + USER_OPERATIONAL_ATTRIBUTES.len());
    let everything = named.iter().any(|n| n == "*");
    let operational = USER_OPERATIONAL_ATTRIBUTES
        .iter()
        .copied()
        .chain(everything.then_some(MEMBER_OF));
    for name in named.iter().map(String::as_str).chain(operational) {
        if !requested.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            requested.push(name.to_string());
        }
    }
    requested
}

/// The user attributes a read of changes asks for: as [`requested_user_attributes`], but
/// not `memberOf`, whose changes neither syncrepl nor USNs report (runs whose rules read it
/// stay full).
fn change_user_attributes(settings: &LdapSettings, named: Option<Vec<String>>) -> Vec<String> {
    requested_user_attributes(settings, named.as_deref())
        .into_iter()
        .filter(|a| !a.eq_ignore_ascii_case(MEMBER_OF))
        .collect()
}

async fn read_prepared(
    settings: &LdapSettings,
    reader: Arc<Reader>,
    user_attributes: Vec<String>,
) -> Result<EntrySet, DirectoryError> {
    let filters = [settings.user_filter.clone(), settings.group_filter.clone()];
    read_both(settings, reader, user_attributes, filters).await
}

/// Users and groups under their bases, each with its filter (`[users, groups]`).
async fn read_both(
    settings: &LdapSettings,
    reader: Arc<Reader>,
    user_attributes: Vec<String>,
    [user_filter, group_filter]: [String; 2],
) -> Result<EntrySet, DirectoryError> {
    tracing::debug!(attributes = ?user_attributes, "user attributes requested");
    let group_attributes: Vec<String> = GROUP_ATTRIBUTES.iter().map(|a| a.to_string()).collect();

    // Two connections, each read on its own task so that decoding the users and the groups
    // runs on both cores. A task that fails stops the other (the handles abort on drop).
    let users = AbortOnDrop(tokio::spawn(read_base(
        reader.clone(),
        settings.user_base_dn.clone(),
        user_filter,
        user_attributes,
    )));
    let groups = AbortOnDrop(tokio::spawn(read_base(
        reader.clone(),
        settings.group_base_dn.clone(),
        group_filter,
        group_attributes,
    )));
    let ((users, user_stats), (groups, group_stats)) =
        tokio::try_join!(users.join(&reader.url), groups.join(&reader.url))?;
    Ok(EntrySet {
        users,
        groups,
        stats: ReadStats {
            pages: user_stats.pages + group_stats.pages,
            entries: user_stats.entries + group_stats.entries,
            range_requests: user_stats.range_requests + group_stats.range_requests,
        },
    })
}

/// One base DN on its own connection: the paged search, then range follow-ups. The
/// follow-ups run after the paged search has finished, so no other operation interleaves
/// with the paging cookie on the connection.
async fn read_base(
    reader: Arc<Reader>,
    base_dn: String,
    filter: String,
    attributes: Vec<String>,
) -> Result<(Vec<Entry>, ReadStats), DirectoryError> {
    let mut conn = reader.connect().await?;
    let mut stats = ReadStats::default();
    let mut entries = conn
        .paged_search(&base_dn, &filter, &attributes, &[], &mut stats)
        .await?;
    // AD slices any large multi-valued attribute: a group's member, a user's memberOf.
    for entry in &mut entries {
        conn.complete_ranges(entry, &mut stats).await?;
    }
    conn.close().await;
    Ok((entries, stats))
}

/// A spawned read that is aborted when its handle is dropped (the other read failed).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> AbortOnDrop<Result<T, DirectoryError>> {
    async fn join(mut self, url: &str) -> Result<T, DirectoryError> {
        match (&mut self.0).await {
            Ok(result) => result,
            Err(e) => Err(DirectoryError::Incomplete {
                base_dn: url.to_string(),
                reason: format!("the reading task stopped unexpectedly: {e}"),
            }),
        }
    }
}

impl Conn {
    /// A subtree search of `base_dn`, page by page, until the server returns an empty cookie;
    /// `extra` controls go with every page.
    async fn paged_search(
        &mut self,
        base_dn: &str,
        filter: &str,
        attributes: &[String],
        extra: &[RawControl],
        stats: &mut ReadStats,
    ) -> Result<Vec<Entry>, DirectoryError> {
        let mut entries = Vec::new();
        let mut cookie = Vec::new();
        loop {
            let mut control: RawControl = PagedResults {
                size: self.reader.page_size,
                cookie: std::mem::take(&mut cookie),
            }
            .into();
            control.crit = true;
            let mut controls = vec![control];
            controls.extend_from_slice(extra);
            let before = entries.len();
            let result = self
                .search(
                    base_dn,
                    Scope::Subtree,
                    filter,
                    attributes,
                    controls,
                    &mut entries,
                )
                .await?;
            stats.pages += 1;
            stats.entries += (entries.len() - before) as u64;
            crate::progress::advance(crate::progress::LDAP_READ, (entries.len() - before) as u64);
            count_pages(1);
            let response = result
                .ctrls
                .iter()
                .find(|c| c.1.ctype == PAGED_RESULTS_OID)
                .ok_or_else(|| DirectoryError::Incomplete {
                    base_dn: base_dn.to_string(),
                    reason: format!(
                        "page {} came back without the paged-results control, so it is unknown whether more entries exist",
                        stats.pages
                    ),
                })?;
            cookie = parse_paged_cookie(response.1.val.as_deref()).ok_or_else(|| {
                DirectoryError::Incomplete {
                    base_dn: base_dn.to_string(),
                    reason: format!(
                        "page {} carried a malformed paged-results control",
                        stats.pages
                    ),
                }
            })?;
            if cookie.is_empty() {
                return Ok(entries);
            }
        }
    }
}
