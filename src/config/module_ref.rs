//! Where a `[[rules]] module` comes from, as written in `sync.toml`: a local path, an OCI
//! registry reference (`oci://HOST[:PORT]/NAMESPACE/NAME:TAG` or `…@sha256:DIGEST`), or a
//! download URL (`https://…/NAME.wasm`).
//!
//! Exists so that the shape of a reference is checked with every other configuration
//! problem, before anything is fetched, and so that every layer names a module the way the
//! admin wrote it. Fetching is `rules::fetch`'s job; this only parses.

use std::fmt;
use std::path::PathBuf;

/// A module's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// A local file (resolved against the config file's folder).
    Path(PathBuf),
    /// An OCI artefact in a registry.
    Oci(OciRef),
    /// A plain download (`https://`, or `http://` to loopback).
    Url(url::Url),
}

impl ModuleSource {
    /// Whether the module has to be fetched (and is kept in the module cache).
    pub fn is_remote(&self) -> bool {
        !matches!(self, ModuleSource::Path(_))
    }
}

impl fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleSource::Path(p) => write!(f, "{}", p.display()),
            ModuleSource::Oci(r) => write!(f, "{r}"),
            ModuleSource::Url(u) => write!(f, "{u}"),
        }
    }
}

/// `oci://HOST[:PORT]/REPOSITORY(:TAG|@sha256:DIGEST)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    /// `HOST` or `HOST:PORT`, as written.
    pub registry: String,
    /// `NAMESPACE/NAME` (one or more lower-case path components).
    pub repository: String,
    /// Exactly one of `tag` and `digest` is set.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` (the manifest's digest).
    pub digest: Option<String>,
}

impl OciRef {
    /// The registry host without the port.
    pub fn host(&self) -> &str {
        host_of(&self.registry)
    }

    /// Whether the registry is on this machine (then it is spoken to over plain HTTP).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.host())
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        // [::1]:5000
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// The host of `url` is this machine ([`is_loopback_host`]).
pub fn url_is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => is_loopback_host(d),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

const OCI_EXAMPLE: &str = "oci://registry.example.com/rules/studio-basics:1.0.0";

/// Parses `module = "…"`. A string with `scheme://` must be `oci://`, `https://` or a
/// loopback `http://`; anything else is a path (returned as written, not yet resolved).
pub fn parse(text: &str) -> Result<ModuleSource, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("oci://") {
        return parse_oci(rest).map(ModuleSource::Oci).map_err(|m| {
            format!("`{text}` is not an OCI reference: {m}; expected e.g. {OCI_EXAMPLE} or …/studio-basics@sha256:<digest>")
        });
    }
    if text.starts_with("https://") || text.starts_with("http://") {
        return parse_url(text).map(ModuleSource::Url);
    }
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "`{text}` has scheme `{scheme}://`; a module is a path, an oci:// reference (e.g. \
             {OCI_EXAMPLE}) or an https:// URL"
        ));
    }
    Ok(ModuleSource::Path(PathBuf::from(text)))
}

fn parse_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL: it carries a secret.
        return Err(format!(
            "the module URL for host `{}` carries credentials; sync.toml holds no secrets: \
             publish the module where it can be downloaded without them, or use an oci:// \
             registry (credentials from the environment or the container credentials file)",
            url.host_str().unwrap_or("?")
        ));
    }
    if url.scheme() == "http" {
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => is_loopback_host(d),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if !loopback {
            return Err(format!(
                "`{text}` is plain http to another machine, where the module could be swapped \
                 in transit; use https:// (plain http is only for loopback)"
            ));
        }
    }
    if url.host().is_none() {
        return Err(format!("`{text}` names no host"));
    }
    Ok(url)
}

/// The reference after `oci://`, read by the distribution grammar oci-client speaks (the
/// same parser that later addresses the registry), then held to what a pin needs: the
/// registry named (no Docker Hub default), and exactly one of a tag or a sha256 digest (no
/// implicit `latest`).
fn parse_oci(rest: &str) -> Result<OciRef, String> {
    use oci_client::ParseError;
    let (registry, path) = rest
        .split_once('/')
        .ok_or("it names no repository after the registry host")?;
    let reference = oci_client::Reference::try_from(rest).map_err(|e| match e {
        ParseError::NameContainsUppercase | ParseError::NameEmpty | ParseError::NameTooLong => {
            format!(
                "`{path}` is not a repository name ({e}: lower-case path components such as \
                 rules/studio-basics)"
            )
        }
        ParseError::DigestInvalidFormat
        | ParseError::DigestInvalidLength
        | ParseError::DigestUnsupported => {
            format!("its digest is not sha256:<64 hex digits> ({e})")
        }
        ParseError::TagInvalidFormat => {
            "its tag is not a tag (letters, digits, `_`, `.`, `-`; at most 128)".to_string()
        }
        // The grammar names no rule when a name or digest does not match it at all.
        _ if path
            .split(['@', ':'])
            .next()
            .is_some_and(|name| name.chars().any(|c| c.is_ascii_uppercase())) =>
        {
            format!(
                "`{path}` is not a repository name (lower-case path components such as \
                 rules/studio-basics)"
            )
        }
        _ if path.contains('@') => "its digest is not sha256:<64 hex digits>".to_string(),
        _ if path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':')) =>
        {
            "its tag is not a tag (letters, digits, `_`, `.`, `-`; at most 128)".to_string()
        }
        _ => format!("it is not HOST[:PORT]/NAMESPACE/NAME:TAG ({e})"),
    })?;
    if reference.registry() != registry {
        return Err(format!(
            "`{registry}` is not a registry host[:port] (a host has a `.` or a port, or is \
             localhost)"
        ));
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    let tag_written = last
        .split('@')
        .next()
        .is_some_and(|name| name.contains(':'));
    let digest = match reference.digest() {
        Some(digest) => match digest.strip_prefix("sha256:") {
            Some(hex) => Some(format!("sha256:{}", hex.to_ascii_lowercase())),
            None => {
                return Err(format!(
                    "its digest `{digest}` is not sha256:<64 hex digits>"
                ))
            }
        },
        None => None,
    };
    let tag = match (tag_written, &digest) {
        (true, Some(_)) => {
            return Err("it has both a :TAG and an @DIGEST; pin one of them".to_string())
        }
        (true, None) => reference.tag().map(str::to_string),
        (false, Some(_)) => None,
        (false, None) => {
            return Err(
                "it has neither a :TAG nor an @sha256:DIGEST; name the version to use".to_string(),
            )
        }
    };
    Ok(OciRef {
        registry: registry.to_string(),
        repository: reference.repository().to_string(),
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_paths() {
        assert_eq!(
            parse("rules/x.wasm").unwrap(),
            ModuleSource::Path("rules/x.wasm".into())
        );
        assert_eq!(
            parse("/abs/x.wasm").unwrap(),
            ModuleSource::Path("/abs/x.wasm".into())
        );
    }

    #[test]
    fn oci_by_tag_and_by_digest() {
        let ModuleSource::Oci(r) = parse("oci://127.0.0.1:5000/rules/studio-basics:1.0.0").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "rules/studio-basics");
        assert_eq!(r.tag.as_deref(), Some("1.0.0"));
        assert!(r.is_loopback());
        assert_eq!(
            r.to_string(),
            "oci://127.0.0.1:5000/rules/studio-basics:1.0.0"
        );
        let digest = "a".repeat(64);
        let ModuleSource::Oci(r) =
            parse(&format!("oci://reg.example.com/rules/x@sha256:{digest}")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.digest, Some(format!("sha256:{digest}")));
        assert_eq!(r.host(), "reg.example.com");
        assert!(!r.is_loopback());
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let e = parse("oci://reg.example.com/rules/x").unwrap_err();
        assert!(e.contains("neither a :TAG"), "{e}");
        let e = parse("oci://reg.example.com/Rules/x:1").unwrap_err();
        assert!(e.contains("not a repository name"), "{e}");
        let e = parse("oci://reg.example.com/rules/x@sha256:abc").unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        let e = parse(&format!(
            "oci://reg.example.com/rules/x:1@sha256:{}",
            "a".repeat(64)
        ))
        .unwrap_err();
        assert!(e.contains("both"), "{e}");
        // No Docker Hub default: the registry is named.
        let e = parse("oci://rules/x:1").unwrap_err();
        assert!(e.contains("not a registry host"), "{e}");
        let e = parse("oci://reg.example.com/rules/x:-bad").unwrap_err();
        assert!(e.contains("not a tag"), "{e}");
        let ModuleSource::Oci(r) = parse("oci://localhost/rules/x:1").unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "rules/x")
        );
        let e = parse("ftp://host/x.wasm").unwrap_err();
        assert!(e.contains("ftp://"), "{e}");
        let e = parse("http://rules.example.com/x.wasm").unwrap_err();
        assert!(e.contains("plain http"), "{e}");
        assert!(parse("http://127.0.0.1:8000/x.wasm").is_ok());
        let e = parse("https://user:hunter2@rules.example.com/x.wasm").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
