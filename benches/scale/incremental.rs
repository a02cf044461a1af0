//! Issue 24's quiet-directory figure: with nothing changed, what an incremental `plan
//! --check` reads from LDAP (entries and bytes) and how long it takes, against a full one
//! (`--full`) on the same data, in the same run.
//!
//! slapd runs with the syncprov overlay (and a session log), the sync account is the
//! harness's unlimited `replicator` (a sync search cannot be paged), and ldap2ftrack reaches
//! slapd through a counting TCP proxy here, so the bytes are what crossed the wire from the
//! server, whatever the client library does with them.

use crate::org::{self, API_KEY, API_USER};
use crate::slapd::{Overlays, Slapd, REPLICATOR_DN, SYNC_DN, SYNC_PASSWORD};
use ftrack_emulator::{EmulatorConfig, StateDump};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One `plan --check`: wall, LDAP bytes and entries read.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub wall: f64,
    pub bytes: u64,
    pub entries: u64,
}

/// Full and incremental no-change plans of `n` users, then an incremental and a full plan
/// after one user's mail changed.
pub async fn no_change(binary: &Path, n: usize, groups: Option<usize>) -> [Read; 4] {
    let org = org::generate(n, groups);
    let slapd = tokio::task::block_in_place(|| {
        Slapd::start_with(&org.ldif, Overlays::Syncprov { sessionlog: 10_000 })
    });
    let (proxy_url, counted) = counting_proxy(&slapd.url).await;
    let state = StateDump::from_json(&org.state.to_string()).expect("generated state is valid");
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = org::write_config(dir.path(), &proxy_url, &emulator.url(), &org.mappings);
    let text = std::fs::read_to_string(&config).expect("sync.toml");
    std::fs::write(&config, text.replace(SYNC_DN, REPLICATOR_DN)).expect("sync.toml");
    // Converge ftrack and keep the first sync state.
    let apply = run(binary, dir.path(), &["apply"], &counted);
    eprintln!(
        "{n} users: apply (full read, sync state kept) in {:.2} s",
        apply.wall
    );
    let best = |args: &[&str]| {
        (0..3)
            .map(|_| run(binary, dir.path(), args, &counted))
            .min_by(|a, b| a.wall.total_cmp(&b.wall))
            .expect("three runs")
    };
    let full = best(&["plan", "--check", "--full"]);
    let incremental = best(&["plan", "--check"]);
    tokio::task::block_in_place(|| {
        slapd.modify(&format!(
            "dn: uid=u000042,ou=people,{}\nchangetype: modify\nreplace: mail\nmail: changed@studio.example\n",
            crate::slapd::SUFFIX
        ))
    });
    let one_incremental = best(&["plan"]);
    let one_full = best(&["plan", "--full"]);
    drop(slapd);
    [full, incremental, one_incremental, one_full]
}

fn run(binary: &Path, dir: &Path, args: &[&str], counted: &AtomicU64) -> Read {
    let before = counted.load(Ordering::Relaxed);
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| {
        Command::new(binary)
            .arg("--config")
            .arg(dir.join("sync.toml"))
            .args(args)
            .env("BENCH_LDAP_PASSWORD", SYNC_PASSWORD)
            .env("FTRACK_API_KEY", API_KEY)
            .env("LDAP2FTRACK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run ldap2ftrack")
    });
    let wall = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ldap2ftrack {args:?} failed: {log}");
    Read {
        wall,
        bytes: counted.load(Ordering::Relaxed) - before,
        entries: entries_read(&log),
    }
}

/// Entries read, from the run's log: the incremental read's `entries_read`, or the users
/// and groups a full read assembled.
fn entries_read(log: &str) -> u64 {
    let field = |line: &str, key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    if let Some(line) = log
        .lines()
        .find(|l| l.contains("incremental read") && l.contains("entries_read="))
    {
        return field(line, "entries_read=");
    }
    log.lines()
        .find(|l| l.contains("read both sides"))
        .map_or(0, |l| field(l, "users=") + field(l, "groups="))
}

/// A loopback TCP proxy to `url`'s port; its URL and the bytes the server sent through it.
async fn counting_proxy(url: &str) -> (String, Arc<AtomicU64>) {
    let target = url
        .trim_start_matches("ldap://")
        .trim_end_matches('/')
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy port");
    let port = listener.local_addr().expect("proxy address").port();
    let counted = Arc::new(AtomicU64::new(0));
    let total = counted.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (target, total) = (target.clone(), total.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::io::copy(&mut client_read, &mut server_write);
                // Counted as it passes, so the figure is whole when the client exits.
                let down = async {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                total.fetch_add(n as u64, Ordering::Relaxed);
                                if client_write.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    (format!("ldap://127.0.0.1:{port}"), counted)
}

/// Issue 24's watch figure: `ldap2ftrack watch` running on `n` users, a user disabled in
/// LDAP (ppolicy lock), and the time until ftrack has them inactive, `trials` times.
/// Returns the latencies in seconds, in trial order.
pub async fn watch_latency(binary: &Path, n: usize, trials: usize) -> Vec<f64> {
    let org = org::generate(n, None);
    let slapd = tokio::task::block_in_place(|| {
        Slapd::start_with(&org.ldif, Overlays::Syncprov { sessionlog: 10_000 })
    });
    let state = StateDump::from_json(&org.state.to_string()).expect("generated state is valid");
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = org::write_config(dir.path(), &slapd.url, &emulator.url(), &org.mappings);
    let text = std::fs::read_to_string(&config).expect("sync.toml");
    std::fs::write(&config, text.replace(SYNC_DN, REPLICATOR_DN)).expect("sync.toml");
    let counted = AtomicU64::new(0);
    run(binary, dir.path(), &["apply"], &counted);
    let log = dir.path().join("watch.log");
    let mut watch = Command::new(binary)
        .arg("--config")
        .arg(dir.path().join("sync.toml"))
        .arg("watch")
        .env("BENCH_LDAP_PASSWORD", SYNC_PASSWORD)
        .env("FTRACK_API_KEY", API_KEY)
        .env("LDAP2FTRACK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("watch log"))
        .spawn()
        .expect("start ldap2ftrack watch");
    let active = |uid: &str| -> Option<bool> {
        let query = serde_json::json!([{
            "action": "query",
            "expression": format!("select is_active from User where username is \"{uid}\""),
        }]);
        let ops = query.as_array().cloned().unwrap_or_default();
        let result = emulator.call(&ops).ok()?;
        result.first()?["data"].get(0)?["is_active"].as_bool()
    };
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("watching the directory")
    {
        assert!(started.elapsed().as_secs() < 60, "watch did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut latencies = Vec::new();
    let mut index = 1;
    while latencies.len() < trials {
        index += 97;
        let uid = format!("u{:06}", index % n);
        if active(&uid) != Some(true) {
            continue;
        }
        let started = Instant::now();
        tokio::task::block_in_place(|| {
            slapd.modify(&format!(
                "dn: uid={uid},ou=people,{}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n",
                crate::slapd::SUFFIX
            ))
        });
        while active(&uid) != Some(false) {
            assert!(
                started.elapsed().as_secs() < 60,
                "{uid} was not disabled within a minute: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        latencies.push(started.elapsed().as_secs_f64());
        eprintln!(
            "{n} users: trial {}: {uid} disabled in ftrack after {:.2} s",
            latencies.len(),
            latencies[latencies.len() - 1]
        );
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    drop(slapd);
    latencies
}
