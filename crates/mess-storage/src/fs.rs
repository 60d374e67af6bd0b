//! [`FsStorage`]: the embedded default, a data directory on a local disk.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mess_core::ports::StorageKind;
use mess_core::{Event, ExchangeId, Loaded, Member, Replay, Replayed, Storage, StorageError};
use object_store::PutMode;
use object_store::local::LocalFileSystem;
use tokio::sync::oneshot;

use crate::batch::{Batcher, Queues, Sink, queue_for};
use crate::error::{from_io, from_object_store};
use crate::layout::{self, Day, EVENTS, Skipped, day_dir, new_segment_name};
use crate::members::Members;

/// Event segments and member records in a directory on a local disk.
///
/// Events are appended to segment files with `write` + `fdatasync` (object_store cannot
/// append); member records go through `object_store`'s `LocalFileSystem` with fsync on.
/// See the [crate docs](crate) for the layout.
#[derive(Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// The segment this process writes for each (exchange, day), created on first use.
    segments: Queues<Segment>,
    /// Held while a segment is created, so that no writer sees a directory another one has
    /// created but not yet made durable.
    creating: Arc<Mutex<()>>,
    members: Members,
    /// See [`SYNC_DELAY_ENV`].
    sync_delay: Duration,
}

/// Benchmark aid: `MESS_FS_SYNC_DELAY_MS=N` makes every segment `fdatasync` take `N`
/// milliseconds longer (the writer sleeps after it), to simulate a slow disk such as this
/// machine's under load (4 ms). Read once by [`FsStorage::new`]; default 0 (off). It never
/// weakens durability, only delays acknowledgements; do not set it in production.
pub const SYNC_DELAY_ENV: &str = "MESS_FS_SYNC_DELAY_MS";

pub(crate) fn sync_delay_from_env() -> Duration {
    std::env::var(SYNC_DELAY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_millis)
}

impl std::fmt::Debug for FsStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStorage")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl FsStorage {
    /// Opens (creating it if needed) the data directory `root`.
    ///
    /// Nothing is read yet: call [`Storage::load`] for that. Reads [`SYNC_DELAY_ENV`] (a
    /// benchmark aid that simulates a slow disk) once, here.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        Self::with_sync_delay(root, sync_delay_from_env())
    }

    /// Like [`FsStorage::new`], with the extra time each segment sync takes given
    /// (see [`SYNC_DELAY_ENV`]; `Duration::ZERO` but to benchmark) instead of read from
    /// the environment.
    pub fn with_sync_delay(
        root: impl Into<PathBuf>,
        sync_delay: Duration,
    ) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| from_io("create", "the data directory", &e))?;
        let local = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| from_object_store("open", "the data directory", e))?
            .with_fsync(true);
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                segments: Mutex::default(),
                creating: Arc::default(),
                members: Members::new(Arc::new(local)),
                sync_delay,
            }),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn segment(&self, exchange: &ExchangeId, day: Day) -> Arc<Batcher<Segment>> {
        queue_for(&self.inner.segments, exchange, day, || Segment {
            root: self.inner.root.clone(),
            dir: day_dir(exchange, day),
            creating: Arc::clone(&self.inner.creating),
            file: Mutex::new(None),
            sync_delay: self.inner.sync_delay,
        })
    }
}

/// One (exchange, day) segment of this process: a file created on the first write.
struct Segment {
    root: PathBuf,
    /// `events/exchange=…/YYYY/MM/DD`, relative to `root`.
    dir: String,
    /// Shared by every segment of the directory (see `Inner::creating`).
    creating: Arc<Mutex<()>>,
    /// The open segment (shared with the syncs running on it).
    file: Mutex<Option<Arc<OpenSegment>>>,
    /// Extra time each sync takes (see [`SYNC_DELAY_ENV`]); zero unless benchmarking.
    sync_delay: Duration,
}

struct OpenSegment {
    file: File,
    /// Relative to `root` (for messages).
    name: String,
}

impl Sink for Segment {
    async fn flush(
        self: Arc<Self>,
        bytes: Vec<u8>,
        placed: oneshot::Sender<()>,
    ) -> Result<(), StorageError> {
        tokio::task::spawn_blocking(move || self.write(&bytes, placed))
            .await
            .unwrap_or_else(|e| Err(StorageError::Unavailable(format!("segment writer: {e}"))))
    }
}

impl Segment {
    /// Writes `bytes` at the end of the file (under the lock: writes keep their order),
    /// says so on `placed`, then syncs (outside the lock: syncs of later writes overlap).
    fn write(&self, bytes: &[u8], placed: oneshot::Sender<()>) -> Result<(), StorageError> {
        let open = {
            let mut slot = self.file.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(Arc::new(self.create()?));
            }
            let open = Arc::clone(slot.as_ref().expect("created above"));
            if let Err(e) = (&open.file).write_all(bytes) {
                // The file may now end in a partial line: never write to it again; the
                // next batch opens a new one.
                *slot = None;
                return Err(from_io("append to", &open.name, &e));
            }
            open
        };
        let _ = placed.send(());
        let synced = std::time::Instant::now();
        let result = open.file.sync_data();
        metrics::histogram!("mess_storage_fsync_seconds").record(synced.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                if !self.sync_delay.is_zero() {
                    // A slow disk: the sync (and so this batch's acknowledgement) takes
                    // longer, while later batches are written and synced behind it.
                    std::thread::sleep(self.sync_delay);
                }
                Ok(())
            }
            Err(e) => {
                // After a failed fdatasync the file's state is unknown: retire it (if no
                // other failure did already). The batches written after this one fail
                // with it (see `batch`).
                let mut slot = self.file.lock().unwrap_or_else(|e| e.into_inner());
                if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &open)) {
                    *slot = None;
                }
                Err(from_io("append to", &open.name, &e))
            }
        }
    }

    /// Creates a new segment file and makes its directory entries durable: the file's
    /// directory, and the parent of every directory created for it, up to `events/`.
    fn create(&self) -> Result<OpenSegment, StorageError> {
        let _creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.root.join(&self.dir);
        let mut created = Vec::new();
        let mut d = dir.as_path();
        while !d.exists() && d != self.root {
            created.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        std::fs::create_dir_all(&dir).map_err(|e| from_io("create", &self.dir, &e))?;
        let name = format!("{}/{}", self.dir, new_segment_name());
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.root.join(&name))
            .map_err(|e| from_io("create", &name, &e))?;
        sync_dir(&dir).map_err(|e| from_io("sync", &self.dir, &e))?;
        for new_dir in &created {
            if let Some(parent) = new_dir.parent() {
                sync_dir(parent).map_err(|e| from_io("sync directory of", &self.dir, &e))?;
            }
        }
        Ok(OpenSegment { file, name })
    }
}

/// Syncs a directory (a new or renamed entry in it is durable once this returns).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait]
impl Storage for FsStorage {
    fn kind(&self) -> StorageKind {
        StorageKind::Filesystem
    }

    async fn append(&self, events: &[Event]) -> Result<(), StorageError> {
        let groups = layout::encode_by_segment(events);
        let waits = groups.iter().map(|((exchange, day), bytes)| {
            let segment = self.segment(exchange, *day);
            async move { segment.submit(bytes).await }
        });
        futures::future::try_join_all(waits).await.map(drop)
    }

    async fn create_member(&self, member: &Member) -> Result<(), StorageError> {
        self.inner.members.put(member, PutMode::Create).await
    }

    async fn replace_member(&self, member: &Member) -> Result<(), StorageError> {
        self.inner.members.put(member, PutMode::Overwrite).await
    }

    async fn delete_member(&self, member: &Member) -> Result<(), StorageError> {
        self.inner.members.delete(member).await
    }

    async fn put_answer(
        &self,
        exchange: &ExchangeId,
        scope: &str,
        answer: Vec<u8>,
    ) -> Result<(), StorageError> {
        self.inner.members.put_answer(exchange, scope, answer).await
    }

    async fn load_answers(&self) -> Result<Vec<(ExchangeId, Vec<u8>)>, StorageError> {
        self.inner.members.load_answers(None).await
    }

    async fn delete_answer(&self, exchange: &ExchangeId, scope: &str) -> Result<(), StorageError> {
        self.inner.members.delete_answer(exchange, scope).await
    }

    async fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.inner.members.secret(name, fresh).await
    }

    async fn put_blob(
        &self,
        exchange: &ExchangeId,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        self.inner.members.put_blob(exchange, sha256, bytes).await
    }

    async fn get_blob(
        &self,
        exchange: &ExchangeId,
        sha256: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.members.get_blob(exchange, sha256).await
    }

    async fn load(&self) -> Result<Loaded, StorageError> {
        let members = self.inner.members.load(None).await?;
        let root = self.inner.root.clone();
        let (events, skipped_lines) = tokio::task::spawn_blocking(move || load_events(&root))
            .await
            .map_err(|e| StorageError::Unavailable(format!("replay: {e}")))??;
        Ok(Loaded {
            members,
            events,
            skipped_lines,
        })
    }

    /// Folds while it reads: each event is reduced to what its thread needs as soon as it
    /// is parsed, so the whole log is never held (see [`Replay`]).
    async fn replay(&self) -> Result<Replayed, StorageError> {
        let members = self.inner.members.load(None).await?;
        let root = self.inner.root.clone();
        tokio::task::spawn_blocking(move || {
            let (replay, skipped_lines) = replay_events(&root)?;
            Ok(Replayed {
                events: replay.events(),
                exchanges: replay.finish_on(members, workers()),
                skipped_lines,
            })
        })
        .await
        .map_err(|e| StorageError::Unavailable(format!("replay: {e}")))?
    }

    async fn check(&self) -> Result<(), StorageError> {
        let root = self.inner.root.clone();
        tokio::task::spawn_blocking(move || {
            let meta =
                std::fs::metadata(&root).map_err(|e| from_io("stat", "the data directory", &e))?;
            if !meta.is_dir() {
                return Err(StorageError::Unavailable(
                    "the data directory is not a directory".into(),
                ));
            }
            // The only sure test of "writable": write. Beside `events/`, never inside it.
            let probe = root.join(format!(".write-check-{}", uuid::Uuid::new_v4()));
            // A byte, not just a name: a full disk may still have inodes for empty files.
            let written = std::fs::write(&probe, b"ok");
            let removed = std::fs::remove_file(&probe);
            written.map_err(|e| from_io("write in", "the data directory", &e))?;
            removed.map_err(|e| from_io("remove", "a write check", &e))
        })
        .await
        .map_err(|e| StorageError::Unavailable(format!("check: {e}")))?
    }
}

/// Segments are read in pieces of about this size, so one big segment still spreads over
/// every reader thread.
const PIECE: u64 = 4 << 20;

/// How many threads read (and fold) at start-up: one per core, up to 8.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
}

/// What a reader made of one piece, and how many of its lines were skipped.
type PieceResult<A> = Result<(A, usize), StorageError>;

/// One piece of one segment: the lines that start in `start..end`.
struct Piece {
    file: usize,
    start: u64,
    end: u64,
}

/// Reads every event line under `root/events`, in parallel, then orders them.
fn load_events(root: &Path) -> Result<(Vec<Event>, usize), StorageError> {
    let (parts, skipped) = read_segments(root, Vec::push)?;
    let total = parts.iter().map(Vec::len).sum();
    let mut events = Vec::with_capacity(total);
    for mut part in parts {
        events.append(&mut part);
    }
    layout::order(&mut events);
    Ok((events, skipped))
}

/// Reads every event line under `root/events`, in parallel, straight into a [`Replay`]:
/// each event is reduced to what its thread needs as soon as it is parsed.
fn replay_events(root: &Path) -> Result<(Replay, usize), StorageError> {
    let (parts, skipped) = read_segments(root, Replay::push)?;
    let mut replay = Replay::new();
    for part in parts {
        replay.append(part);
    }
    Ok((replay, skipped))
}

/// Reads every event line under `root/events` (after cutting torn tails), in pieces on
/// several threads, each piece's events given in stored order to `add` on an accumulator of
/// its own. Returns the accumulators in stored order (segments in path order, then pieces
/// in file order) and the count of skipped lines.
fn read_segments<A: Default + Send>(
    root: &Path,
    add: impl Fn(&mut A, Event) + Sync,
) -> Result<(Vec<A>, usize), StorageError> {
    let mut files = segment_files(root)?;
    let mut repaired = 0;
    for (path, name, len) in &mut files {
        if let Some(kept) = cut_torn_tail(path, name, *len)? {
            *len = kept;
            repaired += 1;
        }
    }
    let mut pieces = Vec::new();
    for (i, (_, _, len)) in files.iter().enumerate() {
        let mut start = 0;
        while start < *len {
            let end = (start + PIECE).min(*len);
            pieces.push(Piece {
                file: i,
                start,
                end,
            });
            start = end;
        }
    }
    let workers = workers();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Mutex<Option<PieceResult<A>>>> =
        pieces.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(pieces.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(piece) = pieces.get(i) else { break };
                    let (path, name, _) = &files[piece.file];
                    let r = read_piece(path, name, piece.start, piece.end, &add);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    let mut parts = Vec::with_capacity(results.len());
    let mut skipped = 0;
    for r in results {
        match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(r) => {
                let (part, s) = r?;
                parts.push(part);
                skipped += s;
            }
            None => return Err(StorageError::Unavailable("replay: a reader stopped".into())),
        }
    }
    Ok((parts, skipped + repaired))
}

/// A crash mid-write can leave a segment ending in part of a line. That write was never
/// acknowledged (acknowledgement waits for the sync), so the partial line is cut off, made
/// durable, and counted as skipped: the segment then holds whole lines only, which is what
/// DuckDB needs to read the directory. Returns the new length when it cut.
fn cut_torn_tail(path: &Path, name: &str, len: u64) -> Result<Option<u64>, StorageError> {
    use std::io::{Read, Seek, SeekFrom};
    if len == 0 {
        return Ok(None);
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| from_io("open", name, &e))?;
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| from_io("read", name, &e))?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    // Find the last newline, reading backwards in blocks.
    let mut end = len;
    let mut keep = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut buf[..n]))
            .map_err(|e| from_io("read", name, &e))?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    tracing::warn!(
        segment = name,
        cut_bytes = len - keep,
        "cut a torn last line left by a crash"
    );
    file.set_len(keep)
        .and_then(|()| file.sync_all())
        .map_err(|e| from_io("truncate", name, &e))?;
    Ok(Some(keep))
}

/// Every `events/exchange=*/**/*.jsonl` regular file: (absolute path, relative name,
/// length), in path order. Anything else under `events/` is foreign and ignored.
fn segment_files(root: &Path) -> Result<Vec<(PathBuf, String, u64)>, StorageError> {
    let events = root.join(EVENTS);
    let mut out = Vec::new();
    let top = match std::fs::read_dir(&events) {
        Ok(top) => top,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(from_io("list", EVENTS, &e)),
    };
    let mut dirs = Vec::new();
    for entry in top {
        let entry = entry.map_err(|e| from_io("list", EVENTS, &e))?;
        let name = entry.file_name();
        let is_dir = entry
            .file_type()
            .map_err(|e| from_io("stat", EVENTS, &e))?
            .is_dir();
        if let Some(name) = name.to_str()
            && is_dir
            && name.starts_with("exchange=")
        {
            dirs.push((entry.path(), format!("{EVENTS}/{name}")));
        }
    }
    while let Some((dir, rel)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| from_io("list", &rel, &e))? {
            let entry = entry.map_err(|e| from_io("list", &rel, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let kind = entry.file_type().map_err(|e| from_io("stat", &rel, &e))?;
            let child = format!("{rel}/{name}");
            if kind.is_dir() {
                dirs.push((entry.path(), child));
            } else if kind.is_file() && name.ends_with(".jsonl") {
                let len = entry
                    .metadata()
                    .map_err(|e| from_io("stat", &child, &e))?
                    .len();
                out.push((entry.path(), child, len));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Parses the lines of `path` that start in `start..end` (the last may run past `end`),
/// giving each event to `add`.
fn read_piece<A: Default>(
    path: &Path,
    name: &str,
    start: u64,
    end: u64,
    add: &impl Fn(&mut A, Event),
) -> PieceResult<A> {
    let mut file = File::open(path).map_err(|e| from_io("open", name, &e))?;
    let mut pos = start.saturating_sub(1);
    file.seek(SeekFrom::Start(pos))
        .map_err(|e| from_io("read", name, &e))?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let mut line = Vec::with_capacity(1024);
    if start > 0 {
        // The line running into this piece belongs to the previous one: skip to its end.
        // (If the byte before `start` is a newline, this reads just that byte.)
        pos += reader
            .read_until(b'\n', &mut line)
            .map_err(|e| from_io("read", name, &e))? as u64;
    }
    let mut acc = A::default();
    let mut skipped = Skipped::default();
    while pos < end {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| from_io("read", name, &e))?;
        if n == 0 {
            break;
        }
        match layout::parse_line(&line) {
            Ok(Some(e)) => add(&mut acc, e),
            Ok(None) => {}
            Err(()) => skipped.record(pos),
        }
        pos += n as u64;
    }
    layout::warn_skipped(&skipped, name);
    Ok((acc, skipped.count))
}
