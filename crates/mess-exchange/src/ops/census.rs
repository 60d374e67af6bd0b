//! `mess-exchange verify`: a whole store read as replay and DuckDB read it, counted, and
//! every thing wrong with it named (a line that does not parse, with its file and line; a
//! file that is not ours; a member record the server would refuse). The same reading
//! checks `copy`, `backup` and `compact` afterwards.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use futures::StreamExt;
use mess_core::layout::{Day, parse_line};
use mess_core::{ExchangeId, Member, Replay};
use mess_storage::{Class, RawObject, RawStore, classify};
use serde::Serialize;

use super::stopped;
use crate::StorageArgs;

/// `verify --help`.
pub const VERIFY_ABOUT: &str = "\
Read a whole store the way the server's start-up and DuckDB read it, count what it holds \
and name everything wrong with it. Prints, for each exchange, its events, segments, days, \
threads by status, members and stored answers; then every problem: a line that does not \
parse (a torn last line left by a crash, or foreign data), with its file and line number; \
an event stored twice; an event filed under the wrong exchange or day; a member record the \
server would refuse to start on; and every file that is not the store's own, saying when \
DuckDB's read_json_auto('events/**/*.jsonl', hive_partitioning=true) would fail on it. \
Leftovers of interrupted writes (temporary and staging files, write checks) are named too: \
they are safe to delete once the server is stopped.

Exit code: 0 when nothing is wrong, 1 when anything is (or the store cannot be read). \
Nothing is written.

Run it on a stopped store (the same STORAGE_* and S3_* settings as the server): on a data \
directory it takes the store's lock and refuses while a server runs; an S3 bucket has no \
lock, so stop the server first. Use it after a crash, before and after moving a store, and \
on a backup before you trust it.";

/// `mess-exchange verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Print the counts and problems as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Reads the whole store, prints the census and the problems; an error when there are any.
pub async fn verify(args: VerifyArgs) -> Result<(), String> {
    let config = args.storage.config();
    let _lock = stopped(&config)?;
    let raw = RawStore::open(&config).await.map_err(|e| e.to_string())?;
    let report = scan(&raw, None).await?;
    if args.json {
        let json = serde_json::json!({
            "store": raw.describe(),
            "census": report.census,
            "problems": report.problems,
            "problems_total": report.problems_total,
        });
        println!("{json}");
    } else {
        println!("store: {}", raw.describe());
        print!("{}", report.census);
        print!("{}", report.problem_lines());
    }
    match report.problems_total {
        0 => Ok(()),
        1 => Err("1 problem found".into()),
        n => Err(format!("{n} problems found")),
    }
}

/// How many problems are listed at most (all are counted).
const MAX_LISTED: usize = 1000;

/// What a store holds, as replay reads it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Each exchange (of an event or a member record), by id.
    pub exchanges: BTreeMap<String, ExchangeCensus>,
    /// Lines that do not parse, which replay skips.
    pub unreadable_lines: usize,
    /// Objects under the prefixes this version copies but does not check (blobs...), by
    /// prefix.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, usize>,
    /// Stored attachments no event line refers to: left by a request refused after its
    /// photos were stored (harmless; `blobs/` is copied whole).
    #[serde(skip_serializing_if = "is_zero")]
    pub unreferenced_blobs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One exchange's share of a [`Census`].
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ExchangeCensus {
    /// Event lines read.
    pub events: usize,
    /// Segment files (objects) they are in.
    pub segments: usize,
    /// Days with segments.
    pub days: usize,
    /// Threads, as replay folds them.
    pub threads: usize,
    /// Threads by status.
    pub by_status: BTreeMap<String, usize>,
    /// Member records.
    pub members: usize,
    /// Stored idempotent answers.
    pub answers: usize,
}

impl Census {
    /// Total events.
    pub fn events(&self) -> usize {
        self.exchanges.values().map(|x| x.events).sum()
    }

    /// Total threads.
    pub fn threads(&self) -> usize {
        self.exchanges.values().map(|x| x.threads).sum()
    }

    /// Total members.
    pub fn members(&self) -> usize {
        self.exchanges.values().map(|x| x.members).sum()
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, x) in &self.exchanges {
            let statuses: Vec<String> = x
                .by_status
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            let statuses = if statuses.is_empty() {
                String::new()
            } else {
                format!(" ({})", statuses.join(", "))
            };
            writeln!(
                f,
                "  {id}: {} events in {} segments over {} days; {} threads{statuses}; {} members; {} answers",
                x.events, x.segments, x.days, x.threads, x.members, x.answers
            )?;
        }
        for (prefix, n) in &self.other {
            let unreferenced = match (prefix.as_str(), self.unreferenced_blobs) {
                ("blobs", 1) => "; 1 attachment no message refers to (left by a refused \
                                 request: harmless)"
                    .to_owned(),
                ("blobs", u) if u > 1 => format!(
                    "; {u} attachments no message refers to (left by refused requests: \
                     harmless)"
                ),
                _ => String::new(),
            };
            writeln!(
                f,
                "  {prefix}/: {n} objects (copied as they are, not checked){unreferenced}"
            )?;
        }
        writeln!(
            f,
            "total: {} exchanges, {} events, {} threads, {} members, {} unreadable lines",
            self.exchanges.len(),
            self.events(),
            self.threads(),
            self.members(),
            self.unreadable_lines
        )
    }
}

/// Something wrong with a store, at a path (and a line, 1-based, for an event line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The object, relative to the root or bucket.
    pub path: String,
    /// The line, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong, and what it does.
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.problem),
            None => write!(f, "{}: {}", self.path, self.problem),
        }
    }
}

/// A census and the problems found on the way.
#[derive(Debug, Default)]
pub struct Report {
    /// The counts.
    pub census: Census,
    /// The first [`MAX_LISTED`] problems.
    pub problems: Vec<Problem>,
    /// How many problems there are in all.
    pub problems_total: usize,
}

impl Report {
    /// The problems, one per line, or a line saying there are none.
    pub fn problem_lines(&self) -> String {
        if self.problems_total == 0 {
            return "ok: nothing wrong\n".into();
        }
        let mut out = format!("problems ({}):\n", self.problems_total);
        for p in &self.problems {
            out.push_str(&format!("  {p}\n"));
        }
        if self.problems_total > self.problems.len() {
            out.push_str(&format!(
                "  ... and {} more\n",
                self.problems_total - self.problems.len()
            ));
        }
        out
    }
}

/// Whether an object is read by the census: the store's own objects that are plain files,
/// of `only` when given.
pub fn wanted(only: Option<&ExchangeId>, obj: &RawObject, class: &Class) -> bool {
    obj.regular && wanted_exchange(only, class)
}

/// Whether `copy` and `backup` take an object: the store's own plain files (what the
/// census reads, and what it counts without reading: blobs...).
pub fn copies(obj: &RawObject, class: &Class) -> bool {
    obj.regular && (wanted_exchange(None, class) || matches!(class, Class::Other { .. }))
}

/// How many objects are read at once.
pub const READS: usize = 16;

/// Lists and reads the whole store (only `only`'s objects, when given), in path order.
pub async fn scan(raw: &RawStore, only: Option<&ExchangeId>) -> Result<Report, String> {
    let objects = raw
        .list()
        .await
        .map_err(|e| format!("cannot list {}: {e}", raw.describe()))?;
    let mut census = Scanner::new(only.cloned());
    let mut reads = futures::stream::iter(objects)
        .map(|obj| async move {
            let class = classify(&obj.path);
            let bytes = if wanted(only, &obj, &class) {
                raw.read(&obj.path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", raw.describe()))?
            } else {
                None
            };
            Ok::<_, String>((obj, class, bytes))
        })
        .buffered(READS);
    while let Some(read) = reads.next().await {
        let (obj, class, bytes) = read?;
        census.add(&obj, &class, bytes.as_deref());
    }
    Ok(census.finish())
}

/// Per exchange, while reading.
#[derive(Default)]
struct Tally {
    events: usize,
    segments: usize,
    days: BTreeSet<Day>,
    members: usize,
    answers: usize,
}

/// Builds a [`Report`] from objects given one at a time, in path order (replay's order).
pub struct Scanner {
    only: Option<ExchangeId>,
    replay: Replay,
    members: Vec<Member>,
    tallies: BTreeMap<ExchangeId, Tally>,
    unreadable_lines: usize,
    other: BTreeMap<String, usize>,
    /// Event ids seen: UUIDs as numbers, anything else as text.
    uuids: HashSet<u128>,
    other_ids: HashSet<String>,
    problems: Vec<Problem>,
    problems_total: usize,
    /// Attachments the log refers to (exchange, SHA-256), with where first.
    referenced: BTreeMap<(ExchangeId, String), (String, usize)>,
    /// Attachments stored (`blobs/exchange={id}/{sha256}`).
    stored: HashSet<(ExchangeId, String)>,
}

impl Scanner {
    /// Nothing read yet; only `only`'s objects count when given.
    pub fn new(only: Option<ExchangeId>) -> Self {
        Self {
            only,
            replay: Replay::new(),
            members: Vec::new(),
            tallies: BTreeMap::new(),
            unreadable_lines: 0,
            other: BTreeMap::new(),
            uuids: HashSet::new(),
            other_ids: HashSet::new(),
            problems: Vec::new(),
            problems_total: 0,
            referenced: BTreeMap::new(),
            stored: HashSet::new(),
        }
    }

    fn problem(&mut self, path: &str, line: Option<usize>, problem: impl Into<String>) {
        self.problems_total += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(Problem {
                path: path.to_owned(),
                line,
                problem: problem.into(),
            });
        }
    }

    /// Takes the next object: its bytes when [`wanted`] (`None` if it vanished since it
    /// was listed), else just its name.
    pub fn add(&mut self, obj: &RawObject, class: &Class, bytes: Option<&[u8]>) {
        let path = obj.path.as_str();
        let other = self.only.is_none() && matches!(class, Class::Other { .. });
        if !obj.regular && (other || wanted_exchange(self.only.as_ref(), class)) {
            self.problem(
                path,
                None,
                "not a plain file (a symbolic link?): the server does not read it",
            );
            return;
        }
        match class {
            Class::Lock => {}
            Class::Other { prefix } => {
                if let Some((x, sha)) = mess_core::layout::blob_of(path) {
                    self.stored.insert((x, sha.to_owned()));
                }
                if self.only.is_none() {
                    *self.other.entry((*prefix).to_owned()).or_default() += 1;
                }
            }
            Class::Leftover(why) => {
                if self.only.is_none() {
                    self.problem(
                        path,
                        None,
                        format!("{why}: never read; safe to delete while the server is stopped"),
                    );
                }
            }
            Class::Stray {
                why,
                read_by_duckdb,
            } => {
                if self.only.is_none() {
                    let duckdb = if *read_by_duckdb {
                        "; DuckDB's events/**/*.jsonl reads it and fails the whole query"
                    } else {
                        ""
                    };
                    self.problem(path, None, format!("not the store's own: {why}{duckdb}"));
                }
            }
            _ if bytes.is_none() => {}
            Class::Segment { exchange, day } => {
                self.segment(path, exchange, *day, bytes.unwrap_or_default());
            }
            Class::Member { exchange, executor } => {
                let bytes = bytes.unwrap_or_default();
                match serde_json::from_slice::<Member>(bytes) {
                    Ok(m) if m.exchange_id == *exchange && m.executor_id == *executor => {
                        self.tallies.entry(exchange.clone()).or_default().members += 1;
                        self.members.push(m);
                    }
                    Ok(m) => self.problem(
                        path,
                        None,
                        format!(
                            "the record is of {} in exchange {}, not of the member its name \
                             says: the server would load it as that one",
                            m.executor_id, m.exchange_id
                        ),
                    ),
                    Err(e) => self.problem(
                        path,
                        None,
                        format!("not a member record ({e}): the server refuses to start on it"),
                    ),
                }
            }
            Class::Answer { exchange } => {
                if serde_json::from_slice::<serde_json::Value>(bytes.unwrap_or_default()).is_ok() {
                    self.tallies.entry(exchange.clone()).or_default().answers += 1;
                } else {
                    self.problem(path, None, "a stored answer that is not JSON");
                }
            }
        }
    }

    fn segment(&mut self, path: &str, exchange: &ExchangeId, day: Day, bytes: &[u8]) {
        {
            let tally = self.tallies.entry(exchange.clone()).or_default();
            tally.segments += 1;
            tally.days.insert(day);
        }
        let mut events = 0;
        for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            let n = i + 1;
            let e = match parse_line(line) {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(()) => {
                    self.unreadable_lines += 1;
                    let problem = if line.ends_with(b"\n") {
                        "does not parse as an event: replay skips it, DuckDB fails the whole \
                         query on it"
                    } else {
                        "a torn last line (a crash mid-write): replay skips it and the server \
                         cuts it at its next start; DuckDB fails on it until then"
                    };
                    self.problem(path, Some(n), problem);
                    continue;
                }
            };
            if e.exchange_id != *exchange {
                self.problem(
                    path,
                    Some(n),
                    format!(
                        "an event of exchange {} filed under exchange={exchange}: replay \
                         counts it in {}, DuckDB's `exchange` column says {exchange}",
                        e.exchange_id, e.exchange_id
                    ),
                );
            }
            if e.ts.date() != day {
                self.problem(
                    path,
                    Some(n),
                    format!("an event of {} filed under the day {day}", e.ts.date()),
                );
            }
            let fresh = match uuid_number(&e.event_id) {
                Some(u) => self.uuids.insert(u),
                None => self.other_ids.insert(e.event_id.clone()),
            };
            if !fresh {
                self.problem(
                    path,
                    Some(n),
                    format!(
                        "event {} is stored twice (an interrupted compact, or a copy made \
                         into a store that held it): replay applies it twice",
                        e.event_id
                    ),
                );
            }
            if let Ok(text) = std::str::from_utf8(line)
                && text.contains(mess_core::blob::PREFIX)
            {
                for sha in mess_core::blob::referenced(text) {
                    self.referenced
                        .entry((exchange.clone(), sha.to_owned()))
                        .or_insert_with(|| (path.to_owned(), n));
                }
            }
            events += 1;
            self.replay.push(e);
        }
        self.tallies.entry(exchange.clone()).or_default().events += events;
    }

    /// Folds what was read: threads by status, per exchange.
    pub fn finish(mut self) -> Report {
        let missing: Vec<(String, usize, String)> = self
            .referenced
            .iter()
            .filter(|(key, _)| !self.stored.contains(*key))
            .map(|((x, sha), (path, n))| (path.clone(), *n, format!("blobs/exchange={x}/{sha}")))
            .collect();
        for (path, n, blob) in missing {
            self.problem(
                &path,
                Some(n),
                format!(
                    "refers to the attachment {blob}, which is missing: reads show the \
                     reference instead of the photo (restore it from a backup)"
                ),
            );
        }
        let unreferenced_blobs = self
            .stored
            .iter()
            .filter(|key| self.only.as_ref().is_none_or(|only| key.0 == *only))
            .filter(|key| !self.referenced.contains_key(*key))
            .count();
        let mut tallies = self.tallies;
        let exchanges = self.replay.finish(self.members);
        let mut census = Census {
            exchanges: BTreeMap::new(),
            unreadable_lines: self.unreadable_lines,
            other: self.other,
            unreferenced_blobs,
        };
        // Exchanges replay saw through events of another partition count too.
        let ids: BTreeSet<ExchangeId> = tallies
            .keys()
            .cloned()
            .chain(exchanges.keys().cloned())
            .collect();
        for id in ids {
            let tally = tallies.remove(&id).unwrap_or_default();
            let mut x = ExchangeCensus {
                events: tally.events,
                segments: tally.segments,
                days: tally.days.len(),
                members: tally.members,
                answers: tally.answers,
                ..ExchangeCensus::default()
            };
            if let Some(state) = exchanges.get(&id) {
                x.threads = state.thread_count();
                x.by_status = state
                    .status_counts()
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, n)| (s.as_str().to_owned(), n))
                    .collect();
            }
            census.exchanges.insert(id.to_string(), x);
        }
        Report {
            census,
            problems: self.problems,
            problems_total: self.problems_total,
        }
    }
}

/// Whether `class` is one of the store's own objects, of `only` when given.
fn wanted_exchange(only: Option<&ExchangeId>, class: &Class) -> bool {
    match class {
        Class::Segment { exchange, .. }
        | Class::Member { exchange, .. }
        | Class::Answer { exchange } => only.is_none_or(|x| x == exchange),
        _ => false,
    }
}

/// A UUID's 128 bits, if `s` is one in its usual text form.
fn uuid_number(s: &str) -> Option<u128> {
    if s.len() != 36 {
        return None;
    }
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}
