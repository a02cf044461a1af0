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

mod config;
mod convert;
mod engine;
mod sandbox;

use crate::config::{ConfigProblem, RuleModuleSettings};
use crate::rules::{
    Access, DepartedUser, OnRuleError, RuleEntry, RuleError, Stage, UserDecision, UserFields,
    Verdict,
};
use bindings::ldap2ftrack::rules::types as wit;
use bindings::{Rule, RulePre};
use convert::OutputSize;
use sandbox::HostState;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, Trap};

pub use engine::{cache_dir, sha256_hex, Origin};

/// The limits every module runs under.
pub mod limits {
    /// WebAssembly instructions (fuel) per call. A Rust rule spends ~30k per entry; Python
    /// and JavaScript guests ~0.5M and ~3M.
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
        "rules[{index}].sha256: {} has SHA-256 {actual}, but sync.toml pins {expected}; \
         if this module is the one you want, set sha256 = \"{actual}\"",
        module.display()
    )]
    HashMismatch {
        index: usize,
        module: PathBuf,
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
                    "{} has SHA-256 {actual}, but sync.toml pins {expected}; if this module is \
                     the one you want, set sha256 = \"{actual}\"",
                    module.display()
                ),
            )],
            RuleLoadError::Config { problems } => problems.clone(),
            RuleLoadError::Runtime { .. } => Vec::new(),
        }
    }

    fn config(key: impl Into<String>, message: impl Into<String>) -> RuleLoadError {
        RuleLoadError::Config {
            problems: vec![ConfigProblem::new(key, message)],
        }
    }

    fn runtime(message: impl Into<String>) -> RuleLoadError {
        RuleLoadError::Runtime {
            message: message.into(),
        }
    }
}

/// A hook, named as in the WIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HookName {
    TransformUser,
    MapGroups,
    Deprovision,
}

impl HookName {
    fn wit(self) -> &'static str {
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
        writeln!(f)?;
        writeln!(f, "[[rules]]")?;
        writeln!(f, "module = {:?}", self.path.display().to_string())?;
        writeln!(f, "sha256 = \"{}\"", self.sha256)?;
        if self.hooks.contains(&HookName::MapGroups.wit()) {
            writeln!(
                f,
                "# what the module may manage: ftrack group and security role names, or * globs"
            )?;
            writeln!(f, "groups = []")?;
            writeln!(f, "roles = []")?;
        }
        Ok(())
    }
}

/// A module compiled and linked, ready to instantiate.
struct Prepared {
    pre: RulePre<HostState>,
    origin: Origin,
    imports: Vec<String>,
}

/// One live instance and its store.
struct Live {
    store: Store<HostState>,
    rule: Rule,
}

/// Reads the module file, refusing oversized ones. Returns its bytes and SHA-256.
fn read_module(path: &Path, key: &str) -> Result<(Vec<u8>, String), RuleLoadError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| RuleLoadError::config(key, format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > limits::MODULE_BYTES {
        return Err(RuleLoadError::config(
            key,
            format!(
                "{} is {} bytes; rule modules are limited to {} MiB",
                path.display(),
                meta.len(),
                limits::MODULE_BYTES >> 20
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        RuleLoadError::runtime(format!("cannot read rule module {}: {e}", path.display()))
    })?;
    let sha = engine::sha256_hex(&bytes);
    Ok((bytes, sha))
}

/// Compiles (or loads from the cache), checks the ABI and imports, and links.
fn prepare(
    path: &Path,
    key: &str,
    bytes: &[u8],
    sha: &str,
    cache: Option<&Path>,
) -> Result<Prepared, RuleLoadError> {
    let shown = path.display();
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(RuleLoadError::config(
            key,
            format!("{shown} is not a WebAssembly file"),
        ));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(RuleLoadError::config(
            key,
            format!(
                "{shown} is a core WebAssembly module, not a component; build rule modules with \
                 the ldap2ftrack rules SDK and `cargo build --release --target wasm32-wasip2`"
            ),
        ));
    }
    let engine = engine::engine().map_err(RuleLoadError::runtime)?;
    let started = Instant::now();
    let (component, origin) = engine::load_component(engine, bytes, sha, path, cache)
        .map_err(|m| RuleLoadError::config(key, m))?;
    tracing::debug!(
        module = %shown,
        "rule module {} in {:.1} ms",
        match origin {
            Origin::Cache => "loaded from the compile cache",
            Origin::Compiled => "compiled",
        },
        started.elapsed().as_secs_f64() * 1e3
    );

    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    match exports.iter().find_map(|e| e.strip_prefix(HOOKS_EXPORT)) {
        Some(v) if v.split('.').next() == Some(ABI_MAJOR) => {}
        Some(v) => {
            return Err(RuleLoadError::config(
                key,
                format!(
                    "{shown} was built for rule ABI {ABI_PACKAGE}@{v}; this ldap2ftrack runs \
                     {ABI_PACKAGE}@{ABI_MAJOR}.x modules: rebuild the module with \
                     ldap2ftrack-rules-sdk {ABI_MAJOR}.x, or use an ldap2ftrack that supports \
                     ABI {v}"
                ),
            ))
        }
        None => {
            return Err(RuleLoadError::config(
                key,
                format!(
                    "{shown} is not an ldap2ftrack rule module: it does not export \
                     `{HOOKS_EXPORT}{ABI_MAJOR}.x` (it exports: {}); build it with the \
                     ldap2ftrack rules SDK",
                    if exports.is_empty() {
                        "nothing".to_string()
                    } else {
                        exports.join(", ")
                    }
                ),
            ))
        }
    }
    for import in &imports {
        let allowed = import.starts_with("wasi:") && !import.starts_with("wasi:http")
            || import.starts_with("ldap2ftrack:rules/");
        if !allowed {
            return Err(RuleLoadError::config(
                key,
                format!(
                    "{shown} imports `{import}`, which rule modules are not given: a rule gets \
                     no capabilities besides the host log; rebuild it without that import"
                ),
            ));
        }
    }

    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| RuleLoadError::runtime(format!("could not link WASI: {e}")))?;
    Rule::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(|e| RuleLoadError::runtime(format!("could not link the rule host: {e}")))?;
    let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
        RuleLoadError::config(
            key,
            format!("{shown} cannot be linked: {e}; rule modules get only WASI (empty) and the host log"),
        )
    })?;
    let pre = RulePre::new(instance_pre).map_err(|e| {
        RuleLoadError::config(
            key,
            format!("{shown} does not match the rule ABI {ABI_PACKAGE}@{ABI_MAJOR}.x: {e}"),
        )
    })?;
    Ok(Prepared {
        pre,
        origin,
        imports,
    })
}

/// A fresh store and instance.
fn instantiate(pre: &RulePre<HostState>, name: &Arc<str>) -> Result<Live, String> {
    let engine = pre.engine();
    let mut store = Store::new(engine, HostState::new(name.clone()));
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_trap();
    store
        .set_fuel(limits::FUEL_PER_CALL)
        .map_err(|e| format!("could not set fuel: {e}"))?;
    store.set_epoch_deadline(limits::EPOCH_TICKS_PER_CALL);
    let rule = pre
        .instantiate(&mut store)
        .map_err(|e| format!("could not be instantiated: {}", describe(&e, store.data())))?;
    Ok(Live { store, rule })
}

/// Why a call failed, in words an admin can act on.
fn describe(e: &wasmtime::Error, state: &HostState) -> String {
    let panic = state
        .last_error
        .as_ref()
        .map(|m| format!(" (the module logged: {m})"))
        .unwrap_or_default();
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => format!(
                "ran out of fuel: more than {} million WebAssembly instructions in one call \
                 (an endless loop, or far too much work per entry); the instance was reset",
                limits::FUEL_PER_CALL / 1_000_000
            ),
            Trap::Interrupt => format!(
                "exceeded the time limit of {} ms per call; the instance was reset",
                limits::EPOCH_TICK_MS * limits::EPOCH_TICKS_PER_CALL
            ),
            Trap::StackOverflow => {
                format!("overflowed its stack (too deep recursion){panic}; the instance was reset")
            }
            Trap::UnreachableCodeReached => {
                format!("trapped (a panic or abort in the module){panic}; the instance was reset")
            }
            other => format!("trapped: {other}{panic}; the instance was reset"),
        };
    }
    let text = format!("{e:?}");
    if text.contains("forcing trap when growing memory") {
        return format!(
            "exceeded the memory cap of {} MiB; the instance was reset",
            limits::MEMORY_BYTES >> 20
        );
    }
    format!("failed: {e}{panic}; the instance was reset")
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" [truncated]");
    }
    s
}

/// Checks what a module says about itself.
fn check_metadata(m: &wit::ModuleMetadata, shown: &str, key: &str) -> Result<(), RuleLoadError> {
    let bad = |msg: String| Err(RuleLoadError::config(key, format!("{shown}: {msg}")));
    if m.name.trim().is_empty() || m.name.len() > 64 || m.name.chars().any(char::is_control) {
        return bad(format!(
            "the module's metadata has an unusable name {:?} (1-64 printable characters)",
            m.name
        ));
    }
    if m.abi_version.split('.').next() != Some(ABI_MAJOR) {
        return bad(format!(
            "the module says it was built for rule ABI {}, this ldap2ftrack runs {ABI_MAJOR}.x; \
             rebuild it with ldap2ftrack-rules-sdk {ABI_MAJOR}.x",
            m.abi_version
        ));
    }
    Ok(())
}

fn metadata_of(live: &mut Live) -> Result<wit::ModuleMetadata, String> {
    live.store
        .set_fuel(limits::FUEL_PER_CALL)
        .map_err(|e| e.to_string())?;
    live.store.set_epoch_deadline(limits::EPOCH_TICKS_PER_CALL);
    live.store.data_mut().begin_call();
    let r = live
        .rule
        .ldap2ftrack_rules_hooks()
        .call_metadata(&mut live.store)
        .map_err(|e| format!("`metadata` {}", describe(&e, live.store.data())));
    live.store.data_mut().end_call();
    let m = r?;
    let size = m.name.len()
        + m.version.len()
        + m.description.len()
        + m.config_schema
            .iter()
            .map(|k| k.name.len() + k.description.len() + k.default.as_ref().map_or(0, String::len))
            .sum::<usize>();
    if size > limits::OUTPUT_BYTES {
        return Err(format!(
            "`metadata` returned {size} bytes, more than the {} MiB output cap",
            limits::OUTPUT_BYTES >> 20
        ));
    }
    Ok(m)
}

fn configure(live: &mut Live, json: &str) -> Result<Result<wit::EntryFields, String>, String> {
    live.store
        .set_fuel(limits::FUEL_PER_CALL)
        .map_err(|e| e.to_string())?;
    live.store.set_epoch_deadline(limits::EPOCH_TICKS_PER_CALL);
    live.store.data_mut().begin_call();
    let r = live
        .rule
        .ldap2ftrack_rules_hooks()
        .call_configure(&mut live.store, json)
        .map_err(|e| format!("`configure` {}", describe(&e, live.store.data())));
    live.store.data_mut().end_call();
    r.map(|inner| inner.map_err(|m| truncate(m, limits::REJECTION_BYTES)))
}

/// Shows a module's metadata, hooks, configuration keys and hash, without configuring it.
pub fn inspect(path: &Path) -> Result<ModuleInfo, RuleLoadError> {
    let key = "";
    let (bytes, sha256) = read_module(path, key)?;
    let prepared = prepare(path, key, &bytes, &sha256, cache_dir().as_deref())?;
    let shown = path.display().to_string();
    let name: Arc<str> = Arc::from(shown.as_str());
    let mut live = instantiate(&prepared.pre, &name)
        .map_err(|m| RuleLoadError::runtime(format!("rule module {shown} {m}")))?;
    let m = metadata_of(&mut live)
        .map_err(|m| RuleLoadError::runtime(format!("rule module {shown}: {m}")))?;
    check_metadata(&m, &shown, key)?;
    Ok(ModuleInfo {
        path: path.to_path_buf(),
        name: m.name,
        version: m.version,
        description: m.description,
        abi_version: m.abi_version,
        hooks: m.hooks.iter().map(|h| hook_name(*h)).collect(),
        config: m
            .config_schema
            .into_iter()
            .map(|k| ConfigKeyInfo {
                name: k.name,
                value_type: config::type_name(k.value_type),
                default: k.default,
                required: k.required,
                description: k.description,
            })
            .collect(),
        sha256,
        size_bytes: bytes.len() as u64,
        imports: prepared.imports,
        bounds: Vec::new(),
    })
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
    live: Option<Live>,
    origin: Origin,
    instances: u64,
    last_fuel: u64,
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
    /// Loads `rules[index]`: checks the hash, compiles or loads from the cache, checks the
    /// ABI, reads the metadata, checks the configuration against it and configures one
    /// instance.
    pub fn load(settings: &RuleModuleSettings, index: usize) -> Result<WasmStage, RuleLoadError> {
        WasmStage::load_with_cache(settings, index, cache_dir().as_deref())
    }

    /// [`WasmStage::load`] with an explicit compile-cache folder (`None`: always compile).
    pub fn load_with_cache(
        settings: &RuleModuleSettings,
        index: usize,
        cache: Option<&Path>,
    ) -> Result<WasmStage, RuleLoadError> {
        let path = &settings.module;
        let key = format!("rules[{index}].module");
        let (bytes, actual) = read_module(path, &key)?;
        if !actual.eq_ignore_ascii_case(settings.sha256.trim()) {
            return Err(RuleLoadError::HashMismatch {
                index,
                module: path.clone(),
                expected: settings.sha256.clone(),
                actual,
            });
        }
        let prepared = prepare(path, &key, &bytes, &actual, cache)?;
        let shown = path.display().to_string();
        let file_name: Arc<str> = Arc::from(shown.as_str());
        let mut live = instantiate(&prepared.pre, &file_name)
            .map_err(|m| RuleLoadError::runtime(format!("rule module {shown} {m}")))?;
        let meta = metadata_of(&mut live)
            .map_err(|m| RuleLoadError::runtime(format!("rule module {shown}: {m}")))?;
        check_metadata(&meta, &shown, &key)?;
        let log_name: Arc<str> = Arc::from(meta.name.as_str());
        live.store.data_mut().module = log_name.clone();

        let prefix = format!("rules[{index}].config");
        let config_json = config::check(&prefix, &meta.name, &settings.config, &meta.config_schema)
            .map_err(|problems| RuleLoadError::Config {
                problems: problems
                    .into_iter()
                    .map(|(k, m)| ConfigProblem::new(k, m))
                    .collect(),
            })?;
        let reads = match configure(&mut live, &config_json) {
            Ok(Ok(reads)) => reads,
            Ok(Err(msg)) => {
                return Err(RuleLoadError::config(
                    prefix,
                    format!(
                        "rule module `{}` refused its configuration: {msg}",
                        meta.name
                    ),
                ))
            }
            Err(m) => {
                return Err(RuleLoadError::runtime(format!(
                    "rule module `{}` ({shown}): {m}",
                    meta.name
                )))
            }
        };
        let has = |h: wit::Hook| meta.hooks.contains(&h);
        if has(wit::Hook::MapGroups) && !settings.bounds.declared() {
            return Err(RuleLoadError::config(
                format!("rules[{index}]"),
                format!(
                    "rule module `{}` ({shown}) implements map-groups but its [[rules]] entry \
                     declares no bounds: add `groups = [...]` and `roles = [...]` naming the \
                     ftrack groups and security roles it may manage (names or `*` globs, e.g. \
                     groups = [\"Comp *\"], roles = [\"Artist\"]; `[]` for none)",
                    meta.name
                ),
            ));
        }
        tracing::debug!(
            rule = %meta.name,
            "loaded rule module {} {} from {shown} (hooks: {})",
            meta.name,
            meta.version,
            meta.hooks.iter().map(|h| hook_name(*h)).collect::<Vec<_>>().join(", ")
        );
        Ok(WasmStage {
            name: meta.name.clone(),
            module: path.clone(),
            on_error: settings.on_error,
            bounds: settings.bounds.clone(),
            transform_user: has(wit::Hook::TransformUser),
            map_groups: has(wit::Hook::MapGroups),
            deprovision: has(wit::Hook::Deprovision),
            pre: prepared.pre,
            log_name,
            config_json,
            reads,
            live: Some(live),
            origin: prepared.origin,
            instances: 1,
            last_fuel: 0,
        })
    }

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
    pub fn origin(&self) -> Origin {
        self.origin
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

    /// The module file.
    pub fn module(&self) -> &Path {
        &self.module
    }

    fn error(&self, hook: HookName, entry: &str, message: String) -> RuleError {
        RuleError {
            stage: self.name.clone(),
            hook: hook.wit(),
            entry: entry.to_string(),
            message,
        }
    }

    /// The live instance, making a fresh one (and configuring it) after a trap.
    fn live(&mut self) -> Result<&mut Live, String> {
        if self.live.is_none() {
            let mut live = instantiate(&self.pre, &self.log_name)?;
            match configure(&mut live, &self.config_json)? {
                Ok(reads) => self.reads = reads,
                Err(m) => return Err(format!("a fresh instance refused its configuration: {m}")),
            }
            self.instances += 1;
            self.live = Some(live);
        }
        self.live.as_mut().ok_or_else(|| "no instance".to_string())
    }

    /// Runs one hook call under the limits and turns every failure into a [`RuleError`].
    fn call<W: OutputSize, R>(
        &mut self,
        hook: HookName,
        entry: &str,
        f: impl FnOnce(&Rule, &mut Store<HostState>) -> wasmtime::Result<Result<W, String>>,
        back: impl FnOnce(W) -> Result<R, String>,
    ) -> Result<R, RuleError> {
        let live = match self.live() {
            Ok(l) => l,
            Err(m) => {
                self.live = None;
                return Err(self.error(hook, entry, m));
            }
        };
        if let Err(e) = live.store.set_fuel(limits::FUEL_PER_CALL) {
            return Err(self.error(hook, entry, format!("could not set fuel: {e}")));
        }
        live.store.set_epoch_deadline(limits::EPOCH_TICKS_PER_CALL);
        live.store.data_mut().begin_call();
        let result = f(&live.rule, &mut live.store);
        live.store.data_mut().end_call();
        let fuel_used = limits::FUEL_PER_CALL - live.store.get_fuel().unwrap_or(0);
        let failure = match &result {
            Err(e) => Some(describe(e, live.store.data())),
            Ok(_) => None,
        };
        self.last_fuel = fuel_used;
        match result {
            Ok(Ok(answer)) => {
                let size = answer.output_size();
                if size > limits::OUTPUT_BYTES {
                    return Err(self.error(
                        hook,
                        entry,
                        format!(
                            "returned {size} bytes of text, more than the {} MiB output cap",
                            limits::OUTPUT_BYTES >> 20
                        ),
                    ));
                }
                back(answer).map_err(|m| self.error(hook, entry, format!("malformed answer: {m}")))
            }
            Ok(Err(rejection)) => Err(self.error(
                hook,
                entry,
                format!(
                    "the rule rejected the entry: {}",
                    truncate(rejection, limits::REJECTION_BYTES)
                ),
            )),
            Err(e) => {
                let message = failure.unwrap_or_else(|| e.to_string());
                self.live = None;
                Err(self.error(hook, entry, message))
            }
        }
    }
}

impl Stage for WasmStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_error(&self) -> OnRuleError {
        self.on_error
    }

    fn bounds(&self) -> Option<&crate::config::ModuleBounds> {
        Some(&self.bounds)
    }

    fn transform_user(
        &mut self,
        entry: &RuleEntry,
        proposal: UserDecision,
    ) -> Result<UserDecision, RuleError> {
        if !self.transform_user {
            return Ok(proposal);
        }
        let view = convert::EntryView::new(entry, &self.reads);
        let attributes = view.attributes();
        let p = convert::decision(&proposal);
        self.call(
            HookName::TransformUser,
            &entry.dn,
            |rule, store| {
                rule.ldap2ftrack_rules_hooks().call_transform_user(
                    store,
                    view.lower(&attributes),
                    p,
                )
            },
            convert::decision_back,
        )
    }

    fn map_groups(
        &mut self,
        entry: &RuleEntry,
        user: &UserFields,
        proposal: Access,
    ) -> Result<Access, RuleError> {
        if !self.map_groups {
            return Ok(proposal);
        }
        let view = convert::EntryView::new(entry, &self.reads);
        let attributes = view.attributes();
        let (groups, roles) = convert::access_parts(&proposal);
        self.call(
            HookName::MapGroups,
            &entry.dn,
            |rule, store| {
                rule.ldap2ftrack_rules_hooks().call_map_groups(
                    store,
                    view.lower(&attributes),
                    convert::user_fields(user),
                    convert::access(&groups, &roles),
                )
            },
            convert::access_back,
        )
    }

    fn deprovision(
        &mut self,
        user: &DepartedUser,
        proposal: Verdict,
    ) -> Result<Verdict, RuleError> {
        if !self.deprovision {
            return Ok(proposal);
        }
        let view = user
            .entry
            .as_ref()
            .map(|e| convert::EntryView::new(e, &self.reads));
        let attributes = view.as_ref().map(|v| v.attributes()).unwrap_or_default();
        self.call(
            HookName::Deprovision,
            &user.username,
            |rule, store| {
                rule.ldap2ftrack_rules_hooks().call_deprovision(
                    store,
                    convert::departed(user, view.as_ref().map(|v| v.lower(&attributes))),
                    convert::verdict(&proposal),
                )
            },
            convert::verdict_back,
        )
    }
}
