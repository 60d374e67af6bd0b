//! Helpers shared by the end-to-end test binaries: the real server binary started on port 0,
//! a JSON client, a raw HTTP/1.1 client (for bytes reqwest would never send), and readers of
//! the data directory.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The API prefix of the `home` exchange.
pub const HOME: &str = "/api/v1/exchanges/home";

/// A running server binary.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client with a 60 s timeout.
    pub client: reqwest::Client,
    /// The last lines the server wrote on stderr.
    pub log: Arc<Mutex<VecDeque<String>>>,
}

/// Builds the command for the binary: a clean environment, port 0, loopback, the data dir.
pub fn command(data: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mess-exchange"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("STORAGE_PATH", data)
        .env("LOG_LEVEL", "warn,mess_exchange=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

impl Server {
    /// Starts the binary and waits (up to 60 s) for its `listening on` line.
    pub fn start(data: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::try_start(data, extra_env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Server::start`], but a failure to start is an `Err` with the server's output.
    pub fn try_start(data: &Path, extra_env: &[(&str, &str)]) -> Result<Self, String> {
        let mut child = command(data, extra_env)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent && let Some(at) = line.find("listening on http://") {
                        let addr = line[at + "listening on http://".len()..]
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() >= 200 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Self {
                child,
                base: format!("http://{addr}"),
                addr,
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap(),
                log,
            }),
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let lines: Vec<String> = log.lock().unwrap().iter().cloned().collect();
                Err(format!(
                    "the server did not start (exit: {status:?}):\n{}",
                    lines.join("\n")
                ))
            }
        }
    }

    /// The server's recent stderr, for failure messages.
    pub fn recent_log(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// One JSON call; a transport error is a panic.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_call(method, path, key, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// One JSON call; a transport error (a killed server, a timeout) is an `Err`.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        call_at(&self.client, &self.base, method, path, key, body).await
    }

    /// Registers `id` in `home` and returns its key.
    pub async fn register(&self, id: &str) -> String {
        let (s, body) = self
            .call(
                "POST",
                &format!("{HOME}/register"),
                None,
                Some(serde_json::json!({ "executor_id": id })),
            )
            .await;
        assert_eq!(s, 201, "register {id}: {body}");
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// Creates a request in `home` with `key` and returns its ref.
    pub async fn create(&self, key: &str, intent: &str) -> String {
        let (s, body) = self
            .call(
                "POST",
                &format!("{HOME}/requests"),
                Some(key),
                Some(serde_json::json!({ "intent": intent })),
            )
            .await;
        assert_eq!(s, 201, "create: {body}");
        body["ref"].as_str().unwrap().to_owned()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit (30 s at most).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the server exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON call with `client` against `base`.
pub async fn call_at(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), reqwest::Error> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let bytes = res.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A response read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header lines as sent (name lower-cased, value).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `head` (request line and headers, without the blank line; `Host` and
/// `Connection: close` are added) and `body` over a fresh connection, and reads the whole
/// response. Any bytes can be sent: invalid UTF-8, raw `..`, control characters.
pub async fn raw_request(addr: &str, head: &[u8], body: &[u8]) -> Result<RawResponse, String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut msg = head.to_vec();
        msg.extend_from_slice(format!("\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes());
        let has = |name: &[u8]| {
            head.windows(name.len())
                .any(|w| w.eq_ignore_ascii_case(name))
        };
        if !body.is_empty() && !has(b"content-length:") && !has(b"transfer-encoding:") {
            msg.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        msg.extend_from_slice(body);
        // The server may answer (413) and close before reading everything: that is fine.
        let _ = s.write_all(&msg).await;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if out.is_empty() => return Err(format!("read: {e}")),
                Err(_) => break,
            }
        }
        parse_response(&out)
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
}

fn parse_response(raw: &[u8]) -> Result<RawResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .map_err(|e| format!("bad chunk size: {e}"))?;
            if size == 0 {
                break;
            }
            let start = nl + 2;
            out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
            rest = &rest[(start + size + 2).min(rest.len())..];
        }
        body = out;
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every stored event line under `data/events`.
pub fn event_lines(data: &Path) -> Vec<Value> {
    files_under(&data.join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|p| {
            std::fs::read_to_string(&p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `MESS_TEST_PYTHON` (a venv with duckdb and moto), or `None` after printing a skip line;
/// a panic when `CI` is set.
pub fn test_python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("MESS_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: MESS_TEST_PYTHON is not set (scripts/test.sh sets it)")
        }
        None => {
            eprintln!("skipping {test}: MESS_TEST_PYTHON is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
