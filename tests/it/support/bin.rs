//! Running the `ldap2ftrack` binary under test with a clean, explicit environment.
//!
//! Every run starts from an empty environment: only `PATH` and the few variables that tools
//! around the test need (backtraces, coverage) come through from the developer's shell, so an
//! `FTRACK_API_KEY`, `LDAP2FTRACK_LOG` or `XDG_CACHE_HOME` set there cannot change a result.
//! On top of that each run gets `NO_COLOR=1` and a compile cache for rule modules below
//! `target/tmp` (never the developer's `~/.cache`); a test passes anything else it needs
//! (`FTRACK_API_KEY`, `LDAP2FTRACK_TODAY`, a bind password) to the child explicitly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Variables passed through from the test's own environment: they change how the child is
/// observed (backtraces, coverage profiles), never what it does.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// The binary this test crate was built with.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ldap2ftrack"))
}

/// The compile cache for rule modules given to every run (`LDAP2FTRACK_CACHE_DIR`): one
/// folder below cargo's `target/tmp`, shared by the test binaries and kept between runs, so a
/// module (the 18 MB Python one among them) is compiled once, not once per test.
pub fn rule_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("rule-cache")
}

/// Clears `cmd`'s environment down to the test baseline (see the module comment).
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear();
    for name in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.env("NO_COLOR", "1")
        .env("LDAP2FTRACK_CACHE_DIR", rule_cache_dir())
}

/// `ldap2ftrack`, to be run in `dir`, with the clean environment; add arguments and any
/// variable the test needs.
pub fn ldap2ftrack(dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir);
    clean_env(&mut cmd);
    cmd
}

/// Runs `ldap2ftrack ARGS` in `dir` with the clean environment plus `env`, and waits for it.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = ldap2ftrack(dir);
    cmd.args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", binary().display()))
}

/// Output bytes as text, for assertions and their messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The repository root (the crate's manifest folder).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A private copy of the bundled demo in a fresh temporary folder: the shipped `sync.toml`
/// and `tests/demo/*`, laid out as in the checkout, so the shipped configuration runs there
/// unchanged and keeps its emulator state (`target/demo/`), lock and journal in the copy.
/// No test reads or writes the demo state of the checkout, which `cargo run -- apply` leaves.
pub fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder for the demo");
    std::fs::copy(root().join("sync.toml"), dir.path().join("sync.toml"))
        .expect("copy the shipped sync.toml");
    copy_dir(&root().join("tests/demo"), &dir.path().join("tests/demo"));
    dir
}

/// Copies the folder `from` to `to`, subfolders included, creating `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&source, &target);
        } else {
            std::fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
        }
    }
}

/// The `[[rules]]` entry a `rules build`, `publish` or `inspect` printed: from its first
/// `# sync.toml` comment (or `[[rules]]`) to the end.
pub fn rules_snippet(stdout: &str) -> &str {
    let start = stdout
        .find("# sync.toml")
        .or_else(|| stdout.find("[[rules]]"))
        .unwrap_or_else(|| panic!("no [[rules]] snippet in:\n{stdout}"));
    &stdout[start..]
}

/// Appends `snippet` as printed to the demo copy's sync.toml in `dir` and runs `check` there
/// with `env`, which must accept it; `check`'s report.
pub fn check_accepts(dir: &Path, snippet: &str, env: &[(&str, &str)]) -> String {
    let config = dir.join("sync.toml");
    let mut text = std::fs::read_to_string(&config).expect("the demo's sync.toml");
    text.push('\n');
    text.push_str(snippet);
    std::fs::write(&config, &text).expect("write sync.toml");
    let out = run(dir, &["check"], env);
    assert!(
        out.status.success(),
        "check refused the printed snippet (exit {:?}):\n{}\n--- sync.toml ---\n{text}",
        out.status.code(),
        self::text(&out.stderr)
    );
    self::text(&out.stdout)
}

/// The suite's Python (`LDAP2FTRACK_PYTHON`, the venv tests/run.sh makes) with the official
/// `ftrack-python-api` client pointed at `server` as `user`/`key`, warnings off and no event
/// plugins; add `-c SCRIPT` and its arguments. Fails saying how to get it when it is not set.
pub fn official_client(server: &str, user: &str, key: &str) -> Command {
    let python = std::env::var_os("LDAP2FTRACK_PYTHON").unwrap_or_else(|| {
        panic!(
            "LDAP2FTRACK_PYTHON is not set: run `bash tests/run.sh` (it creates .venv with \
             ftrack-python-api), or point it at a Python with `pip install ftrack-python-api`"
        )
    });
    let mut cmd = Command::new(python);
    cmd.args(["-W", "ignore"])
        .env("FTRACK_SERVER", server)
        .env("FTRACK_API_USER", user)
        .env("FTRACK_API_KEY", key)
        .env_remove("FTRACK_EVENT_PLUGIN_PATH")
        .stdin(std::process::Stdio::null());
    cmd
}
