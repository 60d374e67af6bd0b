//! The ports: what the domain needs from storage and notification, as traits. Adapters
//! (`mess-storage`, `mess-notify`) implement them; `mess-http` holds them as `Arc<dyn _>`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::DomainError;
use crate::event::{Event, EventKind};
use crate::exchange::Exchange;
use crate::ids::{Actor, ExchangeId, ThreadRef};
use crate::member::{Member, Profile};
use crate::replay::Replay;
use crate::thread::Thread;

/// Why storage failed. Converted by meaning from each backend's own errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// A create-only write found the object already there (a registration lost its race).
    #[error("already exists")]
    AlreadyExists,
    /// The backend could not be reached or refused the write; nothing was acknowledged.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Everything read back at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every member record.
    pub members: Vec<Member>,
    /// Every event, each thread's in `seq` order, members' events in stored order.
    pub events: Vec<Event>,
    /// Lines that could not be parsed (torn by a crash, or foreign) and were skipped.
    pub skipped_lines: usize,
}

/// Everything start-up needs, folded: see [`Storage::replay`].
#[derive(Debug, Default)]
pub struct Replayed {
    /// One exchange for each exchange of a member or an event, members put, events folded.
    pub exchanges: HashMap<ExchangeId, Exchange>,
    /// How many events were read.
    pub events: usize,
    /// Lines that could not be parsed (torn by a crash, or foreign) and were skipped.
    pub skipped_lines: usize,
}

impl Replayed {
    /// Folds what [`Storage::load`] read: its members put, its events folded with
    /// [`Replay`].
    pub fn fold(loaded: Loaded) -> Self {
        let mut replay = Replay::new();
        for e in loaded.events {
            replay.push(e);
        }
        Self {
            events: replay.events(),
            exchanges: replay.finish(loaded.members),
            skipped_lines: loaded.skipped_lines,
        }
    }
}

/// A storage backend, as `/health` and the logs name it ([`StorageKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// `filesystem`: a local data directory.
    Filesystem,
    /// `s3`: an S3-compatible bucket.
    S3,
    /// `memory`: an in-memory store, for tests.
    Memory,
    /// `r2`: the Cloudflare Worker's R2 bucket.
    R2,
}

impl StorageKind {
    /// The name `/health` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Filesystem => "filesystem",
            StorageKind::S3 => "s3",
            StorageKind::Memory => "memory",
            StorageKind::R2 => "r2",
        }
    }
}

impl std::fmt::Display for StorageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The durable event log and member records.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Which backend this is: for `/health` and logs.
    fn kind(&self) -> StorageKind;

    /// Appends `events` durably. When this returns `Ok`, a crash right after loses none of
    /// them (fsync on files, a completed PUT on S3). Concurrent calls may share one write
    /// and one sync. On `Err`, none of them is acknowledged (some may still be stored).
    async fn append(&self, events: &[Event]) -> Result<(), StorageError>;

    /// Stores a new member record, create-only: `AlreadyExists` if the id is taken, so two
    /// racing registrations (even from two processes) give exactly one winner.
    async fn create_member(&self, member: &Member) -> Result<(), StorageError>;

    /// Replaces a member record atomically (readers see the old or the new, never a mix).
    async fn replace_member(&self, member: &Member) -> Result<(), StorageError>;

    /// Deletes a member record (the member removed itself). Deleting a record that is not
    /// there is not an error.
    async fn delete_member(&self, member: &Member) -> Result<(), StorageError>;

    /// Stores the answer to an `Idempotency-Key` of `exchange` under `scope` (replacing),
    /// durably: `answers/exchange={id}/{scope}.json`.
    async fn put_answer(
        &self,
        exchange: &ExchangeId,
        scope: &str,
        answer: Vec<u8>,
    ) -> Result<(), StorageError>;

    /// Every stored answer, with its exchange, for start-up.
    async fn load_answers(&self) -> Result<Vec<(ExchangeId, Vec<u8>)>, StorageError>;

    /// Deletes a stored answer (once it is older than a day); a missing one is no error.
    async fn delete_answer(&self, exchange: &ExchangeId, scope: &str) -> Result<(), StorageError>;

    /// The secret `name` (`secrets/{name}`), stored as `fresh` when there is none yet. The
    /// write is create-only, so processes racing to make one all get the one stored. A
    /// backend that keeps no secrets says so with an error (the default).
    async fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StorageError> {
        let _ = (name, fresh);
        Err(StorageError::Unavailable(
            "this storage keeps no secrets".into(),
        ))
    }

    /// Stores an attachment's bytes as `blobs/exchange={id}/{sha256}` ([`crate::blob`]),
    /// durably, before a command that refers to them is committed. The name is the bytes'
    /// hash, so finding them already stored is success. A backend that keeps no blobs
    /// says so with an error (the default).
    async fn put_blob(
        &self,
        exchange: &ExchangeId,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let _ = (exchange, sha256, bytes);
        Err(StorageError::Unavailable(
            "this storage keeps no attachments".into(),
        ))
    }

    /// An attachment's bytes, by their SHA-256; `None` when none are stored under it.
    async fn get_blob(
        &self,
        exchange: &ExchangeId,
        sha256: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let _ = (exchange, sha256);
        Ok(None)
    }

    /// Reads every member and every event back, for start-up.
    async fn load(&self) -> Result<Loaded, StorageError>;

    /// Reads every member and every event back and folds them, for start-up: the same
    /// exchanges as [`Storage::load`]'s members put and events folded with
    /// [`Replay`]. This default does exactly that; a backend may instead fold while it
    /// reads, so that the whole log is never held at once.
    async fn replay(&self) -> Result<Replayed, StorageError> {
        Ok(Replayed::fold(self.load().await?))
    }

    /// Checks that the backend answers and takes a write (for `/health`, `/readyz` and
    /// start-up).
    async fn check(&self) -> Result<(), StorageError>;
}

/// Where an exchange is served from, among replicas sharing one bucket
/// ([`Ownership::locate`]).
#[derive(Debug)]
pub enum Located {
    /// This replica holds the exchange's lease and has it loaded.
    Here,
    /// This replica has just taken the lease: the exchange as storage holds it, to load.
    Taken(Box<Taken>),
    /// Another replica holds a live lease: its advertised URL.
    There(String),
    /// Nobody holds it, it was given back idle, and nothing of it is due soon: left
    /// unloaded ([`Ownership::locate_due`] only; a request takes it).
    Idle,
}

/// An exchange just taken over ([`Located::Taken`]): its state folded from what counts
/// in storage, and its stored `Idempotency-Key` answers.
#[derive(Debug)]
pub struct Taken {
    /// The exchange, members put and events folded.
    pub exchange: Exchange,
    /// Its stored idempotent answers (JSON), old ones included.
    pub answers: Vec<Vec<u8>>,
    /// How many events were read.
    pub events: usize,
}

/// Which replica owns which exchange, when several processes share one bucket: each
/// exchange has one writer at a time, holding a lease object written only with
/// conditional PUTs (docs/architecture.md, "Replicas").
#[async_trait]
pub trait Ownership: Send + Sync + 'static {
    /// This replica's advertised URL (`ADVERTISE_URL`).
    fn url(&self) -> &str;

    /// Whether this replica holds `exchange`'s lease at this instant. Checked before a
    /// request is served here and again after it, so nothing is answered from a lease
    /// already lost.
    fn holds(&self, exchange: &ExchangeId) -> bool;

    /// How many exchanges this replica holds.
    fn owned(&self) -> usize;

    /// The lease period (`LEASE_PERIOD`).
    fn period(&self) -> std::time::Duration;

    /// Whether the replica at `from` no longer holds `exchange`'s lease: another holds it,
    /// it was given back, or it went a whole period unrenewed. For a request forwarded to
    /// `from` that has not been answered: once this is true, it never will be.
    async fn moved(&self, exchange: &ExchangeId, from: &str) -> bool;

    /// Who serves `exchange`: here, another replica, or (nobody holding a live lease)
    /// this replica after taking the lease, sealing the previous owner's epoch and
    /// reading the exchange back. `Err` when storage cannot say (the caller answers 503).
    async fn locate(&self, exchange: &ExchangeId) -> Result<Located, StorageError>;

    /// [`Ownership::locate`] for the sweep: an exchange given back idle is taken only if
    /// its next timer is due `within` (else [`Located::Idle`]).
    async fn locate_due(
        &self,
        exchange: &ExchangeId,
        within: std::time::Duration,
    ) -> Result<Located, StorageError>;

    /// Every exchange in the store (each has a member), for the sweep that takes over the
    /// exchanges of a replica that died while nobody asked for them (their timers must
    /// fire).
    async fn exchanges(&self) -> Result<Vec<ExchangeId>, StorageError>;

    /// Renews every lease held; returns the exchanges whose lease was lost (taken by
    /// another replica, or not renewed in time), which must no longer be served here.
    async fn renew(&self) -> Vec<ExchangeId>;

    /// Stops holding `exchange`'s lease here without giving it back, because its state is
    /// no longer loaded: the next [`Ownership::locate`] takes it anew, with a new epoch,
    /// and reads it back.
    fn abandon(&self, exchange: &ExchangeId);

    /// Stops taking leases (graceful shutdown): [`Ownership::locate`] no longer takes one.
    fn drain(&self);

    /// Whether [`Ownership::drain`] was called: this replica is handing everything over.
    fn draining(&self) -> bool;

    /// Forgets what this replica last saw of `exchange`'s lease: the replica it named
    /// says it is not the owner (it gave the exchange back), so the next
    /// [`Ownership::locate`] reads the lease again.
    fn forget(&self, exchange: &ExchangeId);

    /// Gives `exchange`'s lease back, so another replica takes it at once; nothing is
    /// acknowledged here for it from the call on. `wake_at`: when its next timer is due
    /// (a sweep takes it by then), if ever.
    async fn release(&self, exchange: &ExchangeId, wake_at: Option<Timestamp>);

    /// Gives every lease back (graceful shutdown), so other replicas take over at once.
    async fn release_all(&self);
}

/// Whether members are told about `events[i]`, one of a write's events: creations, status
/// changes, and messages sent without a status change (a status change's own message is
/// told with it). Both hosts hand exactly these to the notifier ([`notifiable`]).
pub fn told(events: &[Event], i: usize) -> bool {
    let Some(e) = events.get(i) else {
        return false;
    };
    match &e.kind {
        EventKind::ThreadCreated(_)
        | EventKind::StatusChanged(_)
        | EventKind::OfferReminded(_)
        | EventKind::ThreadUnclaimed(_)
        | EventKind::NeededByPassed(_) => true,
        EventKind::MessageAdded(_) => {
            !i.checked_sub(1)
                .and_then(|p| events.get(p))
                .is_some_and(|prev| {
                    prev.thread_ref == e.thread_ref
                        && matches!(prev.kind, EventKind::StatusChanged(_))
                })
        }
        _ => false,
    }
}

/// The events of `events` that members are told about ([`told`]), in order.
pub fn notifiable(events: &[Event]) -> impl Iterator<Item = &Event> {
    (0..events.len())
        .filter(|&i| told(events, i))
        .map(|i| &events[i])
}

/// Something worth telling members about: a thread was created or changed status, or a
/// message came without a status change ([`notifiable`]).
#[derive(Clone)]
pub struct Notice {
    /// The exchange.
    pub exchange_id: ExchangeId,
    /// The event that caused it (`thread_created` or `status_changed`).
    pub event: Event,
    /// The thread after the event.
    pub thread: Arc<Thread>,
    /// Every member of the exchange at that moment (the notifier picks the recipients);
    /// one list shared by the notices of a batch.
    pub members: Arc<[Arc<Member>]>,
    /// Where to record each delivery's outcome.
    pub outcomes: Arc<dyn OutcomeSink>,
}

/// Records notification outcomes as events (`notification_delivered`/`_failed`).
pub trait OutcomeSink: Send + Sync {
    /// Records one outcome; never blocks.
    fn record(
        &self,
        exchange: ExchangeId,
        thread: Option<ThreadRef>,
        actor: Actor,
        kind: EventKind,
    );
}

/// Sends notifications. Never blocks and never fails the request that caused them.
pub trait Notifier: Send + Sync + 'static {
    /// Checks a profile's channels and hooks before they are stored (scheme, literal
    /// link-local or metadata addresses...). The error names the offending channel.
    fn validate(&self, profile: &Profile) -> Result<(), DomainError>;

    /// Queues whatever `notice` calls for; returns at once.
    fn notify(&self, notice: Notice);

    /// Sends one test notification to each of `member`'s channels of `exchange` (one
    /// attempt each, no outcome event) and resolves to each channel's result, in the
    /// member's order. May take up to the send timeout. The default sends nothing and
    /// says so for each channel.
    fn send_test(&self, exchange: &ExchangeId, member: &Member, now: Timestamp) -> TestSend {
        let _ = (exchange, now);
        let results = member
            .notifications
            .iter()
            .map(|c| ChannelTest::failed(c.kind(), None, "this exchange sends no notifications"))
            .collect();
        Box::pin(std::future::ready(results))
    }
}

/// What [`Notifier::send_test`] resolves to.
pub type TestSend = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<ChannelTest>> + Send>>;

/// How one channel took a test notification: no URL, topic or secret in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelTest {
    /// The channel's type (`ntfy`, `slack`, `google_chat`, `webhook`).
    pub channel: String,
    /// Whether the receiver took it (2xx).
    pub ok: bool,
    /// The receiver's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChannelTest {
    /// A test the receiver took with `status`.
    pub fn delivered(channel: &str, status: u16) -> Self {
        Self {
            channel: channel.to_owned(),
            ok: true,
            http_status: Some(status),
            error: None,
        }
    }

    /// A test that failed (with the receiver's `status`, if it answered).
    pub fn failed(channel: &str, status: Option<u16>, error: impl Into<String>) -> Self {
        Self {
            channel: channel.to_owned(),
            ok: false,
            http_status: status,
            error: Some(error.into()),
        }
    }
}

/// A notifier that sends nothing: for tests and for running without notifications.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn validate(&self, _: &Profile) -> Result<(), DomainError> {
        Ok(())
    }

    fn notify(&self, _: Notice) {}
}
