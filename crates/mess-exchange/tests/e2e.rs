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
    /// Every line the server has logged so far.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
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
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&logs);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line.clone());
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
            logs,
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

    /// Registers a member on `home` (201 expected) and returns its key.
    async fn register(&self, body: Value) -> String {
        let (s, b) = self
            .call("POST", &format!("{HOME}/register"), None, Some(body))
            .await;
        assert_eq!(s, 201, "{b}");
        b["api_key"].as_str().unwrap().to_owned()
    }

    /// Creates a request as `key` (201 expected) and returns its ref.
    async fn create(&self, key: &str, body: Value) -> String {
        let (s, b) = self
            .call("POST", &format!("{HOME}/requests"), Some(key), Some(body))
            .await;
        assert_eq!(s, 201, "{b}");
        b["ref"].as_str().unwrap().to_owned()
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
    let agent = server.register(json!({"executor_id": "agent"})).await;
    let phone = server
        .register(json!({
            "executor_id": "phone",
            "notifications": [{"type": "webhook", "url": format!("{}/phone", listener.uri())}]
        }))
        .await;
    server
        .register(json!({
            "executor_id": "tablet",
            "notifications": [{"type": "ntfy", "server": listener.uri(), "topic": "tab",
                               "updates": true}]
        }))
        .await;
    let r = server
        .create(&agent, json!({"intent": "Is the back door locked?"}))
        .await;
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

/// The metric names a PromQL expression uses (ours: `mess_`, `http_`, `process_`), without
/// a histogram's `_bucket`/`_sum`/`_count`.
fn metric_names(expr: &str, into: &mut std::collections::BTreeSet<String>) {
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        let w = std::mem::take(&mut word);
        if ["mess_", "http_", "process_"]
            .iter()
            .any(|p| w.starts_with(p))
        {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(&w);
            into.insert(base.to_owned());
        }
    }
}

#[tokio::test]
async fn the_dashboard_and_alerts_name_only_exported_metrics_each_with_help() {
    let dir = tempfile::tempdir().unwrap();
    // A refused webhook makes a failed notification (its counter then exists).
    let server = Server::start(
        dir.path(),
        &[
            ("NOTIFY_ALLOW_PRIVATE", "true"),
            ("NOTIFY_MAX_ATTEMPTS", "1"),
        ],
    );
    server
        .register(json!({"executor_id": "phone",
                         "notifications": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]}))
        .await;
    let agent = server.register(json!({"executor_id": "agent"})).await;
    server.create(&agent, json!({"intent": "x"})).await;
    let scrape = || async {
        server
            .client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = scrape().await;
    while !text.contains("mess_notifications_total{") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape().await;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring");
    let mut used = std::collections::BTreeSet::new();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            metric_names(target["expr"].as_str().unwrap(), &mut used);
        }
    }
    let alerts: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join("alerts.yaml")).unwrap())
            .unwrap();
    let mut rules = 0;
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            metric_names(rule["expr"].as_str().unwrap(), &mut used);
            rules += 1;
        }
    }
    assert!(rules >= 5 && used.len() >= 15, "{rules} rules, {used:?}");
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in &used {
        assert!(
            exported.contains(name.as_str()),
            "{name} is used but not exported:\n{text}"
        );
    }
    for name in &exported {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no # HELP line:\n{text}"
        );
    }
    assert!(text.contains("mess_build_info{"), "{text}");
    server.stop();
}

#[tokio::test]
async fn every_request_has_an_id_in_its_answer_and_its_access_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let get = |id: Option<&'static str>| {
        let mut req = server.client.get(format!("{}{HOME}/requests", server.base));
        if let Some(id) = id {
            req = req.header("X-Request-Id", id);
        }
        req.send()
    };
    let sent = get(Some("trace-42.a")).await.unwrap();
    assert_eq!(sent.status(), 401);
    assert_eq!(sent.headers()["x-request-id"], "trace-42.a");
    let made = get(None).await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 16, "{made}");
    // A header that is not a sane token is replaced, never echoed.
    let bad = get(Some("<script>")).await.unwrap();
    assert_ne!(bad.headers()["x-request-id"], "<script>");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server.logs.lock().unwrap().join("\n");
        let line = logs.lines().find(|l| l.contains("trace-42.a"));
        if let Some(line) = line {
            for part in [
                "GET",
                "/api/v1/exchanges/home/requests",
                "401",
                "client=127.0.0.1",
            ] {
                assert!(line.contains(part), "{part} missing from {line}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no access line with the id:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop();
}

#[tokio::test]
async fn rate_limits_see_the_forwarded_client_only_behind_a_trusted_proxy() {
    let register = |server: &Server, id: &'static str, from: &'static str| {
        server
            .client
            .post(format!("{}{HOME}/register", server.base))
            .header("X-Forwarded-For", from)
            .json(&json!({"executor_id": id}))
            .send()
    };
    let limit = [("RATE_LIMIT_REGISTER_PER_MIN", "1")];
    let dir = tempfile::tempdir().unwrap();
    let trusted = Server::start(dir.path(), &[limit[0], ("TRUSTED_PROXIES", "127.0.0.0/8")]);
    assert_eq!(
        register(&trusted, "a", "198.51.100.1")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        register(&trusted, "b", "198.51.100.1")
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(
        register(&trusted, "c", "198.51.100.2")
            .await
            .unwrap()
            .status(),
        201
    );
    let logs = trusted.logs.lock().unwrap().join("\n");
    assert!(logs.contains("client=198.51.100.2"), "{logs}");
    trusted.stop();
    // Not trusted: the header is anyone's to forge, and is ignored.
    let dir = tempfile::tempdir().unwrap();
    let direct = Server::start(dir.path(), &limit);
    assert_eq!(
        register(&direct, "a", "198.51.100.1")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        register(&direct, "c", "198.51.100.2")
            .await
            .unwrap()
            .status(),
        429
    );
    direct.stop();
}

#[tokio::test]
async fn an_offers_claim_button_claims_once_and_its_page_changes_nothing() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let ntfy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&ntfy)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("NOTIFY_ALLOW_PRIVATE", "true"),
            ("PUBLIC_URL", "https://mess.example"),
        ],
    );
    let agent = server.register(json!({"executor_id": "agent"})).await;
    server
        .register(json!({
            "executor_id": "phone",
            "notifications": [{"type": "ntfy", "server": ntfy.uri(), "topic": "phone"}]
        }))
        .await;
    let r = server
        .create(&agent, json!({"intent": "Is the garage door closed?"}))
        .await;

    // The offer on the phone's topic carries "Open" (the app) and "Claim" (a POST).
    let deadline = Instant::now() + Duration::from_secs(20);
    let actions = loop {
        let got = ntfy.received_requests().await.unwrap_or_default();
        if let Some(a) = got.iter().find_map(|q| q.headers.get("Actions")) {
            break a.to_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no offer with actions reached ntfy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        actions.starts_with(&format!("view, Open, https://mess.example/#r/{r}, clear=true; http, Claim, https://mess.example/a/")),
        "{actions}"
    );
    assert!(actions.ends_with(", method=POST, clear=true"), "{actions}");
    let path = actions
        .split("https://mess.example")
        .nth(2)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let url = format!("{}{path}", server.base);
    async fn status_of(server: &Server, key: &str, r: &str) -> String {
        let (_, t) = server
            .call("GET", &format!("{HOME}/requests/{r}"), Some(key), None)
            .await;
        t["thread"]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{t}"))
            .to_owned()
    }

    // A link preview or a browser's GET shows a confirm page and claims nothing.
    let page = server
        .client
        .get(&url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Is the garage door closed?") && html.contains("<form method=\"post\""),
        "{html}"
    );
    assert_eq!(status_of(&server, &agent, &r).await, "pending");

    // ntfy's http action: a POST with no body claims it, for the member it was sent to.
    let first = server.client.post(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["executor_id"].as_str()),
        (Some("claimed"), Some("phone"))
    );
    assert_eq!(status_of(&server, &agent, &r).await, "claimed");

    // Used: the second time is refused, as JSON for a program and a page for a browser.
    let again = server.client.post(&url).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("already claimed"),
        "{body}"
    );
    let page = server
        .client
        .post(&url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 409);
    let html = page.text().await.unwrap();
    assert!(html.contains("Not open any more"), "{html}");

    // Forged (a changed character) and garbage tokens: 403, JSON, nothing changes.
    let mut forged = path.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [forged.as_str(), "/a/x", "/a/not.atoken"] {
        let res = server
            .client
            .post(format!("{}{bad}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "forbidden", "{bad}");
    }
    // A GET never changes state, and other methods are 405.
    let res = server.client.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), 405);
    // The signing key is in the store, so links survive a restart.
    assert!(dir.path().join("secrets/action-links.key").exists());
    server.stop();
}

#[tokio::test]
async fn a_running_server_holds_its_data_directory_against_commands_and_a_second_server() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_mess-exchange");
    let command = |args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STORAGE_PATH", dir.path())
            .env("PORT", "0")
            .env("BIND_ADDRESS", "127.0.0.1")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    let server = Server::start(dir.path(), &[]);
    let pid = server.child.id();
    let verify = command(&["verify"]).output().unwrap();
    assert!(!verify.status.success());
    let err = String::from_utf8_lossy(&verify.stderr);
    assert!(
        err.contains("is in use by another mess-exchange process")
            && err.contains(&format!("(pid {pid})")),
        "{err}"
    );
    // A second server on the same directory stops at once with the same line.
    let mut second = command(&[]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second server started on a directory in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("is in use"), "{err}");
    // Once the server stops, the commands run.
    server.stop();
    let verify = command(&["verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
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
