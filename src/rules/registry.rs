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

use crate::config::OciRef;
use base64::Engine as _;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The variables that give registry credentials (both or neither).
pub const USER_VAR: &str = "LDAP2FTRACK_REGISTRY_USER";
pub const PASSWORD_VAR: &str = "LDAP2FTRACK_REGISTRY_PASSWORD";

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

/// Where the credentials for a registry came from, and the credentials (never printed).
pub struct Credentials {
    user: String,
    password: String,
    /// `LDAP2FTRACK_REGISTRY_USER` or the credentials file's path, for messages.
    pub from: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// The container credentials file: `$REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`.
fn auth_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(f) = nonempty("REGISTRY_AUTH_FILE") {
        return Some(PathBuf::from(f));
    }
    if let Some(d) = nonempty("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    Some(
        PathBuf::from(nonempty("HOME")?)
            .join(".docker")
            .join("config.json"),
    )
}

/// The credentials for `registry` (`HOST[:PORT]`): `LDAP2FTRACK_REGISTRY_USER` and
/// `LDAP2FTRACK_REGISTRY_PASSWORD` when set, else `auths."HOST[:PORT]".auth` (base64
/// `user:password`) in the container credentials file, else none (anonymous).
pub fn credentials(
    registry: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    match (env(USER_VAR), env(PASSWORD_VAR)) {
        (Some(user), Some(password)) if !user.is_empty() => {
            return Ok(Some(Credentials {
                user,
                password,
                from: USER_VAR.to_string(),
            }))
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "only one of {USER_VAR} and {PASSWORD_VAR} is set; set both, or neither to use \
                 the container credentials file"
            ))
        }
        _ => {}
    }
    let Some(file) = auth_file(env) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    #[derive(serde::Deserialize)]
    struct AuthFile {
        #[serde(default)]
        auths: BTreeMap<String, AuthEntry>,
    }
    #[derive(serde::Deserialize)]
    struct AuthEntry {
        auth: Option<String>,
    }
    // The file's content is never echoed: it holds secrets.
    let parsed: AuthFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a container credentials file (line {}, column {}); fix it or point \
             REGISTRY_AUTH_FILE elsewhere",
            file.display(),
            e.line(),
            e.column()
        )
    })?;
    // Keys may be written `host`, `https://host` or `https://host/v1/`.
    let key_host = |k: &str| {
        let k = k
            .strip_prefix("https://")
            .or_else(|| k.strip_prefix("http://"))
            .unwrap_or(k);
        k.split('/').next().unwrap_or(k).to_ascii_lowercase()
    };
    let wanted = registry.to_ascii_lowercase();
    let Some(entry) = parsed
        .auths
        .iter()
        .find(|(k, _)| key_host(k) == wanted)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        format!(
            "{}: auths.\"{registry}\".auth is not base64 of user:password; log in again \
             (e.g. `podman login {registry}`) or fix the entry",
            file.display()
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credentials {
        user: user.to_string(),
        password: password.to_string(),
        from: file.display().to_string(),
    }))
}

fn auth_for(r: &OciRef, env: &dyn Fn(&str) -> Option<String>) -> Result<RegistryAuth, String> {
    Ok(match credentials(&r.registry, env)? {
        Some(c) => {
            tracing::debug!(registry = %r.registry, "registry credentials from {}", c.from);
            RegistryAuth::Basic(c.user, c.password)
        }
        None => RegistryAuth::Anonymous,
    })
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
        OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        _ => false,
    }
}

fn auth_hint() -> String {
    format!(
        "set {USER_VAR} and {PASSWORD_VAR}, or log in so that the container credentials file \
         (~/.docker/config.json or $REGISTRY_AUTH_FILE) has an entry for the registry"
    )
}

/// Pulls the component of a Wasm OCI artefact, at most `limit` bytes. The returned bytes
/// match the layer digest the manifest names; the caller still checks them against its pin.
pub async fn pull(
    r: &OciRef,
    limit: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, PullError> {
    let auth = auth_for(r, env).map_err(PullError::Failed)?;
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
                auth_hint()
            ))
        } else if matches!(e, OciDistributionError::DigestError(_)) {
            PullError::Tampered(format!(
                "{r}: the registry sent a {what} that does not match its digest ({e}): the \
                 registry's copy is corrupt or has been tampered with; nothing was cached. Ask \
                 the publisher to publish the module again"
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
    let auth = auth_for(r, env)?;
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
                auth_hint()
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

    fn env_of<'a>(vars: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn credentials_come_from_the_environment_then_the_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("studio:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths": {{"https://reg.example.com:5000/v1/": {{"auth": "{auth}"}}}}}}"#),
        )
        .unwrap();
        let from_file = [("REGISTRY_AUTH_FILE", file.display().to_string())];
        let c = credentials("reg.example.com:5000", &env_of(&from_file))
            .unwrap()
            .unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("studio", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(credentials("other.example.com", &env_of(&from_file))
            .unwrap()
            .is_none());

        let both = [
            ("REGISTRY_AUTH_FILE", file.display().to_string()),
            (USER_VAR, "bot".to_string()),
            (PASSWORD_VAR, "pw".to_string()),
        ];
        let c = credentials("reg.example.com:5000", &env_of(&both))
            .unwrap()
            .unwrap();
        assert_eq!(c.user, "bot");

        let half = [(USER_VAR, "bot".to_string())];
        assert!(credentials("reg.example.com", &env_of(&half)).is_err());

        std::fs::write(&file, r#"{"auths": {"reg.example.com": {"auth": "!!"}}}"#).unwrap();
        let e = credentials("reg.example.com", &env_of(&from_file)).unwrap_err();
        assert!(e.contains("not base64"), "{e}");
    }
}
