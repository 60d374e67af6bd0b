//! # mess-bench
//!
//! The tools `scripts/bench.sh` drives (see docs/benchmarks.md):
//! - `hello`: the minimal actix-web hello-world fixture the server is compared with.
//! - `seed`: writes a data directory of N threads × K events through the real domain
//!   (`Exchange::decide` + `apply`) and `FsStorage`, and a manifest of keys and refs.
//! - `pool`: lists the refs of one status through the API, for wrk's claim/complete runs.
//! - `waiters`, `hold`, `fanout`: many-connection load for the waiting GETs and the change
//!   feed (scripts/bench/waiters.sh; see `load`).
#![forbid(unsafe_code)]

mod load;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::{Parser, Subcommand};
use mess_core::clock::ManualClock;
use mess_core::{
    Actor, Block, BlockKind, Clock, Command, Decision, Entropy, Env, Event, Exchange, ExchangeId,
    NewRequest, OsEntropy, Outcome, Registration, Status, StatusUpdate, Storage, SystemClock,
    ThreadRef, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

/// Benchmark tools for mess-exchange.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the hello-world fixture: `GET /hello` (a fixed 235-byte JSON body) and
    /// `POST /hello` (parses a small JSON body, answers 201).
    Hello {
        /// Port to listen on.
        #[arg(long)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
    },
    /// Write a data directory the server replays, and a manifest of keys and refs.
    Seed {
        /// The data directory (created; should be empty).
        #[arg(long)]
        dir: PathBuf,
        /// How many request threads.
        #[arg(long)]
        threads: usize,
        /// Events per thread (thread_created, then status changes and messages).
        #[arg(long, default_value_t = 10)]
        events_per_thread: usize,
        /// The manifest to write (JSON); the ref lists go beside it.
        #[arg(long)]
        out: PathBuf,
        /// The exchange.
        #[arg(long, default_value = "home")]
        exchange: String,
        /// Events per `FsStorage::append` call.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Give every request timers that are pending, not due: `needed_by` 30 days from
        /// now and `claim_timeout` P7D (the timers benchmark, scripts/bench/timers.sh).
        #[arg(long)]
        timers: bool,
    },
    /// Write the refs of every thread of one status (optionally held by one member), one
    /// per line, by paging through the running server's listing.
    Pool {
        /// The server, `HOST:PORT`.
        #[arg(long)]
        addr: String,
        /// The exchange.
        #[arg(long, default_value = "home")]
        exchange: String,
        /// An API key of the exchange.
        #[arg(long)]
        key: String,
        /// The status.
        #[arg(long)]
        status: String,
        /// Only threads whose assignee is this member.
        #[arg(long)]
        executor: Option<String>,
        /// Stop after this many refs.
        #[arg(long, default_value_t = 1_000_000)]
        max: usize,
        /// Where to write the refs.
        #[arg(long)]
        out: PathBuf,
    },
    /// Server RSS with N idle keep-alive connections, then with N waiting GETs
    /// (`?wait=`) on them; then the time from a PATCH's answer to its waiter's answer.
    /// Prints `key value` lines.
    Waiters {
        #[command(flatten)]
        wait: WaitOpts,
        /// The server's process id (VmRSS from /proc/PID/status).
        #[arg(long)]
        pid: u32,
        #[command(flatten)]
        patch: PatchOpts,
        /// How many waited threads to PATCH.
        #[arg(long, default_value_t = 1000)]
        patches: usize,
        /// The first waited thread (index in the refs) to PATCH.
        #[arg(long, default_value_t = 0)]
        patch_from: usize,
        /// PATCHes in flight at once (each group waits for its waiters).
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// Seconds to let RSS settle before reading it.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
    },
    /// Hold N waiting GETs (each re-armed when answered) until killed or --seconds pass.
    Hold {
        #[command(flatten)]
        wait: WaitOpts,
        /// Written (with N) once every waiting GET is sent.
        #[arg(long)]
        ready: Option<PathBuf>,
        /// Give up after this long.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
    /// Subscribe M clients to the change feed; per round, PATCH one thread and time its
    /// event's arrival at every subscriber. Prints `key value` lines.
    Fanout {
        /// The server, `HOST:PORT`.
        #[arg(long)]
        addr: String,
        /// The exchange.
        #[arg(long, default_value = "home")]
        exchange: String,
        /// The subscribers' API key.
        #[arg(long)]
        key: String,
        /// How many subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[command(flatten)]
        patch: PatchOpts,
        /// Threads to PATCH, one per line, one per round.
        #[arg(long)]
        refs: PathBuf,
        /// Rounds counted.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Rounds run first and not counted.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
}

/// The waiting GETs: where, as whom, on which threads.
#[derive(Debug, clap::Args)]
struct WaitOpts {
    /// The server, `HOST:PORT`.
    #[arg(long)]
    addr: String,
    /// The exchange.
    #[arg(long, default_value = "home")]
    exchange: String,
    /// The waiters' API key.
    #[arg(long)]
    key: String,
    /// Threads to wait on, one per line (one per connection).
    #[arg(long)]
    refs: PathBuf,
    /// How many connections (each one waiting GET).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// The `wait` of each GET, seconds.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    /// Against the fixture (`mess-bench hello`): `GET /hello`, then `GET /hello/wait`
    /// (a handler that sleeps), instead of the thread GETs; with `--patches 0`.
    #[arg(long)]
    fixture: bool,
}

impl From<WaitOpts> for load::WaitArgs {
    fn from(o: WaitOpts) -> Self {
        Self {
            addr: o.addr,
            exchange: o.exchange,
            key: o.key,
            refs: o.refs,
            conns: o.conns,
            wait_secs: o.wait_secs,
            fixture: o.fixture,
        }
    }
}

/// The PATCH that changes a thread.
#[derive(Debug, clap::Args)]
struct PatchOpts {
    /// The API key that PATCHes.
    #[arg(long)]
    patch_key: String,
    /// The PATCH body.
    #[arg(long, default_value = r#"{"status":"claimed"}"#)]
    patch_body: String,
}

/// Runs `f` on a multi-threaded tokio runtime (one worker per core).
fn on_tokio<F: std::future::Future<Output = Result<(), String>>>(
    f: impl FnOnce() -> F,
) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(f()))
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Hello { port, bind } => hello(&bind, port),
        Cmd::Seed {
            dir,
            threads,
            events_per_thread,
            out,
            exchange,
            batch,
            timers,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(seed(SeedArgs {
                    dir,
                    threads,
                    per_thread: events_per_thread.max(1),
                    out,
                    exchange,
                    batch: batch.max(1),
                    timers,
                }))
            }),
        Cmd::Pool {
            addr,
            exchange,
            key,
            status,
            executor,
            max,
            out,
        } => pool(
            &addr,
            &exchange,
            &key,
            &status,
            executor.as_deref(),
            max,
            &out,
        ),
        Cmd::Waiters {
            wait,
            pid,
            patch,
            patches,
            patch_from,
            in_flight,
            settle,
        } => on_tokio(|| {
            load::waiters(load::WaitersArgs {
                wait: wait.into(),
                pid,
                patch_key: patch.patch_key,
                patch_body: patch.patch_body,
                patches,
                patch_from,
                in_flight,
                settle,
            })
        }),
        Cmd::Hold {
            wait,
            ready,
            seconds,
        } => on_tokio(|| load::hold(wait.into(), ready, seconds)),
        Cmd::Fanout {
            addr,
            exchange,
            key,
            subscribers,
            patch,
            refs,
            rounds,
            warmup,
        } => on_tokio(|| {
            load::fanout(load::FanoutArgs {
                addr,
                exchange,
                key,
                subscribers,
                patch_key: patch.patch_key,
                patch_body: patch.patch_body,
                refs,
                rounds,
                warmup,
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mess-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// hello: the fixture

/// The fixture's GET body: fixed, 235 bytes of JSON.
const HELLO_BODY: &str = concat!(
    r#"{"status":"ok","service":"mess-bench-hello","message":"Hello, world!","#,
    r#""thread":{"ref":"2026-01-01-HELLO","status":"pending","intent":"Say hello","#,
    r#""requestor_id":"bench","priority":"normal"},"#,
    r#""padding":"................................."}"#,
);
const _: () = assert!(HELLO_BODY.len() == 235);

/// What `POST /hello` parses.
#[derive(Debug, Deserialize)]
struct HelloIn {
    intent: String,
    #[serde(default)]
    priority: Option<String>,
}

/// What `POST /hello` answers.
#[derive(Debug, Serialize)]
struct HelloOut {
    ok: bool,
    intent_len: usize,
    priority: String,
}

async fn hello_get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(HELLO_BODY)
}

async fn hello_post(body: web::Json<HelloIn>) -> HttpResponse {
    let HelloIn { intent, priority } = body.into_inner();
    HttpResponse::Created().json(HelloOut {
        ok: true,
        intent_len: intent.len(),
        priority: priority.unwrap_or_else(|| "normal".into()),
    })
}

/// `GET /hello/wait?s=N`: answers the GET body after N seconds (60 by default): what a
/// pending handler costs in a minimal actix app (`mess-bench waiters --fixture`).
async fn hello_wait(req: actix_web::HttpRequest) -> HttpResponse {
    let secs = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("s="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    actix_web::rt::time::sleep(std::time::Duration::from_secs(secs)).await;
    hello_get().await
}

/// Same worker count as the server: actix's default, one per core.
fn hello(bind: &str, port: u16) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async {
        let server = HttpServer::new(|| {
            App::new()
                .service(
                    web::resource("/hello")
                        .route(web::get().to(hello_get))
                        .route(web::post().to(hello_post)),
                )
                .route("/hello/wait", web::get().to(hello_wait))
        })
        .bind((bind, port))
        .map_err(|e| format!("cannot listen on {bind}:{port}: {e}"))?
        .run();
        eprintln!("mess-bench hello listening on http://{bind}:{port}/hello");
        server.await.map_err(|e| e.to_string())
    })
}

// ---------------------------------------------------------------------------------------
// seed: a data directory through the real domain

struct SeedArgs {
    dir: PathBuf,
    threads: usize,
    per_thread: usize,
    out: PathBuf,
    exchange: String,
    batch: usize,
    timers: bool,
}

/// What `seed` leaves for the benchmark script.
#[derive(Debug, Serialize)]
struct Manifest {
    exchange: String,
    threads: usize,
    events: usize,
    requestor: String,
    requestor_key: String,
    assignee: String,
    assignee_key: String,
    /// An in-progress thread with the usual number of events.
    sample_ref: String,
    pending: usize,
    pending_refs: PathBuf,
    claimed: usize,
    claimed_refs: PathBuf,
    seconds: f64,
}

/// The state a seeded thread is left in, by its index: 40% pending, 30% claimed by the
/// assignee, 15% in progress, 15% completed.
fn fate(i: usize) -> Status {
    match i % 20 {
        0..8 => Status::Pending,
        8..14 => Status::Claimed,
        14..17 => Status::InProgress,
        _ => Status::Completed,
    }
}

struct Seeder<'a> {
    state: Exchange,
    clock: &'a ManualClock,
    entropy: &'a dyn Entropy,
    pending_events: Vec<Event>,
    total: usize,
}

impl Seeder<'_> {
    fn env(&self) -> Env<'_> {
        Env {
            clock: self.clock,
            entropy: self.entropy,
        }
    }

    /// Decides `cmd` as `actor`, applies its events and queues them; one ms per command.
    fn run(&mut self, actor: &Actor, cmd: Command) -> Result<Decision, String> {
        self.clock.advance_millis(1);
        let d = self
            .state
            .decide(actor, cmd, self.env())
            .map_err(|e| format!("the domain refused a seed command: {e}"))?;
        for e in &d.events {
            self.state.apply(e);
        }
        self.total += d.events.len();
        self.pending_events.extend(d.events.iter().cloned());
        Ok(d)
    }

    async fn flush(&mut self, storage: &mess_storage::FsStorage) -> Result<(), String> {
        if !self.pending_events.is_empty() {
            storage
                .append(&self.pending_events)
                .await
                .map_err(|e| e.to_string())?;
            self.pending_events.clear();
        }
        Ok(())
    }
}

fn update(r: &ThreadRef, to: Option<Status>, mess: Option<Vec<Block>>) -> Command {
    Command::Update {
        thread: r.clone(),
        status: to.map(|to| StatusUpdate {
            to,
            extra: Map::new(),
        }),
        mess,
    }
}

async fn seed(a: SeedArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let exchange = ExchangeId::parse(&a.exchange).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let storage = mess_storage::FsStorage::new(&a.dir).map_err(|e| e.to_string())?;
    // Start two days back, one millisecond per command: every seeded event is in the past.
    let now = SystemClock.now();
    let clock = ManualClock::new(Timestamp::from_unix_millis(
        now.unix_millis() - 2 * 86_400_000,
    ));
    let mut s = Seeder {
        state: Exchange::new(exchange.clone()),
        clock: &clock,
        entropy: &OsEntropy,
        pending_events: Vec::with_capacity(a.batch + 16),
        total: 0,
    };

    // Members, through the domain and FsStorage::create_member; keys only in the manifest.
    let mut keys = Vec::new();
    for (id, caps) in [
        ("bench-requestor", json!(["ask"])),
        ("bench-assignee", json!(["photo:capture", "door:check"])),
    ] {
        let reg = Registration::parse(&json!({
            "executor_id": id,
            "display_name": id,
            "capabilities": caps,
        }))
        .map_err(|e| e.to_string())?;
        let actor = Actor::Member(reg.executor_id.clone());
        let d = s.run(&actor, Command::Register(reg))?;
        let Outcome::Registered { member, api_key } = d.outcome else {
            return Err("registration did not register".into());
        };
        let member = Arc::new(*member);
        storage
            .create_member(&member)
            .await
            .map_err(|e| format!("create_member {id}: {e}"))?;
        s.state.put_member(Arc::clone(&member));
        keys.push((actor, api_key));
    }
    let (requestor, requestor_key) = keys[0].clone();
    let (assignee, assignee_key) = keys[1].clone();

    let mut body = json!({
        "intent": "Check that the front door is locked",
        "priority": "normal",
        "context": ["location: home", "source: mess-bench seed"],
    });
    if a.timers {
        let needed_by = Timestamp::from_unix_millis(now.unix_millis() + 30 * 86_400_000);
        body["needed_by"] = json!(needed_by.to_string());
        body["claim_timeout"] = json!("P7D");
    }
    let note = |who: &str, n: usize| -> Block {
        if who == "requestor" {
            Block::new(
                BlockKind::Followup,
                json!({"text": format!("note {n} from the requestor")}),
            )
        } else {
            Block::new(
                BlockKind::Ack,
                json!({"text": format!("note {n} from the assignee")}),
            )
        }
    };
    let mut pending = Vec::new();
    let mut claimed = Vec::new();
    let mut sample = None;
    for i in 0..a.threads {
        let req = NewRequest::parse(body.clone()).map_err(|e| e.to_string())?;
        let d = s.run(&requestor, Command::Create(req))?;
        let Outcome::Created(r) = d.outcome else {
            return Err("create did not create".into());
        };
        let fate = fate(i);
        // The status path: each step is two events (status_changed + message_added).
        let path: &[Status] = match fate {
            Status::Pending => &[],
            Status::Claimed => &[Status::Claimed],
            Status::InProgress => &[Status::Claimed, Status::InProgress],
            _ => &[Status::Claimed, Status::InProgress, Status::Completed],
        };
        let steps = path.len().min((a.per_thread - 1) / 2);
        let notes = a.per_thread - 1 - 2 * steps;
        // Pending: the requestor's notes. Otherwise: the claim, then notes alternating
        // between requestor and assignee, then the remaining steps.
        let complete = || {
            vec![Block::new(
                BlockKind::Response,
                json!({"content": ["done: the front door is locked"]}),
            )]
        };
        if steps == 0 {
            for n in 0..notes {
                s.run(
                    &requestor,
                    update(&r, None, Some(vec![note("requestor", n)])),
                )?;
            }
        } else {
            s.run(&assignee, update(&r, Some(path[0]), None))?;
            for n in 0..notes {
                let (who, actor) = if n % 2 == 0 {
                    ("requestor", &requestor)
                } else {
                    ("assignee", &assignee)
                };
                s.run(actor, update(&r, None, Some(vec![note(who, n)])))?;
            }
            for to in &path[1..steps] {
                let mess = (*to == Status::Completed).then(complete);
                s.run(&assignee, update(&r, Some(*to), mess))?;
            }
        }
        match s.state.thread(&r).map(|t| t.status) {
            Some(Status::Pending) => pending.push(r.to_string()),
            Some(Status::Claimed) => claimed.push(r.to_string()),
            Some(Status::InProgress) if sample.is_none() && i >= a.threads / 2 => {
                sample = Some(r.to_string());
            }
            _ => {}
        }
        if s.pending_events.len() >= a.batch {
            s.flush(&storage).await?;
        }
    }
    s.flush(&storage).await?;
    let sample = sample
        .or_else(|| claimed.first().cloned())
        .or_else(|| pending.first().cloned())
        .unwrap_or_default();

    let stem = a.out.with_extension("");
    let pending_refs = PathBuf::from(format!("{}.pending.txt", stem.display()));
    let claimed_refs = PathBuf::from(format!("{}.claimed.txt", stem.display()));
    write_lines(&pending_refs, &pending)?;
    write_lines(&claimed_refs, &claimed)?;
    let manifest = Manifest {
        exchange: a.exchange,
        threads: a.threads,
        events: s.total,
        requestor: "bench-requestor".into(),
        requestor_key: requestor_key.expose().to_owned(),
        assignee: "bench-assignee".into(),
        assignee_key: assignee_key.expose().to_owned(),
        sample_ref: sample,
        pending: pending.len(),
        pending_refs,
        claimed: claimed.len(),
        claimed_refs,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(&a.out, text + "\n").map_err(|e| format!("{}: {e}", a.out.display()))?;
    eprintln!(
        "seeded {} threads, {} events in {:.1} s ({} pending, {} claimed)",
        manifest.threads, manifest.events, manifest.seconds, manifest.pending, manifest.claimed
    );
    Ok(())
}

fn write_lines(path: &Path, lines: &[String]) -> Result<(), String> {
    let mut text = String::with_capacity(lines.len() * 24);
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// pool: refs of one status, through the API

#[derive(Deserialize)]
struct Page {
    threads: Vec<Summary>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "ref")]
    thread_ref: String,
    executor_id: Option<String>,
}

fn pool(
    addr: &str,
    exchange: &str,
    key: &str,
    status: &str,
    executor: Option<&str>,
    max: usize,
    out: &Path,
) -> Result<(), String> {
    let mut refs = Vec::new();
    let mut cursor: Option<String> = None;
    while refs.len() < max {
        let mut path = format!("/api/v1/exchanges/{exchange}/requests?status={status}&limit=500");
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let (code, body) = http_get(addr, &path, key)?;
        if code != 200 {
            return Err(format!(
                "GET {path}: {code} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let page: Page = serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))?;
        refs.extend(
            page.threads
                .into_iter()
                .filter(|t| executor.is_none() || t.executor_id.as_deref() == executor)
                .map(|t| t.thread_ref),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    refs.truncate(max);
    write_lines(out, &refs)?;
    eprintln!("{} {status} refs in {}", refs.len(), out.display());
    Ok(())
}

/// A plain HTTP/1.1 GET with `Connection: close` (no client library needed).
fn http_get(addr: &str, path: &str, key: &str) -> Result<(u16, Vec<u8>), String> {
    let io = |e: std::io::Error| format!("{addr}{path}: {e}");
    let mut s = TcpStream::connect(addr).map_err(io)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: no status"))?;
    let body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        return Ok((code, dechunk(&body)));
    }
    Ok((code, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn fates_mix() {
        let n = 1000;
        let count = |s| (0..n).filter(|i| fate(*i) == s).count();
        assert_eq!(count(Status::Pending), 400);
        assert_eq!(count(Status::Claimed), 300);
    }

    #[test]
    fn hello_body_is_json() {
        let v: Value = serde_json::from_str(HELLO_BODY).expect("json");
        assert_eq!(v["status"], "ok");
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
