//! Profile validation at registration: every channel and hook URL, no name resolution.

use mess_core::{DomainError, Profile};
use mess_notify::validate_profile;
use serde_json::{Value, json};

fn check(body: Value) -> Result<(), DomainError> {
    validate_profile(&Profile::parse(&body).expect("the profile parses"))
}

fn webhook(url: &str) -> Value {
    json!({"notifications": [{"type": "ntfy", "topic": "ok"}, {"type": "webhook", "url": url}]})
}

#[test]
fn every_spelling_of_a_metadata_address_is_refused_naming_the_channel() {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://0xa9fea9fe/",
        "http://0xA9.0xFE.0xA9.0xFE/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://instance-data/latest/",
    ] {
        let err = check(webhook(url)).unwrap_err();
        let DomainError::Invalid(msg) = &err else {
            panic!("{url}: {err:?}")
        };
        assert!(
            msg.starts_with("notification channel 2 (webhook): "),
            "{url}: {msg}"
        );
        assert!(!msg.contains(url), "the message echoes the URL: {msg}");
    }
}

#[test]
fn each_channel_type_is_checked() {
    let bad = "http://169.254.169.254/";
    for (body, name) in [
        (
            json!({"notifications": [{"type": "ntfy", "topic": "t", "server": bad}]}),
            "1 (ntfy)",
        ),
        (
            json!({"notifications": [{"type": "slack", "webhook_url": bad}]}),
            "1 (slack)",
        ),
        (
            json!({"notifications": [{"type": "google_chat", "webhook_url": bad}]}),
            "1 (google_chat)",
        ),
        (
            json!({"notifications": [{"type": "ntfy", "topic": "a?b=c"}]}),
            "1 (ntfy)",
        ),
    ] {
        let err = check(body).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("notification channel {name}: ")),
            "{err}"
        );
    }
}

#[test]
fn ordinary_urls_and_names_that_do_not_resolve_are_accepted() {
    assert_eq!(
        check(json!({
            "notifications": [
                {"type": "ntfy", "topic": "mess-home"},
                {"type": "ntfy", "topic": "lan", "server": "http://192.168.1.5:8080"},
                {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
                {"type": "google_chat", "webhook_url": "https://chat.googleapis.com/v1/spaces/x"},
                {"type": "webhook", "url": "https://no-such-host.invalid/notify", "secret": "s"},
            ],
            "hooks": {"on_request_completed": {"url": "https://example.com/{{ref}}"}}
        })),
        Ok(())
    );
}

#[test]
fn hooks_are_checked_by_their_key() {
    let err = check(json!({"hooks": {"on_request_claimed": "http://2852039166/"}}))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("hook on_request_claimed: "), "{err}");
    let err = check(json!({"hooks": {"on_lunch": "https://example.com"}}))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("hook on_lunch: unknown moment"), "{err}");
}
