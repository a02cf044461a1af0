//! Opening one bound connection to the LDAP server.
//!
//! It exists so that everything about reaching and authenticating to the server is in one
//! place, apart from what is read over the connection: the settings checked before any
//! network traffic ([`prepare`]), the rustls configuration, and then URL, DNS, TCP, TLS
//! (ldaps:// or StartTLS) and the simple bind, each failure mapped to its own
//! [`DirectoryError`] naming the URL and what to check. TLS verifies the certificate and host
//! name against `ldap.ca_file` when set, else the system trust store; ldap3 does not read
//! ldap.conf or `LDAPTLS_CACERT`, so the CA file is loaded here. The bind password is only
//! ever handed to ldap3's bind call; no message contains it.

use super::search::describe_result;
use crate::config::{DirectorySource, LdapSettings};
use crate::directory::DirectoryError;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, StdStream};
use std::sync::Arc;
use std::time::Duration;

/// Everything the read needs that does not touch the network.
pub(crate) fn prepare(
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
    if password.is_some() && !ldaps && !settings.starttls && settings.allow_insecure_ldap {
        tracing::warn!(
            "binding to {url} in clear text: the bind password crosses the network \
             unencrypted (ldap.allow_insecure_ldap = true); use ldaps:// or starttls = true"
        );
    }
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

/// The rustls client configuration for `url`: `ldap.ca_file` only, else the system roots.
fn tls_config(
    settings: &LdapSettings,
    url: &str,
) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    crate::net::rustls_config(settings.ca_file.as_deref(), "ldap.ca_file").map_err(|cause| {
        DirectoryError::Tls {
            url: url.to_string(),
            cause,
        }
    })
}

/// What both connections share: where to connect and how to authenticate.
pub(crate) struct Reader {
    pub(super) url: String,
    starttls: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind_dn: Option<String>,
    password: Option<crate::config::Secret>,
    pub(super) timeout: Duration,
    timeout_s: u64,
    pub(super) page_size: i32,
}

/// One bound connection.
pub(super) struct Conn {
    pub(super) reader: Arc<Reader>,
    pub(super) ldap: Ldap,
}

impl Reader {
    pub(super) fn timeout_error(&self, operation: impl Into<String>) -> DirectoryError {
        DirectoryError::Timeout {
            url: self.url.clone(),
            operation: operation.into(),
            timeout_s: self.timeout_s,
        }
    }

    /// Resolves, connects (TCP, then TLS or StartTLS), spawns the connection driver and binds.
    pub(super) async fn connect(self: &Arc<Self>) -> Result<Conn, DirectoryError> {
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
    pub(super) async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}
