//! Which way a server can say what changed, read from its root DSE: the syncrepl control
//! (OpenLDAP's syncprov, 389-ds's Content Synchronization plugin), an Active Directory
//! domain controller's update sequence numbers, or neither (every run reads everything).

use super::connect::Reader;
use crate::config::LdapSettings;
use crate::directory::DirectoryError;
use ldap3::Scope;
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
    let mut entries = Vec::new();
    let attributes = ["supportedControl", "highestCommittedUSN", "dsServiceName"].map(String::from);
    conn.search(
        "",
        Scope::Base,
        "(objectClass=*)",
        &attributes,
        Vec::new(),
        &mut entries,
    )
    .await?;
    conn.close().await;
    let Some(root) = entries.first() else {
        return Ok(None);
    };
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
