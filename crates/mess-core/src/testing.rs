//! Test helpers, behind the `testing` feature (off by default): enable it in a crate's
//! `[dev-dependencies]` only, never in its `[dependencies]`.
//!
//! [`event`] builds an [`Event`] from its kind, every other field defaulted to the usual
//! test fixture, so a test spells only the fields it is about:
//!
//! ```
//! use mess_core::event::{EventKind, StatusChanged};
//! use mess_core::{Status, testing};
//!
//! let claimed = testing::event(EventKind::StatusChanged(StatusChanged {
//!     old_status: Status::Pending,
//!     new_status: Status::Claimed,
//!     executor_id: Some("my-phone".parse().unwrap()),
//! }))
//! .actor("my-phone")
//! .seq(2)
//! .build();
//! assert_eq!(claimed.exchange_id.as_str(), "home");
//! assert_eq!(claimed.thread_ref.as_ref().map(|r| r.as_str()), Some("2026-02-01-XY1Z"));
//! assert_eq!(claimed.event_id, "00000000-0000-4000-8000-000000000002");
//! assert_eq!(claimed.ts.to_string(), "2026-02-01T22:00:00.000Z");
//! ```

use crate::clock::Timestamp;
use crate::event::{Event, EventKind};
use crate::ids::{Actor, ExchangeId, ThreadRef};

/// The default `exchange_id`.
pub const DEFAULT_EXCHANGE: &str = "home";

/// The default `thread_ref`.
pub const DEFAULT_THREAD: &str = "2026-02-01-XY1Z";

/// The default `actor_id`.
pub const DEFAULT_ACTOR: &str = "claude-agent";

/// Starts an event of this kind. Unless set, the event is in exchange
/// [`DEFAULT_EXCHANGE`], about thread [`DEFAULT_THREAD`], by [`DEFAULT_ACTOR`], at
/// 2026-02-01T22:00:00.000Z, with `seq` 1 (0 when not about a thread) and the `event_id`
/// `00000000-0000-4000-8000-{seq:012}` (a UUID v4 in shape, fixed by `seq`).
pub fn event(kind: EventKind) -> EventBuilder {
    EventBuilder {
        kind,
        event_id: None,
        ts: Timestamp::from_unix_millis(1_769_983_200_000),
        exchange_id: parse(DEFAULT_EXCHANGE, ExchangeId::parse),
        thread_ref: Some(parse(DEFAULT_THREAD, ThreadRef::parse)),
        actor_id: parse(DEFAULT_ACTOR, Actor::parse),
        seq: None,
    }
}

/// An [`Event`] being built: see [`event`]. The setters panic on an invalid id, as a test
/// should; the order they are called in does not matter.
#[derive(Debug, Clone)]
#[must_use = "an EventBuilder does nothing until `build`"]
pub struct EventBuilder {
    kind: EventKind,
    event_id: Option<String>,
    ts: Timestamp,
    exchange_id: ExchangeId,
    thread_ref: Option<ThreadRef>,
    actor_id: Actor,
    seq: Option<u64>,
}

impl EventBuilder {
    /// The `event_id`, instead of the one derived from `seq`.
    pub fn id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// When it happened.
    pub fn ts(mut self, ts: Timestamp) -> Self {
        self.ts = ts;
        self
    }

    /// The exchange it belongs to (an exchange id, as text or parsed).
    #[track_caller]
    pub fn exchange(mut self, exchange_id: impl AsRef<str>) -> Self {
        self.exchange_id = parse(exchange_id.as_ref(), ExchangeId::parse);
        self
    }

    /// The thread it is about (a thread ref, as text or parsed).
    #[track_caller]
    pub fn thread(mut self, thread_ref: impl AsRef<str>) -> Self {
        self.thread_ref = Some(parse(thread_ref.as_ref(), ThreadRef::parse));
        self
    }

    /// Not about a thread (a member's event, say): `seq` defaults to 0.
    pub fn no_thread(mut self) -> Self {
        self.thread_ref = None;
        self
    }

    /// Who caused it: an executor id, or `exchange`.
    #[track_caller]
    pub fn actor(mut self, actor_id: impl AsRef<str>) -> Self {
        self.actor_id = parse(actor_id.as_ref(), Actor::parse);
        self
    }

    /// Its position in its thread's history.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// The event.
    pub fn build(self) -> Event {
        let seq = self.seq.unwrap_or(u64::from(self.thread_ref.is_some()));
        Event {
            event_id: self
                .event_id
                .unwrap_or_else(|| format!("00000000-0000-4000-8000-{seq:012}")),
            ts: self.ts,
            exchange_id: self.exchange_id,
            thread_ref: self.thread_ref,
            actor_id: self.actor_id,
            seq,
            pos: 0,
            kind: self.kind,
        }
    }
}

#[track_caller]
fn parse<T, E: std::fmt::Display>(s: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> T {
    match parse(s) {
        Ok(v) => v,
        Err(e) => panic!("testing: {s:?} is not valid: {e}"),
    }
}
