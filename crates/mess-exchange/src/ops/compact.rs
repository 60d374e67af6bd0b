//! `mess-exchange compact`: the many segments of each past day of an exchange merged into
//! one, without changing what replay or DuckDB read.

use std::collections::{BTreeMap, HashSet};

use mess_core::clock::new_uuid;
use mess_core::layout::{Day, day_dir, parse_line};
use mess_core::{Clock, ExchangeId, OsEntropy, SystemClock};
use mess_storage::{Class, Hold, RawObject, RawStore, classify};

use super::census::{Census, ExchangeCensus, scan};
use super::{HoldArgs, Holding, bytes, exchange_id};
use crate::StorageArgs;

/// `compact --help`.
pub const COMPACT_ABOUT: &str = "\
Merge the event segments of each past day of an exchange into one segment per day. On S3 \
every write is an object of its own, so a busy day holds thousands; on a data directory \
every server run starts new segments. Fewer objects make start-up, copy and DuckDB's \
read_json_auto('events/**/*.jsonl', hive_partitioning=true) faster, and change nothing \
they read: the merged segment holds the same lines, byte for byte, in the order replay \
read them (an exact duplicate line, which only an interrupted compact or copy leaves, is \
kept once).

Only days before --before (default and latest: today, UTC) are touched. For each day with \
more than one segment, the merged segment is written (and synced) first, read back, and \
only then are the originals deleted: a crash in between leaves the day with its lines \
twice, which verify reports and which compact run again repairs. A day holding a line that \
does not parse is left alone and reported (run verify). At the end the exchange is read \
back: it must replay to the same counts, or the command fails.

On a data directory, run it with the server stopped (the same STORAGE_* settings as the \
server): it takes the store's lock and refuses while a server runs. On S3 it holds the \
exchange's lease while it works, so replicas (ADVERTISE_URL) may keep running: they answer \
the exchange's requests 503 meanwhile (clients retry), and take it back after. The merged \
segment is a batch of the command's lease epoch, and a deposed replica's segments that \
their epoch's seal leaves out are not merged. A single S3 server without ADVERTISE_URL \
takes no lease: stop it first.";

/// `mess-exchange compact`.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// The exchange (its id, e.g. home).
    #[arg(long)]
    pub exchange: String,
    /// Compact the days before this one, YYYY-MM-DD (UTC); default and latest: today.
    #[arg(long, value_parser = parse_day)]
    pub before: Option<Day>,
    /// Say what would be merged, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub hold: HoldArgs,
}

fn parse_day(s: &str) -> Result<Day, String> {
    let bad = || format!("{s:?} is not a date as YYYY-MM-DD");
    let mut parts = s.trim().splitn(3, '-');
    let mut next = || parts.next().ok_or_else(bad);
    let (y, m, d) = (next()?, next()?, next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let month = m
        .parse::<u8>()
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    Day::from_calendar_date(
        y.parse().map_err(|_| bad())?,
        month,
        d.parse().map_err(|_| bad())?,
    )
    .map_err(|_| bad())
}

/// One day's merge.
struct Merged {
    bytes: Vec<u8>,
    events: usize,
    duplicates: usize,
}

/// The lines of `segments` (in path order) as one segment, or the lines that do not parse.
fn merge(segments: &[(String, Vec<u8>)]) -> Result<Merged, Vec<String>> {
    let mut out = Merged {
        bytes: Vec::with_capacity(segments.iter().map(|(_, b)| b.len() + 1).sum()),
        events: 0,
        duplicates: 0,
    };
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut bad = Vec::new();
    for (path, bytes) in segments {
        for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            match parse_line(line) {
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(()) => {
                    bad.push(format!("{path}:{}", i + 1));
                    continue;
                }
            }
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if !seen.insert(bare) {
                out.duplicates += 1;
                continue;
            }
            out.bytes.extend_from_slice(bare);
            out.bytes.push(b'\n');
            out.events += 1;
        }
    }
    if bad.is_empty() { Ok(out) } else { Err(bad) }
}

/// Merges each past day's segments of the exchange, then checks the exchange replays the
/// same.
pub async fn compact(args: CompactArgs) -> Result<(), String> {
    let id = exchange_id(&args.exchange)?;
    let today = SystemClock.now().date();
    let before = args.before.unwrap_or(today);
    if before > today {
        return Err(format!(
            "--before {before} is after today ({today}, UTC): only past days are compacted"
        ));
    }
    let config = args.storage.config();
    let (holding, _) = Holding::take(&config, &id, &args.hold).await?;
    let done = compact_held(&args, &id, before, &config, holding.lease()).await;
    holding.release().await;
    done
}

/// [`compact`], once the exchange is held (`lease`: on S3).
async fn compact_held(
    args: &CompactArgs,
    id: &ExchangeId,
    before: Day,
    config: &mess_storage::StorageConfig,
    lease: Option<&Hold>,
) -> Result<(), String> {
    let raw = RawStore::open(config).await.map_err(|e| e.to_string())?;
    let start = scan(&raw, Some(id)).await?;
    if !start.census.exchanges.contains_key(id.as_str()) {
        return Err(format!("no exchange {id} in this store"));
    }
    let objects = raw
        .list()
        .await
        .map_err(|e| format!("cannot list {}: {e}", raw.describe()))?;
    let mut days: BTreeMap<Day, Vec<RawObject>> = BTreeMap::new();
    let mut leftovers: BTreeMap<String, Vec<RawObject>> = BTreeMap::new();
    // A replica's merged runs of a day (for replay): they would read the merged day's
    // lines twice, so they go with its segments.
    let mut runs: BTreeMap<String, Vec<RawObject>> = BTreeMap::new();
    for obj in objects {
        if let Some(run) = mess_storage::lease::merged_of(&obj.path) {
            runs.entry(run.events_dir).or_default().push(obj);
            continue;
        }
        match classify(&obj.path) {
            // A deposed replica's segment its epoch's seal leaves out is not merged (it does
            // not count); it is moved to fenced/ by the next owner.
            Class::Segment { exchange, day }
                if exchange == *id
                    && day < before
                    && obj.regular
                    && lease.is_none_or(|l| l.counts(&obj.path)) =>
            {
                days.entry(day).or_default().push(obj);
            }
            Class::Leftover(_) => {
                if let Some((dir, _)) = obj.path.rsplit_once('/') {
                    leftovers.entry(dir.to_owned()).or_default().push(obj);
                }
            }
            _ => {}
        }
    }
    let (mut merged_days, mut removed, mut duplicates) = (0usize, 0usize, 0usize);
    let mut refused = Vec::new();
    for (day, segments) in days.into_iter().filter(|(_, s)| s.len() > 1) {
        let dir = day_dir(id, day);
        let mut read = Vec::with_capacity(segments.len());
        for s in &segments {
            let bytes = raw
                .read(&s.path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", raw.describe()))?
                .ok_or_else(|| format!("{} vanished while compacting", s.path))?;
            read.push((s.path.clone(), bytes));
        }
        let merged = match merge(&read) {
            Ok(m) => m,
            Err(bad) => {
                println!(
                    "left alone {id} {day}: lines that do not parse at {}",
                    bad.join(", ")
                );
                refused.push(day);
                continue;
            }
        };
        let line = format!(
            "{id} {day}: {} segments -> 1 ({} events, {}{})",
            segments.len(),
            merged.events,
            bytes(merged.bytes.len() as u64),
            match merged.duplicates {
                0 => String::new(),
                n => format!("; {n} duplicate lines dropped"),
            }
        );
        if args.dry_run {
            println!("would merge {line}");
            continue;
        }
        // Under a lease, the merged segment is a batch of its epoch, so that it counts once
        // the next owner seals that epoch.
        let name = match lease {
            None => format!("{dir}/{}.jsonl", new_uuid(&OsEntropy)),
            Some(l) => format!("{dir}/{}", l.segment_name().ok_or_else(|| lost(id, day))?),
        };
        raw.create(&name, merged.bytes.clone())
            .await
            .map_err(|e| format!("cannot write {name}: {e}; nothing was deleted"))?;
        let back = raw
            .read(&name)
            .await
            .map_err(|e| format!("cannot read back {name}: {e}; nothing was deleted"))?;
        if back.as_deref() != Some(&merged.bytes[..]) {
            let _ = raw.delete(&name).await;
            return Err(format!(
                "{name} did not read back as written; it was deleted, nothing else was"
            ));
        }
        // Stored while the lease was held, the merged segment counts: only then may the
        // originals go. (Lost, it may not count: they stay, and the day may read its lines
        // twice until compact runs again.)
        if lease.is_some_and(|l| !l.holds()) {
            return Err(format!(
                "{}; {name} holds its lines too: run compact again to finish",
                lost(id, day)
            ));
        }
        for s in &segments {
            raw.delete(&s.path).await.map_err(|e| {
                format!(
                    "cannot delete {}: {e}; its lines are now also in {name}: run compact \
                     again to finish",
                    s.path
                )
            })?;
        }
        for r in runs.get(&dir).into_iter().flatten() {
            raw.delete(&r.path)
                .await
                .map_err(|e| format!("cannot delete the merged run {}: {e}", r.path))?;
        }
        for l in leftovers.get(&dir).into_iter().flatten() {
            raw.delete(&l.path)
                .await
                .map_err(|e| format!("cannot delete the leftover {}: {e}", l.path))?;
        }
        println!("merged {line}");
        merged_days += 1;
        removed += segments.len();
        duplicates += merged.duplicates;
    }
    if args.dry_run {
        println!("dry run: nothing was written");
    } else {
        println!(
            "{merged_days} days of exchange {id} compacted ({removed} segments merged) before {before}"
        );
        let end = scan(&raw, Some(id)).await?;
        let (was, is) = (
            comparable(&start.census, id, duplicates),
            comparable(&end.census, id, 0),
        );
        if was != is {
            return Err(format!(
                "after compacting, exchange {id} does not replay the same: before \
                 {was:?}, after {is:?}"
            ));
        }
        println!(
            "exchange {id} replays the same: {} events, {} threads, {} members",
            is.events, is.threads, is.members
        );
    }
    if !refused.is_empty() {
        return Err(format!(
            "{} days were left alone: they hold lines that do not parse (run verify)",
            refused.len()
        ));
    }
    Ok(())
}

/// The error of a lease lost while compacting `day`.
fn lost(id: &ExchangeId, day: Day) -> String {
    format!(
        "lost the lease of exchange {id} while compacting {day} (the command was paused or \
         cut off from the bucket for a lease period); the originals of {day} were kept"
    )
}

/// What compacting must not change in an exchange's census (`duplicates` dropped lines
/// taken off its events; segments, of course, change).
fn comparable(census: &Census, id: &ExchangeId, duplicates: usize) -> ExchangeCensus {
    let mut x = census
        .exchanges
        .get(id.as_str())
        .cloned()
        .unwrap_or_default();
    x.events -= duplicates.min(x.events);
    x.segments = 0;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","ts":"2026-02-01T22:00:00.000Z","exchange_id":"home","thread_ref":null,"event_type":"x","actor_id":"a","payload":{{}},"seq":0}}"#
        )
    }

    #[test]
    fn merging_keeps_every_line_in_order_once_and_refuses_a_torn_one() {
        let a = format!("{}\n{}\n", line("e1"), line("e2"));
        let b = format!("{}\r\n\n{}", line("e3"), line("e1"));
        let m = merge(&[("a".into(), a.into_bytes()), ("b".into(), b.into_bytes())])
            .expect("all parse");
        assert_eq!(
            String::from_utf8(m.bytes).expect("utf8"),
            format!("{}\n{}\n{}\n", line("e1"), line("e2"), line("e3"))
        );
        assert_eq!((m.events, m.duplicates), (3, 1));
        let torn = format!("{}\n{{\"event_id\":", line("e4"));
        let bad = merge(&[("c".into(), torn.into_bytes())])
            .err()
            .expect("refused");
        assert_eq!(bad, ["c:2"]);
    }

    #[test]
    fn days_are_read_as_yyyy_mm_dd() {
        assert_eq!(
            parse_day("2026-02-01").expect("valid").to_string(),
            "2026-02-01"
        );
        for bad in ["2026-2-01", "2026-02-30", "yesterday", "2026-02"] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }
}
