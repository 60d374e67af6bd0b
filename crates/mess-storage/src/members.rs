//! Member records, one object each, over any `object_store`: create-only registration and
//! atomic replacement are the store's own guarantees.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use mess_core::layout::{ANSWERS, answer_exchange, answer_path, blob_path, secret_path};
use mess_core::{ExchangeId, Member, StorageError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::from_object_store;
use crate::layout::{EXECUTORS, is_member_object, member_path};

/// How many objects replay reads at once.
pub(crate) const READ_CONCURRENCY: usize = 16;

/// Writes `bytes` at `path` only if nothing is there yet (`If-None-Match: *`); one that
/// is comes back as `object_store::Error::AlreadyExists`.
pub(crate) async fn create_object(
    store: &dyn ObjectStore,
    path: &str,
    bytes: impl Into<PutPayload>,
) -> object_store::Result<object_store::PutResult> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store.put_opts(&Path::from(path), bytes.into(), opts).await
}

/// The whole of the object at `path`.
pub(crate) async fn read_object(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<impl AsRef<[u8]> + Send + 'static, StorageError> {
    let read = |e| from_object_store("read", path.as_ref(), e);
    store
        .get(path)
        .await
        .map_err(read)?
        .bytes()
        .await
        .map_err(read)
}

#[derive(Debug, Clone)]
pub(crate) struct Members {
    store: Arc<dyn ObjectStore>,
}

impl Members {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    pub(crate) async fn put(&self, member: &Member, mode: PutMode) -> Result<(), StorageError> {
        let location = member_path(&member.exchange_id, &member.executor_id);
        let body = serde_json::to_vec_pretty(member)
            .map_err(|e| StorageError::Unavailable(format!("encode {location}: {e}")))?;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let op = match opts.mode {
            PutMode::Create => "create",
            _ => "replace",
        };
        self.store
            .put_opts(&Path::from(location.as_str()), PutPayload::from(body), opts)
            .await
            .map(drop)
            .map_err(|e| from_object_store(op, &location, e))
    }

    pub(crate) async fn delete(&self, member: &Member) -> Result<(), StorageError> {
        let location = member_path(&member.exchange_id, &member.executor_id);
        match self.store.delete(&Path::from(location.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_object_store("delete", &location, e)),
        }
    }

    /// Stores an idempotent answer (replacing).
    pub(crate) async fn put_answer(
        &self,
        exchange: &ExchangeId,
        scope: &str,
        answer: Vec<u8>,
    ) -> Result<(), StorageError> {
        let location = answer_path(exchange, scope);
        self.store
            .put(&Path::from(location.as_str()), PutPayload::from(answer))
            .await
            .map(drop)
            .map_err(|e| from_object_store("write", &location, e))
    }

    /// The secret `name`, created as `fresh` when absent (create-only: a racing writer's
    /// secret wins, and both read it back).
    pub(crate) async fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StorageError> {
        let location = secret_path(name);
        let path = Path::from(location.as_str());
        match create_object(&*self.store, &location, fresh.to_vec()).await {
            Ok(_) => return Ok(fresh.to_vec()),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(from_object_store("create", &location, e)),
        }
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| from_object_store("read", &location, e))?;
        got.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| from_object_store("read", &location, e))
    }

    /// Stores an attachment, create-only: the name is the bytes' hash, so one already
    /// there holds the same bytes.
    pub(crate) async fn put_blob(
        &self,
        exchange: &ExchangeId,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let location = blob_path(exchange, sha256);
        match create_object(&*self.store, &location, bytes.to_vec()).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(from_object_store("create", &location, e)),
        }
    }

    /// An attachment's bytes, if stored.
    pub(crate) async fn get_blob(
        &self,
        exchange: &ExchangeId,
        sha256: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let location = blob_path(exchange, sha256);
        let read = |e| from_object_store("read", &location, e);
        match self.store.get(&Path::from(location.as_str())).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(read)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(read(e)),
        }
    }

    /// Deletes an idempotent answer (gone already is fine).
    pub(crate) async fn delete_answer(
        &self,
        exchange: &ExchangeId,
        scope: &str,
    ) -> Result<(), StorageError> {
        let location = answer_path(exchange, scope);
        match self.store.delete(&Path::from(location.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_object_store("delete", &location, e)),
        }
    }

    /// Every stored idempotent answer, with its exchange (of `only` that exchange).
    pub(crate) async fn load_answers(
        &self,
        only: Option<&ExchangeId>,
    ) -> Result<Vec<(ExchangeId, Vec<u8>)>, StorageError> {
        let prefix = match only {
            Some(x) => Path::from(format!("{ANSWERS}/exchange={x}/")),
            None => Path::from(ANSWERS),
        };
        let paths: Vec<(ExchangeId, Path)> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|meta| {
                let x = answer_exchange(meta.location.as_ref());
                std::future::ready(Ok(x.map(|x| (x, meta.location))))
            })
            .try_collect()
            .await
            .map_err(|e| from_object_store("list", ANSWERS, e))?;
        futures::stream::iter(paths)
            .map(|(x, path)| {
                let store = Arc::clone(&self.store);
                async move { Ok((x, read_object(&*store, &path).await?.as_ref().to_vec())) }
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Every member record (of `only` that exchange), in path order.
    pub(crate) async fn load(
        &self,
        only: Option<&ExchangeId>,
    ) -> Result<Vec<Member>, StorageError> {
        let prefix = match only {
            Some(x) => Path::from(mess_core::layout::members_prefix(x)),
            None => Path::from(EXECUTORS),
        };
        let mut paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_filter(|p| std::future::ready(is_member_object(p.as_ref())))
            .try_collect()
            .await
            .map_err(|e| from_object_store("list", EXECUTORS, e))?;
        paths.sort();
        futures::stream::iter(paths)
            .map(|path| {
                let store = Arc::clone(&self.store);
                async move {
                    let bytes = read_object(&*store, &path).await?;
                    serde_json::from_slice::<Member>(bytes.as_ref())
                        .map_err(|e| StorageError::Corrupt(format!("{path}: {e}")))
                }
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }
}
