//! Configuration errors that tell a sysadmin which file, which key and what to write instead.
//!
//! Every problem found in `sync.toml` becomes one [`ConfigProblem`]; loading collects all
//! problems it can find in one pass so the admin fixes the file once, not once per run.
//! TOML and serde errors are turned into problems here too, with the line and, for an unknown
//! key, a "did you mean" (or the list of keys allowed there).

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `ldap.user_base_dn` or `rules[0].sha256`; empty for whole-file problems.
    pub key: String,
    /// 1-based line in the file, when the TOML parser knows it.
    pub line: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key: key.into(),
            line: None,
            message: message.into(),
        }
    }
}

/// The configuration could not be used. Maps to exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    pub fn single(file: &Path, problem: ConfigProblem) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            problems: vec![problem],
        }
    }

    /// True when some problem names exactly this key; used by tests and by `check`.
    pub fn mentions_key(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key == key)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.problems.len() > 1 {
            writeln!(f, "{file}: {} problems:", self.problems.len())?;
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if self.problems.len() > 1 {
                write!(f, "  ")?;
            }
            write!(f, "{file}")?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if !p.key.is_empty() {
                write!(f, ": key `{}`", p.key)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// "did you mean" for a mistyped key: the closest known name, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(&unknown, &k.to_ascii_lowercase()), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Turns a TOML or serde error into a problem with a line and, for unknown keys, a suggestion.
pub(super) fn toml_problem(text: &str, key: &str, error: &toml::de::Error) -> ConfigProblem {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let message = error.message().trim().to_string();
    let (key, message) = match unknown_field(&message) {
        Some((field, expected)) => {
            let parent = key
                .strip_suffix(field.as_str())
                .map(|p| p.trim_end_matches('.'))
                .unwrap_or(key);
            let full = join_key(parent, &field);
            let mut msg = format!("unknown key `{field}`");
            match did_you_mean(&field, expected.iter().map(String::as_str)) {
                Some(s) => msg.push_str(&format!("; did you mean `{}`?", join_key(parent, s))),
                None if !expected.is_empty() => {
                    msg.push_str(&format!("; known keys here: {}", expected.join(", ")))
                }
                None => {}
            }
            if field == "bind_password" || field == "api_key" {
                msg = plaintext_secret_message(&full);
            }
            (full, msg)
        }
        None => (key.to_string(), message),
    };
    ConfigProblem { key, line, message }
}

/// Picks apart serde's "unknown field `x`, expected one of `a`, `b`" message.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn plaintext_secret_message(key: &str) -> String {
    let (section, _) = key.split_once('.').unwrap_or(("", key));
    format!(
        "secrets are not accepted in the configuration file; remove `{key}` and set `{section}.{0}_env` \
         to the name of an environment variable holding it, or `{section}.{0}_file` to a file (mode 600) containing it",
        key.rsplit('.').next().unwrap_or(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["user_base_dn", "group_base_dn", "page_size"];
        assert_eq!(did_you_mean("user_bse_dn", known), Some("user_base_dn"));
        assert_eq!(did_you_mean("PAGE_SIZE", known), Some("page_size"));
        assert_eq!(did_you_mean("colour", known), None);
    }

    #[test]
    fn display_names_file_line_and_key() {
        let mut p = ConfigProblem::new("ldap.url", "expected a string");
        p.line = Some(3);
        let e = ConfigError::single(Path::new("/etc/sync.toml"), p);
        assert_eq!(
            e.to_string(),
            "/etc/sync.toml:3: key `ldap.url`: expected a string"
        );
    }
}
