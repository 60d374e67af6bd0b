//! Lifecycle hooks: a member's templated webhooks (IFTTT, Zapier, Home Assistant...).
//!
//! `member.hooks` maps a lifecycle moment to a request:
//! ```json
//! {"on_request_completed": {
//!     "url": "https://ha.local/api/webhook/{{ref}}",
//!     "method": "POST",
//!     "headers": {"X-Source": "mess {{exchange_id}}"},
//!     "body": {"text": "{{intent}} is {{status}}"}}}
//! ```
//! `method` defaults to `POST`; a hook may also be just its URL as a string. Templates
//! (`{{ref}}`, `{{intent}}`, `{{status}}`, `{{priority}}`, `{{requestor_id}}`,
//! `{{executor_id}}`, `{{exchange_id}}`, `{{event_type}}`, `{{actor_id}}`, `{{title}}`,
//! `{{thread.<summary field>}}`) are filled in the URL (percent-encoded), header values and
//! body strings (inside a JSON body, each string is filled then JSON-encoded, so a value
//! can never break the JSON). Unknown placeholders stay as written. Without a `body`, a
//! POST, PUT or PATCH sends the generic webhook's JSON.

use std::collections::HashSet;
use std::sync::Arc;

use http::Method;
use http::header::HeaderName;
use mess_core::member::HookMoment;
use mess_core::{DomainError, Event, EventKind, ExecutorId, Member, Status, Thread, Timestamp};
use serde_json::{Map, Value};

use crate::message::{Context, Outgoing, signatures, webhook_payload};
use crate::recipients::{is_party, wants_new_thread};
use crate::safety;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const MAX_HEADERS: usize = 32;
const MAX_URL_CHARS: usize = 2048;
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Headers the HTTP client sets itself: a hook may not forge them.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// The moment `event` is, if hooks can attach to it: created; a status change to
/// `claimed`, `in_progress` (started, or a revision when it leaves a finished status),
/// `completed`, `cancelled`, `failed`, `expired`, `pending` (released) or `needs_input`;
/// a message without a status change (the host hands only those over: [`mess_core::notifiable`]).
pub fn hook_moment(event: &Event) -> Option<HookMoment> {
    match &event.kind {
        EventKind::ThreadCreated(_) => Some(HookMoment::OnRequestCreated),
        EventKind::StatusChanged(c) => match c.new_status {
            Status::Claimed => Some(HookMoment::OnRequestClaimed),
            Status::InProgress if c.old_status.is_terminal() => {
                Some(HookMoment::OnRevisionRequested)
            }
            Status::InProgress => Some(HookMoment::OnRequestStarted),
            Status::Completed => Some(HookMoment::OnRequestCompleted),
            Status::Cancelled => Some(HookMoment::OnRequestCancelled),
            Status::Failed => Some(HookMoment::OnRequestFailed),
            Status::Expired => Some(HookMoment::OnRequestExpired),
            Status::Pending => Some(HookMoment::OnRequestReleased),
            Status::NeedsInput => Some(HookMoment::OnNeedsInput),
            _ => None,
        },
        EventKind::MessageAdded(_) => Some(HookMoment::OnMessage),
        EventKind::ThreadUnclaimed(_) => Some(HookMoment::OnRequestUnclaimed),
        _ => None,
    }
}

/// The members whose hook fires for `event`, with the moment, each once: a member's hook
/// fires for events on threads it is the requestor or assignee of, whoever made the change
/// (hooks are automation, not alerts), and `on_request_created` also for threads it would
/// be notified of.
pub fn hook_targets(
    event: &Event,
    thread: &Thread,
    members: &[Arc<Member>],
    now: Timestamp,
) -> Vec<(Arc<Member>, HookMoment)> {
    let Some(moment) = hook_moment(event) else {
        return Vec::new();
    };
    let created = moment == HookMoment::OnRequestCreated;
    let mut seen = HashSet::new();
    members
        .iter()
        .filter(|m| m.hook(moment).is_some())
        .filter(|m| is_party(m, thread) || (created && wants_new_thread(m, thread, now)))
        .filter(|m| seen.insert(m.executor_id.as_str()))
        .map(|m| (Arc::clone(m), moment))
        .collect()
}

/// Checks a profile's `hooks`: known moments only, each with an http(s) URL that passes
/// the registration checks (no template in its host), a known method, string headers with
/// valid names, and a body of bounded size.
pub fn validate_hooks(hooks: &Map<String, Value>) -> Result<(), DomainError> {
    for (moment, spec) in hooks {
        if HookMoment::from_name(moment).is_none() {
            return Err(DomainError::invalid(format!(
                "hook {}: unknown moment (expected one of {})",
                printable(moment),
                HookMoment::ALL.map(HookMoment::as_str).join(", ")
            )));
        }
        if spec.is_null() {
            continue;
        }
        check_hook(spec).map_err(|e| DomainError::invalid(format!("hook {moment}: {e}")))?;
    }
    Ok(())
}

fn check_hook(spec: &Value) -> Result<(), String> {
    let hook = Hook::parse(spec)?;
    if hook.url.chars().count() > MAX_URL_CHARS || hook.url.chars().any(char::is_control) {
        return Err("url is too long or has control characters".into());
    }
    let authority = hook.url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority.contains("{{") {
        return Err("url: templates are not allowed in the host".into());
    }
    safety::check_url(&render(hook.url, |_| Some(String::new())))
        .map_err(|e| format!("url: {e}"))?;
    if let Some(headers) = hook.headers {
        if headers.len() > MAX_HEADERS {
            return Err(format!("at most {MAX_HEADERS} headers"));
        }
        for (name, value) in headers {
            let ok_name = HeaderName::from_bytes(name.as_bytes()).is_ok()
                && !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str());
            if !ok_name {
                return Err(format!(
                    "header {}: not an allowed header name",
                    printable(name)
                ));
            }
            match value.as_str() {
                Some(v) if !v.chars().any(char::is_control) => {}
                _ => return Err(format!("header {name}: value must be a one-line string")),
            }
        }
    }
    if let Some(body) = hook.body
        && serde_json::to_vec(body).map_or(0, |b| b.len()) > MAX_BODY_BYTES
    {
        return Err(format!("body is over {MAX_BODY_BYTES} bytes"));
    }
    Ok(())
}

/// A hook's fields, borrowed from its JSON.
struct Hook<'a> {
    url: &'a str,
    method: Method,
    headers: Option<&'a Map<String, Value>>,
    body: Option<&'a Value>,
    /// Signs the body (`X-Mess-Signature`, `X-Mess-Signature-256`) when set.
    secret: Option<&'a str>,
}

impl<'a> Hook<'a> {
    fn parse(spec: &'a Value) -> Result<Self, String> {
        if let Value::String(url) = spec {
            return Ok(Self {
                url,
                method: Method::POST,
                headers: None,
                body: None,
                secret: None,
            });
        }
        let obj = spec
            .as_object()
            .ok_or("must be an object with a url, or a url")?;
        let url = obj
            .get("url")
            .and_then(Value::as_str)
            .ok_or("url is required")?;
        let method = match obj.get("method") {
            None | Some(Value::Null) => Method::POST,
            Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string())?
            }
            Some(_) => return Err(format!("method must be one of {}", METHODS.join(", "))),
        };
        let headers = match obj.get("headers") {
            None | Some(Value::Null) => None,
            Some(Value::Object(h)) => Some(h),
            Some(_) => return Err("headers must be an object".into()),
        };
        let body = obj.get("body").filter(|b| !b.is_null());
        let secret = match obj.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.as_str()),
            Some(_) => return Err("secret must be a string of 1 to 256 characters".into()),
        };
        Ok(Self {
            url,
            method,
            headers,
            body,
            secret,
        })
    }
}

/// The request a hook sends for the context's event. The error is a short reason, safe to
/// record.
pub(crate) fn hook_request(spec: &Value, ctx: &Context) -> Result<Outgoing, String> {
    let hook = Hook::parse(spec)?;
    let vars = |name: &str| variable(ctx, name);
    let url = render(hook.url, |name| vars(name).map(|v| percent_encode(&v)));
    let mut headers = Vec::new();
    let mut has_content_type = false;
    for (name, value) in hook.headers.into_iter().flatten() {
        let value = render(value.as_str().unwrap_or_default(), vars);
        if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(format!(
                "header {}: value is not plain ASCII",
                printable(name)
            ));
        }
        has_content_type |= name.eq_ignore_ascii_case("content-type");
        headers.push((name.clone(), value));
    }
    let (body, content_type) = match hook.body {
        Some(Value::String(s)) => (render(s, vars).into_bytes(), "text/plain; charset=utf-8"),
        Some(v) => (
            serde_json::to_vec(&fill(v, &vars)).unwrap_or_default(),
            "application/json",
        ),
        None if matches!(hook.method, Method::POST | Method::PUT | Method::PATCH) => (
            serde_json::to_vec(&webhook_payload(ctx)).unwrap_or_default(),
            "application/json",
        ),
        None => (Vec::new(), ""),
    };
    if !has_content_type && !content_type.is_empty() {
        headers.push(("Content-Type".into(), content_type.into()));
    }
    if let Some(secret) = hook.secret {
        headers.extend(signatures(secret, ctx.ts_secs, &body));
    }
    Ok(Outgoing {
        method: hook.method,
        url,
        headers,
        body,
    })
}

/// The value of a template variable, or `None` for an unknown one.
fn variable(ctx: &Context, name: &str) -> Option<String> {
    let t = &ctx.thread;
    let s = match name {
        "ref" => t.thread_ref.to_string(),
        "intent" => t.intent.clone(),
        "status" => t.status.as_str().to_owned(),
        "priority" => t.priority.as_str().to_owned(),
        "requestor_id" => t.requestor_id.to_string(),
        "executor_id" => t
            .executor_id
            .as_ref()
            .map(ExecutorId::to_string)
            .unwrap_or_default(),
        "exchange_id" => ctx.exchange_id.to_string(),
        "event_type" => ctx.event_type.clone(),
        "actor_id" => ctx.actor_id.to_string(),
        "title" => ctx.title(),
        _ => match ctx.summary.get(name.strip_prefix("thread.")?)? {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        },
    };
    Some(s)
}

/// Fills `{{ name }}` placeholders in `template`; unknown ones stay as written.
pub fn render(template: &str, vars: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let whole = &rest[start..start + 2 + len + 2];
        match vars(rest[start + 2..start + 2 + len].trim()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(whole),
        }
        rest = &rest[start + whole.len()..];
    }
    out.push_str(rest);
    out
}

/// `value` with every string in it rendered (object keys are left alone).
fn fill(value: &Value, vars: &impl Fn(&str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => Value::String(render(s, vars)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, vars)).collect()),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| (k.clone(), fill(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a value can neither
/// change a URL's structure nor its host.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// At most 64 characters of client input, without control characters, for errors.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipients::tests::{at, changed, created, member};
    use mess_core::Priority;
    use serde_json::json;

    fn hooked(id: &str, caps: &[&str], prefs: Value, moments: &[HookMoment]) -> Arc<Member> {
        let mut m = Member::clone(&member(id, caps, prefs));
        for moment in moments {
            m.hooks
                .insert(moment.as_str().into(), json!("https://hooks.example/x"));
        }
        Arc::new(m)
    }

    fn fired(targets: &[(Arc<Member>, HookMoment)]) -> Vec<(&str, HookMoment)> {
        targets
            .iter()
            .map(|(m, moment)| (m.executor_id.as_str(), *moment))
            .collect()
    }

    #[test]
    fn every_status_moment_of_protocol_md_has_its_hook() {
        use mess_core::event::StatusChanged;
        let moment = |from: Status, to: Status| {
            hook_moment(
                &mess_core::testing::event(EventKind::StatusChanged(StatusChanged {
                    old_status: from,
                    new_status: to,
                    executor_id: None,
                }))
                .build(),
            )
        };
        use HookMoment::*;
        use Status::*;
        assert_eq!(moment(Pending, Claimed), Some(OnRequestClaimed));
        assert_eq!(moment(Claimed, InProgress), Some(OnRequestStarted));
        assert_eq!(moment(Completed, InProgress), Some(OnRevisionRequested));
        assert_eq!(moment(Partial, InProgress), Some(OnRevisionRequested));
        assert_eq!(moment(InProgress, Completed), Some(OnRequestCompleted));
        assert_eq!(moment(Pending, Cancelled), Some(OnRequestCancelled));
        assert_eq!(moment(InProgress, Failed), Some(OnRequestFailed));
        assert_eq!(moment(Pending, Expired), Some(OnRequestExpired));
        assert_eq!(moment(Claimed, Pending), Some(OnRequestReleased));
        assert_eq!(moment(Claimed, NeedsInput), Some(OnNeedsInput));
        assert_eq!(moment(Claimed, Waiting), None);
        let message =
            mess_core::testing::event(EventKind::MessageAdded(mess_core::event::MessageAdded {
                mess: Vec::new(),
            }))
            .build();
        assert_eq!(hook_moment(&message), Some(OnMessage));
    }

    #[test]
    fn a_status_changes_own_message_is_told_with_it_a_message_alone_is_told() {
        use mess_core::event::{MessageAdded, StatusChanged};
        let status = mess_core::testing::event(EventKind::StatusChanged(StatusChanged {
            old_status: Status::Pending,
            new_status: Status::Claimed,
            executor_id: None,
        }))
        .build();
        let message =
            mess_core::testing::event(EventKind::MessageAdded(MessageAdded { mess: Vec::new() }))
                .build();
        let write = [status.clone(), message.clone()];
        assert_eq!(mess_core::notifiable(&write).count(), 1);
        assert!(mess_core::told(&write, 0) && !mess_core::told(&write, 1));
        let alone = [message];
        assert!(mess_core::told(&alone, 0));
    }

    #[test]
    fn created_hooks_fire_for_the_requestor_and_members_who_would_be_notified() {
        let all = [HookMoment::OnRequestCreated, HookMoment::OnRequestClaimed];
        let members = [
            hooked("agent", &[], json!({}), &all),
            hooked("phone", &["photo:capture"], json!({}), &all),
            hooked("speaker", &[], json!({}), &all),
            hooked(
                "asleep",
                &["photo:capture"],
                json!({"quiet_hours":
                {"start": "00:00", "end": "23:59"}}),
                &all,
            ),
            member("plain", &["photo:capture"], json!({})),
        ];
        let (e, t) = created(Priority::Normal, &["photo:capture"]);
        let targets = hook_targets(&e, &t, &members, at("2026-02-01T12:00:00Z"));
        assert_eq!(
            fired(&targets),
            [
                ("agent", HookMoment::OnRequestCreated),
                ("phone", HookMoment::OnRequestCreated)
            ]
        );
    }

    #[test]
    fn status_hooks_fire_for_the_parties_even_the_one_who_acted() {
        let members = [
            hooked("agent", &[], json!({}), &HookMoment::ALL),
            hooked("phone", &[], json!({}), &HookMoment::ALL),
            hooked("other", &[], json!({}), &HookMoment::ALL),
        ];
        let (_, mut t) = created(Priority::Normal, &[]);
        for (to, moment) in [
            (Status::Claimed, Some(HookMoment::OnRequestClaimed)),
            (Status::InProgress, Some(HookMoment::OnRequestStarted)),
            (Status::Waiting, None),
            (Status::Completed, Some(HookMoment::OnRequestCompleted)),
        ] {
            let e = changed(&mut t, "phone", to, Some("phone"));
            assert_eq!(hook_moment(&e), moment);
            let expected: Vec<_> = moment
                .map(|m| vec![("agent", m), ("phone", m)])
                .unwrap_or_default();
            assert_eq!(
                fired(&hook_targets(&e, &t, &members, e.ts)),
                expected,
                "{to}"
            );
        }
        let e = changed(&mut t, "agent", Status::Cancelled, Some("phone"));
        assert_eq!(
            fired(&hook_targets(&e, &t, &members, e.ts)),
            [
                ("agent", HookMoment::OnRequestCancelled),
                ("phone", HookMoment::OnRequestCancelled)
            ]
        );
    }

    #[test]
    fn render_fills_known_placeholders_and_keeps_unknown_ones() {
        let vars = |n: &str| (n == "ref").then(|| "R1".to_owned());
        assert_eq!(
            render("a {{ref}} b {{ ref }} {{nope}} {{", vars),
            "a R1 b R1 {{nope}} {{"
        );
        assert_eq!(render("", vars), "");
        assert_eq!(render("}}{{ref}}", vars), "}}R1");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
    }

    #[test]
    fn good_hooks_validate() {
        let hooks = json!({
            "on_request_created": "https://maker.ifttt.com/trigger/mess/with/key/abc",
            "on_request_completed": {
                "url": "http://homeassistant.local:8123/api/webhook/{{ref}}",
                "method": "put",
                "headers": {"X-Token": "t {{exchange_id}}"},
                "body": {"text": "{{intent}} is {{status}}"}
            },
            "on_request_cancelled": null
        });
        assert_eq!(validate_hooks(hooks.as_object().unwrap()), Ok(()));
    }

    #[test]
    fn bad_hooks_name_their_moment() {
        for (hooks, needle) in [
            (
                json!({"on_request_exploded": "https://x.example"}),
                "hook on_request_exploded",
            ),
            (
                json!({"on_request_created": {"method": "POST"}}),
                "hook on_request_created",
            ),
            (
                json!({"on_request_created": "ftp://x.example"}),
                "hook on_request_created",
            ),
            (
                json!({"on_request_claimed": "http://169.254.169.254/"}),
                "hook on_request_claimed",
            ),
            (
                json!({"on_request_claimed": "http://[::ffff:169.254.169.254]/"}),
                "claimed",
            ),
            (
                json!({"on_request_claimed": "http://metadata.google.internal/"}),
                "claimed",
            ),
            (
                json!({"on_request_started": {"url": "https://x.example", "method": "TRACE"}}),
                "started",
            ),
            (
                json!({"on_request_started": {"url": "https://x.example", "headers": []}}),
                "started",
            ),
            (
                json!({"on_request_started": {"url": "https://x.example", "headers": {"Host": "y"}}}),
                "started",
            ),
            (
                json!({"on_request_started": {"url": "https://x.example", "headers": {"a b": "y"}}}),
                "started",
            ),
            (
                json!({"on_request_started": {"url": "https://x.example", "headers": {"X": 1}}}),
                "started",
            ),
            (
                json!({"on_request_started": {"url": "https://{{intent}}/x"}}),
                "host",
            ),
            (json!({"on_request_started": 5}), "started"),
        ] {
            let err = validate_hooks(hooks.as_object().unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{hooks}: {err}");
        }
    }
}
