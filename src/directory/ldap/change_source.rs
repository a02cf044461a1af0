//! Which way a server can say what changed, read from its root DSE: the syncrepl control
//! (OpenLDAP's syncprov, 389-ds's Content Synchronization plugin), an Active Directory
//! domain controller's update sequence numbers, or neither (every run reads everything);
//! and what a read of changes returns, whichever way it was read.

use super::connect::Reader;
use crate::config::LdapSettings;
use crate::directory::{DirectoryError, Entry, ReadStats};
use std::sync::Arc;

/// How a server reports changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    /// RFC 4533 refreshOnly searches from a cookie ([`super::syncrepl`]).
    #[default]
    Syncrepl,
    /// Active Directory: objects whose uSNChanged is above a stored highestCommittedUSN of
    /// one domain controller ([`super::usn`]).
    Usn,
}

/// What the server offers, from its root DSE (`None`: no way to read only changes). The
/// sync control wins when both are offered.
pub fn detect(
    settings: &LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl std::future::Future<Output = Result<Option<ChangeSource>, DirectoryError>> + Send {
    let prepared = super::prepare(settings, env);
    async move { detect_prepared(Arc::new(prepared?)).await }
}

async fn detect_prepared(reader: Arc<Reader>) -> Result<Option<ChangeSource>, DirectoryError> {
    let mut conn = reader.connect().await?;
    let root = conn
        .root_dse(&["supportedControl", "highestCommittedUSN", "dsServiceName"])
        .await?;
    conn.close().await;
    let syncrepl = root
        .texts("supportedControl")
        .any(|v| v.trim() == super::sync_control::SYNC_REQUEST_OID);
    let domain_controller = root.first_text("highestCommittedUSN").is_some()
        && root.first_text("dsServiceName").is_some();
    Ok(if syncrepl {
        Some(ChangeSource::Syncrepl)
    } else if domain_controller {
        Some(ChangeSource::Usn)
    } else {
        None
    })
}

/// What one base's refresh returned.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Entries sent with their content (added, changed, renamed), by stable id (entryUUID,
    /// or objectGUID on AD) as text.
    pub changed: Vec<(String, Entry)>,
    /// Ids named as gone (a delete phase; on AD, what changed but no longer matches).
    pub deleted: Vec<String>,
    /// entryUUIDs the server named as still there, unchanged (a present phase).
    pub present: Vec<String>,
    /// A present phase: whatever was neither sent nor named present is gone. Otherwise a
    /// delete phase: what was not mentioned is unchanged.
    pub present_phase: bool,
    /// The cookie to start from next time.
    pub cookie: Vec<u8>,
    pub stats: ReadStats,
}

/// Why a refresh cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The stored position is no good (or the answer was doubtful): read everything.
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    Failed(#[from] DirectoryError),
}
