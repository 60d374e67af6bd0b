//! One behavioural suite, run against every backend: `ObjectStorage` on `InMemory`,
//! `FsStorage` in a temp dir, and `ObjectStorage` on a real S3 server (moto, when
//! `MESS_TEST_S3_ENDPOINT` is set). Plus `open()`'s errors and the DuckDB contract.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use common::*;
use futures::TryStreamExt;
use mess_core::{Event, EventKind, Status, Storage, StorageError};
use mess_storage::{FsStorage, ObjectStorage, OpenError, StorageConfig, StorageKind};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// A backing store that can be opened again, as a restarted process would.
enum Backend {
    Memory(Arc<InMemory>),
    Fs(tempfile::TempDir),
    S3 {
        config: StorageConfig,
        raw: Arc<dyn ObjectStore>,
    },
}

/// Decides whether an external-service case runs: set → run; unset in CI → fail; else skip.
fn required_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => panic!("{var} is not set: {what} must run in CI"),
        _ => {
            println!("{var} is not set: skipped the {what} cases");
            None
        }
    }
}

fn s3_vars(endpoint: &str, bucket: &str) -> StorageConfig {
    let vars: BTreeMap<&str, String> = [
        ("STORAGE_TYPE", "s3".to_owned()),
        ("S3_ENDPOINT", endpoint.to_owned()),
        ("S3_BUCKET", bucket.to_owned()),
        ("S3_ACCESS_KEY", "test".to_owned()),
        ("S3_SECRET_KEY", "test".to_owned()),
    ]
    .into_iter()
    .collect();
    StorageConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

/// `PUT /{bucket}` on a plain-HTTP S3 endpoint (moto accepts it unsigned).
fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).expect("connect to MESS_TEST_S3_ENDPOINT");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {answer}"
    );
}

impl Backend {
    fn memory() -> Self {
        Backend::Memory(Arc::new(InMemory::new()))
    }

    fn fs() -> Self {
        Backend::Fs(tempfile::tempdir().unwrap())
    }

    /// A fresh bucket on the S3 server, or `None` when the S3 cases are skipped.
    fn s3() -> Option<Self> {
        let endpoint = required_env("MESS_TEST_S3_ENDPOINT", "S3 (moto)")?;
        let bucket = format!("mess-{}", uuid::Uuid::new_v4().simple());
        create_bucket(&endpoint, &bucket);
        let raw = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&bucket)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .unwrap();
        Some(Backend::S3 {
            config: s3_vars(&endpoint, &bucket),
            raw: Arc::new(raw),
        })
    }

    /// A new storage over the same backing store (a restart).
    async fn open(&self) -> Arc<dyn Storage> {
        match self {
            Backend::Memory(m) => Arc::new(ObjectStorage::new(m.clone(), StorageKind::Memory)),
            Backend::Fs(dir) => Arc::new(FsStorage::new(dir.path()).unwrap()),
            Backend::S3 { config, .. } => mess_storage::open(config).await.unwrap(),
        }
    }

    fn raw(&self) -> Option<Arc<dyn ObjectStore>> {
        match self {
            Backend::Memory(m) => Some(m.clone()),
            Backend::Fs(_) => None,
            Backend::S3 { raw, .. } => Some(raw.clone()),
        }
    }

    /// Writes a file by hand, as an operator or a crashed process would have left it.
    async fn put_raw(&self, path: &str, bytes: &[u8]) {
        match (self, self.raw()) {
            (Backend::Fs(dir), _) => {
                let p = dir.path().join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
            (_, Some(raw)) => {
                raw.put(&ObjectPath::from(path), PutPayload::from(bytes.to_vec()))
                    .await
                    .unwrap();
            }
            _ => unreachable!(),
        }
    }

    /// Every file under `events/`, by path relative to the root.
    async fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        match (self, self.raw()) {
            (Backend::Fs(dir), _) => {
                let mut dirs = vec![dir.path().join("events")];
                while let Some(d) = dirs.pop() {
                    for entry in std::fs::read_dir(d).unwrap() {
                        let p = entry.unwrap().path();
                        if p.is_dir() {
                            dirs.push(p);
                        } else {
                            let rel = p.strip_prefix(dir.path()).unwrap().to_str().unwrap();
                            out.insert(rel.to_owned(), std::fs::read(&p).unwrap());
                        }
                    }
                }
            }
            (_, Some(raw)) => {
                let metas: Vec<_> = raw
                    .list(Some(&ObjectPath::from("events")))
                    .try_collect()
                    .await
                    .unwrap();
                for m in metas {
                    let bytes = raw.get(&m.location).await.unwrap().bytes().await.unwrap();
                    out.insert(m.location.to_string(), bytes.to_vec());
                }
            }
            _ => unreachable!(),
        }
        out
    }
}

fn ids(events: &[Event]) -> HashSet<&str> {
    events.iter().map(|e| e.event_id.as_str()).collect()
}

/// Every line of every file our code wrote is whole: it ends with a newline and parses.
fn assert_all_lines_whole(files: &BTreeMap<String, Vec<u8>>) {
    for (path, bytes) in files {
        assert!(bytes.ends_with(b"\n"), "{path} does not end with a newline");
        for line in std::str::from_utf8(bytes).unwrap().lines() {
            Event::from_line(line).unwrap_or_else(|e| panic!("{path}: {e}: {line}"));
        }
    }
}

// ---- the suite ----

async fn round_trip_of_every_event_type(b: Backend) {
    let s = b.open().await;
    let home = exchange("home");
    let mut events = every_kind(&home, &thread("XY1Z"), T0);
    // The same again on the next UTC day, and on another exchange: three segments.
    events.extend(every_kind(&home, &thread("NEXT"), T0 + 86_400_000));
    events.extend(every_kind(&exchange("office"), &thread("OFF1"), T0 + 10));
    events.sort_by_key(|e| e.ts);
    s.append(&events[..5]).await.unwrap();
    s.append(&events[5..]).await.unwrap();

    let loaded = b.open().await.load().await.unwrap();
    assert_eq!(loaded.skipped_lines, 0);
    assert_eq!(loaded.events, events);
    let files = b.files().await;
    assert!(
        files
            .keys()
            .any(|p| p.starts_with("events/exchange=home/2026/02/01/"))
    );
    assert!(
        files
            .keys()
            .any(|p| p.starts_with("events/exchange=home/2026/02/02/"))
    );
    assert!(
        files
            .keys()
            .any(|p| p.starts_with("events/exchange=office/2026/02/01/"))
    );
    assert!(
        files.keys().all(|p| p.ends_with(".jsonl")),
        "{:?}",
        files.keys()
    );
    assert_all_lines_whole(&files);
}

async fn concurrent_appends_are_all_acknowledged_and_replayed_whole(b: Backend) {
    let s = b.open().await;
    let home = exchange("home");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = Arc::clone(&s);
            let t = thread(&format!("T{i:03}"));
            let batch = vec![
                event(&home, Some(&t), 1, T0 + i, thread_created()),
                event(
                    &home,
                    Some(&t),
                    2,
                    T0 + i,
                    status_changed(Status::Pending, Status::Claimed),
                ),
            ];
            tokio::spawn(async move { s.append(&batch).await.map(|()| batch) })
        })
        .collect();
    let mut written = Vec::new();
    for t in tasks {
        written.extend(t.await.unwrap().unwrap());
    }
    let loaded = b.open().await.load().await.unwrap();
    assert_eq!(loaded.skipped_lines, 0);
    assert_eq!(loaded.events.len(), 128);
    assert_eq!(ids(&loaded.events), ids(&written));
    // Each thread's events come back in seq order.
    let mut last = BTreeMap::new();
    for e in &loaded.events {
        let prev = last.insert(e.thread_ref.clone(), e.seq).unwrap_or(0);
        assert!(prev < e.seq);
    }
    let files = b.files().await;
    assert_all_lines_whole(&files);
    // Each call's lines are contiguous and in order in whatever file holds them.
    let text: String = files
        .values()
        .map(|v| String::from_utf8(v.clone()).unwrap())
        .collect();
    let lines: Vec<Event> = text.lines().map(|l| Event::from_line(l).unwrap()).collect();
    for pair in written.chunks(2) {
        let at = lines
            .iter()
            .position(|e| e.event_id == pair[0].event_id)
            .unwrap();
        assert_eq!(lines[at + 1].event_id, pair[1].event_id);
    }
}

async fn racing_registrations_have_exactly_one_winner(b: Backend) {
    let s = b.open().await;
    let home = exchange("home");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = Arc::clone(&s);
            let m = member(&home, "my-phone", &format!("phone {i}"));
            tokio::spawn(async move { s.create_member(&m).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StorageError::AlreadyExists) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    let loaded = b.open().await.load().await.unwrap();
    assert_eq!(loaded.members.len(), 1);
    // A second process racing the first one loses too.
    let other = b.open().await;
    assert_eq!(
        other
            .create_member(&member(&home, "my-phone", "late"))
            .await,
        Err(StorageError::AlreadyExists)
    );
}

async fn a_replaced_member_is_what_replay_sees(b: Backend) {
    let s = b.open().await;
    let home = exchange("home");
    let office = exchange("office");
    s.create_member(&member(&home, "my-phone", "old"))
        .await
        .unwrap();
    s.create_member(&member(&office, "my-phone", "office phone"))
        .await
        .unwrap();
    let mut m = member(&home, "my-phone", "new name");
    m.capabilities.push("location:indoor".into());
    s.replace_member(&m).await.unwrap();

    let loaded = b.open().await.load().await.unwrap();
    assert_eq!(loaded.members.len(), 2);
    let got = loaded
        .members
        .iter()
        .find(|x| x.exchange_id == home)
        .unwrap();
    assert_eq!(got, &m);
    assert!(
        loaded
            .members
            .iter()
            .any(|x| x.display_name == "office phone")
    );
}

async fn a_torn_last_line_is_skipped_and_never_glued_to(b: Backend) {
    let home = exchange("home");
    let t = thread("TORN");
    let good = [
        event(&home, Some(&t), 1, T0, thread_created()),
        event(
            &home,
            Some(&t),
            2,
            T0 + 1,
            status_changed(Status::Pending, Status::Claimed),
        ),
    ];
    let third = event(&home, Some(&t), 3, T0 + 2, message_added()).to_line();
    let torn_path = "events/exchange=home/2026/02/01/0000-crashed.jsonl";
    let torn = format!(
        "{}\n{}\n{}",
        good[0].to_line(),
        good[1].to_line(),
        &third[..third.len() / 2]
    );
    b.put_raw(torn_path, torn.as_bytes()).await;

    let s = b.open().await;
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded.skipped_lines, 1);
    assert_eq!(loaded.events, good);

    let next = event(&home, Some(&t), 3, T0 + 3, message_added());
    s.append(std::slice::from_ref(&next)).await.unwrap();
    let files = b.files().await;
    // Object stores keep the torn object as it is; the filesystem cuts the partial line
    // off at start-up (DuckDB reads only whole lines). Either way nothing is glued on.
    let cut = format!("{}\n{}\n", good[0].to_line(), good[1].to_line());
    let was_cut = files[torn_path] == cut.as_bytes();
    assert!(
        was_cut || files[torn_path] == torn.as_bytes(),
        "the torn segment was written to"
    );
    let holder: Vec<_> = files
        .iter()
        .filter(|(_, v)| String::from_utf8_lossy(v).contains(&next.event_id))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(holder.len(), 1);
    assert_ne!(holder[0], torn_path);

    let loaded = b.open().await.load().await.unwrap();
    assert_eq!(loaded.skipped_lines, usize::from(!was_cut));
    assert_eq!(loaded.events, [good[0].clone(), good[1].clone(), next]);
}

async fn foreign_files_are_ignored_and_junk_lines_counted(b: Backend) {
    let s = b.open().await;
    let home = exchange("home");
    let events = every_kind(&home, &thread("FRGN"), T0);
    s.append(&events).await.unwrap();
    let day = "events/exchange=home/2026/02/01";
    b.put_raw("events/README.txt", b"not an event").await;
    b.put_raw("events/x.json", b"{}").await;
    b.put_raw("events/junk.jsonl", b"outside any exchange= directory\n")
        .await;
    b.put_raw(&format!("{day}/x.json"), b"{\"a\": 1}\n").await;
    b.put_raw(&format!("{day}/notes.jsonl.bak"), b"junk\n")
        .await;
    b.put_raw(
        &format!("{day}/junk.jsonl"),
        b"hello\n{\"event_id\": 5}\n\n",
    )
    .await;

    let loaded = b.open().await.load().await.unwrap();
    assert_eq!(loaded.skipped_lines, 2);
    assert_eq!(loaded.events, events);
}

/// Start-up's `replay` gives the exchanges that `load` and the fold (as the server did it
/// before `replay`) give: also for a thread whose events are split over segments read in
/// another order, a clock that stepped back, an exchange with only members, and junk.
async fn replay_folds_exactly_what_load_returns(b: Backend) {
    let s = b.open().await;
    let (home, work) = (exchange("home"), exchange("work"));
    s.create_member(&member(&home, "my-phone", "My Phone"))
        .await
        .unwrap();
    s.create_member(&member(&exchange("idle"), "lonely", "Lonely"))
        .await
        .unwrap();
    let mut events = Vec::new();
    for i in 0..12 {
        let t = thread(&format!("RPL{i:02}"));
        let x = if i % 3 == 0 { &work } else { &home };
        events.push(event(x, Some(&t), 1, T0 + i, thread_created()));
        let steps = [
            status_changed(Status::Pending, Status::Claimed),
            message_added(),
            status_changed(Status::Claimed, Status::NeedsConfirmation),
            message_added(),
        ];
        for (n, kind) in steps.into_iter().take((i % 5) as usize).enumerate() {
            // Thread 4's clock steps back (its later events have earlier times).
            let ts = if i == 4 {
                T0 - 1000 * n as i64
            } else {
                T0 + 100 + i + n as i64
            };
            events.push(event(x, Some(&t), n as u64 + 2, ts, kind));
        }
        events.push(event(
            x,
            None,
            0,
            T0 + 50,
            EventKind::ExecutorUpdated(snapshot("a")),
        ));
    }
    s.append(&events).await.unwrap();
    // Another process's segment, named to be read first, holds later events of RPL01 (and
    // the day before, events of RPL02 written by a clock that was a day behind).
    let late = [
        event(&home, Some(&thread("RPL01")), 3, T0 + 900, message_added()),
        event(
            &home,
            Some(&thread("RPL01")),
            4,
            T0 + 901,
            status_changed(Status::Claimed, Status::Completed),
        ),
    ];
    let behind = [event(
        &home,
        Some(&thread("RPL02")),
        4,
        T0 - 86_400_000,
        message_added(),
    )];
    let lines = |es: &[Event]| es.iter().map(|e| e.to_line() + "\n").collect::<String>();
    b.put_raw(
        "events/exchange=home/2026/02/01/00000000-0000-4000-8000-000000000000.jsonl",
        lines(&late).as_bytes(),
    )
    .await;
    b.put_raw(
        "events/exchange=home/2026/01/31/00000000-0000-4000-8000-000000000000.jsonl",
        (lines(&behind) + "torn {\"event_id\n").as_bytes(),
    )
    .await;

    let loaded = b.open().await.load().await.unwrap();
    let mut want: std::collections::HashMap<_, _> = std::collections::HashMap::new();
    for m in loaded.members {
        want.entry(m.exchange_id.clone())
            .or_insert_with(|| mess_core::Exchange::new(m.exchange_id.clone()))
            .put_member(Arc::new(m));
    }
    let mut by_exchange: std::collections::HashMap<_, Vec<&Event>> = Default::default();
    for e in &loaded.events {
        by_exchange.entry(&e.exchange_id).or_default().push(e);
    }
    for (id, list) in by_exchange {
        want.entry(id.clone())
            .or_insert_with(|| mess_core::Exchange::new(id.clone()))
            .apply_all(list);
    }

    let got = b.open().await.replay().await.unwrap();
    assert_eq!(got.events, loaded.events.len());
    assert_eq!(got.skipped_lines, loaded.skipped_lines);
    assert_eq!(got.skipped_lines, 1);
    let mut ids: Vec<_> = got.exchanges.keys().map(|x| x.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["home", "idle", "work"]);
    assert_eq!(got.exchanges.len(), want.len());
    for (id, x) in &got.exchanges {
        let w = &want[id];
        let (ours, _) = x.list(None, None, usize::MAX);
        let (theirs, _) = w.list(None, None, usize::MAX);
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
        assert_eq!(ours, theirs);
        let mut a: Vec<_> = x.members().map(|m| m.executor_id.clone()).collect();
        let mut b: Vec<_> = w.members().map(|m| m.executor_id.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
    let t = got.exchanges[&home].thread(&thread("RPL01")).unwrap();
    assert_eq!(t.status, Status::Completed);
    assert_eq!(t.messages.len(), 2);
}

async fn blobs_are_kept_once_by_hash_and_read_back(b: Backend) {
    let s = b.open().await;
    let home = exchange("home");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let sha = mess_core::blob::sha256_hex(&bytes);
    s.put_blob(&home, &sha, &bytes).await.unwrap();
    // The same bytes again (a retry, or a second message with the same photo): fine.
    s.put_blob(&home, &sha, &bytes).await.unwrap();
    let other = mess_core::blob::sha256_hex(b"other");
    s.put_blob(&home, &other, b"other").await.unwrap();

    let reopened = b.open().await;
    assert_eq!(reopened.get_blob(&home, &sha).await.unwrap(), Some(bytes));
    assert_eq!(
        reopened.get_blob(&home, &other).await.unwrap().as_deref(),
        Some(&b"other"[..])
    );
    assert_eq!(
        reopened.get_blob(&exchange("office"), &sha).await.unwrap(),
        None,
        "per exchange"
    );
    assert_eq!(
        reopened.get_blob(&home, &"0".repeat(64)).await.unwrap(),
        None
    );
    // Blobs are not events: replay neither reads nor counts them.
    let loaded = reopened.load().await.unwrap();
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.skipped_lines, 0);
}

/// Runs every case of the suite on one backend kind.
macro_rules! suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(b) = super::backend(stringify!($backend)) else { return };
                    super::$case(b).await;
                }
            )*
        }
    };
}

fn backend(kind: &str) -> Option<Backend> {
    match kind {
        "memory" => Some(Backend::memory()),
        "fs" => Some(Backend::fs()),
        "s3" => Backend::s3(),
        _ => unreachable!(),
    }
}

macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        suite!(memory: $($case),*);
        suite!(fs: $($case),*);
        suite!(s3: $($case),*);
    };
}

every_backend!(
    round_trip_of_every_event_type,
    concurrent_appends_are_all_acknowledged_and_replayed_whole,
    racing_registrations_have_exactly_one_winner,
    a_replaced_member_is_what_replay_sees,
    a_torn_last_line_is_skipped_and_never_glued_to,
    foreign_files_are_ignored_and_junk_lines_counted,
    replay_folds_exactly_what_load_returns,
    blobs_are_kept_once_by_hash_and_read_back,
);

// ---- replicas: leases, fencing, seals (object stores: memory and moto) ----

/// Every event id a single-process replay of `store` reads.
async fn replayed_ids(store: &Arc<dyn ObjectStore>) -> HashSet<String> {
    let loaded = ObjectStorage::new(store.clone(), StorageKind::Memory)
        .load()
        .await
        .unwrap();
    loaded.events.iter().map(|e| e.event_id.clone()).collect()
}

/// Every key under `prefix`.
async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    store
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// Two replicas on one store: the first takes a free exchange and the second is sent to
/// it; only the holder writes; a holder that stops renewing stops acknowledging before
/// the other may take over; the new owner seals the old epoch, so a write of it landing
/// late is never replayed and is moved out of `events/`; a lease given back is taken at
/// once.
async fn a_lease_fences_a_deposed_owner(b: Backend) {
    use mess_core::{Located, Ownership};
    use mess_storage::Replicas;
    use std::time::{Duration, Instant};
    let Some(store) = b.raw() else { return };
    let period = Duration::from_millis(800);
    let home = exchange("home");
    let a = Replicas::new(store.clone(), "http://a".into(), period);
    let c = Replicas::new(store.clone(), "http://c".into(), period);
    assert!(matches!(a.locate(&home).await.unwrap(), Located::Taken(_)));
    assert!(matches!(c.locate(&home).await.unwrap(), Located::There(u) if u == "http://a"));

    let t = thread("LEAS");
    let first = event(&home, Some(&t), 1, T0, thread_created());
    a.storage()
        .append(std::slice::from_ref(&first))
        .await
        .unwrap();
    let refused = event(&home, Some(&t), 2, T0 + 1, message_added());
    assert!(
        c.storage().append(&[refused]).await.is_err(),
        "no lease, no write"
    );

    // Renewed, the lease stays a's for longer than a period.
    let until = Instant::now() + period * 3 / 2;
    while Instant::now() < until {
        tokio::time::sleep(period / 4).await;
        assert_eq!(a.renew().await, Vec::<mess_core::ExchangeId>::new());
        assert!(matches!(c.locate(&home).await.unwrap(), Located::There(_)));
    }

    // a stops renewing (paused): it stops acknowledging first...
    tokio::time::sleep(period).await;
    assert!(!a.holds(&home));
    let late = event(&home, Some(&t), 2, T0 + 2, message_added());
    assert!(
        a.storage().append(&[late]).await.is_err(),
        "a lapsed lease acknowledges nothing"
    );
    // ... and c takes over within a period of seeing the lease unchanged.
    let started = Instant::now();
    let taken = loop {
        match c.locate(&home).await.unwrap() {
            Located::Taken(t) => break t,
            Located::There(_) => {
                assert!(started.elapsed() < period * 3, "c never took over");
                tokio::time::sleep(period / 8).await;
            }
            Located::Here | Located::Idle => panic!("c cannot hold what it never took"),
        }
    };
    assert_eq!(
        taken.events, 1,
        "the new owner reads what the old one acknowledged"
    );
    assert_eq!(
        a.renew().await,
        vec![home.clone()],
        "a learns it lost the lease"
    );

    // A PUT of epoch 1 landing now (sent before the pause) never counts.
    let stray = event(&home, Some(&t), 3, T0 + 3, message_added());
    let stray_path = format!(
        "events/exchange=home/2026/02/01/{}",
        mess_storage::lease::segment_name(1, 2)
    );
    store
        .put(
            &ObjectPath::from(stray_path.as_str()),
            PutPayload::from(format!("{}\n", stray.to_line())),
        )
        .await
        .unwrap();
    let second = event(&home, Some(&t), 2, T0 + 4, message_added());
    c.storage()
        .append(std::slice::from_ref(&second))
        .await
        .unwrap();
    let ids = replayed_ids(&store).await;
    assert_eq!(
        ids,
        [first.event_id.clone(), second.event_id.clone()]
            .into_iter()
            .collect()
    );

    // Given back, the lease is taken at once; the stray is moved to fenced/.
    c.release_all().await;
    assert!(!c.holds(&home));
    let a2 = Replicas::new(store.clone(), "http://a".into(), period);
    let Located::Taken(taken) = a2.locate(&home).await.unwrap() else {
        panic!("a lease given back is free");
    };
    assert_eq!(taken.events, 2);
    assert!(!keys(&store, "events").await.contains(&stray_path));
    let fenced = stray_path.replacen("events/", "fenced/", 1);
    assert!(keys(&store, "fenced").await.contains(&fenced));
    let seals = keys(&store, "leases").await;
    assert!(
        seals.iter().any(|k| k.ends_with("seal-0000000001.json")),
        "{seals:?}"
    );
    assert!(
        seals.iter().any(|k| k.ends_with("seal-0000000002.json")),
        "{seals:?}"
    );

    // Given back idle, an exchange is left by the sweep until its next timer is near, and
    // taken by a request at once.
    let now = mess_core::Clock::now(&mess_core::SystemClock).unix_millis();
    let at = |ms: i64| Some(mess_core::Timestamp::from_unix_millis(now + ms));
    a2.release(&home, at(3_600_000)).await;
    let soon = Duration::from_secs(60);
    let d = Replicas::new(store.clone(), "http://d".into(), period);
    assert!(matches!(
        d.locate_due(&home, soon).await.unwrap(),
        Located::Idle
    ));
    assert!(matches!(d.locate(&home).await.unwrap(), Located::Taken(_)));
    d.release(&home, at(1_000)).await;
    assert!(matches!(
        a2.locate_due(&home, soon).await.unwrap(),
        Located::Taken(_)
    ));
    a2.release(&home, None).await;
    assert!(matches!(
        d.locate_due(&home, soon).await.unwrap(),
        Located::Idle
    ));
}

/// An operator command holds an exchange's lease while it works: it waits for a replica
/// serving it, reads what counts, writes under its own epoch (segments named by it), sends
/// replicas' requests nowhere meanwhile, and gives the exchange back due at once.
async fn an_operator_command_holds_the_lease_while_it_works(b: Backend) {
    use mess_core::{Located, Ownership};
    use mess_storage::{Hold, HoldError, Replicas};
    use std::time::Duration;
    let Some(store) = b.raw() else { return };
    let period = Duration::from_millis(800);
    let home = exchange("home");
    let missing = Hold::take(store.clone(), &exchange("nope"), period, Duration::ZERO).await;
    assert!(
        matches!(&missing, Err(HoldError::NoExchange(x)) if x.as_str() == "nope"),
        "{missing:?}"
    );

    let a = Replicas::new(store.clone(), "http://a".into(), period);
    assert!(matches!(a.locate(&home).await.unwrap(), Located::Taken(_)));
    let t = thread("HOLD");
    let first = event(&home, Some(&t), 1, T0, thread_created());
    a.storage()
        .append(std::slice::from_ref(&first))
        .await
        .unwrap();
    // A live replica keeps it: the command says who, after waiting.
    let served = Hold::take(store.clone(), &home, period, period / 2).await;
    match served {
        Err(HoldError::Served { url, .. }) => assert_eq!(url, "http://a"),
        other => panic!("the replica serves it: {other:?}"),
    }

    a.release(&home, None).await;
    let (hold, taken) = Hold::take(store.clone(), &home, period, period)
        .await
        .expect("given back, it is free");
    assert_eq!(taken.events, 1, "the command reads what was acknowledged");
    assert_eq!(hold.epoch(), 2);
    // Replicas find it held by nobody they can forward to, longer than a period.
    let c = Replicas::new(store.clone(), "http://c".into(), period);
    tokio::time::sleep(period * 3 / 2).await;
    assert!(hold.holds(), "renewed in the background");
    assert!(matches!(c.locate(&home).await.unwrap(), Located::There(u) if u.is_empty()));
    let again = Hold::take(store.clone(), &home, period, Duration::ZERO).await;
    assert!(
        matches!(again, Err(HoldError::Operator { .. })),
        "{again:?}"
    );
    // Its writes are its epoch's; a stray of epoch 1 does not count.
    let name = hold.segment_name().expect("held");
    assert_eq!(mess_storage::lease::segment_epoch(&name), Some((2, 1)));
    assert!(!hold.counts(&format!(
        "events/exchange=home/2026/02/01/{}",
        mess_storage::lease::segment_name(1, 9)
    )));
    let second = event(&home, Some(&t), 2, T0 + 1, message_added());
    hold.storage()
        .append(std::slice::from_ref(&second))
        .await
        .unwrap();

    // Given back with its timers due now: a replica's sweep takes it, with both events.
    hold.release().await;
    tokio::time::sleep(period / 4).await; // c's last look at the lease goes stale
    match c.locate_due(&home, Duration::from_secs(1)).await.unwrap() {
        Located::Taken(t) => assert_eq!(t.events, 2),
        other => panic!("a replica's sweep takes it back: {other:?}"),
    }
    assert_eq!(
        replayed_ids(&store).await,
        [first.event_id, second.event_id].into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_command_holds_the_lease_in_memory() {
    an_operator_command_holds_the_lease_while_it_works(Backend::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_command_holds_the_lease_on_s3() {
    let Some(b) = Backend::s3() else { return };
    an_operator_command_holds_the_lease_while_it_works(b).await;
}

/// An owner merges each run of its batches into one object that replay reads instead (the
/// segments stay for DuckDB); a run the epoch's seal does not wholly count is never read.
async fn an_owner_merges_its_batches_for_replay(b: Backend) {
    use mess_core::{Located, Ownership};
    use mess_storage::Replicas;
    use std::time::{Duration, Instant};
    let Some(store) = b.raw() else { return };
    let period = Duration::from_secs(5);
    let home = exchange("home");
    let a = Replicas::new(store.clone(), "http://a".into(), period);
    assert!(matches!(a.locate(&home).await.unwrap(), Located::Taken(_)));
    let t = thread("MERG");
    let mut ids = HashSet::new();
    for n in 0..140u64 {
        let kind = if n == 0 {
            thread_created()
        } else {
            message_added()
        };
        let e = event(&home, Some(&t), n + 1, T0 + n as i64, kind);
        ids.insert(e.event_id.clone());
        a.storage().append(std::slice::from_ref(&e)).await.unwrap();
    }
    let started = Instant::now();
    let run = |first: u32, last: u32| {
        format!("merged/exchange=home/2026/02/01/0000000001-{first:010}-{last:010}.jsonl")
    };
    let every_32: Vec<String> = [(1, 32), (33, 64), (65, 96), (97, 128)]
        .into_iter()
        .map(|(f, l)| run(f, l))
        .collect();
    let runs = loop {
        let mut runs = keys(&store, "merged").await;
        runs.sort();
        if runs.len() >= every_32.len() || started.elapsed() > Duration::from_secs(20) {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(runs, every_32, "a run of every 32 batches");
    assert_eq!(keys(&store, "events").await.len(), 140, "the segments stay");
    // The run is read in place of its segments: one of them gone changes nothing.
    let covered = keys(&store, "events")
        .await
        .into_iter()
        .find(|k| mess_storage::lease::segment_epoch(k) == Some((1, 7)))
        .unwrap();
    let covered = ObjectPath::from(covered.as_str());
    let kept = store.get(&covered).await.unwrap().bytes().await.unwrap();
    store.delete(&covered).await.unwrap();
    assert_eq!(replayed_ids(&store).await, ids);
    store.put(&covered, PutPayload::from(kept)).await.unwrap();

    // Given back, the rest is merged first; the next owner seals epoch 1 through batch
    // 140, and a run reaching past it is not read.
    a.release_all().await;
    assert!(keys(&store, "merged").await.contains(&run(129, 140)));
    let bogus = event(&home, Some(&t), 500, T0 + 500, message_added());
    let c = Replicas::new(store.clone(), "http://c".into(), period);
    let Located::Taken(taken) = c.locate(&home).await.unwrap() else {
        panic!("given back, it is free");
    };
    assert_eq!(taken.events, 140);
    let past = mess_storage::lease::merged_path("events/exchange=home/2026/02/01", 1, 139, 141);
    store
        .put(
            &ObjectPath::from(past.as_str()),
            PutPayload::from(format!("{}\n", bogus.to_line())),
        )
        .await
        .unwrap();
    assert_eq!(
        replayed_ids(&store).await,
        ids,
        "a run the seal does not count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_merges_its_batches_for_replay_in_memory() {
    an_owner_merges_its_batches_for_replay(Backend::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_merges_its_batches_for_replay_on_s3() {
    let Some(b) = Backend::s3() else { return };
    an_owner_merges_its_batches_for_replay(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_fences_a_deposed_owner_in_memory() {
    a_lease_fences_a_deposed_owner(Backend::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_fences_a_deposed_owner_on_s3() {
    let Some(b) = Backend::s3() else { return };
    a_lease_fences_a_deposed_owner(b).await;
}

// ---- filesystem specifics ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_keeps_one_segment_per_exchange_day_and_a_restart_opens_a_new_one() {
    let b = Backend::fs();
    let home = exchange("home");
    let s = b.open().await;
    for i in 0..10 {
        s.append(&[event(
            &home,
            None,
            0,
            T0 + i,
            EventKind::ExecutorUpdated(snapshot("a")),
        )])
        .await
        .unwrap();
    }
    assert_eq!(b.files().await.len(), 1);
    let s = b.open().await;
    s.append(&[event(
        &home,
        None,
        0,
        T0 + 20,
        EventKind::ExecutorUpdated(snapshot("a")),
    )])
    .await
    .unwrap();
    let files = b.files().await;
    assert_eq!(files.len(), 2);
    assert_eq!(
        files
            .values()
            .map(|f| f.iter().filter(|&&c| c == b'\n').count())
            .sum::<usize>(),
        11
    );
    assert_all_lines_whole(&files);
    assert_eq!(s.kind(), StorageKind::Filesystem);
    s.check().await.unwrap();
}

#[tokio::test]
async fn check_fails_when_the_data_directory_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::new(dir.path().join("data")).unwrap();
    std::fs::remove_dir(dir.path().join("data")).unwrap();
    let e = s.check().await.unwrap_err();
    assert!(matches!(e, StorageError::Unavailable(_)), "{e}");
    assert!(!e.to_string().contains(dir.path().to_str().unwrap()), "{e}");
}

// ---- open() ----

fn open_config(vars: &[(&str, &str)]) -> StorageConfig {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    StorageConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

async fn open_error(config: &StorageConfig) -> String {
    let e: OpenError = mess_storage::open(config)
        .await
        .err()
        .expect("open must fail");
    let msg = e.to_string();
    println!("open error: {msg}");
    assert!(!msg.contains('\n'), "{msg:?}");
    assert!(!msg.contains("s3cret"), "{msg:?}");
    msg
}

#[tokio::test]
async fn open_names_a_missing_bucket_setting() {
    let c = open_config(&[
        ("STORAGE_TYPE", "s3"),
        ("S3_ENDPOINT", "http://127.0.0.1:1"),
        ("S3_ACCESS_KEY", "test"),
        ("S3_SECRET_KEY", "s3cret"),
    ]);
    assert_eq!(open_error(&c).await, "S3_BUCKET is not set");
}

#[tokio::test]
async fn open_fails_fast_and_names_an_endpoint_where_nothing_listens() {
    let c = open_config(&[
        ("STORAGE_TYPE", "s3"),
        ("S3_ENDPOINT", "http://127.0.0.1:1"),
        ("S3_BUCKET", "mess"),
        ("S3_ACCESS_KEY", "test"),
        ("S3_SECRET_KEY", "s3cret"),
    ]);
    let started = std::time::Instant::now();
    let msg = open_error(&c).await;
    assert!(
        msg.starts_with("cannot reach S3_ENDPOINT http://127.0.0.1:1: "),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn open_names_a_bucket_that_does_not_exist() {
    let Some(endpoint) = required_env("MESS_TEST_S3_ENDPOINT", "S3 (moto)") else {
        return;
    };
    let c = s3_vars(&endpoint, "no-such-bucket-here");
    assert_eq!(
        open_error(&c).await,
        r#"bucket "no-such-bucket-here" (S3_BUCKET) does not exist"#
    );
}

#[tokio::test]
async fn open_reports_an_unusable_storage_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let c = open_config(&[("STORAGE_PATH", file.join("data").to_str().unwrap())]);
    assert!(open_error(&c).await.starts_with("STORAGE_PATH "));
    let c = open_config(&[("STORAGE_PATH", dir.path().join("data").to_str().unwrap())]);
    let s = mess_storage::open(&c).await.unwrap();
    assert_eq!(s.kind(), StorageKind::Filesystem);
}

#[tokio::test]
async fn open_gives_an_s3_storage_that_reports_its_kind() {
    let Some(Backend::S3 { config, .. }) = Backend::s3() else {
        return;
    };
    let s = mess_storage::open(&config).await.unwrap();
    assert_eq!(s.kind(), StorageKind::S3);
    s.check().await.unwrap();
}

// ---- the DuckDB contract ----

const DUCKDB_SCRIPT: &str = r#"
import duckdb, json, sys
d = sys.argv[1]
src = f"read_json_auto('{d}/events/**/*.jsonl', hive_partitioning=true)"
seed = f"SELECT * FROM {src} WHERE exchange_id = 'home' AND thread_ref IS NOT NULL"
con = duckdb.connect()
count = con.execute(f"SELECT count(*) FROM ({seed})").fetchone()[0]
rows = con.execute(
    f"SELECT event_type, actor_id, to_json(payload)::VARCHAR, typeof(ts), exchange FROM ({seed}) ORDER BY seq"
).fetchall()
print(json.dumps({"count": count, "rows": [list(r) for r in rows]}))
"#;

fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_what_we_write_with_the_seeds_query() {
    let Some(python) = required_env("MESS_TEST_PYTHON", "DuckDB") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::new(dir.path()).unwrap();
    let (home, office) = (exchange("home"), exchange("office"));
    let t = thread("XY1Z");
    let home_events = every_kind(&home, &t, T0);
    s.append(&home_events[..3]).await.unwrap();
    s.append(&home_events[3..]).await.unwrap();
    s.append(&every_kind(&office, &thread("OFF1"), T0))
        .await
        .unwrap();
    s.create_member(&member(&home, "my-phone", "phone"))
        .await
        .unwrap();

    let out = std::process::Command::new(python)
        .args(["-c", DUCKDB_SCRIPT, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Vec<&Event> = home_events
        .iter()
        .filter(|e| e.thread_ref.is_some())
        .collect();
    assert_eq!(v["count"], expected.len());
    let rows = v["rows"].as_array().unwrap();
    for (row, e) in rows.iter().zip(&expected) {
        assert_eq!(row[0], e.kind.event_type());
        assert_eq!(row[1], e.actor_id.as_str());
        // DuckDB unifies every payload into one struct: the other types' keys come back null.
        let payload: serde_json::Value = serde_json::from_str(row[2].as_str().unwrap()).unwrap();
        let line: serde_json::Value = serde_json::from_str(&e.to_line()).unwrap();
        assert_eq!(
            without_nulls(payload),
            without_nulls(line["payload"].clone()),
            "{row}"
        );
        assert!(
            row[3].as_str().unwrap().starts_with("TIMESTAMP"),
            "typeof(ts) = {}",
            row[3]
        );
        assert_eq!(row[4], "home");
    }
    // No torn line anywhere in what normal operation wrote (DuckDB would have failed too).
    let b = Backend::Fs(dir);
    assert_all_lines_whole(&b.files().await);
}
