//! [`ObjectStorage`]: the log and member records over any `object_store` (S3 in
//! production, `InMemory` in tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mess_core::ports::StorageKind;
use mess_core::{Event, ExchangeId, Loaded, Member, Storage, StorageError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use tokio::sync::oneshot;

use crate::batch::{Batcher, Queues, Sink, queue_for};
use crate::error::from_object_store;
use crate::layout::{self, Day, EVENTS, day_dir, is_event_object, new_segment_name};
use crate::lease::{LeaseTable, MERGED, Seal, Seals, merged_of, merged_path, segment_epoch};
use crate::members::{Members, READ_CONCURRENCY, create_object, read_object};

/// Event segments and member records in an object store.
///
/// Each flush of a (exchange, day) queue is one new object, written create-only: every
/// `append` call that arrived while the previous PUT was in flight shares the next one.
#[derive(Clone)]
pub struct ObjectStorage {
    inner: Arc<Inner>,
}

struct Inner {
    kind: StorageKind,
    store: Arc<dyn ObjectStore>,
    queues: Queues<DayPrefix>,
    members: Members,
    /// The leases of this replica, when it is one of several on the bucket: every write
    /// is made under one, and acknowledged only if it is still held after.
    fence: Option<Arc<LeaseTable>>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("kind", &self.inner.kind)
            .field("store", &self.inner.store.to_string())
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// Storage over `store`; `kind` is what [`Storage::kind`] reports (`S3`, `Memory`).
    pub fn new(store: Arc<dyn ObjectStore>, kind: StorageKind) -> Self {
        Self::with_fence(store, kind, None)
    }

    /// Storage for one replica of several on the bucket: writes of an exchange are made
    /// only under its lease in `leases`, with segments named by epoch and batch
    /// ([`crate::lease`]), and acknowledged only if the lease is still held after.
    pub fn fenced(store: Arc<dyn ObjectStore>, kind: StorageKind, leases: Arc<LeaseTable>) -> Self {
        Self::with_fence(store, kind, Some(leases))
    }

    fn with_fence(
        store: Arc<dyn ObjectStore>,
        kind: StorageKind,
        fence: Option<Arc<LeaseTable>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                members: Members::new(Arc::clone(&store)),
                store,
                queues: Queues::default(),
                fence,
            }),
        }
    }

    /// Refuses a write of `exchange` unless this process may make it now: always without
    /// leases; with them, only while `exchange`'s lease is held.
    fn guard(&self, exchange: &ExchangeId) -> Result<(), StorageError> {
        guard(self.inner.fence.as_deref(), exchange)
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    fn queue(&self, exchange: &ExchangeId, day: Day) -> Arc<Batcher<DayPrefix>> {
        queue_for(&self.inner.queues, exchange, day, || DayPrefix {
            store: Arc::clone(&self.inner.store),
            dir: day_dir(exchange, day),
            exchange: exchange.clone(),
            fence: self.inner.fence.clone(),
            merging: Mutex::new(Merging::default()),
        })
    }

    /// Every event, member and seal of one exchange (`only`) or of all, read back; the
    /// events of segments their epoch's seal leaves out are not.
    async fn load_scope(&self, only: Option<&ExchangeId>) -> Result<Loaded, StorageError> {
        let members = self.inner.members.load(only).await?;
        let store = &self.inner.store;
        let seals = load_seals(store, only).await?;
        let runs = load_runs(store, only, &seals).await?;
        let prefix = match only {
            Some(x) => mess_core::layout::events_prefix(x),
            None => EVENTS.to_owned(),
        };
        let mut paths: Vec<Path> = store
            .list(Some(&Path::from(prefix.as_str())))
            .map_ok(|meta| meta.location)
            .try_filter(|p| {
                let keep = is_event_object(p.as_ref())
                    && mess_core::layout::segment_exchange(p.as_ref())
                        .is_some_and(|x| seals.counts(&x, p.as_ref()))
                    && !runs.covers(p.as_ref());
                std::future::ready(keep)
            })
            .try_collect()
            .await
            .map_err(|e| from_object_store("list", &prefix, e))?;
        paths.extend(runs.paths);
        paths.sort();
        let parts: Vec<(Vec<Event>, usize)> = futures::stream::iter(paths)
            .map(|path| {
                let store = Arc::clone(store);
                async move {
                    let bytes = read_object(&*store, &path).await?;
                    tokio::task::spawn_blocking(move || {
                        let mut events = Vec::new();
                        let skipped = layout::parse_lines(bytes.as_ref(), &mut events);
                        layout::warn_skipped(&skipped, path.as_ref());
                        (events, skipped.count)
                    })
                    .await
                    .map_err(|e| StorageError::Unavailable(format!("replay: {e}")))
                }
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut events = Vec::with_capacity(parts.iter().map(|(e, _)| e.len()).sum());
        let mut skipped_lines = 0;
        for (mut e, s) in parts {
            events.append(&mut e);
            skipped_lines += s;
        }
        layout::order(&mut events);
        Ok(Loaded {
            members,
            events,
            skipped_lines,
        })
    }

    /// Merges now the runs of `exchange`'s acknowledged batches not merged yet, so that the
    /// next owner reads runs only: before its lease is given back.
    pub(crate) async fn merge_pending(&self, exchange: &ExchangeId) {
        let days: Vec<Arc<DayPrefix>> = {
            let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues
                .iter()
                .filter(|((x, _), _)| x == exchange)
                .map(|(_, q)| Arc::clone(q.sink()))
                .collect()
        };
        for day in days {
            day.merge_stored().await;
        }
    }

    /// One exchange's members and counted events ([`Storage::load`] for one exchange).
    pub async fn load_exchange(&self, exchange: &ExchangeId) -> Result<Loaded, StorageError> {
        self.load_scope(Some(exchange)).await
    }

    /// One exchange's stored idempotent answers.
    pub async fn load_answers_of(
        &self,
        exchange: &ExchangeId,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let answers = self.inner.members.load_answers(Some(exchange)).await?;
        Ok(answers.into_iter().map(|(_, a)| a).collect())
    }
}

/// [`ObjectStorage::guard`], for a fence that may be absent.
fn guard(fence: Option<&LeaseTable>, exchange: &ExchangeId) -> Result<(), StorageError> {
    match fence {
        Some(t) if !t.holds(exchange) => Err(StorageError::Unavailable(format!(
            "this replica does not hold the lease of exchange {exchange}"
        ))),
        _ => Ok(()),
    }
}

/// Every seal (of `only` that exchange) in the store.
pub(crate) async fn load_seals(
    store: &Arc<dyn ObjectStore>,
    only: Option<&ExchangeId>,
) -> Result<Seals, StorageError> {
    let prefix = match only {
        Some(x) => crate::lease::leases_prefix(x),
        None => crate::lease::LEASES.to_owned(),
    };
    let paths: Vec<Path> = store
        .list(Some(&Path::from(prefix.as_str())))
        .map_ok(|meta| meta.location)
        .try_filter(|p| std::future::ready(crate::lease::seal_of(p.as_ref()).is_some()))
        .try_collect()
        .await
        .map_err(|e| from_object_store("list", &prefix, e))?;
    let read: Vec<(ExchangeId, Seal)> = futures::stream::iter(paths)
        .map(|path| {
            let store = Arc::clone(store);
            async move {
                let bytes = read_object(&*store, &path).await?;
                let seal: Seal = serde_json::from_slice(bytes.as_ref())
                    .map_err(|e| StorageError::Corrupt(format!("{path}: {e}")))?;
                let (x, _) = crate::lease::seal_of(path.as_ref()).unwrap_or_else(|| unreachable!());
                Ok::<_, StorageError>((x, seal))
            }
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let mut seals = Seals::default();
    for (x, seal) in read {
        seals.insert(x, seal);
    }
    Ok(seals)
}

/// The merged runs replay reads in place of their segments ([`crate::lease::MERGED`]).
#[derive(Default)]
struct Runs {
    /// By events day directory, then epoch: the batch runs covered.
    covered: HashMap<String, HashMap<u32, Vec<(u32, u32)>>>,
    /// The merged objects to read.
    paths: Vec<Path>,
}

impl Runs {
    /// Whether the segment at `path` is read through a merged run instead.
    fn covers(&self, path: &str) -> bool {
        let (Some((epoch, batch)), Some((dir, _))) = (segment_epoch(path), path.rsplit_once('/'))
        else {
            return false;
        };
        self.covered
            .get(dir)
            .and_then(|epochs| epochs.get(&epoch))
            .is_some_and(|runs| runs.iter().any(|(f, l)| (*f..=*l).contains(&batch)))
    }
}

/// Every merged run (of `only` that exchange) that replay may read in place of its
/// segments: one whose epoch is not sealed yet, or whose seal counts every batch of it.
async fn load_runs(
    store: &Arc<dyn ObjectStore>,
    only: Option<&ExchangeId>,
    seals: &Seals,
) -> Result<Runs, StorageError> {
    let prefix = match only {
        Some(x) => format!("{MERGED}/exchange={x}/"),
        None => format!("{MERGED}/"),
    };
    let listed: Vec<Path> = store
        .list(Some(&Path::from(prefix.as_str())))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| from_object_store("list", &prefix, e))?;
    let mut runs = Runs::default();
    for path in listed {
        let Some(run) = merged_of(path.as_ref()) else {
            continue;
        };
        let sealed = seals.of(&run.exchange).and_then(|s| s.get(&run.epoch));
        if sealed.is_some_and(|s| !(run.first..=run.last).all(|b| s.counts(b))) {
            continue;
        }
        runs.covered
            .entry(run.events_dir)
            .or_default()
            .entry(run.epoch)
            .or_default()
            .push((run.first, run.last));
        runs.paths.push(path);
    }
    Ok(runs)
}

/// How many batches of one epoch an owner lets pile up in a day directory before it
/// merges each unbroken run of them into one object for replay ([`crate::lease::MERGED`]):
/// taking an exchange over then reads a few hundred objects, not one per batch.
const MERGE_EVERY: usize = 32;

/// How many bytes of those batches it keeps (the merge writes them from memory: no bucket
/// read): past this, it merges what it has.
const MERGE_BYTES: usize = 256 << 10;

/// The batches of a day directory this owner stored and acknowledged, not merged yet, with
/// their bytes.
#[derive(Default)]
struct Merging {
    epoch: u32,
    stored: BTreeMap<u32, Vec<u8>>,
    bytes: usize,
}

/// One (exchange, day): every batch becomes a new object under `dir`.
struct DayPrefix {
    store: Arc<dyn ObjectStore>,
    dir: String,
    exchange: ExchangeId,
    fence: Option<Arc<LeaseTable>>,
    merging: Mutex<Merging>,
}

impl DayPrefix {
    /// Notes an acknowledged batch of `epoch`; past [`MERGE_EVERY`] of them (or
    /// [`MERGE_BYTES`]), merges them in the background.
    fn stored(self: &Arc<Self>, epoch: u32, batch: u32, bytes: Vec<u8>) {
        let runs = {
            let mut m = self.merging.lock().unwrap_or_else(|e| e.into_inner());
            if m.epoch != epoch {
                *m = Merging {
                    epoch,
                    ..Merging::default()
                };
            }
            m.bytes += bytes.len();
            m.stored.insert(batch, bytes);
            if m.stored.len() < MERGE_EVERY && m.bytes < MERGE_BYTES {
                return;
            }
            Self::take_runs(&mut m)
        };
        let this = Arc::clone(self);
        tokio::spawn(async move { this.merge_runs(runs).await });
    }

    /// Merges now every run of the batches noted and not merged yet.
    async fn merge_stored(&self) {
        let runs = Self::take_runs(&mut self.merging.lock().unwrap_or_else(|e| e.into_inner()));
        self.merge_runs(runs).await;
    }

    /// Takes the batches noted, as their epoch and unbroken runs: each batch is merged by
    /// the one merge that took it (two merges of a day directory never overlap).
    fn take_runs(m: &mut Merging) -> (u32, Vec<(u32, u32, Vec<u8>)>) {
        m.bytes = 0;
        (m.epoch, runs_of(std::mem::take(&mut m.stored)))
    }

    async fn merge_runs(&self, (epoch, runs): (u32, Vec<(u32, u32, Vec<u8>)>)) {
        for (first, last, bytes) in runs {
            if let Err(e) = self.merge(epoch, first, last, bytes).await {
                tracing::warn!(dir = %self.dir, error = %e, "could not merge a run of batches (replay reads them one by one)");
            }
        }
    }

    /// Writes the merged object of the batches `first..=last` of `epoch`, whose lines are
    /// `bytes`.
    async fn merge(
        &self,
        epoch: u32,
        first: u32,
        last: u32,
        bytes: Vec<u8>,
    ) -> Result<(), StorageError> {
        let path = merged_path(&self.dir, epoch, first, last);
        match create_object(&*self.store, &path, bytes).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(from_object_store("write", &path, e)),
        }
    }
}

/// The unbroken runs of batch numbers in `stored` (two batches or more), in order: each
/// as its first and last batch and their lines.
fn runs_of(stored: BTreeMap<u32, Vec<u8>>) -> Vec<(u32, u32, Vec<u8>)> {
    let mut runs: Vec<(u32, u32, Vec<u8>)> = Vec::new();
    for (batch, bytes) in stored {
        match runs.last_mut() {
            Some((_, last, lines)) if *last + 1 == batch => {
                *last = batch;
                lines.extend_from_slice(&bytes);
            }
            _ => runs.push((batch, batch, bytes)),
        }
    }
    runs.retain(|(first, last, _)| first < last);
    runs
}

impl Sink for DayPrefix {
    async fn flush(
        self: Arc<Self>,
        bytes: Vec<u8>,
        placed: oneshot::Sender<()>,
    ) -> Result<(), StorageError> {
        // Every batch is an object of its own (replay orders events by `seq`, not by
        // object): the PUTs of later batches may run beside this one.
        let _ = placed.send(());
        let tagged = match &self.fence {
            None => None,
            Some(leases) => match leases.begin(&self.exchange) {
                Some(tag) => Some(tag),
                None => return guard(Some(leases), &self.exchange),
            },
        };
        let name = match tagged {
            None => new_segment_name(),
            Some((epoch, batch)) => crate::lease::segment_name(epoch, batch),
        };
        let location = format!("{}/{}", self.dir, name);
        // Under a lease, a copy is kept to merge from ([`DayPrefix::stored`]).
        let kept = tagged.map(|tag| (tag, bytes.clone()));
        create_object(&*self.store, &location, bytes)
            .await
            .map_err(|e| {
                // A failed PUT may still have been stored (its answer lost): under a lease,
                // that ends the epoch. Nothing more is acknowledged in it, and the exchange
                // is taken anew, sealing what the store holds, before anything else is
                // decided (a retry decided on the rolled-back state would reuse its `seq`).
                if let Some(leases) = &self.fence {
                    leases.remove(&self.exchange);
                }
                match from_object_store("write", &location, e) {
                    // A fresh uuid cannot be taken: whatever this is, it is not a lost race.
                    StorageError::AlreadyExists => {
                        StorageError::Unavailable(format!("write {location}: name collision"))
                    }
                    other => other,
                }
            })?;
        // Durable; acknowledged only if the lease was still held after it.
        guard(self.fence.as_deref(), &self.exchange)?;
        if let Some(((epoch, batch), bytes)) = kept {
            self.stored(epoch, batch, bytes);
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    fn kind(&self) -> StorageKind {
        self.inner.kind
    }

    async fn append(&self, events: &[Event]) -> Result<(), StorageError> {
        let groups = layout::encode_by_segment(events);
        let waits = groups.iter().map(|((exchange, day), bytes)| {
            let queue = self.queue(exchange, *day);
            async move { queue.submit(bytes).await }
        });
        futures::future::try_join_all(waits).await.map(drop)
    }

    async fn create_member(&self, member: &Member) -> Result<(), StorageError> {
        self.guard(&member.exchange_id)?;
        self.inner.members.put(member, PutMode::Create).await?;
        self.guard(&member.exchange_id)
    }

    async fn replace_member(&self, member: &Member) -> Result<(), StorageError> {
        self.guard(&member.exchange_id)?;
        self.inner.members.put(member, PutMode::Overwrite).await?;
        self.guard(&member.exchange_id)
    }

    async fn delete_member(&self, member: &Member) -> Result<(), StorageError> {
        self.guard(&member.exchange_id)?;
        self.inner.members.delete(member).await?;
        self.guard(&member.exchange_id)
    }

    async fn put_answer(
        &self,
        exchange: &ExchangeId,
        scope: &str,
        answer: Vec<u8>,
    ) -> Result<(), StorageError> {
        self.guard(exchange)?;
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
        self.load_scope(None).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        // A LIST fails on a wrong bucket, endpoint or credentials; but a bucket that can
        // be listed may still refuse writes (a read-only key, a full quota, an object
        // lock), and writes are what a degraded server fails. So, as on a filesystem:
        // write a probe, beside `events/` and never inside it, then delete it.
        self.inner
            .store
            .list_with_delimiter(Some(&Path::from(layout::EXECUTORS)))
            .await
            .map_err(|e| from_object_store("list", layout::EXECUTORS, e))?;
        let probe = Path::from(format!(".write-check-{}", uuid::Uuid::new_v4()));
        self.inner
            .store
            .put(&probe, PutPayload::from_static(b"ok"))
            .await
            .map_err(|e| from_object_store("write", "a write check", e))?;
        self.inner
            .store
            .delete(&probe)
            .await
            .map_err(|e| from_object_store("delete", "a write check", e))
    }
}
