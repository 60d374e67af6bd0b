//! Where an exchange's data lives, in a data directory, an S3 bucket or R2 alike (the seed's
//! layout, which DuckDB's hive partitioning reads), and how event lines are written and
//! read back. The binary's storage (`mess-storage`) and the Worker's (R2) both use these, so
//! they cannot drift apart.
//!
//! ```text
//! events/exchange={id}/{YYYY}/{MM}/{DD}/{uuid}.jsonl   event lines, append-only
//! executors/exchange={id}/{executor}.json              a member; the key as a hash
//! answers/exchange={id}/{scope}.json                   an Idempotency-Key's answer (a day)
//! secrets/{name}                                       a key the server signs with
//! blobs/exchange={id}/{sha256}                         an attachment's bytes (crate::blob)
//! ```

use crate::event::Event;
use crate::ids::{ExchangeId, ExecutorId};

/// The prefix of every event segment.
pub const EVENTS: &str = "events";
/// The prefix of every member record.
pub const EXECUTORS: &str = "executors";

/// The prefix of every stored idempotent answer.
pub const ANSWERS: &str = "answers";

/// The prefix of the server's own secrets (the key that signs notification action links).
pub const SECRETS: &str = "secrets";

/// The prefix of every stored attachment ([`crate::blob`]).
pub const BLOBS: &str = "blobs";

/// `blobs/exchange={id}/{sha256}`: one attachment's bytes, named by their SHA-256 (hex).
pub fn blob_path(exchange: &ExchangeId, sha256: &str) -> String {
    format!("{BLOBS}/exchange={exchange}/{sha256}")
}

/// The exchange and SHA-256 of `blobs/exchange={id}/{sha256}`, if `path` is one.
pub fn blob_of(path: &str) -> Option<(ExchangeId, &str)> {
    let mut parts = path.split('/');
    (parts.next()? == BLOBS).then_some(())?;
    let exchange = ExchangeId::parse(parts.next()?.strip_prefix("exchange=")?).ok()?;
    let sha256 = parts.next()?;
    parts.next().is_none().then_some((exchange, sha256))
}

/// `secrets/{name}`.
pub fn secret_path(name: &str) -> String {
    format!("{SECRETS}/{name}")
}

/// `answers/exchange={id}/{scope}.json`: the answer of one `Idempotency-Key` scope (a hex
/// hash).
pub fn answer_path(exchange: &ExchangeId, scope: &str) -> String {
    format!("{ANSWERS}/exchange={exchange}/{scope}.json")
}

/// The exchange of `answers/exchange={id}/{scope}.json`, if `path` is one.
pub fn answer_exchange(path: &str) -> Option<ExchangeId> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() != 3 || parts[0] != ANSWERS || !parts[2].ends_with(".json") {
        return None;
    }
    ExchangeId::parse(parts[1].strip_prefix("exchange=")?).ok()
}

/// The calendar day of a segment (UTC date of its events' `ts`).
pub type Day = time::Date;

/// `events/exchange={id}/`: every event segment of one exchange.
pub fn events_prefix(exchange: &ExchangeId) -> String {
    format!("{EVENTS}/exchange={exchange}/")
}

/// `executors/exchange={id}/`: every member record of one exchange.
pub fn members_prefix(exchange: &ExchangeId) -> String {
    format!("{EXECUTORS}/exchange={exchange}/")
}

/// `events/exchange={id}/{YYYY}/{MM}/{DD}`: the directory (prefix) of one day's segments.
pub fn day_dir(exchange: &ExchangeId, day: Day) -> String {
    format!(
        "{EVENTS}/exchange={exchange}/{:04}/{:02}/{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// `executors/exchange={id}/{executor}.json`.
pub fn member_path(exchange: &ExchangeId, executor: &ExecutorId) -> String {
    format!("{EXECUTORS}/exchange={exchange}/{executor}.json")
}

/// The exchange of a path under `events/exchange={id}/`.
pub fn segment_exchange(path: &str) -> Option<ExchangeId> {
    let rest = path.strip_prefix(EVENTS)?.strip_prefix("/exchange=")?;
    ExchangeId::parse(rest.split('/').next()?).ok()
}

/// True for `events/exchange=*/…/*.jsonl`: the only objects replay reads as events.
/// Anything else (another extension, a file outside an `exchange=` directory) is foreign.
pub fn is_event_object(path: &str) -> bool {
    let mut parts = path.split('/');
    parts.next() == Some(EVENTS)
        && parts.next().is_some_and(|p| p.starts_with("exchange="))
        && path.ends_with(".jsonl")
        && parts.count() >= 1
}

/// True for `executors/exchange=*/*.json`.
pub fn is_member_object(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 3
        && parts[0] == EXECUTORS
        && parts[1].starts_with("exchange=")
        && parts[2].ends_with(".json")
}

/// The events of one write, split by the segment (exchange, day) they belong to, each group
/// encoded as lines, in the order given.
pub fn encode_by_segment(events: &[Event]) -> Vec<((ExchangeId, Day), Vec<u8>)> {
    let mut groups: Vec<((ExchangeId, Day), Vec<u8>)> = Vec::new();
    for e in events {
        let key = (e.exchange_id.clone(), e.ts.date());
        let i = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key, Vec::with_capacity(512)));
                groups.len() - 1
            }
        };
        e.write_line(&mut groups[i].1);
    }
    groups
}

/// Parses one line (with or without its `\n`, `\r\n`); blank lines give `Ok(None)`.
#[allow(clippy::result_unit_err)] // the only failure is "this line is not an event"
pub fn parse_line(line: &[u8]) -> Result<Option<Event>, ()> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(line).map_err(drop)?;
    Event::from_line(text).map(Some).map_err(drop)
}

/// Lines skipped in one piece of a segment (torn by a crash, or foreign).
#[derive(Debug, Default)]
pub struct Skipped {
    /// How many lines did not parse.
    pub count: usize,
    /// The byte offset of the first of them in its piece.
    pub first_at: u64,
}

impl Skipped {
    /// Counts one skipped line starting at byte `at`.
    pub fn record(&mut self, at: u64) {
        if self.count == 0 {
            self.first_at = at;
        }
        self.count += 1;
    }
}

/// Parses every line of `bytes` into `out`; returns the lines skipped.
pub fn parse_lines(bytes: &[u8], out: &mut Vec<Event>) -> Skipped {
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
    fn a_blob_path_reads_back_as_its_exchange_and_hash() {
        let home = ExchangeId::parse("home").expect("valid");
        let path = blob_path(&home, "ab12");
        assert_eq!(blob_of(&path), Some((home, "ab12")));
        for other in [
            "blobs/ab12",
            "blobs/exchange=home/a/b",
            "secrets/exchange=home/ab12",
        ] {
            assert_eq!(blob_of(other), None, "{other}");
        }
    }

    #[test]
    fn paths_follow_the_seeds_layout() {
        let home = ExchangeId::parse("home").expect("valid");
        let phone = ExecutorId::parse("my-phone").expect("valid");
        let day = Day::from_calendar_date(2026, time::Month::February, 1).expect("valid");
        assert_eq!(day_dir(&home, day), "events/exchange=home/2026/02/01");
        assert_eq!(
            member_path(&home, &phone),
            "executors/exchange=home/my-phone.json"
        );
        assert!(day_dir(&home, day).starts_with(&events_prefix(&home)));
        assert!(member_path(&home, &phone).starts_with(&members_prefix(&home)));
    }

    #[test]
    fn torn_and_foreign_lines_are_counted_not_fatal() {
        let mut out = Vec::new();
        let s = parse_lines(b"not json\n\n{\"event_id\":", &mut out);
        assert_eq!((out.len(), s.count, s.first_at), (0, 2, 0));
    }
}
