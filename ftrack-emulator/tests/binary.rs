//! The `ftrack-emulator` binary: starts on an ephemeral port, prints its URL, serves a
//! `--load`ed state, and rejects a malformed state file with a precise message.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn post(addr: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "POST /api HTTP/1.1\r\nhost: x\r\nconnection: close\r\nftrack-user: u\r\nftrack-api-key: k\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ftrack-emulator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write state");
    p
}

#[test]
fn binary_serves_a_loaded_state() {
    let state = temp_file(
        "ok.json",
        r#"{"User": [{"username": "alice"}], "Group": [{"name": "artists"}]}"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftrack-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-user",
            "u",
            "--api-key",
            "k",
            "--load",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start binary");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read url");
    let url = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let addr = url.trim_start_matches("http://");
    let reply = post(
        addr,
        r#"[{"action": "query", "expression": "select username from User where username is alice"}]"#,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"username\":\"alice\""), "{reply}");
}

#[test]
fn binary_rejects_a_malformed_state_file() {
    let state = temp_file(
        "bad.json",
        r#"{"User": [{"username": "alice"}, {"username": "bob", "is_active": "yes"}]}"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ftrack-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-user",
            "u",
            "--api-key",
            "k",
            "--load",
        ])
        .arg(&state)
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("User[1]") && err.contains("is_active"),
        "{err}"
    );
}
