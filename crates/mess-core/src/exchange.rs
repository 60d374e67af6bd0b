//! One exchange's state and its command handling: (state, actor, command) -> events.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use foldhash::HashMap;
use serde_json::{Map, Value};

use crate::clock::{Clock, Entropy, Timestamp, new_uuid};
use crate::error::DomainError;
use crate::event::{
    EXCHANGE_ACTOR, Event, EventKind, MemberSnapshot, MessageAdded, StatusChanged, ThreadCreated,
};
use crate::ids::{Actor, ExchangeId, ExecutorId, ThreadRef};
use crate::key::{ApiKey, KeyHash};
use crate::member::{Member, Profile, Registration};
use crate::mess::Block;
use crate::request::NewRequest;
use crate::rules::{self, Roles, transition};
use crate::shards::ShardedMap;
use crate::status::Status;
use crate::thread::{Confirmation, Step, Thread, fold_thread};

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
    /// Replace one's own API key; the old one stops working at once.
    RotateKey {
        /// The member (must be the actor).
        executor: ExecutorId,
    },
    /// Leave the exchange (one's own membership only).
    Remove {
        /// The member (must be the actor).
        executor: ExecutorId,
    },
    /// Expire a thread whose deadline has passed (the exchange's own command).
    Expire {
        /// The thread.
        thread: ThreadRef,
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

/// Position of a thread in the newest-updated-first order.
type OrderKey = (Reverse<Timestamp>, Reverse<ThreadRef>);

/// An opaque position in a listing: the last thread of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(OrderKey);

impl Cursor {
    /// The cursor as the API hands it out.
    pub fn encode(&self) -> String {
        let (Reverse(ts), Reverse(r)) = &self.0;
        hex::encode(format!("{}.{}", ts.unix_millis(), r))
    }

    /// Parses a cursor handed out by [`Cursor::encode`].
    pub fn decode(s: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::invalid("invalid cursor");
        let raw = hex::decode(s).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (ms, r) = raw.split_once('.').ok_or_else(bad)?;
        let ms: i64 = ms.parse().map_err(|_| bad())?;
        let r = ThreadRef::parse(r).map_err(|_| bad())?;
        Ok(Self((Reverse(Timestamp::from_unix_millis(ms)), Reverse(r))))
    }
}

/// One exchange: its threads, members and indexes, all in memory.
#[derive(Debug, Clone)]
pub struct Exchange {
    id: ExchangeId,
    threads: ShardedMap<ThreadRef, Arc<Thread>>,
    order: BTreeSet<OrderKey>,
    by_status: HashMap<Status, BTreeSet<OrderKey>>,
    deadlines: BTreeSet<(Timestamp, ThreadRef)>,
    members: HashMap<ExecutorId, Arc<Member>>,
    keys: HashMap<KeyHash, ExecutorId>,
    /// Whether `order`, `by_status` and `deadlines` are kept (see [`Exchange::for_deciding`]).
    listed: bool,
}

fn order_key(t: &Thread) -> OrderKey {
    (Reverse(t.updated_at), Reverse(t.thread_ref.clone()))
}

fn expirable(s: Status) -> bool {
    matches!(s, Status::Pending | Status::Waiting | Status::Held)
}

const REF_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// The shortest and longest ref suffixes (`ThreadRef::parse` accepts 4 to 16 characters).
const MIN_REF_SUFFIX: usize = 4;
const MAX_REF_SUFFIX: usize = 16;

impl Exchange {
    /// An empty exchange.
    pub fn new(id: ExchangeId) -> Self {
        Self {
            id,
            threads: ShardedMap::default(),
            order: BTreeSet::new(),
            by_status: HashMap::default(),
            deadlines: BTreeSet::new(),
            members: HashMap::default(),
            keys: HashMap::default(),
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
            members: self.members.clone(),
            keys: self.keys.clone(),
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

    /// A page of threads, newest-updated first, optionally of one status.
    pub fn list(
        &self,
        status: Option<Status>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> (Vec<Arc<Thread>>, Option<Cursor>) {
        static EMPTY: BTreeSet<OrderKey> = BTreeSet::new();
        let set = match status {
            Some(s) => self.by_status.get(&s).unwrap_or(&EMPTY),
            None => &self.order,
        };
        let start = match after {
            Some(c) => Bound::Excluded(&c.0),
            None => Bound::Unbounded,
        };
        let mut page: Vec<Arc<Thread>> = Vec::with_capacity(limit.min(256));
        let mut it = set.range::<OrderKey, _>((start, Bound::Unbounded));
        for (_, Reverse(r)) in it.by_ref().take(limit) {
            if let Some(t) = self.threads.get(r) {
                page.push(t.clone());
            }
        }
        let more = it.next().is_some();
        let next = if more {
            page.last().map(|t| Cursor(order_key(t)))
        } else {
            None
        };
        (page, next)
    }

    /// Threads whose deadline is at or before `now` and that may still expire.
    pub fn due_for_expiry(&self, now: Timestamp) -> Vec<ThreadRef> {
        self.deadlines
            .range(..=(now, ThreadRef::parse("9999-12-31-ZZZZ").expect("valid")))
            .filter(|(_, r)| self.threads.get(r).is_some_and(|t| expirable(t.status)))
            .map(|(_, r)| r.clone())
            .collect()
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
        }
        if let Some(t) = t {
            let k = order_key(&t);
            self.order.insert(k.clone());
            self.by_status.entry(t.status).or_default().insert(k);
            if let Some(d) = t.deadline.filter(|_| expirable(t.status)) {
                self.deadlines.insert((d, r.clone()));
            }
            self.threads.insert(r.clone(), t);
        }
    }

    /// Applies one stored event. Events are facts: nothing is refused; an event about an
    /// unknown thread (other than its creation) is ignored.
    pub fn apply(&mut self, e: &Event) {
        let Some(r) = &e.thread_ref else { return };
        let next = match (&e.kind, self.threads.get(r)) {
            (EventKind::ThreadCreated(_), _) => Thread::from_created(e).map(Arc::new),
            (EventKind::StatusChanged(_) | EventKind::MessageAdded(_), Some(t)) => {
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
        self.threads.reserve(count);
        for (r, t) in threads {
            self.put_thread(&r, Some(t));
        }
    }

    /// Decides a command: the events it causes, or why not. Pure: the state is untouched;
    /// apply the events (and put the outcome's member) once they are stored.
    pub fn decide(
        &self,
        actor: &Actor,
        cmd: Command,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let now = env.clock.now();
        match cmd {
            Command::Register(reg) => self.register(reg, now, env),
            Command::UpdateProfile { executor, profile } => {
                self.update_profile(actor, &executor, profile, now, env)
            }
            Command::RotateKey { executor } => self.rotate_key(actor, &executor, now, env),
            Command::Remove { executor } => self.remove(actor, &executor, now, env),
            Command::Create(req) => self.create(actor, req, now, env),
            Command::Update {
                thread,
                status,
                mess,
            } => self.update(actor, &thread, status, mess, now, env),
            Command::Expire { thread } => self.expire(&thread, now, env),
        }
    }

    fn event(
        &self,
        env: Env<'_>,
        now: Timestamp,
        thread: Option<(&ThreadRef, u64)>,
        actor: &Actor,
        kind: EventKind,
    ) -> Event {
        Event {
            event_id: new_uuid(env.entropy),
            ts: now,
            exchange_id: self.id.clone(),
            thread_ref: thread.map(|(r, _)| r.clone()),
            actor_id: actor.clone(),
            seq: thread.map_or(0, |(_, s)| s),
            kind,
        }
    }

    fn snapshot(m: &Member) -> MemberSnapshot {
        MemberSnapshot {
            executor_id: m.executor_id.to_string(),
            display_name: m.display_name.clone(),
            capabilities: m.capabilities.clone(),
            channels: m
                .notifications
                .iter()
                .map(|c| c.kind().to_owned())
                .collect(),
        }
    }

    fn register(
        &self,
        reg: Registration,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        if reg.executor_id.as_str() == EXCHANGE_ACTOR {
            return Err(DomainError::ReservedId(format!(
                "{EXCHANGE_ACTOR} is the exchange's own id; choose another executor id"
            )));
        }
        if self.members.contains_key(&reg.executor_id) {
            return Err(DomainError::AlreadyRegistered(format!(
                "executor {} is already registered",
                reg.executor_id
            )));
        }
        let api_key = ApiKey::generate(&self.id, env.entropy);
        let p = reg.profile;
        let member = Member {
            display_name: p
                .display_name
                .unwrap_or_else(|| reg.executor_id.to_string()),
            executor_id: reg.executor_id,
            exchange_id: self.id.clone(),
            capabilities: p.capabilities.unwrap_or_default(),
            notifications: p.notifications.unwrap_or_default(),
            preferences: p.preferences.unwrap_or_default(),
            hooks: p.hooks.unwrap_or_default(),
            key_hash: api_key.hash(),
            created_at: now,
            updated_at: now,
            last_seen: now,
        };
        let e = self.event(
            env,
            now,
            None,
            &Actor::Member(member.executor_id.clone()),
            EventKind::ExecutorRegistered(Self::snapshot(&member)),
        );
        Ok(Decision {
            events: vec![e],
            outcome: Outcome::Registered {
                member: Box::new(member),
                api_key,
            },
        })
    }

    fn update_profile(
        &self,
        actor: &Actor,
        target: &ExecutorId,
        profile: Profile,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let mut member = Member::clone(self.own_member(actor, target)?);
        member.apply_profile(&profile);
        let e = self.member_changed(actor, &mut member, now, env, EventKind::ExecutorUpdated);
        Ok(Decision {
            events: vec![e],
            outcome: Outcome::ProfileUpdated(Box::new(member)),
        })
    }

    /// Stamps a changed member and records the change as an event of `kind`.
    fn member_changed(
        &self,
        actor: &Actor,
        member: &mut Member,
        now: Timestamp,
        env: Env<'_>,
        kind: fn(MemberSnapshot) -> EventKind,
    ) -> Event {
        member.updated_at = now;
        member.last_seen = now;
        self.event(env, now, None, actor, kind(Self::snapshot(member)))
    }

    fn own_member(&self, actor: &Actor, target: &ExecutorId) -> Result<&Arc<Member>, DomainError> {
        let current = self
            .members
            .get(target)
            .ok_or_else(|| DomainError::NotFound("Executor not found".into()))?;
        if *actor != Actor::Member(target.clone()) {
            return Err(DomainError::Forbidden(
                "you can only change your own profile and key".into(),
            ));
        }
        Ok(current)
    }

    fn rotate_key(
        &self,
        actor: &Actor,
        target: &ExecutorId,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let mut member = Member::clone(self.own_member(actor, target)?);
        let api_key = ApiKey::generate(&self.id, env.entropy);
        member.key_hash = api_key.hash();
        let e = self.member_changed(actor, &mut member, now, env, EventKind::ExecutorKeyRotated);
        Ok(Decision {
            events: vec![e],
            outcome: Outcome::KeyRotated {
                member: Box::new(member),
                api_key,
            },
        })
    }

    fn remove(
        &self,
        actor: &Actor,
        target: &ExecutorId,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let member = Member::clone(self.own_member(actor, target)?);
        let e = self.event(
            env,
            now,
            None,
            actor,
            EventKind::ExecutorRemoved(Self::snapshot(&member)),
        );
        Ok(Decision {
            events: vec![e],
            outcome: Outcome::Removed(Box::new(member)),
        })
    }

    fn new_ref(&self, now: Timestamp, env: Env<'_>) -> ThreadRef {
        let date = now.date();
        let make = |digits: &[usize]| {
            let suffix: String = digits.iter().map(|d| REF_ALPHABET[*d] as char).collect();
            ThreadRef::from_parts(date, &suffix)
        };
        let mut digits = Vec::new();
        // Four collisions in a row: the day is filling up, so lengthen the suffix, up to
        // the longest one `ThreadRef::parse` accepts (a longer ref could not be read back).
        for len in MIN_REF_SUFFIX..=MAX_REF_SUFFIX {
            for _ in 0..4 {
                let mut bytes = vec![0u8; len];
                env.entropy.fill(&mut bytes);
                digits = bytes
                    .iter()
                    .map(|b| usize::from(*b) % REF_ALPHABET.len())
                    .collect();
                let r = make(&digits);
                if !self.threads.contains_key(&r) {
                    return r;
                }
            }
        }
        // Only an entropy source that repeats itself gets here: step through the suffixes
        // after the last one drawn. The exchange holds finitely many threads, so this ends.
        loop {
            for d in digits.iter_mut().rev() {
                *d = (*d + 1) % REF_ALPHABET.len();
                if *d != 0 {
                    break;
                }
            }
            let r = make(&digits);
            if !self.threads.contains_key(&r) {
                return r;
            }
        }
    }

    fn create(
        &self,
        actor: &Actor,
        req: NewRequest,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let Actor::Member(requestor) = actor else {
            return Err(DomainError::Forbidden(
                "only members create requests".into(),
            ));
        };
        let r = self.new_ref(now, env);
        let e = self.event(
            env,
            now,
            Some((&r, 1)),
            actor,
            EventKind::ThreadCreated(ThreadCreated {
                requestor_id: requestor.to_string(),
                intent: req.intent,
                priority: req.priority,
                request: req.fields,
            }),
        );
        Ok(Decision {
            events: vec![e],
            outcome: Outcome::Created(r),
        })
    }

    fn roles(actor: &Actor, t: &Thread) -> Roles {
        match actor {
            Actor::Exchange => Roles {
                exchange: true,
                ..Roles::default()
            },
            Actor::Member(m) => Roles {
                requestor: t.requestor_id == m.as_str(),
                assignee: t.executor_id.as_deref() == Some(m.as_str()),
                exchange: false,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        actor: &Actor,
        r: &ThreadRef,
        status: Option<StatusUpdate>,
        mess: Option<Vec<Block>>,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let t = self
            .threads
            .get(r)
            .ok_or_else(|| DomainError::NotFound("Thread not found".into()))?;
        let roles = Self::roles(actor, t);
        let from = t.status;
        let mut events = Vec::new();
        let mut seq = t.seq;
        let mut next_seq = || {
            seq += 1;
            seq
        };
        match status {
            Some(su) if su.to != from => {
                let to = su.to;
                let conflict = |rule, message: String| DomainError::Conflict {
                    rule,
                    message,
                    from,
                    to,
                };
                if rules::claim_conflict(to, t.executor_id.is_some(), roles) {
                    return Err(conflict(
                        rules::Conflict::HeldByAnother,
                        "the request is already claimed by another member".into(),
                    ));
                }
                let row = transition(from, to).ok_or_else(|| {
                    conflict(
                        rules::Conflict::NoSuchMove,
                        format!("cannot change status from {from} to {to}"),
                    )
                })?;
                if !roles.may(row.who) {
                    return Err(DomainError::Forbidden(format!(
                        "only the {} may change status from {from} to {to}",
                        row.who.describe()
                    )));
                }
                let confirmed = t.confirmation == Confirmation::Given;
                if rules::awaits_confirmation(to, t.confirm_before, confirmed) {
                    return Err(conflict(
                        rules::Conflict::AwaitingConfirmation,
                        "this request needs the requestor's confirmation before it is completed"
                            .into(),
                    ));
                }
                let executor_id = match to {
                    Status::Claimed if from == Status::Pending => Some(actor.as_str().to_owned()),
                    Status::Pending => None,
                    _ => t.executor_id.clone(),
                };
                let change = StatusChanged {
                    old_status: from,
                    new_status: to,
                    executor_id,
                };
                events.push(self.event(
                    env,
                    now,
                    Some((r, next_seq())),
                    actor,
                    EventKind::StatusChanged(change),
                ));
                let mut blocks = mess.unwrap_or_default();
                if blocks.first().and_then(Block::status_code) != Some(to) {
                    blocks.insert(0, Block::status(r, to, su.extra));
                }
                let added = MessageAdded { mess: blocks };
                events.push(self.event(
                    env,
                    now,
                    Some((r, next_seq())),
                    actor,
                    EventKind::MessageAdded(added),
                ));
                return Ok(Decision {
                    events,
                    outcome: Outcome::Updated(r.clone(), to),
                });
            }
            Some(_) => rules::repeat_status(from, roles)?,
            None => {}
        }
        // No status change: at most a message to append.
        let had_status = status.is_some();
        let blocks = match mess {
            Some(b) if !b.is_empty() => b,
            _ if had_status => {
                return Ok(Decision {
                    events,
                    outcome: Outcome::Updated(r.clone(), from),
                });
            }
            _ => {
                return Err(DomainError::invalid(
                    "nothing to update: send status and/or a non-empty mess",
                ));
            }
        };
        if !rules::may_append(roles, from) {
            return Err(DomainError::Forbidden(
                "only the requestor and the assignee may add messages to this request".into(),
            ));
        }
        let added = MessageAdded { mess: blocks };
        events.push(self.event(
            env,
            now,
            Some((r, next_seq())),
            actor,
            EventKind::MessageAdded(added),
        ));
        Ok(Decision {
            events,
            outcome: Outcome::Updated(r.clone(), from),
        })
    }

    fn expire(&self, r: &ThreadRef, now: Timestamp, env: Env<'_>) -> Result<Decision, DomainError> {
        let t = self
            .threads
            .get(r)
            .ok_or_else(|| DomainError::NotFound("Thread not found".into()))?;
        if t.deadline.is_none_or(|d| d > now) {
            return Err(DomainError::Conflict {
                rule: rules::Conflict::NoSuchMove,
                message: "the request has not reached its deadline".into(),
                from: t.status,
                to: Status::Expired,
            });
        }
        self.update(
            &Actor::Exchange,
            r,
            Some(StatusUpdate {
                to: Status::Expired,
                extra: Map::new(),
            }),
            None,
            now,
            env,
        )
    }
}
