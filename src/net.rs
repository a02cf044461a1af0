//! What every HTTP client of ours (ftrack, module downloads, OCI registries) agrees on: how a
//! redirect is described without its secrets, which redirects a download may follow, and how
//! a transport error is worded — a TLS certificate problem as one, with how to trust a
//! private CA.
//!
//! Exists because a run holds an ftrack API key and registry credentials and is often started
//! by cron: a redirect must never carry a credential to another host, and a refused
//! certificate must say so instead of "error sending request".

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use url::Url;

/// How many redirects a module download follows before giving up (reqwest's default).
pub const MAX_REDIRECTS: usize = 10;

/// How to make this machine trust a private CA, for messages about an untrusted certificate.
pub const TRUST_PRIVATE_CA: &str = "if the server's certificate comes from a private CA, add \
     that CA to the system's trust store (e.g. /usr/local/share/ca-certificates/ and \
     update-ca-certificates) or point SSL_CERT_FILE at a PEM file that holds it";

/// A reqwest client builder for talking to a server for us: rustls with the ring provider
/// (reqwest is built without one of its own), our user agent, and no redirect followed —
/// reqwest would keep custom headers such as `ftrack-api-key` across hosts, so each caller
/// decides what a redirect means.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ldap2ftrack/", env!("CARGO_PKG_VERSION")))
}

/// A rustls client configuration (ring provider) for a TLS stream we open ourselves (LDAP,
/// the ftrack event hub's websocket): trusting only the CAs in `ca_file` when it is set (the
/// config key `key`, named in errors), else the system's roots.
pub fn rustls_config(
    ca_file: Option<&Path>,
    key: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "cannot read CA certificates from {key} {}: {e}",
                        path.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "{key} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    format!(
                        "a certificate in {key} {} is not a usable CA: {e}",
                        path.display()
                    )
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
                return Err(format!(
                    "no system CA certificates found and {key} is not set; set {key} to the CA \
                     that signed the server certificate"
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `scheme://host[:port]` of `url`: all that may be said of an address that could carry a
/// token in its user info, path or query (a signed URL, a Location header).
pub fn origin(url: &Url) -> String {
    match url.host_str() {
        Some(host) => match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        },
        None => format!("{}:", url.scheme()),
    }
}

/// The `Location` of a redirect answer, resolved against the URL that was asked for.
pub fn location(asked: &Url, headers: &reqwest::header::HeaderMap) -> Option<Url> {
    let value = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    asked.join(value.trim()).ok()
}

/// Whether a download may follow a redirect from `from` to `to`: never from https to plain
/// http, and plain http only to loopback (the rule for a module URL as written).
pub fn redirect_allowed(from: &Url, to: &Url) -> Result<(), String> {
    match (from.scheme(), to.scheme()) {
        (_, "https") => Ok(()),
        ("http", "http")
            if to
                .host_str()
                .is_some_and(crate::config::module_ref::is_loopback_host) =>
        {
            Ok(())
        }
        ("https", "http") => Err(format!(
            "it redirects from https to plain http ({}), which is refused: the download would \
             no longer be private or authenticated",
            origin(to)
        )),
        (_, "http") => Err(format!(
            "it redirects to plain http off this machine ({}), which is refused",
            origin(to)
        )),
        (_, other) => Err(format!("it redirects to an unsupported scheme `{other}:`")),
    }
}

/// A transport error in words: a certificate problem as one (naming `host` and what to do),
/// anything else as reqwest's text with its source chain (where "connection refused" lives).
pub fn describe(e: &reqwest::Error, host: &str) -> String {
    if let Some(problem) = tls_problem(e, host, "") {
        return problem;
    }
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The rustls error somewhere in `e`'s source chain, worded for a person, if there is one;
/// `also` is appended to the advice for an untrusted certificate (another way to trust it).
pub fn tls_problem(e: &(dyn Error + 'static), host: &str, also: &str) -> Option<String> {
    let mut link: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(current) = link {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(word_tls(tls, host, also));
        }
        link = next_link(current);
    }
    None
}

/// The error under `e`. An `io::Error`'s `source()` skips the error it wraps (it returns that
/// error's source), and rustls' error reaches reqwest wrapped in one or two of them.
fn next_link<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return Some(inner as &(dyn Error + 'static));
    }
    e.source()
}

fn word_tls(e: &rustls::Error, host: &str, also: &str) -> String {
    use rustls::CertificateError as C;
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "the certificate {host} presented is signed by a CA this machine does not \
                 trust (a private CA, or a self-signed certificate)"
            ),
            C::NotValidForName => {
                format!("the certificate {host} presented is not valid for the name {host}")
            }
            C::NotValidForNameContext { presented, .. } => format!(
                "the certificate {host} presented is not valid for the name {host} (it names {})",
                if presented.is_empty() {
                    "nothing".to_string()
                } else {
                    presented.join(", ")
                }
            ),
            C::Expired | C::ExpiredContext { .. } => {
                format!("the certificate {host} presented has expired")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => format!(
                "the certificate {host} presented is not valid yet (check this machine's clock)"
            ),
            C::Revoked => format!("the certificate {host} presented has been revoked"),
            _ => format!("the certificate {host} presented was refused"),
        },
        rustls::Error::General(text) if text.contains("No CA certificates") => {
            return format!(
                "TLS certificate problem: this machine has no trusted CA certificates to check \
                 {host}'s certificate with (rustls: {e}); install the ca-certificates package, \
                 or point SSL_CERT_FILE at a PEM file of the CAs to trust"
            )
        }
        _ => {
            return format!(
                "the TLS handshake with {host} failed (rustls: {e}); check that the address \
                 speaks TLS and that the server's TLS settings are current"
            )
        }
    };
    format!("TLS certificate problem: {why} (rustls: {e}); {TRUST_PRIVATE_CA}{also}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_leaves_out_user_info_path_and_query() {
        let url = Url::parse("https://bot:pw@cdn.example.com:8443/a/b?sig=secret#x").unwrap();
        assert_eq!(origin(&url), "https://cdn.example.com:8443");
        let url = Url::parse("http://127.0.0.1/token?t=1").unwrap();
        assert_eq!(origin(&url), "http://127.0.0.1");
    }

    #[test]
    fn a_download_never_follows_https_to_http() {
        let url = |s: &str| Url::parse(s).unwrap();
        let https = url("https://files.example.com/m.wasm");
        assert!(redirect_allowed(&https, &url("https://cdn.example.net/m.wasm")).is_ok());
        let e = redirect_allowed(&https, &url("http://127.0.0.1:9/m.wasm?sig=s3cret")).unwrap_err();
        assert!(
            e.contains("https to plain http") && !e.contains("s3cret"),
            "{e}"
        );
        let http = url("http://127.0.0.1:8080/m.wasm");
        assert!(redirect_allowed(&http, &url("http://localhost:9/m.wasm")).is_ok());
        assert!(redirect_allowed(&http, &url("http://files.example.com/m.wasm")).is_err());
        assert!(redirect_allowed(&https, &url("ftp://files.example.com/m.wasm")).is_err());
    }

    #[test]
    fn a_refused_certificate_is_worded_as_one_wherever_it_sits_in_the_chain() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let io = std::io::Error::other(io);
        let text = tls_problem(&io, "localhost", "").unwrap();
        assert!(
            text.contains("certificate") && text.contains("localhost"),
            "{text}"
        );
        assert!(text.contains("SSL_CERT_FILE"), "{text}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(tls_problem(&plain, "localhost", "").is_none());
    }
}
