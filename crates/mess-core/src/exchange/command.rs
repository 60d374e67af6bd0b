//! The commands an exchange decides, and what deciding them yields.

use serde_json::{Map, Value};

use crate::clock::{Clock, Entropy};
use crate::event::Event;
use crate::ids::{ExecutorId, ThreadRef};
use crate::key::ApiKey;
use crate::member::{Member, Profile, Registration};
use crate::mess::Block;
use crate::request::NewRequest;
use crate::status::Status;

/// A status change asked for in a PATCH.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The status asked for (aliases already resolved).
    pub to: Status,
    /// Fields for the status block (`message`, `estimate`, `questions`...).
    pub extra: Map<String, Value>,
}

/// What a member (or the exchange) asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Join the exchange.
    Register(Registration),
    /// Change one's own profile.
    UpdateProfile {
        /// The profile to change (must be the actor's own).
        executor: ExecutorId,
        /// The fields to replace.
        profile: Profile,
    },
    /// Post a new request.
    Create(NewRequest),
    /// Change a thread's status and/or append a message.
    Update {
        /// The thread.
        thread: ThreadRef,
        /// The status change, if any.
        status: Option<StatusUpdate>,
        /// Blocks to append, if any.
        mess: Option<Vec<Block>>,
    },
    /// Replace one's own API key; the old one stops working at once. The exchange itself
    /// may replace any member's (an operator's `members reset-key`).
    RotateKey {
        /// The member (the actor, or any member when the actor is the exchange).
        executor: ExecutorId,
    },
    /// Leave the exchange (one's own membership only). The exchange itself may remove any
    /// member (an operator's `members remove`, after [`Command::ReleaseClaim`] on each
    /// thread the member holds).
    Remove {
        /// The member (the actor, or any member when the actor is the exchange).
        executor: ExecutorId,
    },
    /// The exchange takes back the claim of a member it is removing: the active thread
    /// goes back to `pending`, recorded as the exchange's move (the exchange's own
    /// command; see [`Exchange::held_by`](crate::Exchange::held_by)).
    ReleaseClaim {
        /// The thread.
        thread: ThreadRef,
        /// The member who holds it.
        executor: ExecutorId,
    },
    /// Expire a thread whose deadline has passed (the exchange's own command).
    Expire {
        /// The thread.
        thread: ThreadRef,
    },
    /// The exchange takes back a claim whose time limit ran out (`default_ms`: the
    /// exchange-wide `CLAIM_TIMEOUT`, for threads without their own `claim_timeout`).
    TimeoutClaim {
        /// The thread.
        thread: ThreadRef,
        /// The exchange's default limit, in milliseconds.
        default_ms: Option<i64>,
    },
    /// The next step of an offer nobody takes: offer it once more, or tell the requestor
    /// (`remind_after_ms`: `OFFER_REMIND_AFTER`, for threads without a deadline).
    OfferStep {
        /// The thread.
        thread: ThreadRef,
        /// Which step is due.
        step: crate::thread::OfferStep,
        /// The exchange's reminder delay, in milliseconds.
        remind_after_ms: i64,
    },
    /// Tell both sides that the deadline of active work passed (the exchange's own).
    TellDeadlinePassed {
        /// The thread.
        thread: ThreadRef,
    },
    /// The requestor asks for another try at a completed or partial thread (PATCH
    /// `{"status": "revision_requested", "reason": ...}`).
    RequestRevision {
        /// The thread.
        thread: ThreadRef,
        /// Why, for the assignee (not blank).
        reason: String,
        /// How long after `completed`/`partial` a revision may be asked for, in
        /// milliseconds (`REVIEW_WINDOW`; [`crate::exchange::DEFAULT_REVIEW_WINDOW_MS`]).
        window_ms: i64,
        /// Other fields sent: they go into the status block, as on any status change.
        extra: serde_json::Map<String, serde_json::Value>,
        /// Blocks sent with it, after the status block.
        mess: Option<Vec<crate::mess::Block>>,
    },
}

/// What a command achieved, besides its events.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A member registered: store `member` (create-only) and hand out `api_key` once.
    Registered {
        /// The new record.
        member: Box<Member>,
        /// The key, to return to the client exactly once.
        api_key: ApiKey,
    },
    /// A profile changed: replace the stored record with `member`.
    ProfileUpdated(Box<Member>),
    /// A member rotated its key: replace the stored record with `member` and hand out
    /// `api_key` once.
    KeyRotated {
        /// The record with the new key's hash.
        member: Box<Member>,
        /// The new key.
        api_key: ApiKey,
    },
    /// A member left: delete its record and forget it.
    Removed(Box<Member>),
    /// A thread was created.
    Created(ThreadRef),
    /// A thread was updated (or the update was a no-op); its status now.
    Updated(ThreadRef, Status),
}

/// Events to append, and what they achieve.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The events, in order, ready to store.
    pub events: Vec<Event>,
    /// The outcome.
    pub outcome: Outcome,
}

/// The injected sources of time and randomness.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// Now.
    pub clock: &'a dyn Clock,
    /// Random bytes (a CSPRNG in production: keys come from it).
    pub entropy: &'a dyn Entropy,
}
