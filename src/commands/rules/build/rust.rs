//! The reproducible Rust build of a rule crate: `cargo build --release --target
//! wasm32-wasip2 --locked` through one canonical path, with every absolute path remapped, so
//! the module's bytes depend on the source, the Rust version and the target only ([`build`]
//! says what made them differ and what fixed each).

use super::{copy_to, run_tool, ToolError};
use crate::failure::Failure;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Rust target of rule modules.
const TARGET: &str = "wasm32-wasip2";
/// How the error for a missing Rust says to install it.
const INSTALL_RUST: &str = "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh";

/// The fixed path Rust modules are built through (see [`build`]): a symbolic link to
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
pub(super) fn build(dir: &Path, out: Option<&Path>) -> Result<(PathBuf, String, bool), Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let toolchain = rust_toolchain(dir, &cargo, &rustc)?;
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Failure::Usage(format!("cannot resolve {}: {e}", dir.display())))?;
    let manifest = dir.join("Cargo.toml");
    ensure_lock_file(&cargo, &dir, &manifest)?;

    let metadata = read_layout(&cargo, &dir, &manifest)?;
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
            let metadata = read_layout(&cargo, &dir, &seen)?;
            (seen, metadata)
        }
        None => (manifest.clone(), metadata),
    };
    let this = &manifest_seen;
    let package = metadata
        .packages
        .iter()
        .find(|p| {
            p.local
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
        .cdylib
        .as_deref()
        .ok_or_else(|| {
            Failure::Usage(format!(
                "{} builds no WebAssembly component: add `crate-type = [\"cdylib\", \"rlib\"]` \
                 under `[lib]` in its Cargo.toml",
                manifest.display()
            ))
        })?
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

/// `cargo metadata` for the crate at `manifest` (as cargo is to see it), reduced to what the
/// build needs.
fn read_layout(cargo: &OsString, dir: &Path, manifest: &Path) -> Result<Layout, Failure> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .cargo_path(cargo)
        .manifest_path(manifest)
        .current_dir(dir)
        .other_options(
            ["--locked", "--filter-platform", TARGET]
                .map(String::from)
                .to_vec(),
        )
        .exec()
        .map_err(|e| match e {
            cargo_metadata::Error::CargoMetadata { stderr } => Failure::Runtime(format!(
                "`cargo metadata` failed:\n{stderr}Fix what it says (a lock file that needs \
                 updating: run `cargo update` and commit Cargo.lock) and run `ldap2ftrack \
                 rules build` again"
            )),
            other => Failure::Runtime(format!("cannot read `cargo metadata`: {other}")),
        })?;
    Ok(Layout::from(metadata))
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
#[derive(Debug)]
struct Layout {
    packages: Vec<LayoutPackage>,
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

#[derive(Debug)]
struct LayoutPackage {
    name: String,
    version: String,
    /// A path package (one of ours), not from a registry or git.
    local: bool,
    manifest_path: PathBuf,
    /// The name of its `cdylib` target, the one that becomes a component.
    cdylib: Option<String>,
}

impl From<cargo_metadata::Metadata> for Layout {
    fn from(metadata: cargo_metadata::Metadata) -> Layout {
        let packages = metadata
            .packages
            .into_iter()
            .map(|p| LayoutPackage {
                name: p.name.to_string(),
                version: p.version.to_string(),
                local: p.source.is_none(),
                manifest_path: p.manifest_path.into_std_path_buf(),
                cdylib: p
                    .targets
                    .into_iter()
                    .find(|t| t.crate_types.contains(&cargo_metadata::CrateType::CDyLib))
                    .map(|t| t.name),
            })
            .collect();
        Layout {
            packages,
            workspace_root: metadata.workspace_root.into_std_path_buf(),
            target_directory: metadata.target_directory.into_std_path_buf(),
        }
    }
}

impl Layout {
    /// The folders of the path packages (the workspace's members and path dependencies).
    fn path_packages(&self) -> impl Iterator<Item = &Path> {
        self.packages
            .iter()
            .filter(|p| p.local)
            .filter_map(|p| p.manifest_path.parent())
    }
}

/// Cargo's home (registry and git sources), where this build's dependencies come from:
/// the folder above `registry/` or `git/` in a dependency's path (so also when `$HOME` is
/// not set and cargo found its home another way), else `$CARGO_HOME`, else `~/.cargo`.
fn cargo_home(metadata: &Layout) -> Option<PathBuf> {
    let from_dependencies = metadata.packages.iter().filter(|p| !p.local).find_map(|p| {
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

/// The `--remap-path-prefix` flags (see [`build`]): the workspace, each path
/// package outside it, the target folder and cargo's home, each to a fixed name. rustc
/// applies the last matching prefix, so they go shortest first: a folder inside another
/// (the target folder inside the workspace) gets its own name.
fn remap_flags(metadata: &Layout, cargo_home: Option<&Path>) -> Vec<OsString> {
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
    for p in metadata.packages.iter().filter(|p| p.local) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(workspace: &str, target: &str, packages: &[(&str, Option<&str>)]) -> Layout {
        Layout {
            workspace_root: workspace.into(),
            target_directory: target.into(),
            packages: packages
                .iter()
                .map(|(manifest, source)| LayoutPackage {
                    name: "p".into(),
                    version: "1.0.0".into(),
                    local: source.is_none(),
                    manifest_path: manifest.into(),
                    cdylib: None,
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
}
