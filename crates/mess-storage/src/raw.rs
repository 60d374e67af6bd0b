//! The operator's view of a store: every object as it is (its name, bytes and time), on a
//! data directory or a bucket alike, for `mess-exchange verify`, `copy`, `backup` and
//! `compact`. Nothing here knows about events beyond where they live ([`classify`]); the
//! server never uses it.
//!
//! On the filesystem the directory is walked directly (not through `object_store`), so that
//! everything in it is seen: object_store's staging files, symbolic links and names it would
//! refuse are exactly what an operator needs to hear about.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use futures::TryStreamExt;
use mess_core::layout::{ANSWERS, Day, EVENTS, EXECUTORS};
use mess_core::{ExchangeId, ExecutorId, StorageError};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::{OpenError, StorageConfig, StorageKind};
use crate::error::{from_io, from_object_store, one_line};
use crate::fs::sync_dir;
use crate::lock::LOCK_FILE;

/// A store's objects, read and written verbatim.
#[derive(Clone)]
pub struct RawStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Fs(PathBuf),
    Object {
        store: Arc<dyn ObjectStore>,
        name: String,
    },
}

impl std::fmt::Debug for RawStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One object of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    /// Its path relative to the root or bucket, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last modified, in Unix milliseconds (0 when unknown).
    pub modified_ms: i64,
    /// False for what is not a plain file: a symbolic link, a name that is not UTF-8, a
    /// socket... (always true in a bucket).
    pub regular: bool,
}

impl RawStore {
    /// The configured store. A data directory must exist already (nothing is created); a
    /// bucket is checked with one LIST, as the server's start does.
    pub async fn open(config: &StorageConfig) -> Result<Self, OpenError> {
        match config.kind {
            StorageKind::Filesystem => {
                let path = &config.path;
                if !path.is_dir() {
                    return Err(OpenError::Path {
                        path: one_line(&path.display().to_string()),
                        reason: if path.exists() {
                            "not a directory".into()
                        } else {
                            "no such directory".into()
                        },
                    });
                }
                Ok(Self::filesystem(path))
            }
            StorageKind::S3 => {
                let store = crate::config::s3_store(config).await?;
                let name = format!(
                    "s3 bucket {}",
                    config.s3_bucket.as_deref().unwrap_or_default()
                );
                Ok(Self::object(store, name))
            }
            other => Err(OpenError::Invalid {
                setting: "STORAGE_TYPE",
                reason: format!("{other} is not one of filesystem, s3"),
            }),
        }
    }

    /// The data directory `root` (which may not exist yet: the first write creates it).
    pub fn filesystem(root: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Fs(root.into()),
        }
    }

    /// Any object store (`name` says which, in messages).
    pub fn object(store: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        Self {
            backend: Backend::Object {
                store,
                name: name.into(),
            },
        }
    }

    /// `filesystem {path}` or the bucket's name, for messages.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Fs(root) => format!("filesystem {}", root.display()),
            Backend::Object { name, .. } => name.clone(),
        }
    }

    /// The data directory, for filesystem storage.
    pub fn root(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Fs(root) => Some(root),
            Backend::Object { .. } => None,
        }
    }

    /// Every object, in path order. On the filesystem: every entry that is not a
    /// directory, symbolic links included (never followed); a missing root holds nothing.
    pub async fn list(&self) -> Result<Vec<RawObject>, StorageError> {
        let mut out = match &self.backend {
            Backend::Fs(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || walk(&root))
                    .await
                    .map_err(|e| StorageError::Unavailable(format!("list: {e}")))??
            }
            Backend::Object { store, .. } => store
                .list(None)
                .map_ok(|meta| RawObject {
                    path: meta.location.as_ref().to_owned(),
                    size: meta.size,
                    modified_ms: meta.last_modified.timestamp_millis(),
                    regular: true,
                })
                .try_collect()
                .await
                .map_err(|e| from_object_store("list", "the bucket", e))?,
        };
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The bytes of `path`, or `None` when it is not there (any more).
    pub async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match &self.backend {
            Backend::Fs(root) => {
                let file = root.join(path);
                let shown = path.to_owned();
                tokio::task::spawn_blocking(move || match std::fs::read(&file) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(from_io("read", &shown, &e)),
                })
                .await
                .map_err(|e| StorageError::Unavailable(format!("read {path}: {e}")))?
            }
            Backend::Object { store, .. } => {
                let read = |e| from_object_store("read", path, e);
                match store.get(&ObjectPath::from(path)).await {
                    Ok(got) => Ok(Some(got.bytes().await.map_err(read)?.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(read(e)),
                }
            }
        }
    }

    /// Writes `path` durably, replacing whatever was there; readers see the old bytes or
    /// the new, never a mix (on the filesystem: a temporary file, synced, renamed over, its
    /// directory synced).
    pub async fn write(&self, path: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put(path, bytes, false).await
    }

    /// Like [`RawStore::write`], but only if `path` does not exist yet
    /// (`StorageError::AlreadyExists` otherwise).
    pub async fn create(&self, path: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put(path, bytes, true).await
    }

    async fn put(&self, path: &str, bytes: Vec<u8>, create: bool) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Fs(root) => {
                let root = root.clone();
                let rel = path.to_owned();
                tokio::task::spawn_blocking(move || write_file(&root, &rel, &bytes, create))
                    .await
                    .map_err(|e| StorageError::Unavailable(format!("write {path}: {e}")))?
            }
            Backend::Object { store, .. } => {
                let opts = PutOptions {
                    mode: if create {
                        PutMode::Create
                    } else {
                        PutMode::Overwrite
                    },
                    ..Default::default()
                };
                store
                    .put_opts(&ObjectPath::from(path), PutPayload::from(bytes), opts)
                    .await
                    .map(drop)
                    .map_err(|e| from_object_store("write", path, e))
            }
        }
    }

    /// Deletes `path` (durably on the filesystem: its directory is synced); one that is not
    /// there is no error.
    pub async fn delete(&self, path: &str) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Fs(root) => {
                let file = root.join(path);
                let shown = path.to_owned();
                tokio::task::spawn_blocking(move || {
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                        Err(e) => return Err(from_io("delete", &shown, &e)),
                    }
                    match file.parent() {
                        Some(dir) => sync_dir(dir).map_err(|e| from_io("sync", &shown, &e)),
                        None => Ok(()),
                    }
                })
                .await
                .map_err(|e| StorageError::Unavailable(format!("delete {path}: {e}")))?
            }
            Backend::Object { store, .. } => match store.delete(&ObjectPath::from(path)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(from_object_store("delete", path, e)),
            },
        }
    }
}

/// Every non-directory entry under `root`, relative paths with `/`.
fn walk(root: &Path) -> Result<Vec<RawObject>, StorageError> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = dirs.pop() {
        let shown = if rel.is_empty() {
            "the data directory"
        } else {
            &rel
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.is_empty() => {
                return Ok(out);
            }
            Err(e) => return Err(from_io("list", shown, &e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| from_io("list", shown, &e))?;
            let name = entry.file_name();
            let (name, utf8) = match name.to_str() {
                Some(n) => (n.to_owned(), true),
                None => (name.to_string_lossy().into_owned(), false),
            };
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // `symlink_metadata`: a link is reported as a link, never followed.
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(|e| from_io("stat", &child, &e))?;
            if meta.is_dir() && utf8 {
                dirs.push((entry.path(), child));
                continue;
            }
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            out.push(RawObject {
                path: child,
                size: meta.len(),
                modified_ms,
                regular: utf8 && meta.is_file(),
            });
        }
    }
    Ok(out)
}

/// Writes `root/rel` through a synced temporary file in the same directory, renamed (or,
/// create-only, hard-linked: that fails if the name is taken) into place; then syncs the
/// directory, and the parent of every directory created for it.
fn write_file(root: &Path, rel: &str, bytes: &[u8], create: bool) -> Result<(), StorageError> {
    use std::io::Write;
    let target = root.join(rel);
    let dir = target
        .parent()
        .ok_or_else(|| StorageError::Unavailable(format!("write {rel}: no directory")))?
        .to_path_buf();
    let mut created = Vec::new();
    let mut d = dir.as_path();
    while !d.exists() {
        created.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| from_io("create the directory of", rel, &e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = std::fs::File::create_new(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(from_io("write", rel, &e));
    }
    let placed = if create {
        std::fs::hard_link(&tmp, &target).and_then(|()| std::fs::remove_file(&tmp))
    } else {
        std::fs::rename(&tmp, &target)
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(from_io("write", rel, &e));
    }
    sync_dir(&dir).map_err(|e| from_io("sync the directory of", rel, &e))?;
    for new_dir in &created {
        if let Some(parent) = new_dir.parent() {
            sync_dir(parent).map_err(|e| from_io("sync the directory of", rel, &e))?;
        }
    }
    Ok(())
}

/// What an object of a store is, by its path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// An event segment: `events/exchange={id}/{YYYY}/{MM}/{DD}/{name}.jsonl`.
    Segment {
        /// Its exchange.
        exchange: ExchangeId,
        /// Its day.
        day: Day,
    },
    /// A member record: `executors/exchange={id}/{executor}.json`.
    Member {
        /// Its exchange.
        exchange: ExchangeId,
        /// The member.
        executor: ExecutorId,
    },
    /// An idempotent answer: `answers/exchange={id}/{scope}.json`.
    Answer {
        /// Its exchange.
        exchange: ExchangeId,
    },
    /// An object under one of [`OTHER_PREFIXES`]: the store's own, copied as it is, not
    /// checked here.
    Other {
        /// The prefix (`blobs`...).
        prefix: &'static str,
    },
    /// The data directory's lock file ([`LOCK_FILE`]).
    Lock,
    /// What an interrupted write leaves behind: a temporary or staging file, a write check.
    /// Never read by the server; safe to delete once the store is stopped.
    Leftover(&'static str),
    /// Anything else: not ours.
    Stray {
        /// What is wrong with it.
        why: &'static str,
        /// Whether DuckDB's `events/**/*.jsonl` reads it (and so fails the whole query on
        /// it, lacking an `exchange=` partition or holding other lines).
        read_by_duckdb: bool,
    },
}

/// Top-level prefixes of the store whose objects [`classify`] does not check one by one
/// (attachments, secrets, replicas' leases and seals, segments a seal fenced out, runs of
/// segments an owner merged for replay): they are the store's own, and the operator's
/// commands copy them byte for byte with the rest.
pub const OTHER_PREFIXES: [&str; 5] = ["blobs", "secrets", "leases", "fenced", "merged"];

/// Classifies a path of a store (see [`Class`]).
pub fn classify(path: &str) -> Class {
    let parts: Vec<&str> = path.split('/').collect();
    let name = parts.last().copied().unwrap_or_default();
    if path == LOCK_FILE {
        return Class::Lock;
    }
    if parts.len() == 1 && name.starts_with(".write-check-") {
        return Class::Leftover("a write check left by a crash");
    }
    if name.starts_with('.') && name.ends_with(".tmp") {
        return Class::Leftover("a temporary file left by an interrupted write");
    }
    if name
        .rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Class::Leftover("a staging file left by an interrupted write");
    }
    let exchange = parts
        .get(1)
        .and_then(|p| p.strip_prefix("exchange="))
        .and_then(|x| ExchangeId::parse(x).ok());
    let stray = |why| Class::Stray {
        why,
        read_by_duckdb: parts[0] == EVENTS && name.ends_with(".jsonl"),
    };
    match parts[0] {
        EVENTS => {
            let Some(exchange) = exchange else {
                return stray("not inside an events/exchange={id}/ directory");
            };
            if parts.len() != 6 {
                return stray("not in a YYYY/MM/DD day directory of its exchange");
            }
            let Some(day) = day_of(parts[2], parts[3], parts[4]) else {
                return stray("not in a YYYY/MM/DD day directory of its exchange");
            };
            if name.len() <= ".jsonl".len() || !name.ends_with(".jsonl") {
                return stray("not a .jsonl event segment");
            }
            Class::Segment { exchange, day }
        }
        EXECUTORS => {
            let executor = name
                .strip_suffix(".json")
                .and_then(|n| ExecutorId::parse(n).ok());
            match (exchange, executor, parts.len()) {
                (Some(exchange), Some(executor), 3) => Class::Member { exchange, executor },
                _ => stray("not an executors/exchange={id}/{executor}.json member record"),
            }
        }
        ANSWERS => match (exchange, parts.len(), name.ends_with(".json")) {
            (Some(exchange), 3, true) => Class::Answer { exchange },
            _ => stray("not an answers/exchange={id}/{scope}.json answer"),
        },
        top => match OTHER_PREFIXES.iter().find(|p| **p == top) {
            Some(prefix) if parts.len() > 1 => Class::Other { prefix },
            _ => stray("not part of a mess-exchange store"),
        },
    }
}

/// The date of `YYYY/MM/DD` directory names, if they are one.
fn day_of(y: &str, m: &str, d: &str) -> Option<Day> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Day::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_as_the_layout_has_them() {
        let home = ExchangeId::parse("home").expect("valid");
        let day = Day::from_calendar_date(2026, time::Month::February, 1).expect("valid");
        assert_eq!(
            classify("events/exchange=home/2026/02/01/0b8f.jsonl"),
            Class::Segment {
                exchange: home.clone(),
                day
            }
        );
        assert_eq!(
            classify("executors/exchange=home/my-phone.json"),
            Class::Member {
                exchange: home.clone(),
                executor: ExecutorId::parse("my-phone").expect("valid")
            }
        );
        assert_eq!(
            classify("answers/exchange=home/ab12.json"),
            Class::Answer { exchange: home }
        );
        assert_eq!(classify(".mess-exchange.lock"), Class::Lock);
        assert_eq!(
            classify("blobs/exchange=home/ab/cd.jpg"),
            Class::Other { prefix: "blobs" }
        );
        for leftover in [
            ".write-check-1234",
            "executors/exchange=home/my-phone.json#3",
            "events/exchange=home/2026/02/01/.0b8f.jsonl.77aa.tmp",
        ] {
            assert!(
                matches!(classify(leftover), Class::Leftover(_)),
                "{leftover}"
            );
        }
        for (stray, duckdb) in [
            ("events/junk.jsonl", true),
            ("events/README.txt", false),
            ("events/exchange=home/x.jsonl", true),
            ("events/exchange=home/2026/02/30/a.jsonl", true),
            ("events/exchange=home/2026/02/01/a.json", false),
            ("events/exchange=Not Valid/2026/02/01/a.jsonl", true),
            ("executors/exchange=home/sub/a.json", false),
            ("notes.txt", false),
            ("blobs", false),
        ] {
            assert!(
                matches!(classify(stray), Class::Stray { read_by_duckdb, .. } if read_by_duckdb == duckdb),
                "{stray}: {:?}",
                classify(stray)
            );
        }
    }

    #[tokio::test]
    async fn a_filesystem_store_is_written_atomically_and_listed_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = RawStore::filesystem(dir.path());
        assert!(raw.list().await.expect("empty").is_empty());
        raw.write("events/exchange=home/2026/02/01/a.jsonl", b"x\n".to_vec())
            .await
            .expect("written");
        raw.write("events/exchange=home/2026/02/01/a.jsonl", b"y\n".to_vec())
            .await
            .expect("replaced");
        assert_eq!(
            raw.create("events/exchange=home/2026/02/01/a.jsonl", b"z\n".to_vec())
                .await,
            Err(StorageError::AlreadyExists)
        );
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("events/link.jsonl"))
            .expect("symlink");
        let listed = raw.list().await.expect("listed");
        let paths: Vec<&str> = listed.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "events/exchange=home/2026/02/01/a.jsonl",
                "events/link.jsonl"
            ]
        );
        assert!(listed[0].regular && !listed[1].regular);
        assert_eq!(
            raw.read("events/exchange=home/2026/02/01/a.jsonl")
                .await
                .expect("read"),
            Some(b"y\n".to_vec())
        );
        raw.delete("events/exchange=home/2026/02/01/a.jsonl")
            .await
            .expect("deleted");
        raw.delete("events/exchange=home/2026/02/01/a.jsonl")
            .await
            .expect("gone already is fine");
        assert_eq!(raw.read("nothing").await.expect("read"), None);
    }
}
