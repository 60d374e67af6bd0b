//! One exchange's state and its command handling: (state, actor, command) -> events.
//!
//! # Layout
//! - `mod.rs`: [`Exchange`], its state, its accessors and how events are applied to it.
//! - `command`: what comes in and goes out: [`Command`], [`StatusUpdate`], [`Decision`],
//!   [`Outcome`], [`Env`].
//! - `decide`: [`Exchange::decide`] and the rules of each command.
//! - `listing`: pages of threads ([`Cursor`]) and the threads due to expire.
//! - `operator`: what the exchange decides for an operator (a member's claims released
//!   before it is removed).

mod command;
mod decide;
mod listing;
mod operator;
mod timers;

use std::collections::BTreeSet;
use std::sync::Arc;

use foldhash::HashMap;

use crate::clock::Timestamp;
use crate::event::{Event, EventKind};
use crate::ids::{ExchangeId, ExecutorId, ThreadRef};
use crate::key::{ApiKey, KeyHash};
use crate::member::Member;
use crate::shards::ShardedMap;
use crate::status::Status;
use crate::thread::{Step, Thread, fold_thread};

pub use command::{Command, Decision, Env, Outcome, StatusUpdate};
pub use listing::{Cursor, Timers};
use listing::{OrderKey, expirable, order_key};

/// How long after `completed` or `partial` a requestor may ask for a revision, by default:
/// 24 hours (`REVIEW_WINDOW`).
pub const DEFAULT_REVIEW_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// One exchange: its threads, members and indexes, all in memory.
#[derive(Debug, Clone)]
pub struct Exchange {
    id: ExchangeId,
    threads: ShardedMap<ThreadRef, Arc<Thread>>,
    order: BTreeSet<OrderKey>,
    by_status: HashMap<Status, BTreeSet<OrderKey>>,
    deadlines: BTreeSet<(Timestamp, ThreadRef)>,
    /// Every thread's other timers (offer steps, claim limits, deadline notices).
    timers: timers::TimerIndex,
    members: HashMap<ExecutorId, Arc<Member>>,
    keys: HashMap<KeyHash, ExecutorId>,
    /// The position of its latest event (the change feed's head): 0 before any.
    head: u64,
    /// Whether `order`, `by_status`, `deadlines` and `timers` are kept (see
    /// [`Exchange::for_deciding`]).
    listed: bool,
}

impl Exchange {
    /// An empty exchange.
    pub fn new(id: ExchangeId) -> Self {
        Self {
            id,
            threads: ShardedMap::default(),
            order: BTreeSet::new(),
            by_status: HashMap::default(),
            deadlines: BTreeSet::new(),
            timers: timers::TimerIndex::default(),
            members: HashMap::default(),
            keys: HashMap::default(),
            head: 0,
            listed: true,
        }
    }

    /// A copy that can decide and apply, but not list: the same threads and members,
    /// without the list and expiry indexes (about two thirds of an exchange's own memory).
    /// A writer decides against such a copy while readers list the published one.
    /// `list`, `status_counts` and `due_for_expiry` of this copy find nothing.
    pub fn for_deciding(&self) -> Self {
        Self {
            id: self.id.clone(),
            threads: self.threads.clone(),
            order: BTreeSet::new(),
            by_status: HashMap::default(),
            deadlines: BTreeSet::new(),
            timers: timers::TimerIndex::default(),
            members: self.members.clone(),
            keys: self.keys.clone(),
            head: self.head,
            listed: false,
        }
    }

    /// Its id.
    pub fn id(&self) -> &ExchangeId {
        &self.id
    }

    /// A thread by ref.
    pub fn thread(&self, r: &ThreadRef) -> Option<&Arc<Thread>> {
        self.threads.get(r)
    }

    /// How many threads it holds.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Thread counts by status.
    pub fn status_counts(&self) -> impl Iterator<Item = (Status, usize)> + '_ {
        self.by_status.iter().map(|(s, set)| (*s, set.len()))
    }

    /// A member by id.
    pub fn member(&self, id: &ExecutorId) -> Option<&Arc<Member>> {
        self.members.get(id)
    }

    /// Every member, by id.
    pub fn members(&self) -> impl Iterator<Item = &Arc<Member>> {
        self.members.values()
    }

    /// The member holding `key`, if the key is one of this exchange's.
    pub fn authenticate(&self, key: &ApiKey) -> Option<&Arc<Member>> {
        let hash = key.hash();
        let id = self.keys.get(&hash)?;
        let m = self.members.get(id)?;
        m.key_hash.ct_eq(&hash).then_some(m)
    }

    /// Puts a member (from its stored record) into the state, replacing any earlier one.
    pub fn put_member(&mut self, m: Arc<Member>) {
        if let Some(old) = self.members.get(&m.executor_id) {
            self.keys.remove(&old.key_hash);
        }
        self.keys.insert(m.key_hash, m.executor_id.clone());
        self.members.insert(m.executor_id.clone(), m);
    }

    /// Forgets a member and its key.
    pub fn remove_member(&mut self, id: &ExecutorId) {
        if let Some(old) = self.members.remove(id) {
            self.keys.remove(&old.key_hash);
        }
    }

    /// Sets (or with `None`, removes) a thread, keeping every index right.
    pub fn put_thread(&mut self, r: &ThreadRef, t: Option<Arc<Thread>>) {
        if !self.listed {
            match t {
                Some(t) => self.threads.insert(r.clone(), t),
                None => self.threads.remove(r),
            };
            return;
        }
        if let Some(old) = self.threads.remove(r) {
            let k = order_key(&old);
            self.order.remove(&k);
            if let Some(set) = self.by_status.get_mut(&old.status) {
                set.remove(&k);
            }
            if let Some(d) = old.deadline {
                self.deadlines.remove(&(d, r.clone()));
            }
            self.timers.remove(r, &old);
        }
        if let Some(t) = t {
            let k = order_key(&t);
            self.order.insert(k.clone());
            self.by_status.entry(t.status).or_default().insert(k);
            if let Some(d) = t.deadline.filter(|_| expirable(t.status)) {
                self.deadlines.insert((d, r.clone()));
            }
            self.timers.insert(r, &t);
            self.threads.insert(r.clone(), t);
        }
    }

    /// The position of the latest event (0 before any): the change feed's head. The
    /// positions [`Exchange::decide`] gives follow it.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Moves the head on to `pos` (never back): an event at `pos` is decided or stored.
    pub fn advance(&mut self, pos: u64) {
        self.head = self.head.max(pos);
    }

    /// Sets the head (a writer rolling back what storage refused, or start-up).
    pub fn set_head(&mut self, pos: u64) {
        self.head = pos;
    }

    /// Applies one stored event. Events are facts: nothing is refused; an event about an
    /// unknown thread (other than its creation) is ignored.
    pub fn apply(&mut self, e: &Event) {
        self.advance(e.pos);
        let Some(r) = &e.thread_ref else { return };
        let next = match (&e.kind, self.threads.get(r)) {
            (EventKind::ThreadCreated(_), _) => Thread::from_created(e).map(Arc::new),
            (
                EventKind::StatusChanged(_)
                | EventKind::MessageAdded(_)
                | EventKind::OfferPassed(_)
                | EventKind::OfferReminded(_)
                | EventKind::ThreadUnclaimed(_)
                | EventKind::NeededByPassed(_),
                Some(t),
            ) => {
                let mut t = Thread::clone(t);
                t.apply(e);
                Some(Arc::new(t))
            }
            (_, Some(t)) if e.seq > t.seq => {
                let mut t = Thread::clone(t);
                t.seq = e.seq;
                Some(Arc::new(t))
            }
            _ => return,
        };
        if next.is_some() {
            self.put_thread(r, next);
        }
    }

    /// Applies many stored events at once: each thread's events are folded together (its
    /// messages appended once) and the indexes are built once at the end instead of after
    /// every event. The result is the same as [`Exchange::apply`] on each event in turn.
    /// Start-up uses [`crate::replay::Replay`], which also puts each thread's events in order.
    pub fn apply_all<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let mut steps: HashMap<&ThreadRef, Vec<(u64, Timestamp, Step)>> = HashMap::default();
        for e in events {
            if let Some(r) = &e.thread_ref {
                steps.entry(r).or_default().push((e.seq, e.ts, Step::of(e)));
            }
        }
        let mut threads = std::mem::take(&mut self.threads);
        for (r, steps) in steps {
            let start = threads.remove(r).map(Arc::unwrap_or_clone);
            if let Some(t) = fold_thread(start, steps) {
                threads.insert(r.clone(), Arc::new(t));
            }
        }
        let count = threads.len();
        self.set_threads(threads, count);
    }

    /// Replaces every thread (`count` of them), and builds the indexes once.
    pub(crate) fn set_threads(
        &mut self,
        threads: impl IntoIterator<Item = (ThreadRef, Arc<Thread>)>,
        count: usize,
    ) {
        self.threads.clear();
        self.order.clear();
        self.by_status.clear();
        self.deadlines.clear();
        self.timers.clear();
        self.threads.reserve(count);
        for (r, t) in threads {
            self.put_thread(&r, Some(t));
        }
    }
}
