//! `sync.toml`: reading, validating and resolving the configuration, before anything runs.
//!
//! Loading is strict on purpose: an unknown key is an error (with a "did you mean"), a
//! plaintext secret is refused, relative paths resolve against the file's folder, and every
//! problem names the file and the dotted key. The result, [`Config`], is what every later
//! stage reads; nothing else looks at the TOML.
//!
//! Layout: this file holds the validated types and the `Config::load*` entry points; `raw`
//! the file as written (serde structs), `validate` the checks that turn it into a [`Config`],
//! `error` the problems, their location and suggestions.

mod bounds;
mod error;
mod guard_limit;
pub mod module_ref;
mod raw;
mod secret;
mod validate;

pub use bounds::{BoundsReport, ModuleBounds, Patterns};
pub use error::{ConfigError, ConfigProblem};
pub use guard_limit::{Allowance, Basis, GuardLimit};
pub use module_ref::{ModuleSource, OciRef};
pub use secret::{Secret, SecretError, SecretSource};

use error::toml_problem;
use raw::RawConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use validate::Resolver;

/// The validated configuration of one sync.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub ldap: LdapSettings,
    pub ftrack: FtrackSettings,
    pub mappings: AttributeMappings,
    /// LDAP group (a DN, or a cn) → what membership in it grants in ftrack, in file order by key.
    pub group_mappings: BTreeMap<String, GroupMapping>,
    /// Rule modules, in the order they run.
    pub rules: Vec<RuleModuleSettings>,
    pub deprovision: DeprovisionSettings,
    pub guards: GuardSettings,
    pub run: RunSettings,
    pub events: EventSettings,
    pub sync: SyncSettings,
    /// Things worth telling the admin that do not stop the run (e.g. a world-readable secret file).
    pub warnings: Vec<String>,
}

/// `[events]`: what a run tells ftrack's event hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// Publish `ldap2ftrack.sync.applied` / `.failed` after each apply (default true: a
    /// server without a hub is noted at info level, and a hub that is down never fails the
    /// sync).
    pub publish: bool,
}

/// `[sync]`: whether runs read only what changed in the directory, and how often they read
/// everything anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    pub mode: SyncMode,
    /// A full read at least this often (default 24 h), whatever the stored state says: it
    /// catches what an incremental run cannot see (ftrack changed by hand, a grace period
    /// that ran out).
    pub full_every: std::time::Duration,
    /// Where the directory's sync state is kept (default `ldap2ftrack-sync-state.json`
    /// beside the config file, like the journal).
    pub state_file: PathBuf,
}

/// `[sync] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Incremental runs where the server can say what changed (syncrepl), full reads
    /// elsewhere.
    Auto,
    /// Every run reads everything.
    Full,
}

/// Files of the run itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// The run lock (default `.ldap2ftrack.lock` beside the config file).
    pub lock_file: PathBuf,
    /// JSON lines of applied operations (default `ldap2ftrack-journal.jsonl` beside the config).
    pub journal_file: PathBuf,
    /// Prometheus/OpenMetrics textfile written after each run, when set.
    pub metrics_file: Option<PathBuf>,
    /// The fetch cache: rule modules fetched by reference (`oci://`, `https://`),
    /// content-addressed: `<fetch_cache_dir>/sha256/<hash>.wasm`. `[run] fetch_cache_dir`,
    /// else [`default_cache_base`]`/fetched`; `None` when neither is known (no home folder).
    pub fetch_cache_dir: Option<PathBuf>,
    /// The compile cache: native code compiled from rule modules, authenticated with a key
    /// of this host (`rules::wasm::engine`). `[run] compile_cache_dir`, else
    /// [`default_cache_base`]`/compiled`; `None`: every run compiles.
    pub compile_cache_dir: Option<PathBuf>,
}

/// The fetch cache folder when sync.toml does not name one.
pub fn default_fetch_cache(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    default_cache_base(env).map(|b| b.join("fetched"))
}

/// The compile cache folder when sync.toml does not name one.
pub fn default_compile_cache(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    default_cache_base(env).map(|b| b.join("compiled"))
}

/// `$LDAP2FTRACK_CACHE_DIR`, else `$XDG_CACHE_HOME/ldap2ftrack`, else `~/.cache/ldap2ftrack`:
/// the folder for everything ldap2ftrack caches. `None` when no home is known.
pub fn default_cache_base(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(d) = nonempty("LDAP2FTRACK_CACHE_DIR") {
        Some(PathBuf::from(d))
    } else if let Some(d) = nonempty("XDG_CACHE_HOME") {
        Some(PathBuf::from(d).join("ldap2ftrack"))
    } else {
        Some(
            PathBuf::from(nonempty("HOME")?)
                .join(".cache")
                .join("ldap2ftrack"),
        )
    }
}

/// Where the directory is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// `ldap://` or `ldaps://` server URL, as written.
    Server { url: String, ldaps: bool },
    /// `ldif:PATH`: an LDIF file standing in for the server (demo, fixtures).
    LdifFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub source: DirectorySource,
    pub starttls: bool,
    /// `allow_insecure_ldap = true`: a simple bind in clear text to another machine was
    /// accepted in sync.toml; every run warns.
    pub allow_insecure_ldap: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<SecretSource>,
    pub user_base_dn: String,
    pub user_filter: String,
    pub group_base_dn: String,
    pub group_filter: String,
    /// Attributes requested for users; empty means all user attributes.
    pub user_attributes: Vec<String>,
    pub page_size: u32,
    pub timeout_s: u64,
}

/// Where the ftrack server is and how to authenticate.
#[derive(Debug, Clone)]
pub struct FtrackSettings {
    /// From `server_url`, else `FTRACK_SERVER`. Checked when a command needs ftrack.
    pub server_url: Option<FtrackServer>,
    /// From `api_user`, else `FTRACK_API_USER`.
    pub api_user: Option<String>,
    /// From `api_key_env` / `api_key_file`, else the `FTRACK_API_KEY` variable.
    pub api_key: SecretSource,
    pub ca_file: Option<PathBuf>,
    pub timeout_s: u64,
    pub batch_size: usize,
    pub allow_insecure_http: bool,
}

/// The ftrack server: a real URL, or the bundled emulator run in-process with its state in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FtrackServer {
    Url(String),
    /// `emulator:PATH`: the in-process ftrack-emulator, loading and saving its state at PATH;
    /// when PATH does not exist yet, the state starts from `seed` (`ftrack.emulator_seed`).
    Emulator {
        state: PathBuf,
        seed: Option<PathBuf>,
    },
}

impl FtrackSettings {
    /// The server, or an error naming both the key and the variable to set.
    pub fn require_server(&self) -> Result<&FtrackServer, String> {
        self.server_url.as_ref().ok_or_else(|| {
            "no ftrack server: set `ftrack.server_url` in the config or FTRACK_SERVER in the environment"
                .to_string()
        })
    }

    /// The API user, or an error naming both the key and the variable to set.
    pub fn require_api_user(&self) -> Result<&str, String> {
        self.api_user.as_deref().ok_or_else(|| {
            "no ftrack API user: set `ftrack.api_user` in the config or FTRACK_API_USER in the environment"
                .to_string()
        })
    }
}

/// Which LDAP attribute feeds which ftrack user field (the built-in first rule stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMappings {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Tried in order when first or last name is missing: a full name split at the last space.
    pub name_fallbacks: Vec<String>,
}

impl Default for AttributeMappings {
    fn default() -> Self {
        AttributeMappings {
            username: "uid".into(),
            email: "mail".into(),
            first_name: "givenName".into(),
            last_name: "sn".into(),
            name_fallbacks: vec!["displayName".into(), "cn".into()],
        }
    }
}

/// What membership in one LDAP group grants in ftrack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    /// ftrack groups to be a member of.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Security roles on all open projects.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Project name → security roles on that project only.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRuleError {
    /// Stop the run (exit 1) before anything is written.
    #[default]
    Abort,
    /// Leave the entry out of this run and report it.
    Skip,
}

/// `[[rules]] max_run_seconds` when unset: the wall-clock time all of a module's hook calls
/// of one run may take together (`rules::budget` enforces it).
pub const DEFAULT_MAX_RUN_SECONDS: u64 = 300;

#[derive(Debug, Clone)]
pub struct RuleModuleSettings {
    /// Where the module comes from, as written (a path, `oci://…` or `https://…`).
    pub source: ModuleSource,
    /// The file the module is loaded from: the path itself, or for a fetched module its
    /// place in the fetch cache (`<fetch_cache_dir>/sha256/<sha256>.wasm`), which `rules::fetch`
    /// fills before the module is loaded.
    pub module: PathBuf,
    /// Lower-case hex SHA-256 the module file must have.
    pub sha256: String,
    /// Handed to the module as its configuration.
    pub config: toml::Table,
    pub on_error: OnRuleError,
    /// The groups and roles the module may manage (`groups`, `roles`).
    pub bounds: ModuleBounds,
    /// How long all the module's hook calls of one run may take together.
    pub max_run_seconds: u64,
    /// Where its compiled code is cached (`[run] compile_cache_dir`); `None`: compile.
    pub compile_cache: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeprovisionAction {
    /// Leave users that left LDAP as they are.
    Keep,
    /// Disable (`is_active = false`) users that left LDAP or are disabled there.
    #[default]
    Disable,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeprovisionSettings {
    pub action: DeprovisionAction,
    /// ftrack usernames never disabled or stripped (the API user is always protected too).
    pub protected_users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GuardSettings {
    pub max_disable: GuardLimit,
    pub max_membership_removals: GuardLimit,
    pub max_role_revocations: GuardLimit,
    /// Entries the rules failed on or found invalid, of the directory's users.
    pub max_skipped: GuardLimit,
    pub allow_empty_source: bool,
}

/// The percentages stop a broken filter at any size; the counts under them let one or two
/// people's ordinary change through in a small studio, where a percentage alone allows 0.
/// A departure is one disable; a team change is a removal and a revocation or a few; the
/// counts stay below 60% of 8, so a filter dropping most of a tiny directory is still refused.
impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_disable: GuardLimit::percent_or(10, 3),
            max_membership_removals: GuardLimit::percent_or(20, 4),
            max_role_revocations: GuardLimit::percent_or(10, 4),
            max_skipped: GuardLimit::percent_or(5, 3),
            allow_empty_source: false,
        }
    }
}

pub const DEFAULT_USER_FILTER: &str = "(objectClass=person)";
pub const DEFAULT_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))";

impl Config {
    /// Reads and validates `path`, taking `FTRACK_*` fallbacks from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::single(
                path,
                ConfigProblem::new(
                    "",
                    format!(
                        "cannot read the configuration: {e}; pass the right file with --config"
                    ),
                ),
            )
        })?;
        Config::from_toml(&text, path, env)
    }

    /// Validates TOML `text` as if read from `path` (relative paths resolve against its folder).
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = {
            let deserializer = toml::Deserializer::parse(text)
                .map_err(|e| ConfigError::single(path, toml_problem(text, "", &e)))?;
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::single(path, toml_problem(text, &key, e.inner()))
            })?
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Resolver::new(base).resolve(raw, path, env)
    }
}

#[cfg(test)]
mod tests;
