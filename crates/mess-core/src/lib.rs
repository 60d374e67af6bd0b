//! # mess-core
//!
//! The domain of a [MESS](https://github.com/teaguesterling/mess) exchange, pure: no I/O, no
//! async runtime. An exchange holds request *threads* that members (AI agents, people,
//! phones) create, claim, progress and answer; every change is an [`Event`] appended to a
//! log, and every view (a thread, a list, the members) is a fold of those events.
//!
//! Use it to build a server (as `mess-exchange` does), to validate MESS messages, or to
//! read an exchange's data directory offline.
//!
//! # Layout
//! - [`ids`]: `ExchangeId`, `ExecutorId`, `ThreadRef`, validated by `parse`.
//! - [`status`]: `Status` (with the protocol's aliases) and `Priority`.
//! - [`action_link`]: the signed one-tap links of notifications (`/a/{token}`).
//! - [`key`]: API keys, generated from a CSPRNG, stored only as SHA-256 hashes.
//! - [`mess`]: MESS blocks, kept verbatim.
//! - [`request`]: a new request, every field preserved.
//! - [`member`]: members, their channels and preferences.
//! - [`rules`]: the transition table and who may make each move.
//! - [`event`]: the stored events and their line format.
//! - [`thread`]: a thread folded from its events, in the API's shape.
//! - [`exchange`]: one exchange's state; commands in, events out.
//! - [`clock`]: injected time and randomness.
//! - [`ports`]: the traits storage and notification adapters implement.
//! - [`layout`]: where events and member records live, and the event line format's
//!   writing and reading, for every storage backend.
//! - [`wire`]: request-body rules and `data:` attachments, shared by every front end.
//! - [`blob`]: attachments kept once as content-addressed blobs, and their references.
//! - `testing` (feature `testing`, for tests only): an `Event` builder with fixture defaults.
//!
//! # Reading a data directory
//! Events are stored one per line under `events/exchange={id}/YYYY/MM/DD/{uuid}.jsonl`.
//! Folding them rebuilds every thread:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//! use mess_core::{Event, Exchange};
//!
//! fn read_threads(data: &Path) -> std::io::Result<BTreeMap<String, Exchange>> {
//!     let mut files = Vec::new();
//!     let mut dirs = vec![data.join("events")];
//!     while let Some(dir) = dirs.pop() {
//!         for entry in std::fs::read_dir(dir)? {
//!             let path = entry?.path();
//!             if path.is_dir() {
//!                 dirs.push(path);
//!             } else if path.extension().is_some_and(|e| e == "jsonl") {
//!                 files.push(path);
//!             }
//!         }
//!     }
//!     let mut events: Vec<Event> = Vec::new();
//!     for file in files {
//!         let text = std::fs::read_to_string(file)?;
//!         // A torn last line (a crash mid-write) does not parse: skip it.
//!         events.extend(text.lines().filter_map(|l| Event::from_line(l).ok()));
//!     }
//!     events.sort_by_key(|e| (e.ts, e.seq));
//!     let mut exchanges = BTreeMap::new();
//!     for e in &events {
//!         exchanges
//!             .entry(e.exchange_id.to_string())
//!             .or_insert_with(|| Exchange::new(e.exchange_id.clone()))
//!             .apply(e);
//!     }
//!     Ok(exchanges)
//! }
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let day = dir.path().join("events/exchange=home/2026/02/01");
//! # std::fs::create_dir_all(&day).unwrap();
//! # std::fs::write(day.join("a.jsonl"), concat!(
//! #   r#"{"event_id":"e1","ts":"2026-02-01T22:00:00.000Z","exchange_id":"home","thread_ref":"2026-02-01-XY1Z","event_type":"thread_created","actor_id":"claude-agent","payload":{"requestor_id":"claude-agent","intent":"Check the front door","priority":"normal","request":{"intent":"Check the front door"}},"seq":1}"#, "\n",
//! #   r#"{"event_id":"e2","ts":"2026-02-01T22:01:00.000Z","exchange_id":"home","thread_ref":"2026-02-01-XY1Z","event_type":"status_changed","actor_id":"my-phone","payload":{"old_status":"pending","new_status":"claimed","executor_id":"my-phone"},"seq":2}"#, "\n",
//! #   r#"{"event_id":"e3","ts":"2026-02-01T22:01"#,
//! # )).unwrap();
//! let exchanges = read_threads(dir.path()).unwrap();
//! let home = &exchanges["home"];
//! let thread = home.thread(&"2026-02-01-XY1Z".parse().unwrap()).unwrap();
//! assert_eq!(thread.status, mess_core::Status::Claimed);
//! assert_eq!(thread.executor_id.as_ref().map(|e| e.as_str()), Some("my-phone"));
//! ```
#![forbid(unsafe_code)]

pub mod action_link;
pub mod blob;
pub mod clock;
pub mod error;
pub mod event;
pub mod exchange;
pub mod ids;
pub mod key;
pub mod layout;
pub mod member;
pub mod mess;
pub mod ports;
pub mod replay;
pub mod request;
pub mod rules;
mod shards;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod thread;
pub mod wire;

#[cfg(feature = "os")]
pub use clock::OsEntropy;
pub use clock::{Clock, Entropy, SystemClock, Timestamp};
pub use error::DomainError;
pub use event::{Event, EventKind};
pub use exchange::{Command, Cursor, Decision, Env, Exchange, Outcome, StatusUpdate, Timers};
pub use ids::{Actor, ExchangeId, ExecutorId, ThreadRef};
pub use key::{ApiKey, KeyHash};
pub use member::{Channel, Member, Preferences, Profile, QuietHours, Registration};
pub use mess::{Block, BlockKind};
pub use ports::{
    ChannelTest, Loaded, Located, Notice, Notifier, OutcomeSink, Ownership, Replayed, Storage,
    StorageError, Taken, TestSend, notifiable, told,
};
pub use replay::Replay;
pub use request::NewRequest;
pub use status::{Priority, Status};
pub use thread::{Message, Messages, OfferStep, Thread};
