//! Delivery against real local HTTP listeners (wiremock): the exact request per channel,
//! retries, timeouts, `Retry-After`, refusals, hooks, the full queue and shutdown.
// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use mess_core::event::{NotificationOutcome, StatusChanged, ThreadCreated};
use mess_core::{
    Event, EventKind, ExchangeId, Member, Notice, Notifier, OutcomeSink, Priority, Status, Thread,
    ThreadRef, testing,
};
use mess_notify::{HttpNotifier, NotifierHandle, NotifyConfig};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;
use wiremock::matchers::{body_json, body_string, header, headers, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const REF: &str = "2026-02-01-AAAA";

/// One recorded outcome, as `OutcomeSink::record` received it.
type Recorded = (ExchangeId, Option<ThreadRef>, mess_core::Actor, EventKind);

/// Collects outcomes so tests can wait for them without sleeping.
#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Recorded>>,
    changed: Notify,
}

impl OutcomeSink for Sink {
    fn record(
        &self,
        exchange: ExchangeId,
        thread: Option<ThreadRef>,
        actor: mess_core::Actor,
        kind: EventKind,
    ) {
        self.got
            .lock()
            .unwrap()
            .push((exchange, thread, actor, kind));
        self.changed.notify_waiters();
    }
}

impl Sink {
    /// Waits until `n` outcomes are in, then returns them (delivered?, payload).
    async fn wait_for(&self, n: usize) -> Vec<(bool, NotificationOutcome)> {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.got.lock().unwrap().len() >= n {
                    break;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("outcomes in time");
        self.outcomes()
    }

    fn outcomes(&self) -> Vec<(bool, NotificationOutcome)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(exchange, thread, actor, kind)| {
                assert_eq!(exchange.as_str(), "home");
                assert_eq!(thread.as_ref().map(ThreadRef::as_str), Some(REF));
                assert_eq!(*actor, mess_core::Actor::Exchange);
                match kind {
                    EventKind::NotificationDelivered(o) => (true, o.clone()),
                    EventKind::NotificationFailed(o) => (false, o.clone()),
                    other => panic!("not an outcome: {other:?}"),
                }
            })
            .collect()
    }
}

fn config() -> NotifyConfig {
    NotifyConfig {
        max_attempts: 3,
        timeout: Duration::from_secs(5),
        allow_private: true,
        base_backoff: Duration::from_millis(10),
        ..NotifyConfig::default()
    }
}

fn start(config: NotifyConfig) -> (Arc<HttpNotifier>, NotifierHandle) {
    HttpNotifier::start(config).expect("notifier starts")
}

fn member(id: &str, extra: Value) -> Arc<Member> {
    let mut m = json!({
        "executor_id": id, "exchange_id": "home", "display_name": id,
        "capabilities": ["photo:capture"], "key_hash": "0".repeat(64),
        "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-02-01T00:00:00Z",
        "last_seen": "2026-02-01T00:00:00Z",
    });
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Arc::new(serde_json::from_value(m).unwrap())
}

fn created_event(intent: &str, priority: Priority) -> Event {
    testing::event(EventKind::ThreadCreated(ThreadCreated {
        requestor_id: "claude-agent".parse().unwrap(),
        intent: intent.into(),
        priority,
        request: json!({"intent": intent, "priority": priority.as_str()})
            .as_object()
            .unwrap()
            .clone(),
    }))
    .id("e1")
    .thread(REF)
    .build()
}

/// A `thread_created` notice for "Check the front door" and the members given.
fn created(members: Vec<Arc<Member>>, sink: &Arc<Sink>) -> Notice {
    created_with("Check the front door", Priority::Normal, members, sink)
}

fn created_with(
    intent: &str,
    priority: Priority,
    members: Vec<Arc<Member>>,
    sink: &Arc<Sink>,
) -> Notice {
    let event = created_event(intent, priority);
    let thread = Arc::new(Thread::from_created(&event).unwrap());
    Notice {
        exchange_id: event.exchange_id.clone(),
        event,
        thread,
        members: members.into(),
        outcomes: Arc::clone(sink) as Arc<dyn OutcomeSink>,
    }
}

fn webhook_to(server: &MockServer) -> Value {
    json!({"notifications": [{"type": "webhook", "url": format!("{}/notify", server.uri())}]})
}

#[tokio::test]
async fn ntfy_gets_the_summary_with_an_encoded_emoji_title_priority_tags_and_click() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/mess-home"))
        .and(header(
            "Title",
            "=?UTF-8?B?TmV3IHJlcXVlc3Q6IENoZWNrIHRoZSBmcm9udCBkb29yIPCfmqo=?=",
        ))
        .and(header("Priority", "5"))
        // wiremock splits header values on commas: `Tags: mess,pending` is two values.
        .and(headers("Tags", vec!["mess", "pending"]))
        .and(header(
            "Click",
            "https://mess.example.com/#r/2026-02-01-AAAA",
        ))
        .and(header("Content-Type", "text/plain; charset=utf-8"))
        .and(body_string(
            "Check the front door 🚪\nRef: 2026-02-01-AAAA\nStatus: pending\nPriority: urgent\n\
             Requested by: claude-agent",
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        public_url: Some("https://mess.example.com/".into()),
        ..config()
    });
    let sink = Arc::new(Sink::default());
    let phone = member(
        "my-phone",
        json!({"notifications": [{"type": "ntfy", "topic": "mess-home", "server": format!("{}/", server.uri())}]}),
    );
    notifier.notify(created_with(
        "Check the front door 🚪",
        Priority::Urgent,
        vec![phone],
        &sink,
    ));
    let outcomes = sink.wait_for(1).await;
    assert_eq!(
        outcomes,
        [(
            true,
            NotificationOutcome {
                executor_id: "my-phone".parse().unwrap(),
                channel: "ntfy".into(),
                trigger: "thread_created".into(),
                attempts: 1,
                http_status: Some(200),
                error: None,
            }
        )]
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].headers.get("Tags").unwrap(), "mess,pending");
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn ntfy_without_a_public_url_sends_no_click_and_a_plain_ascii_title() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/t"))
        .and(header("Title", "New request: Check the front door"))
        .and(header("Priority", "3"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let phone = member(
        "my-phone",
        json!({"notifications": [{"type": "ntfy", "topic": "t", "server": server.uri()}]}),
    );
    notifier.notify(created(vec![phone], &sink));
    assert!(sink.wait_for(1).await[0].0);
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("Click").is_none());
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn slack_and_google_chat_get_text_in_their_own_formatting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slack"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({"text":
            "*New request: Check the front door &amp; &lt;gate&gt;*\nCheck the front door &amp; &lt;gate&gt;\n\
             Ref: <https://mess.example.com/#r/2026-02-01-AAAA|2026-02-01-AAAA> \
             · Status: *pending* · Priority: normal · Requested by: claude-agent"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({"text":
            "*New request: Check the front door & <gate>*\nCheck the front door & <gate>\n\
             Ref: <https://mess.example.com/#r/2026-02-01-AAAA|2026-02-01-AAAA>\n\
             Status: *pending*\nPriority: normal\nRequested by: claude-agent"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        public_url: Some("https://mess.example.com".into()),
        ..config()
    });
    let sink = Arc::new(Sink::default());
    let phone = member(
        "my-phone",
        json!({"notifications": [
            {"type": "slack", "webhook_url": format!("{}/slack", server.uri())},
            {"type": "google_chat", "webhook_url": format!("{}/chat", server.uri())},
        ]}),
    );
    notifier.notify(created_with(
        "Check the front door & <gate>",
        Priority::Normal,
        vec![phone],
        &sink,
    ));
    let mut outcomes = sink.wait_for(2).await;
    outcomes.sort_by(|a, b| a.1.channel.cmp(&b.1.channel));
    assert_eq!(
        outcomes
            .iter()
            .map(|o| (o.0, o.1.channel.as_str()))
            .collect::<Vec<_>>(),
        [(true, "google_chat"), (true, "slack")]
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_webhook_gets_the_json_payload_signed_with_its_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/notify"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let phone = member(
        "my-phone",
        json!({"notifications": [{"type": "webhook", "url": format!("{}/notify", server.uri()),
                                  "secret": "s3cret"}]}),
    );
    notifier.notify(created(vec![phone], &sink));
    let outcomes = sink.wait_for(1).await;
    assert_eq!(
        (outcomes[0].0, outcomes[0].1.http_status),
        (true, Some(204))
    );

    let requests = server.received_requests().await.unwrap();
    let request: &Request = &requests[0];
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "event_type": "thread_created",
            "exchange_id": "home",
            "title": "New request: Check the front door",
            "body": "Check the front door\nRef: 2026-02-01-AAAA\nStatus: pending\nPriority: normal\nRequested by: claude-agent",
            "thread": {
                "ref": REF, "status": "pending", "intent": "Check the front door",
                "requestor_id": "claude-agent", "executor_id": null, "priority": "normal",
                "created_at": "2026-02-01T22:00:00.000Z", "updated_at": "2026-02-01T22:00:00.000Z",
                "version": 1
            },
            "ts": "2026-02-01T22:00:00.000Z"
        })
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"s3cret").unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.headers.get("X-Mess-Signature").unwrap(),
        expected.as_str()
    );
    // The timestamped one: t is the event's time, v1 the HMAC of "t.body".
    let t = 1_769_983_200; // 2026-02-01T22:00:00Z
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.headers.get("X-Mess-Signature-256").unwrap(),
        expected.as_str()
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_webhook_without_a_secret_is_not_signed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    assert!(sink.wait_for(1).await[0].0);
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("X-Mess-Signature").is_none());
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_5xx_is_retried_up_to_max_attempts_then_recorded_failed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    let outcomes = sink.wait_for(1).await;
    assert_eq!(
        outcomes,
        [(
            false,
            NotificationOutcome {
                executor_id: "my-phone".parse().unwrap(),
                channel: "webhook".into(),
                trigger: "thread_created".into(),
                attempts: 3,
                http_status: Some(503),
                error: Some("HTTP 503".into()),
            }
        )]
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_send_slower_than_the_timeout_is_retried_then_recorded_failed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        max_attempts: 2,
        timeout: Duration::from_millis(300),
        ..config()
    });
    let sink = Arc::new(Sink::default());
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    let outcomes = sink.wait_for(1).await;
    let (delivered, o) = &outcomes[0];
    assert!(!delivered);
    assert_eq!(
        (o.attempts, o.http_status, o.error.as_deref()),
        (2, None, Some("timed out"))
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_429_honours_retry_after_then_delivers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let started = tokio::time::Instant::now();
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    let outcomes = sink.wait_for(1).await;
    let (delivered, o) = &outcomes[0];
    assert!(delivered);
    assert_eq!((o.attempts, o.http_status), (2, Some(200)));
    // The configured backoff is 10 ms: only Retry-After explains waiting a second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    let o = &sink.wait_for(1).await[0];
    assert_eq!((o.0, o.1.attempts, o.1.http_status), (false, 1, Some(404)));
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/notify"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("Location", "http://169.254.169.254/"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    let o = &sink.wait_for(1).await[0];
    assert_eq!((o.0, o.1.attempts, o.1.http_status), (false, 1, Some(302)));
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn loopback_destinations_are_refused_at_send_time_unless_private_is_allowed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        allow_private: false,
        ..config()
    });
    let sink = Arc::new(Sink::default());
    let port = server.address().port();
    let phone = member(
        "my-phone",
        json!({"notifications": [
            // An IP literal: checked before sending (the resolver is not asked).
            {"type": "webhook", "url": format!("http://127.0.0.1:{port}/a")},
            // A name: refused by the resolver, from the addresses it resolves to.
            {"type": "slack", "webhook_url": format!("http://localhost:{port}/b")},
        ]}),
    );
    notifier.notify(created(vec![phone], &sink));
    let outcomes = sink.wait_for(2).await;
    for (delivered, o) in &outcomes {
        assert!(!delivered);
        assert_eq!(o.attempts, 1, "{o:?}");
        assert_eq!(o.http_status, None);
        assert_eq!(o.error.as_deref(), Some("destination address not allowed"));
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_question_without_a_status_change_reaches_the_requestor_and_its_on_message_hook() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let created_event = created_event("Check the front door", Priority::Normal);
    let mut thread = Thread::from_created(&created_event).unwrap();
    let claim = testing::event(EventKind::StatusChanged(StatusChanged {
        old_status: Status::Pending,
        new_status: Status::Claimed,
        executor_id: Some("my-phone".parse().unwrap()),
    }))
    .thread(REF)
    .actor("my-phone")
    .seq(2)
    .build();
    thread.apply(&claim);
    let question = testing::event(EventKind::MessageAdded(mess_core::event::MessageAdded {
        mess: mess_core::Block::parse_list(
            &json!([{"query": {"content": ["Front or back door?"]}}]),
        )
        .unwrap(),
    }))
    .id("e3")
    .thread(REF)
    .actor("my-phone")
    .seq(3)
    .build();
    thread.apply(&question);
    let agent = member(
        "claude-agent",
        json!({"notifications": [{"type": "webhook", "url": format!("{}/agent", server.uri())}],
               "hooks": {"on_message": {"url": format!("{}/hook/{{{{ref}}}}", server.uri()),
                                        "secret": "hook-secret"}}}),
    );
    let phone = member(
        "my-phone",
        json!({"notifications": [{"type": "webhook", "url": format!("{}/phone", server.uri())}]}),
    );
    notifier.notify(Notice {
        exchange_id: question.exchange_id.clone(),
        event: question,
        thread: Arc::new(thread),
        members: [agent, phone].into(),
        outcomes: Arc::clone(&sink) as Arc<dyn OutcomeSink>,
    });
    let outcomes = sink.wait_for(2).await;
    assert!(handle.shutdown(Duration::from_secs(5)).await);
    assert!(
        outcomes
            .iter()
            .all(|(ok, o)| *ok && o.executor_id == "claude-agent")
    );
    let requests = server.received_requests().await.unwrap();
    let mut paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["/agent", &format!("/hook/{REF}")],
        "never the sender"
    );
    let to_agent = requests.iter().find(|r| r.url.path() == "/agent").unwrap();
    let body: Value = serde_json::from_slice(&to_agent.body).unwrap();
    assert_eq!(body["event_type"], "message_added");
    assert_eq!(body["title"], "Message from my-phone: Check the front door");
    assert_eq!(body["message"], "Front or back door?");
    let hook = requests.iter().find(|r| r.url.path() != "/agent").unwrap();
    let signed = hook
        .headers
        .get("X-Mess-Signature-256")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        signed.starts_with("t=") && signed.contains(",v1="),
        "{signed}"
    );
}

#[tokio::test]
async fn a_status_change_notifies_the_requestor_but_not_the_actor() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let url = |who: &str| json!({"notifications": [{"type": "webhook", "url": format!("{}/{who}", server.uri())}]});
    let created_event = created_event("Check the front door", Priority::Normal);
    let mut thread = Thread::from_created(&created_event).unwrap();
    let event = testing::event(EventKind::StatusChanged(StatusChanged {
        old_status: Status::Pending,
        new_status: Status::Claimed,
        executor_id: Some("my-phone".parse().unwrap()),
    }))
    .id("e2")
    .thread(REF)
    .actor("my-phone")
    .seq(2)
    .build();
    thread.apply(&event);
    notifier.notify(Notice {
        exchange_id: event.exchange_id.clone(),
        event,
        thread: Arc::new(thread),
        members: [
            member("claude-agent", url("agent")),
            member("my-phone", url("phone")),
        ]
        .into(),
        outcomes: Arc::clone(&sink) as Arc<dyn OutcomeSink>,
    });
    let outcomes = sink.wait_for(1).await;
    assert!(handle.shutdown(Duration::from_secs(5)).await);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].1.executor_id, "claude-agent");
    assert_eq!(outcomes[0].1.trigger, "status_changed");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/agent");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["title"], "Request claimed: Check the front door");
    assert_eq!(body["thread"]["executor_id"], "my-phone");
}

#[tokio::test]
async fn a_hook_sends_its_templated_request() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(
            "/api/webhook/2026-02-01-AAAA/Check%20the%20%22front%22%20door",
        ))
        .and(header("X-Source", "mess home normal"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({
            "text": "Check the \"front\" door is pending",
            "nested": ["claude-agent", 5, {"intent": "Check the \"front\" door"}],
            "unknown": "{{nope}}"
        })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let home = member(
        "home-assistant",
        json!({"hooks": {"on_request_created": {
            "url": format!("{}/api/webhook/{{{{ref}}}}/{{{{intent}}}}", server.uri()),
            "method": "put",
            "headers": {"X-Source": "mess {{exchange_id}} {{thread.priority}}"},
            "body": {"text": "{{thread.intent}} is {{ status }}",
                     "nested": ["{{requestor_id}}", 5, {"intent": "{{intent}}"}],
                     "unknown": "{{nope}}"}
        }}}),
    );
    notifier.notify(created_with(
        "Check the \"front\" door",
        Priority::Normal,
        vec![home],
        &sink,
    ));
    let o = &sink.wait_for(1).await[0];
    assert_eq!((o.0, o.1.channel.as_str(), o.1.attempts), (true, "hook", 1));
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_requestors_own_created_hook_fires_with_the_default_payload() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/created"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = start(config());
    let sink = Arc::new(Sink::default());
    let agent = member(
        "claude-agent",
        json!({"hooks": {"on_request_created": format!("{}/created", server.uri())},
               "notifications": [{"type": "webhook", "url": format!("{}/never", server.uri())}]}),
    );
    notifier.notify(created(vec![agent], &sink));
    let o = &sink.wait_for(1).await[0];
    assert_eq!((o.0, o.1.channel.as_str()), (true, "hook"));
    assert!(handle.shutdown(Duration::from_secs(5)).await);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["event_type"], "thread_created");
}

#[tokio::test]
async fn a_full_queue_drops_deliveries_without_blocking() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        queue_size: 1,
        concurrency: 1,
        ..config()
    });
    let sink = Arc::new(Sink::default());
    let channels: Vec<Value> = (0..5)
        .map(|i| json!({"type": "webhook", "url": format!("{}/{i}", server.uri())}))
        .collect();
    // On this single-threaded test runtime the dispatcher cannot run while `notify` does:
    // the first delivery fills the queue and the other four are dropped.
    notifier.notify(created(
        vec![member("my-phone", json!({"notifications": channels}))],
        &sink,
    ));
    assert!(handle.shutdown(Duration::from_secs(5)).await);
    assert_eq!(sink.outcomes().len(), 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn shutdown_drains_queued_deliveries_and_later_notices_are_dropped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(200)))
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        concurrency: 2,
        ..config()
    });
    let sink = Arc::new(Sink::default());
    let channels: Vec<Value> = (0..4)
        .map(|i| json!({"type": "webhook", "url": format!("{}/{i}", server.uri())}))
        .collect();
    let phone = member("my-phone", json!({"notifications": channels}));
    notifier.notify(created(vec![Arc::clone(&phone)], &sink));
    assert!(handle.shutdown(Duration::from_secs(10)).await);
    assert_eq!(sink.outcomes().iter().filter(|o| o.0).count(), 4);
    notifier.notify(created(vec![phone], &sink));
    tokio::task::yield_now().await;
    assert_eq!(sink.outcomes().len(), 4);
}

#[tokio::test]
async fn shutdown_gives_up_at_its_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let (notifier, handle) = start(NotifyConfig {
        timeout: Duration::from_secs(30),
        ..config()
    });
    let sink = Arc::new(Sink::default());
    notifier.notify(created(
        vec![member("my-phone", webhook_to(&server))],
        &sink,
    ));
    assert!(!handle.shutdown(Duration::from_millis(200)).await);
    assert!(sink.outcomes().is_empty());
}
