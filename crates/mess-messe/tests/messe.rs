//! MESSE-AF in and out, on fixtures written from the format summary (tests/fixtures) and
//! on hostile trees built here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use mess_core::event::{MessageAdded, StatusChanged, ThreadCreated};
use mess_core::{
    Actor, Block, BlockKind, Event, EventKind, ExchangeId, ExecutorId, OsEntropy, Priority, Status,
    Thread, ThreadRef, Timestamp,
};
use mess_messe::{ExportOptions, Fingerprint, Importer, Planned, Reader, Report, export_thread};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/files")
}

fn now() -> Timestamp {
    Timestamp::parse("2026-06-01T00:00:00Z").unwrap()
}

fn home() -> ExchangeId {
    ExchangeId::parse("home").unwrap()
}

/// An exchange as events: what an import appends to.
#[derive(Default)]
struct Store {
    events: Vec<Event>,
}

impl Store {
    fn head(&self) -> u64 {
        self.events.iter().map(|e| e.pos).max().unwrap_or(0)
    }

    /// Every thread, folded from its events in `seq` order.
    fn threads(&self) -> BTreeMap<String, Thread> {
        let mut by_ref: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
        for e in &self.events {
            if let Some(r) = &e.thread_ref {
                by_ref.entry(r.to_string()).or_default().push(e);
            }
        }
        by_ref
            .into_iter()
            .map(|(r, mut es)| {
                es.sort_by_key(|e| e.seq);
                let mut t = Thread::from_created(es[0]).unwrap();
                for e in &es[1..] {
                    t.apply(e);
                }
                (r, t)
            })
            .collect()
    }

    fn thread_events(&self) -> BTreeMap<String, Vec<Event>> {
        let mut by_ref: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for e in &self.events {
            if let Some(r) = &e.thread_ref {
                by_ref.entry(r.to_string()).or_default().push(e.clone());
            }
        }
        for es in by_ref.values_mut() {
            es.sort_by_key(|e| e.seq);
        }
        by_ref
    }

    /// Imports every thread under `dir`, as `mess-exchange import` does.
    fn import(&mut self, dir: &Path) -> Report {
        let mut report = Report::default();
        let mut reader =
            Reader::new(dir, mess_messe::Limits::default(), now(), &mut report).unwrap();
        let existing = self.threads();
        let mut importer = Importer::new(home(), self.head(), |r: &ThreadRef| {
            existing.get(r.as_str()).map(Fingerprint::of)
        });
        let mut new = Vec::new();
        while let Some(read) = reader.next(&mut report) {
            match importer.plan(&read.parsed, &OsEntropy) {
                Ok(Planned::New {
                    events,
                    renamed,
                    thread_ref,
                }) => {
                    report.imported += 1;
                    report.events += events.len();
                    if renamed {
                        report.renamed.push((
                            read.path,
                            read.parsed.source_ref.clone(),
                            thread_ref.to_string(),
                        ));
                    }
                    new.extend(events);
                }
                Ok(Planned::Present(_)) => report.present += 1,
                Err(why) => report.skip(read.path, why),
            }
        }
        self.events.extend(new);
        report
    }

    /// Exports every thread into `out`, as `mess-exchange export` does.
    fn export(&self, out: &Path, options: &ExportOptions) {
        mess_messe::fs::check_export_target(out).unwrap();
        for events in self.thread_events().values() {
            let exported = export_thread(events, options).unwrap();
            mess_messe::fs::write(out, &exported).unwrap();
        }
    }
}

/// The thread imported from MESSE-AF ref `source` (kept, or renamed when our refs
/// cannot hold it yet).
fn by_source<'a>(store: &Store, threads: &'a BTreeMap<String, Thread>, source: &str) -> &'a Thread {
    let renamed = store
        .events
        .iter()
        .find(|e| mess_messe::import::source_ref(e) == Some(source))
        .and_then(|e| e.thread_ref.as_ref())
        .map(ToString::to_string);
    &threads[renamed.as_deref().unwrap_or(source)]
}

fn messages(t: &Thread) -> Vec<Value> {
    serde_json::from_str(t.messages.as_json()).unwrap()
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Every file under `dir`, relative path to bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_v1_file_imports_with_its_status_history_and_inline_image() {
    let mut store = Store::default();
    let report = store.import(&fixtures());
    assert_eq!(report.imported, 4, "{report}");
    let threads = store.threads();
    let t = by_source(&store, &threads, "2026-01-20-001");
    assert_eq!(t.status, Status::Completed);
    assert_eq!(t.executor_id.as_ref().unwrap().as_str(), "my-phone");
    assert_eq!(t.requestor_id.as_str(), "claude-agent");
    assert_eq!(
        t.created_at,
        Timestamp::parse("2026-01-20T10:00:00Z").unwrap()
    );
    assert_eq!(
        t.updated_at,
        Timestamp::parse("2026-01-20T10:05:00Z").unwrap()
    );
    let m = messages(t);
    // The request (no `v` block, no ack), the claim, the completion with its response.
    assert_eq!(m.len(), 3, "{m:#?}");
    assert_eq!(m[0]["mess"][0]["request"]["id"], "fridge-check");
    assert_eq!(m[0]["mess"].as_array().unwrap().len(), 1);
    assert_eq!(m[1]["from"], "my-phone");
    assert_eq!(m[1]["ts"], "2026-01-20T10:01:00.000Z");
    assert_eq!(m[2]["mess"][1]["response"]["re"], "2026-01-20-001");
    assert_eq!(
        m[2]["mess"][1]["response"]["content"][0]["image"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    // The ref: kept when our refs take it, otherwise renamed and reported.
    match ThreadRef::parse("2026-01-20-001") {
        Ok(_) => assert!(report.renamed.is_empty()),
        Err(_) => assert!(
            report
                .renamed
                .iter()
                .any(|(_, from, to)| from == "2026-01-20-001" && to == "2026-01-20-0001"),
            "{report}"
        ),
    }
    let statuses: Vec<(Status, Status)> = store
        .events
        .iter()
        .filter(|e| e.thread_ref.as_ref() == Some(&t.thread_ref))
        .filter_map(|e| match &e.kind {
            EventKind::StatusChanged(c) => Some((c.old_status, c.new_status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (Status::Pending, Status::Claimed),
            (Status::Claimed, Status::Completed)
        ]
    );
}

#[test]
fn a_v2_folder_reads_its_overflow_file_and_inlines_its_attachments() {
    let mut store = Store::default();
    store.import(&fixtures());
    let threads = store.threads();
    let t = by_source(&store, &threads, "2026-03-04-007-parcel");
    assert_eq!(t.status, Status::Completed);
    assert_eq!(t.priority, Priority::Elevated);
    let m = messages(t);
    assert_eq!(m.len(), 4, "{m:#?}");
    // -08:00 read as the same instant in UTC.
    assert_eq!(m[2]["ts"], "2026-03-04T09:05:00.000Z");
    assert_eq!(
        m[2]["mess"][0]["status"]["code"], "in-progress",
        "blocks verbatim"
    );
    let content = &m[3]["mess"][1]["response"]["content"];
    let jpg = std::fs::read(
        fixtures().join("exchange/state=finished/2026-03-04-007-parcel/att-001-image-porch.jpg"),
    )
    .unwrap();
    assert_eq!(content[0]["image"], data_uri("image/jpeg", &jpg));
    let pdf = content[1]["file"].as_object().unwrap();
    assert_eq!(pdf.keys().collect::<Vec<_>>(), ["uri", "name", "mime"]);
    assert!(
        pdf["uri"]
            .as_str()
            .unwrap()
            .starts_with("data:application/pdf;base64,JVBERi0")
    );
    assert_eq!(content[2], "Yes, by the mat.");
    let path: Vec<Status> = store
        .events
        .iter()
        .filter(|e| e.thread_ref.as_ref() == Some(&t.thread_ref))
        .filter_map(|e| match &e.kind {
            EventKind::StatusChanged(c) => Some(c.new_status),
            _ => None,
        })
        .collect();
    assert_eq!(
        path,
        [Status::Claimed, Status::InProgress, Status::Completed]
    );
}

#[test]
fn v2_1_refs_offer_passes_and_question_links_survive() {
    let mut store = Store::default();
    let report = store.import(&fixtures());
    let threads = store.threads();
    let t = &threads["2026-02-01-AB12"];
    assert_eq!(t.status, Status::Pending, "a pass is no status change");
    assert_eq!(t.executor_id, None);
    assert_eq!(t.priority, Priority::Background);
    // `Jane Doe` is not a member id: mapped the same way each time, and reported.
    assert!(
        t.requestor_id.as_str().starts_with("Jane-Doe-"),
        "{}",
        t.requestor_id
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.message.contains("\"Jane Doe\"")),
        "{report}"
    );
    let m = messages(t);
    assert_eq!(
        m[0]["mess"][0]["request"]["context"],
        json!(["yes", "001", "null", "---", 1.0, "2026-02-01"])
    );
    assert_eq!(
        m[1]["mess"][0]["status"],
        json!({"code": "declined", "message": "No hose here"})
    );
    assert_eq!(
        m[3]["mess"][0]["answer"]["re"],
        "2026-02-01-AB12/question-002"
    );
    let passed = store.events.iter().any(|e| {
        e.thread_ref.as_ref() == Some(&t.thread_ref) && matches!(e.kind, EventKind::OfferPassed(_))
    });
    assert!(passed);

    let c = &threads["2026-02-03-C4NC"];
    assert_eq!(
        c.status,
        Status::Cancelled,
        "the envelope has the last word"
    );
    assert_eq!(
        c.updated_at,
        Timestamp::parse("2026-02-03T07:30:00Z").unwrap()
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.path.ends_with("2026-02-03-C4NC.messe-af.yaml")
                && n.message.contains("envelope says cancelled")),
        "{report}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|n| n.path.ends_with(".gitkeep") && n.message.contains("hidden")),
        "{report}"
    );
}

#[test]
fn a_second_import_adds_nothing() {
    let mut store = Store::default();
    let first = store.import(&fixtures());
    let events = store.events.len();
    let second = store.import(&fixtures());
    assert_eq!(store.events.len(), events, "{second}");
    assert_eq!((second.imported, second.present), (0, first.imported));
    // Positions continue the head and never repeat; seq counts each thread from 1.
    let mut pos: Vec<u64> = store.events.iter().map(|e| e.pos).collect();
    pos.dedup();
    assert_eq!(pos, (1..=events as u64).collect::<Vec<_>>());
    for es in store.thread_events().values() {
        let seq: Vec<u64> = es.iter().map(|e| e.seq).collect();
        assert_eq!(seq, (1..=es.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn import_export_import_gives_the_same_threads_and_export_is_deterministic() {
    let mut first = Store::default();
    first.import(&fixtures());
    let out = tempfile::tempdir().unwrap();
    first.export(out.path(), &ExportOptions::default());
    let again = tempfile::tempdir().unwrap();
    first.export(again.path(), &ExportOptions::default());
    assert_eq!(
        tree(out.path()),
        tree(again.path()),
        "byte-identical exports"
    );

    let files = tree(out.path());
    // State folders, source refs, pass: true, attachments small enough to stay inline.
    for path in [
        "exchange/state=finished/2026-01-20-001/000-2026-01-20-001.messe-af.yaml",
        "exchange/state=finished/2026-03-04-007-parcel/000-2026-03-04-007-parcel.messe-af.yaml",
        "exchange/state=received/2026-02-01-AB12/000-2026-02-01-AB12.messe-af.yaml",
        "exchange/state=canceled/2026-02-03-C4NC/000-2026-02-03-C4NC.messe-af.yaml",
    ] {
        assert!(files.contains_key(path), "{path} in {:?}", files.keys());
    }
    let ab12 = String::from_utf8(
        files["exchange/state=received/2026-02-01-AB12/000-2026-02-01-AB12.messe-af.yaml"].clone(),
    )
    .unwrap();
    assert!(ab12.contains("pass: true"), "{ab12}");
    assert!(!ab12.starts_with("---") && !ab12.contains('\r'));
    assert!(
        ab12.contains("created: \"2026-02-01T08:00:00.000Z\""),
        "{ab12}"
    );

    let mut second = Store::default();
    let report = second.import(out.path());
    assert!(
        report.skipped.is_empty() && report.notes.is_empty(),
        "{report}"
    );
    assert_eq!(first.threads(), second.threads());
    assert_eq!(status_moves(&first), status_moves(&second));

    // And with every attachment moved out to a file.
    let files_out = tempfile::tempdir().unwrap();
    let all = ExportOptions {
        inline_max_bytes: 0,
        ..ExportOptions::default()
    };
    first.export(files_out.path(), &all);
    let atts: Vec<String> = tree(files_out.path())
        .into_keys()
        .filter(|k| k.contains("/att-"))
        .collect();
    // The PDF carries a name: `{file: {uri, name, mime}}` stays inline (only the string
    // form our clients send moves out, so that it comes back the same).
    assert_eq!(atts.len(), 2, "{atts:?}");
    let jpg = tree(files_out.path())
        .into_iter()
        .find(|(k, _)| k.contains("2026-03-04-007-parcel/att-") && k.ends_with(".jpg"))
        .unwrap()
        .1;
    let original = std::fs::read(
        fixtures().join("exchange/state=finished/2026-03-04-007-parcel/att-001-image-porch.jpg"),
    )
    .unwrap();
    assert_eq!(Sha256::digest(&jpg), Sha256::digest(&original));
    let mut third = Store::default();
    third.import(files_out.path());
    assert_eq!(first.threads(), third.threads());
}

/// `(ref, old, new, executor, actor, ts, seq)` of a status change.
type Move = (
    String,
    Status,
    Status,
    Option<String>,
    String,
    Timestamp,
    u64,
);

/// Every status change of the store.
fn status_moves(store: &Store) -> Vec<Move> {
    store
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StatusChanged(c) => Some((
                e.thread_ref.as_ref().unwrap().to_string(),
                c.old_status,
                c.new_status,
                c.executor_id.as_ref().map(ToString::to_string),
                e.actor_id.to_string(),
                e.ts,
                e.seq,
            )),
            _ => None,
        })
        .collect()
}

/// A thread as our API makes one: a status path in one message, a message-only status
/// block that changed nothing, an offer passed, a release and a re-claim, an exchange
/// message, a photo just over the inline limit and one under it, and a notification
/// outcome in its history.
fn api_thread() -> Vec<Event> {
    let r = ThreadRef::parse("2026-05-01-K7QZ").unwrap();
    let ts = |s: i64| Timestamp::from_unix_millis(1_777_600_000_000 + s * 1000 + 123);
    let member = |m: &str| Actor::Member(ExecutorId::parse(m).unwrap());
    let block = |v: Value| Block::parse(&v).unwrap();
    let big = data_uri("image/jpeg", &vec![7u8; 768 * 1024]);
    let small = data_uri("image/png", &[1, 2, 3]);
    let mut request = Map::new();
    request.insert("intent".into(), "Photo of the meter".into());
    request.insert("id".into(), "meter-1".into());
    request.insert("needed_by".into(), "2026-05-02T00:00:00Z".into());
    request.insert(
        "context".into(),
        json!(["line\n---\nnext", {"image": small}]),
    );
    let kinds = vec![
        (
            member("agent"),
            EventKind::ThreadCreated(ThreadCreated {
                requestor_id: ExecutorId::parse("agent").unwrap(),
                intent: "Photo of the meter".into(),
                priority: Priority::Urgent,
                request,
            }),
        ),
        (
            member("bob"),
            EventKind::OfferPassed(MessageAdded {
                mess: vec![Block::status(&r, Status::Declined, Map::new())],
            }),
        ),
        (
            member("ann"),
            EventKind::StatusChanged(StatusChanged {
                old_status: Status::Pending,
                new_status: Status::Claimed,
                executor_id: Some(ExecutorId::parse("ann").unwrap()),
            }),
        ),
        (
            member("ann"),
            EventKind::MessageAdded(MessageAdded {
                mess: vec![Block::status(&r, Status::Claimed, Map::new())],
            }),
        ),
        (
            Actor::Exchange,
            EventKind::NotificationDelivered(mess_core::event::NotificationOutcome {
                executor_id: ExecutorId::parse("agent").unwrap(),
                channel: "ntfy".into(),
                trigger: "status_changed".into(),
                attempts: 1,
                http_status: Some(200),
                error: None,
            }),
        ),
        (
            member("ann"),
            EventKind::MessageAdded(MessageAdded {
                mess: vec![block(
                    json!({"status": {"code": "completed", "note": "only words"}}),
                )],
            }),
        ),
        (
            member("ann"),
            EventKind::StatusChanged(StatusChanged {
                old_status: Status::Claimed,
                new_status: Status::Pending,
                executor_id: None,
            }),
        ),
        (
            member("ann"),
            EventKind::MessageAdded(MessageAdded {
                mess: vec![Block::status(&r, Status::Pending, Map::new())],
            }),
        ),
        (
            member("cat"),
            EventKind::StatusChanged(StatusChanged {
                old_status: Status::Pending,
                new_status: Status::Claimed,
                executor_id: Some(ExecutorId::parse("cat").unwrap()),
            }),
        ),
        (
            member("cat"),
            EventKind::StatusChanged(StatusChanged {
                old_status: Status::Claimed,
                new_status: Status::Completed,
                executor_id: Some(ExecutorId::parse("cat").unwrap()),
            }),
        ),
        (
            member("cat"),
            EventKind::MessageAdded(MessageAdded {
                mess: vec![
                    block(json!({"status": {"code": "claimed"}})),
                    block(json!({"status": {"code": "completed"}})),
                    block(
                        json!({"response": {"content": [{"image": big}, "yes: 001", {"n": 1.5e300}]}}),
                    ),
                ],
            }),
        ),
        (
            Actor::Exchange,
            EventKind::MessageAdded(MessageAdded {
                mess: vec![block(json!({"followup": {"text": "needed_by has passed"}}))],
            }),
        ),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (actor, kind))| Event {
            event_id: format!("e{i}"),
            ts: ts(i as i64 * 60),
            exchange_id: home(),
            thread_ref: Some(r.clone()),
            actor_id: actor,
            seq: i as u64 + 1,
            pos: i as u64 + 1,
            kind,
        })
        .collect()
}

#[test]
fn a_thread_made_through_our_api_comes_back_from_its_export_unchanged() {
    let original = Store {
        events: api_thread(),
    };
    let out = tempfile::tempdir().unwrap();
    original.export(out.path(), &ExportOptions::default());
    let files = tree(out.path());
    let dir = "exchange/state=finished/2026-05-01-K7QZ";
    let att: Vec<&String> = files
        .keys()
        .filter(|k| k.starts_with(&format!("{dir}/att-")))
        .collect();
    assert_eq!(
        att.len(),
        1,
        "only the URI over 768 KiB moves out: {:?}",
        files.keys()
    );
    assert_eq!(files[att[0]], vec![7u8; 768 * 1024]);

    let mut back = Store::default();
    let report = back.import(out.path());
    assert!(
        report.skipped.is_empty() && report.notes.is_empty(),
        "{report}"
    );
    let mut want = original.threads();
    let mut got = back.threads();
    // The notification outcome is not part of MESSE-AF: only `seq` shows it was there.
    for t in want.values_mut().chain(got.values_mut()) {
        t.seq = 0;
    }
    assert_eq!(want, got);
    let moves = |s: &Store| -> Vec<_> {
        status_moves(s)
            .into_iter()
            .map(|(r, o, n, x, a, ts, _)| (r, o, n, x, a, ts))
            .collect()
    };
    assert_eq!(moves(&original), moves(&back));
    let passes = |s: &Store| {
        s.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::OfferPassed(_)))
            .count()
    };
    assert_eq!(passes(&back), 1);
    assert_eq!(
        back.events
            .iter()
            .filter(|e| e.actor_id == Actor::Exchange)
            .count(),
        1,
        "the exchange's own message stays the exchange's; no ack comes back"
    );
    let t = &got["2026-05-01-K7QZ"];
    assert_eq!(t.executor_id.as_ref().unwrap().as_str(), "cat");
    assert!(t.deadline.is_some());
    let m = messages(t);
    assert_eq!(m[0]["mess"].as_array().unwrap().len(), 1);
    assert_eq!(m[0]["mess"][0]["request"]["context"][0], "line\n---\nnext");
    let _ = BlockKind::Status;
}

/// Builds `dir/exchange/state=received/{ref}/000-{ref}.messe-af.yaml` from `text`.
fn thread_dir(root: &Path, r: &str, text: &str) -> PathBuf {
    let dir = root.join(format!("exchange/state=received/{r}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("000-{r}.messe-af.yaml")), text).unwrap();
    dir
}

fn simple(r: &str, extra: &str) -> String {
    format!(
        "ref: {r}\nrequestor: agent\nexecutor: null\nstatus: pending\ncreated: '2026-04-01T10:00:00Z'\n\
         updated: '2026-04-01T10:00:00Z'\nintent: Check {r}\npriority: normal\nhistory: []\n---\n\
         from: agent\nreceived: '2026-04-01T10:00:00Z'\nMESS:\n- request: {{intent: Check {r}}}\n{extra}"
    )
}

#[cfg(unix)]
#[test]
fn hostile_trees_are_reported_file_by_file_and_nothing_outside_is_read() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("att-secret.jpg");
    std::fs::write(&secret, b"outside DIR").unwrap();
    let r = root.path();

    // Malformed YAML, duplicate keys, not UTF-8, empty.
    thread_dir(
        r,
        "2026-04-01-BAD1",
        "ref: 2026-04-01-BAD1\nintent: [unclosed\n",
    );
    thread_dir(
        r,
        "2026-04-01-BAD2",
        "ref: 2026-04-01-BAD2\nref: 2026-04-01-BAD2\n",
    );
    let d = thread_dir(r, "2026-04-01-BAD3", "");
    std::fs::write(
        d.join("000-2026-04-01-BAD3.messe-af.yaml"),
        b"ref: \xff\xfe\n",
    )
    .unwrap();
    thread_dir(r, "2026-04-01-BAD4", "");
    // A ref that tries to climb out, in the envelope.
    thread_dir(r, "2026-04-01-BAD5", &simple("X/../../Y", ""));
    // Attachment names that climb out, a link to a file outside, and 100 MB (sparse).
    let d = thread_dir(
        r,
        "2026-04-01-ATT1",
        &simple(
            "2026-04-01-ATT1",
            "---\nfrom: bob\nreceived: '2026-04-01T10:05:00Z'\nMESS:\n- response:\n    content:\n\
             \x20   - image: {file: ../../etc/passwd, mime: image/jpeg}\n\
             \x20   - image: {file: att-../x.jpg}\n\
             \x20   - image: {file: att-secret.jpg}\n\
             \x20   - image: {file: att-huge.jpg, mime: image/jpeg}\n\
             \x20   - image: {file: att-missing.jpg}\n\
             \x20   - video: {url: 'file:///etc/passwd'}\n",
        ),
    );
    std::os::unix::fs::symlink(&secret, d.join("att-secret.jpg")).unwrap();
    let huge = std::fs::File::create(d.join("att-huge.jpg")).unwrap();
    huge.set_len(100 * 1024 * 1024).unwrap();
    std::fs::write(d.join("att-unused.png"), b"x").unwrap();
    std::fs::write(d.join("notes.txt"), b"x").unwrap();
    // A thread folder that is a link out, and a link to a v1 file.
    std::os::unix::fs::symlink(
        outside.path(),
        r.join("exchange/state=received/2026-04-01-LNK1"),
    )
    .unwrap();
    // Unknown blocks and shapes: dropped with a note, the thread still comes in.
    thread_dir(
        r,
        "2026-04-01-UNK1",
        &simple(
            "2026-04-01-UNK1",
            "---\nfrom: bob\nreceived: '2026-04-01T10:05:00Z'\nMESS:\n- config: {x: 1}\n- repyl: {}\n- just text\n\
             - {query: {q: 1}, reply: {}}\n---\nfrom: bob\nreceived: '2026-04-01T10:06:00Z'\nMESS:\n- config: {}\n\
             ---\n[1, 2]\n---\nfrom: bob\nreceived: '2026-04-01T10:07:00Z'\nMESS:\n- query: {q: why}\n",
        ),
    );
    // An inline data: URI over the limit refuses its thread.
    let inline = data_uri("image/png", &vec![0u8; 21 * 1024 * 1024]);
    thread_dir(
        r,
        "2026-04-01-BIG1",
        &simple(
            "2026-04-01-BIG1",
            &format!(
                "---\nfrom: bob\nreceived: '2026-04-01T10:05:00Z'\nMESS:\n- response: {{content: [{{image: '{inline}'}}]}}\n"
            ),
        ),
    );
    // Duplicate refs: a v1 file and a v2 folder; the later `updated` wins.
    std::fs::write(
        r.join("exchange/state=received/2026-04-01-DUP1.messe-af.yaml"),
        simple("2026-04-01-DUP1", ""),
    )
    .unwrap();
    let newer = simple("2026-04-01-DUP1", "")
        .replace("status: pending", "status: cancelled")
        .replace(
            "updated: '2026-04-01T10:00:00Z'",
            "updated: '2026-04-01T11:00:00Z'",
        );
    let d = r.join("exchange/state=canceled/2026-04-01-DUP1");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("000-2026-04-01-DUP1.messe-af.yaml"), newer).unwrap();
    // The envelope's ref is not the folder's; a future timestamp; an alias bomb.
    thread_dir(r, "2026-04-01-MIS1", &simple("2026-04-01-MIS2", ""));
    thread_dir(
        r,
        "2026-04-01-FUT1",
        &simple("2026-04-01-FUT1", "").replace("2026-04-01T10:00:00Z", "2099-01-01T00:00:00Z"),
    );
    thread_dir(
        r,
        "2026-04-01-BOM1",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
         c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
         e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
    );
    std::fs::write(r.join("exchange/2026-04-01-ZIP1.messe-af.zip"), b"PK").unwrap();

    let mut store = Store::default();
    let report = store.import(r);
    let text = report.to_string();
    let skipped = |path: &str, why: &str| {
        assert!(
            report
                .skipped
                .iter()
                .any(|n| n.path.ends_with(path) && n.message.contains(why)),
            "{path}: {why} not in\n{text}"
        );
    };
    skipped("2026-04-01-BAD1", "not valid YAML");
    skipped("2026-04-01-BAD2", "not valid YAML");
    skipped("2026-04-01-BAD3", "not UTF-8");
    skipped("2026-04-01-BAD4", "no YAML document");
    skipped("2026-04-01-BAD5", "is not its file or folder name");
    skipped("2026-04-01-BIG1", "over the 20971520-byte attachment limit");
    skipped("2026-04-01-LNK1", "symbolic link");
    skipped("2026-04-01-ATT1/att-secret.jpg", "symbolic link");
    skipped("2026-04-01-ATT1/notes.txt", "ignored");
    skipped(
        "2026-04-01-DUP1.messe-af.yaml",
        "another copy of 2026-04-01-DUP1 was kept",
    );
    skipped("2026-04-01-MIS1", "is not its file or folder name");
    skipped("2026-04-01-FUT1", "in the future");
    skipped("2026-04-01-BOM1", "not valid YAML");
    skipped("2026-04-01-ZIP1.messe-af.zip", "zip archive");
    let noted = |path: &str, why: &str| {
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.path.ends_with(path) && n.message.contains(why)),
            "{path}: {why} not in\n{text}"
        );
    };
    noted("2026-04-01-ATT1", "\"../../etc/passwd\" not read");
    noted("2026-04-01-ATT1", "\"att-../x.jpg\" not read");
    noted(
        "2026-04-01-ATT1",
        "att-secret.jpg not imported: no such file",
    );
    noted(
        "2026-04-01-ATT1",
        "att-huge.jpg not imported: 104857600 bytes, over the",
    );
    noted("2026-04-01-ATT1", "att-missing.jpg not imported");
    noted("2026-04-01-ATT1/att-unused.png", "no message names");
    noted("2026-04-01-UNK1", "unknown block \"config\"");
    noted("2026-04-01-UNK1", "unknown block \"repyl\"");
    noted("2026-04-01-UNK1", "not a one-key map");
    noted("2026-04-01-UNK1", "document 3: no block left");
    noted("2026-04-01-UNK1", "document 4: no block left");
    noted("2026-04-01-UNK1", "document 5: not a map");

    let threads = store.threads();
    assert_eq!(
        threads.keys().collect::<Vec<_>>(),
        ["2026-04-01-ATT1", "2026-04-01-DUP1", "2026-04-01-UNK1"],
        "{text}"
    );
    assert_eq!(threads["2026-04-01-DUP1"].status, Status::Cancelled);
    let att = messages(&threads["2026-04-01-ATT1"]);
    let content = att[1]["mess"][0]["response"]["content"].to_string();
    assert!(!content.contains("data:"), "nothing was inlined: {content}");
    assert!(
        content.contains("file:///etc/passwd"),
        "URLs stay as they are"
    );
    let unk = messages(&threads["2026-04-01-UNK1"]);
    assert_eq!(unk.len(), 2);
    assert_eq!(unk[1]["mess"], json!([{"query": {"q": "why"}}]));
}
