//! The operator's commands: `members` (list, remove, reset-key), `verify`, `copy`,
//! `backup` and `compact`. Every one but `backup` works on a *stopped* store: on a data
//! directory it takes the store's lock ([`mess_storage::lock_store`]), which a running
//! server holds, and refuses while another process has it; on S3 there is no lock, and the
//! operator stops the server first. `backup` is the one made for a running store.
//!
//! Reports go to stdout; errors are one line on stderr (see `main.rs`'s `run`).
//!
//! # Layout
//! - `members`: the member commands, decided through mess-core's `Exchange::decide`.
//! - `census`: reading a whole store as replay and DuckDB would, counting it and naming
//!   what is wrong (`verify`, and the check after `copy`, `backup` and `compact`).
//! - `copy`: `copy` (store to store, verbatim) and `backup` (a running store to a
//!   directory).
//! - `compact`: a past day's many segments merged into one.

mod census;
mod compact;
mod copy;
mod members;

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use mess_storage::{StorageConfig, StorageKind, StoreLock};

pub use census::{VERIFY_ABOUT, VerifyArgs, verify};
pub use compact::{COMPACT_ABOUT, CompactArgs, compact};
pub use copy::{BACKUP_ABOUT, BackupArgs, COPY_ABOUT, CopyArgs, backup, copy};
pub use members::{MEMBERS_ABOUT, MembersCmd, members};

use crate::StorageType;

use crate::migrate::exchange_id;

/// Makes sure no server (or other command) works on the store, for as long as the guard
/// lives: the data directory's lock, which must exist already. S3 has no lock: a note on
/// stderr says so.
fn stopped(config: &StorageConfig) -> Result<StoreLock, String> {
    if config.kind == StorageKind::Filesystem && !config.path.is_dir() {
        return Err(format!(
            "STORAGE_PATH {} is not a directory: no store there",
            config.path.display()
        ));
    }
    if config.kind == StorageKind::S3 {
        eprintln!(
            "note: an S3 bucket has no lock: make sure no server uses bucket {} while this runs",
            config.s3_bucket.as_deref().unwrap_or_default()
        );
    }
    mess_storage::lock_store(config).map_err(|e| e.to_string())
}

/// The store a command writes to (`copy`'s target): the `STORAGE_*`/`S3_*` settings with
/// `TO_`, or the flags with `--to-`.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// Where the copy goes: filesystem or s3.
    #[arg(long, env = "TO_STORAGE_TYPE", value_enum)]
    to_storage_type: StorageType,
    /// The target data directory (filesystem): created if missing.
    #[arg(long, env = "TO_STORAGE_PATH")]
    to_storage_path: Option<PathBuf>,
    /// The target's S3-compatible endpoint URL; unset for AWS S3 itself.
    #[arg(long, env = "TO_S3_ENDPOINT")]
    to_s3_endpoint: Option<String>,
    /// The target bucket (it must exist).
    #[arg(long, env = "TO_S3_BUCKET")]
    to_s3_bucket: Option<String>,
    /// The target's access key id; with TO_S3_SECRET_KEY, or neither for the AWS chain.
    #[arg(long, env = "TO_S3_ACCESS_KEY", hide_env_values = true)]
    to_s3_access_key: Option<String>,
    /// The target's secret access key (prefer the variable to the flag: a flag shows in
    /// the process list).
    #[arg(long, env = "TO_S3_SECRET_KEY", hide_env_values = true)]
    to_s3_secret_key: Option<String>,
    /// The target's S3 region.
    #[arg(long, env = "TO_S3_REGION", default_value = "us-east-1")]
    to_s3_region: String,
    /// Allow a plain-http target endpoint [default: true when it is http://].
    #[arg(long, env = "TO_S3_ALLOW_HTTP", value_parser = BoolishValueParser::new())]
    to_s3_allow_http: Option<bool>,
}

impl TargetArgs {
    fn config(&self) -> Result<StorageConfig, String> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let kind = match self.to_storage_type {
            StorageType::Filesystem => StorageKind::Filesystem,
            StorageType::S3 => StorageKind::S3,
        };
        let path = match (kind, &self.to_storage_path) {
            (StorageKind::Filesystem, None) => {
                return Err("--to-storage-path (TO_STORAGE_PATH) is required for a \
                            filesystem target"
                    .into());
            }
            (_, p) => p.clone().unwrap_or_default(),
        };
        if kind == StorageKind::S3 && set(&self.to_s3_bucket).is_none() {
            return Err("--to-s3-bucket (TO_S3_BUCKET) is required for an s3 target".into());
        }
        let endpoint = set(&self.to_s3_endpoint);
        Ok(StorageConfig {
            kind,
            path,
            fs_sync_delay: std::time::Duration::ZERO,
            s3_allow_http: self
                .to_s3_allow_http
                .unwrap_or_else(|| mess_storage::allow_http_default(endpoint.as_deref())),
            s3_endpoint: endpoint,
            s3_bucket: set(&self.to_s3_bucket),
            s3_access_key: set(&self.to_s3_access_key),
            s3_secret_key: set(&self.to_s3_secret_key),
            s3_region: self.to_s3_region.trim().to_owned(),
        })
    }
}

/// `n` bytes, for people.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}
