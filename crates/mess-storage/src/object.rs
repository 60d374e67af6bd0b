//! [`ObjectStorage`]: the log and member records over any `object_store` (S3 in
//! production, `InMemory` in tests).

use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mess_core::ports::StorageKind;
use mess_core::{Event, ExchangeId, Loaded, Member, Storage, StorageError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::sync::oneshot;

use crate::batch::{Batcher, Queues, Sink, queue_for};
use crate::error::from_object_store;
use crate::layout::{self, Day, EVENTS, day_dir, is_event_object, new_segment_name};
use crate::lease::{LeaseTable, Seal, Seals};
use crate::members::{Members, READ_CONCURRENCY, read_object};

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
        })
    }

    /// Every event, member and seal of one exchange (`only`) or of all, read back; the
    /// events of segments their epoch's seal leaves out are not.
    async fn load_scope(&self, only: Option<&ExchangeId>) -> Result<Loaded, StorageError> {
        let members = self.inner.members.load(only).await?;
        let store = &self.inner.store;
        let seals = load_seals(store, only).await?;
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
                        .is_some_and(|x| seals.counts(&x, p.as_ref()));
                std::future::ready(keep)
            })
            .try_collect()
            .await
            .map_err(|e| from_object_store("list", &prefix, e))?;
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

/// One (exchange, day): every batch becomes a new object under `dir`.
struct DayPrefix {
    store: Arc<dyn ObjectStore>,
    dir: String,
    exchange: ExchangeId,
    fence: Option<Arc<LeaseTable>>,
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
        let name = match &self.fence {
            None => new_segment_name(),
            Some(leases) => match leases.begin(&self.exchange) {
                Some((epoch, batch)) => crate::lease::segment_name(epoch, batch),
                None => return guard(Some(leases), &self.exchange),
            },
        };
        let location = format!("{}/{}", self.dir, name);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(
                &Path::from(location.as_str()),
                PutPayload::from(bytes),
                opts,
            )
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
        guard(self.fence.as_deref(), &self.exchange)
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
