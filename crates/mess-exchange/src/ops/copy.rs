//! `mess-exchange copy` (a stopped store to another, object by object, byte for byte) and
//! `mess-exchange backup` (a running store to a directory, consistently).

use std::path::PathBuf;

use futures::StreamExt;
use mess_core::{Clock, SystemClock};
use mess_storage::{Class, RawObject, RawStore, StorageConfig, StorageKind, classify};

use super::census::{READS, Report, Scanner, copies, scan};
use super::{TargetArgs, bytes, stopped};
use crate::StorageArgs;

/// `copy --help`.
pub const COPY_ABOUT: &str = "\
Copy a whole store (the STORAGE_* and S3_* settings, as the server's) to another (the \
--to-* flags or TO_* variables): filesystem to S3, S3 to filesystem, or either to its own \
kind. Every object of the store (event segments, member records, stored answers) is copied \
under the same name with the same bytes; nothing is re-encoded, so replay and DuckDB read \
the same rows from the copy. Files that are not the store's own are not copied, and named. \
Then the target is read back whole and must replay to the same counts (events, threads by \
status, members, answers, unreadable lines) as the source; otherwise the command fails.

The target must be empty (a data directory is created if missing; a bucket must exist): \
copying into a store that holds data would mix two stores. --force copies anyway, \
replacing objects of the same name and leaving the others, so the counts then differ.

Run it with the server stopped: on a data directory it takes the lock of both stores; an \
S3 bucket has no lock, so stop the server first. A store on S3 holds one object per write: \
run compact first, and the copy (and every later start-up) reads far fewer objects. To \
move a server to the new store, stop it, copy, then start it with the target's settings.";

/// `backup --help`.
pub const BACKUP_ABOUT: &str = "\
Take a consistent copy of a store into DIR, a new data directory, while the server runs: \
the copy is a store a server can start on (STORAGE_PATH=DIR) and that `copy` can move \
anywhere. It holds every write acknowledged before the backup started, and possibly some \
made while it ran.

Why a copy taken while the server appends is consistent: the log is append-only and every \
write adds whole lines at the end of one segment, in order; so a segment read at any moment \
is a prefix of what it will be, and the copy keeps its whole lines (a line caught mid-write \
is left out, as replay would skip it). Stored answers are copied first, then segments (the \
most recently written first), then member records: an answer is stored after its events, \
and a member's record before any event of it, so whatever the copy holds, what it refers to \
was copied too. A member record is replaced by a rename: it is read whole, old or new. See \
docs/operations.md.

DIR must not exist or be empty; it is locked while the backup runs. The source may be a \
data directory or a bucket (the STORAGE_* and S3_* settings, as the server's); nothing in \
it is changed or locked. The copy is checked (read back and counted) at the end.";

/// `mess-exchange copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// Copy into a target that already holds objects (same names are replaced).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `mess-exchange backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The directory to write the copy into (a new data directory).
    pub dir: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
}

fn same_store(a: &StorageConfig, b: &StorageConfig) -> bool {
    match (a.kind, b.kind) {
        (StorageKind::Filesystem, StorageKind::Filesystem) => {
            let canonical = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.into());
            canonical(&a.path) == canonical(&b.path)
        }
        (StorageKind::S3, StorageKind::S3) => {
            a.s3_bucket == b.s3_bucket && a.s3_endpoint == b.s3_endpoint
        }
        _ => false,
    }
}

/// The objects of `target` other than its lock: what makes it "not empty".
async fn held(target: &RawStore) -> Result<Vec<RawObject>, String> {
    Ok(target
        .list()
        .await
        .map_err(|e| format!("cannot list the target ({}): {e}", target.describe()))?
        .into_iter()
        .filter(|o| classify(&o.path) != Class::Lock)
        .collect())
}

/// Copies the store to the target, then reads the target back and compares.
pub async fn copy(args: CopyArgs) -> Result<(), String> {
    let source_config = args.storage.config();
    let target_config = args.target.config()?;
    if same_store(&source_config, &target_config) {
        return Err("the target is the source: give another directory or bucket".into());
    }
    let _source_lock = stopped(&source_config)?;
    let _target_lock = match target_config.kind {
        StorageKind::Filesystem => {
            mess_storage::lock_dir(&target_config.path).map_err(|e| format!("target: {e}"))?
        }
        _ => mess_storage::lock_store(&target_config).map_err(|e| format!("target: {e}"))?,
    };
    let source = RawStore::open(&source_config)
        .await
        .map_err(|e| e.to_string())?;
    let target = match target_config.kind {
        StorageKind::Filesystem => RawStore::filesystem(&target_config.path),
        _ => RawStore::open(&target_config).await.map_err(|e| {
            format!("target: {e} (the target's settings are the --to-* flags, TO_* variables)")
        })?,
    };
    let there = held(&target).await?;
    if !there.is_empty() && !args.force {
        return Err(format!(
            "the target ({}) is not empty: it holds {} objects (such as {}); copying would \
             mix two stores. Give an empty one, or --force to copy over it",
            target.describe(),
            there.len(),
            there[0].path
        ));
    }
    let objects = source
        .list()
        .await
        .map_err(|e| format!("cannot list {}: {e}", source.describe()))?;
    let mut scanner = Scanner::new(None);
    let (mut copied, mut total, mut skipped) = (0usize, 0u64, Vec::new());
    let source_ref = &source;
    let target_ref = &target;
    let mut moves = futures::stream::iter(objects)
        .map(|obj| async move {
            let class = classify(&obj.path);
            if !copies(&obj, &class) {
                return Ok::<_, String>((obj, class, None));
            }
            let bytes = source_ref
                .read(&obj.path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", source_ref.describe()))?;
            if let Some(b) = &bytes {
                target_ref.write(&obj.path, b.clone()).await.map_err(|e| {
                    format!(
                        "cannot write {} to the target ({}): {e}; the target is incomplete",
                        obj.path,
                        target_ref.describe()
                    )
                })?;
            }
            Ok((obj, class, bytes))
        })
        .buffered(READS);
    while let Some(moved) = moves.next().await {
        let (obj, class, bytes) = moved?;
        if let Some(b) = &bytes {
            copied += 1;
            total += b.len() as u64;
        } else if !copies(&obj, &class) && class != Class::Lock {
            skipped.push(obj.path.clone());
        }
        scanner.add(&obj, &class, bytes.as_deref());
    }
    drop(moves);
    let before = scanner.finish();
    println!(
        "copied {copied} objects ({}) from {} to {}",
        bytes(total),
        source.describe(),
        target.describe()
    );
    for path in &skipped {
        println!("not copied (not store data): {path}");
    }
    let after = scan(&target, None).await?;
    compare(&before, &after, "the source")
}

/// Fails unless `after` (a copy, read back) counts what `before` did.
fn compare(before: &Report, after: &Report, what: &str) -> Result<(), String> {
    println!("the copy holds:");
    print!("{}", after.census);
    if before.census != after.census {
        println!("{what} held:");
        print!("{}", before.census);
        return Err(format!(
            "the copy does not replay to the same counts as {what}"
        ));
    }
    println!("the copy replays to the same counts as {what}");
    Ok(())
}

/// Copies a (possibly running) store into a new directory.
pub async fn backup(args: BackupArgs) -> Result<(), String> {
    let config = args.storage.config();
    let dir = &args.dir;
    if config.kind == StorageKind::Filesystem {
        let canonical = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.into());
        let (store, into) = (canonical(&config.path), canonical(dir));
        let into = match (into.parent(), into.file_name()) {
            // DIR may not exist yet: its parent does, or nothing can be created.
            (Some(parent), Some(name)) if !dir.exists() => canonical(parent).join(name),
            _ => into,
        };
        if into.starts_with(&store) {
            return Err(format!(
                "{} is inside the store: a backup goes outside STORAGE_PATH",
                dir.display()
            ));
        }
    }
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(format!(
            "{} is not empty: a backup goes into a new directory",
            dir.display()
        ));
    }
    let _lock = mess_storage::lock_dir(dir).map_err(|e| format!("DIR: {e}"))?;
    let source = RawStore::open(&config).await.map_err(|e| e.to_string())?;
    let target = RawStore::filesystem(dir);
    let started = SystemClock.now();
    let mut objects = source
        .list()
        .await
        .map_err(|e| format!("cannot list {}: {e}", source.describe()))?;
    // Answers, then segments (most recently written first), then member records: see
    // BACKUP_ABOUT and docs/operations.md for why this order.
    let rank = |o: &RawObject| match classify(&o.path) {
        Class::Answer { .. } => 0,
        Class::Segment { .. } => 1,
        Class::Member { .. } => 2,
        _ => 3,
    };
    objects.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(b.modified_ms.cmp(&a.modified_ms))
            .then(a.path.cmp(&b.path))
    });
    let (mut copied, mut total, mut cut, mut skipped) = (0usize, 0u64, 0usize, Vec::new());
    for obj in &objects {
        let class = classify(&obj.path);
        if !copies(obj, &class) {
            // A running server's lock and its in-flight temporary files are not data.
            if matches!(class, Class::Stray { .. }) {
                skipped.push(obj.path.clone());
            }
            continue;
        }
        let Some(mut b) = source
            .read(&obj.path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", source.describe()))?
        else {
            continue; // removed since it was listed: a member that left, an old answer
        };
        if matches!(class, Class::Segment { .. }) {
            // Whole lines only: a line being written right now is left out.
            let keep = b.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
            if keep < b.len() {
                cut += 1;
                b.truncate(keep);
            }
            if b.is_empty() {
                continue;
            }
        }
        total += b.len() as u64;
        target
            .write(&obj.path, b)
            .await
            .map_err(|e| format!("cannot write {} into {}: {e}", obj.path, dir.display()))?;
        copied += 1;
    }
    let finished = SystemClock.now();
    println!(
        "backed up {copied} objects ({}) from {} into {}, between {started} and {finished}",
        bytes(total),
        source.describe(),
        dir.display()
    );
    if cut > 0 {
        println!("{cut} segments were being written: their last, partial line was left out");
    }
    for path in &skipped {
        println!("not copied (not store data): {path}");
    }
    // Read back as a server would: what a restore starts with.
    let report = scan(&target, None).await?;
    println!("the backup holds:");
    print!("{}", report.census);
    if report.problems_total > 0 {
        // The store's own problems (an event stored twice...) are copied with it: say so,
        // the backup itself is still whole.
        println!("note: the backup holds what the store holds, problems included:");
    }
    print!("{}", report.problem_lines());
    Ok(())
}
