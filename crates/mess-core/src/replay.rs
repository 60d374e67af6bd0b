//! Start-up's fold: stored events in, one [`Exchange`] per exchange out, without holding
//! the events themselves.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::event::Event;
use crate::exchange::Exchange;
use crate::ids::{ExchangeId, ThreadRef};
use crate::member::Member;
use crate::thread::{Step, Thread, fold_thread};

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
/// thread (members') change no thread: members come from their records, each with its
/// `last_seen` raised to its latest event (the record is written only when the profile
/// changes, and who was seen since lived in memory only).
#[derive(Debug, Default)]
pub struct Replay {
    exchanges: HashMap<ExchangeId, Log>,
    events: usize,
    next: u64,
}

/// One exchange's share of a [`Replay`].
#[derive(Debug, Default)]
struct Log {
    threads: HashMap<ThreadRef, Vec<Entry>>,
    /// Each actor's latest event time.
    latest: HashMap<String, Timestamp>,
    /// How many events it has, and the highest `pos` among them: its head is the larger
    /// (lines from before positions carry none, and still count).
    events: u64,
    max_pos: u64,
}

impl Log {
    fn saw(&mut self, actor: &str, ts: Timestamp) {
        match self.latest.get_mut(actor) {
            Some(t) => *t = (*t).max(ts),
            None => {
                self.latest.insert(actor.to_owned(), ts);
            }
        }
    }
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
        let log = match self.exchanges.get_mut(&e.exchange_id) {
            Some(log) => log,
            None => self.exchanges.entry(e.exchange_id.clone()).or_default(),
        };
        log.saw(e.actor_id.as_str(), e.ts);
        log.events += 1;
        log.max_pos = log.max_pos.max(e.pos);
        let threads = &mut log.threads;
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
        for (x, log) in later.exchanges {
            let mine = self.exchanges.entry(x).or_default();
            mine.events += log.events;
            mine.max_pos = mine.max_pos.max(log.max_pos);
            for (actor, ts) in log.latest {
                let t = mine.latest.entry(actor).or_insert(ts);
                *t = (*t).max(ts);
            }
            let mine = &mut mine.threads;
            for (r, mut entries) in log.threads {
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
        self.finish_on(members, 1)
    }

    /// [`Replay::finish`], folding the threads on `workers` threads (threads are folded
    /// independently; the result is the same).
    pub fn finish_on(
        self,
        members: impl IntoIterator<Item = Member>,
        workers: usize,
    ) -> HashMap<ExchangeId, Exchange> {
        let mut states: HashMap<ExchangeId, Exchange> = HashMap::new();
        for mut m in members {
            let latest = self
                .exchanges
                .get(&m.exchange_id)
                .and_then(|log| log.latest.get(m.executor_id.as_str()));
            if let Some(&ts) = latest {
                m.last_seen = m.last_seen.max(ts);
            }
            states
                .entry(m.exchange_id.clone())
                .or_insert_with(|| Exchange::new(m.exchange_id.clone()))
                .put_member(Arc::new(m));
        }
        for (x, log) in self.exchanges {
            let head = log.max_pos.max(log.events);
            let threads: Vec<(ThreadRef, Vec<Entry>)> = log.threads.into_iter().collect();
            let folded: HashMap<ThreadRef, Arc<Thread>> = if workers <= 1 || threads.len() < 4096 {
                // Parsing left the thread's strings among the freed remains of every event:
                // copied here, they no longer pin those pages.
                fold_threads(threads)
                    .map(|(r, t)| (r.clone(), Arc::new(t.reallocated())))
                    .collect()
            } else {
                let size = threads.len().div_ceil(workers);
                let mut chunks = Vec::with_capacity(workers);
                let mut rest = threads.into_iter();
                loop {
                    let chunk: Vec<_> = rest.by_ref().take(size).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    chunks.push(chunk);
                }
                std::thread::scope(|s| {
                    let folding: Vec<_> = chunks
                        .into_iter()
                        .map(|c| s.spawn(move || fold_threads(c).collect::<Vec<_>>()))
                        .collect();
                    // Copied here, by one thread, what is kept lies packed together, and
                    // the folding threads' memory is all freed.
                    folding
                        .into_iter()
                        .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                        .map(|(r, t)| (r.clone(), Arc::new(t.copied())))
                        .collect()
                })
            };
            let count = folded.len();
            let state = states.entry(x.clone()).or_insert_with(|| Exchange::new(x));
            state.set_threads(folded, count);
            state.set_head(head);
        }
        states
    }
}

/// Folds each thread's entries, in the order [`Replay`] promises.
fn fold_threads(
    threads: Vec<(ThreadRef, Vec<Entry>)>,
) -> impl Iterator<Item = (ThreadRef, Thread)> {
    threads.into_iter().filter_map(|(r, mut entries)| {
        let key = |e: &Entry| (e.seq, e.ts, e.at);
        if !entries.is_sorted_by_key(key) {
            entries.sort_by_key(key);
        }
        let steps = entries.into_iter().map(|e| (e.seq, e.ts, e.step));
        Some((r, fold_thread(None, steps)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, MessageAdded, ThreadCreated};
    use crate::mess::{Block, BlockKind};
    use crate::status::Priority;

    fn events(threads: usize) -> Vec<Event> {
        let x = ExchangeId::parse("home").expect("valid");
        let t0 = Timestamp::from_unix_millis(1_769_983_200_000);
        let mut out = Vec::new();
        for i in 0..threads {
            let r = ThreadRef::parse(&format!("2026-02-01-T{i:05}")).expect("valid");
            let request = serde_json::json!({"intent": format!("check {i}")});
            let kinds = [
                EventKind::ThreadCreated(ThreadCreated {
                    requestor_id: "a".parse().expect("valid"),
                    intent: format!("check {i}"),
                    priority: Priority::Normal,
                    request: request.as_object().expect("an object").clone(),
                }),
                EventKind::MessageAdded(MessageAdded {
                    mess: vec![Block::new(BlockKind::Followup, serde_json::json!({"n": i}))],
                }),
            ];
            for (n, kind) in kinds.into_iter().enumerate() {
                out.push(
                    crate::testing::event(kind)
                        .id(format!("{i}-{n}"))
                        .ts(Timestamp::from_unix_millis(
                            t0.unix_millis() + (i * 7 % 1000) as i64,
                        ))
                        .exchange(&x)
                        .thread(&r)
                        .actor("a")
                        .seq(n as u64 + 1)
                        .build(),
                );
            }
        }
        out
    }

    #[test]
    fn members_are_last_seen_at_their_latest_event() {
        let x = ExchangeId::parse("home").expect("valid");
        let at = |ms: i64| Timestamp::from_unix_millis(1_769_983_200_000 + ms);
        let key = crate::ApiKey::parse(&format!("mess_home_{}", "0".repeat(64))).expect("valid");
        let record = |id: &str, seen: i64| Member {
            executor_id: crate::ExecutorId::parse(id).expect("valid"),
            exchange_id: x.clone(),
            display_name: id.into(),
            capabilities: Vec::new(),
            notifications: Vec::new(),
            preferences: Default::default(),
            hooks: Default::default(),
            key_hash: key.hash(),
            created_at: at(-5000),
            updated_at: at(-5000),
            last_seen: at(seen),
        };
        // Every event is by "a", the latest at +14 ms (see `events`); read in two parts.
        let log = events(3);
        let (mut first, mut later) = (Replay::new(), Replay::new());
        for (i, e) in log.into_iter().enumerate() {
            if i < 3 { first.push(e) } else { later.push(e) }
        }
        first.append(later);
        let states = first.finish([record("a", -1000), record("b", -1000), record("c", 500)]);
        let seen = |id: &str| {
            let id = crate::ExecutorId::parse(id).expect("valid");
            states[&x].member(&id).expect("a member").last_seen
        };
        assert_eq!(seen("a"), at(14), "raised to its latest event");
        assert_eq!(seen("b"), at(-1000), "no event: its record's");
        assert_eq!(seen("c"), at(500), "never lowered");
    }

    #[test]
    fn folding_on_several_threads_gives_the_same_exchanges() {
        let log = events(5000);
        let (mut one, mut three) = (Replay::new(), Replay::new());
        for e in log.iter().cloned() {
            one.push(e);
        }
        // In reverse, on three threads: the same result.
        for e in log.iter().rev().cloned() {
            three.push(e);
        }
        let x = ExchangeId::parse("home").expect("valid");
        let (one, three) = (one.finish([]), three.finish_on([], 3));
        let (a, _) = one[&x].list(None, None, usize::MAX);
        let (b, _) = three[&x].list(None, None, usize::MAX);
        assert_eq!(a.len(), 5000);
        assert_eq!(a, b);
        assert!(a.iter().all(|t| t.messages.len() == 2));
    }
}
