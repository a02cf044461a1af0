//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution
//! registry, installed by `tests/run.sh`), started on a free loopback port with its storage in
//! a temporary directory, stopped by its own PID when the [`Registry`] is dropped.
//!
//! Plain HTTP on loopback, as ldap2ftrack allows for a registry on this machine. [`Registry::get`]
//! reads from it with a hand-written HTTP/1.1 GET, so a test can look at what was pushed
//! without going through the client under test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry. Dropping it stops the process and removes its storage.
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    for candidate in ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("docker-registry is not installed; run `bash tests/run.sh` (or `apt-get install docker-registry`)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Registry {
    /// Writes a config (filesystem storage in a temporary directory, `127.0.0.1:PORT`),
    /// starts `docker-registry serve CONFIG` and waits until `GET /v2/` answers 200.
    pub fn start() -> Registry {
        let binary = binary();
        let mut dir = tempfile::tempdir().expect("a folder for the registry");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n",
                    storage.display()
                ),
            )
            .unwrap();
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("registry.log")).unwrap(),
                ))
                .spawn()
                .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
            let mut registry = Registry {
                dir,
                port,
                child: Some(child),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Some(child) = registry.child.as_mut() {
                    if child.try_wait().expect("registry status").is_some() {
                        break; // exited: port taken meanwhile, or a bad config
                    }
                }
                if registry
                    .try_get("/v2/", "")
                    .is_some_and(|(status, _)| status == 200)
                {
                    return registry;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = std::fs::read_to_string(registry.dir.path().join("registry.log"))
                .unwrap_or_default();
            registry.stop();
            eprintln!("docker-registry on port {port} did not come up; retrying. Its log:\n{log}");
            dir = registry.take_dir();
        }
        panic!("docker-registry did not start (see the logs above)");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file holding a blob (`sha256:…` or bare hex) in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `GET path` with this `Accept` header: the status and the body. Panics when the
    /// registry cannot be reached.
    pub fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        self.try_get(path, accept)
            .unwrap_or_else(|| panic!("GET {path} from the registry failed"))
    }

    fn try_get(&self, path: &str, accept: &str) -> Option<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let accept = if accept.is_empty() {
            String::new()
        } else {
            format!("Accept: {accept}\r\n")
        };
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{accept}Connection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Some((status, dechunk(&body)));
        }
        Some((status, body))
    }

    /// Stops the registry (by its own PID); its storage stays until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
