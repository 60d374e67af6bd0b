//! "Send me a test" against real local HTTP listeners (wiremock): one attempt per channel,
//! each channel's result in the member's order, no URL or secret in it.
#![cfg(feature = "send")]
// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mess_core::{ChannelTest, ExchangeId, Member, Notifier, Timestamp};
use mess_notify::{HttpNotifier, NotifyConfig};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn member(channels: Value) -> Member {
    serde_json::from_value(json!({
        "executor_id": "ada", "exchange_id": "home", "display_name": "Ada",
        "capabilities": [], "key_hash": "0".repeat(64),
        "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-02-01T00:00:00Z",
        "last_seen": "2026-02-01T00:00:00Z", "notifications": channels,
    }))
    .unwrap()
}

fn config(allow_private: bool) -> NotifyConfig {
    NotifyConfig {
        max_attempts: 5,
        timeout: Duration::from_secs(5),
        allow_private,
        base_backoff: Duration::from_millis(10),
        public_url: Some("https://mess.example.com".into()),
        ..NotifyConfig::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_unix_millis(1_770_000_000_000)
}

#[tokio::test]
async fn each_channel_gets_one_test_and_its_result_comes_back_in_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/mess-ada"))
        .and(header("Title", "Test notification from MESS"))
        .and(header("Click", "https://mess.example.com/#me"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // A 5xx would be retried by a notification; a test tries once.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let (notifier, handle) = HttpNotifier::start(config(true)).unwrap();
    let ada = member(json!([
        {"type": "ntfy", "topic": "mess-ada", "server": server.uri()},
        {"type": "webhook", "url": format!("{}/hook", server.uri()), "secret": "s3cret"},
    ]));
    let x = ExchangeId::parse("home").unwrap();
    let results = notifier.send_test(&x, &ada, now()).await;
    assert_eq!(
        results,
        [
            ChannelTest::delivered("ntfy", 200),
            ChannelTest::failed("webhook", Some(503), "HTTP 503"),
        ]
    );
    let requests = server.received_requests().await.unwrap();
    let hook = requests.iter().find(|r| r.url.path() == "/hook").unwrap();
    let body: Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(body["event_type"], "test_notification");
    assert!(hook.headers.get("X-Mess-Signature-256").is_some());
    let shown = serde_json::to_string(&results).unwrap();
    assert!(
        !shown.contains("s3cret") && !shown.contains(&server.uri()),
        "{shown}"
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_refused_destination_is_reported_and_nothing_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let (notifier, handle) = HttpNotifier::start(config(false)).unwrap();
    let ada = member(json!([{"type": "slack", "webhook_url": format!("{}/slack", server.uri())}]));
    let x = ExchangeId::parse("home").unwrap();
    let results = notifier.send_test(&x, &ada, now()).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].channel, "slack");
    assert!(!results[0].ok);
    assert_eq!(results[0].http_status, None);
    assert_eq!(
        results[0].error.as_deref(),
        Some("destination address not allowed")
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_member_without_channels_gets_an_empty_list() {
    let (notifier, handle) = HttpNotifier::start(config(true)).unwrap();
    let x = ExchangeId::parse("home").unwrap();
    assert!(
        notifier
            .send_test(&x, &member(json!([])), now())
            .await
            .is_empty()
    );
    assert!(handle.shutdown(Duration::from_secs(5)).await);
}
