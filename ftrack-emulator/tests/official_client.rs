//! Runs the official `ftrack-python-api` client (pytest, tests/python/) against an
//! in-process emulator. Needs `LDAP2FTRACK_PYTHON` pointing at a Python with
//! `ftrack-python-api` and `pytest` installed (`bash tests/run.sh` creates `.venv`).

use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_works_against_the_emulator() {
    let python = match std::env::var("LDAP2FTRACK_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "LDAP2FTRACK_PYTHON is not set. Run `bash tests/run.sh` (it creates .venv with \
             ftrack-python-api and pytest and sets it), or set LDAP2FTRACK_PYTHON to a Python \
             that has `pip install ftrack-python-api pytest`."
        ),
    };
    let emu = ftrack_emulator::spawn(ftrack_emulator::EmulatorConfig::new(
        "pytest-admin",
        "pytest-key",
    ))
    .await
    .expect("emulator starts");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let url = emu.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .args(["-W", "ignore::DeprecationWarning"])
            .arg(&tests)
            .env("FTRACK_SERVER", url)
            .env("FTRACK_API_USER", "pytest-admin")
            .env("FTRACK_API_KEY", "pytest-key")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("FTRACK_EVENT_PLUGIN_PATH")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .expect("pytest runner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
    emu.shutdown().await;
}
