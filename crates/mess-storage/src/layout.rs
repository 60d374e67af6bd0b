//! Where things live in a data directory or bucket, and the line format: mess-core's
//! `layout` (shared with the Cloudflare Worker), plus what only this crate needs (segment
//! names, the skipped-line warning, replay's order).

use std::collections::{HashMap, HashSet};

use mess_core::{Event, ExchangeId, ThreadRef};

pub(crate) use mess_core::layout::{
    Day, EVENTS, EXECUTORS, Skipped, day_dir, encode_by_segment, is_event_object, is_member_object,
    member_path, parse_line, parse_lines,
};

/// A fresh segment name, `{uuid}.jsonl`: never the name of an existing one.
pub(crate) fn new_segment_name() -> String {
    format!("{}.jsonl", uuid::Uuid::new_v4())
}

/// Logs the lines of `source` (a path relative to the root) that `skipped` counted, if any.
pub(crate) fn warn_skipped(skipped: &Skipped, source: &str) {
    if skipped.count > 0 {
        tracing::warn!(
            file = source,
            skipped = skipped.count,
            first_at = skipped.first_at,
            "skipped event lines that do not parse (torn by a crash, or foreign)"
        );
    }
}

/// Puts replayed events in the order [`mess_core::Loaded`] promises: a stable sort by
/// `(ts, seq)` (members' events keep their stored order among equal times), then each
/// thread's events put in `seq` order within the positions that thread occupies, so a
/// clock that stepped back cannot reorder a thread's history.
///
/// An event stored twice (the same `event_id`, so the same `ts` and `seq`: what a merge or
/// a compact interrupted between its write and its deletes leaves) is kept once.
pub(crate) fn order(events: &mut Vec<Event>) {
    events.sort_by_key(|e| (e.ts, e.seq));
    drop_repeats(events);
    let mut last: HashMap<(&ExchangeId, &ThreadRef), u64> = HashMap::new();
    let mut disordered: HashSet<(ExchangeId, ThreadRef)> = HashSet::new();
    for e in events.iter() {
        if let Some(t) = &e.thread_ref {
            let prev = last.insert((&e.exchange_id, t), e.seq);
            if prev.is_some_and(|p| p > e.seq) {
                disordered.insert((e.exchange_id.clone(), t.clone()));
            }
        }
    }
    drop(last);
    if disordered.is_empty() {
        return;
    }
    let mut positions: HashMap<(ExchangeId, ThreadRef), Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(t) = &e.thread_ref
            && disordered.contains(&(e.exchange_id.clone(), t.clone()))
        {
            positions
                .entry((e.exchange_id.clone(), t.clone()))
                .or_default()
                .push(i);
        }
    }
    for positions in positions.into_values() {
        let mut mine: Vec<Event> = positions.iter().map(|&i| events[i].clone()).collect();
        mine.sort_by_key(|e| e.seq);
        for (i, e) in positions.into_iter().zip(mine) {
            events[i] = e;
        }
    }
}

/// Drops every event whose `event_id` an earlier event of the same `(ts, seq)` has (they
/// are next to each other once sorted by it).
fn drop_repeats(events: &mut Vec<Event>) {
    // A group of equal (ts, seq) is looked through (it is small: one thread's event, or
    // members' events of one millisecond); past 16 events, through a set.
    let mut repeats: Vec<usize> = Vec::new();
    let mut start = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    for i in 1..events.len() {
        let (a, b) = (&events[start], &events[i]);
        if (a.ts, a.seq) != (b.ts, b.seq) {
            start = i;
            if !seen.is_empty() {
                seen = HashSet::new();
            }
            continue;
        }
        let id = b.event_id.as_str();
        let repeat = if i - start < 16 {
            events[start..i].iter().any(|e| e.event_id == id)
        } else {
            if seen.is_empty() {
                seen.extend(events[start..i].iter().map(|e| e.event_id.as_str()));
            }
            !seen.insert(id)
        };
        if repeat {
            repeats.push(i);
        }
    }
    if repeats.is_empty() {
        return;
    }
    let mut next = repeats.into_iter().peekable();
    let mut i = 0;
    events.retain(|_| {
        let repeat = next.peek() == Some(&i);
        if repeat {
            next.next();
        }
        i += 1;
        !repeat
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_stays_in_seq_order_when_its_clock_stepped_back() {
        let line = |id: &str, ts: &str, thread: Option<&str>, seq: u64| {
            let thread = thread.map_or("null".to_owned(), |t| format!("\"{t}\""));
            let l = format!(
                r#"{{"event_id":"{id}","ts":"{ts}","exchange_id":"home","thread_ref":{thread},"event_type":"x","actor_id":"a","payload":{{}},"seq":{seq}}}"#
            );
            Event::from_line(&l).unwrap()
        };
        let t = Some("2026-02-01-ABCD");
        let mut events = vec![
            line("m1", "2026-02-01T22:00:00.000Z", None, 0),
            line("t1", "2026-02-01T22:00:05.000Z", t, 1),
            line("t2", "2026-02-01T22:00:01.000Z", t, 2),
            line("m2", "2026-02-01T22:00:03.000Z", None, 0),
        ];
        order(&mut events);
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["m1", "t1", "m2", "t2"]);
    }

    #[test]
    fn an_event_stored_twice_is_read_once_and_its_neighbours_stay() {
        let line = |id: &str, seq: u64| {
            let l = format!(
                r#"{{"event_id":"{id}","ts":"2026-02-01T22:00:00.000Z","exchange_id":"home","thread_ref":null,"event_type":"x","actor_id":"a","payload":{{}},"seq":{seq}}}"#
            );
            Event::from_line(&l).unwrap()
        };
        let mut events = vec![
            line("a", 0),
            line("b", 0),
            line("a", 0),
            line("c", 1),
            line("b", 0),
            line("c", 1),
            line("d", 1),
        ];
        order(&mut events);
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        // A big group (members' events of one millisecond), with repeats past the 16th.
        let mut many: Vec<Event> = (0..30).map(|n| line(&format!("x{n}"), 0)).collect();
        many.extend([line("x3", 0), line("x20", 0), line("x29", 0)]);
        order(&mut many);
        let ids: Vec<String> = many.iter().map(|e| e.event_id.clone()).collect();
        let expected: Vec<String> = (0..30).map(|n| format!("x{n}")).collect();
        assert_eq!(ids, expected);
    }
}
