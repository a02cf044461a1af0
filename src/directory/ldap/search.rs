//! One search, complete or an error: the fail-closed rule for everything read from the server.
//!
//! ldap3's streaming search ends with `Ok(None)` whether or not the server finished: the
//! result code (a size or time limit, a referral, a base DN that does not exist, …) is only
//! in `finish()`, and `?` does not look at it. [`Conn::search`] therefore reads the stream to
//! its end, turns each message into an entry or an error (a continuation reference or an
//! unexpected message fails), and returns the result only when [`check_result`] finds code 0.
//! The paged search checks every page through it, and so does each AD range follow-up.

use super::connect::Conn;
use super::decode::{parse_entry, parse_strings};
use crate::directory::{DirectoryError, Entry};
use ldap3::asn1::TagClass;
use ldap3::controls::RawControl;
use ldap3::{LdapError, LdapResult, Scope};

impl Conn {
    /// Runs one search, appending its entries to `out`; returns the final result only when
    /// the stream ended normally and the result code is success.
    pub(super) async fn search(
        &mut self,
        base_dn: &str,
        scope: Scope,
        filter: &str,
        attributes: &[String],
        controls: Vec<RawControl>,
        out: &mut Vec<Entry>,
    ) -> Result<LdapResult, DirectoryError> {
        let reader = self.reader.clone();
        let transport = |e: LdapError, what: &str| match e {
            LdapError::Timeout { .. } => reader.timeout_error(format!("search of {base_dn}")),
            LdapError::FilterParsing => DirectoryError::Search {
                base_dn: base_dn.to_string(),
                cause: format!("`{filter}` is not a valid LDAP filter; fix the filter setting"),
            },
            e => DirectoryError::Incomplete {
                base_dn: base_dn.to_string(),
                reason: format!("connection to {} lost {what}: {e}", reader.url),
            },
        };
        let mut stream = self
            .ldap
            .with_controls(controls)
            .with_timeout(reader.timeout)
            .streaming_search(base_dn, scope, filter, attributes)
            .await
            .map_err(|e| transport(e, "when sending the search"))?;
        loop {
            let item = stream
                .next()
                .await
                .map_err(|e| transport(e, "mid-search"))?;
            let Some(item) = item else { break };
            let tag = item.0;
            match (tag.class, tag.id) {
                (TagClass::Application, 4) => {
                    let entry = parse_entry(tag).ok_or_else(|| DirectoryError::Incomplete {
                        base_dn: base_dn.to_string(),
                        reason: "the server sent a malformed search result entry".into(),
                    })?;
                    out.push(entry);
                }
                (TagClass::Application, 19) => {
                    let urls = parse_strings(tag).unwrap_or_default();
                    return Err(DirectoryError::Incomplete {
                        base_dn: base_dn.to_string(),
                        reason: format!(
                            "the server returned a continuation reference to {}; referrals are not followed — point ldap.url at a server that holds the whole base DN (for AD, the global catalog on port 3268/3269) or narrow the base DN",
                            display_urls(&urls)
                        ),
                    });
                }
                (class, id) => {
                    return Err(DirectoryError::Incomplete {
                        base_dn: base_dn.to_string(),
                        reason: format!(
                            "the server sent an unexpected message ({class:?} {id}) in the search results"
                        ),
                    })
                }
            }
        }
        let result = stream.finish().await;
        check_result(base_dn, result, out.len())
    }
}

impl Conn {
    /// The server's root DSE with these attributes (an empty entry when it sends none).
    pub(super) async fn root_dse(&mut self, attributes: &[&str]) -> Result<Entry, DirectoryError> {
        let mut entries = Vec::new();
        let attributes: Vec<String> = attributes.iter().map(|a| a.to_string()).collect();
        self.search(
            "",
            Scope::Base,
            "(objectClass=*)",
            &attributes,
            Vec::new(),
            &mut entries,
        )
        .await?;
        Ok(entries.into_iter().next().unwrap_or_default())
    }
}

/// Turns a SearchResultDone into success, or the error that says why the read is incomplete.
fn check_result(
    base_dn: &str,
    result: LdapResult,
    entries_so_far: usize,
) -> Result<LdapResult, DirectoryError> {
    let incomplete = |reason: String| DirectoryError::Incomplete {
        base_dn: base_dn.to_string(),
        reason,
    };
    match result.rc {
        0 => Ok(result),
        3 => Err(incomplete(format!(
            "the server's time limit stopped the search after {entries_so_far} entries (timeLimitExceeded); raise the sync account's time limit"
        ))),
        4 => Err(incomplete(format!(
            "the server's size limit stopped the search after {entries_so_far} entries (sizeLimitExceeded); raise the size limit for the sync account (OpenLDAP: limits … size.prtotal; AD: MaxResultSetSize) or lower ldap.page_size if it is above that limit"
        ))),
        10 => Err(incomplete(format!(
            "the server answered with a referral to {}; referrals are not followed — point ldap.url at the server holding the base DN",
            display_urls(&result.refs)
        ))),
        11 => Err(incomplete(format!(
            "the server's administrative limit stopped the search after {entries_so_far} entries (adminLimitExceeded: {}); lower ldap.page_size (OpenLDAP: size.pr; AD: MaxPageSize) or raise the limits for the sync account",
            result.text
        ))),
        32 => Err(DirectoryError::Search {
            base_dn: base_dn.to_string(),
            cause: format!(
                "the base DN does not exist on the server (noSuchObject{}); check ldap.user_base_dn and ldap.group_base_dn",
                if result.matched.is_empty() {
                    String::new()
                } else {
                    format!(", the closest existing entry is `{}`", result.matched)
                }
            ),
        }),
        12 => Err(DirectoryError::Search {
            base_dn: base_dn.to_string(),
            cause: format!(
                "the server does not support the paged-results control (unavailableCriticalExtension: {}); enable paging for the sync account",
                result.text
            ),
        }),
        88 => Err(incomplete(
            "the search was cancelled before the server finished it".into(),
        )),
        _ => Err(DirectoryError::Search {
            base_dn: base_dn.to_string(),
            cause: describe_result(&result),
        }),
    }
}

/// `invalidCredentials (49): <server text>`.
pub(super) fn describe_result(result: &LdapResult) -> String {
    let name = match result.rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "error",
    };
    if result.text.is_empty() {
        format!("{name} ({})", result.rc)
    } else {
        format!("{name} ({}): {}", result.rc, result.text)
    }
}

fn display_urls(urls: &[String]) -> String {
    if urls.is_empty() {
        "another server".to_string()
    } else {
        urls.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limit_and_missing_base_are_errors() {
        let result = |rc| LdapResult {
            rc,
            matched: String::new(),
            text: String::new(),
            refs: vec![],
            ctrls: vec![],
        };
        assert!(check_result("dc=x", result(0), 5).is_ok());
        let e = check_result("dc=x", result(4), 1000).unwrap_err();
        assert!(e.to_string().contains("sizeLimitExceeded"), "{e}");
        let e = check_result("dc=x", result(32), 0).unwrap_err();
        assert!(e.to_string().contains("noSuchObject"), "{e}");
        let e = check_result("dc=x", result(10), 0).unwrap_err();
        assert!(e.to_string().contains("referral"), "{e}");
    }
}
