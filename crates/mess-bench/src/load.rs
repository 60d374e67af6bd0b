//! Many-connection load for the waiters and the change feed (scripts/bench/waiters.sh):
//! a minimal HTTP/1.1 client over `tokio::net::TcpStream` (one small buffer per
//! connection, no client library), and the three tools built on it:
//! - `waiters`: server RSS with N idle keep-alive connections, then with N waiting
//!   requests (`?wait=`) on the same connections; then the time from a PATCH's answer to
//!   its waiter's answer, one PATCH at a time, with the N waiters held.
//! - `hold`: N waiting requests held (each re-armed when answered) until killed, while
//!   the script runs wrk beside them.
//! - `fanout`: M change-feed subscribers (SSE); the time from a PATCH's answer to the
//!   last subscriber receiving its event, over several rounds.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};

// ---------------------------------------------------------------------------------------
// The client

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response's status.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub code: u16,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A response head: status code, content length, chunked or not.
fn parse_head(head: &[u8]) -> io::Result<(u16, Option<usize>, bool)> {
    let text = std::str::from_utf8(head).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut len = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding")
            && v.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    Ok((code, len, chunked))
}

/// Removes one complete chunk from the front of `buf` (chunked transfer coding): `Some(data)`
/// (empty for the last chunk), or `None` if `buf` does not hold a whole chunk yet.
fn take_chunk(buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let Some(eol) = find(buf, b"\r\n") else {
        return Ok(None);
    };
    let size_text = std::str::from_utf8(&buf[..eol]).map_err(|_| bad("chunk size"))?;
    let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        .map_err(|_| bad(format!("chunk size {size_text:?}")))?;
    // The last chunk: "0\r\n" then (no trailers) "\r\n".
    let need = eol + 2 + size + 2;
    if buf.len() < need {
        return Ok(None);
    }
    let data = buf[eol + 2..eol + 2 + size].to_vec();
    buf.drain(..need);
    Ok(Some(data))
}

impl Conn {
    /// Connects (`TCP_NODELAY`, as wrk and browsers do).
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(2048),
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }

    /// Writes one request (the whole of `req`).
    pub async fn send(&mut self, req: &[u8]) -> io::Result<()> {
        self.stream.write_all(req).await
    }

    /// Reads one response's head; returns the code, the content length, chunked or not.
    async fn read_head(&mut self) -> io::Result<(u16, Option<usize>, bool)> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = parse_head(&self.buf[..end])?;
                self.buf.drain(..end + 4);
                return Ok(head);
            }
            self.fill().await?;
        }
    }

    /// Reads one whole response.
    pub async fn read_response(&mut self) -> io::Result<Answer> {
        let (code, len, chunked) = self.read_head().await?;
        if chunked {
            loop {
                match take_chunk(&mut self.buf)? {
                    Some(d) if d.is_empty() => break,
                    Some(_) => {}
                    None => self.fill().await?,
                }
            }
        } else {
            let len = len.unwrap_or(0);
            while self.buf.len() < len {
                self.fill().await?;
            }
            self.buf.drain(..len);
        }
        Ok(Answer { code })
    }

    /// One request, its whole response.
    pub async fn call(&mut self, req: &[u8]) -> io::Result<Answer> {
        self.send(req).await?;
        self.read_response().await
    }
}

/// A GET with a Bearer key.
pub fn get(addr: &str, path: &str, key: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n")
        .into_bytes()
}

/// A PATCH of a JSON body with a Bearer key.
pub fn patch(addr: &str, path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------
// Helpers

/// `VmRSS` of a process, in kB, from `/proc/PID/status`.
pub fn rss_kb(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS"))
}

/// The non-empty lines of a file.
pub fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: f64) -> String {
    format!("{d:.3}")
}

/// Signed milliseconds from `a` to `b`.
fn delta_ms(a: Instant, b: Instant) -> f64 {
    if b >= a {
        (b - a).as_secs_f64() * 1e3
    } else {
        -((a - b).as_secs_f64() * 1e3)
    }
}

/// Opens `n` connections one after another (the accept queue never overflows).
async fn connect_many(addr: &str, n: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let c = Conn::connect(addr)
            .await
            .map_err(|e| format!("connection {i} to {addr}: {e}"))?;
        conns.push(c);
    }
    Ok(conns)
}

/// Prints a `key value` line (stdout, for the script) and the same to stderr.
fn report(key: &str, value: impl std::fmt::Display) {
    println!("{key} {value}");
    eprintln!("  {key}: {value}");
}

// ---------------------------------------------------------------------------------------
// waiters and hold

/// What both waiter tools are told.
pub struct WaitArgs {
    pub addr: String,
    pub exchange: String,
    /// The waiters' key.
    pub key: String,
    /// The refs waited on, one per connection.
    pub refs: PathBuf,
    pub conns: usize,
    pub wait_secs: u64,
    /// `GET /hello` and `GET /hello/wait?s=` of the fixture instead.
    pub fixture: bool,
}

/// What the coordinator tells every connection task.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Send an ordinary GET (round number), then idle.
    Idle(u32),
    /// Send the waiting GET (re-armed when answered, if so told).
    Wait,
}

struct Shared {
    /// Connections done with the current phase's send (idle GET answered, wait sent).
    done: AtomicUsize,
    done_notify: Notify,
    /// Waiter answers: (connection, when, status).
    answers: mpsc::UnboundedSender<(usize, Instant, u16)>,
    failed: AtomicUsize,
}

impl Shared {
    fn mark(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
        self.done_notify.notify_one();
    }

    async fn wait_done(&self, n: usize, within: Duration) -> Result<(), String> {
        let until = Instant::now() + within;
        while self.done.load(Ordering::SeqCst) + self.failed.load(Ordering::SeqCst) < n {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "only {} of {n} connections answered in {within:?}",
                    self.done.load(Ordering::SeqCst)
                ));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), async {
                self.done_notify.notified().await;
            })
            .await;
        }
        let failed = self.failed.load(Ordering::SeqCst);
        if failed > 0 {
            return Err(format!("{failed} connections failed (see above)"));
        }
        Ok(())
    }
}

/// One connection's life: the idle rounds it is told, then its waiting request (re-armed
/// when answered if `rearm`).
async fn conn_task(
    i: usize,
    mut c: Conn,
    plain: Vec<u8>,
    waiting: Vec<u8>,
    rearm: bool,
    mut phase: watch::Receiver<Option<Phase>>,
    shared: Arc<Shared>,
) {
    let fail = |what: &str, e: io::Error| {
        eprintln!("connection {i}: {what}: {e}");
        shared.failed.fetch_add(1, Ordering::SeqCst);
        shared.done_notify.notify_one();
    };
    let mut last: Option<Phase> = None;
    loop {
        if phase.changed().await.is_err() {
            return;
        }
        let now = *phase.borrow_and_update();
        if now == last {
            continue;
        }
        last = now;
        match now {
            None => {}
            Some(Phase::Idle(_)) => match c.call(&plain).await {
                Ok(a) if a.code == 200 => shared.mark(),
                Ok(a) => return fail("idle GET", bad(format!("status {}", a.code))),
                Err(e) => return fail("idle GET", e),
            },
            Some(Phase::Wait) => {
                if let Err(e) = c.send(&waiting).await {
                    return fail("waiting GET", e);
                }
                shared.mark();
                loop {
                    match c.read_response().await {
                        Ok(a) => {
                            let _ = shared.answers.send((i, Instant::now(), a.code));
                        }
                        Err(e) => return fail("waiting GET's answer", e),
                    }
                    if !rearm {
                        break;
                    }
                    if let Err(e) = c.send(&waiting).await {
                        return fail("re-armed waiting GET", e);
                    }
                }
                // Keep the connection open until the process ends.
                let _ = phase.changed().await;
                return;
            }
        }
    }
}

struct Fleet {
    phase: watch::Sender<Option<Phase>>,
    shared: Arc<Shared>,
    answers: mpsc::UnboundedReceiver<(usize, Instant, u16)>,
    refs: Vec<String>,
}

async fn fleet(a: &WaitArgs, rearm: bool) -> Result<Fleet, String> {
    let refs = if a.fixture {
        vec![String::new(); a.conns]
    } else {
        read_lines(&a.refs)?
    };
    if refs.len() < a.conns {
        return Err(format!(
            "{} holds {} refs; {} connections need as many",
            a.refs.display(),
            refs.len(),
            a.conns
        ));
    }
    let refs: Vec<String> = refs.into_iter().take(a.conns).collect();
    let started = Instant::now();
    let conns = connect_many(&a.addr, a.conns).await?;
    eprintln!(
        "opened {} connections in {:.2} s",
        conns.len(),
        started.elapsed().as_secs_f64()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        done: AtomicUsize::new(0),
        done_notify: Notify::new(),
        answers: tx,
        failed: AtomicUsize::new(0),
    });
    let (phase, phase_rx) = watch::channel(None);
    for (i, c) in conns.into_iter().enumerate() {
        let (plain, waiting) = if a.fixture {
            (
                get(&a.addr, "/hello", &a.key),
                get(&a.addr, &format!("/hello/wait?s={}", a.wait_secs), &a.key),
            )
        } else {
            let path = format!("/api/v1/exchanges/{}/requests/{}", a.exchange, refs[i]);
            (
                get(&a.addr, &path, &a.key),
                get(&a.addr, &format!("{path}?wait={}", a.wait_secs), &a.key),
            )
        };
        tokio::spawn(conn_task(
            i,
            c,
            plain,
            waiting,
            rearm,
            phase_rx.clone(),
            Arc::clone(&shared),
        ));
    }
    Ok(Fleet {
        phase,
        shared,
        answers: rx,
        refs,
    })
}

impl Fleet {
    /// Moves every connection to `p` and waits until each has done its part.
    async fn step(&self, p: Phase, n: usize) -> Result<Duration, String> {
        self.shared.done.store(0, Ordering::SeqCst);
        let t = Instant::now();
        self.phase
            .send(Some(p))
            .map_err(|_| "every connection task has ended".to_string())?;
        self.shared.wait_done(n, Duration::from_secs(30)).await?;
        Ok(t.elapsed())
    }
}

/// RSS samples every 250 ms over `secs`: the last and the largest, in kB.
async fn settle_rss(pid: u32, secs: f64) -> Result<(u64, u64), String> {
    let mut max = 0;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let last = rss_kb(pid)?;
        max = max.max(last);
        if Instant::now() >= until {
            return Ok((last, max));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `mess-bench waiters`.
pub struct WaitersArgs {
    pub wait: WaitArgs,
    /// The server's process id (for VmRSS).
    pub pid: u32,
    /// The key that PATCHes (the assignee's: it claims pending threads).
    pub patch_key: String,
    /// The PATCH body.
    pub patch_body: String,
    /// The waited threads to PATCH, one at a time: the first `patches` after `patch_from`.
    pub patches: usize,
    pub patch_from: usize,
    /// PATCHes in flight at once (each waits for its waiter before the next).
    pub in_flight: usize,
    /// Seconds to let RSS settle before reading it.
    pub settle: f64,
}

pub async fn waiters(a: WaitersArgs) -> Result<(), String> {
    let n = a.wait.conns;
    let rss_base = rss_kb(a.pid)?;
    report("rss_base_kb", rss_base);
    let mut f = fleet(&a.wait, false).await?;
    // Two rounds of an ordinary GET on every connection: then each is an idle keep-alive
    // connection that has served a request (actix closes it after 5 s idle: the rounds
    // and the reading take less).
    for round in 0..2 {
        let took = f.step(Phase::Idle(round), n).await?;
        eprintln!(
            "idle round {round}: {n} GETs in {:.2} s",
            took.as_secs_f64()
        );
    }
    let (rss_idle, rss_idle_max) = settle_rss(a.pid, a.settle.min(2.0)).await?;
    report("conns", n);
    report("rss_idle_kb", rss_idle);
    report("rss_idle_max_kb", rss_idle_max);
    let took = f.step(Phase::Wait, n).await?;
    eprintln!("{n} waiting GETs written in {:.2} s", took.as_secs_f64());
    let (rss_wait, rss_wait_max) = settle_rss(a.pid, a.settle).await?;
    let early = {
        let mut k = 0;
        while f.answers.try_recv().is_ok() {
            k += 1;
        }
        k
    };
    report("rss_waiting_kb", rss_wait);
    report("rss_waiting_max_kb", rss_wait_max);
    report("answered_before_any_patch", early);
    report(
        "per_conn_idle_bytes",
        (rss_idle.saturating_sub(rss_base) * 1024) / n as u64,
    );
    report(
        "per_waiter_bytes",
        format!(
            "{:.0}",
            (rss_wait as f64 - rss_idle as f64) * 1024.0 / n as f64
        ),
    );

    if a.patches == 0 {
        report("conn_failures", f.shared.failed.load(Ordering::SeqCst));
        return Ok(());
    }
    // PATCH waited threads, `in_flight` at a time, each on its own connection; per thread
    // the time from the PATCH's answer (and from its send) to the waiter's answer.
    let to_patch: Vec<usize> = (a.patch_from..(a.patch_from + a.patches).min(n)).collect();
    let mut patchers = Vec::new();
    for _ in 0..a.in_flight.max(1) {
        patchers.push(
            Conn::connect(&a.wait.addr)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let mut from_answer = Vec::with_capacity(to_patch.len());
    let mut from_send = Vec::with_capacity(to_patch.len());
    let mut patch_rtt = Vec::with_capacity(to_patch.len());
    let mut waiter_first = 0usize;
    let mut non200 = 0usize;
    let started = Instant::now();
    for group in to_patch.chunks(patchers.len()) {
        let mut sent = Vec::new();
        let mut pending = std::collections::HashMap::new();
        // Send the group's PATCHes, then read their answers (one connection each).
        for (k, &i) in group.iter().enumerate() {
            let path = format!(
                "/api/v1/exchanges/{}/requests/{}",
                a.wait.exchange, f.refs[i]
            );
            let req = patch(&a.wait.addr, &path, &a.patch_key, &a.patch_body);
            let t = Instant::now();
            patchers[k].send(&req).await.map_err(|e| e.to_string())?;
            sent.push(t);
        }
        for (k, &i) in group.iter().enumerate() {
            let ans = patchers[k]
                .read_response()
                .await
                .map_err(|e| e.to_string())?;
            if ans.code != 200 {
                non200 += 1;
            }
            pending.insert(i, (sent[k], Instant::now()));
        }
        // Their waiters' answers (each connection's answer is for its own thread).
        let mut left = group.len();
        while left > 0 {
            let got = tokio::time::timeout(Duration::from_secs(10), f.answers.recv())
                .await
                .map_err(|_| format!("no waiter answered within 10 s ({left} left)"))?
                .ok_or("the waiters are gone")?;
            let (i, at, code) = got;
            let Some((t_send, t_ans)) = pending.remove(&i) else {
                eprintln!("connection {i} answered without a PATCH (status {code})");
                continue;
            };
            left -= 1;
            let d = delta_ms(t_ans, at);
            if d < 0.0 {
                waiter_first += 1;
            }
            from_answer.push(d);
            from_send.push(delta_ms(t_send, at));
            patch_rtt.push(delta_ms(t_send, t_ans));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for v in [&mut from_answer, &mut from_send, &mut patch_rtt] {
        v.sort_by(f64::total_cmp);
    }
    report("patches", from_answer.len());
    report("patches_in_flight", patchers.len());
    report("patch_non200", non200);
    report("patch_seconds", format!("{elapsed:.2}"));
    for (name, v) in [
        ("wake_after_patch_answer", &from_answer),
        ("wake_after_patch_send", &from_send),
        ("patch_rtt", &patch_rtt),
    ] {
        report(&format!("{name}_p50_ms"), ms(quantile(v, 0.5)));
        report(&format!("{name}_p99_ms"), ms(quantile(v, 0.99)));
        report(&format!("{name}_max_ms"), ms(quantile(v, 1.0)));
    }
    report("waiter_before_patch_answer", waiter_first);
    report("rss_end_kb", rss_kb(a.pid)?);
    report("conn_failures", f.shared.failed.load(Ordering::SeqCst));
    drop(f.phase);
    Ok(())
}

/// `mess-bench hold`: N waiters held, re-armed when answered, until killed or `seconds`.
pub async fn hold(a: WaitArgs, ready: Option<PathBuf>, seconds: u64) -> Result<(), String> {
    let n = a.conns;
    let mut f = fleet(&a, true).await?;
    let took = f.step(Phase::Wait, n).await?;
    // The server has read them once it has had a moment; then say so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!(
        "holding {n} waiters (written in {:.2} s)",
        took.as_secs_f64()
    );
    if let Some(r) = &ready {
        std::fs::write(r, format!("{n}\n")).map_err(|e| format!("{}: {e}", r.display()))?;
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut answered = 0usize;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, f.answers.recv()).await {
            Ok(Some(_)) => answered += 1,
            Ok(None) | Err(_) => break,
        }
    }
    eprintln!(
        "hold: {answered} answers re-armed, {} connections failed",
        f.shared.failed.load(Ordering::SeqCst)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// fanout: the change feed to many subscribers

/// `mess-bench fanout`.
pub struct FanoutArgs {
    pub addr: String,
    pub exchange: String,
    /// The subscribers' key.
    pub key: String,
    pub subscribers: usize,
    /// The key that PATCHes, the body, and the threads (one per round).
    pub patch_key: String,
    pub patch_body: String,
    pub refs: PathBuf,
    pub rounds: usize,
    /// Rounds run first and not counted.
    pub warmup: usize,
}

/// Reads one subscriber's stream: every event's `id` and when its frame was complete.
async fn subscriber(
    i: usize,
    mut c: Conn,
    ready: Arc<Shared>,
    tx: mpsc::UnboundedSender<(usize, u64, Instant)>,
) {
    let fail = |e: io::Error| {
        eprintln!("subscriber {i}: {e}");
        ready.failed.fetch_add(1, Ordering::SeqCst);
        ready.done_notify.notify_one();
    };
    let (code, _, chunked) = match c.read_head().await {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    if code != 200 || !chunked {
        return fail(bad(format!("status {code}, chunked {chunked}")));
    }
    let mut text: Vec<u8> = Vec::with_capacity(1024);
    let mut opened = false;
    loop {
        // Every whole chunk in the buffer becomes stream text.
        loop {
            match take_chunk(&mut c.buf) {
                Ok(Some(d)) if d.is_empty() => return fail(bad("the stream ended")),
                Ok(Some(d)) => text.extend_from_slice(&d),
                Ok(None) => break,
                Err(e) => return fail(e),
            }
        }
        // Every whole SSE frame (ends with a blank line).
        while let Some(end) = find(&text, b"\n\n") {
            let at = Instant::now();
            let frame = &text[..end];
            if !opened {
                opened = true;
                ready.mark();
            }
            let id = frame
                .split(|b| *b == b'\n')
                .find_map(|l| l.strip_prefix(b"id: "))
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(id) = id {
                let _ = tx.send((i, id, at));
            }
            text.drain(..end + 2);
        }
        if let Err(e) = c.fill().await {
            return fail(e);
        }
    }
}

pub async fn fanout(a: FanoutArgs) -> Result<(), String> {
    let n = a.subscribers;
    let refs = read_lines(&a.refs)?;
    let total_rounds = a.warmup + a.rounds;
    if refs.len() < total_rounds {
        return Err(format!(
            "{} holds {} refs; {total_rounds} rounds need as many",
            a.refs.display(),
            refs.len()
        ));
    }
    let ready = Arc::new(Shared {
        done: AtomicUsize::new(0),
        done_notify: Notify::new(),
        answers: mpsc::unbounded_channel().0,
        failed: AtomicUsize::new(0),
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let path = format!("/api/v1/exchanges/{}/events", a.exchange);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        a.addr, a.key
    );
    let started = Instant::now();
    for i in 0..n {
        let mut c = Conn::connect(&a.addr)
            .await
            .map_err(|e| format!("subscriber {i}: {e}"))?;
        c.send(req.as_bytes())
            .await
            .map_err(|e| format!("subscriber {i}: {e}"))?;
        tokio::spawn(subscriber(i, c, Arc::clone(&ready), tx.clone()));
    }
    ready.wait_done(n, Duration::from_secs(30)).await?;
    eprintln!(
        "{n} subscribers open in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let mut patcher = Conn::connect(&a.addr).await.map_err(|e| e.to_string())?;
    let mut last_seen = 0u64;
    let mut to_last = Vec::new();
    let mut to_first = Vec::new();
    let mut to_median = Vec::new();
    let mut send_to_last = Vec::new();
    let mut spread = Vec::new();
    let mut rtts = Vec::new();
    let mut lines = Vec::new();
    for (round, r) in refs.iter().take(total_rounds).enumerate() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Anything still arriving from the last round is not this one's.
        while let Ok((_, id, _)) = rx.try_recv() {
            last_seen = last_seen.max(id);
        }
        let body = patch(
            &a.addr,
            &format!("/api/v1/exchanges/{}/requests/{r}", a.exchange),
            &a.patch_key,
            &a.patch_body,
        );
        let t_send = Instant::now();
        let ans = patcher.call(&body).await.map_err(|e| e.to_string())?;
        let t_ans = Instant::now();
        if ans.code != 200 {
            return Err(format!("PATCH {r}: status {}", ans.code));
        }
        // The first new event at each subscriber.
        let mut got: Vec<Option<Instant>> = vec![None; n];
        let mut left = n;
        let mut max_id = last_seen;
        while left > 0 {
            let (i, id, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .map_err(|_| format!("round {round}: {left} subscribers got nothing in 10 s"))?
                .ok_or("every subscriber has ended")?;
            max_id = max_id.max(id);
            if id > last_seen && got[i].is_none() {
                got[i] = Some(at);
                left -= 1;
            }
        }
        last_seen = max_id;
        let mut d: Vec<f64> = got
            .iter()
            .flatten()
            .map(|at| delta_ms(t_ans, *at))
            .collect();
        d.sort_by(f64::total_cmp);
        let (first, med, last) = (quantile(&d, 0.0), quantile(&d, 0.5), quantile(&d, 1.0));
        let rtt = delta_ms(t_send, t_ans);
        eprintln!(
            "round {round}{}: PATCH {rtt:.3} ms; after its answer: first {first:.3}, median {med:.3}, last {last:.3} ms",
            if round < a.warmup { " (warm-up)" } else { "" }
        );
        if round >= a.warmup {
            to_first.push(first);
            to_median.push(med);
            to_last.push(last);
            send_to_last.push(last + rtt);
            spread.push(last - first);
            rtts.push(rtt);
            lines.push(format!("{last:.3}/{:.3}", last + rtt));
        }
    }
    for v in [
        &mut to_first,
        &mut to_median,
        &mut to_last,
        &mut send_to_last,
        &mut spread,
        &mut rtts,
    ] {
        v.sort_by(f64::total_cmp);
    }
    report("subscribers", n);
    report("rounds", to_last.len());
    report("last_subscriber_median_ms", ms(quantile(&to_last, 0.5)));
    report("last_subscriber_max_ms", ms(quantile(&to_last, 1.0)));
    report("last_subscriber_min_ms", ms(quantile(&to_last, 0.0)));
    report("median_subscriber_median_ms", ms(quantile(&to_median, 0.5)));
    report("first_subscriber_median_ms", ms(quantile(&to_first, 0.5)));
    report(
        "last_subscriber_after_send_median_ms",
        ms(quantile(&send_to_last, 0.5)),
    );
    report(
        "last_subscriber_after_send_max_ms",
        ms(quantile(&send_to_last, 1.0)),
    );
    report("first_to_last_median_ms", ms(quantile(&spread, 0.5)));
    report("first_to_last_max_ms", ms(quantile(&spread, 1.0)));
    report("patch_rtt_median_ms", ms(quantile(&rtts, 0.5)));
    report("patch_rtt_max_ms", ms(quantile(&rtts, 1.0)));
    // Per round: after the PATCH's answer / after its send.
    report("last_subscriber_all_ms", lines.join(","));
    report("subscriber_failures", ready.failed.load(Ordering::SeqCst));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse() {
        let h = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nx: y";
        let (code, len, chunked) = parse_head(h).expect("head");
        assert_eq!((code, len, chunked), (200, Some(12), false));
        let h = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked";
        assert!(parse_head(h).expect("head").2);
    }

    #[test]
    fn chunks_come_off_whole() {
        let mut b = b"3\r\nabc\r\n2\r\nd".to_vec();
        assert_eq!(take_chunk(&mut b).expect("ok"), Some(b"abc".to_vec()));
        assert_eq!(take_chunk(&mut b).expect("ok"), None);
        b.extend_from_slice(b"e\r\n0\r\n\r\n");
        assert_eq!(take_chunk(&mut b).expect("ok"), Some(b"de".to_vec()));
        assert_eq!(take_chunk(&mut b).expect("ok"), Some(Vec::new()));
        assert!(b.is_empty());
    }

    #[test]
    fn quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
    }
}
