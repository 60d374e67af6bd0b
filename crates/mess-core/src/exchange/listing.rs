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
        self.in_list_order(self.timers.claims(now, default_ms))
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
        self.in_list_order(self.timers.offers(now, remind_after_ms))
            .filter_map(|t| {
                let (at, step) = t.next_offer_step(remind_after_ms)?;
                (at <= now).then(|| (t.thread_ref.clone(), step))
            })
            .collect()
    }

    /// When the next offer step falls due, if any (for a host that sets an alarm).
    pub fn next_offer_step(&self, remind_after_ms: i64) -> Option<Timestamp> {
        self.timers.next_offer(remind_after_ms)
    }

    /// The active threads whose deadline passed by `now` and whose parties were not told.
    pub fn deadlines_passed(&self, now: Timestamp) -> Vec<ThreadRef> {
        self.in_list_order(self.timers.notices(now))
            .filter(|t| t.deadline_notice_at().is_some_and(|at| at <= now))
            .map(|t| t.thread_ref.clone())
            .collect()
    }

    /// When the next active thread's deadline passes, if any (for a host that sets an
    /// alarm).
    pub fn next_deadline_notice(&self) -> Option<Timestamp> {
        self.timers.next_notice()
    }

    /// When the next claim runs out, if any does (for a host that sets an alarm). Claims
    /// are read in the order their limit could run out at the earliest, up to the first
    /// whose earliest time is past the best exact one found.
    pub fn next_claim_expiry(&self, default_ms: Option<i64>) -> Option<Timestamp> {
        let mut best: Option<Timestamp> = None;
        for (earliest, r) in self.timers.claims_by_earliest(default_ms) {
            if best.is_some_and(|b| earliest >= b) {
                break;
            }
            if let Some(at) = self
                .threads
                .get(r)
                .and_then(|t| t.claim_expires_at(default_ms))
            {
                best = Some(best.map_or(at, |b| b.min(at)));
            }
        }
        best
    }

    /// The threads of `refs`, newest-updated first (the order the scans of every thread
    /// gave before the timer index: hosts and tests see the same order).
    fn in_list_order<'a>(
        &'a self,
        refs: Vec<&'a ThreadRef>,
    ) -> impl Iterator<Item = &'a Arc<Thread>> + 'a {
        let mut threads: Vec<&Arc<Thread>> = refs
            .into_iter()
            .filter_map(|r| self.threads.get(r))
            .collect();
        threads.sort_by_cached_key(|t| order_key(t));
        threads.into_iter()
    }

    /// [`Exchange::due`] by reading every thread, as before the timer index: what the
    /// index must always agree with (the domain's property tests compare the two).
    #[cfg(any(test, feature = "testing"))]
    pub fn due_by_scan(&self, now: Timestamp, timers: Timers) -> Vec<Command> {
        let all = || {
            self.by_status
                .values()
                .flatten()
                .filter_map(|(_, Reverse(r))| self.threads.get(r))
        };
        let mut sorted: Vec<&Arc<Thread>> = all().collect();
        sorted.sort_by_cached_key(|t| order_key(t));
        let offers = sorted.iter().filter_map(|t| {
            let (at, step) = t.next_offer_step(timers.remind_after_ms)?;
            (at <= now).then(|| Command::OfferStep {
                thread: t.thread_ref.clone(),
                step,
                remind_after_ms: timers.remind_after_ms,
            })
        });
        let notices = sorted
            .iter()
            .filter(|t| t.deadline_notice_at().is_some_and(|at| at <= now))
            .map(|t| Command::TellDeadlinePassed {
                thread: t.thread_ref.clone(),
            });
        let claims = sorted
            .iter()
            .filter(|t| {
                t.claim_expires_at(timers.claim_timeout_ms)
                    .is_some_and(|at| at <= now)
            })
            .map(|t| Command::TimeoutClaim {
                thread: t.thread_ref.clone(),
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

    /// [`Exchange::next_due`] by reading every thread (see [`Exchange::due_by_scan`]).
    #[cfg(any(test, feature = "testing"))]
    pub fn next_due_by_scan(&self, timers: Timers) -> Option<Timestamp> {
        let all = || {
            self.by_status
                .values()
                .flatten()
                .filter_map(|(_, Reverse(r))| self.threads.get(r))
        };
        [
            self.deadlines.first().map(|(at, _)| *at),
            all()
                .filter_map(|t| t.claim_expires_at(timers.claim_timeout_ms))
                .min(),
            all()
                .filter_map(|t| t.next_offer_step(timers.remind_after_ms).map(|(at, _)| at))
                .min(),
            all().filter_map(|t| t.deadline_notice_at()).min(),
        ]
        .into_iter()
        .flatten()
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
