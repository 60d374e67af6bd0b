//! Where things live in a data directory or bucket, and the line format's encoding and
//! decoding. Shared by both backends so they cannot drift apart.

use std::collections::{HashMap, HashSet};

use mess_core::{Event, ExchangeId, ExecutorId, ThreadRef};

/// The prefix of every event segment.
pub(crate) const EVENTS: &str = "events";
/// The prefix of every member record.
pub(crate) const EXECUTORS: &str = "executors";

/// The calendar day of a segment (UTC date of its events' `ts`).
pub(crate) type Day = time::Date;

/// `events/exchange={id}/{YYYY}/{MM}/{DD}`: the directory (prefix) of one day's segments.
pub(crate) fn day_dir(exchange: &ExchangeId, day: Day) -> String {
    format!(
        "{EVENTS}/exchange={exchange}/{:04}/{:02}/{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// A fresh segment name, `{uuid}.jsonl`: never the name of an existing one.
pub(crate) fn new_segment_name() -> String {
    format!("{}.jsonl", uuid::Uuid::new_v4())
}

/// `executors/exchange={id}/{executor}.json`.
pub(crate) fn member_path(exchange: &ExchangeId, executor: &ExecutorId) -> String {
    format!("{EXECUTORS}/exchange={exchange}/{executor}.json")
}

/// True for `events/exchange=*/…/*.jsonl`: the only objects replay reads as events.
/// Anything else (another extension, a file outside an `exchange=` directory) is foreign.
pub(crate) fn is_event_object(path: &str) -> bool {
    let mut parts = path.split('/');
    parts.next() == Some(EVENTS)
        && parts.next().is_some_and(|p| p.starts_with("exchange="))
        && path.ends_with(".jsonl")
        && parts.count() >= 1
}

/// True for `executors/exchange=*/*.json`.
pub(crate) fn is_member_object(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 3
        && parts[0] == EXECUTORS
        && parts[1].starts_with("exchange=")
        && parts[2].ends_with(".json")
}

/// The events of one `append` call, split by the segment (exchange, day) they belong to,
/// each group encoded as lines, in call order.
pub(crate) fn encode_by_segment(events: &[Event]) -> Vec<((ExchangeId, Day), Vec<u8>)> {
    let mut groups: Vec<((ExchangeId, Day), Vec<u8>)> = Vec::new();
    for e in events {
        let key = (e.exchange_id.clone(), e.ts.date());
        let buf = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((key, Vec::with_capacity(512)));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        e.write_line(buf);
    }
    groups
}

/// Parses one line (with or without its `\n`); blank lines give `Ok(None)`.
pub(crate) fn parse_line(line: &[u8]) -> Result<Option<Event>, ()> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(line).map_err(drop)?;
    Event::from_line(text).map(Some).map_err(drop)
}

/// Counts of lines skipped in one piece of a segment, to warn once per piece.
#[derive(Debug, Default)]
pub(crate) struct Skipped {
    /// How many lines did not parse.
    pub count: usize,
    /// The byte offset of the first of them in its segment.
    pub first_at: u64,
}

impl Skipped {
    pub(crate) fn record(&mut self, at: u64) {
        if self.count == 0 {
            self.first_at = at;
        }
        self.count += 1;
    }

    /// Logs the skipped lines of `source` (a path relative to the root), if any.
    pub(crate) fn warn(&self, source: &str) {
        if self.count > 0 {
            tracing::warn!(
                file = source,
                skipped = self.count,
                first_at = self.first_at,
                "skipped event lines that do not parse (torn by a crash, or foreign)"
            );
        }
    }
}

/// Parses every line of `bytes` into `out`; returns the lines skipped.
pub(crate) fn parse_lines(bytes: &[u8], out: &mut Vec<Event>) -> Skipped {
    let mut skipped = Skipped::default();
    let mut at = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        match parse_line(line) {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {}
            Err(()) => skipped.record(at),
        }
        at += line.len() as u64;
    }
    skipped
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
    fn only_jsonl_under_an_exchange_partition_is_an_event_segment() {
        assert!(is_event_object("events/exchange=home/2026/02/01/a.jsonl"));
        assert!(!is_event_object("events/exchange=home/2026/02/01/a.json"));
        assert!(!is_event_object("events/README.txt"));
        assert!(!is_event_object("events/junk.jsonl"));
        assert!(!is_event_object("executors/exchange=home/a.jsonl"));
        assert!(is_member_object("executors/exchange=home/my-phone.json"));
        assert!(!is_member_object("executors/exchange=home/my-phone.json#1"));
        assert!(!is_member_object("executors/x.json"));
    }

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
    fn torn_and_foreign_lines_are_counted_not_fatal() {
        let mut out = Vec::new();
        let s = parse_lines(b"not json\n\n{\"event_id\":", &mut out);
        assert_eq!((out.len(), s.count, s.first_at), (0, 2, 0));
    }
}
