//! Start-up's fold: stored events in, one [`Exchange`] per exchange out, without holding
//! the events themselves.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::event::Event;
use crate::exchange::Exchange;
use crate::ids::{ExchangeId, ThreadRef};
use crate::member::Member;
use crate::thread::{Step, fold_thread};

/// What one stored event does to its thread, and where it goes in the thread's history.
#[derive(Debug)]
struct Entry {
    seq: u64,
    ts: Timestamp,
    /// Its position in the stored order (the order events were pushed in).
    at: u64,
    step: Step,
}

/// Folds stored events into exchanges, as start-up does. Push every event in stored order
/// (segment by segment, line by line; see [`Replay::append`] for parts read in parallel),
/// then [`Replay::finish`].
///
/// Each event is kept only as the little its thread needs (a message as its JSON, a status
/// change as the new status and assignee), grouped by thread, so nothing holds the whole
/// log. At the end each thread's events are put in the order [`crate::Loaded`] promises:
/// by `seq`, then `ts`, then stored order (so a clock that stepped back, or a thread whose
/// events span segments read in another order, still folds in `seq` order). The result is
/// the same as [`Exchange::apply_all`] on the events in that order. Events not about a
/// thread (members') change nothing here: members come from their records.
#[derive(Debug, Default)]
pub struct Replay {
    exchanges: HashMap<ExchangeId, HashMap<ThreadRef, Vec<Entry>>>,
    events: usize,
    next: u64,
}

impl Replay {
    /// Nothing pushed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next stored event.
    pub fn push(&mut self, e: Event) {
        let at = self.next;
        self.next += 1;
        self.events += 1;
        let threads = match self.exchanges.get_mut(&e.exchange_id) {
            Some(threads) => threads,
            None => self.exchanges.entry(e.exchange_id.clone()).or_default(),
        };
        let Some(r) = &e.thread_ref else { return };
        let entry = Entry {
            seq: e.seq,
            ts: e.ts,
            at,
            step: Step::of(&e),
        };
        match threads.get_mut(r) {
            Some(entries) => entries.push(entry),
            None => {
                threads.insert(r.clone(), vec![entry]);
            }
        }
    }

    /// Adds the events of `later`, all stored after every event pushed so far.
    pub fn append(&mut self, later: Replay) {
        let offset = self.next;
        for (x, threads) in later.exchanges {
            let mine = self.exchanges.entry(x).or_default();
            for (r, mut entries) in threads {
                for e in &mut entries {
                    e.at += offset;
                }
                match mine.get_mut(&r) {
                    Some(v) => v.append(&mut entries),
                    None => {
                        mine.insert(r, entries);
                    }
                }
            }
        }
        self.next += later.next;
        self.events += later.events;
    }

    /// How many events were pushed.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Folds everything: one exchange for each exchange of `members` or of an event, with
    /// its members put first (as start-up does).
    pub fn finish(
        self,
        members: impl IntoIterator<Item = Member>,
    ) -> HashMap<ExchangeId, Exchange> {
        let mut states: HashMap<ExchangeId, Exchange> = HashMap::new();
        for m in members {
            states
                .entry(m.exchange_id.clone())
                .or_insert_with(|| Exchange::new(m.exchange_id.clone()))
                .put_member(Arc::new(m));
        }
        for (x, threads) in self.exchanges {
            let mut folded = HashMap::with_capacity(threads.len());
            for (r, mut entries) in threads {
                let key = |e: &Entry| (e.seq, e.ts, e.at);
                if !entries.is_sorted_by_key(key) {
                    entries.sort_by_key(key);
                }
                let steps = entries.into_iter().map(|e| (e.seq, e.ts, e.step));
                if let Some(t) = fold_thread(None, steps) {
                    // Parsing left the thread's strings among the freed remains of every
                    // event: copied here, they no longer pin those pages.
                    folded.insert(r.clone(), Arc::new(t.reallocated()));
                }
            }
            states
                .entry(x.clone())
                .or_insert_with(|| Exchange::new(x))
                .set_threads(folded);
        }
        states
    }
}
