//! `sync.toml` exactly as written: the serde structs the TOML is read into.
//!
//! Kept apart from the validated types in `mod.rs` so that the shape of the file (every key,
//! `deny_unknown_fields`, what may be omitted) can be read in one place. Nothing here checks
//! values; `validate.rs` turns these into a [`Config`](super::Config) and reports problems.

use super::{DeprovisionAction, GroupMapping, GuardLimit, OnRuleError};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) ldap: RawLdap,
    #[serde(default)]
    pub(super) ftrack: RawFtrack,
    #[serde(default)]
    pub(super) mappings: RawMappings,
    #[serde(default)]
    pub(super) group_mappings: BTreeMap<String, GroupMapping>,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
    #[serde(default)]
    pub(super) deprovision: RawDeprovision,
    #[serde(default)]
    pub(super) guards: RawGuards,
    #[serde(default)]
    pub(super) run: RawRun,
    #[serde(default)]
    pub(super) events: RawEvents,
    #[serde(default)]
    pub(super) sync: RawSync,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub(super) mode: Option<String>,
    pub(super) full_every: Option<String>,
    pub(super) state_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) publish: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    pub(super) lock_file: Option<String>,
    pub(super) journal_file: Option<String>,
    pub(super) metrics_file: Option<String>,
    /// The old name of `fetch_cache_dir`, still read (with a warning).
    pub(super) cache_dir: Option<String>,
    pub(super) fetch_cache_dir: Option<String>,
    pub(super) compile_cache_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    /// Optional here so that a missing one is reported with every other problem.
    pub(super) url: Option<String>,
    #[serde(default)]
    pub(super) starttls: bool,
    /// A simple bind over plain `ldap://` to another machine, accepted only when true.
    #[serde(default)]
    pub(super) allow_insecure_ldap: bool,
    pub(super) ca_file: Option<String>,
    pub(super) bind_dn: Option<String>,
    /// Only present to refuse it with a helpful message.
    pub(super) bind_password: Option<toml::Value>,
    pub(super) bind_password_env: Option<String>,
    pub(super) bind_password_file: Option<String>,
    pub(super) user_base_dn: Option<String>,
    pub(super) user_filter: Option<String>,
    pub(super) group_base_dn: Option<String>,
    pub(super) group_filter: Option<String>,
    #[serde(default)]
    pub(super) user_attributes: Vec<String>,
    pub(super) page_size: Option<u32>,
    pub(super) timeout_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFtrack {
    pub(super) server_url: Option<String>,
    pub(super) api_user: Option<String>,
    /// Only present to refuse it with a helpful message.
    pub(super) api_key: Option<toml::Value>,
    pub(super) api_key_env: Option<String>,
    pub(super) api_key_file: Option<String>,
    pub(super) emulator_seed: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) timeout_s: Option<u64>,
    pub(super) batch_size: Option<usize>,
    #[serde(default)]
    pub(super) allow_insecure_http: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMappings {
    pub(super) username: Option<String>,
    pub(super) email: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) name_fallbacks: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) module: String,
    pub(super) sha256: Option<String>,
    #[serde(default)]
    pub(super) config: toml::Table,
    #[serde(default)]
    pub(super) on_error: OnRuleError,
    pub(super) groups: Option<Vec<String>>,
    pub(super) max_run_seconds: Option<u64>,
    pub(super) roles: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeprovision {
    #[serde(default)]
    pub(super) action: DeprovisionAction,
    #[serde(default)]
    pub(super) protected_users: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuards {
    pub(super) max_disable: Option<GuardLimit>,
    pub(super) max_membership_removals: Option<GuardLimit>,
    pub(super) max_role_revocations: Option<GuardLimit>,
    pub(super) max_skipped: Option<GuardLimit>,
    #[serde(default)]
    pub(super) allow_empty_source: bool,
}
