//! Listing an exchange's threads a page at a time, newest-updated first, and finding
//! those due to expire.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use super::Exchange;
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

    /// Threads whose deadline is at or before `now` and that may still expire.
    pub fn due_for_expiry(&self, now: Timestamp) -> Vec<ThreadRef> {
        self.deadlines
            .range(..=(now, ThreadRef::parse("9999-12-31-ZZZZ").expect("valid")))
            .filter(|(_, r)| self.threads.get(r).is_some_and(|t| expirable(t.status)))
            .map(|(_, r)| r.clone())
            .collect()
    }
}
