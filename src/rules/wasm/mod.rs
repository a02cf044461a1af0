//! Rule modules as sandboxed WebAssembly components: the pipeline stage that runs one
//! `[[rules]]` module, and `rules inspect`.
//!
//! A module is untrusted code. It is pinned by SHA-256 (checked before anything else), must
//! be a component exporting the `ldap2ftrack:rules/hooks@1.x` interface of the WIT in
//! `rules-sdk/wit/` (from which these bindings are generated), and runs with no capabilities
//! (see [`sandbox`]), a fuel budget and a wall-clock backstop per call, a memory cap and an
//! output cap. One instance serves every entry of a run; after a trap it is dropped and a
//! fresh one is made for the next entry, so one bad entry never poisons the others and the
//! host process survives every failure. Compiled code is cached by module hash (see
//! [`engine`]) so start-up does not recompile.
//!
//! This file holds the public surface (the stage, its errors, what `rules inspect` shows,
//! the limits and the generated bindings); [`load`] reads, checks, compiles and configures
//! a module, and [`call`] runs one hook call under the limits.

mod call;
mod config;
mod convert;
mod engine;
mod load;
mod no_wait;
mod sandbox;

use crate::config::ConfigProblem;
use crate::rules::OnRuleError;
use bindings::ldap2ftrack::rules::types as wit;
use bindings::RulePre;
use call::Live;
use sandbox::HostState;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use engine::{default_compile_cache, sha256_hex, Compilation};
pub use load::{inspect, inspect_with_cache};

/// The limits every module runs under.
pub mod limits {
    /// WebAssembly instructions (fuel) per call. Measured (BENCHMARKS.md, "Rule hooks"): a
    /// Rust hook spends 5.6k–12.7k per call, the Python twin of studio-basics ~275k; the
    /// budget leaves a slow interpreted rule two orders of magnitude of room.
    pub const FUEL_PER_CALL: u64 = 50_000_000;
    /// Wall-clock backstop per call, in epoch ticks.
    pub const EPOCH_TICK_MS: u64 = 10;
    pub const EPOCH_TICKS_PER_CALL: u64 = 100;
    /// Linear memory per instance.
    pub const MEMORY_BYTES: usize = 64 << 20;
    pub const MEMORIES: usize = 8;
    pub const TABLES: usize = 32;
    pub const TABLE_ELEMENTS: usize = 100_000;
    pub const INSTANCES: usize = 64;
    /// Text a module may return from one call.
    pub const OUTPUT_BYTES: usize = 1 << 20;
    /// Module file size.
    pub const MODULE_BYTES: u64 = 32 << 20;
    /// Log text per call (beyond it, messages are dropped and counted), and per message.
    pub const LOG_BYTES_PER_CALL: usize = 64 << 10;
    pub const LOG_MESSAGE_BYTES: usize = 4 << 10;
    /// A rejection message longer than this is cut.
    pub const REJECTION_BYTES: usize = 4 << 10;
    pub const WASM_STACK_BYTES: usize = 1 << 20;
}

/// The generated host side of the rule ABI.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "rules-sdk/wit",
        world: "rule",
        additional_derives: [PartialEq, Eq],
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

/// The ABI this host runs: the WIT package and its major version.
pub const ABI_PACKAGE: &str = "ldap2ftrack:rules";
pub const ABI_MAJOR: &str = "1";
const HOOKS_EXPORT: &str = "ldap2ftrack:rules/hooks@";

/// A module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleLoadError {
    /// The file's SHA-256 is not the one `sync.toml` pins. Exit 2.
    #[error(
        "rules[{index}].sha256: {module} has SHA-256 {actual}, but sync.toml pins {expected}; \
         if this module is the one you want, set sha256 = \"{actual}\""
    )]
    HashMismatch {
        index: usize,
        /// The module as `sync.toml` names it (path or reference).
        module: String,
        expected: String,
        actual: String,
    },
    /// The module or its configuration cannot be used as configured. Exit 2.
    #[error("{}", problems.iter().map(|p| if p.key.is_empty() { p.message.clone() } else { format!("{}: {}", p.key, p.message) }).collect::<Vec<_>>().join("\n"))]
    Config { problems: Vec<ConfigProblem> },
    /// The module failed while loading (I/O, a trap in `metadata` or `configure`). Exit 1.
    #[error("{message}")]
    Runtime { message: String },
}

impl RuleLoadError {
    /// 2 for hash mismatches and configuration problems, 1 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            RuleLoadError::HashMismatch { .. } | RuleLoadError::Config { .. } => 2,
            RuleLoadError::Runtime { .. } => 1,
        }
    }

    /// The problems as `sync.toml` configuration problems (empty for runtime failures), for
    /// a [`crate::config::ConfigError`].
    pub fn config_problems(&self) -> Vec<ConfigProblem> {
        match self {
            RuleLoadError::HashMismatch {
                index,
                module,
                expected,
                actual,
            } => vec![ConfigProblem::new(
                format!("rules[{index}].sha256"),
                format!(
                    "{module} has SHA-256 {actual}, but sync.toml pins {expected}; if this module \
                     is the one you want, set sha256 = \"{actual}\""
                ),
            )],
            RuleLoadError::Config { problems } => problems.clone(),
            RuleLoadError::Runtime { .. } => Vec::new(),
        }
    }

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> RuleLoadError {
        RuleLoadError::Config {
            problems: vec![ConfigProblem::new(key, message)],
        }
    }

    pub(crate) fn runtime(message: impl Into<String>) -> RuleLoadError {
        RuleLoadError::Runtime {
            message: message.into(),
        }
    }
}

/// A hook, named as in the WIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookName {
    TransformUser,
    MapGroups,
    Deprovision,
}

impl HookName {
    pub fn wit(self) -> &'static str {
        match self {
            HookName::TransformUser => "transform-user",
            HookName::MapGroups => "map-groups",
            HookName::Deprovision => "deprovision",
        }
    }
}

fn hook_name(h: wit::Hook) -> &'static str {
    match h {
        wit::Hook::TransformUser => HookName::TransformUser.wit(),
        wit::Hook::MapGroups => HookName::MapGroups.wit(),
        wit::Hook::Deprovision => HookName::Deprovision.wit(),
    }
}

/// What `rules inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub description: String,
    pub abi_version: String,
    pub hooks: Vec<&'static str>,
    pub config: Vec<ConfigKeyInfo>,
    pub sha256: String,
    pub size_bytes: u64,
    /// Interfaces the component imports (WASI ones are linked to an empty context).
    pub imports: Vec<String>,
    /// The bounds of the `[[rules]]` entries in `sync.toml` that pin this module (filled in
    /// by the caller, which has the configuration).
    pub bounds: Vec<crate::config::BoundsReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigKeyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub default: Option<String>,
    pub required: bool,
    pub description: String,
}

impl fmt::Display for ModuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.name, self.version)?;
        if !self.description.is_empty() {
            writeln!(f, "  {}", self.description)?;
        }
        writeln!(f, "module:      {}", self.path.display())?;
        writeln!(f, "sha256:      {}", self.sha256)?;
        writeln!(f, "size:        {} bytes", self.size_bytes)?;
        writeln!(f, "abi:         {ABI_PACKAGE}@{}", self.abi_version)?;
        writeln!(
            f,
            "hooks:       {}",
            if self.hooks.is_empty() {
                "none".to_string()
            } else {
                self.hooks.join(", ")
            }
        )?;
        if self.config.is_empty() {
            writeln!(f, "config:      none")?;
        } else {
            writeln!(f, "config:")?;
            for k in &self.config {
                let extra = match (&k.default, k.required) {
                    (_, true) => " (required)".to_string(),
                    (Some(d), false) => format!(" = {d}"),
                    (None, false) => " (optional)".to_string(),
                };
                writeln!(f, "  {} ({}){extra}", k.name, k.value_type)?;
                if !k.description.is_empty() {
                    writeln!(f, "      {}", k.description)?;
                }
            }
        }
        writeln!(f, "imports:     {}", self.imports.join(", "))?;
        let list = |l: &Option<Vec<String>>| {
            l.as_ref()
                .map_or("not declared".to_string(), |l| format!("{l:?}"))
        };
        if self.bounds.is_empty() {
            writeln!(
                f,
                "bounds:      no [[rules]] entry in sync.toml pins this module"
            )?;
        }
        for b in &self.bounds {
            writeln!(
                f,
                "bounds:      {}: groups = {}, roles = {}",
                b.rule,
                list(&b.groups),
                list(&b.roles)
            )?;
        }
        Ok(())
    }
}

/// One `[[rules]]` module as a pipeline stage.
pub struct WasmStage {
    name: String,
    module: PathBuf,
    on_error: OnRuleError,
    bounds: crate::config::ModuleBounds,
    transform_user: bool,
    map_groups: bool,
    deprovision: bool,
    pre: RulePre<HostState>,
    log_name: Arc<str>,
    config_json: String,
    /// What the module reads of each entry (from `configure`).
    reads: wit::EntryFields,
    /// The instance, touched only through `&mut self`: wrapped so a stage can be shared
    /// read-only between threads (the diff asks for reasons from two) although a store is
    /// not `Sync`.
    live: Option<sync_wrapper::SyncWrapper<Live>>,
    compilation: Compilation,
    instances: u64,
    last_fuel: u64,
    /// The run's time budget, shared with this module's instances on other threads.
    budget: Arc<crate::rules::budget::RunBudget>,
}

impl fmt::Debug for WasmStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmStage")
            .field("name", &self.name)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl WasmStage {
    /// The hooks the module implements, in the contract's order.
    pub fn hooks(&self) -> Vec<&'static str> {
        [
            (self.transform_user, HookName::TransformUser),
            (self.map_groups, HookName::MapGroups),
            (self.deprovision, HookName::Deprovision),
        ]
        .into_iter()
        .filter(|(has, _)| *has)
        .map(|(_, hook)| hook.wit())
        .collect()
    }

    /// Where the compiled code came from (the compile cache, or compiled now).
    pub fn compilation(&self) -> Compilation {
        self.compilation
    }

    /// How many instances were made so far (1 + one per trap).
    pub fn instances(&self) -> u64 {
        self.instances
    }

    /// WebAssembly instructions (fuel) the last hook call used: what a rule costs,
    /// independent of the machine (0 when the hook is not implemented).
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel
    }

    /// Shares `budget` (the run's time budget of this module) with this instance, so the
    /// module's instances on every worker thread draw on one budget.
    pub fn with_budget(mut self, budget: Arc<crate::rules::budget::RunBudget>) -> WasmStage {
        self.budget = budget;
        self
    }

    /// The module file.
    pub fn module(&self) -> &Path {
        &self.module
    }
}
