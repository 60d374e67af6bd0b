//! The timer index: each thread's pending timers (its next offer step, its claim's limit,
//! the notice of its passed deadline), kept by [`Exchange::put_thread`] beside the expiry
//! index, so that finding what is due reads the front of a few ordered sets instead of
//! every thread (docs/benchmarks.md, "Timers at scale": a scan of 100k threads took about
//! 50 ms, once a second).
//!
//! The host's settings (`OFFER_REMIND_AFTER`, `CLAIM_TIMEOUT`) are not known when a thread
//! is indexed, and may change: where a timer depends on one, the key is the time it counts
//! from (`offered_at`, `status_at`), and a search subtracts the setting from its bound.
//! Every key is at or before the timer's exact instant, so a search finds a superset of
//! what is due; [`Exchange::due`] then applies the exact rules of [`Thread`] to each.
//!
//! [`Exchange::put_thread`]: super::Exchange::put_thread
//! [`Exchange::due`]: super::Exchange::due

use std::collections::BTreeSet;

use crate::clock::Timestamp;
use crate::ids::ThreadRef;
use crate::status::Status;
use crate::thread::Thread;

type Keyed = BTreeSet<(Timestamp, ThreadRef)>;

/// Which set a key is in (what it counts from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A pending request with a deadline: the exact instant of its next offer step.
    OfferAt,
    /// A pending request without a deadline, offered once: `offered_at` (due after
    /// `OFFER_REMIND_AFTER`).
    OfferFirst,
    /// The same, offered twice: `offered_at` (due after twice `OFFER_REMIND_AFTER`).
    OfferSecond,
    /// A claim with its own `claim_timeout`: `status_at` plus it (messages with an
    /// `estimate` only move the limit later).
    ClaimOwn,
    /// A claim without: `status_at` (due after `CLAIM_TIMEOUT`, when it is set).
    ClaimDefault,
    /// Active work whose deadline is not told yet: the deadline.
    Notice,
}

/// The timer keys of one thread (at most one offer or claim key, and a notice).
fn keys(t: &Thread) -> impl Iterator<Item = (Slot, Timestamp)> {
    let offer = (t.status == Status::Pending && !t.unclaimed_told).then(|| match t.deadline {
        // With a deadline the step does not depend on OFFER_REMIND_AFTER.
        Some(_) => (
            Slot::OfferAt,
            t.next_offer_step(0).map_or(t.offered_at, |(at, _)| at),
        ),
        None if t.reminded => (Slot::OfferSecond, t.offered_at),
        None => (Slot::OfferFirst, t.offered_at),
    });
    let claim = (t.status == Status::Claimed).then(|| match t.claim_timeout_ms {
        Some(own) => (
            Slot::ClaimOwn,
            Timestamp::from_unix_millis(t.status_at.unix_millis().saturating_add(own)),
        ),
        None => (Slot::ClaimDefault, t.status_at),
    });
    let notice = t.deadline_notice_at().map(|at| (Slot::Notice, at));
    [offer, claim, notice].into_iter().flatten()
}

/// `at` moved `ms` earlier (never below the smallest timestamp).
fn minus(at: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.unix_millis().saturating_sub(ms.max(0)))
}

/// `at` moved `ms` later.
fn plus(at: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.unix_millis().saturating_add(ms.max(0)))
}

/// The refs of `set` keyed at or before `bound`.
fn upto(set: &Keyed, bound: Timestamp) -> impl Iterator<Item = &ThreadRef> {
    set.iter()
        .take_while(move |(at, _)| *at <= bound)
        .map(|(_, r)| r)
}

/// Every thread's timer keys, by slot.
#[derive(Debug, Clone, Default)]
pub(super) struct TimerIndex {
    offer_at: Keyed,
    offer_first: Keyed,
    offer_second: Keyed,
    claim_own: Keyed,
    claim_default: Keyed,
    notice: Keyed,
}

impl TimerIndex {
    fn set(&mut self, slot: Slot) -> &mut Keyed {
        match slot {
            Slot::OfferAt => &mut self.offer_at,
            Slot::OfferFirst => &mut self.offer_first,
            Slot::OfferSecond => &mut self.offer_second,
            Slot::ClaimOwn => &mut self.claim_own,
            Slot::ClaimDefault => &mut self.claim_default,
            Slot::Notice => &mut self.notice,
        }
    }

    /// Adds `t`'s timers.
    pub(super) fn insert(&mut self, r: &ThreadRef, t: &Thread) {
        for (slot, at) in keys(t) {
            self.set(slot).insert((at, r.clone()));
        }
    }

    /// Removes `t`'s timers (`t`: the thread as it was indexed).
    pub(super) fn remove(&mut self, r: &ThreadRef, t: &Thread) {
        for (slot, at) in keys(t) {
            self.set(slot).remove(&(at, r.clone()));
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Pending threads whose next offer step may be due at `now`.
    pub(super) fn offers(&self, now: Timestamp, remind_after_ms: i64) -> Vec<&ThreadRef> {
        upto(&self.offer_at, now)
            .chain(upto(&self.offer_first, minus(now, remind_after_ms)))
            .chain(upto(
                &self.offer_second,
                minus(now, remind_after_ms.saturating_mul(2)),
            ))
            .collect()
    }

    /// When the next offer step falls due (exact: offer steps depend on no message).
    pub(super) fn next_offer(&self, remind_after_ms: i64) -> Option<Timestamp> {
        [
            self.offer_at.first().map(|(at, _)| *at),
            self.offer_first
                .first()
                .map(|(at, _)| plus(*at, remind_after_ms)),
            self.offer_second
                .first()
                .map(|(at, _)| plus(*at, remind_after_ms.saturating_mul(2))),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Claims whose limit may have run out at `now` (`default_ms`: `CLAIM_TIMEOUT`).
    pub(super) fn claims(&self, now: Timestamp, default_ms: Option<i64>) -> Vec<&ThreadRef> {
        let own = upto(&self.claim_own, now);
        match default_ms {
            Some(ms) => own
                .chain(upto(&self.claim_default, minus(now, ms)))
                .collect(),
            None => own.collect(),
        }
    }

    /// Claims in the order their limit may run out at the earliest: (that earliest time,
    /// the ref). The exact time reads the claim's messages (an `estimate` moves it later).
    pub(super) fn claims_by_earliest(
        &self,
        default_ms: Option<i64>,
    ) -> impl Iterator<Item = (Timestamp, &ThreadRef)> {
        let own = self.claim_own.iter().map(|(at, r)| (*at, r));
        let default = default_ms.into_iter().flat_map(move |ms| {
            self.claim_default
                .iter()
                .map(move |(at, r)| (plus(*at, ms), r))
        });
        Merge {
            a: own.peekable(),
            b: default.peekable(),
        }
    }

    /// Active threads whose deadline may have passed at `now`, not told yet.
    pub(super) fn notices(&self, now: Timestamp) -> Vec<&ThreadRef> {
        upto(&self.notice, now).collect()
    }

    /// When the next deadline notice falls due.
    pub(super) fn next_notice(&self) -> Option<Timestamp> {
        self.notice.first().map(|(at, _)| *at)
    }
}

/// Two ascending streams as one.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (Timestamp, &'a ThreadRef)>,
    B: Iterator<Item = (Timestamp, &'a ThreadRef)>,
{
    type Item = (Timestamp, &'a ThreadRef);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}
