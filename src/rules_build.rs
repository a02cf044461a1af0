//! `ldap2ftrack rules build [DIR]`: turns a rule module's source (a Rust crate or a Python
//! package, as `rules new` makes them) into a WebAssembly component and prints where it is
//! and the `[[rules]]` snippet that pins it, so a rule author never assembles a cargo or
//! componentize-py command line by hand, and a studio can rebuild a Rust module it received
//! and compare hashes.
//!
//! A Rust module is built so that its bytes depend only on the source (the crate, its
//! `Cargo.lock` and path dependencies), the Rust version and the target, not on the folder it
//! sits in: see `build_rust` for what made it differ and what fixed it. componentize-py output is not reproducible (two
//! builds of one source differ), which the output says: pin and share the built file.
//!
//! A missing tool or target is a usage error (exit 2) naming the command that installs it; a
//! build that fails is a runtime failure (exit 1) after the tool's own messages on stderr.

use crate::failure::Failure;
use crate::output::{print_json, OutputFormat};
use crate::rules::wasm::{ModuleInfo, RuleLoadError};
use crate::scaffold::{default_sdk, python_missing_in_sdk, python_sdk_src};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The Rust target of rule modules.
const TARGET: &str = "wasm32-wasip2";
/// The componentize-py version the Python SDK is written and tested against.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// Names the componentize-py executable to use, before `PATH` is searched.
const COMPONENTIZE_PY_ENV: &str = "LDAP2FTRACK_COMPONENTIZE_PY";
const INSTALL_RUST: &str = "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh";

/// The language of a module's source, as detected from its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
}

/// What a build produced (`--output json` prints it).
#[derive(Debug, Serialize)]
pub struct Built {
    /// The component, as an absolute path.
    pub module: PathBuf,
    pub sha256: String,
    pub language: Language,
    /// Whether the same source builds to the same bytes elsewhere (Rust: yes; Python: no).
    pub reproducible: bool,
    #[serde(skip)]
    info: ModuleInfo,
    /// The toolchain, for the human output (`rustc 1.95.0`).
    #[serde(skip)]
    toolchain: String,
    #[serde(skip)]
    seconds: f64,
}

/// `ldap2ftrack rules build`: builds the module in `dir` and prints the result.
/// `sdk` is the rules SDK folder (WIT and Python SDK; default: this build's checkout);
/// `out`, where to put the module (default: where the tool leaves it).
pub fn run(
    dir: &Path,
    sdk: Option<&Path>,
    out: Option<&Path>,
    output: OutputFormat,
) -> Result<(), Failure> {
    let built = build(dir, sdk, out)?;
    match output {
        OutputFormat::Json => print_json(&built),
        OutputFormat::Human => {
            print!("{}", human(&built));
            Ok(())
        }
    }
}

/// Builds the module whose source is in `dir`; see [`run`].
pub fn build(dir: &Path, sdk: Option<&Path>, out: Option<&Path>) -> Result<Built, Failure> {
    let started = Instant::now();
    let language = detect(dir)?;
    let (module, toolchain, reproducible) = match language {
        Language::Rust => build_rust(dir, out)?,
        Language::Python => {
            let (module, tool) = build_python(dir, sdk, out)?;
            (module, tool, false)
        }
    };
    let module = std::path::absolute(&module).unwrap_or(module);
    let bytes = std::fs::read(&module).map_err(|e| {
        Failure::Runtime(format!(
            "the build reported success but {} cannot be read: {e}",
            module.display()
        ))
    })?;
    let sha256 = crate::rules::wasm::sha256_hex(&bytes);
    // Load it the way a run does: a module that builds but cannot run (wrong world, ABI)
    // fails here, not at the studio. The compiled code lands in the module cache, so the
    // `ldap2ftrack test` that usually follows does not compile it again.
    let info = crate::rules::wasm::inspect(&module).map_err(|e| match e {
        RuleLoadError::Runtime { message } => Failure::Runtime(message),
        unusable => Failure::Usage(unusable.to_string()),
    })?;
    Ok(Built {
        module,
        sha256,
        language,
        reproducible,
        info,
        toolchain,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Rust when the folder has a `Cargo.toml`, Python when it has `app.py` or `pyproject.toml`.
fn detect(dir: &Path) -> Result<Language, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{} is not a folder: pass the folder of a rule module (the one `ldap2ftrack rules \
             new` created)",
            dir.display()
        )));
    }
    if dir.join("Cargo.toml").is_file() {
        Ok(Language::Rust)
    } else if dir.join("app.py").is_file() || dir.join("pyproject.toml").is_file() {
        Ok(Language::Python)
    } else {
        Err(Failure::Usage(format!(
            "{} holds neither a Cargo.toml (a Rust rule crate) nor an app.py or pyproject.toml \
             (a Python rule package): pass the folder of a rule module, e.g. one made by \
             `ldap2ftrack rules new NAME [--lang python]`",
            dir.display()
        )))
    }
}

/// The human-readable result: where the module is, whether it is reproducible, and the
/// `[[rules]]` snippet (with the module's configuration keys as comments).
fn human(built: &Built) -> String {
    use std::fmt::Write;
    let info = &built.info;
    let shown = shown(&built.module);
    let mut s = String::new();
    let language = match built.language {
        Language::Rust => "Rust",
        Language::Python => "Python",
    };
    let _ = writeln!(
        s,
        "built rule module `{}` {} ({language}, {}) in {:.1} s",
        info.name, info.version, built.toolchain, built.seconds
    );
    let _ = writeln!(s, "module:       {}", shown.display());
    let _ = writeln!(s, "sha256:       {}", built.sha256);
    let _ = writeln!(
        s,
        "hooks:        {}",
        if info.hooks.is_empty() {
            "none".to_string()
        } else {
            info.hooks.join(", ")
        }
    );
    let reproducible = match (built.language, built.reproducible) {
        (Language::Rust, true) => format!(
            "yes: the same source and Cargo.lock built with {} give this sha256 in any \
             folder, so a receiver can rebuild it and compare",
            built.toolchain
        ),
        (Language::Rust, false) => "not this time: it was built in place (see the warning \
                                    above), so its sha256 depends on the source's folder"
            .to_string(),
        (Language::Python, _) => "no: componentize-py builds of the same source differ, so \
                                  pin this file and share it (with its sha256), not the source"
            .to_string(),
    };
    let _ = writeln!(s, "reproducible: {reproducible}");
    let _ = writeln!(
        s,
        "\n# sync.toml (copy the module beside it and make `module` relative to sync.toml's folder):"
    );
    let _ = writeln!(s, "[[rules]]");
    let module = toml::Value::String(shown.display().to_string());
    let _ = writeln!(s, "module = {module}");
    let _ = writeln!(s, "sha256 = \"{}\"", built.sha256);
    let _ = writeln!(
        s,
        "# what the module may manage through map-groups: ftrack group and security role names, or * globs"
    );
    let _ = writeln!(s, "groups = []");
    let _ = writeln!(s, "roles = []");
    if !info.config.is_empty() {
        let _ = writeln!(s, "[rules.config]");
        for key in &info.config {
            let how = match (&key.default, key.required) {
                (_, true) => "required".to_string(),
                (Some(d), false) => format!("default {d}"),
                (None, false) => "optional".to_string(),
            };
            let _ = write!(s, "# {} ({}, {how})", key.name, key.value_type);
            if !key.description.is_empty() {
                let _ = write!(s, ": {}", key.description);
            }
            let _ = writeln!(s);
        }
    }
    s
}

/// `path` relative to the current folder when it is below it, else as it is.
fn shown(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
}

// ---------------------------------------------------------------------------------------
// Rust

/// The fixed path Rust modules are built through (see [`build_rust`]): a symbolic link to
/// the folder holding the crate's workspace and its path dependencies. It is the same on
/// every machine, so it cannot follow `$TMPDIR`.
const CANONICAL_PARENT: &str = "/tmp/ldap2ftrack-build";

/// Builds the Rust crate in `dir`: the module's path, the toolchain (`rustc 1.95.0`), and
/// whether the build was reproducible.
///
/// The module's bytes must depend only on the source (the crate, its `Cargo.lock`, its path
/// dependencies), the Rust version and the target, not on the folder the source sits in.
/// Measured on `examples-rules/studio-basics` copied with the SDK into folders at different
/// paths (see `tests/it/rules_build.rs`), these made the output differ, and this is what
/// removes each:
///
/// * **Cargo's crate hashes.** `-C metadata` (symbol names, `TypeId`s, and through them the
///   order of code and data) includes the absolute path of a path dependency outside the
///   workspace, here the SDK (`../../rules-sdk`). No remapping reaches it, and it shows for
///   some paths and not others: with `--remap-path-prefix` for the copies and `~/.cargo`,
///   LTO, one codegen unit and stripped symbols, copies at `/tmp/repro/a/x`,
///   `/tmp/repro/bbbbbb/yy` and `/tmp/repro/dddddddd/zz` gave one sha256 (`7d8a186d…`) but
///   the one at `/tmp/repro/c/q` differed in 506 bytes, same size, bytes in another order
///   (the figure of the notes' two clones). Unstripped, `a/x` and `bbbbbb/yy` differed in
///   1125 bytes (symbol hashes in the name section); stripped but with 16 codegen units and
///   no LTO, in 1844 bytes. So the build goes
///   through one canonical path: `/tmp/ldap2ftrack-build/src`, a symbolic link to the
///   deepest folder holding the workspace and its path dependencies (for the example, the
///   checkout). Cargo does not resolve symbolic links, so every checkout is seen at the same
///   paths and gets the same hashes: through the link, `c/q` and `dddddddd/zz` both gave
///   `81178e7f…` even with cargo's default release profile (no LTO, 16 codegen units,
///   unstripped), and `a/x` and `bbbbbb/yy` with the examples' profile both `331bef33…`, so
///   the crate's own profile is left alone. Builds through the link take turns (a lock file
///   beside it). The folder belongs to the user building, mode 0700 ([`CanonicalLink::set`]):
///   one of another user is refused, and the build runs in place, not reproducible. Without path dependencies outside the workspace, or when the only folder
///   holding them all is `/` (an absolute path in `Cargo.toml`, as `rules new` writes for
///   the SDK, which is then part of the source), it builds in place: the hashes are the
///   same anyway.
/// * **Absolute paths** (panic locations, debug info) of the workspace, of path dependencies
///   outside it, of the target folder (generated code), of cargo's home (registry and git
///   sources, `~/.cargo` differs per user) and of the real folder behind the link (rustc's
///   working folder): each is remapped (`--remap-path-prefix`) to a fixed name,
///   `/ldap2ftrack-build/{src,deps/NAME-VERSION,target}` and `/cargo`. The remapping of the
///   real folder also keeps two checkouts sharing one `CARGO_TARGET_DIR` from reusing each
///   other's artefacts (the flags differ, so cargo rebuilds).
/// * **Dependencies**: `--locked`, so the build uses exactly the `Cargo.lock` of the source
///   (the first build of a crate without one creates it, to be committed).
/// * **Environment**: `CARGO_INCREMENTAL=0`; the rustflags are set here
///   (`CARGO_ENCODED_RUSTFLAGS`), so neither `RUSTFLAGS` nor a cargo config file adds any.
///   No build id is asked for (the `wasm32-wasip2` linker adds none by default; its `uuid`
///   mode would be random).
///
/// Copying the sources to a fixed staging folder was the alternative; it would need the
/// crate, every path dependency and the workspaces they inherit settings from (the SDK
/// takes its edition from the checkout's root `Cargo.toml`, which needs the whole root
/// package to parse), and it would lose cargo's incremental state. The link needs none of
/// that. What stays outside: the Rust version (printed with the result) and the host
/// platform (Linux and macOS builds may differ, rust-lang/rust#97919).
fn build_rust(dir: &Path, out: Option<&Path>) -> Result<(PathBuf, String, bool), Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let toolchain = rust_toolchain(dir, &cargo, &rustc)?;
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Failure::Usage(format!("cannot resolve {}: {e}", dir.display())))?;
    let manifest = dir.join("Cargo.toml");
    ensure_lock_file(&cargo, &dir, &manifest)?;

    let metadata = cargo_metadata(&cargo, &dir, &manifest)?;
    let outside: Vec<PathBuf> = metadata
        .path_packages()
        .filter(|root| !root.starts_with(&metadata.workspace_root))
        .map(Path::to_path_buf)
        .collect();
    let holder = (!outside.is_empty())
        .then(|| common_ancestor(&metadata.workspace_root, &outside))
        .flatten();

    // Through the canonical link when there is something to hide, else in place.
    let (link, reproducible) = match holder {
        None => (None, true),
        Some(holder) => match CanonicalLink::set(&holder) {
            Ok(link) => (Some(link), true),
            Err(why) => {
                tracing::warn!(
                    "cannot build through {CANONICAL_PARENT}/src ({why}); building in place, \
                     so this module's hash depends on the path of {}",
                    holder.display()
                );
                (None, false)
            }
        },
    };
    let (manifest_seen, metadata) = match &link {
        Some(link) => {
            let seen = link.seen(&manifest);
            let metadata = cargo_metadata(&cargo, &dir, &seen)?;
            (seen, metadata)
        }
        None => (manifest.clone(), metadata),
    };
    let this = &manifest_seen;
    let package = metadata
        .packages
        .iter()
        .find(|p| {
            p.source.is_none()
                && (p.manifest_path == *this
                    || same_file_key(&p.manifest_path) == same_file_key(this))
        })
        .ok_or_else(|| {
            Failure::Usage(format!(
                "{} is a cargo workspace, not a rule crate: pass the folder of one of its \
                 members",
                manifest.display()
            ))
        })?;
    let lib = package
        .targets
        .iter()
        .find(|t| t.crate_types.iter().any(|c| c == "cdylib"))
        .ok_or_else(|| {
            Failure::Usage(format!(
                "{} builds no WebAssembly component: add `crate-type = [\"cdylib\", \"rlib\"]` \
                 under `[lib]` in its Cargo.toml",
                manifest.display()
            ))
        })?
        .name
        .replace('-', "_");

    let rustflags = remap_flags(&metadata, cargo_home(&metadata).as_deref());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--lib",
            "--locked",
            "--target",
            TARGET,
        ])
        .arg("--manifest-path")
        .arg(&manifest_seen)
        .current_dir(&dir)
        .env("CARGO_ENCODED_RUSTFLAGS", join_encoded(&rustflags))
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Failure::Runtime(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Failure::Runtime(format!(
            "`cargo build --release --target {TARGET} --locked` failed ({status}); its \
             messages are above. Fix the crate (or, if cargo says the lock file needs \
             updating, run `cargo update` and commit Cargo.lock) and run `ldap2ftrack rules \
             build` again"
        )));
    }
    let built = metadata
        .target_directory
        .join(TARGET)
        .join("release")
        .join(format!("{lib}.wasm"));
    let built = match &link {
        Some(link) => link.real(&built),
        None => built,
    };
    drop(link);
    match out {
        Some(out) => {
            copy_to(&built, out)?;
            Ok((out.to_path_buf(), toolchain, reproducible))
        }
        None => Ok((built, toolchain, reproducible)),
    }
}

/// Creates the workspace's `Cargo.lock` when it has none: the lock file is part of the
/// source, created once and then only used (`--locked`).
fn ensure_lock_file(cargo: &OsString, dir: &Path, manifest: &Path) -> Result<(), Failure> {
    let root = capture(
        Command::new(cargo)
            .args(["locate-project", "--workspace", "--message-format", "plain"])
            .arg("--manifest-path")
            .arg(manifest)
            .current_dir(dir),
        "cargo locate-project",
    )?;
    let root_manifest = PathBuf::from(root.trim());
    let lock = root_manifest.with_file_name("Cargo.lock");
    if lock.is_file() {
        return Ok(());
    }
    eprintln!(
        "creating {} (commit it: `rules build` builds with exactly these dependencies)",
        lock.display()
    );
    let generate = |offline: bool| {
        Command::new(cargo)
            .arg("generate-lockfile")
            .args(offline.then_some("--offline"))
            .arg("--manifest-path")
            .arg(&root_manifest)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .map_err(|e| Failure::Runtime(format!("cannot run cargo: {e}")))
    };
    let mut status = generate(false)?;
    if !status.success() {
        // No network: what cargo already has may do.
        eprintln!("retrying with the crates cargo has already downloaded (--offline)");
        status = generate(true)?;
    }
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Runtime(format!(
            "`cargo generate-lockfile` failed ({status}); its messages are above. Fix {} (or \
             the network) and run `ldap2ftrack rules build` again",
            manifest.display()
        )))
    }
}

/// `cargo metadata` for the crate at `manifest` (as cargo is to see it).
fn cargo_metadata(cargo: &OsString, dir: &Path, manifest: &Path) -> Result<CargoMetadata, Failure> {
    let text = capture(
        Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .args(["--filter-platform", TARGET])
            .arg("--manifest-path")
            .arg(manifest)
            .current_dir(dir),
        "cargo metadata",
    )?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::Runtime(format!("cannot read `cargo metadata` output: {e}")))
}

/// The deepest folder holding `workspace` and every one of `others`, unless that is the
/// file system's root.
fn common_ancestor(workspace: &Path, others: &[PathBuf]) -> Option<PathBuf> {
    let mut common = workspace.to_path_buf();
    for other in others {
        while !other.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    common.parent().is_some().then_some(common)
}

/// `/tmp/ldap2ftrack-build/src` pointing at one build's source folder, held (with the lock
/// file beside it) until dropped, when the link is removed.
struct CanonicalLink {
    /// The link's path.
    link: PathBuf,
    /// The real folder it points at.
    target: PathBuf,
    /// Holds the lock while the link is ours.
    _lock: std::fs::File,
}

impl CanonicalLink {
    /// Points the link at `target`, waiting for any other build of this user using it.
    ///
    /// The folder must be ours and closed to others (created 0700 when missing): whoever
    /// can write into it could point the link at their own source between our link and
    /// `cargo build`, and have us build it (and run its `build.rs`), or hold the lock for
    /// ever. A folder of another user is refused, and the caller builds in place.
    #[cfg(unix)]
    fn set(target: &Path) -> Result<CanonicalLink, String> {
        let parent = Path::new(CANONICAL_PARENT);
        crate::private_files::ensure_private_dir(parent)?;
        let lock_path = parent.join("lock");
        let lock = crate::private_files::open_lock(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            eprintln!(
                "waiting for another `ldap2ftrack rules build` ({} is locked)",
                lock_path.display()
            );
            lock.lock()
                .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        }
        let link = parent.join("src");
        let fresh = parent.join(format!("src.{}", std::process::id()));
        let _ = std::fs::remove_file(&fresh);
        std::os::unix::fs::symlink(target, &fresh)
            .map_err(|e| format!("cannot create the link {}: {e}", fresh.display()))?;
        std::fs::rename(&fresh, &link).map_err(|e| {
            let _ = std::fs::remove_file(&fresh);
            format!("cannot replace {}: {e}", link.display())
        })?;
        Ok(CanonicalLink {
            link,
            target: target.to_path_buf(),
            _lock: lock,
        })
    }

    /// Symbolic links are a Unix affair here: elsewhere, build in place.
    #[cfg(not(unix))]
    fn set(_target: &Path) -> Result<CanonicalLink, String> {
        Err("symbolic links are only used on Unix".into())
    }

    /// `path` (below the real folder) as cargo sees it through the link.
    fn seen(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.target)
            .map_or_else(|_| path.to_path_buf(), |rest| self.link.join(rest))
    }

    /// `path` as cargo saw it, in the real folder (the link goes away).
    fn real(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.link)
            .map_or_else(|_| path.to_path_buf(), |rest| self.target.join(rest))
    }
}

impl Drop for CanonicalLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
    }
}

/// `rustc X.Y.Z` after checking that cargo, rustc and the wasm32-wasip2 target are there
/// (run in `dir`, so a `rust-toolchain.toml` there picks the toolchain, as for the build).
fn rust_toolchain(dir: &Path, cargo: &OsString, rustc: &OsString) -> Result<String, Failure> {
    let check = |tool: &OsString, args: &[&str]| {
        run_tool(Command::new(tool).args(args).current_dir(dir)).map_err(|e| match e {
            ToolError::Missing => Failure::Usage(format!(
                "{} was not found (it builds Rust rule modules): install Rust with \
                 `{INSTALL_RUST}`, then `rustup target add {TARGET}`, and put ~/.cargo/bin on \
                 PATH",
                Path::new(tool).display()
            )),
            ToolError::Failed(message) => Failure::Usage(format!(
                "`{} {}` failed: {message}; fix the Rust installation (`rustup show` says which \
                 toolchain is used here) and run `ldap2ftrack rules build` again",
                Path::new(tool).display(),
                args.join(" ")
            )),
        })
    };
    check(cargo, &["--version"])?;
    let version = check(rustc, &["-vV"])?;
    let release = version
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .unwrap_or("(unknown version)")
        .to_string();
    let libdir = check(rustc, &["--print", "target-libdir", "--target", TARGET])?;
    if !Path::new(libdir.trim()).is_dir() {
        return Err(Failure::Usage(format!(
            "the Rust target {TARGET} is not installed for rustc {release}: run `rustup target \
             add {TARGET}`"
        )));
    }
    Ok(format!("rustc {release}"))
}

/// Why a quick tool command gave no answer.
enum ToolError {
    /// It is not installed (not on PATH, or not at the path given).
    Missing,
    /// It ran and failed: its stderr.
    Failed(String),
}

/// Runs a quick tool command; its stdout.
fn run_tool(cmd: &mut Command) -> Result<String, ToolError> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(ToolError::Failed(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ToolError::Missing),
        Err(e) => Err(ToolError::Failed(e.to_string())),
    }
}

/// Runs `cmd` and returns its stdout; a failure carries its stderr.
fn capture(cmd: &mut Command, what: &str) -> Result<String, Failure> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::Runtime(format!("cannot run {what}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::Runtime(format!(
            "`{what}` failed ({}):\n{}Fix what it says (a lock file that needs updating: run \
             `cargo update` and commit Cargo.lock) and run `ldap2ftrack rules build` again",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What `cargo metadata` says that the build needs.
#[derive(Debug, Deserialize)]
struct CargoMetadata {
    packages: Vec<CargoPackage>,
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

impl CargoMetadata {
    /// The folders of the path packages (the workspace's members and path dependencies).
    fn path_packages(&self) -> impl Iterator<Item = &Path> {
        self.packages
            .iter()
            .filter(|p| p.source.is_none())
            .filter_map(|p| p.manifest_path.parent())
    }
}

#[derive(Debug, Deserialize)]
struct CargoPackage {
    name: String,
    version: String,
    /// `None` for a path package (one of ours, not from a registry or git).
    source: Option<String>,
    manifest_path: PathBuf,
    targets: Vec<CargoTarget>,
}

#[derive(Debug, Deserialize)]
struct CargoTarget {
    name: String,
    crate_types: Vec<String>,
}

/// Cargo's home (registry and git sources), where this build's dependencies come from:
/// the folder above `registry/` or `git/` in a dependency's path (so also when `$HOME` is
/// not set and cargo found its home another way), else `$CARGO_HOME`, else `~/.cargo`.
fn cargo_home(metadata: &CargoMetadata) -> Option<PathBuf> {
    let from_dependencies = metadata
        .packages
        .iter()
        .filter(|p| p.source.is_some())
        .find_map(|p| {
            p.manifest_path.ancestors().find_map(|a| {
                let name = a.file_name()?;
                let cache = name == "registry" || name == "git";
                cache.then(|| a.parent().map(Path::to_path_buf)).flatten()
            })
        });
    from_dependencies
        .or_else(|| std::env::var_os("CARGO_HOME").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// The `--remap-path-prefix` flags (see [`build_rust`]): the workspace, each path
/// package outside it, the target folder and cargo's home, each to a fixed name. rustc
/// applies the last matching prefix, so they go shortest first: a folder inside another
/// (the target folder inside the workspace) gets its own name.
fn remap_flags(metadata: &CargoMetadata, cargo_home: Option<&Path>) -> Vec<OsString> {
    let mut remaps: Vec<(PathBuf, String)> = vec![
        (
            metadata.workspace_root.clone(),
            "/ldap2ftrack-build/src".into(),
        ),
        (
            metadata.target_directory.clone(),
            "/ldap2ftrack-build/target".into(),
        ),
    ];
    for p in metadata.packages.iter().filter(|p| p.source.is_none()) {
        let Some(root) = p.manifest_path.parent() else {
            continue;
        };
        if !root.starts_with(&metadata.workspace_root) {
            remaps.push((
                root.to_path_buf(),
                format!("/ldap2ftrack-build/deps/{}-{}", p.name, p.version),
            ));
        }
    }
    if let Some(home) = cargo_home {
        remaps.push((home.to_path_buf(), "/cargo".into()));
    }
    // The same folders through symbolic links resolved, when that differs.
    let resolved: Vec<(PathBuf, String)> = remaps
        .iter()
        .filter_map(|(from, to)| {
            let real = std::fs::canonicalize(from).ok()?;
            (real != *from).then(|| (real, to.clone()))
        })
        .collect();
    remaps.extend(resolved);
    remaps.sort_by_key(|(from, _)| from.as_os_str().len());
    remaps
        .into_iter()
        .map(|(from, to)| {
            let mut flag = OsString::from("--remap-path-prefix=");
            flag.push(from.as_os_str());
            flag.push("=");
            flag.push(to);
            flag
        })
        .collect()
}

/// Flags as `CARGO_ENCODED_RUSTFLAGS` wants them: separated by 0x1f, so paths may hold
/// spaces.
fn join_encoded(flags: &[OsString]) -> OsString {
    let mut joined = OsString::new();
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            joined.push("\u{1f}");
        }
        joined.push(flag);
    }
    joined
}

/// A path to compare files by: resolved when possible.
fn same_file_key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Copies the built module to `out` (for `--out`), creating its folder.
fn copy_to(module: &Path, out: &Path) -> Result<(), Failure> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Failure::Runtime(format!("cannot create {} for --out: {e}", parent.display()))
        })?;
    }
    std::fs::copy(module, out).map_err(|e| {
        Failure::Runtime(format!(
            "cannot copy {} to {}: {e}",
            module.display(),
            out.display()
        ))
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Python

/// Builds the Python package in `dir` with componentize-py; the module's path and the tool
/// (`componentize-py 0.25.1`).
fn build_python(
    dir: &Path,
    sdk: Option<&Path>,
    out: Option<&Path>,
) -> Result<(PathBuf, String), Failure> {
    if !dir.join("app.py").is_file() {
        return Err(Failure::Usage(format!(
            "{} has no app.py: a Python rule module's entry is app.py, ending with \
             `Hooks = export(YourRules)` (`ldap2ftrack rules new NAME --lang python` makes one)",
            dir.display()
        )));
    }
    let sdk = sdk.map_or_else(default_sdk, Path::to_path_buf);
    if let Some(missing) = python_missing_in_sdk(&sdk) {
        return Err(Failure::Usage(format!(
            "the rules SDK is not at {} (no {missing} there); pass --sdk with the path of the \
             `rules-sdk` folder of an ldap2ftrack checkout",
            sdk.display()
        )));
    }
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (dir_abs, sdk) = (absolute(dir), absolute(&sdk));
    let module = match out {
        Some(out) => absolute(out),
        None => dir_abs
            .join("dist")
            .join(format!("{}.wasm", python_module_name(&dir_abs))),
    };
    if let Some(parent) = module.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", parent.display())))?;
    }
    let tool = find_componentize_py(&dir_abs)?;
    let version = run_tool(Command::new(&tool).arg("--version"))
        .map(|v| v.trim().to_string())
        .map_err(|e| {
            let why = match e {
                ToolError::Missing => "is not there".to_string(),
                ToolError::Failed(m) => format!("does not run: {m}"),
            };
            Failure::Usage(format!(
                "componentize-py ({}) {why}; install it with `pip install {COMPONENTIZE_PY}` \
                 (in a venv), or point {COMPONENTIZE_PY_ENV} at a working one",
                tool.display()
            ))
        })?;
    let status = Command::new(&tool)
        .arg("-d")
        .arg(sdk.join("wit"))
        .args(["-w", "rule", "componentize", "--stub-wasi"])
        .arg("-p")
        .arg(&dir_abs)
        .arg("-p")
        .arg(python_sdk_src(&sdk))
        .arg("app")
        .arg("-o")
        .arg(&module)
        .current_dir(&dir_abs)
        // Its own Rust backtrace says nothing about the rule; the Python error comes first.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Failure::Runtime(format!("cannot run {}: {e}", tool.display())))?;
    if !status.success() {
        return Err(Failure::Runtime(format!(
            "componentize-py failed ({status}); its messages are above. Fix {} (`pytest` \
             finds most mistakes natively) and run `ldap2ftrack rules build` again",
            dir.join("app.py").display()
        )));
    }
    Ok((module, version))
}

/// The module file's name: `[project] name` of `pyproject.toml`, else the folder's name,
/// as a Python identifier (`acme-users` → `acme_users`).
fn python_module_name(dir: &Path) -> String {
    let from_project = std::fs::read_to_string(dir.join("pyproject.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("project")?.get("name")?.as_str().map(str::to_string));
    let name = from_project
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "rule".to_string()
    } else {
        name
    }
}

/// componentize-py: `$LDAP2FTRACK_COMPONENTIZE_PY`, else `componentize-py` on `PATH`, in the
/// active venv (`$VIRTUAL_ENV`), or in a `.venv` / `venv` in `dir` or a folder above it.
fn find_componentize_py(dir: &Path) -> Result<PathBuf, Failure> {
    if let Some(tool) = std::env::var_os(COMPONENTIZE_PY_ENV).filter(|v| !v.is_empty()) {
        let tool = PathBuf::from(tool);
        return if tool.is_file() {
            Ok(tool)
        } else {
            Err(Failure::Usage(format!(
                "{COMPONENTIZE_PY_ENV} names {}, which is not a file: point it at the \
                 componentize-py executable (e.g. .venv/bin/componentize-py), or install it \
                 with `pip install {COMPONENTIZE_PY}`",
                tool.display()
            )))
        };
    }
    const EXE: &str = if cfg!(windows) {
        "componentize-py.exe"
    } else {
        "componentize-py"
    };
    const BIN: &str = if cfg!(windows) { "Scripts" } else { "bin" };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(EXE));
    let in_venv = std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join(BIN).join(EXE));
    let nearby = dir.ancestors().flat_map(|d| {
        [".venv", "venv"]
            .into_iter()
            .map(move |v| d.join(v).join(BIN).join(EXE))
    });
    on_path
        .chain(in_venv)
        .chain(nearby)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Failure::Usage(format!(
                "componentize-py was not found (looked at ${COMPONENTIZE_PY_ENV}, PATH, \
                 $VIRTUAL_ENV and .venv folders from {} up): install it with `pip install \
                 {COMPONENTIZE_PY}` (in a venv: `python3 -m venv .venv && .venv/bin/pip install \
                 {COMPONENTIZE_PY}`), or point {COMPONENTIZE_PY_ENV} at it",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(workspace: &str, target: &str, packages: &[(&str, Option<&str>)]) -> CargoMetadata {
        CargoMetadata {
            workspace_root: workspace.into(),
            target_directory: target.into(),
            packages: packages
                .iter()
                .map(|(manifest, source)| CargoPackage {
                    name: "p".into(),
                    version: "1.0.0".into(),
                    source: source.map(str::to_string),
                    manifest_path: manifest.into(),
                    targets: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn remaps_go_shortest_first_and_skip_what_is_inside_the_workspace() {
        let m = metadata(
            "/w/ex",
            "/w/ex/target",
            &[
                ("/w/ex/a/Cargo.toml", None),
                ("/w/sdk/Cargo.toml", None),
                ("/c/registry/src/x/Cargo.toml", Some("registry+https://x")),
            ],
        );
        let flags: Vec<String> = remap_flags(&m, Some(Path::new("/home/u/.cargo")))
            .into_iter()
            .map(|f| f.into_string().unwrap())
            .collect();
        assert_eq!(
            flags,
            [
                "--remap-path-prefix=/w/ex=/ldap2ftrack-build/src",
                "--remap-path-prefix=/w/sdk=/ldap2ftrack-build/deps/p-1.0.0",
                "--remap-path-prefix=/w/ex/target=/ldap2ftrack-build/target",
                "--remap-path-prefix=/home/u/.cargo=/cargo",
            ]
        );
        let joined = join_encoded(&[OsString::from("a b"), OsString::from("c")]);
        assert_eq!(joined, OsString::from("a b\u{1f}c"));
    }

    #[test]
    fn detects_the_language_or_says_what_it_wants() {
        let dir = tempfile::tempdir().unwrap();
        let Err(Failure::Usage(m)) = detect(dir.path()) else {
            panic!()
        };
        assert!(m.contains("neither a Cargo.toml"), "{m}");
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Language::Python);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Language::Rust);
        assert!(matches!(
            detect(&dir.path().join("nope")),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn python_module_names() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("Acme-Users");
        std::fs::create_dir(&pkg).unwrap();
        assert_eq!(python_module_name(&pkg), "acme_users");
        std::fs::write(
            pkg.join("pyproject.toml"),
            "[project]\nname = \"studio-x\"\n",
        )
        .unwrap();
        assert_eq!(python_module_name(&pkg), "studio_x");
    }
}
