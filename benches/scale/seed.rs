//! The baseline a first apply is compared with: `seed_style.py`, the sync a studio writes
//! by hand with the official ftrack client (one query and one commit per user), run on the
//! same directory into the same empty ftrack.

use crate::org::API_KEY;
use crate::slapd::SYNC_PASSWORD;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Python with `ftrack_api` and `ldap3`: `LDAP2FTRACK_PYTHON`, else the checkout's
/// `.venv` (both set up by `bash tests/run.sh`).
fn python() -> PathBuf {
    let python = std::env::var_os("LDAP2FTRACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import ftrack_api, ldap3"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import ftrack_api and ldap3: run `bash tests/run.sh` once (it creates .venv with both), or set LDAP2FTRACK_PYTHON",
        python.display()
    );
    python
}

/// Runs the seed-style script with the bench's sync.toml; its wall time in seconds.
pub fn run(dir: &Path) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scale/seed_style.py");
    let started = Instant::now();
    let output = Command::new(python())
        .arg(script)
        .arg(dir.join("sync.toml"))
        .env("BENCH_LDAP_PASSWORD", SYNC_PASSWORD)
        .env("FTRACK_API_KEY", API_KEY)
        .output()
        .expect("run the seed-style script");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "the seed-style script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "seed-style script: {} in {wall:.1} s",
        String::from_utf8_lossy(&output.stdout).trim()
    );
    wall
}
