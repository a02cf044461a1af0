//! Registry credentials, from the environment or the container credentials file — never
//! from `sync.toml`. The file is read as docker and podman write it: `auths` entries (an
//! `auth` of base64 `user:password`, or `username`/`password`), and the credential helpers
//! it names (`credHelpers` per registry, else `credsStore`), by the `docker_credential`
//! crate. Nothing read here is ever printed.

use std::path::PathBuf;

/// The variables that give registry credentials (both or neither)…
pub const USER_VAR: &str = "LDAP2FTRACK_REGISTRY_USER";
pub const PASSWORD_VAR: &str = "LDAP2FTRACK_REGISTRY_PASSWORD";
/// …and the one registry (`HOST[:PORT]`) they are for: required with them, so a
/// module reference to another registry never receives them.
pub const HOST_VAR: &str = "LDAP2FTRACK_REGISTRY_HOST";

/// Where the credentials for a registry came from, and the credentials (never printed).
pub struct Credentials {
    pub(super) user: String,
    pub(super) password: String,
    /// `LDAP2FTRACK_REGISTRY_USER`, the credentials file's path, or the helper and the file
    /// naming it, for messages.
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
/// `LDAP2FTRACK_REGISTRY_PASSWORD` when `LDAP2FTRACK_REGISTRY_HOST` names this registry, else
/// what the container credentials file gives for it (an entry or a credential helper), else
/// none (anonymous).
pub fn credentials(
    registry: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    match (env(USER_VAR), env(PASSWORD_VAR)) {
        (Some(user), Some(password)) if !user.is_empty() => {
            let Some(host) = env(HOST_VAR).filter(|h| !h.trim().is_empty()) else {
                return Err(format!(
                    "{USER_VAR} and {PASSWORD_VAR} are set but {HOST_VAR} is not; set it to the \
                     registry they are for (HOST[:PORT], as in oci://HOST[:PORT]/…): they are \
                     sent to that registry and no other"
                ));
            };
            if key_host(&host) == registry.to_ascii_lowercase() {
                return Ok(Some(Credentials {
                    user,
                    password,
                    from: USER_VAR.to_string(),
                }));
            }
            tracing::debug!(
                "{USER_VAR} is for the registry {host}, not {registry}; looking in the \
                 credentials file"
            );
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
    from_file(registry, &text, &file.display().to_string())
}

/// The credentials `text` (the credentials file at `file`) gives for `registry`.
fn from_file(registry: &str, text: &str, file: &str) -> Result<Option<Credentials>, String> {
    use docker_credential::{CredentialRetrievalError as Error, DockerCredential};
    // Checked first for its position: the crate's own error names neither, and the file's
    // content is never echoed (it holds secrets).
    let shape: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "{file} is not a container credentials file (line {}, column {}); fix it or point \
             REGISTRY_AUTH_FILE elsewhere",
            e.line(),
            e.column()
        )
    })?;
    let helper = shape
        .pointer(&format!(
            "/credHelpers/{}",
            registry.replace('~', "~0").replace('/', "~1")
        ))
        .or_else(|| shape.get("credsStore"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty());
    let from = match helper {
        Some(helper) => format!("the credential helper docker-credential-{helper} ({file})"),
        None => file.to_string(),
    };
    match docker_credential::get_credential_from_reader(text.as_bytes(), registry) {
        Ok(DockerCredential::UsernamePassword(user, password)) => Ok(Some(Credentials {
            user,
            password,
            from,
        })),
        Ok(DockerCredential::IdentityToken(_)) => Err(format!(
            "{from} has an identity token for {registry}, which oci registries here cannot \
             use; log in with a user and password (`podman login {registry}`), or set \
             {USER_VAR}, {PASSWORD_VAR} and {HOST_VAR}"
        )),
        Err(Error::NoCredentialConfigured) => Ok(None),
        Err(Error::CredentialDecodingError | Error::CredentialMismatchError) => Err(format!(
            "{file}: the entry for {registry} is not base64 of user:password (or disagrees \
             with its username and password); log in again (e.g. `podman login {registry}`) \
             or fix the entry"
        )),
        // A helper's own output may carry a secret: only its name is said.
        Err(
            Error::HelperFailure { .. }
            | Error::HelperCommunicationError
            | Error::MalformedHelperResponse,
        ) => Err(format!(
            "{from} gave no credentials for {registry}; check that it is installed and logged \
             in (`docker-credential-… list`), or set {USER_VAR}, {PASSWORD_VAR} and {HOST_VAR}"
        )),
        Err(Error::ConfigNotFound | Error::ConfigReadError) => Err(format!(
            "{file} is not a container credentials file; fix it or point REGISTRY_AUTH_FILE \
             elsewhere"
        )),
    }
}

/// `HOST[:PORT]`, lower-case, of a registry written `host`, `https://host` or
/// `https://host/v1/` (as `LDAP2FTRACK_REGISTRY_HOST` may be).
fn key_host(k: &str) -> String {
    let k = k.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

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
            (HOST_VAR, "Reg.Example.com:5000".to_string()),
        ];
        let c = credentials("reg.example.com:5000", &env_of(&both))
            .unwrap()
            .unwrap();
        assert_eq!(c.user, "bot");
        // The variables are for that registry only: another gets the file's entry, or none.
        assert!(credentials("other.example.com", &env_of(&both))
            .unwrap()
            .is_none());
        let elsewhere = [
            ("REGISTRY_AUTH_FILE", file.display().to_string()),
            (USER_VAR, "bot".to_string()),
            (PASSWORD_VAR, "pw".to_string()),
            (HOST_VAR, "other.example.com".to_string()),
        ];
        let c = credentials("reg.example.com:5000", &env_of(&elsewhere))
            .unwrap()
            .unwrap();
        assert_eq!(c.user, "studio", "the file's entry for this registry");
        // Credentials in the environment that name no registry are refused, not sprayed.
        let unscoped = [
            (USER_VAR, "bot".to_string()),
            (PASSWORD_VAR, "pw".to_string()),
        ];
        let e = credentials("reg.example.com", &env_of(&unscoped)).unwrap_err();
        assert!(e.contains(HOST_VAR) && !e.contains("pw"), "{e}");

        let half = [(USER_VAR, "bot".to_string())];
        assert!(credentials("reg.example.com", &env_of(&half)).is_err());

        std::fs::write(&file, r#"{"auths": {"reg.example.com": {"auth": "!!"}}}"#).unwrap();
        let e = credentials("reg.example.com", &env_of(&from_file)).unwrap_err();
        assert!(e.contains("not base64"), "{e}");
    }
}
