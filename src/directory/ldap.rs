//! Reading users and groups from an LDAP server (OpenLDAP, 389-ds/FreeIPA, Active Directory).
//!
//! This is the one place that talks LDAP on the wire. It exists to turn a live server into an
//! [`EntrySet`] that is either complete or an error — never a silently truncated list, which
//! would make the sync disable everyone it did not see. Concretely:
//!
//! * Users and groups are read concurrently on two connections, each with a paged search
//!   (RFC 2696, marked critical). A page counts only when its entry stream ended normally
//!   *and* its SearchResultDone carried result code 0; a missing paging control, a size or
//!   time limit, a referral or continuation reference, a non-existent base DN, a timeout or a
//!   dropped connection each fail the whole read with the base DN and the cause.
//! * Active Directory returns large multi-valued attributes in slices (`member;range=0-1499`);
//!   the rest is fetched with base-scope searches (`member;range=1500-*`, …) until the server
//!   says `*`, and merged into one plain attribute. A missing or inconsistent slice fails.
//! * Entries are decoded straight from the BER the server sent into [`Entry`] values with
//!   [`Value::from_bytes`], so binary attributes (objectGUID) stay bytes and malformed data is
//!   an error rather than a panic (ldap3's `SearchEntry::construct` panics on it).
//! * TLS (ldaps:// or StartTLS) verifies the server certificate and host name against
//!   `ldap.ca_file` when set, else the system trust store; ldap3 does not read ldap.conf or
//!   `LDAPTLS_CACERT`, so the CA is loaded here.
//! * Every failure maps to a distinct [`DirectoryError`] (DNS, connect, TLS, bind, timeout,
//!   incomplete, search) naming the URL or base DN and what to check. The bind password is
//!   only ever handed to ldap3's bind call; no message contains it.

use super::{Attribute, DirectoryError, Entry, EntrySet, ReadStats, Value};
use crate::config::{DirectorySource, LdapSettings};
use ldap3::asn1::{parse_tag, parse_uint, StructureTag, TagClass, Types, PL};
use ldap3::controls::{PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, StdStream};
use std::sync::Arc;
use std::time::Duration;

/// OID of the simple paged results control (RFC 2696).
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Operational attributes always requested for users, whatever `ldap.user_attributes` says:
/// stable ids (OpenLDAP, 389-ds, AD), group membership back-links and the disabled state.
pub const USER_OPERATIONAL_ATTRIBUTES: &[&str] = &[
    "entryUUID",
    "nsUniqueId",
    "objectGUID",
    "memberOf",
    "pwdAccountLockedTime",
    "nsAccountLock",
    "userAccountControl",
];

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

/// Reads every user and group the settings select from the configured LDAP server.
///
/// `env` looks up environment variables (for `ldap.bind_password_env`); pass
/// `&|k| std::env::var(k).ok()` in production. The password and the TLS configuration are
/// prepared before the returned future starts, so `env` is not held across an await and the
/// future is `Send`. Needs a Tokio runtime (connections are driven by spawned tasks).
pub fn read_entries<'s>(
    settings: &'s LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> impl std::future::Future<Output = Result<EntrySet, DirectoryError>> + Send + 's {
    let prepared = prepare(settings, env);
    async move { read_prepared(settings, prepared?).await }
}

/// Everything the read needs that does not touch the network.
fn prepare(
    settings: &LdapSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Reader, DirectoryError> {
    let (url, ldaps) = match &settings.source {
        DirectorySource::Server { url, ldaps } => (url.clone(), *ldaps),
        DirectorySource::LdifFile(path) => {
            return Err(DirectoryError::Search {
                base_dn: settings.user_base_dn.clone(),
                cause: format!(
                    "ldap.url is the LDIF file {}, not an LDAP server; use directory::read for it",
                    path.display()
                ),
            })
        }
    };
    let password = match (&settings.bind_dn, &settings.bind_password) {
        (Some(_), Some(source)) => Some(source.read("ldap.bind_password", env)?),
        (Some(dn), None) => {
            return Err(DirectoryError::Bind {
                url,
                bind_dn: dn.clone(),
                cause: "no password source is configured".into(),
            })
        }
        (None, _) => None,
    };
    let tls = if ldaps || settings.starttls {
        Some(tls_config(settings, &url)?)
    } else {
        None
    };
    Ok(Reader {
        url,
        starttls: settings.starttls && !ldaps,
        tls,
        bind_dn: settings.bind_dn.clone(),
        password,
        timeout: Duration::from_secs(settings.timeout_s.max(1)),
        timeout_s: settings.timeout_s.max(1),
        page_size: i32::try_from(settings.page_size.max(1)).unwrap_or(i32::MAX),
    })
}

async fn read_prepared(
    settings: &LdapSettings,
    reader: Reader,
) -> Result<EntrySet, DirectoryError> {
    let mut user_attributes: Vec<String> = if settings.user_attributes.is_empty() {
        vec!["*".to_string()]
    } else {
        settings.user_attributes.clone()
    };
    for extra in USER_OPERATIONAL_ATTRIBUTES {
        if !user_attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(extra))
        {
            user_attributes.push((*extra).to_string());
        }
    }
    let group_attributes: Vec<String> = GROUP_ATTRIBUTES.iter().map(|a| a.to_string()).collect();

    // Two connections, each read on its own task so that decoding the users and the groups
    // runs on both cores. A task that fails stops the other (the handles abort on drop).
    let reader = Arc::new(reader);
    let users = AbortOnDrop(tokio::spawn(read_base(
        reader.clone(),
        settings.user_base_dn.clone(),
        settings.user_filter.clone(),
        user_attributes,
    )));
    let groups = AbortOnDrop(tokio::spawn(read_base(
        reader.clone(),
        settings.group_base_dn.clone(),
        settings.group_filter.clone(),
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
        .paged_search(&base_dn, &filter, &attributes, &mut stats)
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

/// Builds the rustls client configuration: the configured CA file only, else the system roots.
fn tls_config(
    settings: &LdapSettings,
    url: &str,
) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let tls_error = |cause: String| DirectoryError::Tls {
        url: url.to_string(),
        cause,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    tls_error(format!(
                        "cannot read CA certificates from ldap.ca_file {}: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(tls_error(format!(
                    "ldap.ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    tls_error(format!(
                        "a certificate in ldap.ca_file {} is not a usable CA: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A broken system certificate is skipped, as every TLS client does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(tls_error(
                    "no system CA certificates found and ldap.ca_file is not set; set ldap.ca_file to the CA that signed the server certificate".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What both connections share: where to connect and how to authenticate.
struct Reader {
    url: String,
    starttls: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind_dn: Option<String>,
    password: Option<crate::config::Secret>,
    timeout: Duration,
    timeout_s: u64,
    page_size: i32,
}

/// One bound connection.
struct Conn {
    reader: Arc<Reader>,
    ldap: Ldap,
}

impl Reader {
    fn timeout_error(&self, operation: impl Into<String>) -> DirectoryError {
        DirectoryError::Timeout {
            url: self.url.clone(),
            operation: operation.into(),
            timeout_s: self.timeout_s,
        }
    }

    /// Resolves, connects (TCP, then TLS or StartTLS), spawns the connection driver and binds.
    async fn connect(self: &Arc<Self>) -> Result<Conn, DirectoryError> {
        let url = &self.url;
        let parsed = url::Url::parse(url).map_err(|e| DirectoryError::Connect {
            url: url.clone(),
            cause: format!("not a valid URL: {e}"),
        })?;
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => {
                return Err(DirectoryError::Connect {
                    url: url.clone(),
                    cause: "the URL names no host".into(),
                })
            }
        };
        let default_port = if parsed.scheme().eq_ignore_ascii_case("ldaps") {
            636
        } else {
            389
        };
        let port = parsed.port().unwrap_or(default_port);

        let addrs: Vec<std::net::SocketAddr> =
            match tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, port))).await {
                Err(_) => return Err(self.timeout_error(format!("resolving {host}"))),
                Ok(Err(e)) => {
                    return Err(DirectoryError::Dns {
                        url: url.clone(),
                        cause: e.to_string(),
                    })
                }
                Ok(Ok(addrs)) => addrs.collect(),
            };
        if addrs.is_empty() {
            return Err(DirectoryError::Dns {
                url: url.clone(),
                cause: format!("{host} has no address"),
            });
        }
        let mut last_error = None;
        let mut stream = None;
        for addr in &addrs {
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await {
                Err(_) => last_error = Some(format!("{addr}: no answer (timed out)")),
                Ok(Err(e)) => last_error = Some(format!("{addr}: {e}")),
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => {
                let cause = last_error.unwrap_or_else(|| "no address to try".into());
                if cause.ends_with("(timed out)") {
                    return Err(self.timeout_error(format!("connecting ({cause})")));
                }
                return Err(DirectoryError::Connect {
                    url: url.clone(),
                    cause,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let std_stream = stream.into_std().map_err(|e| DirectoryError::Connect {
            url: url.clone(),
            cause: e.to_string(),
        })?;

        let mut conn_settings = LdapConnSettings::new()
            .set_std_stream(StdStream::Tcp(std_stream))
            .set_conn_timeout(self.timeout)
            .set_starttls(self.starttls);
        if let Some(config) = &self.tls {
            conn_settings = conn_settings.set_config(config.clone());
        }
        let (conn, mut ldap) =
            match LdapConnAsync::from_url_with_settings(conn_settings, &parsed).await {
                Ok(pair) => pair,
                Err(LdapError::Timeout { .. }) => {
                    return Err(self.timeout_error(if self.starttls {
                        "StartTLS"
                    } else {
                        "TLS handshake"
                    }))
                }
                Err(LdapError::LdapResult { result }) if self.starttls => {
                    return Err(DirectoryError::Tls {
                        url: url.clone(),
                        cause: format!("the server refused StartTLS: {}", describe_result(&result)),
                    })
                }
                Err(e) if self.tls.is_some() => {
                    return Err(DirectoryError::Tls {
                        url: url.clone(),
                        cause: e.to_string(),
                    })
                }
                Err(e) => {
                    return Err(DirectoryError::Connect {
                        url: url.clone(),
                        cause: e.to_string(),
                    })
                }
            };
        let driver_url = url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(url = %driver_url, error = %e, "LDAP connection ended with an error");
            }
        });

        if let (Some(dn), Some(password)) = (&self.bind_dn, &self.password) {
            let bind_error = |cause: String| DirectoryError::Bind {
                url: url.clone(),
                bind_dn: dn.clone(),
                cause,
            };
            let result = ldap
                .with_timeout(self.timeout)
                .simple_bind(dn, password.expose())
                .await;
            match result {
                Err(LdapError::Timeout { .. }) => {
                    return Err(self.timeout_error(format!("bind as {dn}")))
                }
                Err(e) => return Err(bind_error(e.to_string())),
                Ok(res) if res.rc != 0 => return Err(bind_error(describe_result(&res))),
                Ok(_) => {}
            }
        }
        Ok(Conn {
            reader: self.clone(),
            ldap,
        })
    }
}

impl Conn {
    /// Unbinds, ignoring errors: everything needed has been read.
    async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }

    /// A subtree search of `base_dn`, page by page, until the server returns an empty cookie.
    async fn paged_search(
        &mut self,
        base_dn: &str,
        filter: &str,
        attributes: &[String],
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
            let before = entries.len();
            let result = self
                .search(
                    base_dn,
                    Scope::Subtree,
                    filter,
                    attributes,
                    vec![control],
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

    /// Runs one search, appending its entries to `out`; returns the final result only when
    /// the stream ended normally and the result code is success.
    async fn search(
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

    /// Completes every `attr;range=lo-hi` attribute of `entry` (AD range retrieval) and
    /// replaces it with the plain attribute holding all values.
    async fn complete_ranges(
        &mut self,
        entry: &mut Entry,
        stats: &mut ReadStats,
    ) -> Result<(), DirectoryError> {
        if !entry
            .attributes
            .iter()
            .any(|a| a.name.contains(';') && parse_range_option(&a.name).is_some())
        {
            return Ok(());
        }
        let mut kept = Vec::with_capacity(entry.attributes.len());
        let mut ranged = Vec::new();
        for attribute in std::mem::take(&mut entry.attributes) {
            match parse_range_option(&attribute.name) {
                Some(Ok((base, range))) => ranged.push((base, range, attribute.values)),
                Some(Err(())) => {
                    return Err(DirectoryError::Incomplete {
                        base_dn: entry.dn.clone(),
                        reason: format!(
                            "the server sent the attribute `{}` with a range option that cannot be read",
                            attribute.name
                        ),
                    })
                }
                None => kept.push(attribute),
            }
        }
        entry.attributes = kept;
        for (base, first, mut values) in ranged {
            if first.low != 0 {
                return Err(incomplete_range(
                    &entry.dn,
                    &base,
                    format!("the first slice starts at {} instead of 0", first.low),
                ));
            }
            let mut current = first;
            check_slice(&entry.dn, &base, &current, values.len() as u64)?;
            while let Some(high) = current.high {
                let next = high + 1;
                let request = format!("{base};range={next}-*");
                let mut found = Vec::new();
                self.search(
                    &entry.dn,
                    Scope::Base,
                    "(objectClass=*)",
                    std::slice::from_ref(&request),
                    Vec::new(),
                    &mut found,
                )
                .await
                .map_err(|e| match e {
                    DirectoryError::Timeout { .. } => e,
                    other => incomplete_range(
                        &entry.dn,
                        &base,
                        format!("fetching {request} failed: {other}"),
                    ),
                })?;
                stats.range_requests += 1;
                let slice = found
                    .into_iter()
                    .next()
                    .and_then(|e| {
                        e.attributes.into_iter().find_map(|a| {
                            match parse_range_option(&a.name) {
                                Some(Ok((b, r))) if b.eq_ignore_ascii_case(&base) => {
                                    Some((r, a.values))
                                }
                                _ => None,
                            }
                        })
                    })
                    .ok_or_else(|| {
                        incomplete_range(
                            &entry.dn,
                            &base,
                            format!(
                                "the server returned no {base};range= values when asked for {request} after {} values",
                                values.len()
                            ),
                        )
                    })?;
                let (range, more) = slice;
                if range.low != next {
                    return Err(incomplete_range(
                        &entry.dn,
                        &base,
                        format!(
                            "asked for values from {next} but the server sent a slice starting at {}",
                            range.low
                        ),
                    ));
                }
                check_slice(&entry.dn, &base, &range, more.len() as u64)?;
                values.extend(more);
                current = range;
            }
            match entry
                .attributes
                .iter_mut()
                .find(|a| a.name.eq_ignore_ascii_case(&base))
            {
                Some(plain) => plain.values.extend(values),
                None => entry.attributes.push(Attribute { name: base, values }),
            }
        }
        Ok(())
    }
}

/// A `range=low-high` attribute option; `high` is `None` for `*` (the last slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    low: u64,
    high: Option<u64>,
}

/// `member;range=0-1499` → `Some(Ok(("member", 0..=1499)))`; `None` without a range option.
fn parse_range_option(name: &str) -> Option<Result<(String, Range), ()>> {
    let mut parts = name.split(';');
    let base = parts.next().unwrap_or(name);
    let mut other = Vec::new();
    let mut range = None;
    for option in parts {
        match option.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("range=") => range = Some(&option[6..]),
            _ => other.push(option),
        }
    }
    let spec = range?;
    let parsed = (|| {
        let (low, high) = spec.split_once('-').ok_or(())?;
        let low = low.parse::<u64>().map_err(|_| ())?;
        let high = if high == "*" {
            None
        } else {
            let high = high.parse::<u64>().map_err(|_| ())?;
            if high < low {
                return Err(());
            }
            Some(high)
        };
        Ok(Range { low, high })
    })();
    let mut full = base.to_string();
    for option in other {
        full.push(';');
        full.push_str(option);
    }
    Some(parsed.map(|r| (full, r)))
}

/// A bounded slice must hold exactly `high - low + 1` values; fewer means values were lost.
fn check_slice(dn: &str, base: &str, range: &Range, count: u64) -> Result<(), DirectoryError> {
    if let Some(high) = range.high {
        let expected = high - range.low + 1;
        if count != expected {
            return Err(incomplete_range(
                dn,
                base,
                format!(
                    "the slice {}-{high} holds {count} values instead of {expected}",
                    range.low
                ),
            ));
        }
    }
    Ok(())
}

fn incomplete_range(dn: &str, base: &str, why: String) -> DirectoryError {
    DirectoryError::Incomplete {
        base_dn: dn.to_string(),
        reason: format!("range retrieval of `{base}` is incomplete: {why}"),
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
fn describe_result(result: &LdapResult) -> String {
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

/// The cookie of a paged-results response control value: `SEQUENCE { size INTEGER, cookie
/// OCTET STRING }`. `None` when malformed.
fn parse_paged_cookie(value: Option<&[u8]>) -> Option<Vec<u8>> {
    let (_, tag) = parse_tag(value?).ok()?;
    let mut parts = tag.expect_constructed()?.into_iter();
    let size = parts.next()?;
    if size.class != TagClass::Universal || size.id != Types::Integer as u64 {
        return None;
    }
    parse_uint(&size.expect_primitive()?).ok()?;
    parts.next()?.expect_primitive()
}

/// A SEQUENCE OF OCTET STRING as UTF-8 strings (continuation reference URLs).
fn parse_strings(tag: StructureTag) -> Option<Vec<String>> {
    tag.expect_constructed()?
        .into_iter()
        .map(|t| String::from_utf8(t.expect_primitive()?).ok())
        .collect()
}

/// Decodes a SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes SEQUENCE OF
/// SEQUENCE { type, vals SET OF value } }`) without panicking on malformed input.
fn parse_entry(tag: StructureTag) -> Option<Entry> {
    let mut parts = tag.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let attribute_tags = match parts.next() {
        Some(t) => t.expect_constructed()?,
        None => Vec::new(),
    };
    let mut attributes: Vec<Attribute> = Vec::with_capacity(attribute_tags.len());
    for attribute in attribute_tags {
        let mut pieces = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(pieces.next()?.expect_primitive()?).ok()?;
        let raw_values = match pieces.next() {
            Some(StructureTag {
                payload: PL::C(values),
                ..
            }) => values,
            Some(_) => return None,
            None => Vec::new(),
        };
        let mut values = Vec::with_capacity(raw_values.len());
        // What `Value::from_bytes` does, with the attribute's kind looked up once, not per
        // value: a large group has hundreds of thousands of member values.
        let binary = super::entry::is_binary_attribute(&name);
        for value in raw_values {
            let bytes = value.expect_primitive()?;
            values.push(if binary {
                Value::Binary(bytes)
            } else {
                match String::from_utf8(bytes) {
                    Ok(text) => Value::Text(text),
                    Err(e) => Value::Binary(e.into_bytes()),
                }
            });
        }
        match attributes
            .iter_mut()
            .find(|a| a.name.eq_ignore_ascii_case(&name))
        {
            Some(existing) => existing.values.extend(values),
            None => attributes.push(Attribute { name, values }),
        }
    }
    Some(Entry { dn, attributes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_options_parse() {
        assert_eq!(
            parse_range_option("member;range=0-1499"),
            Some(Ok((
                "member".to_string(),
                Range {
                    low: 0,
                    high: Some(1499)
                }
            )))
        );
        assert_eq!(
            parse_range_option("Member;Range=1500-*"),
            Some(Ok((
                "Member".to_string(),
                Range {
                    low: 1500,
                    high: None
                }
            )))
        );
        assert_eq!(parse_range_option("member"), None);
        assert_eq!(parse_range_option("member;range=9-3"), Some(Err(())));
        assert_eq!(parse_range_option("member;range=x-*"), Some(Err(())));
    }

    #[test]
    fn short_bounded_slice_is_incomplete() {
        let range = Range {
            low: 0,
            high: Some(1499),
        };
        assert!(check_slice("cn=g", "member", &range, 1500).is_ok());
        let err = check_slice("cn=g", "member", &range, 1000).unwrap_err();
        assert!(matches!(err, DirectoryError::Incomplete { .. }), "{err}");
    }

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

    #[test]
    fn malformed_entries_do_not_panic() {
        let primitive = |id, bytes: &[u8]| StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(bytes.to_vec()),
        };
        let constructed = |class, id, inner| StructureTag {
            class,
            id,
            payload: PL::C(inner),
        };
        // A primitive where the attribute list should be.
        let bad = constructed(
            TagClass::Application,
            4,
            vec![primitive(4, b"cn=x"), primitive(4, b"oops")],
        );
        assert_eq!(parse_entry(bad), None);
        // A well-formed entry, with a GUID that happens to be UTF-8 kept as bytes.
        let good = constructed(
            TagClass::Application,
            4,
            vec![
                primitive(4, b"cn=x"),
                constructed(
                    TagClass::Universal,
                    16,
                    vec![
                        constructed(
                            TagClass::Universal,
                            16,
                            vec![
                                primitive(4, b"objectGUID"),
                                constructed(
                                    TagClass::Universal,
                                    17,
                                    vec![primitive(4, b"ABCDEFGHIJKLMNOP")],
                                ),
                            ],
                        ),
                        constructed(
                            TagClass::Universal,
                            16,
                            vec![
                                primitive(4, b"cn"),
                                constructed(TagClass::Universal, 17, vec![primitive(4, b"x")]),
                            ],
                        ),
                    ],
                ),
            ],
        );
        let entry = parse_entry(good).expect("well-formed");
        assert_eq!(
            entry.values("objectGUID"),
            &[Value::Binary(b"ABCDEFGHIJKLMNOP".to_vec())]
        );
        assert_eq!(entry.first_text("cn"), Some("x"));
        assert_eq!(parse_paged_cookie(Some(b"\x30\x03\x02\x01")), None);
        assert_eq!(
            parse_paged_cookie(Some(b"\x30\x07\x02\x01\x00\x04\x02ab")),
            Some(b"ab".to_vec())
        );
    }
}
