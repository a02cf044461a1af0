//! Validation and resolution: from the file as written ([`raw`](super::raw)) to a [`Config`].
//!
//! Separate from `mod.rs` so that the public types read on their own and every rule about
//! what a value may be (required keys, URL and filter shapes, secret sources, paths that must
//! exist) sits in one place. Problems are collected, not returned early, so one load reports
//! everything wrong with the file.

use super::error::plaintext_secret_message;
use super::raw::{RawConfig, RawDeprovision, RawFtrack, RawLdap, RawMappings, RawRule};
use super::secret;
use super::{
    AttributeMappings, Config, ConfigError, ConfigProblem, DeprovisionSettings, DirectorySource,
    EventSettings, FtrackServer, FtrackSettings, GroupMapping, GuardSettings, LdapSettings,
    ModuleBounds, ModuleSource, Patterns, RuleModuleSettings, RunSettings, SecretSource, SyncMode,
    SyncSettings, DEFAULT_GROUP_FILTER, DEFAULT_USER_FILTER,
};
use crate::ldap_syntax::{Filter, NormalizedDn};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Collects problems while turning the raw file into a [`Config`].
pub(super) struct Resolver {
    base: PathBuf,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
}

impl Resolver {
    /// A resolver for a file in `base`: relative paths in the file resolve against it.
    pub(super) fn new(base: PathBuf) -> Resolver {
        Resolver {
            base,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    pub(super) fn resolve(
        mut self,
        mut raw: RawConfig,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let ldap = self.ldap(raw.ldap);
        let ftrack = self.ftrack(raw.ftrack, env);
        let mappings = self.mappings(raw.mappings);
        self.group_mappings(&raw.group_mappings);
        // Fetched modules live in the fetch cache; its folder is needed to name their files.
        if raw.run.cache_dir.is_some() {
            if raw.run.fetch_cache_dir.is_some() {
                self.problem(
                    "run.cache_dir",
                    "is the old name of `run.fetch_cache_dir`, which is also set; remove it",
                );
            } else {
                self.warnings.push(
                    "[run] cache_dir is now called fetch_cache_dir (the compile cache has its \
                     own folder, compile_cache_dir); rename the key"
                        .into(),
                );
            }
        }
        let fetch_key = if raw.run.fetch_cache_dir.is_some() || raw.run.cache_dir.is_none() {
            "run.fetch_cache_dir"
        } else {
            "run.cache_dir"
        };
        let fetch_cache_dir = self.cache_folder(
            fetch_key,
            raw.run.fetch_cache_dir.take().or(raw.run.cache_dir.take()),
            super::default_fetch_cache(env),
        );
        // The service's EnvironmentFile (the package puts it beside sync.toml): secrets too.
        let env_file = self.base.join("secrets.env");
        if let Some(w) = secret::loose_permissions_warning(&env_file) {
            self.warnings.push(w);
        }
        let compile_cache_dir = self.cache_folder(
            "run.compile_cache_dir",
            raw.run.compile_cache_dir.take(),
            super::default_compile_cache(env),
        );
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                self.rule(
                    i,
                    r,
                    fetch_cache_dir.as_deref(),
                    compile_cache_dir.as_deref(),
                )
            })
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
            max_skipped: raw.guards.max_skipped.unwrap_or(defaults.max_skipped),
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
            fetch_cache_dir,
            compile_cache_dir,
        };
        let sync = self.sync(raw.sync);
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
            events: EventSettings {
                publish: raw.events.publish.unwrap_or(true),
            },
            sync,
            warnings: self.warnings,
        })
    }

    fn sync(&mut self, raw: super::raw::RawSync) -> SyncSettings {
        let mode = match raw.mode.as_deref().map(str::trim) {
            None | Some("auto") => SyncMode::Auto,
            Some("full") => SyncMode::Full,
            Some(other) => {
                self.problem(
                    "sync.mode",
                    format!("is `{other}`; use \"auto\" (read only what changed where the server can say) or \"full\""),
                );
                SyncMode::Auto
            }
        };
        let day = std::time::Duration::from_secs(24 * 3600);
        let full_every = match raw.full_every.as_deref() {
            None => day,
            Some(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) if d >= std::time::Duration::from_secs(60) => d,
                Ok(_) => {
                    self.problem(
                        "sync.full_every",
                        "is under a minute; give e.g. \"24h\" or \"6h\"",
                    );
                    day
                }
                Err(e) => {
                    self.problem(
                        "sync.full_every",
                        format!("`{text}` is not a duration ({e}); give e.g. \"24h\" or \"90min\""),
                    );
                    day
                }
            },
        };
        SyncSettings {
            mode,
            full_every,
            state_file: self.base.join(
                raw.state_file
                    .as_deref()
                    .unwrap_or("ldap2ftrack-sync-state.json"),
            ),
        }
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
            raw.user_base_dn.clone(),
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
        if let DirectorySource::Server { url, ldaps: false } = &source {
            let clear_text_bind = bind_password.is_some() && !raw.starttls;
            if clear_text_bind
                && !raw.allow_insecure_ldap
                && !url::Url::parse(url).is_ok_and(|u| super::module_ref::url_is_loopback(&u))
            {
                self.problem(
                    "ldap.url",
                    format!(
                        "`{url}` is plain ldap:// to another machine, so the bind password would \
                         cross the network in clear text; use ldaps://, or set \
                         `ldap.starttls = true`, or set `ldap.allow_insecure_ldap = true` if \
                         you accept that"
                    ),
                );
            }
        }
        for (key, dn) in [
            // Missing is reported above.
            ("ldap.user_base_dn", raw.user_base_dn.as_ref()),
            ("ldap.group_base_dn", raw.group_base_dn.as_ref()),
            ("ldap.bind_dn", raw.bind_dn.as_ref()),
        ] {
            if let Some(Err(why)) = dn.map(|dn| check_dn(dn)) {
                self.problem(key, why);
            }
        }
        // Trimmed: the LDAP client takes no white space around a filter.
        let mut filter = |key: &str, written: Option<String>, default: &str| {
            let filter = written.map_or(default.to_string(), |f| f.trim().to_string());
            if let Err(e) = Filter::parse(&filter) {
                self.problem(
                    key,
                    format!("{e}; write an RFC 4515 filter, e.g. (&(objectClass=person)(uid=*))"),
                );
            }
            filter
        };
        let user_filter = filter("ldap.user_filter", raw.user_filter, DEFAULT_USER_FILTER);
        let group_filter = filter("ldap.group_filter", raw.group_filter, DEFAULT_GROUP_FILTER);
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
            allow_insecure_ldap: raw.allow_insecure_ldap,
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
            Some(state) if !state.trim().is_empty() => {
                #[cfg(not(feature = "emulator"))]
                self.problem(
                    key,
                    "`emulator:` runs the bundled ftrack emulator (the demo, rule tests), which \
                     this build leaves out, as packaged builds do; set server_url to your ftrack \
                     server's https:// URL",
                );
                FtrackServer::Emulator {
                    state: self.base.join(state),
                    seed: seed.clone(),
                }
            }
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
            } else if group.contains('=') {
                if let Err(e) = NormalizedDn::parse(group) {
                    self.warnings.push(format!(
                        "[group_mappings] \"{group}\" contains `=` but is not a DN ({e}), so it \
                         is looked up as a group's cn; if it is meant as a DN, fix it"
                    ));
                }
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

    /// A cache folder: as written (relative to the config folder), else `default`.
    fn cache_folder(
        &mut self,
        key: &str,
        written: Option<String>,
        default: Option<PathBuf>,
    ) -> Option<PathBuf> {
        match written {
            Some(d) if d.trim().is_empty() => {
                self.problem(key, "is empty; give a folder or leave it out");
                None
            }
            Some(d) => Some(self.base.join(d)),
            None => default,
        }
    }

    fn rule(
        &mut self,
        index: usize,
        raw: RawRule,
        fetch_cache_dir: Option<&Path>,
        compile_cache_dir: Option<&Path>,
    ) -> RuleModuleSettings {
        let key = format!("rules[{index}]");
        let source = match super::module_ref::parse(&raw.module) {
            Ok(ModuleSource::Path(p)) => {
                let path = self.existing_file(&format!("{key}.module"), &p.to_string_lossy());
                ModuleSource::Path(path)
            }
            Ok(remote) => remote,
            Err(m) => {
                self.problem(format!("{key}.module"), m);
                ModuleSource::Path(PathBuf::from(&raw.module))
            }
        };
        // What `sha256sum` or `rules inspect` should be run on, in the messages below.
        let shown = source.to_string();
        let sha256 = match raw.sha256 {
            Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
                h.to_ascii_lowercase()
            }
            Some(h) => {
                self.problem(
                    format!("{key}.sha256"),
                    format!(
                        "`{h}` is not a SHA-256 (64 hex digits); run `ldap2ftrack rules inspect {shown}`"
                    ),
                );
                h
            }
            None => {
                self.problem(
                    format!("{key}.sha256"),
                    format!(
                        "missing: every module is pinned by hash; run `ldap2ftrack rules inspect {shown}` and add `sha256 = \"...\"`"
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
        let max_run_seconds = raw
            .max_run_seconds
            .unwrap_or(super::DEFAULT_MAX_RUN_SECONDS);
        if max_run_seconds == 0 {
            self.problem(
                format!("{key}.max_run_seconds"),
                format!(
                    "must be at least 1 second (the default is {})",
                    super::DEFAULT_MAX_RUN_SECONDS
                ),
            );
        }
        let module = match &source {
            ModuleSource::Path(p) => p.clone(),
            _ => match fetch_cache_dir {
                Some(dir) => dir.join("sha256").join(format!("{sha256}.wasm")),
                None => {
                    self.problem(
                        format!("{key}.module"),
                        "a fetched module is kept in the fetch cache, and no cache folder is \
                         known (no HOME, XDG_CACHE_HOME or LDAP2FTRACK_CACHE_DIR): set \
                         [run] fetch_cache_dir",
                    );
                    PathBuf::new()
                }
            },
        };
        RuleModuleSettings {
            source,
            module,
            sha256,
            config: raw.config,
            on_error: raw.on_error,
            bounds,
            max_run_seconds,
            compile_cache: compile_cache_dir.map(Path::to_path_buf),
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

/// A base or bind DN as the directory layer will read it ([`NormalizedDn`]); not empty, which
/// would search (or bind as) nothing in particular.
fn check_dn(dn: &str) -> Result<(), String> {
    const EXAMPLE: &str = "ou=people,dc=example,dc=com";
    if dn.trim().is_empty() {
        return Err(format!("is empty; give a DN, e.g. {EXAMPLE}"));
    }
    NormalizedDn::parse(dn).map(drop).map_err(|e| {
        format!("{e}; write a DN such as {EXAMPLE}, with `\\,` for a comma inside a value")
    })
}

/// TLS is the rule: plain http is only for the local machine unless explicitly allowed.
fn check_server_url(text: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(text).map_err(|e| {
        format!("`{text}` is not a URL ({e}); expected e.g. https://studio.ftrackapp.com")
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            if super::module_ref::url_is_loopback(&parsed) || allow_insecure_http {
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
