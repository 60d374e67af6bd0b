//! The hub: every exchange's state in memory, and one writer task per exchange that
//! sequences its commands.
//!
//! Writes follow one path: a handler sends a command to the exchange's writer; the
//! writer drains everything queued, decides each command against its *working* state
//! (so a batch sees its own earlier effects: exactly one claim wins), appends all the
//! batch's events in one durable storage call, and only then publishes the changed
//! threads to the *published* state that readers see, answers the handlers and queues
//! notifications. Readers never wait for a write and never see an unacknowledged one.
//! While a batch's append is in flight the writer goes on deciding the next one. Appends
//! are handed to storage, and answered, in the order they were decided (several
//! overlap); each batch publishes the thread states it left, not later ones.
//!
//! # Layout
//! - `mod.rs`: the [`Hub`] registry (loading, finding and opening exchanges, storage
//!   health, expiry, shutdown) and [`ExchangeHandle`], an exchange as handlers see it.
//! - `writer`: the per-exchange writer task: batching, pipelined group-commit appends,
//!   publishing, rollback and notifications.
//! - `answers`: delivering the writer's answers to the handlers' (actix worker) threads.
//! - `feed`: the change feed's window and broadcast.
//! - `replays`: `Idempotency-Key` answers and the scopes being run.
//! - `waiters`: requests waiting for a thread to change.
//! - `metrics`: counts for `/metrics`.

mod answers;
mod feed;
mod metrics;
mod replays;
mod waiters;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use foldhash::HashMap;
use mess_core::ports::StorageKind;
use mess_core::{
    Actor, Clock, Command, DomainError, Entropy, Exchange, ExchangeId, ExecutorId, Member,
    Notifier, Profile, Storage, StorageError, ThreadRef, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

use answers::{DELIVERER, Reply};
use mess_api::idempotency::{Answer, Begin, ScopeId};
use replays::Replays;
use waiters::Waiters;

pub use feed::{Feed, Subscription};
use writer::{Job, Writer};

pub use answers::deliver_on_this_thread;
pub use metrics::status_totals;

/// `OFFER_REMIND_AFTER` by default: an hour.
pub const DEFAULT_REMIND_AFTER_MS: i64 = 60 * 60 * 1000;

/// How many commands may wait for one exchange's writer before handlers wait too.
const QUEUE_DEPTH: usize = 4096;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The domain refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Storage failed; nothing was acknowledged.
    #[error("storage unavailable")]
    Unavailable(#[source] StorageError),
    /// The writer is gone (shutting down).
    #[error("the exchange is shutting down")]
    ShuttingDown,
}

pub use mess_api::Written;

/// One exchange: its published state, read by handlers, and its writer's queue.
pub struct ExchangeHandle {
    id: ExchangeId,
    published: RwLock<Exchange>,
    last_seen: Mutex<HashMap<ExecutorId, Timestamp>>,
    tx: mpsc::Sender<Job>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    /// Requests waiting for one of its threads to change.
    waiters: Waiters,
    /// Its change feed.
    feed: Feed,
    /// Its `Idempotency-Key` answers.
    replays: Replays,
    storage: Arc<dyn Storage>,
    /// The hub's `REVIEW_WINDOW`.
    review_window_ms: Arc<std::sync::atomic::AtomicI64>,
    /// Attachments read lately, shared by every exchange.
    blobs: Arc<mess_api::blobs::Cache>,
    /// The same in base64, for seed-shaped reads.
    encoded: Arc<mess_api::blobs::Cache<str>>,
    /// Set when its writer has finished (after [`Job::Stop`]).
    finished: tokio::sync::watch::Sender<bool>,
}

/// The routes of `mess-api` see an exchange through this.
impl mess_api::ExchangePort for ExchangeHandle {
    fn id(&self) -> &ExchangeId {
        &self.id
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> R {
        ExchangeHandle::read(self, f)
    }

    fn touch(&self, member: &ExecutorId, now: Timestamp) {
        ExchangeHandle::touch(self, member, now);
    }

    fn last_seen(&self, member: &Member) -> Timestamp {
        ExchangeHandle::last_seen(self, member)
    }

    fn validate(&self, profile: &Profile) -> Result<(), DomainError> {
        self.notifier.validate(profile)
    }

    fn review_window_ms(&self) -> i64 {
        self.review_window_ms.load(Ordering::Relaxed)
    }

    async fn changed(&self, thread: &ThreadRef, since: u64, within: Duration) {
        let newer = || self.read(|x| x.thread(thread).is_some_and(|t| t.version > since));
        self.waiters.wait(thread, within, newer).await;
    }

    async fn idempotency_begin(&self, scope: &ScopeId) -> Begin {
        self.replays.begin(scope, self.clock.now()).await
    }

    async fn idempotency_store(&self, answer: Answer) {
        let scope = answer.scope.clone();
        // Stored before it is answered; if storage fails, it is still replayed until a
        // restart (the write it answers stands either way).
        match serde_json::to_vec(&answer) {
            Ok(bytes) => {
                if let Err(e) = self.storage.put_answer(&self.id, &scope, bytes).await {
                    tracing::warn!(exchange = %self.id, error = %e, "could not store an idempotent answer");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not encode an idempotent answer"),
        }
        self.replays.end(&scope, Some(answer));
    }

    fn idempotency_release(&self, scope: &ScopeId) {
        self.replays.end(scope, None);
    }

    async fn commit(&self, actor: Actor, cmd: Command) -> Result<Written, mess_api::ApiError> {
        Ok(self.submit(actor, cmd).await?)
    }

    async fn put_blob(&self, blob: &mess_core::blob::Blob) -> Result<(), mess_api::ApiError> {
        self.storage
            .put_blob(&self.id, &blob.sha256, &blob.bytes)
            .await
            .map_err(|e| {
                tracing::warn!(exchange = %self.id, error = %e, "could not store an attachment");
                mess_api::ApiError::Unavailable
            })
    }

    async fn blob(&self, sha256: &str) -> Result<Option<Arc<[u8]>>, mess_api::ApiError> {
        if let Some(bytes) = self.blobs.get(&self.id, sha256) {
            return Ok(Some(bytes));
        }
        let Some(bytes) = self.load_blob(sha256).await? else {
            return Ok(None);
        };
        let bytes: Arc<[u8]> = bytes.into();
        self.blobs.put(&self.id, sha256, Arc::clone(&bytes));
        Ok(Some(bytes))
    }

    async fn blob_base64(&self, sha256: &str) -> Result<Option<Arc<str>>, mess_api::ApiError> {
        if let Some(text) = self.encoded.get(&self.id, sha256) {
            return Ok(Some(text));
        }
        // Bytes already kept are used; bytes read for this are not kept as well (a
        // seed-shaped read needs only the base64).
        let text: Arc<str> = match self.blobs.get(&self.id, sha256) {
            Some(bytes) => mess_core::blob::encode(&bytes).into(),
            None => match self.load_blob(sha256).await? {
                Some(bytes) => mess_core::blob::encode(&bytes).into(),
                None => return Ok(None),
            },
        };
        self.encoded.put(&self.id, sha256, Arc::clone(&text));
        Ok(Some(text))
    }

    async fn test_notification(
        &self,
        member: &Member,
    ) -> Result<Vec<mess_core::ChannelTest>, mess_api::ApiError> {
        Ok(self
            .notifier
            .send_test(&self.id, member, self.clock.now())
            .await)
    }
}

impl ExchangeHandle {
    /// An attachment's bytes from storage (no cache); a missing one is logged.
    async fn load_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, mess_api::ApiError> {
        match self.storage.get_blob(&self.id, sha256).await {
            Ok(Some(bytes)) => Ok(Some(bytes)),
            Ok(None) => {
                tracing::warn!(exchange = %self.id, sha256, "a referenced attachment is missing from storage");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(exchange = %self.id, error = %e, "could not read an attachment");
                Err(mess_api::ApiError::Unavailable)
            }
        }
    }

    /// The exchange's id.
    pub fn id(&self) -> &ExchangeId {
        &self.id
    }

    /// Runs `f` on the published state (briefly: clone out what you need).
    pub fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> R {
        let guard = self.published.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Its change feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Records that a member was seen now.
    pub fn touch(&self, member: &ExecutorId, now: Timestamp) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        // The hot path (every authenticated request) allocates only on a member's first.
        match seen.get_mut(member) {
            Some(t) => *t = now,
            None => {
                seen.insert(member.clone(), now);
            }
        }
    }

    /// When a member was last seen (falls back to its record).
    pub fn last_seen(&self, member: &Member) -> Timestamp {
        let seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&member.executor_id)
            .copied()
            .unwrap_or(member.last_seen)
            .max(member.last_seen)
    }

    /// Sends a command to the writer and waits until it is durable (or refused).
    pub async fn submit(&self, actor: Actor, cmd: Command) -> Result<Written, WriteError> {
        let (tx, rx) = oneshot::channel();
        let via = DELIVERER.with(|d| d.borrow().clone());
        let reply = Reply { tx, via };
        self.tx
            .send(Job::Command { actor, cmd, reply })
            .await
            .map_err(|_| WriteError::ShuttingDown)?;
        rx.await.map_err(|_| WriteError::ShuttingDown)?
    }
}

/// Every exchange of this server.
pub struct Hub {
    exchanges: RwLock<HashMap<ExchangeId, Arc<ExchangeHandle>>>,
    storage: Arc<dyn Storage>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    storage_ok: AtomicBool,
    /// Writers of states dropped and not finished yet, by exchange ([`Hub::settle`]).
    retiring: Mutex<HashMap<ExchangeId, Vec<tokio::sync::watch::Receiver<bool>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// `CLAIM_TIMEOUT` in milliseconds (0: off).
    claim_timeout_ms: std::sync::atomic::AtomicI64,
    /// `OFFER_REMIND_AFTER` in milliseconds.
    remind_after_ms: std::sync::atomic::AtomicI64,
    /// `REVIEW_WINDOW` in milliseconds, shared with every exchange's handle.
    review_window_ms: Arc<std::sync::atomic::AtomicI64>,
    /// The key that signs notification action links (`secrets/action-links.key`).
    action_key: std::sync::OnceLock<Vec<u8>>,
    /// Attachments read lately ([`BLOB_CACHE_BYTES`]), as bytes and in base64.
    blobs: Arc<mess_api::blobs::Cache>,
    encoded: Arc<mess_api::blobs::Cache<str>>,
}

/// How many bytes of attachments the hub keeps in memory, twice: as bytes (the attachment
/// route, MCP) and in base64 (seed-shaped reads: GET of a thread returns `data:` URIs):
/// the photos of the threads being looked at.
pub const BLOB_CACHE_BYTES: usize = 32 << 20;

impl Hub {
    /// Loads every member and event from `storage` and starts one writer per exchange.
    /// Must be called inside a tokio runtime.
    pub async fn load(
        storage: Arc<dyn Storage>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Arc<Self>, StorageError> {
        let started = std::time::Instant::now();
        let replayed = storage.replay().await?;
        ::metrics::gauge!("mess_replay_seconds").set(started.elapsed().as_secs_f64());
        ::metrics::gauge!("mess_replay_events").set(replayed.events as f64);
        if replayed.skipped_lines > 0 {
            tracing::warn!(
                skipped = replayed.skipped_lines,
                "skipped unreadable event lines at start-up"
            );
        }
        let (states, events) = (replayed.exchanges, replayed.events);
        tracing::info!(exchanges = states.len(), events, "replayed the event log");
        let hub = Self::empty(storage, notifier, clock, entropy);
        for (id, state) in states {
            let handle = hub.spawn_exchange(id.clone(), state);
            hub.exchanges
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, handle);
        }
        hub.load_answers().await?;
        Ok(hub)
    }

    /// A hub holding no exchange yet: a replica's, which takes exchanges as their requests
    /// come ([`Hub::adopt`]). Must be called inside a tokio runtime.
    pub fn empty(
        storage: Arc<dyn Storage>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Arc<Self> {
        Arc::new(Self {
            exchanges: RwLock::new(HashMap::default()),
            storage,
            notifier,
            clock,
            entropy,
            storage_ok: AtomicBool::new(true),
            retiring: Mutex::new(HashMap::default()),
            tasks: Mutex::new(Vec::new()),
            claim_timeout_ms: std::sync::atomic::AtomicI64::new(0),
            remind_after_ms: std::sync::atomic::AtomicI64::new(DEFAULT_REMIND_AFTER_MS),
            review_window_ms: Arc::new(std::sync::atomic::AtomicI64::new(
                mess_core::exchange::DEFAULT_REVIEW_WINDOW_MS,
            )),
            action_key: std::sync::OnceLock::new(),
            blobs: Arc::new(mess_api::blobs::Cache::new(BLOB_CACHE_BYTES)),
            encoded: Arc::new(mess_api::blobs::Cache::new(BLOB_CACHE_BYTES)),
        })
    }

    /// Serves an exchange this replica has just taken over: its state as storage holds it
    /// and its stored idempotent answers (older ones are skipped). Replaces (and stops) a
    /// copy held from an earlier lease.
    pub fn adopt(self: &Arc<Self>, taken: mess_core::Taken) {
        let id = taken.exchange.id().clone();
        let handle = self.spawn_exchange(id.clone(), taken.exchange);
        let now = self.clock.now();
        for bytes in taken.answers {
            match serde_json::from_slice::<Answer>(&bytes) {
                Ok(answer) if answer.live(now) => handle.replays.put_loaded(answer),
                Ok(_) => {}
                Err(_) => tracing::warn!(exchange = %id, "skipped an unreadable idempotent answer"),
            }
        }
        let old = self
            .exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), handle);
        if let Some(old) = old {
            self.retire(&id, old);
        }
    }

    /// Stops serving an exchange whose lease this replica lost or gave back: held requests
    /// and feed streams end (their clients come back, to the new owner), queued commands
    /// are refused by storage (no lease).
    pub fn drop_exchange(&self, id: &ExchangeId) {
        if let Some(old) = self.remove(id) {
            self.retire(id, old);
        }
    }

    /// Stops a state's writer, and notes it until it has finished ([`Hub::settle`]).
    fn retire(&self, id: &ExchangeId, old: Arc<ExchangeHandle>) {
        self.retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.clone())
            .or_default()
            .push(old.finished.subscribe());
        Self::stop(old);
    }

    /// Waits until every writer of a state of `id` dropped here has finished what it had
    /// queued: before this replica takes `id`'s lease anew, so that no writer deciding on
    /// an old state writes under the new epoch.
    pub async fn settle(&self, id: &ExchangeId) {
        let writers = self
            .retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .unwrap_or_default();
        for mut finished in writers {
            let _ = finished.wait_for(|done| *done).await;
        }
    }

    fn remove(&self, id: &ExchangeId) -> Option<Arc<ExchangeHandle>> {
        self.exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    /// Stops serving an exchange and waits until everything its writer had queued is
    /// decided and stored (or refused): before its lease is given back.
    pub async fn hand_back(&self, id: &ExchangeId) {
        self.drop_exchange(id);
        self.settle(id).await;
    }

    fn stop(handle: Arc<ExchangeHandle>) {
        handle.waiters.wake_all();
        handle.feed.close();
        // The writer ends after what is queued (refused by storage without a lease).
        tokio::spawn(async move {
            let _ = handle.tx.send(Job::Stop).await;
        });
    }

    /// Puts back the `Idempotency-Key` answers younger than a day; deletes the older ones.
    async fn load_answers(self: &Arc<Self>) -> Result<(), StorageError> {
        let now = self.clock.now();
        let mut kept = 0;
        for (x, bytes) in self.storage.load_answers().await? {
            let Ok(answer) = serde_json::from_slice::<Answer>(&bytes) else {
                tracing::warn!(exchange = %x, "skipped an unreadable idempotent answer");
                continue;
            };
            if answer.live(now) {
                self.exchange_or_create(&x).replays.put_loaded(answer);
                kept += 1;
            } else {
                self.storage.delete_answer(&x, &answer.scope).await?;
            }
        }
        if kept > 0 {
            tracing::info!(answers = kept, "loaded idempotent answers");
        }
        Ok(())
    }

    fn spawn_exchange(self: &Arc<Self>, id: ExchangeId, state: Exchange) -> Arc<ExchangeHandle> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        // The writer never lists: its copy skips the list indexes.
        let working = state.for_deciding();
        let head = state.head();
        let handle = Arc::new(ExchangeHandle {
            id,
            published: RwLock::new(state),
            last_seen: Mutex::new(HashMap::default()),
            tx,
            clock: Arc::clone(&self.clock),
            notifier: Arc::clone(&self.notifier),
            waiters: Waiters::default(),
            feed: Feed::new(head),
            replays: Replays::default(),
            storage: Arc::clone(&self.storage),
            review_window_ms: Arc::clone(&self.review_window_ms),
            blobs: Arc::clone(&self.blobs),
            encoded: Arc::clone(&self.encoded),
            finished: tokio::sync::watch::Sender::new(false),
        });
        let writer = Writer {
            hub: Arc::clone(self),
            handle: Arc::clone(&handle),
            working,
        };
        let finished = handle.finished.clone();
        let task = tokio::spawn(async move {
            writer.run(rx).await;
            finished.send_replace(true);
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        handle
    }

    /// An existing exchange.
    pub fn exchange(&self, id: &ExchangeId) -> Option<Arc<ExchangeHandle>> {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// An exchange, created (empty) if it does not exist yet: registration opens one.
    pub fn exchange_or_create(self: &Arc<Self>, id: &ExchangeId) -> Arc<ExchangeHandle> {
        if let Some(h) = self.exchange(id) {
            return h;
        }
        let mut map = self.exchanges.write().unwrap_or_else(|e| e.into_inner());
        let handle = map
            .entry(id.clone())
            .or_insert_with(|| self.spawn_exchange(id.clone(), Exchange::new(id.clone())));
        Arc::clone(handle)
    }

    /// Every exchange.
    pub fn exchanges(&self) -> Vec<Arc<ExchangeHandle>> {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The storage backend (`filesystem`, `s3`).
    pub fn storage_kind(&self) -> StorageKind {
        self.storage.kind()
    }

    /// The notifier (for validating channels before a write).
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.notifier
    }

    /// Whether the last write (or check) reached storage.
    pub fn storage_ok(&self) -> bool {
        self.storage_ok.load(Ordering::Relaxed)
    }

    /// Asks storage whether it answers, within `timeout`; remembers the answer.
    pub async fn check_storage(&self, timeout: Duration) -> bool {
        let ok = matches!(
            tokio::time::timeout(timeout, self.storage.check()).await,
            Ok(Ok(()))
        );
        self.storage_ok.store(ok, Ordering::Relaxed);
        ok
    }

    /// Sets the key that verifies notification action links (once; later calls are
    /// ignored). Without one, `/a/{token}` refuses every link.
    pub fn set_action_key(&self, key: Vec<u8>) {
        let _ = self.action_key.set(key);
    }

    /// The key that verifies notification action links, if set.
    pub fn action_key(&self) -> Option<&[u8]> {
        self.action_key.get().map(Vec::as_slice)
    }

    /// Sets the exchange-wide claim time limit (`CLAIM_TIMEOUT`), in milliseconds.
    pub fn set_claim_timeout(&self, ms: Option<i64>) {
        self.claim_timeout_ms
            .store(ms.unwrap_or(0), Ordering::Relaxed);
    }

    /// Sets how long a pending request without a deadline waits before it is offered
    /// once more (`OFFER_REMIND_AFTER`), in milliseconds.
    pub fn set_remind_after(&self, ms: i64) {
        self.remind_after_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets how long after `completed`/`partial` a requestor may ask for a revision
    /// (`REVIEW_WINDOW`), in milliseconds.
    pub fn set_review_window(&self, ms: i64) {
        self.review_window_ms.store(ms, Ordering::Relaxed);
    }

    fn timers(&self) -> mess_core::Timers {
        mess_core::Timers {
            claim_timeout_ms: self.claim_timeout(),
            remind_after_ms: self.remind_after_ms.load(Ordering::Relaxed),
        }
    }

    /// When an exchange's next timer is due, if ever (for a replica giving it back).
    pub fn next_due(&self, id: &ExchangeId) -> Option<Timestamp> {
        let timers = self.timers();
        self.exchange(id)?.read(|x| x.next_due(timers))
    }

    fn claim_timeout(&self) -> Option<i64> {
        Some(self.claim_timeout_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// Expires every thread whose deadline has passed, takes back every claim whose time
    /// limit ran out, and forgets idempotent answers older than a day. Called every
    /// second; everything it does is derived from the log, so a restart loses nothing due
    /// and fires nothing twice.
    pub async fn expire_due(&self) {
        let now = self.clock.now();
        let timers = self.timers();
        for h in self.exchanges() {
            let started = std::time::Instant::now();
            let due = h.read(|x| x.due(now, timers));
            ::metrics::histogram!("mess_timer_sweep_seconds")
                .record(started.elapsed().as_secs_f64());
            for cmd in due {
                // A conflict means the thread moved on meanwhile: nothing to do.
                let _ = h.submit(Actor::Exchange, cmd).await;
            }
            for scope in h.replays.sweep(now) {
                if let Err(e) = self.storage.delete_answer(&h.id, &scope).await {
                    tracing::warn!(exchange = %h.id, error = %e, "could not delete an old idempotent answer");
                }
            }
        }
    }

    /// Answers every request waiting for a change now, and any later one at once, and ends
    /// every feed stream: the first step of a shutdown, so that held requests do not hold
    /// it up.
    pub fn release_waiters(&self) {
        for h in self.exchanges() {
            h.waiters.wake_all();
            h.feed.close();
        }
    }

    /// Stops accepting commands and waits for every writer to finish what it has queued.
    pub async fn shutdown(&self) {
        self.release_waiters();
        let handles: Vec<_> = self
            .exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, h) in handles {
            let _ = h.tx.send(Job::Stop).await;
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}
