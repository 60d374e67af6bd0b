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
use crate::members::{Members, READ_CONCURRENCY};

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
        Self {
            inner: Arc::new(Inner {
                kind,
                members: Members::new(Arc::clone(&store)),
                store,
                queues: Queues::default(),
            }),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    fn queue(&self, exchange: &ExchangeId, day: Day) -> Arc<Batcher<DayPrefix>> {
        queue_for(&self.inner.queues, exchange, day, || DayPrefix {
            store: Arc::clone(&self.inner.store),
            dir: day_dir(exchange, day),
        })
    }
}

/// One (exchange, day): every batch becomes a new object under `dir`.
struct DayPrefix {
    store: Arc<dyn ObjectStore>,
    dir: String,
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
        let location = format!("{}/{}", self.dir, new_segment_name());
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
            .map(drop)
            .map_err(|e| match from_object_store("write", &location, e) {
                // A fresh uuid cannot be taken: whatever this is, it is not a lost race.
                StorageError::AlreadyExists => {
                    StorageError::Unavailable(format!("write {location}: name collision"))
                }
                other => other,
            })
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
        self.inner.members.load_answers().await
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
        let members = self.inner.members.load().await?;
        let store = &self.inner.store;
        let mut paths: Vec<Path> = store
            .list(Some(&Path::from(EVENTS)))
            .map_ok(|meta| meta.location)
            .try_filter(|p| std::future::ready(is_event_object(p.as_ref())))
            .try_collect()
            .await
            .map_err(|e| from_object_store("list", EVENTS, e))?;
        paths.sort();
        let parts: Vec<(Vec<Event>, usize)> = futures::stream::iter(paths)
            .map(|path| {
                let store = Arc::clone(store);
                async move {
                    let read = |e| from_object_store("read", path.as_ref(), e);
                    let bytes = store
                        .get(&path)
                        .await
                        .map_err(read)?
                        .bytes()
                        .await
                        .map_err(read)?;
                    tokio::task::spawn_blocking(move || {
                        let mut events = Vec::new();
                        let skipped = layout::parse_lines(&bytes, &mut events);
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
