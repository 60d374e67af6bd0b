//! From read threads to the events an exchange stores: refs settled against what the
//! exchange already holds, `seq` per thread, `pos` continuing the exchange's head.

use std::collections::HashSet;

use mess_core::clock::new_uuid;
use mess_core::event::{MessageAdded, StatusChanged, ThreadCreated};
use mess_core::{
    Actor, Entropy, Event, EventKind, ExchangeId, ExecutorId, Status, Thread, ThreadRef, Timestamp,
};
use serde_json::{Value, json};

use crate::names::target_ref;
use crate::read::{Parsed, Step};

/// The event type that records the MESSE-AF ref of a thread that got another one here
/// (its `payload`: `{"source_ref", "format": "messe-af"}`). Replay keeps it and ignores
/// it; export writes the source ref back.
pub const THREAD_IMPORTED: &str = "thread_imported";

/// What tells two threads apart when their refs meet: created at the same instant by the
/// same member with the same intent is the same thread (imported before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// `created_at`.
    pub created_at: Timestamp,
    /// `requestor_id`.
    pub requestor_id: ExecutorId,
    /// `intent`.
    pub intent: String,
}

impl Fingerprint {
    /// A stored thread's.
    pub fn of(t: &Thread) -> Self {
        Self {
            created_at: t.created_at,
            requestor_id: t.requestor_id.clone(),
            intent: t.intent.clone(),
        }
    }

    fn of_parsed(p: &Parsed) -> Self {
        Self {
            created_at: p.created,
            requestor_id: p.requestor.clone(),
            intent: p.intent.clone(),
        }
    }
}

/// What became of one read thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// New: its events, to append.
    New {
        /// Its ref here.
        thread_ref: ThreadRef,
        /// Whether that is not its MESSE-AF ref (this exchange's refs did not take it).
        renamed: bool,
        /// Its events, in order.
        events: Vec<Event>,
    },
    /// The exchange holds it already (a second import): nothing to do.
    Present(ThreadRef),
}

/// Plans the import of threads into one exchange. `existing` answers for the refs the
/// exchange holds before the import.
pub struct Importer<F> {
    exchange: ExchangeId,
    pos: u64,
    existing: F,
    /// Refs given to threads of this import.
    taken: HashSet<ThreadRef>,
}

impl<F: Fn(&ThreadRef) -> Option<Fingerprint>> Importer<F> {
    /// An importer into `exchange`, whose last event is at `head`.
    pub fn new(exchange: ExchangeId, head: u64, existing: F) -> Self {
        Self {
            exchange,
            pos: head,
            existing,
            taken: HashSet::new(),
        }
    }

    /// The exchange's head after the events planned so far.
    pub fn head(&self) -> u64 {
        self.pos
    }

    /// The events of `p`, or why it is left out (its ref is another thread's here).
    pub fn plan(&mut self, p: &Parsed, entropy: &dyn Entropy) -> Result<Planned, String> {
        let mine = Fingerprint::of_parsed(p);
        let mut attempt = 0;
        let target = loop {
            let r = target_ref(&p.source_ref, p.created, attempt);
            let kept = r.as_str() == p.source_ref;
            match (self.existing)(&r) {
                Some(f) if f == mine => return Ok(Planned::Present(r)),
                Some(_) if kept => {
                    return Err(format!(
                        "{r} is already a different thread in the exchange (never merged)"
                    ));
                }
                None if !self.taken.contains(&r) => break r,
                None if kept => {
                    return Err(format!("{r} was already imported from another file"));
                }
                _ if attempt >= 3 => {
                    return Err(format!(
                        "no free ref for {} after {attempt} tries",
                        p.source_ref
                    ));
                }
                _ => attempt += 1,
            }
        };
        self.taken.insert(target.clone());
        let renamed = target.as_str() != p.source_ref;
        let events = self.events(p, &target, renamed, entropy);
        Ok(Planned::New {
            thread_ref: target,
            renamed,
            events,
        })
    }

    fn events(
        &mut self,
        p: &Parsed,
        r: &ThreadRef,
        renamed: bool,
        entropy: &dyn Entropy,
    ) -> Vec<Event> {
        let mut seq = 0;
        let mut out = Vec::with_capacity(p.steps.len() + 2);
        let mut push = |ts: Timestamp, actor: Actor, kind: EventKind| {
            seq += 1;
            self.pos += 1;
            out.push(Event {
                event_id: new_uuid(entropy),
                ts,
                exchange_id: self.exchange.clone(),
                thread_ref: Some(r.clone()),
                actor_id: actor,
                seq,
                pos: self.pos,
                kind,
            });
        };
        push(
            p.created,
            Actor::Member(p.requestor.clone()),
            EventKind::ThreadCreated(ThreadCreated {
                requestor_id: p.requestor.clone(),
                intent: p.intent.clone(),
                priority: p.priority,
                request: p.request.clone(),
            }),
        );
        if renamed {
            push(
                p.created,
                Actor::Exchange,
                EventKind::Other {
                    event_type: THREAD_IMPORTED.to_owned(),
                    payload: json!({"source_ref": p.source_ref, "format": "messe-af"}),
                },
            );
        }
        let mut status = Status::Pending;
        for step in &p.steps {
            match step {
                Step::Status {
                    ts,
                    actor,
                    status: new,
                    executor,
                } => {
                    push(
                        *ts,
                        actor.clone(),
                        EventKind::StatusChanged(StatusChanged {
                            old_status: status,
                            new_status: *new,
                            executor_id: executor.clone(),
                        }),
                    );
                    status = *new;
                }
                Step::Message {
                    ts,
                    actor,
                    mess,
                    pass,
                } => {
                    let m = MessageAdded { mess: mess.clone() };
                    let kind = if *pass {
                        EventKind::OfferPassed(m)
                    } else {
                        EventKind::MessageAdded(m)
                    };
                    push(*ts, actor.clone(), kind);
                }
            }
        }
        out
    }
}

/// The MESSE-AF ref a thread was imported under, from its `thread_imported` event.
pub fn source_ref(e: &Event) -> Option<&str> {
    match &e.kind {
        EventKind::Other {
            event_type,
            payload,
        } if event_type == THREAD_IMPORTED => payload.get("source_ref").and_then(Value::as_str),
        _ => None,
    }
}

/// The deadline of the thread `events` create, when it has passed while the thread can
/// still expire (`pending`, `waiting`, `held`): the server expires such a thread on its
/// next tick, which an operator should hear about before starting it.
pub fn passed_deadline(events: &[Event], now: Timestamp) -> Option<Timestamp> {
    let (first, rest) = events.split_first()?;
    let mut t = Thread::from_created(first)?;
    for e in rest {
        t.apply(e);
    }
    let expirable = matches!(t.status, Status::Pending | Status::Waiting | Status::Held);
    t.deadline.filter(|d| expirable && *d < now)
}
