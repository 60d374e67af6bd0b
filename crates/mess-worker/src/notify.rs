//! Notifications from the Worker: who is told (`mess-notify`'s `recipients.rs`) and what
//! each channel is sent (`mess-notify`'s `message.rs`), re-implemented here because
//! mess-notify runs on tokio and reqwest. Sent with `fetch` after the response (the
//! Durable Object's `wait_until`), each with a timeout and a few retries; every outcome is
//! recorded as a `notification_delivered` / `notification_failed` event (no URL, token or
//! secret in it).
//!
//! Not carried over: lifecycle hooks (`hooks.on_request_created`...), which the binary
//! sends as templated webhooks, and the send-time check of resolved addresses (a Worker's
//! `fetch` cannot reach private or link-local addresses anyway).

use std::sync::Arc;
use std::time::Duration;

use futures::future::{Either, select};
use hmac::{Hmac, KeyInit, Mac};
use jiff::tz::TimeZone;
use mess_core::event::NotificationOutcome;
use mess_core::{
    Channel, DomainError, Event, EventKind, Member, Preferences, Priority, Profile, Thread,
    Timestamp,
};
use serde_json::{Value, json};
use sha2::Sha256;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// The ntfy server used when a channel names none.
pub const DEFAULT_NTFY_SERVER: &str = "https://ntfy.sh";
const SIGNATURE_HEADER: &str = "X-Mess-Signature";
const MAX_TITLE_CHARS: usize = 120;
/// Attempts per delivery (the binary's default is 5 over minutes; a Worker's `wait_until`
/// lasts about 30 s after the response, so fewer and shorter).
const MAX_ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
const BASE_BACKOFF: Duration = Duration::from_millis(500);

/// Host names that reach a cloud provider's instance metadata service.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
];

/// Checks a URL without resolving it: http(s), a host, no literal link-local or metadata
/// address, no metadata host name.
fn check_url(raw: &str) -> Result<(), &'static str> {
    let rest = if let Some(r) = raw.strip_prefix("https://") {
        r
    } else if let Some(r) = raw.strip_prefix("http://") {
        r
    } else if raw.contains("://") {
        return Err("only http and https URLs are allowed");
    } else {
        return Err("not a valid URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not a valid URL");
    }
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_HOSTS.contains(&h.as_str()) {
        return Err("cloud metadata host names are not allowed");
    }
    let refused = match h.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            (o[0] == 169 && o[1] == 254) || o == [100, 100, 100, 200]
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let mapped = v6.to_ipv4_mapped().map(|v4| v4.octets());
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]
                || mapped.is_some_and(|o| (o[0] == 169 && o[1] == 254) || o == [100, 100, 100, 200])
        }
        Err(_) => false,
    };
    if refused {
        return Err("link-local and cloud metadata addresses are not allowed");
    }
    Ok(())
}

fn check_channel(channel: &Channel) -> Result<(), &'static str> {
    match channel {
        Channel::Ntfy { topic, server } => {
            let topic_ok = !topic.is_empty()
                && topic.len() <= 64
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !topic_ok {
                return Err("topic must be 1 to 64 letters, digits, - or _");
            }
            check_url(server.as_deref().unwrap_or(DEFAULT_NTFY_SERVER))
        }
        Channel::Slack { webhook_url } | Channel::GoogleChat { webhook_url } => {
            check_url(webhook_url)
        }
        Channel::Webhook { url, .. } => check_url(url),
    }
}

/// Checks a profile's channels before they are stored (the binary's `Notifier::validate`).
pub fn validate(profile: &Profile) -> Result<(), DomainError> {
    for (i, channel) in profile.notifications.iter().flatten().enumerate() {
        check_channel(channel).map_err(|e| {
            DomainError::invalid(format!(
                "notification channel {} ({}): {e}",
                i + 1,
                channel.kind()
            ))
        })?;
    }
    Ok(())
}

/// The members to notify about `event` on `thread`, each once.
pub fn recipients(
    event: &Event,
    thread: &Thread,
    members: &[Arc<Member>],
    now: Timestamp,
) -> Vec<Arc<Member>> {
    let mut seen = std::collections::HashSet::new();
    members
        .iter()
        .filter(|m| {
            let keep = match &event.kind {
                EventKind::ThreadCreated(_) => {
                    m.executor_id.as_str() != thread.requestor_id
                        && wants_new_thread(m, thread, now)
                }
                EventKind::StatusChanged(_) => {
                    let id = m.executor_id.as_str();
                    id != event.actor_id
                        && (id == thread.requestor_id || thread.executor_id.as_deref() == Some(id))
                }
                _ => false,
            };
            keep && seen.insert(m.executor_id.as_str().to_owned())
        })
        .cloned()
        .collect()
}

fn wants_new_thread(member: &Member, thread: &Thread, now: Timestamp) -> bool {
    let prefs = &member.preferences;
    member.covers(&thread.requires)
        && prefs.min_priority.is_none_or(|min| thread.priority >= min)
        && (thread.priority == Priority::Urgent || !in_quiet_hours(prefs, now))
}

fn in_quiet_hours(prefs: &Preferences, now: Timestamp) -> bool {
    let Some(q) = prefs.quiet_hours.as_ref().filter(|q| q.enabled) else {
        return false;
    };
    let Some((start, end)) = q.minutes() else {
        return false;
    };
    let Ok(instant) = jiff::Timestamp::from_millisecond(now.unix_millis()) else {
        return false;
    };
    let tz = prefs
        .timezone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC);
    let local = instant.to_zoned(tz);
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    if start <= end {
        start <= minute && minute < end
    } else {
        minute >= start || minute < end
    }
}

/// Everything a message is built from.
pub struct Context {
    exchange_id: String,
    event_type: String,
    actor_id: String,
    ts: Value,
    thread: Arc<Thread>,
    summary: Value,
    public_url: Option<String>,
}

impl Context {
    /// The context of `event` on `thread`.
    pub fn new(event: &Event, thread: &Arc<Thread>, public_url: Option<&str>) -> Self {
        Self {
            exchange_id: event.exchange_id.to_string(),
            event_type: event.kind.event_type().to_owned(),
            actor_id: event.actor_id.clone(),
            ts: serde_json::to_value(event.ts).unwrap_or(Value::Null),
            thread: Arc::clone(thread),
            summary: serde_json::to_value(thread.summary()).unwrap_or(Value::Null),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
        }
    }

    /// The event type (`thread_created`, `status_changed`): the outcome's trigger.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    fn title(&self) -> String {
        let t = &self.thread;
        let full = if self.event_type == "thread_created" {
            format!("New request: {}", t.intent)
        } else {
            format!(
                "Request {}: {}",
                t.status.as_str().replace('_', " "),
                t.intent
            )
        };
        one_line(&full, MAX_TITLE_CHARS)
    }

    fn text(&self) -> String {
        let t = &self.thread;
        let mut s = format!(
            "{}\nRef: {}\nStatus: {}\nPriority: {}\nRequested by: {}",
            t.intent, t.thread_ref, t.status, t.priority, t.requestor_id
        );
        if let Some(e) = &t.executor_id {
            s.push_str(&format!("\nAssigned to: {e}"));
        }
        if self.event_type == "status_changed" {
            s.push_str(&format!("\nChanged by: {}", self.actor_id));
        }
        s
    }

    fn link(&self) -> Option<String> {
        self.public_url.as_ref().map(|base| {
            format!(
                "{base}/api/v1/exchanges/{}/requests/{}",
                self.exchange_id, self.thread.thread_ref
            )
        })
    }
}

/// One HTTP request ready to send.
pub struct Outgoing {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The request that notifies `channel` of the context's event.
pub fn channel_request(channel: &Channel, ctx: &Context) -> Outgoing {
    match channel {
        Channel::Ntfy { topic, server } => {
            let server = server
                .as_deref()
                .unwrap_or(DEFAULT_NTFY_SERVER)
                .trim_end_matches('/');
            let mut headers = vec![
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ("Title".into(), header_text(&ctx.title())),
                (
                    "Priority".into(),
                    ntfy_priority(ctx.thread.priority).to_string(),
                ),
                ("Tags".into(), format!("mess,{}", ctx.thread.status)),
            ];
            if let Some(link) = ctx.link() {
                headers.push(("Click".into(), link));
            }
            Outgoing {
                url: format!("{server}/{topic}"),
                headers,
                body: ctx.text().into_bytes(),
            }
        }
        Channel::Slack { webhook_url } => json_post(webhook_url, &json!({"text": slack_text(ctx)})),
        Channel::GoogleChat { webhook_url } => {
            json_post(webhook_url, &json!({"text": google_chat_text(ctx)}))
        }
        Channel::Webhook { url, secret } => {
            let mut out = json_post(url, &webhook_payload(ctx));
            if let Some(secret) = secret {
                out.headers
                    .push((SIGNATURE_HEADER.into(), signature(secret, &out.body)));
            }
            out
        }
    }
}

fn ntfy_priority(p: Priority) -> u8 {
    match p {
        Priority::Background => 2,
        Priority::Normal => 3,
        Priority::Elevated => 4,
        Priority::Urgent => 5,
    }
}

fn slack_text(ctx: &Context) -> String {
    let t = &ctx.thread;
    let reference = match ctx.link() {
        Some(link) => format!("<{}|{}>", slack_escape(&link), t.thread_ref),
        None => format!("`{}`", t.thread_ref),
    };
    let mut s = format!(
        "*{}*\n{}\nRef: {reference} · Status: *{}* · Priority: {} · Requested by: {}",
        slack_escape(&ctx.title()),
        slack_escape(&t.intent),
        t.status,
        t.priority,
        slack_escape(&t.requestor_id),
    );
    if let Some(e) = &t.executor_id {
        s.push_str(&format!(" · Assigned to: {}", slack_escape(e)));
    }
    s
}

fn google_chat_text(ctx: &Context) -> String {
    let t = &ctx.thread;
    let reference = match ctx.link() {
        Some(link) => format!("<{link}|{}>", t.thread_ref),
        None => format!("`{}`", t.thread_ref),
    };
    let mut s = format!(
        "*{}*\n{}\nRef: {reference}\nStatus: *{}*\nPriority: {}\nRequested by: {}",
        ctx.title(),
        t.intent,
        t.status,
        t.priority,
        t.requestor_id,
    );
    if let Some(e) = &t.executor_id {
        s.push_str(&format!("\nAssigned to: {e}"));
    }
    s
}

fn webhook_payload(ctx: &Context) -> Value {
    json!({
        "event_type": ctx.event_type,
        "exchange_id": ctx.exchange_id,
        "title": ctx.title(),
        "body": ctx.text(),
        "thread": ctx.summary,
        "ts": ctx.ts,
    })
}

fn json_post(url: &str, body: &Value) -> Outgoing {
    Outgoing {
        url: url.to_owned(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

fn header_text(s: &str) -> String {
    use base64::Engine;
    let flat = one_line(s, usize::MAX);
    if flat.bytes().all(|b| (0x20..0x7f).contains(&b)) && !flat.contains("=?") {
        flat
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(flat.as_bytes())
        )
    }
}

enum Try {
    Delivered(u16),
    Again(Option<u16>, String),
    Fail(Option<u16>, String),
}

async fn send_once(out: &Outgoing) -> Try {
    let headers = Headers::new();
    for (k, v) in &out.headers {
        if headers.set(k, v).is_err() {
            return Try::Fail(None, "invalid header".into());
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(js_sys::Uint8Array::from(out.body.as_slice()).into()));
    let req = match Request::new_with_init(&out.url, &init) {
        Ok(r) => r,
        Err(_) => return Try::Fail(None, "invalid request".into()),
    };
    let fetch = Fetch::Request(req);
    let send = Box::pin(fetch.send());
    let timeout = Box::pin(Delay::from(TIMEOUT));
    match select(send, timeout).await {
        Either::Right(_) => Try::Again(None, "timed out".into()),
        Either::Left((Err(_), _)) => Try::Again(None, "connection failed".into()),
        Either::Left((Ok(res), _)) => {
            let s = res.status_code();
            match s {
                200..=299 => Try::Delivered(s),
                429 | 500..=599 => Try::Again(Some(s), format!("HTTP {s}")),
                _ => Try::Fail(Some(s), format!("HTTP {s}")),
            }
        }
    }
}

/// Sends `out` (retrying what is worth retrying) and returns the outcome event's kind.
pub async fn deliver(
    executor_id: &str,
    channel: &Channel,
    ctx: &Context,
    out: Outgoing,
) -> EventKind {
    let mut attempts = 0;
    let (delivered, status, error) = loop {
        attempts += 1;
        match send_once(&out).await {
            Try::Delivered(s) => break (true, Some(s), None),
            Try::Fail(s, e) => break (false, s, Some(e)),
            Try::Again(s, e) if attempts >= MAX_ATTEMPTS => break (false, s, Some(e)),
            Try::Again(..) => {
                Delay::from(BASE_BACKOFF * (1 << (attempts - 1))).await;
            }
        }
    };
    let outcome = NotificationOutcome {
        executor_id: executor_id.to_owned(),
        channel: channel.kind().to_owned(),
        trigger: ctx.event_type().to_owned(),
        attempts,
        http_status: status,
        error,
    };
    if delivered {
        EventKind::NotificationDelivered(outcome)
    } else {
        worker::console_warn!(
            "notification failed: exchange {} thread {} executor {} channel {} after {} attempts",
            ctx.exchange_id,
            ctx.thread.thread_ref,
            executor_id,
            channel.kind(),
            attempts
        );
        EventKind::NotificationFailed(outcome)
    }
}
