//! A tiny HTTP/1.1 server on a loopback address, for tests that need a server to answer in one
//! precise way (a redirect, a token service on another host) and to show what it was sent.
//!
//! It records every request (method, target, headers) and answers with the test's closure.
//! One thread, one connection at a time, `Connection: close`; stopped when dropped. Any
//! address in 127.0.0.0/8 can be used, so "another host" needs no network set-up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// A redirect with this status to `location`.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::new(status).header("Location", location)
    }
}

type Answer = dyn Fn(&Request) -> Reply + Send + Sync;

/// A listening socket, not yet answering: its URL is known before the closure is written.
pub struct Listener {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Binds a free port on `ip` (e.g. "127.0.0.1", "127.0.0.2").
pub fn listen(ip: &str) -> Listener {
    let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    let addr = listener.local_addr().unwrap();
    Listener { listener, addr }
}

impl Listener {
    /// `http://IP:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts answering every request with `answer`.
    pub fn serve(self, answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        let answer: Arc<Answer> = Arc::new(answer);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        self.listener.set_nonblocking(true).unwrap();
        let thread = {
            let (seen, stop, listener) = (seen.clone(), stop.clone(), self.listener);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => handle(stream, &*answer, &seen),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Server {
            addr: self.addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// `http://IP:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `IP:PORT`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (head, then a body of Content-Length bytes), records it, answers it and
/// closes the connection. Recorded first, so the client never sees an answer before the test
/// can see the request.
fn handle(stream: TcpStream, answer: &Answer, seen: &Mutex<Vec<Request>>) {
    let _ = answer_one(stream, answer, seen);
}

fn answer_one(mut stream: TcpStream, answer: &Answer, seen: &Mutex<Vec<Request>>) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let request = Request {
        method,
        target,
        headers,
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    seen.lock().unwrap().push(request.clone());
    let reply = answer(&request);
    let mut out = format!("HTTP/1.1 {} Status\r\n", reply.status);
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let mut bytes = out.into_bytes();
    if request.method != "HEAD" {
        bytes.extend_from_slice(&reply.body);
    }
    let _ = stream.write_all(&bytes);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Some(())
}

/// A registry that hands out tokens the way Docker's token authentication does, serving one
/// Wasm rule module as `rules/studio-basics:1.0.0`:
///
/// * `GET /v2/` without a token: 401 with `WWW-Authenticate: Bearer realm="REALM"`, where
///   `realm(own_url)` gives REALM (this server's `/token`, or another server);
/// * `GET /token` with Basic `user:password`: `{"token": TOKEN}`;
/// * the manifest and the blob only with `Authorization: Bearer TOKEN`; the blob is
///   redirected (307) to `blob_at` when given (a CDN on another host).
pub struct TokenRegistry {
    pub user: &'static str,
    pub password: &'static str,
    pub token: &'static str,
}

impl TokenRegistry {
    pub fn serve(
        &self,
        module: Vec<u8>,
        realm: impl Fn(&str) -> String,
        blob_at: Option<String>,
    ) -> Server {
        use base64::Engine;
        use sha2::Digest;
        let listener = listen("127.0.0.1");
        let realm = realm(&listener.url());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.user, self.password))
        );
        let bearer = format!("Bearer {}", self.token);
        let token = self.token;
        let config = b"{}".to_vec();
        let digest = |b: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(b));
        let (module_digest, config_digest) = (digest(&module), digest(&config));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/wasm",
                        "digest": module_digest, "size": module.len()}],
        })
        .to_string();
        listener.serve(move |request| {
            let challenge = || {
                Reply::new(401).header(
                    "WWW-Authenticate",
                    &format!(
                        "Bearer realm=\"{realm}\",service=\"test-registry\",\
                         scope=\"repository:rules/studio-basics:pull\""
                    ),
                )
            };
            let authorized = request.header("authorization") == Some(bearer.as_str());
            match request.path() {
                "/token" if request.header("authorization") == Some(basic.as_str()) => {
                    Reply::new(200)
                        .header("Content-Type", "application/json")
                        .body(format!(
                            r#"{{"token": "{token}", "access_token": "{token}"}}"#
                        ))
                }
                "/token" => Reply::new(401),
                _ if !authorized => challenge(),
                "/v2/" => Reply::new(200),
                "/v2/rules/studio-basics/manifests/1.0.0" => Reply::new(200)
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .body(manifest.clone()),
                path if path == format!("/v2/rules/studio-basics/blobs/{module_digest}") => {
                    match &blob_at {
                        Some(cdn) => Reply::redirect(307, cdn),
                        None => Reply::new(200).body(module.clone()),
                    }
                }
                _ => Reply::new(404),
            }
        })
    }
}
