//! Secrets (the LDAP bind password, the ftrack API key) and where they come from.
//!
//! A secret is never stored in `sync.toml`: it is read from an environment variable or a file
//! when the run needs it. [`Secret`] has no `Display` and a redacted `Debug`, so it cannot end
//! up in a log line, an error message or a plan by accident.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. Only [`Secret::expose`] gives the text, at the one place it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file whose content (without the trailing newline) is the secret.
    File(PathBuf),
}

/// Reading a secret failed. The message names the source, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct SecretError {
    pub what: String,
    pub message: String,
}

impl SecretSource {
    /// Reads the secret. `what` names the setting for the error, e.g. `ldap.bind_password_env`.
    pub fn read(
        &self,
        what: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, SecretError> {
        let fail = |message: String| SecretError {
            what: what.to_string(),
            message,
        };
        match self {
            SecretSource::Env(var) => match env(var) {
                Some(v) if !v.is_empty() => Ok(Secret(v)),
                Some(_) => Err(fail(format!(
                    "environment variable {var} is empty; export the secret in it"
                ))),
                None => Err(fail(format!(
                    "environment variable {var} is not set; export the secret in it"
                ))),
            },
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(format!(
                        "cannot read secret file {}: {e}; check the path and its permissions",
                        path.display()
                    ))
                })?;
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                if value.is_empty() {
                    return Err(fail(format!("secret file {} is empty", path.display())));
                }
                Ok(Secret(value.to_string()))
            }
        }
    }
}

/// A warning when a secret file can be read by users other than its owner.
pub fn loose_permissions_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(format!(
                "secret file {} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", Some(s)).contains("hunter2"));
    }

    #[test]
    fn env_source_reads_and_names_missing_variable() {
        let env = |k: &str| (k == "PW").then(|| "s3cret".to_string());
        let ok = SecretSource::Env("PW".into()).read("ldap.bind_password_env", &env);
        assert_eq!(ok.unwrap().expose(), "s3cret");
        let err = SecretSource::Env("NOPE".into())
            .read("ldap.bind_password_env", &env)
            .unwrap_err();
        assert!(err.to_string().contains("NOPE is not set"), "{err}");
    }

    #[test]
    fn file_source_strips_one_newline_and_warns_on_loose_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "abc def\n").unwrap();
        let env = |_: &str| None;
        let s = SecretSource::File(path.clone()).read("x", &env).unwrap();
        assert_eq!(s.expose(), "abc def");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(loose_permissions_warning(&path)
                .unwrap()
                .contains("chmod 600"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(loose_permissions_warning(&path), None);
        }
    }
}
