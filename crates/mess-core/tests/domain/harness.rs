//! A given/when/then harness in the style of cqrs-es's `TestFramework`: set an exchange up
//! through the same `decide -> apply` path the server uses, send one command, then check
//! the events it decides (or the error) exactly. Time and randomness are a `ManualClock`
//! and a `CountingEntropy`, so every id and timestamp is reproducible.

use std::sync::Arc;

use mess_core::clock::{CountingEntropy, ManualClock};
use mess_core::event::{MessageAdded, StatusChanged};
use mess_core::{
    Actor, ApiKey, Block, Command, Decision, DomainError, Entropy, Env, Event, EventKind, Exchange,
    ExchangeId, ExecutorId, Member, NewRequest, Outcome, Profile, Registration, Status,
    StatusUpdate, Thread, ThreadRef, Timestamp,
};
use serde_json::{Map, Value, json};

/// When every scenario starts: the seed's example instant.
pub const T0: &str = "2026-02-01T22:00:00.000Z";

/// The member who creates the thread in the fixtures.
pub const ALICE: &str = "alice";
/// The member who claims it.
pub const BOB: &str = "bob";
/// A member with no role on it.
pub const CAROL: &str = "carol";

/// Who acts in a `when`: a member id, or [`Actor`] itself for the exchange.
pub trait IntoActor {
    /// The actor.
    fn into_actor(self) -> Actor;
}

impl IntoActor for &str {
    fn into_actor(self) -> Actor {
        Actor::Member(ExecutorId::parse(self).expect("a valid executor id"))
    }
}

impl IntoActor for Actor {
    fn into_actor(self) -> Actor {
        self
    }
}

/// The exchange, its injected clock and entropy, and every event recorded so far.
pub struct World {
    pub exchange: Exchange,
    pub clock: ManualClock,
    pub entropy: Box<dyn Entropy>,
    /// Every event applied, in order: what storage would hold.
    pub log: Vec<Event>,
}

/// An empty exchange `home` at [`T0`].
pub fn given() -> World {
    World::with_entropy(Box::new(CountingEntropy::default()))
}

/// Alice, Bob and Carol registered; Alice has asked to check the front door.
pub fn given_pending() -> (World, ThreadRef) {
    given_pending_with(json!({"intent": "Check the front door"}))
}

/// Alice, Bob and Carol registered; Alice has posted `body`.
pub fn given_pending_with(body: Value) -> (World, ThreadRef) {
    let mut w = given().members(&[ALICE, BOB, CAROL]);
    let r = w.create(ALICE, body);
    (w, r)
}

/// A thread Alice created and Bob claimed.
pub fn given_claimed() -> (World, ThreadRef) {
    given_in(Status::Claimed)
}

/// A thread Alice created, in `status`, reached the way the protocol allows: Bob claims
/// and moves it; Alice withdraws it; the exchange expires it (a deadline one hour out).
pub fn given_in(status: Status) -> (World, ThreadRef) {
    let (mut w, r) = given_pending_with(json!({
        "intent": "Check the front door",
        "needed_by": "2026-02-01T23:00:00Z",
    }));
    match status {
        Status::Pending => {}
        Status::Expired => {
            w.clock.advance_millis(HOUR);
            w.run(Actor::Exchange, expire(&r));
        }
        Status::Cancelled | Status::Superseded => {
            w.run(ALICE, to(&r, status));
        }
        _ => {
            w.run(BOB, claim(&r));
            if status != Status::Claimed {
                w.run(BOB, to(&r, status));
            }
        }
    }
    assert_eq!(w.thread(&r).status, status, "fixture");
    (w, r)
}

/// One hour, in milliseconds.
pub const HOUR: i64 = 3_600_000;

impl World {
    /// An empty exchange `home` at [`T0`] drawing bytes from `entropy`.
    pub fn with_entropy(entropy: Box<dyn Entropy>) -> Self {
        let t0 = Timestamp::parse(T0).expect("T0 parses");
        Self {
            exchange: Exchange::new(ExchangeId::parse("home").expect("valid")),
            clock: ManualClock::new(t0),
            entropy,
            log: Vec::new(),
        }
    }

    /// The injected sources.
    pub fn env(&self) -> Env<'_> {
        Env {
            clock: &self.clock,
            entropy: &*self.entropy,
        }
    }

    /// Now, by the manual clock.
    pub fn now(&self) -> Timestamp {
        self.env().clock.now()
    }

    /// Moves the clock on by `minutes`.
    pub fn minutes_later(&self, minutes: i64) {
        self.clock.advance_millis(minutes * 60_000);
    }

    /// Decides without recording.
    pub fn decide(&self, actor: impl IntoActor, cmd: Command) -> Result<Decision, DomainError> {
        self.exchange.decide(&actor.into_actor(), cmd, self.env())
    }

    /// Records a decision the way the server does: member records first, then the events.
    pub fn record(&mut self, d: &Decision) {
        match &d.outcome {
            Outcome::Registered { member, .. }
            | Outcome::ProfileUpdated(member)
            | Outcome::KeyRotated { member, .. } => {
                self.exchange.put_member(Arc::new(Member::clone(member)));
            }
            Outcome::Removed(member) => self.exchange.remove_member(&member.executor_id),
            Outcome::Created(_) | Outcome::Updated(..) => {}
        }
        for e in &d.events {
            self.exchange.apply(e);
            self.log.push(e.clone());
        }
    }

    /// Decides a command that must succeed, and records it.
    pub fn run(&mut self, actor: impl IntoActor, cmd: Command) -> Decision {
        let d = self
            .decide(actor, cmd.clone())
            .unwrap_or_else(|e| panic!("{cmd:?}: {e:?}"));
        self.record(&d);
        d
    }

    /// Applies stored events as facts (a `given` of events rather than of steps).
    pub fn events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        for e in events {
            self.exchange.apply(&e);
            self.log.push(e);
        }
        self
    }

    /// Registers `id` and returns its key.
    pub fn register(&mut self, id: &str) -> ApiKey {
        let d = self.run(id, register(id));
        let Outcome::Registered { api_key, .. } = d.outcome else {
            panic!("not registered")
        };
        api_key
    }

    /// Registers every member in `ids`.
    pub fn members(mut self, ids: &[&str]) -> Self {
        for id in ids {
            self.register(id);
        }
        self
    }

    /// `by` posts `body`; returns the new thread's ref.
    pub fn create(&mut self, by: &str, body: Value) -> ThreadRef {
        let d = self.run(by, create(body));
        let Outcome::Created(r) = d.outcome else {
            panic!("not created")
        };
        r
    }

    /// A thread by ref, which must exist.
    pub fn thread(&self, r: &ThreadRef) -> Arc<Thread> {
        self.exchange.thread(r).expect("the thread exists").clone()
    }

    /// Sends one command: what follows checks its result.
    pub fn when(self, actor: impl IntoActor, cmd: Command) -> Then {
        let actor = actor.into_actor();
        let thread = match &cmd {
            Command::Update { thread, .. }
            | Command::Expire { thread }
            | Command::RequestRevision { thread, .. }
            | Command::TimeoutClaim { thread, .. }
            | Command::OfferStep { thread, .. }
            | Command::TellDeadlinePassed { thread }
            | Command::ReleaseClaim { thread, .. } => Some(thread.clone()),
            _ => None,
        };
        let result = self.exchange.decide(&actor, cmd, self.env());
        Then {
            world: self,
            actor,
            thread,
            result,
        }
    }
}

/// The result of a `when`, to check.
pub struct Then {
    world: World,
    actor: Actor,
    thread: Option<ThreadRef>,
    result: Result<Decision, DomainError>,
}

/// The kind of refusal expected, with `from`/`to` for a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400.
    Invalid,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409 on registration.
    AlreadyRegistered,
    /// 409: the exchange's own id.
    ReservedId,
    /// 409 with `from` and `to`.
    Conflict(Status, Status),
}

impl Refusal {
    fn of(e: &DomainError) -> Self {
        match e {
            DomainError::Invalid(_) => Refusal::Invalid,
            DomainError::Forbidden(_) => Refusal::Forbidden,
            DomainError::NotFound(_) => Refusal::NotFound,
            DomainError::AlreadyRegistered(_) => Refusal::AlreadyRegistered,
            DomainError::ReservedId(_) => Refusal::ReservedId,
            DomainError::Conflict { from, to, .. } => Refusal::Conflict(*from, *to),
        }
    }
}

impl Then {
    /// The command succeeded with exactly these events (checked envelope and payload);
    /// they are recorded and the world handed back for further checks.
    pub fn then_events(mut self, expected: Vec<EventKind>) -> World {
        let d = self.decision();
        let kinds: Vec<&EventKind> = d.events.iter().map(|e| &e.kind).collect();
        assert_eq!(kinds, expected.iter().collect::<Vec<_>>(), "events");
        self.check_envelopes(&d);
        self.world.record(&d);
        self.world
    }

    /// The command succeeded and changed nothing.
    pub fn then_no_events(mut self) -> World {
        let d = self.decision();
        assert!(
            d.events.is_empty(),
            "expected no events, got {:?}",
            d.events
        );
        self.world.record(&d);
        self.world
    }

    /// The command succeeded; its decision, recorded, for checks of its own.
    pub fn then_ok(mut self) -> (World, Decision) {
        let d = self.decision();
        self.check_envelopes(&d);
        self.world.record(&d);
        (self.world, d)
    }

    /// The command was refused as `expected`; nothing was recorded.
    pub fn then_error(self, expected: Refusal) -> World {
        match &self.result {
            Ok(d) => panic!("expected {expected:?}, got events {:?}", d.events),
            Err(e) => {
                assert_eq!(Refusal::of(e), expected, "{e}");
                assert!(!e.to_string().is_empty(), "an error says why");
            }
        }
        self.world
    }

    fn decision(&self) -> Decision {
        match &self.result {
            Ok(d) => d.clone(),
            Err(e) => panic!("expected success, got {e:?}"),
        }
    }

    /// Every event is stamped now, in this exchange, by this actor; thread events carry
    /// the thread's ref and the next `seq`s; member events carry neither.
    fn check_envelopes(&self, d: &Decision) {
        let (thread, mut seq) = match (&self.thread, &d.outcome) {
            (Some(r), _) => (Some(r.clone()), self.world.thread(r).seq),
            (None, Outcome::Created(r)) => (Some(r.clone()), 0),
            _ => (None, 0),
        };
        for e in &d.events {
            assert_eq!(e.ts, self.world.now(), "ts");
            assert_eq!(&e.exchange_id, self.world.exchange.id(), "exchange_id");
            assert_eq!(e.actor_id, self.actor, "actor_id");
            assert_eq!(e.thread_ref, thread, "thread_ref");
            if thread.is_some() {
                seq += 1;
            }
            assert_eq!(e.seq, seq, "seq");
            assert_eq!(
                uuid_version(&e.event_id),
                Some(4),
                "event_id {}",
                e.event_id
            );
        }
    }
}

fn uuid_version(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (b.len() == 36 && b[14].is_ascii_digit()).then(|| usize::from(b[14] - b'0'))
}

// Commands.

/// Register `id` with no profile fields.
pub fn register(id: &str) -> Command {
    Command::Register(Registration::parse(&json!({"executor_id": id})).expect("valid"))
}

/// Post `body`.
pub fn create(body: Value) -> Command {
    Command::Create(NewRequest::parse(body).expect("a valid request"))
}

/// Change `r`'s status to `status`.
pub fn to(r: &ThreadRef, status: Status) -> Command {
    Command::Update {
        thread: r.clone(),
        status: Some(StatusUpdate {
            to: status,
            extra: Map::new(),
        }),
        mess: None,
    }
}

/// Claim `r`.
pub fn claim(r: &ThreadRef) -> Command {
    to(r, Status::Claimed)
}

/// Change `r`'s status with status-block fields `extra` and the client's `mess`.
pub fn to_with(r: &ThreadRef, status: Status, extra: Value, mess: Value) -> Command {
    let Value::Object(extra) = extra else {
        panic!("extra is an object")
    };
    Command::Update {
        thread: r.clone(),
        status: Some(StatusUpdate { to: status, extra }),
        mess: Some(blocks(mess)),
    }
}

/// Append `mess` to `r`.
pub fn say(r: &ThreadRef, mess: Value) -> Command {
    Command::Update {
        thread: r.clone(),
        status: None,
        mess: Some(blocks(mess)),
    }
}

/// The exchange expires `r`.
pub fn expire(r: &ThreadRef) -> Command {
    Command::Expire { thread: r.clone() }
}

/// A profile update of `executor`.
pub fn update_profile(executor: &str, body: Value) -> Command {
    Command::UpdateProfile {
        executor: ExecutorId::parse(executor).expect("valid"),
        profile: Profile::parse(&body).expect("a valid profile"),
    }
}

// Expected events.

/// `status_changed` from `old` to `new`, held by `executor` after.
pub fn changed(old: Status, new: Status, executor: Option<&str>) -> EventKind {
    EventKind::StatusChanged(StatusChanged {
        old_status: old,
        new_status: new,
        executor_id: executor.map(|e| e.parse().expect("a valid executor id")),
    })
}

/// `message_added` with `mess`.
pub fn message(mess: Value) -> EventKind {
    EventKind::MessageAdded(MessageAdded { mess: blocks(mess) })
}

/// The exchange's status block for `r` moving to `code`.
pub fn status_block(r: &ThreadRef, code: Status) -> Value {
    json!({"status": {"re": r.as_str(), "code": code.as_str()}})
}

/// The two events of a status change that carries no client blocks.
pub fn moved(r: &ThreadRef, old: Status, new: Status, executor: Option<&str>) -> Vec<EventKind> {
    vec![
        changed(old, new, executor),
        message(json!([status_block(r, new)])),
    ]
}

/// Parses a `mess` list.
pub fn blocks(mess: Value) -> Vec<Block> {
    Block::parse_list(&mess).expect("valid blocks")
}
