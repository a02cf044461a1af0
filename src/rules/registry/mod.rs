//! OCI registries for rule modules: pulling a module referenced as `oci://…` and publishing
//! one (`ldap2ftrack rules publish`), in the Wasm OCI artefact layout (config media type
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) that other component
//! tools (wkg, wasmtime's, …) read too.
//!
//! Exists to keep the registry side in one place and out of the loader: the protocol is
//! `oci-client`'s and the layout `oci-wasm`'s (nothing is spoken by hand here), credentials
//! come from the environment or the container credentials file (never from `sync.toml`), and
//! every error names the reference and says what to do, never a secret. A registry on
//! loopback is spoken to over plain HTTP, any other over HTTPS with certificate checks.
//!
//! Credentials are for one registry host and go nowhere else. oci-client sends them to
//! whatever token service (`WWW-Authenticate: Bearer realm=…`) a registry names, so before
//! it is handed any, [`auth_for`] asks the registry's `/v2/` itself (anonymously, following
//! no redirect, reading the header exactly as oci-client does) and hands over
//! `RegistryAuth::Anonymous` when the realm is on another host or plain http off loopback.
//! Only the registry host itself could answer oci-client differently, and it is the host the
//! credentials are for. Redirects oci-client follows (a blob on a CDN) drop the
//! `Authorization` header when they change host, port or scheme (reqwest's policy).

use crate::config::OciRef;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use std::time::Duration;

mod credentials;

pub use credentials::{credentials, Credentials, HOST_VAR, PASSWORD_VAR, USER_VAR};

/// How long connecting and each read may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a pull failed. The caller decides the exit code: a wrong or tampered artefact is the
/// configuration's problem (exit 2), an unreachable registry the run's (exit 1).
#[derive(Debug)]
pub enum PullError {
    /// The registry has no such repository, tag or digest.
    NotFound(String),
    /// The artefact is not a single-component Wasm artefact, or is too large.
    Unusable(String),
    /// The bytes the registry sent do not match the digest they were asked by.
    Tampered(String),
    /// Network, authentication or server trouble.
    Failed(String),
}

/// What oci-client is handed for a registry, and why credentials were kept back, if they were.
struct Auth {
    auth: RegistryAuth,
    withheld: Option<String>,
}

/// The authentication for `r`: its credentials only when the registry's token service is the
/// registry's own host, over https (or loopback). See the module comment.
async fn auth_for(r: &OciRef, env: &dyn Fn(&str) -> Option<String>) -> Result<Auth, String> {
    let Some(c) = credentials(&r.registry, env)? else {
        return Ok(Auth {
            auth: RegistryAuth::Anonymous,
            withheld: None,
        });
    };
    let withheld = match challenge(r).await? {
        Challenge::None => {
            tracing::debug!(registry = %r.registry, "the registry asks for no credentials");
            return Ok(Auth {
                auth: RegistryAuth::Anonymous,
                withheld: None,
            });
        }
        Challenge::Registry => None,
        Challenge::Realm(realm) => realm_allowed(r, &realm).err(),
        Challenge::Redirect(to) => Some(format!(
            "the registry {} answers /v2/ with a redirect to {to}",
            r.registry
        )),
    };
    match withheld {
        None => {
            tracing::debug!(registry = %r.registry, "registry credentials from {}", c.from);
            Ok(Auth {
                auth: RegistryAuth::Basic(c.user, c.password),
                withheld: None,
            })
        }
        Some(why) => {
            let why = format!("{why}, so the credentials from {} were not sent", c.from);
            tracing::warn!("{r}: {why}; asking anonymously");
            Ok(Auth {
                auth: RegistryAuth::Anonymous,
                withheld: Some(why),
            })
        }
    }
}

/// What a registry's `/v2/` says about authentication, read the way oci-client reads it (the
/// first `WWW-Authenticate` header; its first Bearer challenge with a realm; else Basic to
/// the registry itself; no header: no authentication).
enum Challenge {
    None,
    /// A Bearer challenge: oci-client would send the credentials to this realm.
    Realm(String),
    /// Another scheme: oci-client would send the credentials to the registry itself.
    Registry,
    /// A redirect (to this origin): where oci-client would end up is not the registry's word.
    Redirect(String),
}

fn base_url(r: &OciRef) -> Result<url::Url, String> {
    let scheme = if r.is_loopback() { "http" } else { "https" };
    url::Url::parse(&format!("{scheme}://{}/", r.registry))
        .map_err(|e| format!("{r}: `{}` is not a registry address: {e}", r.registry))
}

async fn challenge(r: &OciRef) -> Result<Challenge, String> {
    let url = base_url(r)?.join("v2/").map_err(|e| e.to_string())?;
    let client = crate::net::client_builder()
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let response = client.get(url.clone()).send().await.map_err(|e| {
        format!(
            "{r}: could not reach the registry {} ({}); check the address and that the \
             registry is reachable",
            r.registry,
            crate::net::describe(&e, r.host())
        )
    })?;
    if response.status().is_redirection() {
        let to = crate::net::location(&url, response.headers())
            .map_or_else(|| "nowhere".to_string(), |l| crate::net::origin(&l));
        return Ok(Challenge::Redirect(to));
    }
    let Some(header) = response.headers().get(reqwest::header::WWW_AUTHENTICATE) else {
        return Ok(Challenge::None);
    };
    let Ok(text) = header.to_str() else {
        return Ok(Challenge::Registry);
    };
    Ok(bearer_realm(text).map_or(Challenge::Registry, Challenge::Realm))
}

/// The realm oci-client would take from a `WWW-Authenticate` value: that of the first
/// well-formed Bearer challenge that has one (its last `realm`, as oci-client reads it).
fn bearer_realm(header: &str) -> Option<String> {
    http_auth::ChallengeParser::new(header)
        .filter_map(Result::ok)
        .filter(|c| c.scheme.eq_ignore_ascii_case("Bearer"))
        .find_map(|c| {
            c.params
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case("realm"))
                .map(|(_, v)| v.to_unescaped())
        })
}

/// Whether a token service at `realm` may have `r`'s credentials: on the registry's own host
/// and port, over https (plain http only on loopback).
fn realm_allowed(r: &OciRef, realm: &str) -> Result<(), String> {
    let registry = base_url(r)?;
    let Ok(realm) = url::Url::parse(realm) else {
        return Err(format!(
            "the registry {} names a token service that is not a URL",
            r.registry
        ));
    };
    let origin = crate::net::origin(&realm);
    if realm.host_str() != registry.host_str()
        || realm.port_or_known_default() != registry.port_or_known_default()
    {
        return Err(format!(
            "the registry {} names a token service on another host ({origin}); registry \
             credentials go only to the host they are for",
            r.registry
        ));
    }
    let loopback = realm
        .host_str()
        .is_some_and(crate::config::module_ref::is_loopback_host);
    match realm.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "the registry {} names a token service over plain {} ({origin}); registry \
             credentials go only over https off this machine",
            r.registry,
            realm.scheme()
        )),
    }
}

fn client(r: &OciRef) -> Result<Client, String> {
    // reqwest is built without a bundled crypto provider; rustls uses the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ClientConfig {
        protocol: if r.is_loopback() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(TIMEOUT),
        read_timeout: Some(TIMEOUT),
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| format!("cannot set up the registry client: {e}"))
}

fn reference(r: &OciRef) -> Reference {
    match (&r.tag, &r.digest) {
        (_, Some(digest)) => {
            Reference::with_digest(r.registry.clone(), r.repository.clone(), digest.clone())
        }
        (Some(tag), None) => {
            Reference::with_tag(r.registry.clone(), r.repository.clone(), tag.clone())
        }
        (None, None) => Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            "latest".to_string(),
        ),
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

fn is_auth(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        _ => false,
    }
}

/// What to do about a refused access; `withheld` says why credentials were kept back.
fn auth_hint(withheld: Option<&str>) -> String {
    match withheld {
        Some(why) => format!(
            "{why}; publish the module to a registry whose token service is on its own host \
             over https, or make it public"
        ),
        None => format!(
            "set {USER_VAR}, {PASSWORD_VAR} and {HOST_VAR} (the registry they are for), or log \
             in so that the container credentials file (~/.docker/config.json or \
             $REGISTRY_AUTH_FILE) has an entry for the registry"
        ),
    }
}

/// Pulls the component of a Wasm OCI artefact, at most `limit` bytes. The returned bytes
/// match the layer digest the manifest names; the caller still checks them against its pin.
pub async fn pull(
    r: &OciRef,
    limit: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, PullError> {
    let Auth { auth, withheld } = auth_for(r, env).await.map_err(PullError::Failed)?;
    let client = client(r).map_err(PullError::Failed)?;
    let image = reference(r);
    let failed = |what: &str, e: OciDistributionError| {
        if is_not_found(&e) {
            PullError::NotFound(format!(
                "{r}: the registry {} has no such module ({what}: {e}); check the repository and \
                 tag, or publish it with `ldap2ftrack rules publish MODULE.wasm {r}`",
                r.registry
            ))
        } else if is_auth(&e) {
            PullError::Failed(format!(
                "{r}: the registry refused access ({e}); {}",
                auth_hint(withheld.as_deref())
            ))
        } else if matches!(e, OciDistributionError::DigestError(_)) {
            PullError::Tampered(format!(
                "{r}: the registry sent a {what} that does not match its digest ({e}): the \
                 registry's copy is corrupt or has been tampered with; nothing was cached. Ask \
                 the publisher to publish the module again"
            ))
        } else if let Some(problem) = crate::net::tls_problem(&e, r.host(), "") {
            PullError::Failed(format!(
                "{r}: could not fetch the {what} from the registry {}: {problem}",
                r.registry
            ))
        } else {
            PullError::Failed(format!(
                "{r}: could not fetch the {what} from the registry {} ({e}); check that it is \
                 reachable, or run once while it is so the module is cached",
                r.registry
            ))
        }
    };
    let (manifest, _digest) = client
        .pull_image_manifest(&image, &auth)
        .await
        .map_err(|e| failed("manifest", e))?;
    if manifest.config.media_type != oci_wasm::WASM_MANIFEST_CONFIG_MEDIA_TYPE {
        return Err(PullError::Unusable(format!(
            "{r} is not a Wasm component artefact: its config has media type `{}`, not `{}`; \
             publish rule modules with `ldap2ftrack rules publish`",
            manifest.config.media_type,
            oci_wasm::WASM_MANIFEST_CONFIG_MEDIA_TYPE
        )));
    }
    let [layer] = manifest.layers.as_slice() else {
        return Err(PullError::Unusable(format!(
            "{r} has {} layers; a Wasm component artefact has exactly one",
            manifest.layers.len()
        )));
    };
    if layer.media_type != oci_wasm::WASM_LAYER_MEDIA_TYPE {
        return Err(PullError::Unusable(format!(
            "{r}: its layer has media type `{}`, not `{}`",
            layer.media_type,
            oci_wasm::WASM_LAYER_MEDIA_TYPE
        )));
    }
    if layer.size < 0 || layer.size as u64 > limit {
        return Err(PullError::Unusable(format!(
            "{r}: its component is {} bytes; rule modules are limited to {} MiB",
            layer.size,
            limit >> 20
        )));
    }
    let mut stream = client
        .pull_blob_stream(&image, layer)
        .await
        .map_err(|e| failed("component", e))?;
    let mut bytes = Vec::with_capacity(layer.size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            // The verifying stream reports a digest mismatch as an I/O error at the end.
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("digest") {
                PullError::Tampered(format!(
                    "{r}: the registry sent a component that does not match its digest \
                     ({text}): the registry's copy is corrupt or has been tampered with; \
                     nothing was cached. Ask the publisher to publish the module again"
                ))
            } else {
                PullError::Failed(format!(
                    "{r}: the download from {} broke off ({text}); try again",
                    r.registry
                ))
            }
        })?;
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(PullError::Unusable(format!(
                "{r}: the registry sent more than the {} MiB rule modules are limited to",
                limit >> 20
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    // Checked here too, whatever the client did: the bytes must be the layer the manifest names.
    let actual = format!("sha256:{}", crate::rules::wasm::sha256_hex(&bytes));
    if actual != layer.digest {
        return Err(PullError::Tampered(format!(
            "{r}: the registry sent a component with digest {actual}, but its manifest names {}: \
             the registry's copy is corrupt or has been tampered with; nothing was cached. Ask \
             the publisher to publish the module again",
            layer.digest
        )));
    }
    Ok(bytes)
}

/// What `rules publish` pushed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    /// The reference as given.
    pub reference: String,
    /// The same artefact by manifest digest (`oci://…@sha256:…`), immune to a moved tag.
    pub by_digest: String,
    /// The component's SHA-256: the `sha256` pin for `sync.toml`.
    pub sha256: String,
    pub size_bytes: u64,
}

/// Pushes `component` (a rule module that has been inspected) to `r` in the Wasm OCI artefact
/// layout, with the module's name, version and description as OCI annotations.
pub async fn publish(
    component: Vec<u8>,
    r: &OciRef,
    annotations: BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Published, String> {
    let Auth { auth, withheld } = auth_for(r, env).await?;
    let client = oci_wasm::WasmClient::new(client(r)?);
    let image = reference(r);
    let sha256 = crate::rules::wasm::sha256_hex(&component);
    let size_bytes = component.len() as u64;
    let (config, layer) = oci_wasm::WasmConfig::from_raw_component(component, None)
        .map_err(|e| format!("cannot describe the component for the registry: {e:#}"))?;
    let explain = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        let auth = text.contains("401")
            || text.contains("403")
            || text.to_ascii_lowercase().contains("unauthorized")
            || text.to_ascii_lowercase().contains("denied");
        if auth {
            format!(
                "the registry refused the push to {r} ({text}); {}",
                auth_hint(withheld.as_deref())
            )
        } else {
            format!(
                "could not push to {r} ({text}); check that the registry {} is reachable and \
                 accepts pushes",
                r.registry
            )
        }
    };
    client
        .push(&image, &auth, layer, config, Some(annotations))
        .await
        .map_err(|e| explain(&e))?;
    let digest = client
        .fetch_manifest_digest(&image, &auth)
        .await
        .map_err(|e| format!("pushed {r}, but could not read back its manifest digest: {e}"))?;
    let by_digest = OciRef {
        tag: None,
        digest: Some(digest),
        ..r.clone()
    };
    Ok(Published {
        reference: r.to_string(),
        by_digest: by_digest.to_string(),
        sha256,
        size_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_is_read_as_oci_client_reads_it() {
        let realm = bearer_realm(
            r#"Basic realm="registry", Bearer realm="https://reg.example.com/token",service="reg""#,
        );
        assert_eq!(realm.as_deref(), Some("https://reg.example.com/token"));
        assert_eq!(bearer_realm(r#"Basic realm="registry""#), None);
        assert_eq!(bearer_realm("Bearer service=\"reg\""), None);
    }

    #[test]
    fn a_token_realm_gets_credentials_only_on_the_registry_host_over_https() {
        let oci = |text: &str| match crate::config::module_ref::parse(text).unwrap() {
            crate::config::ModuleSource::Oci(r) => r,
            other => panic!("{other:?}"),
        };
        let remote = oci("oci://reg.example.com/rules/x:1");
        assert!(realm_allowed(&remote, "https://reg.example.com/token").is_ok());
        assert!(realm_allowed(&remote, "https://REG.example.com:443/v2/auth").is_ok());
        for refused in [
            "https://auth.example.com/token",
            "https://reg.example.com:8443/token",
            "http://reg.example.com/token",
            "not a url",
        ] {
            let e = realm_allowed(&remote, refused).unwrap_err();
            assert!(e.contains("reg.example.com"), "{refused}: {e}");
        }
        let local = oci("oci://127.0.0.1:5000/rules/x:1");
        assert!(realm_allowed(&local, "http://127.0.0.1:5000/token").is_ok());
        assert!(realm_allowed(&local, "http://127.0.0.1:5001/token").is_err());
        assert!(realm_allowed(&local, "http://127.0.0.2:5000/token").is_err());
    }
}
