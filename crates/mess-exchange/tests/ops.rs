//! The operator's commands (`members`, `verify`, `copy`, `backup`, `compact`) on the real
//! binary and real stores: data directories written by the real server or by mess-core's
//! domain through mess-storage, and S3 buckets on moto (when `MESS_TEST_S3_ENDPOINT` is
//! set). DuckDB (through `MESS_TEST_PYTHON`) must read the same rows before and after a
//! compact or a copy.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::{HOME, Server, files_under, test_python};
use mess_core::clock::ManualClock;
use mess_core::{
    Actor, Clock, Command as Cmd, Env, Event, Exchange, ExchangeId, ExecutorId, NewRequest,
    OsEntropy, Outcome, Registration, Status, StatusUpdate, Storage, SystemClock, ThreadRef,
    Timestamp,
};
use mess_storage::{FsStorage, StorageConfig};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

// ---- running the binary ----

/// The settings of a store, as environment variables.
#[derive(Clone)]
struct Store {
    env: Vec<(String, String)>,
    /// The data directory, for a filesystem store.
    dir: Option<PathBuf>,
    /// The S3 settings, for a bucket.
    s3: Option<StorageConfig>,
}

impl Store {
    fn fs(dir: &Path) -> Self {
        Self {
            env: vec![
                ("STORAGE_TYPE".into(), "filesystem".into()),
                ("STORAGE_PATH".into(), dir.to_str().unwrap().into()),
            ],
            dir: Some(dir.to_path_buf()),
            s3: None,
        }
    }

    /// A fresh bucket on the moto server, or `None` (after a printed note) without one.
    fn s3(test: &str) -> Option<Self> {
        let Some(endpoint) = std::env::var("MESS_TEST_S3_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: MESS_TEST_S3_ENDPOINT is not set: the S3 cases must run in CI"
            );
            eprintln!("skipping {test}: MESS_TEST_S3_ENDPOINT is not set (a moto server)");
            return None;
        };
        let bucket = format!("ops-{}", uuid_like());
        create_bucket(&endpoint, &bucket);
        let env: Vec<(String, String)> = [
            ("STORAGE_TYPE", "s3"),
            ("S3_ENDPOINT", endpoint.as_str()),
            ("S3_BUCKET", bucket.as_str()),
            ("S3_ACCESS_KEY", "test"),
            ("S3_SECRET_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = {
            let vars: BTreeMap<String, String> = env.iter().cloned().collect();
            StorageConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
        };
        Some(Self {
            env,
            dir: None,
            s3: Some(config),
        })
    }

    /// This store as `copy`'s target (`TO_*`).
    fn as_target(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (format!("TO_{k}"), v.clone()))
            .collect()
    }

    async fn open(&self) -> Arc<dyn Storage> {
        match (&self.dir, &self.s3) {
            (Some(dir), _) => Arc::new(FsStorage::new(dir).unwrap()),
            (_, Some(config)) => mess_storage::open(config).await.unwrap(),
            _ => unreachable!("a store is a directory or a bucket"),
        }
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    mess_core::Entropy::fill(&OsEntropy, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `PUT /{bucket}` on moto (it takes it unsigned).
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
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
        "bucket {bucket}: {answer}"
    );
}

/// What a run of the binary printed.
struct Ran {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary in a clean environment with the store's settings and `extra`.
fn run(store: &Store, extra: &[(String, String)], args: &[&str]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mess-exchange"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in store.env.iter().chain(extra) {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().unwrap();
    let ran = Ran {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !ran.stderr.contains("panicked"),
        "{args:?} panicked: {ran:?}"
    );
    ran
}

/// Runs the binary and expects success.
fn ok(store: &Store, extra: &[(String, String)], args: &[&str]) -> Ran {
    let ran = run(store, extra, args);
    assert!(ran.ok, "{args:?}: {ran:?}");
    ran
}

/// Runs the binary and expects one clear error line on stderr (after any notes).
fn fails(store: &Store, extra: &[(String, String)], args: &[&str]) -> String {
    let ran = run(store, extra, args);
    assert!(!ran.ok, "{args:?} should fail: {ran:?}");
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let last = ran.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("mess-exchange: "), "{ran:?}");
    assert!(
        ran.stderr
            .lines()
            .all(|l| l.starts_with("mess-exchange: ") || l.starts_with("note: ")),
        "one error line: {ran:?}"
    );
    last
}

// ---- seeding a store through the domain ----

/// An exchange decided through mess-core with a clock the test moves, stored through
/// mess-storage as the server stores it.
struct Seeder {
    x: Exchange,
    clock: ManualClock,
}

impl Seeder {
    fn new(start: Timestamp) -> Self {
        Self {
            x: Exchange::new(ExchangeId::parse("home").unwrap()),
            clock: ManualClock::new(start),
        }
    }

    fn decide(&mut self, actor: &str, cmd: Cmd) -> (Vec<Event>, Outcome) {
        let actor = Actor::Member(ExecutorId::parse(actor).unwrap());
        let env = Env {
            clock: &self.clock,
            entropy: &OsEntropy,
        };
        let d = self.x.decide(&actor, cmd, env).unwrap();
        for e in &d.events {
            self.x.apply(e);
        }
        (d.events, d.outcome)
    }

    async fn register(&mut self, storage: &dyn Storage, id: &str, caps: &[&str]) {
        let reg = Registration::parse(&json!({
            "executor_id": id, "display_name": id.to_uppercase(), "capabilities": caps,
        }))
        .unwrap();
        let (events, outcome) = self.decide(id, Cmd::Register(reg));
        let Outcome::Registered { member, .. } = outcome else {
            panic!("registered")
        };
        storage.create_member(&member).await.unwrap();
        self.x.put_member(Arc::new((*member).clone()));
        storage.append(&events).await.unwrap();
    }

    fn create(&mut self, intent: &str) -> (ThreadRef, Vec<Event>) {
        let req = NewRequest::parse(json!({ "intent": intent })).unwrap();
        let (events, outcome) = self.decide("alice", Cmd::Create(req));
        let Outcome::Created(r) = outcome else {
            panic!("created")
        };
        (r, events)
    }

    fn to(&mut self, who: &str, r: &ThreadRef, status: Status) -> Vec<Event> {
        let cmd = Cmd::Update {
            thread: r.clone(),
            status: Some(StatusUpdate {
                to: status,
                extra: serde_json::Map::new(),
            }),
            mess: None,
        };
        self.decide(who, cmd).0
    }
}

/// Seeds `days` past days (three server runs each, so three segments a day on a data
/// directory, and one object per write on S3) and a little of today, through `open` (a
/// fresh storage per run, as a restarted server). Returns the refs created.
async fn seed<F, Fut>(open: F, days: i64) -> Vec<ThreadRef>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Storage>>,
{
    let now = SystemClock.now().unix_millis();
    let midnight = now - now.rem_euclid(DAY);
    let mut s = Seeder::new(Timestamp::from_unix_millis(
        midnight - days * DAY + 9 * 3_600_000,
    ));
    let first = open().await;
    s.register(&*first, "alice", &["ask"]).await;
    s.register(&*first, "bob", &["photo:capture"]).await;
    let mut refs = Vec::new();
    for day in 0..=days {
        if day == days {
            // Today: a little, which compact must leave alone.
            s.clock
                .set(Timestamp::from_unix_millis(now.max(midnight + 1)));
        } else {
            s.clock.set(Timestamp::from_unix_millis(
                midnight - (days - day) * DAY + 9 * 3_600_000,
            ));
        }
        for run in 0..3 {
            let storage = open().await;
            for n in 0..2 {
                let (r, events) = s.create(&format!("day {day} run {run} task {n}"));
                storage.append(&events).await.unwrap();
                s.clock.advance_millis(1_000);
                let mut more = s.to("bob", &r, Status::Claimed);
                if n == 0 {
                    s.clock.advance_millis(1_000);
                    more.extend(s.to("bob", &r, Status::Completed));
                }
                storage.append(&more).await.unwrap();
                refs.push(r);
            }
            s.clock.advance_millis(3_600_000);
            if day == days {
                break;
            }
        }
    }
    refs
}

/// Every thread of `home` as replay folds it, as JSON, by ref.
async fn threads(store: &Store) -> BTreeMap<String, String> {
    let replayed = store.open().await.replay().await.unwrap();
    let Some(home) = replayed.exchanges.get(&ExchangeId::parse("home").unwrap()) else {
        return BTreeMap::new();
    };
    let (page, _) = home.list(None, None, 100_000);
    page.iter()
        .map(|t| {
            (
                t.thread_ref.to_string(),
                serde_json::to_string(&**t).unwrap(),
            )
        })
        .collect()
}

// ---- DuckDB ----

const DUCKDB_ROWS: &str = r#"
import duckdb, json, sys
d = sys.argv[1]
con = duckdb.connect()
rows = con.execute(f"""
  SELECT event_id::VARCHAR, ts::VARCHAR, exchange_id::VARCHAR, thread_ref::VARCHAR,
         event_type::VARCHAR, actor_id::VARCHAR, to_json(payload)::VARCHAR, exchange::VARCHAR
  FROM read_json_auto('{d}/events/**/*.jsonl', hive_partitioning=true)
  ORDER BY event_id""").fetchall()
print(json.dumps([list(r) for r in rows]))
"#;

fn without_nulls(v: Value) -> Value {
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

/// The rows the seed's query reads from the data directory `dir`, sorted by event id (the
/// payload without the nulls DuckDB's unified struct adds), or `None` without DuckDB.
fn duckdb_rows(test: &str, dir: &Path) -> Option<Vec<Value>> {
    let python = test_python(test)?;
    let out = Command::new(python)
        .args(["-c", DUCKDB_ROWS, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb on {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        rows.into_iter()
            .map(|mut r| {
                let payload: Value = serde_json::from_str(r[6].as_str().unwrap()).unwrap();
                r[6] = without_nulls(payload);
                r
            })
            .collect(),
    )
}

/// Event lines under `dir/events`, as text, sorted.
fn event_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = segments(dir)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// Every `.jsonl` file under `dir/events`.
fn segments(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect()
}

/// The store's own files under `dir` (not its lock), relative, with their bytes.
fn store_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .filter(|(rel, _)| rel != mess_storage::LOCK_FILE)
        .collect()
}

fn verify_json(store: &Store) -> Value {
    let ran = run(store, &[], &["verify", "--json"]);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

// ---- members ----

#[tokio::test]
async fn members_are_listed_removed_with_their_claims_released_and_rekeyed_on_a_store_the_server_wrote()
 {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    let server = Server::start(data.path(), &[]);
    let alice = server.register("alice").await;
    let (s, body) = server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({
                "executor_id": "bob", "display_name": "Bob's phone",
                "capabilities": ["photo:capture"],
                "notifications": [{"type": "ntfy", "topic": "secret-topic-bob"}],
            })),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let bob = body["api_key"].as_str().unwrap().to_owned();
    let carol = server.register("carol").await;
    let claimed = server.create(&alice, "Check the door").await;
    let working = server.create(&alice, "Water the plants").await;
    let open = server.create(&alice, "Feed the cat").await;
    for (r, to) in [
        (&claimed, "claimed"),
        (&working, "claimed"),
        (&working, "in_progress"),
    ] {
        let (s, body) = server
            .call(
                "PATCH",
                &format!("{HOME}/requests/{r}"),
                Some(&bob),
                Some(json!({ "status": to })),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }
    server.stop();

    // list
    let listed = ok(&store, &[], &["members", "list", "--exchange", "home"]);
    let bob_line = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("bob "))
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!(bob_line.contains("Bob's phone") && bob_line.contains("photo:capture"));
    assert!(bob_line.contains(&claimed) && bob_line.contains(&working));
    assert!(listed.stdout.contains("3 members in exchange home"));
    let json: Value = serde_json::from_str(
        &ok(
            &store,
            &[],
            &["members", "list", "--exchange", "home", "--json"],
        )
        .stdout,
    )
    .unwrap();
    let b = json
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["executor_id"] == "bob")
        .unwrap();
    assert_eq!(b["channels"], json!(["ntfy"]));
    let mut holds: Vec<&str> = b["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    holds.sort();
    let mut expected = vec![claimed.as_str(), working.as_str()];
    expected.sort();
    assert_eq!(holds, expected);
    for secret in ["secret-topic-bob", "key_hash", &bob[10..]] {
        assert!(!json.to_string().contains(secret), "{secret} printed");
    }

    // remove
    let removed = ok(
        &store,
        &[],
        &["members", "remove", "--exchange", "home", "bob"],
    );
    assert!(
        removed
            .stdout
            .contains(&format!("released {working} (in_progress -> pending)")),
        "{removed:?}"
    );
    assert!(
        removed
            .stdout
            .contains("removed bob from exchange home (2 claims released)")
    );
    assert!(
        !data
            .path()
            .join("executors/exchange=home/bob.json")
            .exists()
    );
    let lines = common::event_lines(data.path());
    let by_exchange: Vec<&Value> = lines
        .iter()
        .filter(|e| e["actor_id"] == "exchange")
        .collect();
    let released: Vec<&str> = by_exchange
        .iter()
        .filter(|e| e["event_type"] == "status_changed")
        .map(|e| {
            assert_eq!(e["payload"]["new_status"], "pending");
            e["thread_ref"].as_str().unwrap()
        })
        .collect();
    assert_eq!(released.len(), 2);
    assert!(released.contains(&claimed.as_str()) && released.contains(&working.as_str()));
    assert!(by_exchange.iter().any(|e| {
        e["event_type"] == "message_added"
            && e["payload"]["mess"][0]["status"]["reason"] == "member_removed"
    }));
    assert!(
        by_exchange
            .iter()
            .any(|e| e["event_type"] == "executor_removed" && e["payload"]["executor_id"] == "bob")
    );
    let again = fails(
        &store,
        &[],
        &["members", "remove", "--exchange", "home", "bob"],
    );
    assert_eq!(again, "mess-exchange: no member bob in exchange home");

    // reset-key
    let reset = ok(
        &store,
        &[],
        &["members", "reset-key", "--exchange", "home", "alice"],
    );
    let new_key = reset.stdout.trim().to_owned();
    assert_eq!(reset.stdout.lines().count(), 1, "{reset:?}");
    assert!(new_key.starts_with("mess_home_"), "{reset:?}");
    assert!(reset.stderr.contains("Save it now"), "{reset:?}");
    assert!(!reset.stderr.contains(&new_key));

    // The server agrees.
    let server = Server::start(data.path(), &[]);
    let path = format!("{HOME}/requests/{working}");
    assert_eq!(server.call("GET", &path, Some(&bob), None).await.0, 401);
    assert_eq!(server.call("GET", &path, Some(&alice), None).await.0, 401);
    let (s, t) = server.call("GET", &path, Some(&new_key), None).await;
    let t = &t["thread"];
    assert_eq!((s, t["status"].as_str()), (200, Some("pending")), "{t}");
    assert_eq!(t["executor_id"], Value::Null);
    let (s, t) = server
        .call(
            "GET",
            &format!("{HOME}/requests/{open}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(
        (s, t["thread"]["status"].as_str()),
        (200, Some("pending")),
        "{t}"
    );
    let (s, body) = server
        .call(
            "PATCH",
            &path,
            Some(&carol),
            Some(json!({"status": "claimed"})),
        )
        .await;
    assert_eq!(s, 200, "anyone may take a released claim: {body}");
    server.stop();
    ok(&store, &[], &["verify"]);
}

#[test]
fn member_commands_name_what_is_wrong_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    assert_eq!(
        fails(&store, &[], &["members", "list", "--exchange", "Not Valid"]),
        "mess-exchange: --exchange \"Not Valid\" is not a valid exchange id"
    );
    assert_eq!(
        fails(&store, &[], &["members", "list", "--exchange", "home"]),
        "mess-exchange: no exchange home in this store (it holds none)"
    );
    let missing = Store::fs(&data.path().join("nowhere"));
    let e = fails(&missing, &[], &["members", "list", "--exchange", "home"]);
    assert!(e.contains("is not a directory: no store there"), "{e}");
    assert!(!data.path().join("nowhere").exists(), "nothing created");
}

// ---- the lock ----

#[tokio::test]
async fn offline_commands_refuse_a_store_another_process_has_locked_and_backup_does_not() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 1).await;
    let held = mess_storage::lock_dir(data.path()).unwrap();
    let pid = std::process::id();
    for args in [
        &["members", "list", "--exchange", "home"][..],
        &["members", "reset-key", "--exchange", "home", "alice"],
        &["verify"],
        &["compact", "--exchange", "home"],
        &[
            "copy",
            "--to-storage-type",
            "filesystem",
            "--to-storage-path",
            data.path().join("../copy-target").to_str().unwrap(),
        ],
    ] {
        let e = fails(&store, &[], args);
        assert!(
            e.contains("is in use by another mess-exchange process")
                && e.contains(&format!("(pid {pid})"))
                && e.contains("stop the server"),
            "{args:?}: {e}"
        );
    }
    // A backup is made for a running store: it does not need the lock.
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("backup");
    ok(&store, &[], &["backup", into.to_str().unwrap()]);
    drop(held);
    ok(&store, &[], &["verify"]);
}

// ---- verify ----

#[tokio::test]
async fn verify_counts_a_clean_store_and_names_torn_lines_duplicates_and_stray_files() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    let refs = seed(|| async { store.open().await }, 2).await;
    let clean = ok(&store, &[], &["verify"]);
    let lines = event_lines(data.path()).len();
    assert!(
        clean.stdout.contains(&format!(
            "total: 1 exchanges, {lines} events, {} threads, 2 members, 0 unreadable lines",
            refs.len()
        )),
        "{clean:?}"
    );
    assert!(clean.stdout.contains("ok: nothing wrong"));
    let v = verify_json(&store);
    assert_eq!(
        v["census"]["exchanges"]["home"]["by_status"]["completed"],
        7
    );
    assert_eq!(v["census"]["exchanges"]["home"]["by_status"]["claimed"], 7);
    assert_eq!(v["census"]["exchanges"]["home"]["days"], 3);
    assert_eq!(v["problems_total"], 0);

    // Break it in every way the command must name.
    let segs = segments(data.path());
    let rel = |p: &Path| {
        p.strip_prefix(data.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (torn, garbled, twice) = (&segs[0], &segs[1], &segs[2]);
    let torn_lines = std::fs::read_to_string(torn).unwrap().lines().count();
    std::fs::OpenOptions::new()
        .append(true)
        .open(torn)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"event_id\":\"half"))
        .unwrap();
    let mut text = std::fs::read_to_string(garbled).unwrap();
    text.insert_str(0, "not an event\n");
    std::fs::write(garbled, text).unwrap();
    let first = std::fs::read_to_string(twice)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    // Named to sort after the uuids: the second copy is the one reported.
    let dup = twice.with_file_name("zzzz-copy.jsonl");
    std::fs::write(&dup, format!("{first}\n")).unwrap();
    std::fs::write(data.path().join("events/junk.jsonl"), "{}\n").unwrap();
    std::fs::write(data.path().join("events/exchange=home/README.txt"), "hi").unwrap();
    std::fs::write(
        data.path().join("executors/exchange=home/alice.json#1"),
        "{",
    )
    .unwrap();
    std::fs::write(data.path().join("notes.txt"), "mine").unwrap();

    let ran = run(&store, &[], &["verify"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert_eq!(ran.stderr.trim(), "mess-exchange: 7 problems found");
    let out = &ran.stdout;
    for expected in [
        format!("{}:{}: a torn last line", rel(torn), torn_lines + 1),
        format!("{}:1: does not parse as an event", rel(garbled)),
        format!("{}:1: event ", rel(&dup)),
        "events/junk.jsonl: not the store's own: not inside an events/exchange={id}/ directory; \
         DuckDB's events/**/*.jsonl reads it and fails the whole query"
            .to_owned(),
        "events/exchange=home/README.txt: not the store's own".to_owned(),
        "executors/exchange=home/alice.json#1: a staging file left by an interrupted write"
            .to_owned(),
        "notes.txt: not the store's own: not part of a mess-exchange store".to_owned(),
    ] {
        assert!(out.contains(&expected), "{expected}\n{ran:?}");
    }
    assert!(out.contains("is stored twice"), "{ran:?}");
    assert!(out.contains("2 unreadable lines"), "{ran:?}");
    let v = verify_json(&store);
    assert_eq!(v["problems_total"], 7);
    assert_eq!(v["census"]["unreadable_lines"], 2);
}

#[tokio::test]
async fn verify_names_a_message_whose_attachment_is_missing() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    let storage = store.open().await;
    let mut s = Seeder::new(SystemClock.now());
    s.register(&*storage, "alice", &["ask"]).await;
    let (r, mut events) = s.create("two photos");
    let kept = mess_core::blob::sha256_hex(b"kept photo");
    let lost = mess_core::blob::sha256_hex(b"lost photo");
    let reference = |sha: &str| format!("{}{sha}:image/jpeg;base64", mess_core::blob::PREFIX);
    let block = mess_core::Block::parse(
        &json!({"response": {"content": [reference(&kept), {"image": reference(&lost)}]}}),
    )
    .unwrap();
    let (more, _) = s.decide(
        "alice",
        Cmd::Update {
            thread: r,
            status: None,
            mess: Some(vec![block]),
        },
    );
    events.extend(more);
    storage.append(&events).await.unwrap();
    for (sha, bytes) in [(&kept, &b"kept photo"[..]), (&lost, b"lost photo")] {
        storage
            .put_blob(&ExchangeId::parse("home").unwrap(), sha, bytes)
            .await
            .unwrap();
    }
    // A photo whose request was refused after it was stored: no message refers to it.
    let orphan = mess_core::blob::sha256_hex(b"refused photo");
    storage
        .put_blob(
            &ExchangeId::parse("home").unwrap(),
            &orphan,
            b"refused photo",
        )
        .await
        .unwrap();
    drop(storage);
    let clean = ok(&store, &[], &["verify"]);
    assert!(clean.stdout.contains("ok: nothing wrong"), "{clean:?}");
    assert!(
        clean.stdout.contains(
            "blobs/: 3 objects (copied as they are, not checked); 1 attachment no message \
             refers to"
        ),
        "{clean:?}"
    );
    assert_eq!(verify_json(&store)["census"]["unreferenced_blobs"], 1);

    std::fs::remove_file(data.path().join(format!("blobs/exchange=home/{lost}"))).unwrap();
    let ran = run(&store, &[], &["verify"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stdout.contains(&format!(
            "refers to the attachment blobs/exchange=home/{lost}, which is missing"
        )),
        "{ran:?}"
    );
    assert!(!ran.stdout.contains(&kept), "{ran:?}");
    assert_eq!(verify_json(&store)["problems_total"], 1);
}

// ---- compact ----

/// Per past day directory of `home`: how many segments it holds.
fn segments_per_day(dir: &Path) -> BTreeMap<String, usize> {
    let mut days = BTreeMap::new();
    for p in segments(dir) {
        let day = p
            .parent()
            .unwrap()
            .strip_prefix(dir.join("events/exchange=home"))
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        *days.entry(day).or_default() += 1;
    }
    days
}

fn today_dir() -> String {
    let d = SystemClock.now().date();
    format!("{:04}/{:02}/{:02}", d.year(), u8::from(d.month()), d.day())
}

#[tokio::test]
async fn compact_merges_each_past_day_into_one_segment_and_replay_and_duckdb_read_the_same() {
    let test = "compact_merges_each_past_day_into_one_segment";
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 3).await;
    let before_days = segments_per_day(data.path());
    assert_eq!(before_days.len(), 4);
    assert!(
        before_days
            .iter()
            .all(|(day, n)| *n >= 3 || *day == today_dir()),
        "{before_days:?}"
    );
    let (lines, threads_before, rows_before) = (
        event_lines(data.path()),
        threads(&store).await,
        duckdb_rows(test, data.path()),
    );
    let census_before = verify_json(&store)["census"].clone();

    let dry = ok(&store, &[], &["compact", "--exchange", "home", "--dry-run"]);
    assert!(
        dry.stdout.contains("dry run: nothing was written"),
        "{dry:?}"
    );
    assert_eq!(segments_per_day(data.path()), before_days);

    let ran = ok(&store, &[], &["compact", "--exchange", "home"]);
    assert!(
        ran.stdout.contains("3 days of exchange home compacted"),
        "{ran:?}"
    );
    assert!(
        ran.stdout.contains("exchange home replays the same"),
        "{ran:?}"
    );
    let after_days = segments_per_day(data.path());
    for (day, n) in &after_days {
        if *day == today_dir() {
            assert_eq!(*n, before_days[day], "today is left alone");
        } else {
            assert_eq!(*n, 1, "{day}: {after_days:?}");
        }
    }
    assert_eq!(
        event_lines(data.path()),
        lines,
        "the same lines, byte for byte"
    );
    assert_eq!(threads(&store).await, threads_before);
    let mut census_after = verify_json(&store)["census"].clone();
    census_after["exchanges"]["home"]["segments"] =
        census_before["exchanges"]["home"]["segments"].clone();
    assert_eq!(census_after, census_before);
    if let Some(before) = rows_before {
        assert_eq!(duckdb_rows(test, data.path()).unwrap(), before);
    }
    let again = ok(&store, &[], &["compact", "--exchange", "home"]);
    assert!(
        again.stdout.contains("0 days of exchange home compacted"),
        "{again:?}"
    );

    let tomorrow = (SystemClock.now().date() + time::Duration::days(1)).to_string();
    let e = fails(
        &store,
        &[],
        &["compact", "--exchange", "home", "--before", &tomorrow],
    );
    assert!(e.contains("only past days are compacted"), "{e}");
    let e = fails(&store, &[], &["compact", "--exchange", "office"]);
    assert_eq!(e, "mess-exchange: no exchange office in this store");
}

#[tokio::test]
async fn an_interrupted_compact_shows_in_verify_and_compact_run_again_repairs_it() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 1).await;
    let lines = event_lines(data.path());
    let threads_before = threads(&store).await;
    // A compact that wrote its merged segment and died before deleting the originals: the
    // day's lines are there twice.
    let yesterday = segments(data.path())
        .into_iter()
        .filter(|p| !p.to_str().unwrap().contains(&today_dir()))
        .collect::<Vec<_>>();
    let merged: String = yesterday
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    std::fs::write(yesterday[0].with_file_name("zzzz-merged.jsonl"), &merged).unwrap();
    let v = verify_json(&store);
    assert_eq!(v["problems_total"], merged.lines().count(), "{v}");
    let ran = ok(&store, &[], &["compact", "--exchange", "home"]);
    assert!(
        ran.stdout.contains(&format!(
            "{} duplicate lines dropped",
            merged.lines().count()
        )),
        "{ran:?}"
    );
    assert_eq!(event_lines(data.path()), lines);
    assert_eq!(threads(&store).await, threads_before);
    ok(&store, &[], &["verify"]);
}

#[tokio::test]
async fn a_day_with_a_line_that_does_not_parse_is_left_alone() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 2).await;
    let before = segments_per_day(data.path());
    let victim = segments(data.path())
        .into_iter()
        .find(|p| !p.to_str().unwrap().contains(&today_dir()))
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&victim)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"torn"))
        .unwrap();
    let ran = run(&store, &[], &["compact", "--exchange", "home"]);
    assert!(!ran.ok, "{ran:?}");
    assert!(ran.stdout.contains("left alone home"), "{ran:?}");
    assert!(ran.stderr.contains("1 days were left alone"), "{ran:?}");
    let after = segments_per_day(data.path());
    let victim_day = victim
        .parent()
        .unwrap()
        .strip_prefix(data.path().join("events/exchange=home"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for (day, n) in &after {
        if *day == victim_day || *day == today_dir() {
            assert_eq!(*n, before[day], "{day} left alone: {after:?}");
        } else {
            assert_eq!(*n, 1, "{day} compacted: {after:?}");
        }
    }
}

// ---- copy ----

#[tokio::test]
async fn copy_moves_a_store_to_s3_and_back_byte_for_byte_with_the_same_rows() {
    let test = "copy_moves_a_store_to_s3_and_back";
    let Some(bucket) = Store::s3(test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 2).await;
    std::fs::write(data.path().join("events/junk.jsonl"), "{}\n").unwrap();
    std::fs::create_dir_all(data.path().join("answers/exchange=home")).unwrap();
    std::fs::write(
        data.path().join("answers/exchange=home/0a1b.json"),
        r#"{"status":201}"#,
    )
    .unwrap();
    let rows_before = {
        let clean = tempfile::tempdir().unwrap();
        // DuckDB fails on the stray file: read the store's own segments.
        let mut files = store_files(data.path());
        files.remove("events/junk.jsonl");
        for (rel, bytes) in &files {
            let p = clean.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        duckdb_rows(test, clean.path())
    };

    let ran = ok(&store, &bucket.as_target(), &["copy"]);
    assert!(
        ran.stdout
            .contains("not copied (not store data): events/junk.jsonl"),
        "{ran:?}"
    );
    assert!(
        ran.stdout
            .contains("the copy replays to the same counts as the source"),
        "{ran:?}"
    );
    assert_eq!(threads(&bucket).await, threads(&store).await);
    // Into a store that holds data: refused, unless forced.
    let e = fails(&store, &bucket.as_target(), &["copy"]);
    assert!(e.contains("is not empty"), "{e}");
    ok(&store, &bucket.as_target(), &["copy", "--force"]);

    let back = tempfile::tempdir().unwrap();
    let back_store = Store::fs(&back.path().join("data"));
    ok(&bucket, &back_store.as_target(), &["copy"]);
    let mut expected = store_files(data.path());
    expected.remove("events/junk.jsonl");
    assert_eq!(store_files(&back.path().join("data")), expected);
    if let Some(before) = rows_before {
        assert_eq!(
            duckdb_rows(test, &back.path().join("data")).unwrap(),
            before
        );
    }
    ok(&back_store, &[], &["verify"]);
}

#[tokio::test]
async fn copy_between_data_directories_refuses_itself_and_a_half_given_target() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 1).await;
    let e = fails(&store, &store.as_target(), &["copy"]);
    assert_eq!(
        e,
        "mess-exchange: the target is the source: give another directory or bucket"
    );
    let e = fails(
        &store,
        &[("TO_STORAGE_TYPE".into(), "filesystem".into())],
        &["copy"],
    );
    assert!(
        e.contains("--to-storage-path (TO_STORAGE_PATH) is required"),
        "{e}"
    );
    let e = fails(
        &store,
        &[("TO_STORAGE_TYPE".into(), "s3".into())],
        &["copy"],
    );
    assert!(
        e.contains("--to-s3-bucket (TO_S3_BUCKET) is required"),
        "{e}"
    );
    // Attachments (a prefix this version copies without checking) go along.
    std::fs::create_dir_all(data.path().join("blobs/exchange=home")).unwrap();
    std::fs::write(
        data.path().join("blobs/exchange=home/ab12.jpg"),
        b"\xff\xd8jpeg",
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let copy = Store::fs(&target.path().join("copy"));
    let ran = ok(&store, &copy.as_target(), &["copy"]);
    assert!(ran.stdout.contains("blobs/: 1 objects"), "{ran:?}");
    assert_eq!(
        store_files(&target.path().join("copy")),
        store_files(data.path())
    );
    assert_eq!(threads(&copy).await, threads(&store).await);
}

#[tokio::test]
async fn compact_on_s3_merges_the_objects_of_each_past_day_and_duckdb_reads_the_same_rows() {
    let test = "compact_on_s3_merges_the_objects_of_each_past_day";
    let Some(bucket) = Store::s3(test) else {
        return;
    };
    seed(|| async { bucket.open().await }, 2).await;
    let before = tempfile::tempdir().unwrap();
    let before_store = Store::fs(&before.path().join("data"));
    ok(&bucket, &before_store.as_target(), &["copy"]);
    let before_days = segments_per_day(&before.path().join("data"));
    assert!(
        before_days.values().all(|n| *n >= 4),
        "one object per write: {before_days:?}"
    );
    let threads_before = threads(&bucket).await;

    let ran = ok(&bucket, &[], &["compact", "--exchange", "home"]);
    assert!(
        ran.stdout.contains("2 days of exchange home compacted"),
        "{ran:?}"
    );
    assert!(
        ran.stderr
            .contains("note: holding exchange home (lease epoch 1)"),
        "{ran:?}"
    );
    assert_eq!(threads(&bucket).await, threads_before);
    // The merged objects are batches of the command's lease epoch: the next holder seals
    // that epoch with them, and replay still reads every thread.
    let again = ok(&bucket, &[], &["compact", "--exchange", "home"]);
    assert!(
        again.stdout.contains("0 days of exchange home compacted"),
        "{again:?}"
    );
    assert!(again.stderr.contains("(lease epoch 2)"), "{again:?}");
    assert_eq!(threads(&bucket).await, threads_before);

    let after = tempfile::tempdir().unwrap();
    ok(
        &bucket,
        &Store::fs(&after.path().join("data")).as_target(),
        &["copy"],
    );
    let after_days = segments_per_day(&after.path().join("data"));
    for (day, n) in &after_days {
        let expected = if *day == today_dir() {
            before_days[day]
        } else {
            1
        };
        assert_eq!(*n, expected, "{day}");
    }
    assert_eq!(
        event_lines(&after.path().join("data")),
        event_lines(&before.path().join("data"))
    );
    if let Some(rows) = duckdb_rows(test, &before.path().join("data")) {
        assert_eq!(duckdb_rows(test, &after.path().join("data")).unwrap(), rows);
    }
    ok(&bucket, &[], &["verify"]);
}

/// On S3 the commands that change an exchange hold its lease, so replicas may run: a
/// replica serving it keeps it (the command says which), one that stops hands it over, and
/// the next replica reads the change when it takes the exchange back from the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_commands_hold_the_lease_beside_running_replicas() {
    let test = "member_commands_hold_the_lease_beside_running_replicas";
    let Some(bucket) = Store::s3(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let replica = || {
        let port = common::free_port().to_string();
        let mut env = bucket.env.clone();
        env.extend([
            ("LEASE_PERIOD".to_owned(), "PT1S".to_owned()),
            (
                "ADVERTISE_URL".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("PORT".to_owned(), port),
        ]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start(dir.path(), &env)
    };
    let a = replica();
    let alice = a.register("alice").await;
    let bob = a.register("bob").await;
    let r = a.create(&alice, "is the garage door closed?").await;
    let (s, body) = a
        .call(
            "PATCH",
            &format!("{HOME}/requests/{r}"),
            Some(&bob),
            Some(json!({"status": "claimed"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let period = [("LEASE_PERIOD".to_owned(), "PT1S".to_owned())];

    // a serves home and keeps it: the command waits, then names it.
    let e = fails(
        &bucket,
        &period,
        &[
            "members",
            "reset-key",
            "--exchange",
            "home",
            "bob",
            "--wait",
            "PT2S",
        ],
    );
    assert!(
        e.contains(&format!("is served by the replica at {}", a.base)),
        "{e}"
    );

    // A second replica; a stops and hands home over; the command takes it.
    let b = replica();
    a.stop();
    let ran = ok(
        &bucket,
        &period,
        &["members", "remove", "--exchange", "home", "bob"],
    );
    assert!(
        ran.stdout
            .contains(&format!("released {r} (claimed -> pending)")),
        "{ran:?}"
    );
    assert!(
        ran.stderr.contains("note: holding exchange home"),
        "{ran:?}"
    );
    assert!(
        ran.stderr.contains("replicas answer its requests 503"),
        "the note reads as one sentence: {ran:?}"
    );

    // b takes home back from the command and serves what it did.
    let (s, body) = b
        .call("GET", &format!("{HOME}/requests/{r}"), Some(&alice), None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["thread"]["status"], "pending", "{body}");
    let (s, _) = b
        .call("GET", &format!("{HOME}/requests/{r}"), Some(&bob), None)
        .await;
    assert_eq!(s, 401, "bob was removed");
    ok(&bucket, &[], &["verify"]);
}

// ---- backup ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_writes_holds_every_acknowledged_write_and_starts() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    let server = Server::start(data.path(), &[]);
    let key = server.register("alice").await;
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        acknowledged.push(server.create(&key, &format!("before {n}")).await);
    }
    // Writers keep going while the backup runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, key, stop) = (
                server.client.clone(),
                server.base.clone(),
                key.clone(),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = json!({ "intent": format!("during {w} {n}") });
                    let r = common::call_at(
                        &client,
                        &base,
                        "POST",
                        &format!("{HOME}/requests"),
                        Some(&key),
                        Some(body),
                    )
                    .await;
                    assert_eq!(r.unwrap().0, 201);
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("backup");
    let ran = {
        let (store, into) = (store.clone(), into.clone());
        tokio::task::spawn_blocking(move || ok(&store, &[], &["backup", into.to_str().unwrap()]))
            .await
            .unwrap()
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut during = 0;
    for w in writers {
        during += w.await.unwrap();
    }
    assert!(during > 0, "writes ran during the backup");
    assert!(ran.stdout.contains("backed up"), "{ran:?}");
    server.stop();

    // The backup is a store: whole lines only, and a server starts on it.
    let backup = Store::fs(&into);
    ok(&backup, &[], &["verify"]);
    let restored = Server::start(&into, &[]);
    for r in &acknowledged {
        let (s, _) = restored
            .call("GET", &format!("{HOME}/requests/{r}"), Some(&key), None)
            .await;
        assert_eq!(s, 200, "{r} was acknowledged before the backup started");
    }
    restored.stop();

    // Into a directory that holds something: refused.
    let e = fails(&store, &[], &["backup", into.to_str().unwrap()]);
    assert!(e.contains("is not empty"), "{e}");
    let e = fails(
        &store,
        &[],
        &["backup", data.path().join("inside").to_str().unwrap()],
    );
    assert!(e.contains("is inside the store"), "{e}");
}

#[tokio::test]
async fn a_backup_keeps_whole_lines_only_and_leaves_foreign_files_behind() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::fs(data.path());
    seed(|| async { store.open().await }, 1).await;
    let lines = event_lines(data.path());
    // What a read in the middle of an append sees: a segment ending in part of a line.
    let seg = &segments(data.path())[0];
    std::fs::OpenOptions::new()
        .append(true)
        .open(seg)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"event_id\":\"in-flight"))
        .unwrap();
    std::fs::write(data.path().join("events/junk.jsonl"), "{}\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("b");
    let ran = ok(&store, &[], &["backup", into.to_str().unwrap()]);
    assert!(
        ran.stdout
            .contains("1 segments were being written: their last, partial line was left out"),
        "{ran:?}"
    );
    assert!(
        ran.stdout
            .contains("not copied (not store data): events/junk.jsonl"),
        "{ran:?}"
    );
    assert!(ran.stdout.contains("ok: nothing wrong"), "{ran:?}");
    assert_eq!(event_lines(&into), lines);
    ok(&Store::fs(&into), &[], &["verify"]);
}

// ---- help ----

#[test]
fn every_operator_command_explains_itself_and_says_when_to_stop_the_server() {
    let store = Store::fs(Path::new("/nonexistent"));
    for (args, words) in [
        (&["members", "--help"][..], "with the server stopped"),
        (&["members", "--help"][..], "hold the exchange's lease"),
        (&["members", "list", "--help"], "when to run it"),
        (&["members", "remove", "--help"], "when to run it"),
        (&["members", "reset-key", "--help"], "when to run it"),
        (&["verify", "--help"], "stop the server first"),
        (&["copy", "--help"], "stop the server first"),
        (&["compact", "--help"], "with the server stopped"),
        (&["compact", "--help"], "holds the exchange's lease"),
        (&["backup", "--help"], "while the server runs"),
    ] {
        let ran = ok(&store, &[], args);
        assert!(ran.stdout.contains(words), "{args:?}: {ran:?}");
    }
}
