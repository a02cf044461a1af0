//! An HTTPS server for tests: `openssl s_server -HTTP` on a free loopback port, presenting the
//! test CA's certificate for localhost (made by `support::slapd`), which no system store
//! trusts. With `-HTTP` each file of its folder is sent as a complete HTTP response, so a test
//! writes exactly the answer it wants (a module, a redirect). Stopped by its own PID on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct HttpsServer {
    _dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

/// A complete HTTP/1.0 response: status line (`200 OK`), headers, body.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.0 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

impl HttpsServer {
    /// Serves each `(path, complete response)` at `https://localhost:PORT/path`.
    pub fn start(responses: &[(&str, Vec<u8>)]) -> HttpsServer {
        let (_, cert, key) = super::slapd::test_ca_and_server();
        let dir = tempfile::tempdir().expect("a folder for the https server");
        for (path, bytes) in responses {
            std::fs::write(dir.path().join(path), bytes).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args(["-HTTP", "-http_server_binmode", "-quiet"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl not found: run `bash tests/run.sh`, which installs it");
        let server = HttpsServer {
            _dir: dir,
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `https://localhost:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}/{path}", self.port)
    }

    /// The CA that signed the server's certificate (for `SSL_CERT_FILE` or a `ca_file`).
    pub fn ca() -> PathBuf {
        super::slapd::test_ca_and_server().0
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
