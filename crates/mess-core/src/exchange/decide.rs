//! Deciding commands: (state, actor, command) -> events, or why not.

use std::sync::Arc;

use serde_json::Map;

use super::{Command, Decision, Env, Exchange, Outcome, StatusUpdate};
use crate::clock::{Timestamp, new_uuid};
use crate::error::DomainError;
use crate::event::{
    EXCHANGE_ACTOR, Event, EventKind, MemberSnapshot, MessageAdded, StatusChanged, ThreadCreated,
};
use crate::ids::{Actor, ExecutorId, ThreadRef};
use crate::key::ApiKey;
use crate::member::{Member, Profile, Registration};
use crate::mess::Block;
use crate::request::NewRequest;
use crate::rules::{self, Roles, transition};
use crate::status::Status;
use crate::thread::{Confirmation, Thread};

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
                    // Only a member may claim (`roles.may` refused the exchange above).
                    Status::Claimed if from == Status::Pending => match actor {
                        Actor::Member(m) => Some(m.clone()),
                        Actor::Exchange => None,
                    },
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
