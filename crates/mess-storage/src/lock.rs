//! One process at a time on a data directory: an exclusive advisory lock on
//! `STORAGE_PATH/.mess-exchange.lock`, held by the server for as long as it runs and by the
//! operator's offline commands (`members`, `verify`, `compact`, `copy`) while they work.
//!
//! The lock is `flock`-style (`File::try_lock`): the kernel drops it when the process ends,
//! however it ends, so a crash never leaves a stale lock behind and the file itself may
//! stay. An S3 bucket has no such lock: stop the server before an offline command.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::{StorageConfig, StorageKind};
use crate::error::one_line;

/// The lock file's name, in the data directory (beside `events/`, never in it: DuckDB reads
/// only `events/**/*.jsonl`).
pub const LOCK_FILE: &str = ".mess-exchange.lock";

/// Why [`lock_store`] failed. Its `Display` is one line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: a server, or another offline command.
    #[error(
        "STORAGE_PATH {path} is in use by another mess-exchange process{holder}: stop the \
         server (or wait for the other command) first"
    )]
    Busy {
        /// The data directory.
        path: String,
        /// ` (pid N)` when the holder wrote its pid, else empty.
        holder: String,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock STORAGE_PATH {path}: {reason}")]
    Io {
        /// The data directory.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The lock on a data directory, held until dropped (or the process ends). For S3 it holds
/// nothing.
#[derive(Debug)]
pub struct StoreLock {
    /// The locked file, `None` for S3.
    file: Option<File>,
    path: Option<PathBuf>,
}

impl StoreLock {
    /// The lock file, when there is one (filesystem storage).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether this guards anything (false for S3, which has no lock).
    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }
}

/// Takes the exclusive lock of the configured store, without waiting: `Busy` at once when
/// another process holds it. Filesystem storage: creates `STORAGE_PATH` if missing, then
/// locks `STORAGE_PATH/.mess-exchange.lock` and writes this process's pid in it (for the
/// message another process shows). S3: there is no lock; this returns a guard that holds
/// nothing, and the operator must stop the server first.
///
/// The server calls it once at start, before it reads the log, and keeps the guard for its
/// whole life; each offline command that reads or writes the store calls it before opening
/// the store.
pub fn lock_store(config: &StorageConfig) -> Result<StoreLock, LockError> {
    if config.kind != StorageKind::Filesystem {
        return Ok(StoreLock {
            file: None,
            path: None,
        });
    }
    lock_dir(&config.path)
}

/// [`lock_store`] for the data directory `dir`.
pub fn lock_dir(dir: &Path) -> Result<StoreLock, LockError> {
    let shown = one_line(&dir.display().to_string());
    let io = |e: std::io::Error| LockError::Io {
        path: shown.clone(),
        reason: one_line(&e.to_string()),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text
                .trim()
                .parse::<u32>()
                .map_or_else(|_| String::new(), |pid| format!(" (pid {pid})"));
            return Err(LockError::Busy {
                path: shown,
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours now: say who holds it. A failure here is no reason to refuse the lock.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(StoreLock {
        file: Some(file),
        path: Some(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_busy_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_dir(dir.path()).expect("free");
        assert!(first.is_held());
        let busy = lock_dir(dir.path()).expect_err("held");
        let message = busy.to_string();
        assert!(
            message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        assert!(message.contains("stop the server"), "{message}");
        drop(first);
        assert!(lock_dir(dir.path()).expect("free again").is_held());
    }

    #[test]
    fn s3_has_no_lock() {
        let config = StorageConfig::from_lookup(|k| (k == "STORAGE_TYPE").then(|| "s3".into()))
            .expect("config");
        assert!(!lock_store(&config).expect("nothing to lock").is_held());
    }
}
