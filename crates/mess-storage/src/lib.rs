//! # mess-storage
//!
//! The durable event log and member records of a MESS exchange: the
//! [`mess_core::Storage`] port, on a local data directory ([`FsStorage`], the embedded
//! default) or on any `object_store` such as S3 ([`ObjectStorage`]). Appends are durable
//! when acknowledged, concurrent appends share one write and one sync (group commit), and
//! a batch is written while the syncs of earlier ones still run (up to 8 at once).
//! Start-up replays everything with [`Storage::load`](mess_core::Storage::load), which
//! skips (and counts) lines torn by a crash instead of refusing to start.
//!
//! # Layout
//! - [`config`]: [`StorageConfig`] from the environment, and [`open()`] to build and check
//!   the configured backend.
//! - `fs`: [`FsStorage`], segment files written with `write` + `fdatasync`.
//! - `object`: [`ObjectStorage`], one create-only object per batch.
//! - `batch`: the group commit both share; `members`: member records over `object_store`;
//!   `layout`: paths and the line codec; `error`: backend errors by meaning.
//! - [`Replicas`] and [`lease`]: several processes on one bucket, each exchange owned by
//!   one of them at a time through a lease object written with conditional PUTs.
//! - [`Hold`]: an operator command's lease on one exchange, so that it works beside
//!   running replicas.
//! - [`lock_store`]: one process at a time on a data directory (the server, or an
//!   operator's offline command).
//! - [`RawStore`]: every object of a store as it is, and [`classify`] to say what each one
//!   is, for the operator's commands (`verify`, `copy`, `backup`, `compact`).
//!
//! # On-disk layout
//! The same in a data directory and in a bucket, as the seed lays it out, so that
//! `SELECT * FROM read_json_auto('data/events/**/*.jsonl', hive_partitioning=true)` reads it:
//!
//! ```text
//! events/exchange={exchange_id}/{YYYY}/{MM}/{DD}/{uuid}.jsonl   one Event::to_line() per line
//! executors/exchange={exchange_id}/{executor_id}.json           one Member (key as a hash only)
//! ```
//!
//! The date is the UTC date of each event's `ts`. Nothing else is ever written under
//! `events/` (one stray file there breaks the DuckDB query), and replay ignores anything
//! there that is not a `.jsonl` file inside an `exchange=` directory.
//!
//! # Why segments on the filesystem
//! `object_store` has no append: every put is a whole object. One object per append would
//! leave millions of tiny files for replay to open; so on a local disk the log is written
//! outside `object_store`, as segment files. A process opens a new segment (a fresh uuid)
//! the first time it writes to an (exchange, day) and appends to it from then on, each
//! batch with one `write` and one `fdatasync`. It never appends to a segment of an earlier
//! run, so a line torn by a crash stays the last line of its file and is never glued to
//! new data. On S3, where a completed PUT is the durable unit, each batch is one object.
//!
//! # Example
//! ```
//! use mess_storage::{FsStorage, Storage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mess_core::StorageError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let storage = FsStorage::new(dir.path())?;
//! storage.check().await?;
//! let loaded = storage.load().await?;
//! assert!(loaded.events.is_empty() && loaded.members.is_empty());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod batch;
pub mod config;
mod error;
mod fs;
mod hold;
mod layout;
pub mod lease;
mod lock;
mod members;
mod object;
mod raw;
mod replicas;

pub use config::{
    OpenError, StorageConfig, StorageKind, allow_http_default, hold_exchange, open, open_replicas,
};
pub use fs::{FsStorage, SYNC_DELAY_ENV};
pub use hold::{Hold, HoldError};
pub use lock::{LOCK_FILE, LockError, StoreLock, lock_dir, lock_store};
pub use mess_core::{Loaded, Storage, StorageError};
pub use object::ObjectStorage;
pub use raw::{Class, OTHER_PREFIXES, RawObject, RawStore, classify};
pub use replicas::Replicas;
