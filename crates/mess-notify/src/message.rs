//! What each channel is sent: the exact HTTP request, built purely from the event.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use http::Method;
use mess_core::{Actor, Channel, Event, EventKind, ExchangeId, Priority, Thread};
use serde_json::{Value, json};
use sha2::Sha256;

/// The ntfy server used when a channel names none.
pub const DEFAULT_NTFY_SERVER: &str = "https://ntfy.sh";

/// The header carrying a webhook body's signature: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Mess-Signature";

/// The timestamped signature, so that a receiver can refuse replays:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_256_HEADER: &str = "X-Mess-Signature-256";

/// Titles longer than this are cut (with an ellipsis): they are one line on a phone.
const MAX_TITLE_CHARS: usize = 120;

/// Everything a message is built from: one per notice, shared by its deliveries.
#[derive(Debug)]
pub struct Context {
    /// The exchange.
    pub exchange_id: ExchangeId,
    /// The event's type (`thread_created`, `status_changed`).
    pub event_type: String,
    /// Who caused the event.
    pub actor_id: Actor,
    /// When it happened, as stored.
    pub ts: Value,
    /// When it happened, in Unix seconds (the `t` of `X-Mess-Signature-256`).
    pub ts_secs: i64,
    /// For a message without a status change: its text, for people.
    pub message: Option<String>,
    /// The thread after the event.
    pub thread: Arc<Thread>,
    /// `thread.summary()` as JSON: the list shape, also the hook template fields.
    pub summary: Value,
    /// The public base URL, without a trailing slash.
    pub public_url: Option<String>,
}

/// The signed claim link of an offer for `executor` (`{PUBLIC_URL}/a/{token}`, signed with
/// `key`): only for a pending request, never for its own requestor, and only with a public
/// URL. It names the request's version, so it stops working once the request changes.
/// Both hosts put it on the offers they send.
pub fn claim_link(
    key: &[u8],
    exchange: &ExchangeId,
    executor: &mess_core::ExecutorId,
    ctx: &Context,
) -> Option<String> {
    let base = ctx.public_url.as_deref()?;
    let t = &ctx.thread;
    if t.status != mess_core::Status::Pending || t.requestor_id == *executor {
        return None;
    }
    let link = mess_core::action_link::ActionLink::claim(
        exchange.clone(),
        executor.clone(),
        t.thread_ref.clone(),
        t.version,
        ctx.ts_secs,
    );
    Some(format!("{base}/a/{}", link.sign(key)))
}

impl Context {
    /// The context of `event` on `thread`.
    pub fn new(event: &Event, thread: &Arc<Thread>, public_url: Option<&str>) -> Self {
        Self {
            exchange_id: event.exchange_id.clone(),
            event_type: event.kind.event_type().to_owned(),
            actor_id: event.actor_id.clone(),
            ts: serde_json::to_value(event.ts).unwrap_or(Value::Null),
            ts_secs: event.ts.unix_millis().div_euclid(1000),
            message: match &event.kind {
                EventKind::MessageAdded(m) => Some(message_text(&m.mess)),
                _ => None,
            },
            thread: Arc::clone(thread),
            summary: serde_json::to_value(thread.summary()).unwrap_or(Value::Null),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
        }
    }

    /// One line for people: `New request: Check the door`, `Request claimed: ...`.
    pub fn title(&self) -> String {
        let t = &self.thread;
        let full = if self.event_type == "thread_created" {
            format!("New request: {}", t.intent)
        } else if self.event_type == "offer_reminded" {
            format!("Still open: {}", t.intent)
        } else if self.event_type == "needed_by_passed" {
            format!("Past its needed_by: {}", t.intent)
        } else if self.event_type == "thread_unclaimed" {
            format!("Nobody has taken your request yet: {}", t.intent)
        } else if self.message.is_some() {
            format!("Message from {}: {}", self.actor_id, t.intent)
        } else {
            format!(
                "Request {}: {}",
                t.status.as_str().replace('_', " "),
                t.intent
            )
        };
        one_line(&full, MAX_TITLE_CHARS)
    }

    /// The thread summary as plain text: intent, ref, status, priority, who.
    pub fn text(&self) -> String {
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
        if let Some(m) = &self.message {
            s = format!("{}: {m}\n\n{s}", self.actor_id);
        }
        s
    }

    /// Where people see the thread, when a public URL is configured: the thread in the app
    /// the exchange serves at `/` (a phone opens it signed in; the API itself would answer
    /// 401 to a browser).
    pub fn link(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}/#r/{}", self.thread.thread_ref))
    }
}

/// One HTTP request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The URL (a secret: never logged, never recorded).
    pub url: String,
    /// Header names and values, values already safe (visible ASCII).
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// The request that notifies `channel` of the context's event.
/// With `claim` (the recipient's signed claim link of an offer), ntfy gets an "Open" and a
/// "Claim" action (an http POST from the phone), Slack and Google Chat two link buttons
/// (the claim one opens the confirm page: a GET never claims).
pub(crate) fn channel_request(channel: &Channel, ctx: &Context, claim: Option<&str>) -> Outgoing {
    match channel {
        Channel::Ntfy { topic, server, .. } => {
            let mut out = ntfy(topic, server.as_deref(), ctx);
            if let (Some(claim), Some(link)) = (claim, ctx.link()) {
                out.headers.push((
                    "Actions".into(),
                    format!(
                        "view, Open, {link}, clear=true; http, Claim, {claim}, method=POST, clear=true"
                    ),
                ));
            }
            out
        }
        Channel::Slack { webhook_url } => {
            let text = slack_text(ctx);
            let body = match (claim, ctx.link()) {
                (Some(claim), Some(link)) => json!({
                    "text": text,
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                        {"type": "actions", "elements": [
                            {"type": "button", "text": {"type": "plain_text", "text": "Open"},
                             "url": link},
                            {"type": "button", "text": {"type": "plain_text", "text": "Claim…"},
                             "url": claim, "style": "primary"},
                        ]},
                    ],
                }),
                _ => json!({"text": text}),
            };
            json_post(webhook_url, &body)
        }
        Channel::GoogleChat { webhook_url } => {
            let text = google_chat_text(ctx);
            let body = match (claim, ctx.link()) {
                (Some(claim), Some(link)) => json!({
                    "text": text,
                    "cardsV2": [{"cardId": "mess-offer", "card": {"sections": [{"widgets": [
                        {"buttonList": {"buttons": [
                            {"text": "Open", "onClick": {"openLink": {"url": link}}},
                            {"text": "Claim…", "onClick": {"openLink": {"url": claim}}},
                        ]}},
                    ]}]}}],
                }),
                _ => json!({"text": text}),
            };
            json_post(webhook_url, &body)
        }
        Channel::Webhook { url, secret } => {
            let mut out = json_post(url, &webhook_payload(ctx));
            if let Some(secret) = secret {
                let signed = signatures(secret, ctx.ts_secs, &out.body);
                out.headers.extend(signed);
            }
            out
        }
    }
}

fn ntfy(topic: &str, server: Option<&str>, ctx: &Context) -> Outgoing {
    let server = server.unwrap_or(DEFAULT_NTFY_SERVER).trim_end_matches('/');
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
    // An offer carries its sequence id, so that ntfy 2.16+ can update or clear it when it
    // is withdrawn (older servers ignore the header).
    if ctx.thread.status == mess_core::Status::Pending {
        headers.push((NTFY_SEQUENCE_HEADER.into(), offer_sequence_id(ctx)));
    }
    Outgoing {
        method: Method::POST,
        url: format!("{server}/{topic}"),
        headers,
        body: ctx.text().into_bytes(),
    }
}

/// The header naming an ntfy notification's sequence id (ntfy 2.16+).
pub const NTFY_SEQUENCE_HEADER: &str = "X-Sequence-ID";

/// The sequence id of the offer of the context's thread: one per thread and exchange, so
/// every offer of it (the first, a reminder, a re-offer) is one notification on a phone.
pub fn offer_sequence_id(ctx: &Context) -> String {
    format!("mess-{}-{}", ctx.exchange_id, ctx.thread.thread_ref)
}

/// The request that withdraws the context's thread's offer on `channel`, if the channel
/// can: an ntfy 2.16+ channel (`updates: true`) gets its notification updated to "Taken
/// by ..." when someone claimed it, cleared otherwise; a webhook gets `offer_withdrawn`.
pub(crate) fn withdrawal_request(channel: &Channel, ctx: &Context) -> Option<Outgoing> {
    let t = &ctx.thread;
    match channel {
        Channel::Ntfy {
            topic,
            server,
            updates: Some(true),
        } => {
            let server = server
                .as_deref()
                .unwrap_or(DEFAULT_NTFY_SERVER)
                .trim_end_matches('/');
            let seq = offer_sequence_id(ctx);
            Some(match &t.executor_id {
                Some(holder) => Outgoing {
                    method: Method::POST,
                    url: format!("{server}/{topic}"),
                    headers: vec![
                        ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                        (NTFY_SEQUENCE_HEADER.into(), seq),
                        (
                            "Title".into(),
                            header_text(&one_line(
                                &format!("Taken by {holder}: {}", t.intent),
                                MAX_TITLE_CHARS,
                            )),
                        ),
                        ("Priority".into(), "1".into()),
                        ("Tags".into(), "mess,taken".into()),
                    ],
                    body: format!("{} was taken by {holder}.", t.intent).into_bytes(),
                },
                None => Outgoing {
                    method: Method::PUT,
                    url: format!("{server}/{topic}/{seq}/clear"),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
            })
        }
        Channel::Webhook { url, secret } => {
            let mut payload = webhook_payload(ctx);
            payload["event_type"] = "offer_withdrawn".into();
            payload["reason"] = t.status.as_str().into();
            payload["title"] = one_line(
                &format!("No longer open ({}): {}", t.status, t.intent),
                MAX_TITLE_CHARS,
            )
            .into();
            let mut out = json_post(url, &payload);
            if let Some(secret) = secret {
                out.headers
                    .extend(signatures(secret, ctx.ts_secs, &out.body));
            }
            Some(out)
        }
        _ => None,
    }
}

/// ntfy's 1 (min) to 5 (max): background 2, normal 3 (ntfy's default), elevated 4, urgent 5.
pub fn ntfy_priority(p: Priority) -> u8 {
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
        slack_escape(t.requestor_id.as_str()),
    );
    if let Some(e) = &t.executor_id {
        s.push_str(&format!(" · Assigned to: {}", slack_escape(e.as_str())));
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

/// The generic webhook's JSON body.
pub(crate) fn webhook_payload(ctx: &Context) -> Value {
    let mut payload = json!({
        "event_type": ctx.event_type,
        "exchange_id": ctx.exchange_id,
        "title": ctx.title(),
        "body": ctx.text(),
        "thread": ctx.summary,
        "ts": ctx.ts,
    });
    if let Some(m) = &ctx.message {
        payload["message"] = Value::String(m.clone());
    }
    payload
}

/// Both signature headers of `body`: today's `X-Mess-Signature` (unchanged) and the
/// timestamped `X-Mess-Signature-256` for `t` (Unix seconds).
pub(crate) fn signatures(secret: &str, t: i64, body: &[u8]) -> [(String, String); 2] {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let v1 = signature(secret, &signed);
    let v1 = v1.strip_prefix("sha256=").unwrap_or(&v1);
    [
        (SIGNATURE_HEADER.into(), signature(secret, body)),
        (SIGNATURE_256_HEADER.into(), format!("t={t},v1={v1}")),
    ]
}

/// A message's text for people: its content strings and text items, its `message`,
/// `question(s)` and `text` fields, in order; the blocks as JSON when none.
fn message_text(blocks: &[mess_core::Block]) -> String {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if !mess_core::blob::is_attachment(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            Value::Object(map) => {
                for key in [
                    "text",
                    "message",
                    "question",
                    "questions",
                    "content",
                    "answer",
                ] {
                    if let Some(v) = map.get(key) {
                        collect(v, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut parts = Vec::new();
    for b in blocks {
        collect(&b.body(), &mut parts);
    }
    if parts.is_empty() {
        return "(a message with no text)".into();
    }
    one_line(&parts.join(" "), 1000)
}

fn json_post(url: &str, body: &Value) -> Outgoing {
    Outgoing {
        method: Method::POST,
        url: url.to_owned(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Slack mrkdwn's three control characters, escaped as Slack asks.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` on one line, at most `max` characters.
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

/// A header value that survives any text: as is when it is printable ASCII, otherwise an
/// RFC 2047 encoded word (`=?UTF-8?B?...?=`), which ntfy decodes. Raw non-ASCII bytes in
/// a header are what made every send with an emoji title fail.
pub fn header_text(s: &str) -> String {
    let flat = one_line(s, usize::MAX);
    if flat.bytes().all(|b| (0x20..0x7f).contains(&b)) && !flat.contains("=?") {
        flat
    } else {
        format!("=?UTF-8?B?{}?=", base64(flat.as_bytes()))
    }
}

/// Standard base64 with padding (RFC 4648), for encoded words.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn header_text_keeps_ascii_and_encodes_the_rest() {
        assert_eq!(header_text("New request: door"), "New request: door");
        assert_eq!(header_text("🚪 door"), "=?UTF-8?B?8J+aqiBkb29y?=");
        assert_eq!(header_text("a\nb"), "a b");
        assert!(header_text("=?x?=").starts_with("=?UTF-8?B?"));
    }

    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn long_titles_are_cut_on_one_line() {
        let t = one_line(&"x".repeat(500), MAX_TITLE_CHARS);
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
        assert!(t.ends_with('…'));
    }
}
