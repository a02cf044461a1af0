//! `sync.toml`: reading, validating and resolving the configuration, before anything runs.
//!
//! Loading is strict on purpose: an unknown key is an error (with a "did you mean"), a
//! plaintext secret is refused, relative paths resolve against the file's folder, and every
//! problem names the file and the dotted key. The result, [`Config`], is what every later
//! stage reads; nothing else looks at the TOML.

mod bounds;
mod error;
mod guard_limit;
mod secret;

pub use bounds::{BoundsReport, ModuleBounds, Patterns};
pub use error::{ConfigError, ConfigProblem};
pub use guard_limit::GuardLimit;
pub use secret::{Secret, SecretError, SecretSource};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// Things worth telling the admin that do not stop the run (e.g. a world-readable secret file).
    pub warnings: Vec<String>,
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

#[derive(Debug, Clone)]
pub struct RuleModuleSettings {
    pub module: PathBuf,
    /// Lower-case hex SHA-256 the module file must have.
    pub sha256: String,
    /// Handed to the module as its configuration.
    pub config: toml::Table,
    pub on_error: OnRuleError,
    /// The groups and roles the module may manage (`groups`, `roles`).
    pub bounds: ModuleBounds,
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
    pub allow_empty_source: bool,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_disable: GuardLimit::Percent(10.0),
            max_membership_removals: GuardLimit::Percent(20.0),
            max_role_revocations: GuardLimit::Percent(10.0),
            allow_empty_source: false,
        }
    }
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    ldap: RawLdap,
    #[serde(default)]
    ftrack: RawFtrack,
    #[serde(default)]
    mappings: RawMappings,
    #[serde(default)]
    group_mappings: BTreeMap<String, GroupMapping>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    deprovision: RawDeprovision,
    #[serde(default)]
    guards: RawGuards,
    #[serde(default)]
    run: RawRun,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    lock_file: Option<String>,
    journal_file: Option<String>,
    metrics_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    /// Optional here so that a missing one is reported with every other problem.
    url: Option<String>,
    #[serde(default)]
    starttls: bool,
    ca_file: Option<String>,
    bind_dn: Option<String>,
    /// Only present to refuse it with a helpful message.
    bind_password: Option<toml::Value>,
    bind_password_env: Option<String>,
    bind_password_file: Option<String>,
    user_base_dn: Option<String>,
    user_filter: Option<String>,
    group_base_dn: Option<String>,
    group_filter: Option<String>,
    #[serde(default)]
    user_attributes: Vec<String>,
    page_size: Option<u32>,
    timeout_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFtrack {
    server_url: Option<String>,
    api_user: Option<String>,
    /// Only present to refuse it with a helpful message.
    api_key: Option<toml::Value>,
    api_key_env: Option<String>,
    api_key_file: Option<String>,
    emulator_seed: Option<String>,
    ca_file: Option<String>,
    timeout_s: Option<u64>,
    batch_size: Option<usize>,
    #[serde(default)]
    allow_insecure_http: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMappings {
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    name_fallbacks: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    module: String,
    sha256: Option<String>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    on_error: OnRuleError,
    groups: Option<Vec<String>>,
    roles: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDeprovision {
    #[serde(default)]
    action: DeprovisionAction,
    #[serde(default)]
    protected_users: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGuards {
    max_disable: Option<GuardLimit>,
    max_membership_removals: Option<GuardLimit>,
    max_role_revocations: Option<GuardLimit>,
    #[serde(default)]
    allow_empty_source: bool,
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
        Resolver {
            base,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
        .resolve(raw, path, env)
    }
}

/// Turns a TOML or serde error into a problem with a line and, for unknown keys, a suggestion.
fn toml_problem(text: &str, key: &str, error: &toml::de::Error) -> ConfigProblem {
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
            match error::did_you_mean(&field, expected.iter().map(String::as_str)) {
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

fn plaintext_secret_message(key: &str) -> String {
    let (section, _) = key.split_once('.').unwrap_or(("", key));
    format!(
        "secrets are not accepted in the configuration file; remove `{key}` and set `{section}.{0}_env` \
         to the name of an environment variable holding it, or `{section}.{0}_file` to a file (mode 600) containing it",
        key.rsplit('.').next().unwrap_or(key)
    )
}

/// Collects problems while turning the raw file into a [`Config`].
struct Resolver {
    base: PathBuf,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
}

impl Resolver {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    fn resolve(
        mut self,
        raw: RawConfig,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let ldap = self.ldap(raw.ldap);
        let ftrack = self.ftrack(raw.ftrack, env);
        let mappings = self.mappings(raw.mappings);
        self.group_mappings(&raw.group_mappings);
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.rule(i, r))
            .collect();
        let deprovision = self.deprovision(raw.deprovision);
        let defaults = GuardSettings::default();
        let guards = GuardSettings {
            max_disable: raw.guards.max_disable.unwrap_or(defaults.max_disable),
            max_membership_removals: raw
                .guards
                .max_membership_removals
                .unwrap_or(defaults.max_membership_removals),
            max_role_revocations: raw
                .guards
                .max_role_revocations
                .unwrap_or(defaults.max_role_revocations),
            allow_empty_source: raw.guards.allow_empty_source,
        };
        let run = RunSettings {
            lock_file: self
                .base
                .join(raw.run.lock_file.as_deref().unwrap_or(".ldap2ftrack.lock")),
            journal_file: self.base.join(
                raw.run
                    .journal_file
                    .as_deref()
                    .unwrap_or("ldap2ftrack-journal.jsonl"),
            ),
            metrics_file: raw.run.metrics_file.map(|f| self.base.join(f)),
        };
        if !self.problems.is_empty() {
            return Err(ConfigError {
                file: path.to_path_buf(),
                problems: self.problems,
            });
        }
        Ok(Config {
            file: path.to_path_buf(),
            ldap,
            ftrack,
            mappings,
            group_mappings: raw.group_mappings,
            rules,
            deprovision,
            guards,
            run,
            warnings: self.warnings,
        })
    }

    /// Resolves a path against the config file's folder and checks that the file exists.
    fn existing_file(&mut self, key: &str, value: &str) -> PathBuf {
        let path = self.base.join(value);
        if value.trim().is_empty() {
            self.problem(key, "is empty; give a file path");
        } else if !path.is_file() {
            self.problem(
                key,
                format!(
                    "file {} does not exist (relative paths resolve against the config file's folder)",
                    path.display()
                ),
            );
        }
        path
    }

    fn secret_source(
        &mut self,
        section: &str,
        name: &str,
        env_var: Option<String>,
        file: Option<String>,
    ) -> Option<SecretSource> {
        match (env_var, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{section}.{name}_file"),
                    format!(
                        "set either `{section}.{name}_env` or `{section}.{name}_file`, not both"
                    ),
                );
                None
            }
            (Some(var), None) => {
                let valid = !var.is_empty()
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !var.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    self.problem(
                        format!("{section}.{name}_env"),
                        format!(
                            "`{var}` is not an environment variable name; give the NAME of the variable holding the secret, not the secret"
                        ),
                    );
                }
                Some(SecretSource::Env(var))
            }
            (None, Some(file)) => {
                let path = self.existing_file(&format!("{section}.{name}_file"), &file);
                if let Some(w) = secret::loose_permissions_warning(&path) {
                    self.warnings.push(w);
                }
                Some(SecretSource::File(path))
            }
            (None, None) => None,
        }
    }

    fn ldap(&mut self, mut raw: RawLdap) -> LdapSettings {
        let mut required = |key: &str, value: Option<String>, example: &str| {
            value.unwrap_or_else(|| {
                self.problem(
                    format!("ldap.{key}"),
                    format!("missing: set it, e.g. {key} = {example}"),
                );
                String::new()
            })
        };
        let url = required(
            "url",
            raw.url.take(),
            "\"ldaps://ldap.studio.example\" (or ldif:PATH for an LDIF file)",
        );
        let user_base_dn = required(
            "user_base_dn",
            raw.user_base_dn.take(),
            "\"ou=people,dc=studio,dc=example\"",
        );
        if raw.bind_password.is_some() {
            self.problem(
                "ldap.bind_password",
                plaintext_secret_message("ldap.bind_password"),
            );
        }
        let source = if let Some(rest) = url.strip_prefix("ldif:") {
            DirectorySource::LdifFile(self.existing_file("ldap.url", rest))
        } else {
            let lower = url.to_ascii_lowercase();
            let ldaps = lower.starts_with("ldaps://");
            if !url.is_empty()
                && (!(ldaps || lower.starts_with("ldap://")) || url.len() <= "ldap://".len() + 1)
            {
                self.problem(
                    "ldap.url",
                    format!(
                        "`{}` is not a directory URL; expected ldap://host[:port], ldaps://host[:port] or ldif:PATH",
                        url
                    ),
                );
            }
            DirectorySource::Server {
                url: url.clone(),
                ldaps,
            }
        };
        match (&source, raw.starttls) {
            (DirectorySource::Server { ldaps: true, .. }, true) => self.problem(
                "ldap.starttls",
                "StartTLS cannot be used on an ldaps:// connection, which is TLS already; remove one",
            ),
            (DirectorySource::LdifFile(_), true) => self.problem(
                "ldap.starttls",
                "StartTLS needs an ldap:// server; an ldif: source has no connection",
            ),
            _ => {}
        }
        let ca_file = raw.ca_file.map(|f| self.existing_file("ldap.ca_file", &f));
        let bind_password = self.secret_source(
            "ldap",
            "bind_password",
            raw.bind_password_env,
            raw.bind_password_file,
        );
        if bind_password.is_some() && raw.bind_dn.is_none() {
            self.problem(
                "ldap.bind_dn",
                "a bind password is configured but no bind_dn; set the DN of the sync account",
            );
        }
        if raw.bind_dn.is_some() && bind_password.is_none() {
            self.problem(
                "ldap.bind_password_env",
                "bind_dn is set but no password source; set `ldap.bind_password_env` or `ldap.bind_password_file`",
            );
        }
        for (key, dn) in [
            (
                "ldap.user_base_dn",
                Some(&user_base_dn).filter(|dn| !dn.is_empty()),
            ),
            ("ldap.group_base_dn", raw.group_base_dn.as_ref()),
            ("ldap.bind_dn", raw.bind_dn.as_ref()),
        ] {
            if let Some(dn) = dn {
                if !dn.contains('=') {
                    self.problem(
                        key,
                        format!("`{dn}` is not a DN; expected e.g. ou=people,dc=example,dc=com"),
                    );
                }
            }
        }
        let user_filter = raw
            .user_filter
            .unwrap_or_else(|| DEFAULT_USER_FILTER.into());
        let group_filter = raw
            .group_filter
            .unwrap_or_else(|| DEFAULT_GROUP_FILTER.into());
        for (key, filter) in [
            ("ldap.user_filter", &user_filter),
            ("ldap.group_filter", &group_filter),
        ] {
            if let Err(why) = check_filter_shape(filter) {
                self.problem(key, why);
            }
        }
        let page_size = raw.page_size.unwrap_or(500);
        if !(1..=100_000).contains(&page_size) {
            self.problem(
                "ldap.page_size",
                "must be between 1 and 100000 (500 is a good default)",
            );
        }
        let timeout_s = raw.timeout_s.unwrap_or(30);
        if timeout_s == 0 {
            self.problem("ldap.timeout_s", "must be at least 1 second");
        }
        LdapSettings {
            source,
            starttls: raw.starttls,
            ca_file,
            bind_dn: raw.bind_dn,
            bind_password,
            group_base_dn: raw.group_base_dn.unwrap_or_else(|| user_base_dn.clone()),
            user_base_dn,
            user_filter,
            group_filter,
            user_attributes: raw.user_attributes,
            page_size,
            timeout_s,
        }
    }

    fn ftrack(&mut self, raw: RawFtrack, env: &dyn Fn(&str) -> Option<String>) -> FtrackSettings {
        if raw.api_key.is_some() {
            self.problem("ftrack.api_key", plaintext_secret_message("ftrack.api_key"));
        }
        let from_env = raw.server_url.is_none();
        let server_text = raw.server_url.or_else(|| env("FTRACK_SERVER"));
        let key = if from_env {
            "FTRACK_SERVER"
        } else {
            "ftrack.server_url"
        };
        let seed = raw
            .emulator_seed
            .map(|f| self.existing_file("ftrack.emulator_seed", &f));
        let server_url = server_text.map(|text| match text.strip_prefix("emulator:") {
            Some(state) if !state.trim().is_empty() => FtrackServer::Emulator {
                state: self.base.join(state),
                seed: seed.clone(),
            },
            Some(_) => {
                self.problem(
                    key,
                    "emulator: needs a state file path, e.g. emulator:demo/ftrack-state.json",
                );
                FtrackServer::Url(text)
            }
            None => {
                if let Err(why) = check_server_url(&text, raw.allow_insecure_http) {
                    self.problem(key, why);
                }
                FtrackServer::Url(text.trim_end_matches('/').to_string())
            }
        });
        let api_user = raw.api_user.or_else(|| env("FTRACK_API_USER"));
        let api_key = self
            .secret_source("ftrack", "api_key", raw.api_key_env, raw.api_key_file)
            .unwrap_or_else(|| SecretSource::Env("FTRACK_API_KEY".into()));
        let ca_file = raw
            .ca_file
            .map(|f| self.existing_file("ftrack.ca_file", &f));
        let timeout_s = raw.timeout_s.unwrap_or(60);
        if timeout_s == 0 {
            self.problem("ftrack.timeout_s", "must be at least 1 second");
        }
        let batch_size = raw.batch_size.unwrap_or(500);
        if !(1..=10_000).contains(&batch_size) {
            self.problem(
                "ftrack.batch_size",
                "must be between 1 and 10000 (500 is a good default)",
            );
        }
        FtrackSettings {
            server_url,
            api_user,
            api_key,
            ca_file,
            timeout_s,
            batch_size,
            allow_insecure_http: raw.allow_insecure_http,
        }
    }

    fn mappings(&mut self, raw: RawMappings) -> AttributeMappings {
        let d = AttributeMappings::default();
        let m = AttributeMappings {
            username: raw.username.unwrap_or(d.username),
            email: raw.email.unwrap_or(d.email),
            first_name: raw.first_name.unwrap_or(d.first_name),
            last_name: raw.last_name.unwrap_or(d.last_name),
            name_fallbacks: raw.name_fallbacks.unwrap_or(d.name_fallbacks),
        };
        for (key, attr) in [
            ("mappings.username", &m.username),
            ("mappings.email", &m.email),
            ("mappings.first_name", &m.first_name),
            ("mappings.last_name", &m.last_name),
        ]
        .into_iter()
        .chain(
            m.name_fallbacks
                .iter()
                .map(|a| ("mappings.name_fallbacks", a)),
        ) {
            if !is_attribute_name(attr) {
                self.problem(
                    key,
                    format!("`{attr}` is not an LDAP attribute name (letters, digits and '-', starting with a letter)"),
                );
            }
        }
        m
    }

    fn group_mappings(&mut self, mappings: &BTreeMap<String, GroupMapping>) {
        for (group, m) in mappings {
            let key = format!("group_mappings.\"{group}\"");
            if group.trim().is_empty() {
                self.problem(&key, "the LDAP group is empty; use a group DN or its cn");
            }
            if m.groups.is_empty() && m.roles.is_empty() && m.project_roles.is_empty() {
                self.problem(
                    &key,
                    "maps to nothing; give `groups`, `roles` or `project_roles`",
                );
            }
            let names = m
                .groups
                .iter()
                .chain(&m.roles)
                .chain(m.project_roles.values().flatten());
            if names.clone().any(|n| n.trim().is_empty()) {
                self.problem(&key, "contains an empty group or role name");
            }
            if m.project_roles.keys().any(|p| p.trim().is_empty()) {
                self.problem(
                    format!("{key}.project_roles"),
                    "contains an empty project name",
                );
            }
        }
    }

    fn rule(&mut self, index: usize, raw: RawRule) -> RuleModuleSettings {
        let key = format!("rules[{index}]");
        let module = self.existing_file(&format!("{key}.module"), &raw.module);
        let sha256 = match raw.sha256 {
            Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
                h.to_ascii_lowercase()
            }
            Some(h) => {
                self.problem(
                    format!("{key}.sha256"),
                    format!(
                        "`{h}` is not a SHA-256 (64 hex digits); run `sha256sum {}`",
                        module.display()
                    ),
                );
                h
            }
            None => {
                self.problem(
                    format!("{key}.sha256"),
                    format!(
                        "missing: every module is pinned by hash; run `ldap2ftrack rules inspect {}` or `sha256sum` and add `sha256 = \"...\"`",
                        module.display()
                    ),
                );
                String::new()
            }
        };
        let mut patterns = |list: &str, written: Option<Vec<String>>| {
            let written = written?;
            Patterns::new(&written)
                .map_err(|m| self.problem(format!("{key}.{list}"), m))
                .ok()
        };
        let bounds = ModuleBounds {
            groups: patterns("groups", raw.groups),
            roles: patterns("roles", raw.roles),
        };
        RuleModuleSettings {
            module,
            sha256,
            config: raw.config,
            on_error: raw.on_error,
            bounds,
        }
    }

    fn deprovision(&mut self, raw: RawDeprovision) -> DeprovisionSettings {
        if raw.protected_users.iter().any(|u| u.trim().is_empty()) {
            self.problem("deprovision.protected_users", "contains an empty username");
        }
        DeprovisionSettings {
            action: raw.action,
            protected_users: raw.protected_users,
        }
    }
}

fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A cheap check that catches the usual filter typos (missing parentheses) before any search.
fn check_filter_shape(filter: &str) -> Result<(), String> {
    let trimmed = filter.trim();
    if !(trimmed.starts_with('(') && trimmed.ends_with(')')) {
        return Err(format!(
            "`{filter}` is not an LDAP filter; wrap it in parentheses, e.g. (objectClass=person)"
        ));
    }
    let mut depth: i64 = 0;
    for c in trimmed.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            break;
        }
    }
    if depth != 0 {
        return Err(format!("`{filter}` has unbalanced parentheses"));
    }
    Ok(())
}

/// TLS is the rule: plain http is only for the local machine unless explicitly allowed.
fn check_server_url(text: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(text).map_err(|e| {
        format!("`{text}` is not a URL ({e}); expected e.g. https://studio.ftrackapp.com")
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_insecure_http {
                Ok(())
            } else {
                Err(format!(
                    "`{text}` is plain http to another machine, which would send the API key unencrypted; use https, or set `ftrack.allow_insecure_http = true` if you accept that"
                ))
            }
        }
        other => Err(format!(
            "`{text}` has scheme `{other}`; expected https:// (or http:// on loopback)"
        )),
    }
}

#[cfg(test)]
mod tests;
