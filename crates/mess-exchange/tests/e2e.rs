//! End-to-end: the real binary on port 0 with a temp data dir, driven over HTTP.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running server.
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Server {
    fn start(data: &Path, extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mess-exchange"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("STORAGE_PATH", data)
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(at) = line.find("listening on http://") {
                    let addr = line[at + "listening on http://".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not start");
        Self {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// SIGTERM, then wait: a graceful stop.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
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
    }
}

const HOME: &str = "/api/v1/exchanges/home";

#[tokio::test]
async fn the_seeds_curl_examples_in_order_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let (s, phone) = server
        .call("POST", &format!("{HOME}/register"), None, Some(json!({
            "executor_id": "my-phone", "display_name": "My Phone",
            "capabilities": ["photo:capture", "location:indoor"],
            "notifications": [{"type": "ntfy", "topic": "mess-home", "server": "http://127.0.0.1:9"}]
        })))
        .await;
    assert_eq!(s, 201, "{phone}");
    assert_eq!(phone["executor_id"], "my-phone");
    assert_eq!(
        phone["message"],
        "Save this API key - it cannot be retrieved again."
    );
    let phone = phone["api_key"].as_str().unwrap().to_owned();
    let (s, agent) = server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({"executor_id": "claude-agent"})),
        )
        .await;
    assert_eq!(s, 201);
    let agent = agent["api_key"].as_str().unwrap().to_owned();
    // The agent's create must come at a later millisecond than its registration (last_seen
    // is checked after the restart).
    std::thread::sleep(std::time::Duration::from_millis(5));

    let (s, list) = server
        .call("GET", &format!("{HOME}/requests"), Some(&phone), None)
        .await;
    assert_eq!((s, list["threads"].clone()), (200, json!([])));

    let (s, created) = server
        .call("POST", &format!("{HOME}/requests"), Some(&agent), Some(json!({
            "intent": "Check if the garage door is closed",
            "context": ["Getting ready for bed"], "priority": "normal", "response_hint": ["image"]
        })))
        .await;
    assert_eq!(s, 201);
    assert_eq!(created["status"], "pending");
    let r = created["ref"].as_str().unwrap().to_owned();

    let (s, _) = server
        .call("GET", &format!("{HOME}/requests/{r}"), Some(&phone), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = server
        .call(
            "PATCH",
            &format!("{HOME}/requests/{r}"),
            Some(&phone),
            Some(json!({"status": "claimed"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = server
        .call("PATCH", &format!("{HOME}/requests/{r}"), Some(&phone), Some(json!({
            "status": "completed",
            "mess": [{"response": {"content": ["Door is locked", {"image": "data:image/png;base64,aGVsbG8="}]}}]
        })))
        .await;
    assert_eq!(s, 200);
    let (s, execs) = server
        .call("GET", &format!("{HOME}/executors"), Some(&phone), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(execs["executors"].as_array().unwrap().len(), 2);
    let (s, _) = server
        .call("PATCH", &format!("{HOME}/executors/my-phone"), Some(&phone), Some(json!({
            "display_name": "Teague Phone",
            "capabilities": ["photo:capture", "location:indoor", "location:outdoor"],
            "notifications": [{"type": "ntfy", "topic": "mess-alerts", "server": "http://127.0.0.1:9"}],
            "preferences": {"min_priority": "normal", "quiet_hours": {"enabled": true, "start": "22:00", "end": "07:00"}}
        })))
        .await;
    assert_eq!(s, 200);

    let (_, before) = server
        .call("GET", &format!("{HOME}/requests/{r}"), Some(&agent), None)
        .await;
    let (_, list_before) = server
        .call("GET", &format!("{HOME}/requests"), Some(&agent), None)
        .await;
    assert_eq!(before["thread"]["status"], "completed");
    server.stop();

    let server = Server::start(dir.path(), &[]);
    // Who was seen lived in memory; after a restart a member is last seen at its latest
    // event (the agent's create), not at its record's registration time. (Asked by the
    // phone: the agent's own requests would make it seen now.)
    let (_, execs) = server
        .call("GET", &format!("{HOME}/executors"), Some(&phone), None)
        .await;
    let view = |id: &str| {
        let all = execs["executors"].as_array().unwrap();
        all.iter().find(|e| e["id"] == id).unwrap().clone()
    };
    assert_eq!(
        view("claude-agent")["last_seen"],
        before["thread"]["created_at"]
    );
    assert_eq!(view("my-phone")["display_name"], "Teague Phone");
    let (s, after) = server
        .call("GET", &format!("{HOME}/requests/{r}"), Some(&agent), None)
        .await;
    assert_eq!(s, 200, "keys and threads survive a restart");
    assert_eq!(after, before);
    let (_, list_after) = server
        .call("GET", &format!("{HOME}/requests"), Some(&agent), None)
        .await;
    assert_eq!(list_after, list_before);

    // No key in plaintext anywhere under the data directory.
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                assert!(
                    !text.contains(&phone) && !text.contains(&agent),
                    "{} holds a key",
                    p.display()
                );
            }
        }
    }
    server.stop();
}

#[tokio::test]
async fn a_hung_webhook_never_delays_a_create_and_its_failure_is_recorded() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let listener = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&listener)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("NOTIFY_ALLOW_PRIVATE", "true"),
            ("NOTIFY_TIMEOUT_SECS", "2"),
            ("NOTIFY_MAX_ATTEMPTS", "1"),
        ],
    );
    let (s, phone) = server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({
                "executor_id": "phone",
                "notifications": [{"type": "webhook", "url": format!("{}/notify", listener.uri())}]
            })),
        )
        .await;
    assert_eq!(s, 201, "{phone}");
    let (_, agent) = server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({"executor_id": "agent"})),
        )
        .await;
    let agent = agent["api_key"].as_str().unwrap().to_owned();

    let (s, created) = server
        .call(
            "POST",
            &format!("{HOME}/requests"),
            Some(&agent),
            Some(json!({"intent": "Is the oven off?"})),
        )
        .await;
    assert_eq!(s, 201);
    let r = created["ref"].as_str().unwrap().to_owned();

    // The notification reached the listener, which is still holding it (60 s delay),
    // yet the create has already answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        let got = listener.received_requests().await.unwrap_or_default();
        if !got.is_empty() || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(received.len(), 1, "the webhook was called once");
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["event_type"], "thread_created");
    assert_eq!(body["thread"]["ref"], r.as_str());

    // After the 2 s send timeout the failure is recorded as an event.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if events_text(dir.path()).contains("\"notification_failed\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no notification_failed event was recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !events_text(dir.path()).contains(&listener.uri()),
        "no URL in events"
    );
    server.stop();
}

#[tokio::test]
async fn a_claim_past_its_limit_is_withdrawn_then_offered_again_on_real_listeners() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // One listener plays a webhook receiver (/phone) and an ntfy 2.16+ server (/tab).
    let listener = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&listener)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("NOTIFY_ALLOW_PRIVATE", "true"), ("CLAIM_TIMEOUT", "PT1S")],
    );
    let register = |body: Value| {
        let server = &server;
        async move {
            let (s, b) = server
                .call("POST", &format!("{HOME}/register"), None, Some(body))
                .await;
            assert_eq!(s, 201, "{b}");
            b["api_key"].as_str().unwrap().to_owned()
        }
    };
    let agent = register(json!({"executor_id": "agent"})).await;
    let phone = register(json!({
        "executor_id": "phone",
        "notifications": [{"type": "webhook", "url": format!("{}/phone", listener.uri())}]
    }))
    .await;
    register(json!({
        "executor_id": "tablet",
        "notifications": [{"type": "ntfy", "server": listener.uri(), "topic": "tab",
                           "updates": true}]
    }))
    .await;
    let (s, created) = server
        .call(
            "POST",
            &format!("{HOME}/requests"),
            Some(&agent),
            Some(json!({"intent": "Is the back door locked?"})),
        )
        .await;
    assert_eq!(s, 201);
    let r = created["ref"].as_str().unwrap().to_owned();
    let seq = format!("mess-home-{r}");
    let (s, _) = server
        .call(
            "PATCH",
            &format!("{HOME}/requests/{r}"),
            Some(&phone),
            Some(json!({"status": "claimed"})),
        )
        .await;
    assert_eq!(s, 200);

    // The tablet's ntfy topic: the offer, then "taken by phone" in place, then (the claim
    // ran out after 1 s) the offer again, all under the offer's sequence id.
    let deadline = Instant::now() + Duration::from_secs(20);
    let tablet = loop {
        let got: Vec<wiremock::Request> = listener
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|q| q.url.path() == "/tab")
            .collect();
        if got.len() >= 3 || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let title = |q: &wiremock::Request| {
        q.headers
            .get("Title")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        tablet.len(),
        3,
        "{:?}",
        tablet.iter().map(title).collect::<Vec<_>>()
    );
    for q in &tablet {
        assert_eq!(q.headers.get("X-Sequence-ID").unwrap(), seq.as_str());
    }
    assert!(
        title(&tablet[0]).starts_with("New request"),
        "{}",
        title(&tablet[0])
    );
    assert!(
        title(&tablet[1]).starts_with("Taken by phone"),
        "{}",
        title(&tablet[1])
    );
    assert!(
        title(&tablet[2]).contains("pending"),
        "{}",
        title(&tablet[2])
    );

    // The thread went back to pending by the exchange's hand, saying why.
    let (_, t) = server
        .call("GET", &format!("{HOME}/requests/{r}"), Some(&agent), None)
        .await;
    assert_eq!(t["thread"]["status"], "pending");
    let last = t["thread"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["from"], "exchange");
    assert_eq!(last["mess"][0]["status"]["reason"], "claim_timeout");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_method_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (s, reg) = server
        .call(
            "POST",
            &format!("{HOME}/register"),
            None,
            Some(json!({"executor_id": "a"})),
        )
        .await;
    assert_eq!(s, 201);
    let key = reg["api_key"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (s, _) = server
            .call(
                "POST",
                &format!("{HOME}/requests"),
                Some(&key),
                Some(json!({"intent": "x"})),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (s, _) = server
        .call(
            "GET",
            &format!("{HOME}/requests/2026-01-01-ZZZZ"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = server.call("GET", "/nowhere", None, None).await;
    assert_eq!(s, 404);
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |route: &str, method: &str, status: &str| -> Option<String> {
        text.lines()
            .filter(|l| l.starts_with("http_requests_total{"))
            .find(|l| {
                l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("method=\"{method}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    let x = "/api/v1/exchanges/{exchange_id}";
    assert_eq!(
        count(&format!("{x}/requests"), "POST", "201").as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        count(&format!("{x}/register"), "POST", "201").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count(&format!("{x}/requests/{{ref}}"), "GET", "404").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("unmatched", "GET", "404").as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    server.stop();
}

fn events_text(data: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![data.join("events")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[tokio::test]
async fn start_up_errors_are_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_mess-exchange"))
        .env_clear()
        .env("STORAGE_TYPE", "s3")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("S3_"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn openapi_yaml_matches_the_binary() {
    let out = Command::new(env!("CARGO_BIN_EXE_mess-exchange"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.yaml");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.yaml is out of date: run `UPDATE_OPENAPI=1 cargo test -p mess-exchange --test e2e openapi` (or `just openapi`)"
    );
}
