//! Why a command did not succeed, and the exit code each reason maps to.
//!
//! Every command returns a [`Failure`]; only the command line (`cli.rs`) turns it into
//! the process exit code and prints it, once. It lives below the commands so that they, the
//! run wiring and the checks need nothing from the command-line layer.

use crate::config::ConfigError;
use crate::rules::wasm::RuleLoadError;
use std::fmt;
use std::path::Path;

/// Why a command did not succeed, carrying its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1.
    Runtime(String),
    /// Exit 2.
    Config(ConfigError),
    /// Exit 2, for arguments that make no sense together.
    Usage(String),
    /// Exit 3.
    Guard(String),
    /// Exit 4: `plan --check` found changes. Not an error, but not "in sync" either.
    PendingChanges,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Runtime(_) => 1,
            Failure::Config(_) | Failure::Usage(_) => 2,
            Failure::Guard(_) => 3,
            Failure::PendingChanges => 4,
        }
    }

    /// A rule module that cannot be used as configured (wrong pin, bad configuration) is a
    /// configuration error of `config_file` (exit 2); one that fails while loading is a
    /// runtime failure (exit 1).
    pub fn rule_load(config_file: &Path, error: RuleLoadError) -> Failure {
        match error {
            RuleLoadError::HashMismatch { .. } | RuleLoadError::Config { .. } => {
                Failure::Config(ConfigError {
                    file: config_file.to_path_buf(),
                    problems: error.config_problems(),
                })
            }
            RuleLoadError::Runtime { message } => Failure::Runtime(message),
        }
    }
}

/// The one place a failure becomes text (empty for pending changes, which print nothing).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Runtime(m) | Failure::Usage(m) | Failure::Guard(m) => f.write_str(m),
            Failure::Config(e) => write!(f, "{e}"),
            Failure::PendingChanges => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigProblem;

    #[test]
    fn rule_load_errors_map_by_kind() {
        let file = Path::new("sync.toml");
        let config = RuleLoadError::Config {
            problems: vec![ConfigProblem::new("rules[0].config", "bad")],
        };
        assert_eq!(Failure::rule_load(file, config).exit_code(), 2);
        let runtime = RuleLoadError::Runtime {
            message: "trap".into(),
        };
        let failure = Failure::rule_load(file, runtime);
        assert_eq!(failure.exit_code(), 1);
        assert_eq!(failure.to_string(), "trap");
    }
}
