//! Reliability and security of the real binary (docs/reliability.md): SIGKILL under load,
//! an S3 outage, hostile input, and SSRF through notification channels.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{HOME, RawResponse, Server, call_at, event_lines, files_under, raw_request};
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

// ---------------------------------------------------------------------------------------
// 1. Crash safety under load
// ---------------------------------------------------------------------------------------

const ACTIVE: &[&str] = &[
    "claimed",
    "in_progress",
    "waiting",
    "held",
    "retrying",
    "needs_input",
    "needs_confirmation",
];

/// What the clients were told, and so what must survive any crash.
#[derive(Default)]
struct Acked {
    /// Every acknowledged create: ref -> progress.
    threads: BTreeMap<String, Progress>,
    /// Refs created but not yet (acknowledged as) claimed.
    open: Vec<String>,
    /// Refs claimed by a member (index into members) and not yet completed.
    claimed: Vec<(String, usize)>,
    creates: usize,
    claims: usize,
    completions: usize,
    registrations: usize,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    claimed_by: Option<String>,
    completed: bool,
}

/// Checks every acknowledged write and the protocol's invariants on every thread; returns
/// how many acknowledged writes were checked.
async fn check_state(server: &Server, members: &[(String, String)], acked: &Acked) -> usize {
    let key = &members[0].1;
    // Every thread, page by page.
    let mut seen: HashMap<String, Value> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{HOME}/requests?limit=500&cursor={c}"),
            None => format!("{HOME}/requests?limit=500"),
        };
        let (s, page) = server.call("GET", &path, Some(key), None).await;
        assert_eq!(s, 200, "{page}");
        for t in page["threads"].as_array().unwrap() {
            let r = t["ref"].as_str().unwrap().to_owned();
            assert!(
                seen.insert(r.clone(), t.clone()).is_none(),
                "{r} listed twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // No thread in a state the protocol forbids.
    for (r, t) in &seen {
        let status = t["status"].as_str().unwrap();
        let executor = t["executor_id"].as_str();
        match status {
            "pending" => assert!(executor.is_none(), "{r}: pending with an executor: {t}"),
            s if ACTIVE.contains(&s) => assert!(executor.is_some(), "{r}: {s} without one: {t}"),
            "completed" | "partial" | "failed" | "declined" | "delegated" => {
                assert!(executor.is_some(), "{r}: {status} without an executor: {t}")
            }
            "cancelled" | "superseded" | "expired" => {}
            other => panic!("{r}: unknown status {other}"),
        }
        assert!(t["requestor_id"].is_string(), "{r}: no requestor: {t}");
    }
    // Every acknowledged write is there, with at least that progress.
    let mut checked = acked.registrations;
    for (r, p) in &acked.threads {
        let t = seen
            .get(r)
            .unwrap_or_else(|| panic!("acknowledged create {r} is lost"));
        checked += 1;
        let status = t["status"].as_str().unwrap();
        if let Some(by) = &p.claimed_by {
            checked += 1;
            assert_ne!(status, "pending", "acknowledged claim of {r} is lost: {t}");
            assert_eq!(t["executor_id"].as_str(), Some(by.as_str()), "{r}: {t}");
        }
        if p.completed {
            checked += 1;
            assert_eq!(
                status, "completed",
                "acknowledged completion of {r} is lost"
            );
        }
    }
    // Every acknowledged registration still authenticates.
    for (id, key) in members {
        let (s, body) = server
            .call("GET", &format!("{HOME}/executors"), Some(key), None)
            .await;
        assert_eq!(s, 200, "{id}'s key no longer works: {body}");
    }
    checked
}

/// One client task: creates, claims and completes until `stop`, recording each 2xx.
async fn client_task(
    client: reqwest::Client,
    base: String,
    members: Arc<Vec<(String, String)>>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
    server_errors: Arc<AtomicUsize>,
    task: usize,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let me = rand::rng().random_range(0..members.len());
        let key = members[me].1.clone();
        let op = rand::rng().random_range(0..10u8);
        // Pick a target under the lock, call without it.
        let target = {
            let mut a = acked.lock().await;
            match op {
                0..=3 => None,
                4..=6 if !a.open.is_empty() => {
                    let i = rand::rng().random_range(0..a.open.len());
                    Some((a.open[i].clone(), "claimed"))
                }
                _ => {
                    let mine: Vec<usize> = (0..a.claimed.len())
                        .filter(|&i| a.claimed[i].1 == me)
                        .collect();
                    mine.first()
                        .map(|&i| (a.claimed.swap_remove(i).0, "completed"))
                }
            }
        };
        let result =
            match &target {
                None => call_at(
                    &client,
                    &base,
                    "POST",
                    &format!("{HOME}/requests"),
                    Some(&key),
                    Some(
                        json!({"intent": format!("task {task} op {n}"), "context": ["crash test"]}),
                    ),
                )
                .await,
                Some((r, to)) => {
                    let mut body = json!({"status": to});
                    if *to == "completed" {
                        body["mess"] = json!([{"response": {"content": ["done"]}}]);
                    }
                    call_at(
                        &client,
                        &base,
                        "PATCH",
                        &format!("{HOME}/requests/{r}"),
                        Some(&key),
                        Some(body),
                    )
                    .await
                }
            };
        let Ok((status, body)) = result else {
            // The server is gone (killed): nothing was acknowledged.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if status >= 500 {
            server_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("server error {status}: {body}");
            continue;
        }
        let mut a = acked.lock().await;
        match (&target, status) {
            (None, 201) => {
                let r = body["ref"].as_str().unwrap().to_owned();
                a.threads.insert(r.clone(), Progress::default());
                a.open.push(r);
                a.creates += 1;
            }
            (Some((r, "claimed")), 200) => {
                a.open.retain(|x| x != r);
                if let Some(p) = a.threads.get_mut(r)
                    && p.claimed_by.is_none()
                {
                    p.claimed_by = Some(members[me].0.clone());
                    a.claimed.push((r.clone(), me));
                    a.claims += 1;
                }
            }
            (Some((r, "claimed")), 409) => a.open.retain(|x| x != r),
            (Some((r, "completed")), 200) => {
                a.threads.get_mut(r).unwrap().completed = true;
                a.completions += 1;
            }
            (Some((r, "completed")), _) => {
                // Not acknowledged (or refused): it stays claimed, try again later.
                a.claimed.push((r.clone(), me));
            }
            (None, s) => panic!("create answered {s}: {body}"),
            (Some((r, to)), s) => panic!("{to} of {r} answered {s}: {body}"),
        }
    }
}

/// SIGKILL at random moments under 48 concurrent clients, 20 times; after every restart
/// each acknowledged write is there and no thread is in a forbidden state; finally the
/// seed's DuckDB query reads the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_write() {
    const CYCLES: usize = 20;
    const CLIENTS: usize = 48;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut members: Vec<(String, String)> = Vec::new();
    let server_errors = Arc::new(AtomicUsize::new(0));
    let mut checked_total = 0usize;
    let mut last_checked = 0usize;
    for cycle in 0..CYCLES {
        let mut server = Server::try_start(&data, &[])
            .unwrap_or_else(|e| panic!("start-up failed after crash {cycle}: {e}"));
        if cycle > 0 {
            let a = acked.lock().await;
            last_checked = check_state(&server, &members, &a).await;
            checked_total += last_checked;
        }
        // One new member per cycle (four at first): registrations are acknowledged writes.
        let new = if cycle == 0 { 4 } else { 1 };
        for _ in 0..new {
            let id = format!("member-{}", members.len());
            let (s, body) = server
                .call(
                    "POST",
                    &format!("{HOME}/register"),
                    None,
                    Some(json!({"executor_id": id})),
                )
                .await;
            assert_eq!(s, 201, "{body}");
            members.push((id, body["api_key"].as_str().unwrap().to_owned()));
            acked.lock().await.registrations += 1;
        }
        let shared = Arc::new(members.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(CLIENTS)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|task| {
                tokio::spawn(client_task(
                    client.clone(),
                    server.base.clone(),
                    Arc::clone(&shared),
                    Arc::clone(&acked),
                    Arc::clone(&stop),
                    Arc::clone(&server_errors),
                    task,
                ))
            })
            .collect();
        let load = rand::rng().random_range(400..1400u64);
        tokio::time::sleep(Duration::from_millis(load)).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    }
    // After the last crash: start, check, stop cleanly, then DuckDB.
    let server = Server::try_start(&data, &[])
        .unwrap_or_else(|e| panic!("start-up failed after the last crash: {e}"));
    let a = acked.lock().await;
    last_checked = check_state(&server, &members, &a).await.max(last_checked);
    checked_total += last_checked;
    server.stop();
    assert_eq!(server_errors.load(Ordering::Relaxed), 0, "5xx under load");
    for f in files_under(&data) {
        assert!(
            !f.to_string_lossy().contains(".."),
            "{} has `..` in its name",
            f.display()
        );
    }

    let duck = duckdb_count_creates(&data);
    if let Some(n) = duck {
        assert!(
            n >= a.creates,
            "DuckDB counts {n} thread_created rows, fewer than the {} acknowledged creates",
            a.creates
        );
    }
    println!(
        "crash test: {CYCLES} SIGKILL cycles, {CLIENTS} clients; acknowledged: {} creates, {} claims, \
         {} completions, {} registrations; {checked_total} acknowledged-write checks over all \
         restarts ({last_checked} in the last); DuckDB thread_created rows: {duck:?}; {:.1} s",
        a.creates,
        a.claims,
        a.completions,
        a.registrations,
        started.elapsed().as_secs_f64()
    );
    assert!(a.creates > 0 && a.claims > 0 && a.completions > 0);
}

/// Runs the seed's DuckDB query over `data` and counts its `thread_created` rows; `None` when
/// no Python with DuckDB is configured (outside `scripts/test.sh`).
fn duckdb_count_creates(data: &Path) -> Option<usize> {
    let python = common::test_python("duckdb query")?;
    let script = r#"
import sys, duckdb
d = sys.argv[1]
q = f"SELECT * FROM read_json_auto('{d}/events/**/*.jsonl', hive_partitioning=true) WHERE exchange_id = 'home' AND thread_ref IS NOT NULL"
rows = duckdb.sql(f"SELECT count(*) FROM ({q}) WHERE event_type = 'thread_created'").fetchall()[0][0]
print(rows)
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the seed's DuckDB query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap())
}

// ---------------------------------------------------------------------------------------
// 2. Storage outage (S3)
// ---------------------------------------------------------------------------------------

/// What the proxy between the server and moto does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Forwards bytes both ways.
    Up,
    /// Closes every connection at once (moto stopped: the port refuses).
    Refuse,
    /// Accepts and never answers (a black hole: a network partition).
    Hang,
}

/// A TCP proxy in front of moto that the test can cut and restore; cutting it also drops
/// every connection already open.
struct Proxy {
    port: u16,
    link: Arc<std::sync::Mutex<Link>>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Arc::new(std::sync::Mutex::new(Link::Up));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let task = {
            let link = Arc::clone(&link);
            let conns = Arc::clone(&conns);
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let mode = *link.lock().unwrap();
                    let handle = match mode {
                        Link::Refuse => {
                            drop(inbound);
                            continue;
                        }
                        Link::Hang => tokio::spawn(async move {
                            // Hold the socket open, read nothing back.
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            drop(inbound);
                        }),
                        Link::Up => tokio::spawn(async move {
                            if let Ok(mut outbound) =
                                tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        }),
                    };
                    conns.lock().unwrap().push(handle.abort_handle());
                }
            })
        };
        Self {
            port,
            link,
            conns,
            task,
        }
    }

    fn set(&self, mode: Link) {
        *self.link.lock().unwrap() = mode;
        if mode != Link::Up {
            for c in self.conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// How long a write may take to answer during an outage (the S3 client gives up after
/// `S3_REQUEST_TIMEOUT`; a write queued behind a failing batch waits for it, then for its
/// own).
const WRITE_BOUND_SECS: u64 = 45;

/// moto on a free port, killed on drop.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    fn start(python: &Path) -> Self {
        let bin = python.parent().unwrap().join("moto_server");
        let port = common::free_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event line in the bucket, read straight from moto with boto3.
fn bucket_events(python: &Path, port: u16, bucket: &str) -> Vec<Value> {
    let script = r#"
import sys, boto3
port, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/"):
    for o in page.get("Contents", []):
        if o["Key"].endswith(".jsonl"):
            sys.stdout.write(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode())
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(bucket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reading the bucket failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// With S3 cut off mid-load (refusing, then black-holing connections), writes answer 503
/// JSON within a bound, reads keep working from memory and `/health` is degraded; when it
/// returns, writes resume, and after a restart every acknowledged create is there exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_fails_writes_fast_and_loses_nothing() {
    let Some(python) = common::test_python("an_s3_outage_fails_writes_fast_and_loses_nothing")
    else {
        return;
    };
    let started = Instant::now();
    let moto = Moto::start(&python);
    let bucket = "mess-outage";
    let res = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{}/{bucket}", moto.port))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "create bucket: {}", res.status());
    let proxy = Proxy::start(moto.port).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("STORAGE_TYPE", "s3"),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_BUCKET", bucket),
        ("S3_ACCESS_KEY", "test"),
        ("S3_SECRET_KEY", "test"),
        ("S3_REGION", "us-east-1"),
    ];
    let server = Server::start(&dir.path().join("unused"), &env);
    let (s, reg) = server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({"executor_id": "agent"})),
        )
        .await;
    assert_eq!(s, 201, "{reg}");
    let key = reg["api_key"].as_str().unwrap().to_owned();

    // Acknowledged creates by intent, and the intents answered 503.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(WRITE_BOUND_SECS))
        .build()
        .unwrap();
    let create = |intent: String| {
        let client = client.clone();
        let base = server.base.clone();
        let key = key.clone();
        async move {
            let t = Instant::now();
            let r = call_at(
                &client,
                &base,
                "POST",
                &format!("{HOME}/requests"),
                Some(&key),
                Some(json!({"intent": intent})),
            )
            .await;
            (intent, r, t.elapsed())
        }
    };

    // Load, with the link cut in the middle of it.
    let mut n = 0;
    let mut batch = Vec::new();
    // Writes every 10 ms for 0.6 s; the link is cut at 0.4 s, with writes in flight.
    for i in 0..60 {
        n += 1;
        batch.push(tokio::spawn(create(format!("before {n}"))));
        if i == 40 {
            proxy.set(Link::Refuse);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut slowest = Duration::ZERO;
    for phase in [Link::Refuse, Link::Hang] {
        proxy.set(phase);
        for _ in 0..16 {
            n += 1;
            batch.push(tokio::spawn(create(format!("{phase:?} {n}"))));
        }
        for t in batch.drain(..) {
            let (intent, r, took) = t.await.unwrap();
            let (s, body) = r
                .unwrap_or_else(|e| panic!("{intent}: no answer within {WRITE_BOUND_SECS} s: {e}"));
            slowest = slowest.max(took);
            if took > Duration::from_secs(2) {
                println!("outage: {intent}: {:.1} s", took.as_secs_f64());
            }
            match s {
                201 => acked.push((intent, body["ref"].as_str().unwrap().to_owned())),
                503 => {
                    assert!(
                        body["error"].is_string(),
                        "503 without a JSON error: {body}"
                    );
                    refused.push(intent);
                }
                other => panic!("{intent}: {other} {body}"),
            }
        }
        let during: Vec<_> = refused
            .iter()
            .filter(|i| i.starts_with(&format!("{phase:?}")))
            .collect();
        assert_eq!(during.len(), 16, "every write during {phase:?} answers 503");
        // Reads keep working from memory.
        let (s, list) = server
            .call(
                "GET",
                &format!("{HOME}/requests?limit=500"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(s, 200, "{list}");
        if let Some((_, r)) = acked.first() {
            let (s, _) = server
                .call("GET", &format!("{HOME}/requests/{r}"), Some(&key), None)
                .await;
            assert_eq!(s, 200);
        }
        let (s, health) = server.call("GET", "/health", None, None).await;
        assert_eq!(
            (s, health["status"].as_str()),
            (503, Some("degraded")),
            "{health}"
        );
        let (s, _) = server
            .call("GET", &format!("{HOME}/executors"), Some(&key), None)
            .await;
        assert_eq!(s, 200);
    }
    println!(
        "outage: {} acknowledged, {} refused with 503; slowest answer {:.1} s",
        acked.len(),
        refused.len(),
        slowest.as_secs_f64()
    );
    assert!(slowest < Duration::from_secs(WRITE_BOUND_SECS));

    // Storage returns: writes resume.
    proxy.set(Link::Up);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        n += 1;
        let (intent, r, _) = create(format!("after {n}")).await;
        let (s, body) = r.unwrap();
        if s == 201 {
            acked.push((intent, body["ref"].as_str().unwrap().to_owned()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {s} {body}"
        );
        refused.push(intent);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..10 {
        n += 1;
        let (intent, r, _) = create(format!("after {n}")).await;
        let (s, body) = r.unwrap();
        assert_eq!(s, 201, "{body}");
        acked.push((intent, body["ref"].as_str().unwrap().to_owned()));
    }
    let (s, health) = server.call("GET", "/health", None, None).await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    server.stop();

    // Restart: everything acknowledged is there, exactly once.
    let server = Server::start(&dir.path().join("unused"), &env);
    let (s, list) = server
        .call(
            "GET",
            &format!("{HOME}/requests?limit=500"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let listed: HashSet<String> = list["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ref"].as_str().unwrap().to_owned())
        .collect();
    server.stop();
    let mut created_by_intent: HashMap<String, usize> = HashMap::new();
    for e in bucket_events(&python, moto.port, bucket) {
        if e["event_type"] == "thread_created" {
            let intent = e["payload"]["intent"].as_str().unwrap().to_owned();
            *created_by_intent.entry(intent).or_default() += 1;
        }
    }
    for (intent, r) in &acked {
        assert!(listed.contains(r), "acknowledged {r} ({intent}) lost");
        assert_eq!(
            created_by_intent.get(intent),
            Some(&1),
            "acknowledged {intent} stored once"
        );
    }
    // A 503 is "not acknowledged", not always "not written": a PUT that reached the
    // bucket but whose answer was cut off fails too. Such a write must at most appear
    // once, never twice.
    let ghosts: Vec<_> = refused
        .iter()
        .filter(|i| created_by_intent.contains_key(*i))
        .collect();
    for g in &ghosts {
        assert_eq!(created_by_intent[*g], 1, "{g} stored twice");
    }
    println!(
        "outage: after restart {} acknowledged creates each stored exactly once; {} answered 503, \
         of which {} reached the bucket anyway (answer cut off); {:.1} s",
        acked.len(),
        refused.len(),
        ghosts.len(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// 3. Hostile input
// ---------------------------------------------------------------------------------------

/// Sends hostile requests over raw HTTP/1.1 and checks each answer.
struct Hostile {
    server: Server,
    cases: usize,
    failures: Vec<String>,
}

/// What a case must answer.
#[derive(Clone, Copy)]
enum Want {
    /// Any 4xx with a JSON `{"error": ...}` body.
    ClientError,
    /// This exact 4xx, with a JSON error body.
    Exactly(u16),
}

impl Hostile {
    fn head(method: &str, path: &str, key: Option<&str>, json: bool) -> Vec<u8> {
        let mut h = format!("{method} {path} HTTP/1.1").into_bytes();
        if let Some(k) = key {
            h.extend_from_slice(format!("\r\nAuthorization: Bearer {k}").as_bytes());
        }
        if json {
            h.extend_from_slice(b"\r\nContent-Type: application/json");
        }
        h
    }

    /// One case: `head` (no trailing CRLF) and `body`; checks the answer and that the
    /// server is still healthy.
    async fn case(
        &mut self,
        label: &str,
        head: Vec<u8>,
        body: &[u8],
        want: Want,
    ) -> Option<RawResponse> {
        self.cases += 1;
        let res = match raw_request(&self.server.addr, &head, body).await {
            Ok(r) => r,
            Err(e) => {
                self.failures.push(format!("{label}: {e}"));
                return None;
            }
        };
        let json = res.json();
        let is_json_type = res
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"));
        let has_error = json.as_ref().is_some_and(|j| j["error"].is_string());
        let status_ok = match want {
            Want::ClientError => (400..500).contains(&res.status),
            Want::Exactly(s) => res.status == s,
        };
        if !status_ok || !is_json_type || !has_error {
            self.failures.push(format!(
                "{label}: {} {:?} {}",
                res.status,
                res.header("content-type"),
                String::from_utf8_lossy(&res.body[..res.body.len().min(300)])
            ));
        }
        if res.headers.iter().any(|(n, _)| n.starts_with("x-injected")) {
            self.failures
                .push(format!("{label}: an injected header came back"));
        }
        self.healthy(label).await;
        Some(res)
    }

    async fn healthy(&mut self, label: &str) {
        match raw_request(&self.server.addr, b"GET /health HTTP/1.1", b"").await {
            Ok(h) if h.status == 200 => {}
            Ok(h) => self
                .failures
                .push(format!("after {label}: /health answered {}", h.status)),
            Err(e) => self.failures.push(format!("after {label}: /health: {e}")),
        }
    }

    async fn json_case(
        &mut self,
        label: &str,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &Value,
        want: Want,
    ) -> Option<RawResponse> {
        let head = Self::head(method, path, key, true);
        self.case(label, head, body.to_string().as_bytes(), want)
            .await
    }
}

/// Replaces the value at `pointer` (`/a/0/b`) in `base`.
fn with_field(base: &Value, pointer: &str, v: Value) -> Value {
    let mut out = base.clone();
    *out.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} not in {base}")) = v;
    out
}

/// Wrong JSON types for a field whose right type is `right` (`string`, `list`, `object`,
/// `bool`): every JSON type but that one (null counts as absent, so it is not here).
fn wrong_types(right: &str) -> Vec<Value> {
    let all = [
        ("number", json!(7)),
        ("number", json!(-1.5)),
        ("bool", json!(true)),
        ("string", json!("wrong")),
        ("list", json!([1, {"a": 1}])),
        ("object", json!({"wrong": [1]})),
    ];
    all.into_iter()
        .filter(|(t, _)| *t != right)
        .map(|(_, v)| v)
        .collect()
}

/// Every kind of hostile input the issue lists, against the live binary: each answers 4xx
/// JSON, the server stays healthy after each, and nothing is written outside the data
/// directory.
#[test]
fn hostile_input_is_refused_with_json_4xx_and_writes_nothing_outside() {
    // The suite is one long async body: a debug build needs more than the default stack.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(64 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(Box::pin(hostile_suite()))
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

async fn hostile_suite() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(dir.path().join("sibling")).unwrap();
    std::fs::write(dir.path().join("sibling/keep.txt"), "x").unwrap();
    let outside_before: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(&data))
        .collect();
    let server = Server::start(
        &data,
        &[
            ("MAX_BODY_BYTES", "4096"),
            ("RATE_LIMIT_REGISTER_PER_MIN", "100000"),
            ("RATE_LIMIT_AUTH_FAILURES_PER_MIN", "100000"),
        ],
    );

    // Two members of `home`, one of `office`, and a thread with an attachment.
    let mut keys = HashMap::new();
    for (exchange, id) in [("home", "alice"), ("home", "bob"), ("office", "carol")] {
        let (s, b) = server
            .call(
                "POST",
                &format!("/api/v1/exchanges/{exchange}/register"),
                None,
                Some(json!({"executor_id": id})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        keys.insert(id, b["api_key"].as_str().unwrap().to_owned());
    }
    let alice = keys["alice"].clone();
    let carol = keys["carol"].clone();
    let (s, t) = server
        .call(
            "POST",
            &format!("{HOME}/requests"),
            Some(&alice),
            Some(json!({"intent": "hostile", "context": [{"image": "data:image/png;base64,aGVsbG8="}]})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let r = t["ref"].as_str().unwrap().to_owned();
    let mut h = Hostile {
        server,
        cases: 0,
        failures: Vec::new(),
    };
    let a = Some(alice.as_str());

    // -- Path traversal in every path segment ------------------------------------------
    let traversals = [
        "..",
        "../..",
        "..%2F..",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e",
        "%2e%2e%2f%2e%2e",
        ".%2e",
        "..%252F..",
        "%252e%252e",
        "..%255c..",
        "..\\..",
        "..%5C..%5Cwindows",
        "%00",
        "home%00",
        "a%00b",
        "..%00",
        "%c0%ae%c0%ae",
        "%ff%fe",
        "....",
        "x%2F..%2F..%2Fy",
        "exchange=home",
        "%0d%0aX-Injected:%201",
    ];
    let register_body = json!({"executor_id": "trav"});
    let create_body = json!({"intent": "x"});
    for p in traversals {
        // The exchange segment.
        h.json_case(
            &format!("register on {p}"),
            "POST",
            &format!("/api/v1/exchanges/{p}/register"),
            None,
            &register_body,
            Want::ClientError,
        )
        .await;
        h.json_case(
            &format!("create on {p}"),
            "POST",
            &format!("/api/v1/exchanges/{p}/requests"),
            a,
            &create_body,
            Want::ClientError,
        )
        .await;
        h.case(
            &format!("list on {p}"),
            Hostile::head("GET", &format!("/api/v1/exchanges/{p}/requests"), a, false),
            b"",
            Want::ClientError,
        )
        .await;
        h.case(
            &format!("list on {p} without key"),
            Hostile::head(
                "GET",
                &format!("/api/v1/exchanges/{p}/requests"),
                None,
                false,
            ),
            b"",
            Want::ClientError,
        )
        .await;
        h.case(
            &format!("executors on {p}"),
            Hostile::head("GET", &format!("/api/v1/exchanges/{p}/executors"), a, false),
            b"",
            Want::ClientError,
        )
        .await;
        // The ref segment.
        h.case(
            &format!("get ref {p}"),
            Hostile::head("GET", &format!("{HOME}/requests/{p}"), a, false),
            b"",
            Want::ClientError,
        )
        .await;
        h.json_case(
            &format!("patch ref {p}"),
            "PATCH",
            &format!("{HOME}/requests/{p}"),
            a,
            &json!({"status": "claimed"}),
            Want::ClientError,
        )
        .await;
        h.case(
            &format!("attachment of ref {p}"),
            Hostile::head(
                "GET",
                &format!("{HOME}/requests/{p}/attachments/1"),
                a,
                false,
            ),
            b"",
            Want::ClientError,
        )
        .await;
        // The attachment name.
        h.case(
            &format!("attachment {p}"),
            Hostile::head(
                "GET",
                &format!("{HOME}/requests/{r}/attachments/{p}"),
                a,
                false,
            ),
            b"",
            Want::ClientError,
        )
        .await;
        // The executor id segment.
        h.json_case(
            &format!("patch executor {p}"),
            "PATCH",
            &format!("{HOME}/executors/{p}"),
            a,
            &json!({"display_name": "x"}),
            Want::ClientError,
        )
        .await;
    }
    // Literal traversal spanning segments (no client normalises it here).
    for path in [
        "/api/v1/exchanges/home/../../../../etc/passwd",
        "/api/v1/exchanges/home/requests/../../office/requests",
        "/api/v1/exchanges/../exchanges/home/requests",
        "/../../../../etc/passwd",
        "/api/v1/exchanges/home/requests/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/exchanges/home/executors/..%2F..%2F..%2Fexecutors",
    ] {
        h.case(
            &format!("GET {path}"),
            Hostile::head("GET", path, a, false),
            b"",
            Want::ClientError,
        )
        .await;
        h.json_case(
            &format!("POST {path}"),
            "POST",
            path,
            a,
            &create_body,
            Want::ClientError,
        )
        .await;
    }

    // -- Ids with `=`, `_`, control characters, 300 characters -------------------------
    let long = "a".repeat(300);
    for x in [
        "home_1",
        "a=b",
        "HOME",
        "Home",
        "-home",
        "a.b",
        "a%20b",
        "a%09b",
        "a%0Ab",
        "a%01b",
        "a%7Fb",
        "%C3%A9t%C3%A9",
        long.as_str(),
        "",
    ] {
        h.json_case(
            &format!("exchange id {x:.20}"),
            "POST",
            &format!("/api/v1/exchanges/{x}/register"),
            None,
            &register_body,
            Want::ClientError,
        )
        .await;
    }
    for x in [
        json!("../x"),
        json!(".."),
        json!("."),
        json!("a..b"),
        json!("a/b"),
        json!("a\\b"),
        json!("a=b"),
        json!("a\u{1}b"),
        json!("a\nb"),
        json!("a\r\nX-Injected: 1"),
        json!("a\u{7f}b"),
        json!(long),
        json!(""),
        json!(" "),
        json!("a b"),
        json!("%2e%2e"),
        json!("-a"),
        json!("été"),
        json!("a\u{202e}b"),
        json!(1),
        json!(true),
        json!([]),
        json!({}),
    ] {
        h.json_case(
            &format!("executor id {x:.30}"),
            "POST",
            &format!("{HOME}/register"),
            None,
            &json!({"executor_id": x}),
            Want::ClientError,
        )
        .await;
    }
    // `_` is a valid executor id character: it registers and then authenticates.
    let (s, b) = h
        .server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({"executor_id": "under_score"})),
        )
        .await;
    h.cases += 1;
    assert_eq!(s, 201, "{b}");
    let (s, _) = h
        .server
        .call(
            "GET",
            &format!("{HOME}/executors"),
            b["api_key"].as_str(),
            None,
        )
        .await;
    assert_eq!(s, 200, "an executor id with `_` authenticates");

    // -- Oversized bodies (MAX_BODY_BYTES=4096) and deep nesting -----------------------
    let big = json!({"intent": "x".repeat(5000)});
    h.json_case(
        "oversized create",
        "POST",
        &format!("{HOME}/requests"),
        a,
        &big,
        Want::Exactly(413),
    )
    .await;
    h.json_case(
        "oversized register",
        "POST",
        &format!("{HOME}/register"),
        None,
        &json!({"executor_id": "big", "display_name": "x".repeat(5000)}),
        Want::Exactly(413),
    )
    .await;
    h.json_case(
        "oversized patch",
        "PATCH",
        &format!("{HOME}/requests/{r}"),
        a,
        &json!({"mess": [{"reply": {"text": "x".repeat(5000)}}]}),
        Want::Exactly(413),
    )
    .await;
    let mut lying = Hostile::head("POST", &format!("{HOME}/requests"), a, true);
    lying.extend_from_slice(b"\r\nContent-Length: 1000000000000");
    h.case(
        "declared length past the limit",
        lying,
        b"{}",
        Want::Exactly(413),
    )
    .await;
    let mut chunked = Hostile::head("POST", &format!("{HOME}/requests"), a, true);
    chunked.extend_from_slice(b"\r\nTransfer-Encoding: chunked");
    let mut body = Vec::new();
    for _ in 0..3 {
        body.extend_from_slice(format!("{:x}\r\n{}\r\n", 2000, "a".repeat(2000)).as_bytes());
    }
    body.extend_from_slice(b"0\r\n\r\n");
    h.case(
        "chunked body past the limit",
        chunked,
        &body,
        Want::Exactly(413),
    )
    .await;
    for depth in [33, 40, 200, 600] {
        let nested = format!(
            "{{\"intent\":\"x\",\"context\":[{}1{}]}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let head = Hostile::head("POST", &format!("{HOME}/requests"), a, true);
        h.case(
            &format!("nesting {depth}"),
            head,
            nested.as_bytes(),
            Want::Exactly(400),
        )
        .await;
        let nested = format!(
            "{{\"mess\":[{{\"reply\":{}1{}}}]}}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        );
        let head = Hostile::head("PATCH", &format!("{HOME}/requests/{r}"), a, true);
        h.case(
            &format!("object nesting {depth}"),
            head,
            nested.as_bytes(),
            Want::Exactly(400),
        )
        .await;
    }

    // -- Wrong JSON types in every field -----------------------------------------------
    let register = json!({
        "executor_id": "typed",
        "display_name": "Typed",
        "capabilities": ["photo:capture"],
        "notifications": [{"type": "ntfy", "topic": "t", "server": "https://ntfy.example"}],
        "preferences": {"min_priority": "normal", "timezone": "UTC",
                        "quiet_hours": {"enabled": true, "start": "22:00", "end": "07:00"}},
    });
    let register_fields = [
        ("/executor_id", "string"),
        ("/display_name", "string"),
        ("/capabilities", "list"),
        ("/capabilities/0", "string"),
        ("/notifications", "list"),
        ("/notifications/0", "object"),
        ("/notifications/0/type", "string"),
        ("/notifications/0/topic", "string"),
        ("/notifications/0/server", "string"),
        ("/preferences", "object"),
        ("/preferences/min_priority", "string"),
        ("/preferences/timezone", "string"),
        ("/preferences/quiet_hours", "object"),
        ("/preferences/quiet_hours/enabled", "bool"),
        ("/preferences/quiet_hours/start", "string"),
        ("/preferences/quiet_hours/end", "string"),
    ];
    let mut typed = 0;
    for (field, right) in register_fields {
        for v in wrong_types(right) {
            typed += 1;
            let mut body = with_field(&register, field, v.clone());
            if field != "/executor_id" {
                body["executor_id"] = json!(format!("typed-{typed}"));
            }
            h.json_case(
                &format!("register {field}={v}"),
                "POST",
                &format!("{HOME}/register"),
                None,
                &body,
                Want::Exactly(400),
            )
            .await;
            if field != "/executor_id" {
                let mut profile = body.clone();
                profile.as_object_mut().unwrap().remove("executor_id");
                h.json_case(
                    &format!("patch executor {field}={v}"),
                    "PATCH",
                    &format!("{HOME}/executors/alice"),
                    a,
                    &profile,
                    Want::Exactly(400),
                )
                .await;
            }
        }
    }
    let create = json!({
        "intent": "typed",
        "context": ["c"],
        "priority": "normal",
        "response_hint": ["text"],
        "requires": ["photo:capture"],
        "needed_by": "2099-01-01T00:00:00Z",
        "constraints": {"timing": {"expires": "2099-01-01T00:00:00Z"}},
        "confirm_before": false,
    });
    for (field, right) in [
        ("/intent", "string"),
        ("/context", "list"),
        ("/priority", "string"),
        ("/response_hint", "list"),
        ("/response_hints", "list"),
        ("/requires", "list"),
        ("/requires/0", "string"),
        ("/needed_by", "string"),
        ("/constraints", "object"),
        ("/constraints/timing", "object"),
        ("/constraints/timing/expires", "string"),
        ("/confirm_before", "bool"),
    ] {
        for v in wrong_types(right) {
            let body = if field == "/response_hints" {
                // The alias, sent alone (beside `response_hint` it is dropped).
                let mut body = create.clone();
                let o = body.as_object_mut().unwrap();
                o.remove("response_hint");
                o.insert("response_hints".into(), v.clone());
                body
            } else {
                with_field(&create, field, v.clone())
            };
            h.json_case(
                &format!("create {field}={v}"),
                "POST",
                &format!("{HOME}/requests"),
                a,
                &body,
                Want::Exactly(400),
            )
            .await;
        }
    }
    let patch = json!({"status": "claimed", "mess": [{"reply": {"text": "hi"}}]});
    for (field, right) in [
        ("/status", "string"),
        ("/mess", "list"),
        ("/mess/0", "object"),
    ] {
        for v in wrong_types(right) {
            let body = with_field(&patch, field, v.clone());
            h.json_case(
                &format!("patch request {field}={v}"),
                "PATCH",
                &format!("{HOME}/requests/{r}"),
                a,
                &body,
                Want::Exactly(400),
            )
            .await;
        }
    }
    for body in [
        json!([]),
        json!("s"),
        json!(1),
        json!(null),
        json!({}),
        json!({"mess": [{}]}),
        json!({"mess": [{"reply": 1, "answer": 2}]}),
        json!({"mess": [{"nonsense": {}}]}),
    ] {
        h.json_case(
            &format!("patch request body {body}"),
            "PATCH",
            &format!("{HOME}/requests/{r}"),
            a,
            &body,
            Want::Exactly(400),
        )
        .await;
        h.json_case(
            &format!("create body {body}"),
            "POST",
            &format!("{HOME}/requests"),
            a,
            &body,
            Want::Exactly(400),
        )
        .await;
    }

    // -- Invalid UTF-8, wrong or missing content type, malformed JSON ------------------
    for (label, method, path, key) in [
        ("create", "POST", format!("{HOME}/requests"), a),
        ("register", "POST", format!("{HOME}/register"), None),
        ("patch request", "PATCH", format!("{HOME}/requests/{r}"), a),
        (
            "patch executor",
            "PATCH",
            format!("{HOME}/executors/alice"),
            a,
        ),
    ] {
        for body in [
            &b"{\"intent\":\"\xff\xfe\",\"executor_id\":\"u\",\"status\":\"claimed\",\"display_name\":\"\xc0\xae\"}"[..],
            b"{\"intent\":\"\xed\xa0\x80\"}",
            b"{\"intent\":\"\\ud800\"}",
            b"\xef\xbb\xbf{\"intent\":\"bom\"}",
            b"{\"intent\":",
            b"{\"intent\":\"x\"} trailing",
            b"",
            b"null",
        ] {
            h.case(&format!("{label} body {:?}", String::from_utf8_lossy(body)), Hostile::head(method, &path, key, true), body, Want::Exactly(400)).await;
        }
        let mut head = Hostile::head(method, &path, key, false);
        head.extend_from_slice(b"\r\nContent-Type: text/plain");
        h.case(
            &format!("{label} as text/plain"),
            head,
            b"{\"intent\":\"x\"}",
            Want::Exactly(400),
        )
        .await;
        h.case(
            &format!("{label} as application/xml"),
            {
                let mut head = Hostile::head(method, &path, key, false);
                head.extend_from_slice(b"\r\nContent-Type: application/xml");
                head
            },
            b"{\"intent\":\"x\"}",
            Want::Exactly(400),
        )
        .await;
    }

    // -- Huge and odd headers ------------------------------------------------------------
    let huge = format!("Bearer mess_home_{}", "a".repeat(64 * 1024));
    let mut head = format!("GET {HOME}/requests HTTP/1.1\r\nAuthorization: ").into_bytes();
    head.extend_from_slice(huge.as_bytes());
    h.case("64 KiB Authorization", head, b"", Want::Exactly(401))
        .await;
    let mut head =
        format!("GET {HOME}/requests HTTP/1.1\r\nAuthorization: Bearer {alice}\r\nX-Big: ")
            .into_bytes();
    head.extend_from_slice("b".repeat(64 * 1024).as_bytes());
    h.cases += 1;
    match raw_request(&h.server.addr, &head, b"").await {
        Ok(res) if res.status == 200 || (400..500).contains(&res.status) => {}
        other => h.failures.push(format!("64 KiB other header: {other:?}")),
    }
    h.healthy("64 KiB other header").await;
    let mut head = format!("GET {HOME}/requests HTTP/1.1\r\nAuthorization: Bearer ").into_bytes();
    head.extend_from_slice(b"mess_home_\xff\xfe");
    h.case("non-UTF-8 Authorization", head, b"", Want::Exactly(401))
        .await;

    // -- Header injection through display names ------------------------------------------
    for name in [
        "Evil\r\nX-Injected: 1",
        "Evil\nX-Injected: 1",
        "Evil\rX-Injected: 1",
        "a\u{0}b",
        "a\u{85}b",
    ] {
        h.json_case(
            &format!("display name {name:?}"),
            "POST",
            &format!("{HOME}/register"),
            None,
            &json!({"executor_id": "inj", "display_name": name}),
            Want::Exactly(400),
        )
        .await;
        h.json_case(
            &format!("display name {name:?} on patch"),
            "PATCH",
            &format!("{HOME}/executors/alice"),
            a,
            &json!({"display_name": name}),
            Want::Exactly(400),
        )
        .await;
    }
    // A harmless-looking one that is accepted is never reflected into a header.
    let (s, b) = h
        .server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({"executor_id": "injected", "display_name": "X-Injected: 1"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let res = raw_request(
        &h.server.addr,
        &Hostile::head("GET", &format!("{HOME}/executors"), a, false),
        b"",
    )
    .await
    .unwrap();
    assert!(!res.headers.iter().any(|(n, _)| n.starts_with("x-injected")));

    // -- Authorization: scheme variants, other exchange's key, truncated keys ----------
    let other = format!("mess_office_{}", &alice["mess_home_".len()..]);
    let upper = alice.to_uppercase();
    let mut flipped = alice.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    for (label, value) in [
        ("lower-case bearer", format!("bearer {alice}")),
        ("upper-case BEARER", format!("BEARER {alice}")),
        ("mixed-case BeArEr", format!("BeArEr {alice}")),
        ("two spaces", format!("Bearer  {alice}")),
        ("no scheme", alice.clone()),
        ("Basic", "Basic YWxpY2U6cGFzcw==".to_owned()),
        ("Token", format!("Token {alice}")),
        ("Bearer alone", "Bearer".to_owned()),
        ("Bearer and a space", "Bearer ".to_owned()),
        (
            "truncated by one",
            format!("Bearer {}", &alice[..alice.len() - 1]),
        ),
        (
            "truncated by half",
            format!("Bearer {}", &alice[..alice.len() / 2]),
        ),
        ("prefix only", "Bearer mess_home_".to_owned()),
        ("one character changed", format!("Bearer {flipped}")),
        ("upper-cased key", format!("Bearer {upper}")),
        ("home token under office", format!("Bearer {other}")),
        ("two keys", format!("Bearer {alice} {alice}")),
        ("key with NUL", format!("Bearer {alice}%00")),
    ] {
        let head = format!("GET {HOME}/requests HTTP/1.1\r\nAuthorization: {value}").into_bytes();
        h.case(&format!("auth {label}"), head, b"", Want::Exactly(401))
            .await;
    }
    let mut head =
        format!("GET {HOME}/requests HTTP/1.1\r\nAuthorization: Bearer {alice}").into_bytes();
    head.extend_from_slice(format!("\r\nAuthorization: Bearer {carol}").as_bytes());
    h.case("two Authorization headers", head, b"", Want::Exactly(401))
        .await;
    // A valid key of another exchange: 403 everywhere under this one.
    for (method, path) in [
        ("GET", format!("{HOME}/requests")),
        ("GET", format!("{HOME}/requests/{r}")),
        ("GET", format!("{HOME}/executors")),
        ("GET", format!("{HOME}/capabilities")),
        ("GET", format!("{HOME}/requests/{r}/attachments/1")),
    ] {
        h.case(
            &format!("office key on {path}"),
            Hostile::head(method, &path, Some(&carol), false),
            b"",
            Want::Exactly(403),
        )
        .await;
    }
    h.json_case(
        "office key creates in home",
        "POST",
        &format!("{HOME}/requests"),
        Some(&carol),
        &create_body,
        Want::Exactly(403),
    )
    .await;
    h.json_case(
        "office key patches in home",
        "PATCH",
        &format!("{HOME}/requests/{r}"),
        Some(&carol),
        &json!({"status": "claimed"}),
        Want::Exactly(403),
    )
    .await;
    h.json_case(
        "office key edits a home member",
        "PATCH",
        &format!("{HOME}/executors/alice"),
        Some(&carol),
        &json!({"display_name": "x"}),
        Want::Exactly(403),
    )
    .await;
    h.json_case(
        "home key edits another member",
        "PATCH",
        &format!("{HOME}/executors/bob"),
        a,
        &json!({"display_name": "x"}),
        Want::Exactly(403),
    )
    .await;

    // -- Query strings, methods, unknown paths -------------------------------------------
    for q in [
        "limit=0",
        "limit=-1",
        "limit=501",
        "limit=abc",
        "limit=1e3",
        "limit=99999999999999999999999",
        "limit=",
        "status=nonsense",
        "status=%00",
        "status=",
        "status=PENDING",
        "cursor=garbage",
        "cursor=..%2F..%2Fetc",
        "cursor=%ff%fe",
        "limit=%ff",
        "limit=1&limit=2",
    ] {
        h.case(
            &format!("list ?{q}"),
            Hostile::head("GET", &format!("{HOME}/requests?{q}"), a, false),
            b"",
            Want::Exactly(400),
        )
        .await;
    }
    for (method, path, want) in [
        ("DELETE", format!("{HOME}/requests/{r}"), 405),
        ("PUT", format!("{HOME}/requests"), 405),
        ("DELETE", format!("{HOME}/capabilities"), 405),
        ("GET", format!("{HOME}/register"), 405),
        ("POST", "/health".to_owned(), 405),
        ("GET", format!("{HOME}/nothing-here"), 404),
        ("GET", "/nothing-here".to_owned(), 404),
        ("GET", "/api/v1/nothing".to_owned(), 404),
    ] {
        h.case(
            &format!("{method} {path}"),
            Hostile::head(method, &path, a, false),
            b"",
            Want::Exactly(want),
        )
        .await;
    }

    // -- Requests that are not valid HTTP/1.1 -------------------------------------------
    // actix-http's parser answers these itself, before any application code runs: a bare
    // 400 (or 431) without a body, and the connection closed. Checked: 4xx, never 5xx,
    // and the server healthy after.
    let mut framing = Vec::new();
    let mut both =
        format!("POST {HOME}/requests HTTP/1.1\r\nAuthorization: Bearer {alice}").into_bytes();
    both.extend_from_slice(
        b"\r\nContent-Type: application/json\r\nContent-Length: 16\r\nTransfer-Encoding: chunked",
    );
    framing.push((
        "Content-Length and Transfer-Encoding",
        both,
        b"{\"intent\":\"x\"}".to_vec(),
    ));
    let mut bad_length = Hostile::head("POST", &format!("{HOME}/requests"), a, true);
    bad_length.extend_from_slice(b"\r\nContent-Length: abc");
    framing.push(("non-numeric Content-Length", bad_length, Vec::new()));
    let mut nul = format!("GET {HOME}/requests HTTP/1.1\r\nAuthorization: Bearer ").into_bytes();
    nul.extend_from_slice(alice.as_bytes());
    nul.extend_from_slice(b"\x00x");
    framing.push(("NUL byte in a header", nul, Vec::new()));
    framing.push((
        "raw bytes 0xff in the path",
        b"GET /api/v1/exchanges/\xff\xfe/requests HTTP/1.1".to_vec(),
        Vec::new(),
    ));
    framing.push((
        "CR LF in the path",
        b"GET /api/v1/exchanges/home\r\nX-Injected: 1/requests HTTP/1.1".to_vec(),
        Vec::new(),
    ));
    framing.push((
        "a header line without a colon",
        format!("GET {HOME}/requests HTTP/1.1\r\nNoColonHere").into_bytes(),
        Vec::new(),
    ));
    let mut many = format!("GET {HOME}/requests HTTP/1.1").into_bytes();
    for i in 0..200 {
        many.extend_from_slice(format!("\r\nX-H{i}: {i}").as_bytes());
    }
    framing.push(("200 headers", many, Vec::new()));
    let mut huge_head = format!("GET {HOME}/requests HTTP/1.1\r\nX-Huge: ").into_bytes();
    huge_head.extend_from_slice("h".repeat(256 * 1024).as_bytes());
    framing.push(("a 256 KiB header", huge_head, Vec::new()));
    let framing_cases = framing.len();
    let mut framing_json = 0;
    for (label, head, body) in framing {
        h.cases += 1;
        match raw_request(&h.server.addr, &head, &body).await {
            Ok(res) if (400..500).contains(&res.status) => {
                if res.json().is_some() {
                    framing_json += 1;
                }
                println!(
                    "framing: {label}: {} {:?}",
                    res.status,
                    String::from_utf8_lossy(&res.body)
                );
            }
            Ok(res) => h.failures.push(format!(
                "{label}: {} {:?}",
                res.status,
                String::from_utf8_lossy(&res.body)
            )),
            // Closing the connection without an answer is also a refusal.
            Err(e) => println!("framing: {label}: closed without an answer ({e})"),
        }
        h.healthy(label).await;
    }

    // -- Nothing written outside the data directory --------------------------------------
    let Hostile {
        server,
        cases,
        failures,
    } = h;
    server.stop();
    let outside_after: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(&data))
        .collect();
    assert_eq!(
        outside_before, outside_after,
        "something was written outside the data dir"
    );
    for f in files_under(&data) {
        let rel = f
            .strip_prefix(&data)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!rel.contains(".."), "{rel}");
        if let Some(x) = rel
            .strip_prefix("events/")
            .or(rel.strip_prefix("executors/"))
        {
            let part = x.split('/').next().unwrap();
            let id = part
                .strip_prefix("exchange=")
                .unwrap_or_else(|| panic!("{rel}"));
            assert!(
                ["home", "office"].contains(&id),
                "unexpected exchange directory {rel}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} hostile cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "hostile input: {cases} cases, every one 4xx, JSON but for {} of the {framing_cases} malformed-HTTP cases (answered by the HTTP parser); the server healthy after each; {:.1} s",
        framing_cases - framing_json,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// 4. SSRF through notification channels
// ---------------------------------------------------------------------------------------

/// Metadata and link-local targets in every spelling are refused at registration (400
/// naming the channel); loopback targets, by address or by a name resolving to one, are
/// never called at send time and their failure is recorded as an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_targets_cannot_reach_metadata_or_private_addresses() {
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("NOTIFY_TIMEOUT_SECS", "2"), ("NOTIFY_MAX_ATTEMPTS", "1")],
    );
    let refused_urls = [
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./",
        "http://metadata/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://0xa9fea9fe/",
        "http://169.254.43518/",
        "http://100.100.100.200/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ];
    let mut cases = 0;
    for url in refused_urls {
        for (kind, channel) in [
            ("webhook", json!({"type": "webhook", "url": url})),
            ("ntfy", json!({"type": "ntfy", "topic": "t", "server": url})),
            ("slack", json!({"type": "slack", "webhook_url": url})),
            (
                "google_chat",
                json!({"type": "google_chat", "webhook_url": url}),
            ),
        ] {
            cases += 1;
            let (s, body) = server
                .call(
                    "POST",
                    &format!("{HOME}/register"),
                    None,
                    Some(json!({"executor_id": "ssrf", "notifications": [channel]})),
                )
                .await;
            assert_eq!(s, 400, "{kind} {url}: {body}");
            let error = body["error"].as_str().unwrap();
            assert!(
                error.contains(kind),
                "{kind} {url}: the error names the channel: {error}"
            );
            assert!(
                !error.contains(url),
                "the error does not echo the URL: {error}"
            );
        }
    }

    // A listener on loopback, reached by address and by a name (`localhost`).
    let listener = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&listener)
        .await;
    let port = listener.address().port();
    let mut registered = Vec::new();
    for (id, url) in [
        ("by-address", format!("http://127.0.0.1:{port}/hook")),
        ("by-name", format!("http://localhost:{port}/hook")),
        (
            "by-mapped-v6",
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        ),
    ] {
        let (s, body) = server
            .call(
                "POST",
                &format!("{HOME}/register"),
                None,
                Some(json!({"executor_id": id, "notifications": [
                    {"type": "webhook", "url": url},
                    {"type": "ntfy", "topic": "t", "server": format!("http://localhost:{port}")},
                ]})),
            )
            .await;
        // Literal loopback may be refused already at registration; accepted, it must
        // never be called.
        assert!(s == 201 || s == 400, "{id}: {s} {body}");
        if s == 201 {
            registered.push(id);
        }
    }
    assert!(
        registered.contains(&"by-name"),
        "a name is not resolved at registration"
    );
    let agent = server.register("agent").await;
    server.create(&agent, "Is the oven off?").await;

    // Every registered channel fails, recorded as an event; the listener hears nothing.
    let expected = registered.len() * 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let failed: Vec<Value> = event_lines(dir.path())
            .into_iter()
            .filter(|e| e["event_type"] == "notification_failed")
            .collect();
        if failed.len() >= expected {
            break failed;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected} notification_failed events: {failed:?}",
            failed.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in &registered {
        for channel in ["webhook", "ntfy"] {
            assert!(
                failed
                    .iter()
                    .any(|e| e["payload"]["executor_id"] == *id
                        && e["payload"]["channel"] == channel),
                "no notification_failed for {id}/{channel}: {failed:?}"
            );
        }
    }
    assert!(failed.iter().all(|e| e["payload"]["http_status"].is_null()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = listener.received_requests().await.unwrap_or_default();
    assert!(
        calls.is_empty(),
        "the loopback listener was called: {}",
        calls.len()
    );
    server.stop();
    println!(
        "ssrf: {cases} refused registrations; {} loopback channels never called, each failure recorded; {:.1} s",
        expected,
        started.elapsed().as_secs_f64()
    );
}

/// A request held by `?wait=60` is answered at once on SIGTERM, and does not hold up the
/// graceful stop; while it waits, /metrics counts it.
#[tokio::test]
async fn a_held_wait_is_answered_at_shutdown_and_counted_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let key = server.register("agent").await;
    let r = server.create(&key, "x").await;

    let client = reqwest::Client::new();
    let url = format!("{}{HOME}/requests/{r}?wait=60", server.base);
    let held = tokio::spawn({
        let key = key.clone();
        async move {
            let res = client.get(url).bearer_auth(key).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    });
    let mut counted = false;
    for _ in 0..50 {
        let text = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "mess_waiters 1") {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted, "the held request is counted in /metrics");

    let started = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || server.stop());
    let (status, thread) = held.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(thread["thread"]["version"], 1);
    stopped.await.unwrap();
    // Answered and stopped by the signal, not by the wait's minute.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A client busy on a kept-alive connection does not hold up the stop (actix ends the
/// connection after the answer in progress, not at SHUTDOWN_TIMEOUT).
#[tokio::test]
async fn a_client_busy_on_a_kept_alive_connection_does_not_hold_up_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let key = server.register("agent").await;
    let url = format!("{}{HOME}/requests", server.base);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let busy = tokio::spawn(async move {
        let mut answered = 0u32;
        let until = Instant::now() + Duration::from_secs(40);
        while Instant::now() < until {
            let Ok(res) = client.get(&url).bearer_auth(&key).send().await else {
                break; // refused: the server stopped accepting, or is gone
            };
            let _ = res.bytes().await;
            answered += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        answered
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    let stopped_in = started.elapsed();
    let answered = busy.await.unwrap();
    assert!(answered > 10, "the client was busy: {answered} answers");
    // The default SHUTDOWN_TIMEOUT is 30 s: a stop that waited for the client takes it.
    assert!(stopped_in < Duration::from_secs(15), "{stopped_in:?}");
}
