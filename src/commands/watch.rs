//! `ldap2ftrack watch`: a long-running service that applies each directory change within
//! seconds, so a leaver loses ftrack when they leave, not at the next scheduled run.
//!
//! It holds a refreshAndPersist search on the server (`syncrepl::persist`), or on Active
//! Directory reads the DC's highestCommittedUSN every two seconds (`usn::poll`), as a
//! doorbell only: when it rings, the service waits for the burst to settle and runs `apply` — the same
//! plan → guard → apply path as a scheduled run, incremental from the stored sync state,
//! under the same run lock, with the journal, metrics and sync event of any run. Nothing
//! the persistent search carries is trusted as content, so what reaches ftrack is what the
//! tested incremental read says.
//!
//! When the directory or ftrack goes away, a failed apply is retried with backoff (1 s
//! doubling to a minute), and the first apply after a failure reads everything; a
//! persistent search that ends is re-opened the same way. Without a ring, it still applies
//! every minute, which is also when `[sync] full_every` comes due.

use super::apply::{apply_counted, ApplyOptions};
use super::output::OutputFormat;
use crate::config::{Config, DirectorySource};
use crate::directory::ldap::{syncrepl, usn};
use crate::failure::Failure;
use crate::run::{self, incremental};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a burst must be quiet before its changes are applied.
const QUIET: Duration = Duration::from_millis(300);
/// The longest a burst delays its apply.
const BURST_MAX: Duration = Duration::from_secs(2);
/// An apply at least this often, rung or not.
const IDLE_APPLY: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a domain controller's highestCommittedUSN is read (AD has no change push that
/// a plain account may hold).
const USN_POLL: Duration = Duration::from_secs(2);

/// Runs the service until SIGTERM or SIGINT.
pub fn watch(config: &Config) -> Result<(), Failure> {
    if matches!(config.ldap.source, DirectorySource::LdifFile(_)) {
        return Err(Failure::Usage(
            "`watch` follows an LDAP server's changes; ldap.url is an LDIF file".to_string(),
        ));
    }
    let pipeline = run::prepare(config)?;
    let needed = pipeline.user_attributes(&config.ldap).needed;
    let reads_member_of = pipeline.reads_member_of(&config.ldap);
    let rt = run::runtime()?;
    let capability = rt.block_on(incremental::capability(config, reads_member_of));
    if capability.mode == incremental::ReadMode::Full {
        return Err(Failure::Usage(format!(
            "`watch` needs a directory that reports its changes (syncrepl, or Active Directory's USNs), and runs here read everything: {}; schedule `ldap2ftrack apply` instead",
            capability.why
        )));
    }
    drop(pipeline);
    run::serve_many_runs();
    let (ring, rings) = std::sync::mpsc::sync_channel::<()>(1);
    let doorbell_config = config.clone();
    let mode = capability.mode;
    rt.spawn(async move { doorbell(&doorbell_config, mode, needed, reads_member_of, ring).await });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    rt.spawn(async move {
        super::listen::shutdown().await;
        stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    tracing::info!("watching the directory for changes");
    serve(config, &rings, &stop);
    tracing::info!("stopping");
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The apply loop, on this thread (an apply runs its own runtime).
fn serve(config: &Config, rings: &Receiver<()>, stop: &std::sync::atomic::AtomicBool) {
    let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
    let mut full = false;
    let mut backoff = Duration::from_secs(1);
    while !stopped() {
        let started = Instant::now();
        let options = ApplyOptions {
            full,
            ..ApplyOptions::default()
        };
        match apply_counted(config, &options, OutputFormat::Json) {
            Ok(applied) => {
                if applied.operations > 0 {
                    tracing::info!(
                        operations = applied.operations,
                        seconds = started.elapsed().as_secs_f64(),
                        "applied the directory's changes"
                    );
                }
                full = false;
                backoff = Duration::from_secs(1);
                wait_for_ring(rings, &stopped);
            }
            Err(e) => {
                tracing::warn!(
                    "the apply failed ({e}); trying again in {} s, reading everything",
                    backoff.as_secs()
                );
                full = true;
                sleep_unless_stopped(backoff, &stopped);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Waits for a ring (then for the burst to be quiet), a minute, or the stop.
fn wait_for_ring(rings: &Receiver<()>, stopped: &dyn Fn() -> bool) {
    let deadline = Instant::now() + IDLE_APPLY;
    loop {
        if stopped() {
            return;
        }
        match rings.recv_timeout(Duration::from_millis(250)) {
            Ok(()) => break,
            Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => continue,
            Err(_) => return,
        }
    }
    let burst = Instant::now();
    while burst.elapsed() < BURST_MAX {
        match rings.recv_timeout(QUIET) {
            Ok(()) => continue,
            Err(_) => return,
        }
    }
}

fn sleep_unless_stopped(total: Duration, stopped: &dyn Fn() -> bool) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stopped() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Keeps a persistent sync search open, from the stored state's cookies, ringing on every
/// message (syncrepl); or reads the DC's highestCommittedUSN every [`USN_POLL`], ringing
/// when it moves (Active Directory). Re-opened with backoff when it ends.
async fn doorbell(
    config: &Config,
    mode: incremental::ReadMode,
    needed: Option<Vec<String>>,
    reads_member_of: bool,
    ring: std::sync::mpsc::SyncSender<()>,
) {
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while woken.recv().await.is_some() {
            match ring.try_send(()) {
                Ok(()) | Err(std::sync::mpsc::TrySendError::Full(())) => {}
                Err(std::sync::mpsc::TrySendError::Disconnected(())) => return,
            }
        }
    });
    let env = |name: &str| std::env::var(name).ok();
    let mut backoff = Duration::from_secs(1);
    loop {
        let opened = Instant::now();
        let ended = match mode {
            incremental::ReadMode::Usn => {
                usn::poll(&config.ldap, &env, USN_POLL, wake.clone()).await
            }
            _ => {
                let cookies = stored_cookies(config, &needed, reads_member_of);
                syncrepl::persist(&config.ldap, &env, cookies, wake.clone()).await
            }
        };
        if let Err(e) = ended {
            tracing::warn!("{e}; opening it again in {} s", backoff.as_secs());
        }
        // Whatever happened while it was closed is read by the next apply.
        let _ = wake.try_send(());
        if opened.elapsed() > BACKOFF_MAX {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The stored sync state's cookies, for a persistent search to start from (`None`: from the
/// beginning, when there is no usable state).
fn stored_cookies(
    config: &Config,
    needed: &Option<Vec<String>>,
    reads_member_of: bool,
) -> [Option<Vec<u8>>; 2] {
    match incremental::decide(config, needed, reads_member_of, false) {
        incremental::Decision::Incremental(state) => match state.cookies() {
            Ok([users, groups]) => [Some(users), Some(groups)],
            Err(_) => [None, None],
        },
        incremental::Decision::Full { .. } => [None, None],
    }
}
