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
use std::time::Duration;

use clap::builder::BoolishValueParser;
use mess_core::ExchangeId;
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

/// How a command that changes one exchange holds it on S3, where replicas may be running.
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// On S3: the replicas' LEASE_PERIOD (or longer). The command holds the exchange's
    /// lease while it works, renewed every third of this; replicas answer the exchange's
    /// requests 503 (clients retry) until it is done.
    #[arg(long, env = "LEASE_PERIOD", default_value = "PT10S", value_parser = crate::lease_period)]
    lease_period: Duration,
    /// On S3: how long to wait for a replica serving the exchange to give it back, as an
    /// ISO 8601 duration (PT15M) [default: two lease periods, enough for the lease of a
    /// replica that died to run out]. A replica gives an exchange back after 60 lease
    /// periods without a request, or when it stops.
    #[arg(long, value_parser = wait_for)]
    wait: Option<Duration>,
}

/// `--wait`: an ISO 8601 duration, up to a day.
fn wait_for(s: &str) -> Result<Duration, String> {
    let ms = crate::claim_timeout(s)?;
    if ms > 24 * 3600 * 1000 {
        return Err("must be at most a day (P1D)".into());
    }
    Ok(Duration::from_millis(
        u64::try_from(ms).map_err(|e| e.to_string())?,
    ))
}

/// One exchange held for a command that changes it: on a data directory, the store's lock
/// (no server runs); on S3, the exchange's lease ([`mess_storage::Hold`]), so that
/// replicas may run meanwhile (a single server without ADVERTISE_URL takes no lease: the
/// operator stops it first).
enum Holding {
    Lock(StoreLock),
    Lease(mess_storage::Hold),
}

impl Holding {
    /// Holds `exchange` of the store `config` names. On S3 also returns the exchange as
    /// stored, read under the lease.
    async fn take(
        config: &StorageConfig,
        exchange: &ExchangeId,
        args: &HoldArgs,
    ) -> Result<(Self, Option<mess_core::Taken>), String> {
        if config.kind != StorageKind::S3 {
            return Ok((Self::Lock(stopped(config)?), None));
        }
        let wait = args.wait.unwrap_or(args.lease_period * 2);
        let (hold, taken) = mess_storage::hold_exchange(config, exchange, args.lease_period, wait)
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "note: holding exchange {exchange} (lease epoch {}) while this runs: replicas \
             answer its requests 503, which clients retry. A server without ADVERTISE_URL \
             takes no lease: make sure none uses bucket {}.",
            hold.epoch(),
            config.s3_bucket.as_deref().unwrap_or_default()
        );
        Ok((Self::Lease(hold), Some(taken)))
    }

    /// The lease, if this is one.
    fn lease(&self) -> Option<&mess_storage::Hold> {
        match self {
            Self::Lock(_) => None,
            Self::Lease(hold) => Some(hold),
        }
    }

    /// Lets go: gives the lease back (its exchange due at once, so a replica takes it
    /// again), or unlocks the data directory.
    async fn release(self) {
        match self {
            Self::Lock(lock) => drop(lock),
            Self::Lease(hold) => hold.release().await,
        }
    }
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
