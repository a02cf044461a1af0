//! Reading the directory: every user, group and membership — complete, or not at all.
//!
//! A source (an LDAP server via [`ldap`], or an LDIF file via [`ldif`]) delivers the raw
//! user and group [`Entry`]s; [`snapshot::assemble`] then derives stable ids, disabled state
//! and flattened group memberships the same way for both. Any incomplete read is an error:
//! a partial snapshot would turn into wrong disables and removals.

pub mod entry;
pub mod filter;
pub mod ldap;
pub mod ldif;
pub mod snapshot;
pub mod sync_state;

pub use entry::{Attribute, Entry, Value};
pub use snapshot::{DirectoryGroup, DirectorySnapshot, DirectoryUser, GroupId, SkippedMembers};

use crate::config::{DirectorySource, LdapSettings};
use crate::ldap_syntax::Filter;
use std::path::PathBuf;

/// The raw result of reading a source: entries selected as users and as groups.
#[derive(Debug, Clone, Default)]
pub struct EntrySet {
    pub users: Vec<Entry>,
    pub groups: Vec<Entry>,
    pub stats: ReadStats,
}

/// What the read cost; shown with `-v` and in benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Search result pages received (LDAP) or 1 (LDIF).
    pub pages: u64,
    /// Entries received.
    pub entries: u64,
    /// Extra searches for AD range retrieval (`member;range=…`).
    pub range_requests: u64,
}

/// Why the directory could not be read completely. Each names the server or file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("LDIF file {path}:{line}: {message}")]
    Ldif {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read LDIF file {path}: {cause}")]
    LdifIo {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "cannot resolve the LDAP server's host name in {url}: {cause}; check ldap.url and DNS"
    )]
    Dns { url: String, cause: String },
    #[error("cannot connect to {url}: {cause}; check that the server is up and ldap.url (host and port)")]
    Connect { url: String, cause: String },
    #[error("TLS with {url} failed: {cause}; check ldap.ca_file and that the certificate matches the host name")]
    Tls { url: String, cause: String },
    #[error(
        "bind as {bind_dn} to {url} failed: {cause}; check ldap.bind_dn and the password source"
    )]
    Bind {
        url: String,
        bind_dn: String,
        cause: String,
    },
    #[error("{operation} on {url} timed out after {timeout_s} s; raise ldap.timeout_s or check the server")]
    Timeout {
        url: String,
        operation: String,
        timeout_s: u64,
    },
    /// The search did not return everything; nothing read is used.
    #[error("incomplete read of {base_dn}: {reason}; nothing was changed")]
    Incomplete { base_dn: String, reason: String },
    #[error("search of {base_dn} failed: {cause}")]
    Search { base_dn: String, cause: String },
    #[error("the bind password could not be read: {0}")]
    Secret(#[from] crate::config::SecretError),
}

/// Reads the configured source and assembles the snapshot.
pub async fn read(settings: &LdapSettings) -> Result<DirectorySnapshot, DirectoryError> {
    read_with_env(settings, &|name| std::env::var(name).ok()).await
}

/// [`read`] with the environment lookup used for `ldap.bind_password_env` passed in. The
/// lookup happens before the returned future starts, so the future is `Send`.
pub fn read_with_env<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl std::future::Future<Output = Result<DirectorySnapshot, DirectoryError>> + Send + 's {
    let entries = read_entries_with_env(settings, None, env);
    async move { snapshot::assemble(entries.await?) }
}

/// The user attributes the directory itself reads, whatever the rules need: stable ids and
/// disabled state ([`ldap::USER_OPERATIONAL_ATTRIBUTES`]; not memberOf, see
/// [`ldap::MEMBER_OF`]); `uid`, by which a
/// posixGroup's `memberUid` names its members ([`snapshot::MEMBER_UID_ATTRIBUTE`]); and the
/// attributes `ldap.user_filter` tests. A server does not need those to apply the filter,
/// but an `ldif:` source applies it to the entries themselves — a case captured with
/// `plan --snapshot` among them — and must select the users the server selected.
pub fn own_user_attributes(settings: &LdapSettings) -> Vec<String> {
    let mut names: Vec<String> = ldap::USER_OPERATIONAL_ATTRIBUTES
        .iter()
        .chain(&[snapshot::MEMBER_UID_ATTRIBUTE])
        .map(|a| a.to_string())
        .collect();
    // Loading the config has checked that the filter parses (settings made otherwise may
    // not). One an `ldif:` source cannot evaluate (AD's in-chain rule) is still the server's
    // to apply, and tests attributes like any other.
    if let Ok(filter) = Filter::parse(&settings.user_filter) {
        for name in filter.attributes() {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Checks what the read needs that is local — the LDIF file and the filters it can evaluate,
/// the bind password, the CA file — without touching the network, so a run fails on these
/// before it contacts any server.
pub fn check_local(
    settings: &LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), DirectoryError> {
    match &settings.source {
        DirectorySource::Server { .. } => ldap::prepare(settings, env).map(drop),
        DirectorySource::LdifFile(path) if path.is_file() => ldif::searches(settings).map(drop),
        DirectorySource::LdifFile(path) => Err(DirectoryError::Search {
            base_dn: settings.user_base_dn.clone(),
            cause: format!(
                "the LDIF file {} does not exist; fix `ldap.url` (ldif:PATH, relative to the config file's folder)",
                path.display()
            ),
        }),
    }
}

/// The raw entries, before assembly (kept by `plan --snapshot` to write them out as LDIF).
///
/// `user_attributes` is what a server is asked for (see
/// [`ldap::requested_user_attributes`]; `None`: as `ldap.user_attributes` says). An LDIF file
/// is read whole: it is small, and a captured case must replay as it was captured.
pub fn read_entries_with_env<'s>(
    settings: &'s LdapSettings,
    user_attributes: Option<Vec<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl std::future::Future<Output = Result<EntrySet, DirectoryError>> + Send + 's {
    let source = match &settings.source {
        DirectorySource::Server { .. } => Ok(ldap::read_entries_requesting(
            settings,
            user_attributes,
            env,
        )),
        DirectorySource::LdifFile(path) => Err(path),
    };
    async move {
        match source {
            Ok(server) => server.await,
            Err(path) => ldif::read_entries(path, settings),
        }
    }
}
