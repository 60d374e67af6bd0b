//! Listing an exchange's threads a page at a time, newest-updated first, and finding
//! those due to expire.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use super::{Command, Exchange};
use crate::clock::Timestamp;
use crate::error::DomainError;
use crate::ids::ThreadRef;
use crate::status::Status;
use crate::thread::Thread;

/// Position of a thread in the newest-updated-first order.
pub(super) type OrderKey = (Reverse<Timestamp>, Reverse<ThreadRef>);

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

/// The settings of the exchange's own timers ([`Exchange::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// `CLAIM_TIMEOUT` in milliseconds, for requests without their own (`None`: off).
    pub claim_timeout_ms: Option<i64>,
    /// `OFFER_REMIND_AFTER` in milliseconds, for requests without a deadline.
    pub remind_after_ms: i64,
}

pub(super) fn order_key(t: &Thread) -> OrderKey {
    (Reverse(t.updated_at), Reverse(t.thread_ref.clone()))
}

pub(super) fn expirable(s: Status) -> bool {
    matches!(s, Status::Pending | Status::Waiting | Status::Held)
}

impl Exchange {
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

    /// Every command the exchange owes by itself at `now`, in the order to submit them:
    /// offers made once more (or their requestor told), deadlines of active work told,
    /// claims whose limit ran out taken back, then deadlines of waiting work expired (so
    /// that a request reaching its deadline unclaimed is reported before it expires). Both
    /// hosts run exactly these, each a conflict to ignore if the thread moved on meanwhile.
    pub fn due(&self, now: Timestamp, timers: Timers) -> Vec<Command> {
        let offers = self
            .offers_due(now, timers.remind_after_ms)
            .into_iter()
            .map(|(thread, step)| Command::OfferStep {
                thread,
                step,
                remind_after_ms: timers.remind_after_ms,
            });
        let notices = self
            .deadlines_passed(now)
            .into_iter()
            .map(|thread| Command::TellDeadlinePassed { thread });
        let claims = self
            .claims_run_out(now, timers.claim_timeout_ms)
            .into_iter()
            .map(|thread| Command::TimeoutClaim {
                thread,
                default_ms: timers.claim_timeout_ms,
            });
        let expiries = self
            .due_for_expiry(now)
            .into_iter()
            .map(|thread| Command::Expire { thread });
        offers
            .chain(notices)
            .chain(claims)
            .chain(expiries)
            .collect()
    }

    /// When [`Exchange::due`] next has something to do, if ever (for a host that sets an
    /// alarm).
    pub fn next_due(&self, timers: Timers) -> Option<Timestamp> {
        let expiry = self.deadlines.first().map(|(at, _)| *at);
        [
            expiry,
            self.next_claim_expiry(timers.claim_timeout_ms),
            self.next_offer_step(timers.remind_after_ms),
            self.next_deadline_notice(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The claimed threads whose time limit has run out at `now` (`default_ms`: the
    /// exchange-wide limit, for threads without their own).
    pub fn claims_run_out(&self, now: Timestamp, default_ms: Option<i64>) -> Vec<ThreadRef> {
        self.by_status
            .get(&Status::Claimed)
            .into_iter()
            .flatten()
            .filter_map(|(_, Reverse(r))| self.threads.get(r))
            .filter(|t| t.claim_may_have_run_out(now, default_ms))
            .filter(|t| t.claim_expires_at(default_ms).is_some_and(|at| at <= now))
            .map(|t| t.thread_ref.clone())
            .collect()
    }

    /// The pending threads whose next offer step is due at `now` (`remind_after_ms`:
    /// `OFFER_REMIND_AFTER`, for threads without a deadline).
    pub fn offers_due(
        &self,
        now: Timestamp,
        remind_after_ms: i64,
    ) -> Vec<(ThreadRef, crate::thread::OfferStep)> {
        self.by_status
            .get(&Status::Pending)
            .into_iter()
            .flatten()
            .filter_map(|(_, Reverse(r))| self.threads.get(r))
            .filter_map(|t| {
                let (at, step) = t.next_offer_step(remind_after_ms)?;
                (at <= now).then(|| (t.thread_ref.clone(), step))
            })
            .collect()
    }

    /// When the next offer step falls due, if any (for a host that sets an alarm).
    pub fn next_offer_step(&self, remind_after_ms: i64) -> Option<Timestamp> {
        self.by_status
            .get(&Status::Pending)
            .into_iter()
            .flatten()
            .filter_map(|(_, Reverse(r))| self.threads.get(r))
            .filter_map(|t| t.next_offer_step(remind_after_ms).map(|(at, _)| at))
            .min()
    }

    /// The active threads whose deadline passed by `now` and whose parties were not told.
    pub fn deadlines_passed(&self, now: Timestamp) -> Vec<ThreadRef> {
        self.active_threads()
            .filter(|t| t.deadline_notice_at().is_some_and(|at| at <= now))
            .map(|t| t.thread_ref.clone())
            .collect()
    }

    /// When the next active thread's deadline passes, if any (for a host that sets an
    /// alarm).
    pub fn next_deadline_notice(&self) -> Option<Timestamp> {
        self.active_threads()
            .filter_map(|t| t.deadline_notice_at())
            .min()
    }

    fn active_threads(&self) -> impl Iterator<Item = &Arc<Thread>> {
        Status::ACTIVE
            .into_iter()
            .filter_map(|s| self.by_status.get(&s))
            .flatten()
            .filter_map(|(_, Reverse(r))| self.threads.get(r))
    }

    /// When the next claim runs out, if any does (for a host that sets an alarm).
    pub fn next_claim_expiry(&self, default_ms: Option<i64>) -> Option<Timestamp> {
        self.by_status
            .get(&Status::Claimed)
            .into_iter()
            .flatten()
            .filter_map(|(_, Reverse(r))| self.threads.get(r))
            .filter_map(|t| t.claim_expires_at(default_ms))
            .min()
    }

    /// Threads whose deadline is at or before `now` and that may still expire.
    pub fn due_for_expiry(&self, now: Timestamp) -> Vec<ThreadRef> {
        self.deadlines
            .range(..=(now, ThreadRef::parse("9999-12-31-ZZZZ").expect("valid")))
            .filter(|(_, r)| self.threads.get(r).is_some_and(|t| expirable(t.status)))
            .map(|(_, r)| r.clone())
            .collect()
    }
}
