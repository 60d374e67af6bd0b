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
pub(crate) fn order(events: &mut [Event]) {
    events.sort_by_key(|e| (e.ts, e.seq));
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
}
