//! One wasmtime engine for the process, and the compiled-module cache.
//!
//! Compiling a module with Cranelift costs tens of milliseconds (seconds for modules built
//! from Python or JavaScript); loading a precompiled artifact costs well under one. Artifacts
//! are kept under the module's SHA-256 plus a hash of everything that makes an artifact
//! loadable (wasmtime version, engine configuration, CPU features), so a start-up after the
//! first never recompiles, and an engine change never loads an incompatible artifact. Each
//! artifact carries its own SHA-256 beside it: a corrupt or truncated cache file is detected
//! and recompiled, never fatal.

use super::limits;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, OptLevel};

/// The process-wide engine, with the epoch ticker started on first use.
pub fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config
                .wasm_component_model(true)
                .consume_fuel(true)
                .epoch_interruption(true)
                .cranelift_opt_level(OptLevel::Speed)
                .max_wasm_stack(limits::WASM_STACK_BYTES);
            let engine = Engine::new(&config)
                .map_err(|e| format!("could not set up the WebAssembly engine: {e}"))?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("ldap2ftrack-wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(limits::EPOCH_TICK_MS));
                    ticker.increment_epoch();
                })
                .map_err(|e| format!("could not start the WebAssembly timer thread: {e}"))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Feeds `Hash` output into SHA-256, for a stable file-name key.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// What a precompiled artifact must match to be loadable: wasmtime version and engine
/// configuration (including the host CPU features Cranelift targets).
pub fn engine_key(engine: &Engine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    h.write(b"wasmtime-48.0.8;ldap2ftrack-rules-1;");
    engine.precompile_compatibility_hash().hash(&mut h);
    // The first 12 bytes (24 hex digits) of the digest.
    let mut key = format!("{:x}", h.0.finalize());
    key.truncate(24);
    key
}

/// `$LDAP2FTRACK_CACHE_DIR`, else `$XDG_CACHE_HOME/ldap2ftrack`, else `~/.cache/ldap2ftrack`;
/// precompiled modules go in its `modules/` folder. `None` when no home is known.
pub fn cache_dir() -> Option<PathBuf> {
    crate::config::default_cache_base(&|k| std::env::var(k).ok()).map(|b| b.join("modules"))
}

/// How a component was obtained, for logs and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from a precompiled artifact.
    Cache,
    /// Compiled now (and stored when a cache folder is available).
    Compiled,
}

/// The component for these module bytes (whose SHA-256 is `sha256`): from the cache when a
/// valid artifact is there, else compiled and stored. Cache problems are logged, not fatal.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    sha256: &str,
    display: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, Origin), String> {
    let cache = cache_dir.map(|d| {
        let stem = format!("{sha256}-{}", engine_key(engine));
        (
            d.join(format!("{stem}.cwasm")),
            d.join(format!("{stem}.cwasm.sha256")),
            d,
        )
    });
    if let Some((artifact, check, _)) = &cache {
        if let Some(component) = load_cached(engine, artifact, check) {
            return Ok((component, Origin::Cache));
        }
    }
    let compiled = engine.precompile_component(bytes).map_err(|e| {
        format!(
            "{} could not be compiled: {e}; is it a WebAssembly component built for wasm32-wasip2?",
            display.display()
        )
    })?;
    // SAFETY: the artifact was produced just now, in this process, by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| {
        format!(
            "{} could not be loaded after compiling: {e}",
            display.display()
        )
    })?;
    if let Some((artifact, check, dir)) = &cache {
        if let Err(e) = store_cached(dir, artifact, check, &compiled) {
            tracing::warn!(
                "could not cache the compiled rule module in {}: {e}; it will be compiled again next time",
                dir.display()
            );
        }
    }
    Ok((component, Origin::Compiled))
}

fn load_cached(engine: &Engine, artifact: &Path, check: &Path) -> Option<Component> {
    let bytes = std::fs::read(artifact).ok()?;
    let expected = std::fs::read_to_string(check).unwrap_or_default();
    if expected.trim() != sha256_hex(&bytes) {
        tracing::warn!(
            "cached rule module {} is corrupt (checksum mismatch); recompiling",
            artifact.display()
        );
        return None;
    }
    // SAFETY: the artifact was written by this program with this engine configuration (its
    // name carries the engine key) and its checksum matches what was written; wasmtime also
    // checks the version and configuration recorded in the artifact itself.
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(
                "cached rule module {} could not be loaded ({e}); recompiling",
                artifact.display()
            );
            None
        }
    }
}

fn store_cached(dir: &Path, artifact: &Path, check: &Path, compiled: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = artifact.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, compiled)?;
    std::fs::write(check, sha256_hex(compiled))?;
    std::fs::rename(&tmp, artifact)
}
