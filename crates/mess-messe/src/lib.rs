//! # mess-messe
//!
//! MESSE-AF, the MESS project's file format for exchanges kept in plain files (a git repo,
//! a local folder), in and out of this exchange's event log. Import reads v1 single files
//! and v2/v2.1 thread folders (attachments included) into the events a thread's history
//! would have produced (`thread_created`, `status_changed`, `message_added`,
//! `offer_passed`); export writes threads back as v2.1 folders in the state folders the
//! MESS tools read. The rules are `messe-af.md` (the format summary and its decisions).
//!
//! Framework-free and storage-agnostic: the caller reads its store (replay gives the
//! existing threads and the head) and appends the events; `mess-exchange import` and
//! `export` are that caller.
//!
//! # Layout
//! - [`read`]: one thread's YAML text in, a [`Parsed`] thread out (pure; attachments come
//!   through the [`read::Attachments`] trait).
//! - [`import`]: parsed threads to events: refs settled against the exchange ([`Importer`]).
//! - [`write`]: a thread's events to its v2.1 folder's files (pure).
//! - [`fs`]: finding threads under a directory, reading them, writing exported folders.
//! - [`names`]: refs, actor ids and timestamps from files; [`media`]: attachment names and
//!   MIME types; [`yaml`]: the YAML reader and the one writing style.
//!
//! # Example
//! ```
//! use mess_core::{Exchange, ExchangeId, Timestamp};
//! use mess_messe::read::{parse, Limits, NoFiles, Source};
//! use mess_messe::{Importer, Planned};
//!
//! let text = "ref: 2026-03-04-P001\nrequestor: ops-agent\nexecutor: null\nstatus: pending\n\
//!             created: '2026-03-04T09:00:00.000Z'\nintent: Is the parcel on the porch?\n\
//!             priority: normal\n---\nfrom: ops-agent\nreceived: '2026-03-04T09:00:00.000Z'\n\
//!             MESS:\n- v: 1.0.0\n- request: {intent: Is the parcel on the porch?}\n";
//! let source = Source {
//!     path: "2026-03-04-P001.messe-af.yaml".into(),
//!     name_ref: "2026-03-04-P001".into(),
//!     yaml: vec![("2026-03-04-P001.messe-af.yaml".into(), text.into())],
//! };
//! let now = Timestamp::parse("2026-04-01T00:00:00Z").unwrap();
//! let parsed = parse(&source, &mut NoFiles, &Limits::default(), now, &mut Vec::new()).unwrap();
//!
//! let home = ExchangeId::parse("home").unwrap();
//! let mut importer = Importer::new(home.clone(), 0, |_| None);
//! let Ok(Planned::New { events, .. }) = importer.plan(&parsed, &mess_core::OsEntropy) else {
//!     panic!("a new thread")
//! };
//! let mut exchange = Exchange::new(home);
//! exchange.apply_all(&events);
//! let thread = exchange.thread(&"2026-03-04-P001".parse().unwrap()).unwrap();
//! assert_eq!(thread.intent, "Is the parcel on the porch?");
//! ```
#![forbid(unsafe_code)]

pub mod fs;
pub mod import;
pub mod media;
pub mod names;
pub mod read;
pub mod write;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use import::{Fingerprint, Importer, Planned, THREAD_IMPORTED};
pub use read::{Limits, Note, Parsed};
pub use write::{ExportOptions, Exported, export_thread};

use mess_core::Timestamp;

/// Everything an import did and did not do, for the operator.
#[derive(Debug, Default)]
pub struct Report {
    /// Files, folders and threads left out, each with why.
    pub skipped: Vec<Note>,
    /// Threads imported with something dropped, changed or mapped on the way.
    pub notes: Vec<Note>,
    /// Threads imported under another ref than their own: `(path, source ref, ref here)`.
    pub renamed: Vec<(String, String, String)>,
    /// Threads imported.
    pub imported: usize,
    /// Events written (or, in a dry run, that would be).
    pub events: usize,
    /// Threads the exchange already held (an earlier import): left as they are.
    pub present: usize,
}

impl Report {
    /// Records that `path` was left out, and why.
    pub fn skip(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.skipped.push(Note {
            path: path.into(),
            message: why.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.skipped {
            writeln!(f, "skipped  {}: {}", n.path, n.message)?;
        }
        for n in &self.notes {
            writeln!(f, "note     {}: {}", n.path, n.message)?;
        }
        for (path, from, to) in &self.renamed {
            writeln!(
                f,
                "renamed  {path}: {from} is {to} here (export writes {from} back)"
            )?;
        }
        write!(
            f,
            "{} threads imported ({} events), {} already present, {} skipped, {} notes",
            self.imported,
            self.events,
            self.present,
            self.skipped.len(),
            self.notes.len()
        )
    }
}

/// A thread read from a directory, ready for [`Importer::plan`].
#[derive(Debug)]
pub struct Read {
    /// Where it was found.
    pub path: String,
    /// The thread.
    pub parsed: Parsed,
}

/// Reads the threads under a directory one ref at a time, in ref order: when several
/// copies of one ref exist (a move between state folders interrupted, a v1 file beside
/// its v2 folder), the one with the latest `updated`, then the most messages, is kept
/// and the others are reported.
pub struct Reader {
    groups: std::collections::btree_map::IntoIter<String, Vec<fs::Found>>,
    limits: Limits,
    now: Timestamp,
}

impl Reader {
    /// Scans `root`; what the scan leaves out goes into `report`.
    pub fn new(
        root: &Path,
        limits: Limits,
        now: Timestamp,
        report: &mut Report,
    ) -> std::io::Result<Self> {
        let scan = fs::scan(root)?;
        report.skipped.extend(scan.skipped);
        let mut groups: BTreeMap<String, Vec<fs::Found>> = BTreeMap::new();
        for f in scan.found {
            groups.entry(f.name_ref.clone()).or_default().push(f);
        }
        Ok(Self {
            groups: groups.into_iter(),
            limits,
            now,
        })
    }

    /// The next thread; what cannot be read goes into `report`.
    pub fn next(&mut self, report: &mut Report) -> Option<Read> {
        for (_, copies) in self.groups.by_ref() {
            let mut read: Vec<(Read, Vec<Note>)> = Vec::new();
            for found in copies {
                let mut notes = Vec::new();
                let result = fs::load(&found, &self.limits).and_then(|(source, mut files)| {
                    let parsed =
                        read::parse(&source, &mut files, &self.limits, self.now, &mut notes)?;
                    for unused in files.unused() {
                        notes.push(Note {
                            path: format!("{}/{unused}", found.path),
                            message: "an attachment file no message names: not imported".to_owned(),
                        });
                    }
                    Ok(parsed)
                });
                match result {
                    Ok(parsed) => read.push((
                        Read {
                            path: found.path,
                            parsed,
                        },
                        notes,
                    )),
                    Err(why) => report.skip(found.path, why),
                }
            }
            read.sort_by_key(|(r, _)| std::cmp::Reverse((r.parsed.updated, r.parsed.messages())));
            let mut copies = read.into_iter();
            let Some((kept, notes)) = copies.next() else {
                continue;
            };
            for (other, _) in copies {
                report.skip(
                    other.path,
                    format!(
                        "another copy of {} was kept, at {} (updated later or longer)",
                        kept.parsed.source_ref, kept.path
                    ),
                );
            }
            report.notes.extend(notes);
            return Some(kept);
        }
        None
    }
}
