//! [`Replicas`]: one process of several sharing a bucket, each exchange owned by one of
//! them at a time through a lease object written only with conditional PUTs
//! (docs/architecture.md, "Replicas"). This is the [`Ownership`] port's adapter: taking a
//! lease (and sealing the epoch before it), renewing, giving back; the storage it hands
//! out writes only under a held lease ([`ObjectStorage::fenced`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mess_core::ports::StorageKind;
use mess_core::{ExchangeId, Located, Ownership, Replayed, Storage, StorageError, Taken};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::from_object_store;
use crate::lease::{
    FENCED, Held, LeaseRecord, LeaseTable, Seal, lease_path, seal_path, segment_epoch,
};
use crate::members::create_object;
use crate::object::{ObjectStorage, load_seals};

/// How much of a period a holder counts on after sending a successful renewal: the rest
/// absorbs clock-rate differences and a late timer. Another replica waits a whole period
/// from when it first saw that version of the lease.
const HOLDER_SHARE: f64 = 0.8;

/// What this replica last saw of a lease it does not hold.
#[derive(Debug, Clone)]
struct Seen {
    etag: String,
    record: LeaseRecord,
    /// When this replica first saw this version (ETag) of it.
    first: Instant,
    /// When it last read it.
    checked: Instant,
}

/// This replica: its identity, its leases, and the bucket.
pub struct Replicas {
    store: Arc<dyn ObjectStore>,
    storage: ObjectStorage,
    table: Arc<LeaseTable>,
    /// A fresh uuid at each start: a restarted replica is a new owner.
    me: String,
    url: String,
    period: Duration,
    seen: Mutex<HashMap<ExchangeId, Seen>>,
    /// Every lease write's `beat`.
    beats: std::sync::atomic::AtomicU64,
    /// Shutting down: no lease is taken any more.
    draining: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("me", &self.me)
            .field("url", &self.url)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// Why a lease write did not happen.
enum LeaseWrite {
    /// Someone else wrote the lease first (the ETag moved, or it exists already).
    Lost,
    /// Storage failed.
    Failed(StorageError),
}

impl Replicas {
    /// This replica over `store` (S3), advertised at `url`, with leases of `period`.
    pub fn new(store: Arc<dyn ObjectStore>, url: String, period: Duration) -> Self {
        let table = Arc::new(LeaseTable::default());
        Self {
            storage: ObjectStorage::fenced(Arc::clone(&store), StorageKind::S3, Arc::clone(&table)),
            store,
            table,
            me: uuid::Uuid::new_v4().to_string(),
            url,
            period,
            seen: Mutex::new(HashMap::new()),
            beats: std::sync::atomic::AtomicU64::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The storage this replica writes through: every write under a held lease.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(self.storage.clone())
    }

    /// The leases held, as every write of [`Replicas::storage`] checks them.
    pub(crate) fn lease_table(&self) -> &Arc<LeaseTable> {
        &self.table
    }

    /// How long a lease seen as `record` must stay unchanged before it may be taken: a
    /// whole period, the holder's if it is longer than this replica's (a rolling change of
    /// `LEASE_PERIOD`, an operator command with its own).
    fn patience(&self, record: &LeaseRecord) -> Duration {
        self.period.max(Duration::from_millis(record.period_ms))
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<ExchangeId, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lease object of `exchange` and its ETag, if there is one.
    async fn read(
        &self,
        exchange: &ExchangeId,
    ) -> Result<Option<(LeaseRecord, String)>, StorageError> {
        let path = lease_path(exchange);
        let got = match self.store.get(&Path::from(path.as_str())).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(from_object_store("read", &path, e)),
        };
        let etag = got.meta.e_tag.clone().unwrap_or_default();
        let bytes = got
            .bytes()
            .await
            .map_err(|e| from_object_store("read", &path, e))?;
        let record = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::Corrupt(format!("{path}: {e}")))?;
        Ok(Some((record, etag)))
    }

    /// Writes the lease object: create-only when `expect` is `None`, else only over that
    /// ETag. Returns the new ETag.
    async fn write(
        &self,
        exchange: &ExchangeId,
        record: &LeaseRecord,
        expect: Option<&str>,
    ) -> Result<String, LeaseWrite> {
        let path = lease_path(exchange);
        let body = serde_json::to_vec(record)
            .map_err(|e| LeaseWrite::Failed(StorageError::Unavailable(e.to_string())))?;
        let mode = match expect {
            None => PutMode::Create,
            Some(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.to_owned()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&Path::from(path.as_str()), PutPayload::from(body), opts)
            .await
        {
            Ok(put) => Ok(put.e_tag.unwrap_or_default()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(LeaseWrite::Lost),
            Err(e) => Err(LeaseWrite::Failed(from_object_store("write", &path, e))),
        }
    }

    fn record(&self, epoch: u32, released: bool) -> LeaseRecord {
        self.record_waking(epoch, released, None)
    }

    fn record_waking(&self, epoch: u32, released: bool, wake_at_ms: Option<i64>) -> LeaseRecord {
        LeaseRecord {
            owner: self.me.clone(),
            url: self.url.clone(),
            epoch,
            period_ms: u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX),
            released,
            beat: self
                .beats
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            wake_at_ms,
        }
    }

    fn valid_from(&self, sent: Instant) -> Instant {
        sent + self.period.mul_f64(HOLDER_SHARE)
    }

    /// Whether a lease seen as `record` with `etag` may be taken now: given back, left by
    /// an earlier life of this replica id (never: ids are fresh), or unchanged for a
    /// whole period of this replica's clock since it first saw that version.
    fn expired(&self, exchange: &ExchangeId, record: &LeaseRecord, etag: &str) -> bool {
        if record.released || record.owner == self.me {
            return true;
        }
        let now = Instant::now();
        let mut seen = self.seen();
        let fresh = || Seen {
            etag: etag.to_owned(),
            record: record.clone(),
            first: now,
            checked: now,
        };
        let entry = seen.entry(exchange.clone()).or_insert_with(fresh);
        if entry.etag != etag {
            // A new version: its period starts now.
            *entry = fresh();
        }
        entry.checked = now;
        now.duration_since(entry.first) >= self.patience(record)
    }

    /// Takes `exchange`'s lease over `prev` (its ETag and epoch, or none), seals the
    /// epochs before, and reads the exchange back. `Ok(None)`: another replica took it
    /// first.
    async fn take(
        &self,
        exchange: &ExchangeId,
        prev: Option<(&str, u32)>,
    ) -> Result<Option<Taken>, StorageError> {
        let epoch = prev.map_or(1, |(_, e)| e + 1);
        let sent = Instant::now();
        let etag = match self
            .write(exchange, &self.record(epoch, false), prev.map(|(t, _)| t))
            .await
        {
            Ok(etag) => etag,
            Err(LeaseWrite::Lost) => return Ok(None),
            Err(LeaseWrite::Failed(e)) => return Err(e),
        };
        self.seen().remove(exchange);
        self.table.put(
            exchange.clone(),
            Held {
                epoch,
                etag,
                valid_until: self.valid_from(sent),
                batch: 0,
            },
        );
        let taken = async {
            self.seal(exchange, epoch).await?;
            let mut replayed = Replayed::fold(self.storage.load_exchange(exchange).await?);
            let answers = self.storage.load_answers_of(exchange).await?;
            let events = replayed.events;
            let exchange_state = replayed
                .exchanges
                .remove(exchange)
                .unwrap_or_else(|| mess_core::Exchange::new(exchange.clone()));
            if !self.table.holds(exchange) {
                return Err(StorageError::Unavailable(format!(
                    "lost the lease of exchange {exchange} while reading it"
                )));
            }
            Ok(Taken {
                exchange: exchange_state,
                answers,
                events,
            })
        }
        .await;
        if taken.is_err() {
            self.table.remove(exchange);
        }
        tracing::info!(exchange = %exchange, epoch, ok = taken.is_ok(), "took the lease of an exchange");
        taken.map(Some)
    }

    /// Seals every epoch of `exchange` before `mine` that has no seal yet (with the
    /// batches stored now), and moves the segments a seal leaves out to `fenced/`.
    async fn seal(&self, exchange: &ExchangeId, mine: u32) -> Result<(), StorageError> {
        let mut seals: BTreeMap<u32, Seal> = load_seals(&self.store, Some(exchange))
            .await?
            .of(exchange)
            .cloned()
            .unwrap_or_default();
        let prefix = mess_core::layout::events_prefix(exchange);
        let segments: Vec<(Path, u32, u32)> = self
            .store
            .list(Some(&Path::from(prefix.as_str())))
            .try_filter_map(|meta| {
                let tagged =
                    segment_epoch(meta.location.as_ref()).map(|(e, b)| (meta.location, e, b));
                std::future::ready(Ok(tagged))
            })
            .try_collect()
            .await
            .map_err(|e| from_object_store("list", &prefix, e))?;
        for epoch in 1..mine {
            if seals.contains_key(&epoch) {
                continue;
            }
            let batches = segments.iter().filter(|s| s.1 == epoch).map(|s| s.2);
            let seal = Seal::of(epoch, batches);
            let path = seal_path(exchange, epoch);
            let body =
                serde_json::to_vec(&seal).map_err(|e| StorageError::Unavailable(e.to_string()))?;
            match create_object(&*self.store, &path, body).await {
                Ok(_) => {
                    seals.insert(epoch, seal);
                }
                // Sealed meanwhile by an owner between (deposed since): that seal stands.
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => {
                    let sealed = load_seals(&self.store, Some(exchange)).await?;
                    if let Some(s) = sealed.of(exchange).and_then(|s| s.get(&epoch)) {
                        seals.insert(epoch, s.clone());
                    }
                }
                Err(e) => return Err(from_object_store("write", &path, e)),
            }
        }
        let strays: Vec<&Path> = segments
            .iter()
            .filter(|(_, e, b)| seals.get(e).is_some_and(|s| !s.counts(*b)))
            .map(|(p, _, _)| p)
            .collect();
        for path in strays {
            self.fence_out(path).await?;
        }
        Ok(())
    }

    /// Moves an unacknowledged segment of a sealed epoch from `events/` to `fenced/`.
    async fn fence_out(&self, path: &Path) -> Result<(), StorageError> {
        let to = Path::from(format!(
            "{FENCED}/{}",
            path.as_ref()
                .strip_prefix("events/")
                .unwrap_or(path.as_ref())
        ));
        self.store
            .copy(path, &to)
            .await
            .map_err(|e| from_object_store("copy", path.as_ref(), e))?;
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(from_object_store("delete", path.as_ref(), e)),
        }
        tracing::warn!(segment = %path, "moved a deposed owner's unacknowledged segment to fenced/");
        Ok(())
    }

    /// [`Ownership::locate`]; with `due_within`, for the sweep: an exchange given back
    /// idle is left unless its next timer is due within that.
    async fn locate_inner(
        &self,
        exchange: &ExchangeId,
        due_within: Option<Duration>,
    ) -> Result<Located, StorageError> {
        if self.table.holds(exchange) {
            return Ok(Located::Here);
        }
        // A recent look at a live lease held elsewhere is good enough to forward.
        if let Some(s) = self.seen().get(exchange)
            && s.checked.elapsed() < self.period / 4
            && s.first.elapsed() < self.patience(&s.record)
            && !s.record.released
        {
            return Ok(Located::There(s.record.url.clone()));
        }
        let current = self.read(exchange).await?;
        // A lease this replica held but let lapse (or lost) is taken over like any other.
        self.table.remove(exchange);
        let prev = match &current {
            None => None,
            Some((record, etag)) => {
                if !self.expired(exchange, record, etag) {
                    return Ok(Located::There(record.url.clone()));
                }
                if let Some(within) = due_within
                    && record.released
                    && record.wake_at_ms.is_none_or(|at| {
                        at > mess_core::Clock::now(&mess_core::SystemClock)
                            .unix_millis()
                            .saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX))
                    })
                {
                    return Ok(Located::Idle);
                }
                Some((etag.as_str(), record.epoch))
            }
        };
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StorageError::Unavailable(
                "this replica is shutting down and takes no exchange".into(),
            ));
        }
        match self.take(exchange, prev).await? {
            Some(taken) => Ok(Located::Taken(Box::new(taken))),
            // Taken by another replica first: it serves it.
            None => match self.read(exchange).await? {
                Some((record, etag)) if record.owner != self.me => {
                    self.expired(exchange, &record, &etag);
                    Ok(Located::There(record.url))
                }
                _ => Err(StorageError::Unavailable(format!(
                    "the lease of exchange {exchange} is changing hands"
                ))),
            },
        }
    }

    /// Renews one lease; `false` if it is lost.
    async fn renew_one(&self, exchange: &ExchangeId, held: Held) -> bool {
        let sent = Instant::now();
        match self
            .write(exchange, &self.record(held.epoch, false), Some(&held.etag))
            .await
        {
            Ok(etag) => {
                self.table
                    .renewed(exchange, held.epoch, etag, self.valid_from(sent));
                true
            }
            Err(LeaseWrite::Lost) => false,
            Err(LeaseWrite::Failed(e)) => {
                let alive = Instant::now() < held.valid_until;
                tracing::warn!(exchange = %exchange, error = %e, alive, "could not renew a lease");
                alive
            }
        }
    }
}

#[async_trait]
impl Ownership for Replicas {
    fn url(&self) -> &str {
        &self.url
    }

    fn holds(&self, exchange: &ExchangeId) -> bool {
        self.table.holds(exchange)
    }

    fn owned(&self) -> usize {
        self.table.len()
    }

    fn period(&self) -> Duration {
        self.period
    }

    async fn moved(&self, exchange: &ExchangeId, from: &str) -> bool {
        // Held requests forwarded to one owner share one look at its lease.
        if let Some(s) = self.seen().get(exchange)
            && s.checked.elapsed() < self.period / 4
        {
            return s.record.url != from
                || s.record.released
                || s.first.elapsed() >= self.patience(&s.record);
        }
        match self.read(exchange).await {
            Ok(None) => true,
            Ok(Some((record, etag))) => {
                record.url != from || self.expired(exchange, &record, &etag)
            }
            // Storage cannot say: keep waiting for the owner.
            Err(_) => false,
        }
    }

    async fn locate(&self, exchange: &ExchangeId) -> Result<Located, StorageError> {
        self.locate_inner(exchange, None).await
    }

    async fn locate_due(
        &self,
        exchange: &ExchangeId,
        within: Duration,
    ) -> Result<Located, StorageError> {
        self.locate_inner(exchange, Some(within)).await
    }

    async fn exchanges(&self) -> Result<Vec<ExchangeId>, StorageError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from(crate::layout::EXECUTORS)))
            .await
            .map_err(|e| from_object_store("list", crate::layout::EXECUTORS, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| {
                let dir = p.as_ref().rsplit('/').next()?;
                ExchangeId::parse(dir.strip_prefix("exchange=")?).ok()
            })
            .collect())
    }

    async fn renew(&self) -> Vec<ExchangeId> {
        let held = self.table.all();
        let results: Vec<(ExchangeId, bool)> = futures::stream::iter(held)
            .map(|(x, h)| async move {
                let kept = self.renew_one(&x, h).await;
                (x, kept)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut lost = Vec::new();
        for (x, kept) in results {
            if !kept {
                self.table.remove(&x);
                tracing::warn!(exchange = %x, "lost the lease of an exchange");
                lost.push(x);
            }
        }
        lost
    }

    fn abandon(&self, exchange: &ExchangeId) {
        self.table.remove(exchange);
    }

    fn forget(&self, exchange: &ExchangeId) {
        self.seen().remove(exchange);
    }

    fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    async fn release(&self, exchange: &ExchangeId, wake_at: Option<mess_core::Timestamp>) {
        // No write is acknowledged from here on.
        let Some(held) = self.table.remove(exchange) else {
            return;
        };
        // Its writer is drained: what it wrote in this epoch is merged, for the next owner.
        self.storage.merge_pending(exchange).await;
        let record = self.record_waking(held.epoch, true, wake_at.map(|t| t.unix_millis()));
        match self.write(exchange, &record, Some(&held.etag)).await {
            Ok(_) => tracing::info!(exchange = %exchange, "gave the lease back"),
            Err(LeaseWrite::Lost) => {}
            Err(LeaseWrite::Failed(e)) => {
                tracing::warn!(exchange = %exchange, error = %e, "could not give a lease back: it runs out by itself");
            }
        }
    }

    async fn release_all(&self) {
        self.drain();
        let held = self.table.all();
        futures::stream::iter(held)
            .for_each_concurrent(16, |(x, _)| async move { self.release(&x, None).await })
            .await;
    }
}
