//! A thread folded from its events, in exactly the shape the API returns.

use std::sync::OnceLock;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::clock::Timestamp;
use crate::event::{Event, EventKind, MessageAdded};
use crate::ids::{Actor, ExecutorId, ThreadRef};
use crate::mess::{Block, BlockKind};
use crate::status::{Priority, Status};

/// One message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who sent it.
    pub from: String,
    /// When.
    pub ts: Timestamp,
    /// Its blocks.
    pub mess: Vec<Block>,
}

/// A message to serialize, borrowed from its event: the same fields, in the same order, as
/// [`Message`], so it serializes to the same bytes.
#[derive(Serialize)]
struct MessageRef<'a> {
    from: &'a str,
    ts: Timestamp,
    mess: &'a [Block],
}

/// One message as compact JSON: exactly what `serde_json` writes for its [`Message`].
pub(crate) fn message_json(from: &str, ts: Timestamp, mess: &[Block]) -> Box<RawValue> {
    serde_json::value::to_raw_value(&MessageRef { from, ts, mess })
        .expect("a message always serializes")
}

/// A thread's messages, oldest first, kept as the compact JSON array the API returns (one
/// allocation per thread instead of several per message and block): it serializes verbatim,
/// and [`Messages::iter`] parses it back when a caller needs the messages themselves.
#[derive(Clone)]
pub struct Messages {
    /// Valid JSON by construction: brackets and commas around JSON values (`RawValue`s).
    /// Not a `RawValue` itself: building one checks the whole text, so adding a message
    /// to a thread of megabytes would read them all again.
    json: Box<str>,
    len: u32,
}

impl Messages {
    /// The messages whose JSON objects are `items` (each one written by [`message_json`]):
    /// the compact array `serde_json` would write, in a buffer of exactly its size (a
    /// growing one would leave freed pieces of every size behind it).
    pub(crate) fn from_items<T: std::borrow::Borrow<RawValue>>(items: &[T]) -> Self {
        let len = 2
            + items.len().saturating_sub(1)
            + items.iter().map(|i| i.borrow().get().len()).sum::<usize>();
        let mut json = String::with_capacity(len);
        json.push('[');
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                json.push(',');
            }
            json.push_str(item.borrow().get());
        }
        json.push(']');
        Self {
            json: json.into_boxed_str(),
            len: u32::try_from(items.len()).unwrap_or(u32::MAX),
        }
    }

    /// These messages followed by `more` (each written by [`message_json`]), in a new
    /// buffer even when `more` is empty.
    pub(crate) fn extend(&mut self, more: &[Box<RawValue>]) {
        // Our own compact array: drop its `]`, add `,item`s, close it again. Nothing is
        // parsed or checked: a thread holding megabytes of data: URIs stays cheap to extend.
        let old = &*self.json;
        let body = &old[1..old.len() - 1];
        let commas = more.len().saturating_sub(usize::from(body.is_empty()));
        let len = old.len() + commas + more.iter().map(|m| m.get().len()).sum::<usize>();
        let mut json = String::with_capacity(len);
        json.push('[');
        json.push_str(body);
        for (n, item) in more.iter().enumerate() {
            if n > 0 || !body.is_empty() {
                json.push(',');
            }
            json.push_str(item.get());
        }
        json.push(']');
        self.json = json.into_boxed_str();
        self.len = self
            .len
            .saturating_add(u32::try_from(more.len()).unwrap_or(u32::MAX));
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none (never, for a thread: its request is the first).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The messages, parsed, oldest first.
    pub fn iter(&self) -> std::vec::IntoIter<Message> {
        self.to_vec().into_iter()
    }

    /// The messages, parsed, oldest first.
    pub fn to_vec(&self) -> Vec<Message> {
        serde_json::from_str(&self.json).expect("our own messages parse")
    }

    /// The newest message, parsed.
    pub fn last(&self) -> Option<Message> {
        self.to_vec().pop()
    }

    /// The JSON array, exactly as a GET returns it.
    pub fn as_json(&self) -> &str {
        &self.json
    }
}

impl IntoIterator for &Messages {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Messages {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.json)
    }
}

impl Serialize for Messages {
    /// Written verbatim. `serde_json` hands raw JSON on only as a `RawValue`, which costs a
    /// read of the text; the API's own answers skip it (`Thread::write_json`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.json).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// Where a `confirm_before` request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confirmation {
    /// The assignee has not asked yet.
    #[default]
    NotAsked,
    /// The assignee sent `needs_confirmation`; the requestor has not replied.
    Asked,
    /// The requestor replied: `completed` is allowed.
    Given,
}

/// A request thread. Serializes to the seed's GET shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Its ref.
    pub thread_ref: ThreadRef,
    /// Its status.
    pub status: Status,
    /// What was asked.
    pub intent: String,
    /// Who asked.
    pub requestor_id: ExecutorId,
    /// Who holds the claim.
    pub executor_id: Option<ExecutorId>,
    /// How urgent it is.
    pub priority: Priority,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Grows by one for each committed command that changes what a GET shows: 1 at
    /// creation, then one per message (every such command records exactly one message;
    /// notification outcomes record none). Clients compare it with `>` only.
    pub version: u64,
    /// Its messages, oldest first.
    pub messages: Messages,
    /// The `seq` of its last event.
    pub seq: u64,
    /// When it expires if unclaimed (`needed_by` or `constraints.timing.expires`).
    pub deadline: Option<Timestamp>,
    /// Whether `completed` waits for the requestor's confirmation.
    pub confirm_before: bool,
    /// Where that confirmation stands.
    pub confirmation: Confirmation,
    /// When it last reached a terminal status (`None` while not terminal): the review
    /// window of a revision runs from it.
    pub finished_at: Option<Timestamp>,
    /// When its status last changed (its creation before that): a claim's time limit runs
    /// from it, or from the assignee's latest message.
    pub status_at: Timestamp,
    /// The request's own `claim_timeout`, in milliseconds.
    pub claim_timeout_ms: Option<i64>,
    /// When it was last offered: created, or back to `pending`.
    pub offered_at: Timestamp,
    /// Whether it was offered once more since (`offer_reminded`).
    pub reminded: bool,
    /// Whether its requestor was told nobody took it (`thread_unclaimed`).
    pub unclaimed_told: bool,
    /// Whether both sides were told its deadline passed while it was active
    /// (`needed_by_passed`).
    pub deadline_told: bool,
    /// The members who passed on it (`offer_passed`): it is not offered to them again.
    pub passed_by: Vec<ExecutorId>,
    /// Capabilities a member needs to be notified of it.
    pub requires: Vec<String>,
    /// Its list entry's JSON, written the first time it is asked for.
    head: HeadCache,
}

/// A thread's list entry as JSON, written once per version of the thread, the first time a
/// list (or a GET, whose body starts with the same fields) asks for it: readers of a
/// popular thread serialize nothing. Not part of the thread's value: it compares equal,
/// and a clone starts empty (a thread is cloned to be changed).
#[derive(Default)]
struct HeadCache(OnceLock<Box<str>>);

impl Clone for HeadCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for HeadCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

impl Thread {
    /// Builds a thread from its `thread_created` event; `None` for any other event.
    pub fn from_created(e: &Event) -> Option<Self> {
        let (mut t, first) = Self::created(e)?;
        t.messages = Messages::from_items(&[first]);
        Some(t)
    }

    /// The thread a `thread_created` event starts, with no messages yet, and the JSON of its
    /// first message (the request).
    fn created(e: &Event) -> Option<(Self, Box<RawValue>)> {
        let (EventKind::ThreadCreated(c), Some(r)) = (&e.kind, &e.thread_ref) else {
            return None;
        };
        // Its own event's request was validated when it was decided; an older log's
        // request that no longer passes still makes a thread, with the defaults.
        let terms = crate::request::Terms::read(&c.request).ok();
        let first = message_json(
            e.actor_id.as_str(),
            e.ts,
            &[Block::of(BlockKind::Request, &c.request)],
        );
        let thread = Self {
            thread_ref: r.clone(),
            status: Status::Pending,
            intent: c.intent.clone(),
            requestor_id: c.requestor_id.clone(),
            executor_id: None,
            priority: c.priority,
            created_at: e.ts,
            updated_at: e.ts,
            version: 1,
            messages: Messages::from_items::<Box<RawValue>>(&[]),
            seq: e.seq,
            deadline: terms.as_ref().and_then(|t| t.deadline),
            confirm_before: terms.as_ref().is_some_and(|t| t.confirm_before),
            confirmation: Confirmation::NotAsked,
            finished_at: None,
            status_at: e.ts,
            offered_at: e.ts,
            reminded: false,
            unclaimed_told: false,
            deadline_told: false,
            passed_by: Vec::new(),
            claim_timeout_ms: terms.as_ref().and_then(|t| t.claim_timeout_ms),
            requires: terms.map(|t| t.requires).unwrap_or_default(),
            head: HeadCache::default(),
        };
        Some((thread, first))
    }

    /// When this claim runs out, for an exchange whose default limit is `default_ms`:
    /// `None` unless the thread is `claimed` with a limit (its own `claim_timeout`, else the
    /// default). The limit runs from the later of the claim and the assignee's latest
    /// message; an `estimate` on the claim's status block extends it when longer.
    pub fn claim_expires_at(&self, default_ms: Option<i64>) -> Option<Timestamp> {
        if self.status != Status::Claimed {
            return None;
        }
        let mut limit = self.claim_timeout_ms.or(default_ms)?;
        let assignee = self.executor_id.as_ref()?;
        let mut active = self.status_at;
        for m in self.messages.iter().filter(|m| m.ts >= self.status_at) {
            if m.from != assignee.as_str() {
                continue;
            }
            active = active.max(m.ts);
            let estimate = m
                .mess
                .iter()
                .filter(|b| b.status_code() == Some(Status::Claimed))
                .filter_map(|b| b.body().get("estimate").cloned())
                .find_map(|v| crate::request::parse_claim_duration(&v, "estimate").ok());
            if let Some(e) = estimate {
                limit = limit.max(e);
            }
        }
        Some(Timestamp::from_unix_millis(
            active.unix_millis().saturating_add(limit),
        ))
    }

    /// The next step of a pending offer nobody takes, and when: offered once more after
    /// half the time to its deadline (or `remind_after_ms` without one), then its
    /// requestor told after as long again. `None` when it is not pending, or both are done.
    pub fn next_offer_step(&self, remind_after_ms: i64) -> Option<(Timestamp, OfferStep)> {
        if self.status != Status::Pending || self.unclaimed_told {
            return None;
        }
        let from = self.offered_at.unix_millis();
        let after = match self.deadline {
            Some(d) => ((d.unix_millis() - from) / 2).max(1_000),
            None => remind_after_ms,
        };
        let (at, step) = if self.reminded {
            (
                from.saturating_add(after.saturating_mul(2)),
                OfferStep::Unclaimed,
            )
        } else {
            (from.saturating_add(after), OfferStep::Remind)
        };
        Some((Timestamp::from_unix_millis(at), step))
    }

    /// When both sides are to be told that the deadline of this active thread passed:
    /// `None` when it has no deadline, is not active (pending work expires instead), or
    /// they were told.
    pub fn deadline_notice_at(&self) -> Option<Timestamp> {
        let active = self.status.group() == crate::status::Group::Active
            && !matches!(self.status, Status::Waiting | Status::Held);
        (active && !self.deadline_told).then_some(self.deadline?)
    }

    /// A cheap bound before [`Thread::claim_expires_at`], which reads the messages: a
    /// claim younger than its limit has not run out, whatever its messages say (they can
    /// only move the limit later).
    pub fn claim_may_have_run_out(&self, now: Timestamp, default_ms: Option<i64>) -> bool {
        self.status == Status::Claimed
            && self.claim_timeout_ms.or(default_ms).is_some_and(|limit| {
                self.status_at.unix_millis().saturating_add(limit) <= now.unix_millis()
            })
    }

    /// Applies one later event. Events are facts: this never refuses one.
    pub fn apply(&mut self, e: &Event) {
        let mut added = Vec::new();
        self.step(e.seq, e.ts, Step::of(e), &mut added);
        if !added.is_empty() {
            self.messages.extend(&added);
        }
    }

    /// Applies one later event, in its compact form: a message's JSON goes to `added`
    /// (the caller appends those to `messages`, all at once).
    pub(crate) fn step(
        &mut self,
        seq: u64,
        ts: Timestamp,
        step: Step,
        added: &mut Vec<Box<RawValue>>,
    ) {
        // Whatever changes, the cached list entry is no longer this thread's.
        self.head = HeadCache::default();
        self.seq = self.seq.max(seq);
        match step {
            Step::Status {
                status,
                executor_id,
            } => {
                self.status = status;
                self.executor_id = executor_id;
                self.updated_at = ts;
                self.finished_at = status.is_terminal().then_some(ts);
                self.status_at = ts;
                if status == Status::Pending {
                    self.offered_at = ts;
                    self.reminded = false;
                    self.unclaimed_told = false;
                }
                if status == Status::NeedsConfirmation {
                    self.confirmation = Confirmation::Asked;
                }
            }
            Step::Message { json, reply_from } => {
                if self.confirmation == Confirmation::Asked
                    && reply_from.as_ref() == Some(&self.requestor_id)
                {
                    self.confirmation = Confirmation::Given;
                }
                added.push(json);
                self.updated_at = ts;
                self.version += 1;
            }
            Step::Passed { json, by } => {
                added.push(json);
                self.updated_at = ts;
                self.version += 1;
                if !self.passed_by.contains(&by) {
                    self.passed_by.push(by);
                }
            }
            Step::Reminded => self.reminded = true,
            Step::Unclaimed => self.unclaimed_told = true,
            Step::DeadlineTold => self.deadline_told = true,
            Step::Created(..) | Step::Other => {}
        }
    }

    /// The same thread with its strings allocated anew, by the calling thread (its
    /// messages are not copied: [`fold_thread`] has just built them).
    pub(crate) fn reallocated(self) -> Self {
        let thread_ref = self.thread_ref.clone();
        let intent = self.intent.clone();
        let requestor_id = self.requestor_id.reallocated();
        let executor_id = self.executor_id.as_ref().map(ExecutorId::reallocated);
        let requires = self.requires.clone();
        Self {
            thread_ref,
            intent,
            requestor_id,
            executor_id,
            requires,
            ..self
        }
    }

    /// A copy of the thread, messages included, in allocations of its own, by the calling
    /// thread (a clone would share its ids' strings with the original).
    pub(crate) fn copied(&self) -> Self {
        Self {
            requestor_id: self.requestor_id.reallocated(),
            executor_id: self.executor_id.as_ref().map(ExecutorId::reallocated),
            ..self.clone()
        }
    }

    /// The list entry for this thread (the seed's list shape).
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }

    /// The list entry as compact JSON, exactly `serde_json::to_string(&self.summary())`,
    /// written once per version of the thread.
    pub fn summary_json(&self) -> &str {
        self.head.0.get_or_init(|| {
            serde_json::to_string(&self.summary())
                .expect("a summary always serializes")
                .into_boxed_str()
        })
    }

    /// Appends the thread as compact JSON, exactly `serde_json::to_string(self)`: the
    /// cached list entry (the same first fields) and the messages' stored JSON, copied.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let head = self.summary_json();
        let open = head.strip_suffix('}').unwrap_or(head);
        out.reserve(open.len() + self.messages.as_json().len() + 14);
        out.extend_from_slice(open.as_bytes());
        out.extend_from_slice(b",\"messages\":");
        out.extend_from_slice(self.messages.as_json().as_bytes());
        out.push(b'}');
    }

    fn write_head<S: SerializeStruct>(&self, st: &mut S) -> Result<(), S::Error> {
        st.serialize_field("ref", &self.thread_ref)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("intent", &self.intent)?;
        st.serialize_field("requestor_id", &self.requestor_id)?;
        st.serialize_field("executor_id", &self.executor_id)?;
        st.serialize_field("priority", &self.priority)?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("updated_at", &self.updated_at)?;
        st.serialize_field("version", &self.version)
    }
}

impl Serialize for Thread {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Thread", 10)?;
        self.write_head(&mut st)?;
        st.serialize_field("messages", &self.messages)?;
        st.end()
    }
}

/// The steps of an offer nobody takes ([`Thread::next_offer_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferStep {
    /// Offer it once more (`offer_reminded`).
    Remind,
    /// Tell the requestor nobody took it (`thread_unclaimed`).
    Unclaimed,
}

/// What an event does to its thread, without the rest of the event: start-up holds these
/// (not whole events) until each thread's history can be folded in order.
#[derive(Debug)]
pub(crate) enum Step {
    /// `thread_created`: the new thread, without messages (it replaces any earlier one),
    /// and its first message's JSON.
    Created(Box<Thread>, Box<RawValue>),
    /// `status_changed`.
    Status {
        status: Status,
        executor_id: Option<ExecutorId>,
    },
    /// `message_added`: the message's JSON, and its sender if it holds a reply (the only
    /// case where the sender matters: a reply from the requestor gives a confirmation).
    Message {
        json: Box<RawValue>,
        reply_from: Option<ExecutorId>,
    },
    /// `offer_passed`: a member's message, and that member.
    Passed { json: Box<RawValue>, by: ExecutorId },
    /// `offer_reminded`.
    Reminded,
    /// `thread_unclaimed`.
    Unclaimed,
    /// `needed_by_passed`.
    DeadlineTold,
    /// Any other event about the thread: it only moves `seq`.
    Other,
}

impl Step {
    /// What `e` does to its thread.
    pub(crate) fn of(e: &Event) -> Self {
        match &e.kind {
            EventKind::ThreadCreated(_) => Thread::created(e)
                .map_or(Step::Other, |(t, first)| Step::Created(Box::new(t), first)),
            EventKind::StatusChanged(c) => Step::Status {
                status: c.new_status,
                executor_id: c.executor_id.clone(),
            },
            EventKind::OfferPassed(MessageAdded { mess }) => match &e.actor_id {
                Actor::Member(m) => Step::Passed {
                    json: message_json(e.actor_id.as_str(), e.ts, mess),
                    by: m.clone(),
                },
                Actor::Exchange => Step::Other,
            },
            EventKind::OfferReminded(_) => Step::Reminded,
            EventKind::ThreadUnclaimed(_) => Step::Unclaimed,
            EventKind::NeededByPassed(_) => Step::DeadlineTold,
            EventKind::MessageAdded(MessageAdded { mess }) => Step::Message {
                json: message_json(e.actor_id.as_str(), e.ts, mess),
                reply_from: match &e.actor_id {
                    Actor::Member(m) if mess.iter().any(|b| b.kind() == BlockKind::Reply) => {
                        Some(m.clone())
                    }
                    _ => None,
                },
            },
            _ => Step::Other,
        }
    }
}

/// Folds one thread's steps (`seq`, `ts`, step), in order, onto `start`, its state before
/// them if it exists. `None` when no thread results (events about a thread never created).
pub(crate) fn fold_thread(
    start: Option<Thread>,
    steps: impl IntoIterator<Item = (u64, Timestamp, Step)>,
) -> Option<Thread> {
    let mut current = start;
    // Whether the messages of `start` come before `added`; `added` holds every message
    // otherwise, and they are written once, at the end.
    let mut after_start = current.is_some();
    let mut added = Vec::new();
    for (seq, ts, step) in steps {
        match step {
            Step::Created(t, first) => {
                current = Some(*t);
                added.clear();
                added.push(first);
                after_start = false;
            }
            step => {
                if let Some(t) = &mut current {
                    t.step(seq, ts, step, &mut added);
                }
            }
        }
    }
    if let Some(t) = &mut current {
        if after_start {
            t.messages.extend(&added);
        } else {
            t.messages = Messages::from_items(&added);
        }
    }
    current
}

/// A thread as a list shows it: everything but the messages.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a>(&'a Thread);

impl Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ThreadSummary", 9)?;
        self.0.write_head(&mut st)?;
        st.end()
    }
}
