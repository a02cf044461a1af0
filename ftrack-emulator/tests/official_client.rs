//! Runs the official `ftrack-python-api` client (pytest, tests/python/) against an
//! in-process emulator. Needs `LDAP2FTRACK_PYTHON` pointing at a Python with
//! `ftrack-python-api` and `pytest` installed (`bash tests/run.sh` creates `.venv`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hung client or server must fail the test, not the CI run.
const TIMEOUT_SECS: u64 = 300;

/// Run pytest with output captured in temp files; kill it after [`TIMEOUT_SECS`].
fn run_with_timeout(python: &str, tests: &Path, url: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("ftrack-emulator-pytest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(["-W", "ignore::DeprecationWarning"])
        .arg(tests)
        .env("FTRACK_SERVER", url)
        .env("FTRACK_API_USER", "pytest-admin")
        .env("FTRACK_API_KEY", "pytest-key")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("FTRACK_EVENT_PLUGIN_PATH")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for pytest") {
            break st.code();
        }
        if start.elapsed() > Duration::from_secs(TIMEOUT_SECS) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (status, stdout, stderr)
}

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
    let out = tokio::task::spawn_blocking(move || run_with_timeout(&python, &tests, &url))
        .await
        .expect("pytest runner");
    let (status, stdout, stderr) = out;
    assert!(
        status == Some(0),
        "pytest failed (exit {status:?}; None = killed after {TIMEOUT_SECS} s):\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    emu.shutdown().await;
}
