//! `/a/{token}`: what a notification's "Claim" button does, for both hosts.
//!
//! `GET` shows what the link would do and changes nothing (link previews, mail scanners
//! and chat unfurlers fetch links); `POST` claims the request for the member the link was
//! sent to. A browser (`Accept: text/html`) gets a small page, with a form for the `POST`
//! and a link into the app; anything else (ntfy's http action, scripts) gets JSON. The
//! token is checked by the host ([`ActionLink::verify`]) before it
//! finds the exchange; these functions take the verified link.

use std::sync::Arc;

use mess_core::{Status, Thread};
use serde_json::json;

use crate::error::ApiError;
use crate::port::{ExchangePort, Written};
use crate::reply::Reply;
use mess_core::action_link::{ActionLink, LinkError};

/// The policy of a link page: its own stylesheet (the app's), a form posting to itself,
/// nothing else.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A refusal, as a page or JSON.
#[derive(Debug)]
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The answer to a token that did not verify (or whose exchange is not here).
pub fn refused(error: LinkError, html: bool) -> Reply {
    let r = match error {
        LinkError::Invalid => Refusal::new(403, "forbidden", error.to_string()),
        LinkError::Expired => Refusal::new(410, "link_expired", error.to_string()),
    };
    refusal(&r, None, html)
}

/// Why the link cannot claim now, if it cannot: the member left, the request is gone, no
/// longer pending, or changed since the notification.
fn check<P: ExchangePort>(
    x: &P,
    link: &ActionLink,
) -> Result<Arc<Thread>, (Refusal, Option<Arc<Thread>>)> {
    let (member, thread) = x.read(|s| {
        (
            s.member(&link.member).is_some(),
            s.thread(&link.thread_ref).cloned(),
        )
    });
    if !member {
        return Err((
            Refusal::new(
                403,
                "forbidden",
                "this link was sent to a member who has left the exchange",
            ),
            None,
        ));
    }
    let Some(thread) = thread else {
        return Err((
            Refusal::new(404, "not_found", "this request no longer exists"),
            None,
        ));
    };
    if thread.status != Status::Pending {
        let message = match &thread.executor_id {
            Some(holder) if *holder == link.member => {
                "you have already claimed this request: this link was used".to_owned()
            }
            Some(holder) => format!("this request was taken by {holder}"),
            None => format!("this request is no longer open ({})", thread.status),
        };
        return Err((Refusal::new(409, "already_claimed", message), Some(thread)));
    }
    if thread.version != link.version {
        return Err((
            Refusal::new(
                409,
                "link_outdated",
                "this request has changed since you were told of it: open it in the app",
            ),
            Some(thread),
        ));
    }
    Ok(thread)
}

/// `GET /a/{token}`: what the link would do, changing nothing.
pub fn preview<P: ExchangePort>(x: &P, link: &ActionLink, token: &str, html: bool) -> Reply {
    match check(x, link) {
        Err((r, thread)) => refusal(&r, thread.as_deref(), html),
        Ok(thread) if html => page(
            200,
            "Claim this request?",
            &format!(
                "You ({}) were offered it. Claiming tells the requestor you are on it.",
                link.member
            ),
            Some(&thread),
            Some(token),
        ),
        Ok(thread) => Reply::json(
            200,
            &json!({
                "action": "claim",
                "ref": thread.thread_ref.as_str(),
                "status": thread.status.as_str(),
                "intent": thread.intent,
                "executor_id": link.member.as_str(),
                "expires": link.expires,
            }),
        ),
    }
}

/// `POST /a/{token}`: claims the request for the link's member, once.
pub async fn claim<P: ExchangePort>(x: &P, link: &ActionLink, html: bool) -> Reply {
    if let Err((r, thread)) = check(x, link) {
        return refusal(&r, thread.as_deref(), html);
    }
    let cmd = mess_core::Command::Update {
        thread: link.thread_ref.clone(),
        status: Some(mess_core::StatusUpdate {
            to: Status::Claimed,
            extra: serde_json::Map::new(),
        }),
        mess: None,
    };
    let actor = mess_core::Actor::Member(link.member.clone());
    match x.commit(actor, cmd).await {
        Ok(Written::Thread(t)) if html => page(
            200,
            "Claimed: it is yours",
            "The requestor is told. Open it in the app to start, ask a question or answer.",
            Some(&t),
            None,
        ),
        Ok(Written::Thread(t)) => Reply::json(
            200,
            &json!({
                "ref": t.thread_ref.as_str(),
                "status": t.status.as_str(),
                "executor_id": link.member.as_str(),
            }),
        ),
        Ok(_) => ApiError::Internal.reply(),
        Err(e) if html => {
            let thread = x.read(|s| s.thread(&link.thread_ref).cloned());
            let r = Refusal::new(e.status(), "refused", e.to_string());
            refusal(&r, thread.as_deref(), true)
        }
        Err(e) => e.reply(),
    }
}

fn refusal(r: &Refusal, thread: Option<&Thread>, html: bool) -> Reply {
    if html {
        let title = match r.status {
            409 => "Not open any more",
            410 => "This link has expired",
            404 => "Not found",
            _ => "This link does not work",
        };
        return page(r.status, title, &r.message, thread, None);
    }
    Reply::json(r.status, &json!({"error": r.message, "code": r.code}))
}

/// A small page in the app's style: a title, a line, the request, the claim form (with a
/// token) and a link into the app.
fn page(
    status: u16,
    title: &str,
    detail: &str,
    thread: Option<&Thread>,
    token: Option<&str>,
) -> Reply {
    let mut body = String::with_capacity(2048);
    body.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <link rel=\"icon\" href=\"/app/icon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/app/style.css\"><title>",
    );
    body.push_str(&escape(title));
    body.push_str(" · MESS</title></head><body><main class=\"link-page\"><h1>");
    body.push_str(&escape(title));
    body.push_str("</h1><p>");
    body.push_str(&escape(&sentence(detail)));
    body.push_str("</p>");
    if let Some(t) = thread {
        body.push_str("<section class=\"card\"><h2>");
        body.push_str(&escape(&t.intent));
        body.push_str("</h2><p class=\"meta\">");
        body.push_str(&escape(&format!(
            "{} priority · from {} · {}",
            t.priority.as_str(),
            t.requestor_id,
            t.status
        )));
        body.push_str("</p></section>");
    }
    if let Some(token) = token {
        body.push_str("<form method=\"post\" action=\"/a/");
        body.push_str(&escape(token));
        body.push_str("\"><button type=\"submit\" class=\"primary\">Claim it</button></form>");
    }
    match thread {
        Some(t) => {
            body.push_str("<p><a href=\"/#r/");
            body.push_str(&escape(t.thread_ref.as_str()));
            body.push_str("\">Open it in the app</a></p>");
        }
        None => body.push_str("<p><a href=\"/\">Open the app</a></p>"),
    }
    body.push_str("</main></body></html>\n");
    Reply {
        status,
        content_type: "text/html; charset=utf-8".into(),
        headers: vec![
            ("Content-Security-Policy", PAGE_CSP.into()),
            ("Referrer-Policy", "no-referrer".into()),
            ("Cache-Control", "no-store".into()),
        ],
        body: body.into_bytes(),
    }
}

/// A line of the page: the detail begins with a capital letter (the refusals' texts are
/// the JSON errors, lower case like every API error; only the page capitalises them).
fn sentence(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Text for HTML: `& < > " '` escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_members_wrote() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
        let r = page(200, "<t>", "d&", None, Some("a.b"));
        let text = String::from_utf8(r.body).unwrap();
        assert!(
            text.contains("&lt;t&gt;") && !text.contains("<t>"),
            "{text}"
        );
        assert!(text.contains("action=\"/a/a.b\""), "{text}");
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Content-Security-Policy" && v == PAGE_CSP)
        );
    }

    #[test]
    fn refusals_are_json_with_a_code_or_a_page() {
        let json = refused(LinkError::Expired, false);
        assert_eq!(json.status, 410);
        let body: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(body["code"], "link_expired");
        assert!(body["error"].as_str().unwrap().contains("expired"));
        let html = refused(LinkError::Invalid, true);
        assert_eq!(html.status, 403);
        assert!(html.content_type.starts_with("text/html"));
    }

    #[test]
    fn a_pages_detail_line_begins_with_a_capital_and_json_keeps_the_error_text() {
        let r = Refusal::new(409, "already_claimed", "this request was taken by bob");
        let page = String::from_utf8(refusal(&r, None, true).body).unwrap();
        assert!(
            page.contains("<p>This request was taken by bob</p>"),
            "{page}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&refusal(&r, None, false).body).unwrap();
        assert_eq!(json["error"], "this request was taken by bob");
        assert_eq!(sentence("élan"), "Élan");
        assert_eq!(sentence(""), "");
    }
}
