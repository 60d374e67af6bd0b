//! "Send me a test": the one request each channel gets when its member asks for a test
//! notification, and how one attempt reads as a [`ChannelTest`]. Pure: the binary's
//! notifier sends it with reqwest, the Cloudflare Worker with `fetch`; one attempt each,
//! and no outcome event (a test belongs to no thread).

use http::Method;
use mess_core::{Channel, ChannelTest, ExchangeId, ExecutorId, Timestamp};
use serde_json::{Value, json};

use crate::message::{DEFAULT_NTFY_SERVER, Outgoing, signatures};
use crate::retry::Attempt;

/// The webhook payload's `event_type` of a test.
pub const TEST_EVENT_TYPE: &str = "test_notification";

const TITLE: &str = "Test notification from MESS";

/// The request that sends `channel` a test notification for `member` of `exchange` at
/// `now`; with a public URL, ntfy's click and the text link to the app's profile screen.
pub fn test_request(
    channel: &Channel,
    exchange: &ExchangeId,
    member: &ExecutorId,
    now: Timestamp,
    public_url: Option<&str>,
) -> Outgoing {
    let link = public_url.map(|u| format!("{}/#me", u.trim_end_matches('/')));
    let mut text = format!(
        "This is a test from the exchange {exchange}, sent at {member}'s request: notifications reach you here."
    );
    if let Some(link) = &link {
        text.push_str(&format!("\nYour profile: {link}"));
    }
    match channel {
        Channel::Ntfy { topic, server, .. } => {
            let server = server
                .as_deref()
                .unwrap_or(DEFAULT_NTFY_SERVER)
                .trim_end_matches('/');
            let mut headers = vec![
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ("Title".into(), TITLE.into()),
                ("Tags".into(), "mess,test".into()),
            ];
            if let Some(link) = link {
                headers.push(("Click".into(), link));
            }
            Outgoing {
                method: Method::POST,
                url: format!("{server}/{topic}"),
                headers,
                body: text.into_bytes(),
            }
        }
        Channel::Slack { webhook_url } | Channel::GoogleChat { webhook_url } => post(
            webhook_url,
            &json!({ "text": format!("*{TITLE}*\n{text}") }),
        ),
        Channel::Webhook { url, secret } => {
            let secs = now.unix_millis().div_euclid(1000);
            let payload = json!({
                "event_type": TEST_EVENT_TYPE,
                "exchange_id": exchange,
                "executor_id": member,
                "title": TITLE,
                "body": text,
                "ts": now,
            });
            let mut out = post(url, &payload);
            if let Some(secret) = secret {
                out.headers.extend(signatures(secret, secs, &out.body));
            }
            out
        }
    }
}

fn post(url: &str, body: &Value) -> Outgoing {
    Outgoing {
        method: Method::POST,
        url: url.to_owned(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// How one attempt at a test reads for its member (the error carries no URL or secret).
pub fn test_result(channel: &Channel, attempt: Attempt) -> ChannelTest {
    let kind = channel.kind();
    match attempt {
        Attempt::Delivered(status) => ChannelTest::delivered(kind, status),
        Attempt::Again { status, error, .. } | Attempt::Fail { status, error } => {
            ChannelTest::failed(kind, status, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ExchangeId, ExecutorId, Timestamp) {
        (
            ExchangeId::parse("home").unwrap(),
            ExecutorId::parse("ada").unwrap(),
            Timestamp::from_unix_millis(1_700_000_000_500),
        )
    }

    #[test]
    fn ntfy_gets_a_titled_text_with_a_link_to_the_profile() {
        let (x, m, now) = ids();
        let c = Channel::Ntfy {
            topic: "t0pic".into(),
            server: Some("https://ntfy.example/".into()),
            updates: None,
        };
        let out = test_request(&c, &x, &m, now, Some("https://mess.example/"));
        assert_eq!(out.url, "https://ntfy.example/t0pic");
        assert!(out.headers.contains(&("Title".into(), TITLE.into())));
        assert!(
            out.headers
                .contains(&("Click".into(), "https://mess.example/#me".into()))
        );
        assert!(String::from_utf8(out.body).unwrap().contains("home"));
    }

    #[test]
    fn a_webhook_with_a_secret_is_signed_and_names_the_test() {
        let (x, m, now) = ids();
        let c = Channel::Webhook {
            url: "https://hook.example/x".into(),
            secret: Some("s3cret".into()),
        };
        let out = test_request(&c, &x, &m, now, None);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["event_type"], TEST_EVENT_TYPE);
        assert_eq!(body["executor_id"], "ada");
        let sig = crate::message::signature("s3cret", &out.body);
        assert!(
            out.headers
                .iter()
                .any(|(k, v)| k == "X-Mess-Signature" && *v == sig)
        );
        assert!(
            out.headers
                .iter()
                .any(|(k, v)| k == "X-Mess-Signature-256" && v.starts_with("t=1700000000,v1="))
        );
        assert!(!String::from_utf8_lossy(&out.body).contains("s3cret"));
    }

    #[test]
    fn an_attempt_reads_as_ok_or_as_the_reason() {
        let c = Channel::Slack {
            webhook_url: "https://hooks.slack.example/x".into(),
        };
        assert_eq!(
            test_result(&c, Attempt::Delivered(200)),
            ChannelTest::delivered("slack", 200)
        );
        let failed = test_result(&c, Attempt::of_status(404, None));
        assert!(!failed.ok);
        assert_eq!(failed.http_status, Some(404));
        assert_eq!(failed.error.as_deref(), Some("HTTP 404"));
        let refused = test_result(&c, Attempt::no_answer("timed out"));
        assert_eq!(
            (refused.http_status, refused.error.as_deref()),
            (None, Some("timed out"))
        );
    }
}
