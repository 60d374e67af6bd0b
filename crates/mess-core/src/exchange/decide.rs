//! Deciding commands: (state, actor, command) -> events, or why not.

use std::sync::Arc;

use serde_json::Map;

use super::{Command, Decision, Env, Exchange, Outcome, StatusUpdate};
use crate::clock::{Timestamp, new_uuid};
use crate::error::DomainError;
use crate::event::{
    DeadlinePassed, EXCHANGE_ACTOR, Event, EventKind, MemberSnapshot, MessageAdded, OfferTimer,
    StatusChanged, ThreadCreated,
};
use crate::ids::{Actor, ExecutorId, ThreadRef};
use crate::key::ApiKey;
use crate::member::{Member, Profile, Registration};
use crate::mess::{Block, BlockKind};
use crate::request::NewRequest;
use crate::rules::{self, Roles, transition};
use crate::status::Status;
use crate::thread::{Confirmation, OfferStep, Thread};

/// What a requestor sends with `revision_requested`.
struct Revision {
    reason: String,
    window_ms: i64,
    extra: Map<String, serde_json::Value>,
    mess: Vec<Block>,
}

const REF_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// The shortest and longest ref suffixes (`ThreadRef::parse` accepts 4 to 16 characters).
const MIN_REF_SUFFIX: usize = 4;
const MAX_REF_SUFFIX: usize = 16;

impl Exchange {
    /// Decides a command: the events it causes, or why not. Pure: the state is untouched;
    /// apply the events (and put the outcome's member) once they are stored.
    pub fn decide(
        &self,
        actor: &Actor,
        cmd: Command,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let now = env.clock.now();
        let mut decision = match cmd {
            Command::Register(reg) => self.register(reg, now, env),
            Command::UpdateProfile { executor, profile } => {
                self.update_profile(actor, &executor, profile, now, env)
            }
            Command::RotateKey { executor } => self.rotate_key(actor, &executor, now, env),
            Command::Remove { executor } => self.remove(actor, &executor, now, env),
            Command::ReleaseClaim { thread, executor } => {
                self.release_claim(actor, &thread, &executor, now, env)
            }
            Command::Create(req) => self.create(actor, req, now, env),
            Command::Update {
                thread,
                status,
                mess,
            } => self.update(actor, &thread, status, mess, now, env),
            Command::Expire { thread } => self.expire(&thread, now, env),
            Command::OfferStep {
                thread,
                step,
                remind_after_ms,
            } => self.offer_step(&thread, step, remind_after_ms, now, env),
            Command::TellDeadlinePassed { thread } => {
                let t = self.existing(&thread)?;
                let Some(needed_by) = t.deadline_notice_at().filter(|at| *at <= now) else {
                    return Err(DomainError::Conflict {
                        rule: rules::Conflict::NoSuchMove,
                        message: "the deadline has not passed, or both sides were told".into(),
                        from: t.status,
                        to: t.status,
                    });
                };
                let kind = EventKind::NeededByPassed(DeadlinePassed { needed_by });
                let e = self.event(env, now, Some((&thread, t.seq + 1)), &Actor::Exchange, kind);
                Ok(Decision {
                    events: vec![e],
                    outcome: Outcome::Updated(thread.clone(), t.status),
                })
            }
            Command::TimeoutClaim { thread, default_ms } => {
                self.timeout_claim(&thread, default_ms, now, env)
            }
            Command::RequestRevision {
                thread,
                reason,
                window_ms,
                extra,
                mess,
            } => {
                let revision = Revision {
                    reason,
                    window_ms,
                    extra,
                    mess: mess.unwrap_or_default(),
                };
                self.request_revision(actor, &thread, revision, now, env)
            }
        }?;
        // The exchange-wide positions follow this state's head: applying the events (or
        // `advance`) moves it on.
        for (e, pos) in decision.events.iter_mut().zip(self.head + 1..) {
            e.pos = pos;
        }
        Ok(decision)
    }

    pub(super) fn event(
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
            pos: 0,
            kind,
        }
    }

    fn snapshot(m: &Member) -> MemberSnapshot {
        MemberSnapshot {
            executor_id: m.executor_id.clone(),
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
        // An operator's change (the exchange acting) is not a sighting of the member.
        if *actor != Actor::Exchange {
            member.last_seen = now;
        }
        self.event(env, now, None, actor, kind(Self::snapshot(member)))
    }

    fn own_member(&self, actor: &Actor, target: &ExecutorId) -> Result<&Arc<Member>, DomainError> {
        let current = self
            .members
            .get(target)
            .ok_or_else(|| DomainError::NotFound("Executor not found".into()))?;
        // The exchange itself acts for an operator (`mess-exchange members ...`).
        if *actor != Actor::Member(target.clone()) && *actor != Actor::Exchange {
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
                requestor_id: requestor.clone(),
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
                requestor: t.requestor_id == *m,
                assignee: t.executor_id.as_ref() == Some(m),
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
        let t = self.existing(r)?;
        let roles = Self::roles(actor, t);
        let from = t.status;
        let mut events = Vec::new();
        let mut seq = t.seq;
        let mut next_seq = || {
            seq += 1;
            seq
        };
        if let Some(su) = &status {
            let blocks = mess.as_deref().unwrap_or_default();
            // A path: the status blocks of `mess`, in order, end at `status`.
            let codes: Vec<Status> = blocks.iter().filter_map(Block::status_code).collect();
            let is_path = codes.len() >= 2;
            if is_path && codes.last() != Some(&su.to) {
                return Err(DomainError::invalid(
                    "several status blocks in mess are the path of the change, in order: the last must be the status sent",
                ));
            }
            let steps = if is_path { codes } else { vec![su.to] };
            if rules::passes_offer(&steps, from, roles) {
                return Ok(self.pass_offer(actor, r, su, mess, now, env, t.seq + 1));
            }
            let changes = self.walk(actor, t, &steps)?;
            if let Some(last) = changes.last() {
                let to = last.new_status;
                let mut blocks = mess.unwrap_or_default();
                // Kept as sent when it spells the path or begins with this status's block.
                if !is_path && blocks.first().and_then(Block::status_code) != Some(to) {
                    blocks.insert(0, Block::status(r, to, su.extra.clone()));
                }
                for change in changes {
                    events.push(self.event(
                        env,
                        now,
                        Some((r, next_seq())),
                        actor,
                        EventKind::StatusChanged(change),
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
                return Ok(Decision {
                    events,
                    outcome: Outcome::Updated(r.clone(), to),
                });
            }
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

    /// Checks each step of a status path against the transition table for `actor`, the
    /// roles following the thread as it goes (a claim makes the claimer the assignee of the
    /// next step); all or nothing. A step equal to the status reached is the no-op of
    /// [`rules::repeat_status`]. Returns the changes, none when every step is a no-op.
    fn walk(
        &self,
        actor: &Actor,
        t: &Thread,
        steps: &[Status],
    ) -> Result<Vec<StatusChanged>, DomainError> {
        let mut changes = Vec::with_capacity(steps.len());
        let mut from = t.status;
        let mut executor = t.executor_id.clone();
        for &to in steps {
            let roles = match actor {
                Actor::Exchange => Self::roles(actor, t),
                Actor::Member(m) => Roles {
                    requestor: t.requestor_id == *m,
                    assignee: executor.as_ref() == Some(m),
                    exchange: false,
                },
            };
            if to == from {
                rules::repeat_status(from, roles)?;
                continue;
            }
            let conflict = |rule, message: String| DomainError::Conflict {
                rule,
                message,
                from,
                to,
            };
            if rules::claim_conflict(to, executor.is_some(), roles) {
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
                    "this request needs the requestor's confirmation before it is completed".into(),
                ));
            }
            executor = match to {
                // Only a member may claim (`roles.may` refused the exchange above).
                Status::Claimed if from == Status::Pending => match actor {
                    Actor::Member(m) => Some(m.clone()),
                    Actor::Exchange => None,
                },
                Status::Pending => None,
                _ => executor,
            };
            changes.push(StatusChanged {
                old_status: from,
                new_status: to,
                executor_id: executor.clone(),
            });
            from = to;
        }
        Ok(changes)
    }

    /// A member passes on an offer (`declined` on a pending thread it did not make): its
    /// message is recorded (`offer_passed`), and the thread stays pending for everyone else.
    #[allow(clippy::too_many_arguments)]
    fn pass_offer(
        &self,
        actor: &Actor,
        r: &ThreadRef,
        su: &StatusUpdate,
        mess: Option<Vec<Block>>,
        now: Timestamp,
        env: Env<'_>,
        seq: u64,
    ) -> Decision {
        let mut blocks = mess.unwrap_or_default();
        if !blocks.iter().any(|b| b.kind() == BlockKind::Status) {
            blocks.insert(0, Block::status(r, Status::Declined, su.extra.clone()));
        }
        let passed = EventKind::OfferPassed(MessageAdded { mess: blocks });
        Decision {
            events: vec![self.event(env, now, Some((r, seq)), actor, passed)],
            outcome: Outcome::Updated(r.clone(), Status::Pending),
        }
    }

    /// The requestor asks for another try at a `completed` or `partial` thread, within the
    /// review window: it goes back to `in_progress` with the same assignee, and the message
    /// records `{"status": {"code": "revision_requested", "reason": ...}}`.
    fn request_revision(
        &self,
        actor: &Actor,
        r: &ThreadRef,
        revision: Revision,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let Revision {
            reason,
            window_ms,
            extra,
            mess,
        } = revision;
        let t = self.existing(r)?;
        let from = t.status;
        let to = Status::InProgress;
        if !Self::roles(actor, t).requestor {
            return Err(DomainError::Forbidden(
                "only the requestor may ask for a revision".into(),
            ));
        }
        let conflict = |message: String| DomainError::Conflict {
            rule: rules::Conflict::NoSuchMove,
            message,
            from,
            to,
        };
        if !matches!(from, Status::Completed | Status::Partial) {
            return Err(conflict(format!(
                "a revision can only be asked of a completed or partial request, not a {from} one"
            )));
        }
        let window_over = t
            .finished_at
            .is_some_and(|at| now.unix_millis() - at.unix_millis() > window_ms);
        if window_over {
            return Err(conflict("the review window of this request is over".into()));
        }
        let change = StatusChanged {
            old_status: from,
            new_status: to,
            executor_id: t.executor_id.clone(),
        };
        let mut body = serde_json::Map::new();
        body.insert("re".into(), serde_json::Value::String(r.to_string()));
        body.insert("code".into(), "revision_requested".into());
        body.insert("reason".into(), serde_json::Value::String(reason));
        for (k, v) in extra {
            body.entry(k).or_insert(v);
        }
        let block = Block::new(BlockKind::Status, serde_json::Value::Object(body));
        let mut events = self.status_move(env, now, actor, t, change, block);
        if !mess.is_empty()
            && let Some(EventKind::MessageAdded(m)) = events.last_mut().map(|e| &mut e.kind)
        {
            m.mess.extend(mess);
        }
        Ok(Decision {
            events,
            outcome: Outcome::Updated(r.clone(), to),
        })
    }

    /// The thread `r`, or 404.
    pub(super) fn existing(&self, r: &ThreadRef) -> Result<&Arc<Thread>, DomainError> {
        self.threads
            .get(r)
            .ok_or_else(|| DomainError::NotFound("Thread not found".into()))
    }

    /// The two events of a status change the exchange decides on its own terms: the
    /// `status_changed`, then one message of `block` (the next two `seq`s of `t`).
    pub(super) fn status_move(
        &self,
        env: Env<'_>,
        now: Timestamp,
        actor: &Actor,
        t: &Thread,
        change: StatusChanged,
        block: Block,
    ) -> Vec<Event> {
        let r = &t.thread_ref;
        vec![
            self.event(
                env,
                now,
                Some((r, t.seq + 1)),
                actor,
                EventKind::StatusChanged(change),
            ),
            self.event(
                env,
                now,
                Some((r, t.seq + 2)),
                actor,
                EventKind::MessageAdded(MessageAdded { mess: vec![block] }),
            ),
        ]
    }

    /// Records the due step of an offer nobody takes (the exchange acts); a conflict when
    /// it is not due (someone took it meanwhile, or it was done).
    fn offer_step(
        &self,
        r: &ThreadRef,
        step: OfferStep,
        remind_after_ms: i64,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let t = self.existing(r)?;
        let due = t
            .next_offer_step(remind_after_ms)
            .is_some_and(|(at, next)| next == step && at <= now);
        if !due {
            return Err(DomainError::Conflict {
                rule: rules::Conflict::NoSuchMove,
                message: "that step of the offer is not due".into(),
                from: t.status,
                to: t.status,
            });
        }
        let timer = OfferTimer {
            offered_at: t.offered_at,
        };
        let kind = match step {
            OfferStep::Remind => EventKind::OfferReminded(timer),
            OfferStep::Unclaimed => EventKind::ThreadUnclaimed(timer),
        };
        Ok(Decision {
            events: vec![self.event(env, now, Some((r, t.seq + 1)), &Actor::Exchange, kind)],
            outcome: Outcome::Updated(r.clone(), t.status),
        })
    }

    /// A claim whose limit ran out goes back to `pending` (nobody holds it), with a status
    /// block that says why; the exchange acts.
    fn timeout_claim(
        &self,
        r: &ThreadRef,
        default_ms: Option<i64>,
        now: Timestamp,
        env: Env<'_>,
    ) -> Result<Decision, DomainError> {
        let t = self.existing(r)?;
        let from = t.status;
        if t.claim_expires_at(default_ms).is_none_or(|at| at > now) {
            return Err(DomainError::Conflict {
                rule: rules::Conflict::NoSuchMove,
                message: "the claim has not run out".into(),
                from,
                to: Status::Pending,
            });
        }
        let holder = t.executor_id.as_ref().map_or("", |e| e.as_str());
        let message = format!(
            "No word from {holder} within the claim's time limit: the request is open again."
        );
        Ok(self.reopen(env, now, r, t, "claim_timeout", message))
    }

    /// The exchange takes `t` back to `pending` (nobody holds it): the `status_changed` and
    /// a status block saying why (`reason` for programs, `message` for people).
    pub(super) fn reopen(
        &self,
        env: Env<'_>,
        now: Timestamp,
        r: &ThreadRef,
        t: &Thread,
        reason: &str,
        message: String,
    ) -> Decision {
        let mut extra = Map::new();
        extra.insert("reason".into(), reason.into());
        extra.insert("message".into(), message.into());
        let change = StatusChanged {
            old_status: t.status,
            new_status: Status::Pending,
            executor_id: None,
        };
        let block = Block::status(r, Status::Pending, extra);
        Decision {
            events: self.status_move(env, now, &Actor::Exchange, t, change, block),
            outcome: Outcome::Updated(r.clone(), Status::Pending),
        }
    }

    fn expire(&self, r: &ThreadRef, now: Timestamp, env: Env<'_>) -> Result<Decision, DomainError> {
        let t = self.existing(r)?;
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
