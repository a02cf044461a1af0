//! Reading what changed since a cookie: an RFC 4533 refreshOnly search (OpenLDAP's syncprov,
//! 389-ds's Content Synchronization plugin).
//!
//! It exists beside the paged read because the two cannot be combined: slapd answers a sync
//! search with paging by silently stopping at the page size with success and a full cookie.
//! So a sync search is never paged, the request control is always critical (a server
//! without syncprov otherwise answers a plain search with no cookie and no error), and the
//! answer is read with the same fail-closed loop rules as the paged read. Every control and
//! intermediate message is decoded by [`sync_control`](super::sync_control), which refuses
//! malformed input instead of panicking; a refusal, a server that asks for a full reload
//! (`e-syncRefreshRequired`), a cookie from a newer database, or a reload the server chose
//! on its own (no cookie back) is [`RefreshError::Stale`]: the caller reads everything.

pub use super::change_source::{Refresh, RefreshError};
use super::connect::{Conn, Reader};
use super::decode::parse_entry;
use super::search::describe_result;
pub use super::sync_control::SYNC_REQUEST_OID;
use super::sync_control::{self, EntryState, SyncInfo, SYNC_DONE_OID, SYNC_STATE_OID};
use crate::config::LdapSettings;
use crate::directory::DirectoryError;
use ldap3::asn1::{StructureTag, TagClass};
use ldap3::controls::{RawControl, RefreshMode, SyncRequest};
use ldap3::{LdapError, Scope};
use std::sync::Arc;

/// Refreshes the user and the group base from their cookies (`None`: from the beginning,
/// the whole content) on two connections, concurrently. `user_attributes` as the caller
/// would name them for a full read ([`super::requested_user_attributes`] adds the rest).
pub fn refresh<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
    user_attributes: Option<Vec<String>>,
    cookies: [Option<Vec<u8>>; 2],
) -> impl std::future::Future<Output = Result<[Refresh; 2], RefreshError>> + Send + 's {
    let prepared = super::prepare(settings, env);
    let user_attributes = super::change_user_attributes(settings, user_attributes);
    async move { refresh_prepared(settings, Arc::new(prepared?), user_attributes, cookies).await }
}

async fn refresh_prepared(
    settings: &LdapSettings,
    reader: Arc<Reader>,
    user_attributes: Vec<String>,
    cookies: [Option<Vec<u8>>; 2],
) -> Result<[Refresh; 2], RefreshError> {
    let group_attributes: Vec<String> = super::GROUP_ATTRIBUTES
        .iter()
        .map(|a| a.to_string())
        .collect();
    let [user_cookie, group_cookie] = cookies;
    let users = refresh_base(
        reader.clone(),
        &settings.user_base_dn,
        &settings.user_filter,
        &user_attributes,
        user_cookie,
    );
    let groups = refresh_base(
        reader.clone(),
        &settings.group_base_dn,
        &settings.group_filter,
        &group_attributes,
        group_cookie,
    );
    let (users, groups) = tokio::try_join!(users, groups)?;
    Ok([users, groups])
}

async fn refresh_base(
    reader: Arc<Reader>,
    base_dn: &str,
    filter: &str,
    attributes: &[String],
    cookie: Option<Vec<u8>>,
) -> Result<Refresh, RefreshError> {
    let mut conn = reader.connect().await?;
    let asked_from = cookie.clone();
    let (refresh, cookie) = conn
        .sync_search(base_dn, filter, attributes, cookie)
        .await?;
    conn.close().await;
    match (cookie, asked_from) {
        // slapd answers a cookie it cannot use with the whole content and an empty cookie:
        // that is a reload, not a delete phase, and says nothing about what was deleted.
        (Some(c), Some(_)) if c.is_empty() => Err(RefreshError::Stale(format!(
            "the server did not accept the stored position for {base_dn} (it sent everything back without a cookie)"
        ))),
        (Some(c), _) if !c.is_empty() => Ok(Refresh { cookie: c, ..refresh }),
        // No new cookie: nothing moved since the one we sent, which stays.
        (None, Some(old)) => Ok(Refresh { cookie: old, ..refresh }),
        _ => Err(RefreshError::Stale(format!(
            "the server sent no sync cookie for {base_dn}"
        ))),
    }
}

impl Conn {
    /// One refreshOnly search from `cookie`, read to its end; what it returned, and the
    /// last cookie the server sent (`None`: it sent none).
    async fn sync_search(
        &mut self,
        base_dn: &str,
        filter: &str,
        attributes: &[String],
        cookie: Option<Vec<u8>>,
    ) -> Result<(Refresh, Option<Vec<u8>>), RefreshError> {
        let control = sync_request(RefreshMode::RefreshOnly, cookie);
        let reader = self.reader.clone();
        let lost = |e: LdapError, what: &str| match e {
            LdapError::Timeout { .. } => reader.timeout_error(format!("sync search of {base_dn}")),
            e => DirectoryError::Incomplete {
                base_dn: base_dn.to_string(),
                reason: format!("connection to {} lost {what}: {e}", reader.url),
            },
        };
        let doubtful = |what: &str| {
            RefreshError::Stale(format!(
                "the server sent a malformed {what} in the sync search of {base_dn}"
            ))
        };
        let mut stream = self
            .ldap
            .with_controls(vec![control])
            .with_timeout(self.reader.timeout)
            .streaming_search(base_dn, Scope::Subtree, filter, attributes)
            .await
            .map_err(|e| lost(e, "when sending the sync search"))?;
        let mut refresh = Refresh::default();
        let mut cookie: Option<Vec<u8>> = None;
        while let Some(item) = stream.next().await.map_err(|e| lost(e, "mid-search"))? {
            let (tag, controls) = (item.0, item.1);
            match (tag.class, tag.id) {
                (TagClass::Application, 4) => {
                    let value = controls
                        .iter()
                        .find(|c| c.1.ctype == SYNC_STATE_OID)
                        .and_then(|c| c.1.val.as_deref())
                        .ok_or_else(|| doubtful("entry (no sync state)"))?;
                    let state =
                        sync_control::parse_sync_state(value).ok_or_else(|| doubtful("sync state"))?;
                    let uuid = sync_control::uuid_text(&state.uuid);
                    if state.cookie.is_some() {
                        cookie = state.cookie;
                    }
                    refresh.stats.entries += 1;
                    match state.state {
                        EntryState::Delete => refresh.deleted.push(uuid),
                        EntryState::Present => refresh.present.push(uuid),
                        _ => {
                            let entry = parse_entry(tag).ok_or_else(|| doubtful("entry"))?;
                            refresh.changed.push((uuid, entry));
                        }
                    }
                }
                (TagClass::Application, 25) => {
                    let info = intermediate_value(tag)
                        .and_then(|v| sync_control::parse_sync_info(&v))
                        .ok_or_else(|| doubtful("sync info message"))?;
                    match info {
                        SyncInfo::NewCookie(c) => cookie = Some(c),
                        SyncInfo::RefreshDone { cookie: c, .. } => {
                            if c.is_some() {
                                cookie = c;
                            }
                        }
                        SyncInfo::IdSet {
                            cookie: c,
                            refresh_deletes,
                            uuids,
                        } => {
                            if c.is_some() {
                                cookie = c;
                            }
                            let names = uuids.iter().map(sync_control::uuid_text);
                            if refresh_deletes {
                                refresh.deleted.extend(names);
                            } else {
                                refresh.present.extend(names);
                                refresh.present_phase = true;
                            }
                        }
                    }
                }
                (class, id) => {
                    return Err(DirectoryError::Incomplete {
                        base_dn: base_dn.to_string(),
                        reason: format!(
                            "the server sent an unexpected message ({class:?} {id}) in the sync search results"
                        ),
                    }
                    .into())
                }
            }
        }
        let result = stream.finish().await;
        refresh.stats.pages = 1;
        match result.rc {
            0 => {}
            // e-syncRefreshRequired (RFC 4533 §3.3.2), or a cookie newer than the database
            // (slapd: "consumer state is newer than provider!", a restored server).
            4096 | 53 => {
                return Err(RefreshError::Stale(format!(
                    "the server asked for a full reload of {base_dn} ({})",
                    describe_result(&result)
                )))
            }
            12 => {
                return Err(RefreshError::Stale(format!(
                    "the server no longer offers syncrepl for {base_dn} ({})",
                    describe_result(&result)
                )))
            }
            // A sync search cannot be paged, so the account's plain limits apply to it.
            3 | 4 | 11 => {
                return Err(RefreshError::Stale(format!(
                    "a server limit stopped the sync search of {base_dn} after {} entries ({}); give the sync account unlimited size and time limits (OpenLDAP: limits dn=… size=unlimited time=unlimited) to use incremental runs",
                    refresh.stats.entries,
                    describe_result(&result)
                )))
            }
            _ => {
                return Err(DirectoryError::Search {
                    base_dn: base_dn.to_string(),
                    cause: format!("the sync search failed: {}", describe_result(&result)),
                }
                .into())
            }
        }
        let done = result.ctrls.iter().find(|c| c.1.ctype == SYNC_DONE_OID);
        let done = match done {
            Some(c) => sync_control::parse_sync_done(c.1.val.as_deref())
                .ok_or_else(|| doubtful("sync done control"))?,
            None => return Err(doubtful("result (no sync done control)")),
        };
        if done.cookie.is_some() {
            cookie = done.cookie;
        }
        // refreshDeletes FALSE ends a present phase: what was not named is gone.
        if !done.refresh_deletes {
            refresh.present_phase = true;
        }
        Ok((refresh, cookie))
    }
}

/// The sync request control, always critical: a server without syncprov otherwise answers
/// with a plain search, no cookie and no error.
fn sync_request(mode: RefreshMode, cookie: Option<Vec<u8>>) -> RawControl {
    let mut control: RawControl = SyncRequest {
        mode,
        cookie,
        reload_hint: false,
    }
    .into();
    control.crit = true;
    control
}

/// The responseValue of an IntermediateResponse (`[APPLICATION 25] SEQUENCE { responseName
/// [0] OPTIONAL, responseValue [1] OPTIONAL }`), when it is the sync info message.
fn intermediate_value(tag: StructureTag) -> Option<Vec<u8>> {
    let parts = tag.expect_constructed()?;
    let mut name = None;
    let mut value = None;
    for part in parts {
        match (part.class, part.id) {
            (TagClass::Context, 0) => name = Some(part.expect_primitive()?),
            (TagClass::Context, 1) => value = Some(part.expect_primitive()?),
            _ => return None,
        }
    }
    (name.as_deref() == Some(sync_control::SYNC_INFO_OID.as_bytes())).then_some(value?)
}

/// Holds a refreshAndPersist search on the user and the group base (from their cookies, or
/// from the beginning), asking for no attributes, and sends on `wake` for every message the
/// server sends: a change, or a sync info. It is a doorbell, not a source: the caller reads
/// what changed with [`refresh`], the path every run takes. Returns when either search ends
/// (the server went away, or refused): the caller reconnects.
pub fn persist<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
    cookies: [Option<Vec<u8>>; 2],
    wake: tokio::sync::mpsc::Sender<()>,
) -> impl std::future::Future<Output = Result<(), DirectoryError>> + Send + 's {
    let prepared = super::prepare(settings, env);
    async move {
        let reader = Arc::new(prepared?);
        let [users, groups] = cookies;
        let users = persist_base(
            reader.clone(),
            &settings.user_base_dn,
            &settings.user_filter,
            users,
            wake.clone(),
        );
        let groups = persist_base(
            reader,
            &settings.group_base_dn,
            &settings.group_filter,
            groups,
            wake,
        );
        tokio::select! {
            r = users => r,
            r = groups => r,
        }
    }
}

async fn persist_base(
    reader: Arc<Reader>,
    base_dn: &str,
    filter: &str,
    cookie: Option<Vec<u8>>,
    wake: tokio::sync::mpsc::Sender<()>,
) -> Result<(), DirectoryError> {
    let mut conn = reader.connect().await?;
    let control = sync_request(RefreshMode::RefreshAndPersist, cookie);
    let lost = |e: LdapError| DirectoryError::Incomplete {
        base_dn: base_dn.to_string(),
        reason: format!("the persistent sync search ended: {e}"),
    };
    // No timeout: a quiet directory sends nothing for hours, and that is not a failure.
    let attributes = ["1.1".to_string()];
    let mut stream = conn
        .ldap
        .with_controls(vec![control])
        .streaming_search(base_dn, Scope::Subtree, filter, &attributes)
        .await
        .map_err(lost)?;
    while stream.next().await.map_err(lost)?.is_some() {
        // A full doorbell already rings; a closed one means the watcher stopped.
        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = wake.try_send(()) {
            return Ok(());
        }
    }
    let result = stream.finish().await;
    Err(DirectoryError::Search {
        base_dn: base_dn.to_string(),
        cause: format!(
            "the persistent sync search ended: {}",
            describe_result(&result)
        ),
    })
}
