//! A minimal HTTP/1.1 client for the integration tests (one request per connection),
//! so the tests exercise the real listener without pulling in an HTTP client crate.
#![allow(dead_code)]

use ftrack_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const USER: &str = "api-admin";
pub const KEY: &str = "s3cret";

pub async fn start() -> RunningEmulator {
    ftrack_emulator::spawn(EmulatorConfig::new(USER, KEY))
        .await
        .expect("emulator starts")
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub async fn request(
    emu: &RunningEmulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(emu.addr())
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// POST /api with valid credentials.
pub async fn api(emu: &RunningEmulator, ops: Value) -> Reply {
    request(
        emu,
        "POST",
        "/api",
        &[("ftrack-user", USER), ("ftrack-api-key", KEY)],
        &ops.to_string(),
    )
    .await
}

/// POST /api in strict mode.
pub async fn api_strict(emu: &RunningEmulator, ops: Value) -> Reply {
    request(
        emu,
        "POST",
        "/api",
        &[
            ("ftrack-user", USER),
            ("ftrack-api-key", KEY),
            ("ftrack-strict-api", "true"),
        ],
        &ops.to_string(),
    )
    .await
}

/// Run one query and return the reply's first result.
pub async fn query(emu: &RunningEmulator, expr: &str) -> Value {
    let r = api(
        emu,
        serde_json::json!([{"action": "query", "expression": expr}]),
    )
    .await;
    let v = r.json();
    assert!(v.is_array(), "query {expr:?} failed: {v}");
    v[0].clone()
}
