//! Referenced rule modules (`oci://…`, `https://…`) into the module cache, before they are
//! loaded.
//!
//! Exists so that a shared module arrives verified and a scheduled run does not depend on the
//! registry: the cache is content-addressed (`<cache_dir>/sha256/<hash>.wasm`, the hash being
//! the component's SHA-256, i.e. the `sha256` pin), so a module whose pin is already cached is
//! used without any network call; one that is not is fetched, checked against its pin
//! (mismatch: exit 2, nothing cached) and written atomically. It runs in the local-facts phase
//! of a run (`run::prepare`), before LDAP or ftrack are contacted. The loader then reads the
//! cached file like a local one and checks the pin once more.

use super::registry::{self, PullError};
use super::wasm::{limits, sha256_hex, RuleLoadError};
use crate::config::{Config, ModuleSource, RuleModuleSettings};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a module's bytes came from this run. (Where its native code came from is
/// [`crate::rules::wasm::Compilation`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// A local file named in `sync.toml`.
    File,
    /// The module cache, without a network call.
    Cached,
    /// Fetched now (and cached).
    Fetched,
}

impl Provenance {
    pub fn describe(self) -> &'static str {
        match self {
            Provenance::File => "local file",
            Provenance::Cached => "from the module cache, no network",
            Provenance::Fetched => "fetched now and cached",
        }
    }
}

/// Makes sure every referenced module of `config` is in the module cache, fetching what is
/// missing; returns each module's provenance, in `[[rules]]` order.
pub fn ensure_all(config: &Config) -> Result<Vec<Provenance>, RuleLoadError> {
    let env = |k: &str| std::env::var(k).ok();
    config
        .rules
        .iter()
        .enumerate()
        .map(|(index, settings)| ensure(settings, index, &env))
        .collect()
}

/// [`ensure_all`] for one `[[rules]]` entry.
pub fn ensure(
    settings: &RuleModuleSettings,
    index: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provenance, RuleLoadError> {
    if !settings.source.is_remote() {
        return Ok(Provenance::File);
    }
    let source = &settings.source;
    let cached = &settings.module;
    let key = format!("rules[{index}].module");
    if cached.as_os_str().is_empty() {
        return Err(RuleLoadError::config(
            key,
            "no module cache folder is known; set [run] cache_dir",
        ));
    }
    let pin = settings.sha256.trim().to_ascii_lowercase();
    if let Ok(bytes) = std::fs::read(cached) {
        if sha256_hex(&bytes) == pin {
            tracing::debug!(module = %source, "rule module from the module cache {}", cached.display());
            return Ok(Provenance::Cached);
        }
        tracing::warn!(
            "the cached copy {} of {source} does not match its name (damaged); fetching it again",
            cached.display()
        );
        let _ = std::fs::remove_file(cached);
    }
    let started = std::time::Instant::now();
    let last = last_seen(cached, &source.to_string());
    let bytes = match fetch(source, env) {
        Ok(bytes) => bytes,
        // Unreachable, but this reference is known to give another module than the pin:
        // that is the answer, a mismatch (exit 2), not "try again later".
        Err(PullError::Failed(why)) if last.as_deref().is_some_and(|h| *h != pin) => {
            tracing::warn!("{source}: {why}; judging the pin by the module it gave last time");
            return Err(RuleLoadError::HashMismatch {
                index,
                module: format!("{source} (as last fetched; the registry is unreachable now)"),
                expected: settings.sha256.clone(),
                actual: last.unwrap_or_default(),
            });
        }
        Err(e) => return Err(pull_error(&key, e)),
    };
    let actual = sha256_hex(&bytes);
    remember(cached, &source.to_string(), &actual);
    if actual != pin {
        return Err(RuleLoadError::HashMismatch {
            index,
            module: source.to_string(),
            expected: settings.sha256.clone(),
            actual,
        });
    }
    store(cached, &bytes)?;
    tracing::info!(
        module = %source,
        "fetched rule module ({} bytes, sha256 {actual}) in {:.1} s; cached at {}",
        bytes.len(),
        started.elapsed().as_secs_f64(),
        cached.display()
    );
    Ok(Provenance::Fetched)
}

/// For `rules inspect REFERENCE`: fetches the module (no pin to check it against: this is how
/// one learns it), keeps it in the cache under its own hash and returns that file. `None`
/// for `cache_dir` keeps it in a temporary file instead.
pub fn fetch_for_inspect(
    source: &ModuleSource,
    cache_dir: Option<&Path>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), RuleLoadError> {
    let env = |k: &str| std::env::var(k).ok();
    let bytes = fetch(source, &env).map_err(|e| pull_error("", e))?;
    let hash = sha256_hex(&bytes);
    match cache_dir {
        Some(dir) => {
            let path = dir.join("sha256").join(format!("{hash}.wasm"));
            store(&path, &bytes)?;
            Ok((path, None))
        }
        None => {
            let tmp = tempfile::tempdir().map_err(|e| {
                RuleLoadError::runtime(format!("cannot create a temporary folder: {e}"))
            })?;
            let path = tmp.path().join(format!("{hash}.wasm"));
            store(&path, &bytes)?;
            Ok((path, Some(tmp)))
        }
    }
}

/// Where the cache notes which module a reference gave last: `<cache_dir>/refs/<sha256 of
/// the reference>` (next to `<cache_dir>/sha256/`, where `cached` is).
fn reference_note(cached: &Path, reference: &str) -> Option<PathBuf> {
    let cache_dir = cached.parent()?.parent()?;
    Some(
        cache_dir
            .join("refs")
            .join(sha256_hex(reference.as_bytes())),
    )
}

/// The SHA-256 of the module `reference` gave when it was last fetched, if noted.
fn last_seen(cached: &Path, reference: &str) -> Option<String> {
    let text = std::fs::read_to_string(reference_note(cached, reference)?).ok()?;
    let hash = text.trim();
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hash.to_string())
}

/// Notes that `reference` gave the module `hash` (best effort: only a hint for offline runs).
fn remember(cached: &Path, reference: &str, hash: &str) {
    if let Some(note) = reference_note(cached, reference) {
        let written = note
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&note, hash));
        if let Err(e) = written {
            tracing::debug!("cannot note {reference} in {}: {e}", note.display());
        }
    }
}

/// A wrong reference or a wrong or tampered artefact is the configuration's problem (exit 2);
/// an unreachable registry is the run's (exit 1).
fn pull_error(key: &str, e: PullError) -> RuleLoadError {
    match e {
        PullError::NotFound(m) | PullError::Unusable(m) | PullError::Tampered(m) => {
            RuleLoadError::config(key, m)
        }
        PullError::Failed(m) => RuleLoadError::runtime(m),
    }
}

/// The module's bytes from its source (at most the module size limit).
fn fetch(
    source: &ModuleSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, PullError> {
    let limit = limits::MODULE_BYTES;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PullError::Failed(format!("cannot start the async runtime: {e}")))?;
    // Callers are outside any runtime: the local-facts phase and `rules inspect` run before one.
    match source {
        ModuleSource::Oci(r) => runtime.block_on(registry::pull(r, limit, env)),
        ModuleSource::Url(u) => runtime.block_on(download(u, limit)),
        ModuleSource::Path(p) => std::fs::read(p)
            .map_err(|e| PullError::Failed(format!("cannot read {}: {e}", p.display()))),
    }
}

/// Downloads `url`, following at most [`crate::net::MAX_REDIRECTS`] redirects by hand: none
/// from https to plain http, none to plain http off loopback (each checked before it is
/// followed). Nothing secret is sent, so a redirect carries no credential either.
async fn download(url: &url::Url, limit: u64) -> Result<Vec<u8>, PullError> {
    let client = crate::net::client_builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| PullError::Failed(format!("cannot set up the HTTP client: {e}")))?;
    let failed = |asked: &url::Url, e: reqwest::Error| {
        let host = asked.host_str().unwrap_or_default();
        match crate::net::tls_problem(&e, host, "") {
            Some(problem) => PullError::Failed(format!("{url}: the download failed: {problem}")),
            None => PullError::Failed(format!(
                "{url}: the download failed ({}); check that the server is reachable, or run \
                 once while it is so the module is cached",
                crate::net::describe(&e, host)
            )),
        }
    };
    let mut asked = url.clone();
    let mut redirects = 0;
    let mut response = loop {
        let response = client
            .get(asked.clone())
            .send()
            .await
            .map_err(|e| failed(&asked, e))?;
        let status = response.status();
        if !status.is_redirection() {
            break response;
        }
        let refuse = |why: String| {
            PullError::Failed(format!(
                "{url}: the server answered HTTP {status}, but {why}; use a URL that serves the \
                 module directly over https"
            ))
        };
        let Some(next) = crate::net::location(&asked, response.headers()) else {
            return Err(refuse("gave no usable address to go to".to_string()));
        };
        crate::net::redirect_allowed(&asked, &next).map_err(refuse)?;
        redirects += 1;
        if redirects > crate::net::MAX_REDIRECTS {
            return Err(refuse(format!(
                "it redirected more than {} times",
                crate::net::MAX_REDIRECTS
            )));
        }
        tracing::debug!(
            "{url}: HTTP {status}, following the redirect to {}",
            crate::net::origin(&next)
        );
        asked = next;
    };
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Err(PullError::NotFound(format!(
            "{url}: the server has no such file (HTTP {status}); check the URL"
        )));
    }
    if !status.is_success() {
        return Err(PullError::Failed(format!(
            "{url}: the server answered HTTP {status}; check the URL and the server"
        )));
    }
    let too_big = || {
        PullError::Unusable(format!(
            "{url} is larger than the {} MiB rule modules are limited to",
            limit >> 20
        ))
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(&asked, e))? {
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Writes a cache file atomically (a temporary file renamed into place), so a concurrent run
/// never reads half a module.
fn store(path: &Path, bytes: &[u8]) -> Result<(), RuleLoadError> {
    let fail = |e: std::io::Error| {
        RuleLoadError::runtime(format!(
            "cannot write the module cache file {}: {e}; check [run] cache_dir and the folder's \
             permissions",
            path.display()
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}
