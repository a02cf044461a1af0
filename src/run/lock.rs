//! The run lock: one `plan` or `apply` at a time per configuration, so cron runs that
//! overlap do not pile up on LDAP or apply twice.
//!
//! The lock is an OS file lock (released by the kernel when the process dies, so it can never
//! be left stuck) on a file that also records the holder — PID, host and start time — for the
//! message a second run prints. A file still holding a record when the lock is free was left
//! by a run that died; it is taken over with a warning.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held for the whole run; dropping it clears the record and releases the lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another ldap2ftrack run holds the lock {path} ({holder}); this run stops without changing anything")]
    Held { path: PathBuf, holder: String },
    #[error("cannot use the lock file {path}: {cause}; check [run] lock_file and the folder's permissions")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock at `path`, or says who holds it.
    pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
        let io = |cause| LockError::Io {
            path: path.to_path_buf(),
            cause,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Never through a symbolic link another user planted (we write our pid into it).
        let mut file = crate::private_files::open_lock(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".to_string()
                    } else {
                        format!("held by {holder}")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(io)?;
        if !previous.trim().is_empty() {
            tracing::warn!(
                "taking over the lock {} left by a run that did not finish ({}); check that run's log",
                path.display(),
                previous.trim()
            );
        }
        let record = format!(
            "pid {} on {} since {}",
            std::process::id(),
            hostname(),
            crate::clock::now_rfc3339()
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(record.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(RunLock {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // An empty file under a free lock means "last run finished cleanly".
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/run.lock");
        let first = RunLock::acquire(&path).unwrap();
        let err = RunLock::acquire(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("run.lock"), "{text}");
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let again = RunLock::acquire(&path).unwrap();
        assert!(std::fs::read_to_string(again.path())
            .unwrap()
            .starts_with("pid "));
    }

    #[test]
    fn a_record_left_by_a_dead_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        std::fs::write(&path, "pid 999999 on elsewhere since 2026-01-01T00:00:00Z").unwrap();
        let lock = RunLock::acquire(&path).unwrap();
        let record = std::fs::read_to_string(lock.path()).unwrap();
        assert!(
            record.starts_with(&format!("pid {} on ", std::process::id())),
            "{record}"
        );
    }
}
