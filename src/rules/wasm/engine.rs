//! One wasmtime engine for the process, and the compiled-module cache.
//!
//! Compiling a module with Cranelift costs tens of milliseconds (seconds for modules built
//! from Python or JavaScript); loading a precompiled artifact costs well under one. Artifacts
//! are kept under the module's SHA-256 plus a hash of everything that makes an artifact
//! loadable (wasmtime version, engine configuration, CPU features), so a start-up after the
//! first never recompiles, and an engine change never loads an incompatible artifact. An
//! artefact is native code, so it is only loaded when a MAC under a key of this host proves
//! this host compiled it from that pinned module ([`CompileCache`]); anything else is
//! compiled again, never fatal.

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

/// The compile cache when sync.toml is not read (`rules inspect`): `compiled/` in the cache
/// base folder (`$LDAP2FTRACK_CACHE_DIR`, `$XDG_CACHE_HOME/ldap2ftrack` or
/// `~/.cache/ldap2ftrack`).
pub fn default_compile_cache() -> Option<PathBuf> {
    crate::config::default_compile_cache(&|k| std::env::var(k).ok())
}

/// Where a module's native code came from, for logs and the benchmark. (Where its bytes
/// came from is [`crate::rules::fetch::Provenance`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compilation {
    /// Loaded from a precompiled artifact of the compile cache.
    CacheHit,
    /// Compiled now (and stored when a cache folder is available).
    CompiledNow,
}

/// The component for these module bytes (whose SHA-256 is `sha256`): from the compile
/// cache when an artefact this host made from exactly these bytes is there, else compiled
/// and stored. Cache problems are logged, never fatal: the module is compiled instead.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    sha256: &str,
    display: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, Compilation), String> {
    let cache = cache_dir.and_then(|dir| match CompileCache::open(dir) {
        Ok(cache) => Some(cache),
        Err(why) => {
            tracing::warn!(
                "the compile cache is not used ({why}); rule modules are compiled on every run"
            );
            None
        }
    });
    let stem = format!("{sha256}-{}", engine_key(engine));
    if let Some(cache) = &cache {
        if let Some(component) = cache.load(engine, &stem, sha256) {
            return Ok((component, Compilation::CacheHit));
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
    if let Some(cache) = &cache {
        if let Err(e) = cache.store(&stem, sha256, &compiled) {
            tracing::warn!(
                "could not store the compiled rule module in the compile cache {}: {e}; it \
                 will be compiled again next time",
                cache.dir.display()
            );
        }
    }
    Ok((component, Compilation::CompiledNow))
}

/// The compile cache: a folder of the running user closed to others, holding a key of this
/// host (`host.key`, 32 random bytes, mode 0600) and, per module, the native artefact
/// (`<pin>-<engine key>.cwasm`) with its MAC (`.cwasm.mac`): HMAC-SHA256 under the host key
/// of the module's pin, the engine key and the artefact. An artefact is deserialized (run
/// as native code) only when its MAC checks, so only code this host compiled from that very
/// pinned module is loaded; a copied, swapped or edited artefact is compiled again. A
/// checksum would not do: whoever can replace the artefact can recompute it.
struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

type HmacSha256 = hmac::Hmac<Sha256>;

const HOST_KEY_FILE: &str = "host.key";

impl CompileCache {
    fn open(dir: &Path) -> Result<CompileCache, String> {
        crate::private_files::ensure_private_dir(dir)?;
        let key_path = dir.join(HOST_KEY_FILE);
        let key = match read_key(&key_path) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_key(&key_path)?,
            Err(e) => {
                return Err(format!(
                    "its key {} cannot be read ({e}); delete the file to make a new one",
                    key_path.display()
                ))
            }
        };
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn mac(&self, sha256: &str, stem: &str, artefact: &[u8]) -> HmacSha256 {
        use hmac::Mac;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"ldap2ftrack compiled rule module v1\0");
        mac.update(sha256.as_bytes());
        mac.update(b"\0");
        mac.update(stem.as_bytes());
        mac.update(b"\0");
        mac.update(artefact);
        mac
    }

    fn paths(&self, stem: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.cwasm.mac")),
        )
    }

    fn load(&self, engine: &Engine, stem: &str, sha256: &str) -> Option<Component> {
        use hmac::Mac;
        let (artefact, mac_path) = self.paths(stem);
        let bytes = std::fs::read(&artefact).ok()?;
        let expected = std::fs::read_to_string(&mac_path).unwrap_or_default();
        let expected = hex::decode(expected.trim()).unwrap_or_default();
        if self
            .mac(sha256, stem, &bytes)
            .verify_slice(&expected)
            .is_err()
        {
            tracing::warn!(
                "compiled rule module {} was not made by this host from the pinned module \
                 (its MAC does not check); compiling the module again",
                artefact.display()
            );
            return None;
        }
        // SAFETY: the MAC proves this host wrote these bytes as the compilation of the module
        // with this pin under this engine key (wasmtime version, configuration, CPU
        // features); wasmtime also checks the version and configuration in the artefact.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "compiled rule module {} could not be loaded ({e}); compiling it again",
                    artefact.display()
                );
                None
            }
        }
    }

    fn store(&self, stem: &str, sha256: &str, compiled: &[u8]) -> std::io::Result<()> {
        use hmac::Mac;
        use std::io::Write;
        let (artefact, mac_path) = self.paths(stem);
        let tag = hex::encode(self.mac(sha256, stem, compiled).finalize().into_bytes());
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.as_file().write_all(compiled)?;
        tmp.persist(&artefact).map_err(|e| e.error)?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.as_file().write_all(tag.as_bytes())?;
        tmp.persist(&mac_path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn read_key(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut file = crate::private_files::open_read(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } || meta.mode() & 0o077 != 0 {
            return Err(std::io::Error::other(
                "it must belong to the running user with mode 0600",
            ));
        }
    }
    let mut key = [0u8; 32];
    file.read_exact(&mut key)?;
    Ok(key)
}

fn new_key(path: &Path) -> Result<[u8; 32], String> {
    use std::io::Write;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no random numbers for its key ({e})"))?;
    let mut file = crate::private_files::create_new(path)
        .map_err(|e| format!("cannot create its key {} ({e})", path.display()))?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write its key {} ({e})", path.display()))?;
    Ok(key)
}
