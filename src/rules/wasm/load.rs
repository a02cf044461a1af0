//! Loading a rule module: reading the file and checking its pinned SHA-256, compiling it (or
//! loading it from the compile cache) and checking its ABI and imports, instantiating it,
//! reading and checking its metadata, and configuring it, for [`WasmStage::load`] and for
//! `rules inspect` ([`inspect`]). Kept apart from the hook call path in [`super::call`],
//! which only re-instantiates and re-configures after a trap.

use super::bindings::ldap2ftrack::rules::types as wit;
use super::bindings::{Rule, RulePre};
use super::call::{describe, guarded, truncate, Live};
use super::engine::{self, default_compile_cache, Compilation};
use super::sandbox::HostState;
use super::{
    config, hook_name, limits, ConfigKeyInfo, ModuleInfo, RuleLoadError, WasmStage, ABI_MAJOR,
    ABI_PACKAGE, HOOKS_EXPORT,
};
use crate::config::{ConfigProblem, RuleModuleSettings};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

/// A module compiled and linked, ready to instantiate.
struct Prepared {
    pre: RulePre<HostState>,
    compilation: Compilation,
    imports: Vec<String>,
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
                 the ldap2ftrack rules SDK and `ldap2ftrack rules build`"
            ),
        ));
    }
    let engine = engine::engine().map_err(RuleLoadError::runtime)?;
    let started = Instant::now();
    let (component, compilation) = engine::load_component(engine, bytes, sha, path, cache)
        .map_err(|m| RuleLoadError::config(key, m))?;
    tracing::debug!(
        module = %shown,
        "rule module {} in {:.1} ms",
        match compilation {
            Compilation::CacheHit => "loaded from the compile cache",
            Compilation::CompiledNow => "compiled",
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
        .and_then(|()| super::no_wait::add_to_linker(&mut linker))
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
        compilation,
        imports,
    })
}

/// A fresh store and instance.
pub(super) fn instantiate(pre: &RulePre<HostState>, name: &Arc<str>) -> Result<Live, String> {
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
    let (r, _) = guarded(live, super::call::CALL_DEADLINE, |rule, store| {
        rule.ldap2ftrack_rules_hooks().call_metadata(store)
    })
    .map_err(|e| e.to_string())?;
    let m = r.map_err(|e| format!("`metadata` {}", describe(&e, live.store.data())))?;
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
    // Shown by `rules inspect` and `check`: free text is made harmless for a terminal.
    let clean = super::convert::clean_text;
    let mut m = m;
    m.version = clean(m.version);
    m.description = clean(m.description);
    for key in &mut m.config_schema {
        key.description = clean(std::mem::take(&mut key.description));
        key.default = key.default.take().map(clean);
    }
    Ok(m)
}

pub(super) fn configure(
    live: &mut Live,
    json: &str,
) -> Result<Result<wit::EntryFields, String>, String> {
    let (r, _) = guarded(live, super::call::CALL_DEADLINE, |rule, store| {
        rule.ldap2ftrack_rules_hooks().call_configure(store, json)
    })
    .map_err(|e| e.to_string())?;
    r.map_err(|e| format!("`configure` {}", describe(&e, live.store.data())))
        .map(|inner| {
            inner.map_err(|m| super::convert::clean_text(truncate(m, limits::REJECTION_BYTES)))
        })
}

/// Shows a module's metadata, hooks, configuration keys and hash, without configuring it.
pub fn inspect(path: &Path) -> Result<ModuleInfo, RuleLoadError> {
    inspect_with_cache(path, default_compile_cache().as_deref())
}

/// [`inspect`] with an explicit compile-cache folder (`None`: always compile).
pub fn inspect_with_cache(path: &Path, cache: Option<&Path>) -> Result<ModuleInfo, RuleLoadError> {
    let key = "";
    let (bytes, sha256) = read_module(path, key)?;
    let prepared = prepare(path, key, &bytes, &sha256, cache)?;
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

impl WasmStage {
    /// Loads `rules[index]`: checks the hash, compiles or loads from the cache, checks the
    /// ABI, reads the metadata, checks the configuration against it and configures one
    /// instance.
    pub fn load(settings: &RuleModuleSettings, index: usize) -> Result<WasmStage, RuleLoadError> {
        WasmStage::load_with_cache(settings, index, settings.compile_cache.as_deref())
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
                module: settings.source.to_string(),
                expected: settings.sha256.clone(),
                actual,
            });
        }
        // Named as sync.toml names it: a fetched module by its reference, not its cache file.
        let shown = settings.source.to_string();
        let prepared = prepare(Path::new(&shown), &key, &bytes, &actual, cache)?;
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
            live: Some(sync_wrapper::SyncWrapper::new(live)),
            compilation: prepared.compilation,
            instances: 1,
            last_fuel: 0,
            budget: Arc::new(crate::rules::budget::RunBudget::new(
                std::time::Duration::from_secs(settings.max_run_seconds),
            )),
        })
    }
}
