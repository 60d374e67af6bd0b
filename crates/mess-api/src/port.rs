//! What a host gives the routes: one exchange's acknowledged state, a way to commit a
//! command durably, and a clock.

use std::sync::Arc;

use mess_core::{
    Actor, ApiKey, ChannelTest, Command, DomainError, Exchange, ExchangeId, ExecutorId, Member,
    Profile, Thread, ThreadRef, Timestamp,
};

use crate::error::ApiError;
use crate::idempotency::{Answer, Begin, ScopeId};

/// What a committed command returns to its route.
#[derive(Debug)]
pub enum Written {
    /// A member registered; the key is shown once.
    Registered {
        /// The new member.
        member: Arc<Member>,
        /// Its key.
        api_key: ApiKey,
    },
    /// A profile changed.
    ProfileUpdated(Arc<Member>),
    /// A key was replaced; the new one is shown once.
    KeyRotated {
        /// The member.
        member: Arc<Member>,
        /// Its new key.
        api_key: ApiKey,
    },
    /// A member left.
    Removed(Arc<Member>),
    /// A thread was created or updated; here it is as acknowledged.
    Thread(Arc<Thread>),
}

/// One exchange as a host holds it. The binary's hub (a writer task per exchange, group
/// commit) and the Worker's Durable Object (one write at a time, R2) both implement it.
pub trait ExchangePort {
    /// The exchange's id.
    fn id(&self) -> &ExchangeId;

    /// Now, from the host's clock.
    fn now(&self) -> Timestamp;

    /// Runs `f` on the acknowledged state: what readers may see (briefly; clone out what
    /// you need).
    fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> R;

    /// Records that `member` was seen at `now` (every authenticated request).
    fn touch(&self, member: &ExecutorId, now: Timestamp);

    /// When `member` was last seen: the later of the host's record and the member's own.
    fn last_seen(&self, member: &Member) -> Timestamp;

    /// Checks a profile's channels and hooks before it is stored (the notifier's rules).
    fn validate(&self, profile: &Profile) -> Result<(), DomainError>;

    /// Resolves when `thread`'s acknowledged version is above `since` (at once if it already
    /// is), when `within` has passed, or when the host shuts down, whichever comes first.
    /// Costs no polling: the host's writer wakes it after a change is durable.
    async fn changed(&self, thread: &ThreadRef, since: u64, within: std::time::Duration);

    /// The stored answer of an `Idempotency-Key` scope ([`Begin::Replay`], if it is younger
    /// than a day), or [`Begin::Run`], which reserves the scope until
    /// [`ExchangePort::idempotency_end`]: a request of the same scope that comes meanwhile
    /// waits here for that end.
    async fn idempotency_begin(&self, scope: &ScopeId) -> Begin;

    /// Ends a reservation by storing its answer (durably, before the caller sends it; kept
    /// for a day). Wakes the requests waiting for it.
    async fn idempotency_store(&self, answer: Answer);

    /// Ends a reservation without an answer (the request failed in a way not replayed, or
    /// was dropped): the next request of the scope runs. Wakes the requests waiting for it.
    fn idempotency_release(&self, scope: &ScopeId);

    /// Sends one test notification to each of `member`'s channels (one attempt each) and
    /// returns each channel's result, in the member's order. May take up to the host's
    /// send timeout; records nothing.
    async fn test_notification(&self, member: &Member) -> Result<Vec<ChannelTest>, ApiError>;

    /// How long after `completed`/`partial` a requestor may ask for a revision, in
    /// milliseconds (`REVIEW_WINDOW`; 24 hours unless the host is told otherwise).
    fn review_window_ms(&self) -> i64 {
        mess_core::exchange::DEFAULT_REVIEW_WINDOW_MS
    }

    /// Stores an attachment's bytes (`blobs/exchange={id}/{sha256}`) durably, before a
    /// command that refers to them is committed.
    async fn put_blob(&self, blob: &mess_core::blob::Blob) -> Result<(), ApiError>;

    /// An attachment's bytes by their SHA-256 (from a bounded cache where the host keeps
    /// one); `None` when none are stored.
    async fn blob(&self, sha256: &str) -> Result<Option<Arc<[u8]>>, ApiError>;

    /// An attachment's bytes in base64, as its `data:` URI holds them (what seed-shaped
    /// reads put back). Encoded on each call unless the host keeps them.
    async fn blob_base64(&self, sha256: &str) -> Result<Option<Arc<str>>, ApiError> {
        Ok(self
            .blob(sha256)
            .await?
            .map(|b| mess_core::blob::encode(&b).into()))
    }

    /// Decides `cmd` for `actor` against the current state, stores its events (and member
    /// record) durably, applies them, and only then returns: an acknowledged write.
    async fn commit(&self, actor: Actor, cmd: Command) -> Result<Written, ApiError>;
}
