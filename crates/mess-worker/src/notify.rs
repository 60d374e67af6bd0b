//! Notifications from the Worker. Who is told and what each channel is sent come from
//! `mess-notify` built without its sender (no tokio or reqwest), so the Worker and the
//! binary send the same requests and refuse the same profiles. Sent here with `fetch`
//! after the response (the Durable Object's `wait_until`), each with a timeout and a few
//! retries; every outcome is recorded as a `notification_delivered` /
//! `notification_failed` event (no URL, token or secret in it).
//!
//! Members' lifecycle hooks (`hooks.on_request_created`...) are among those deliveries
//! (`mess_notify::deliveries`), as in the binary. Not carried over: the send-time check of
//! resolved addresses (a Worker's `fetch` cannot reach private or link-local addresses
//! anyway).

use std::time::Duration;

use futures::future::{Either, select};
use mess_core::event::NotificationOutcome;
use mess_core::{EventKind, ExecutorId};
use mess_notify::Target;
use mess_notify::message::{Context, Outgoing};
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// Attempts per delivery (the binary's default is 5 over minutes; a Worker's `wait_until`
/// lasts about 30 s after the response, so fewer and shorter).
const MAX_ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
const BASE_BACKOFF: Duration = Duration::from_millis(500);

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
    init.with_method(Method::from(out.method.to_string()))
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

/// Sends `target`'s request for the context's event (retrying what is worth retrying) and
/// returns the outcome event's kind. A request that could not be built (a hook whose
/// template fills in to a refused URL) fails without an attempt.
pub async fn deliver(executor_id: &ExecutorId, target: &Target, ctx: &Context) -> EventKind {
    let mut attempts = 0;
    let (delivered, status, error) = match target.request(ctx) {
        Err(error) => (false, None, Some(error)),
        Ok(out) => loop {
            attempts += 1;
            match send_once(&out).await {
                Try::Delivered(s) => break (true, Some(s), None),
                Try::Fail(s, e) => break (false, s, Some(e)),
                Try::Again(s, e) if attempts >= MAX_ATTEMPTS => break (false, s, Some(e)),
                Try::Again(..) => {
                    Delay::from(BASE_BACKOFF * (1 << (attempts - 1))).await;
                }
            }
        },
    };
    let outcome = NotificationOutcome {
        executor_id: executor_id.clone(),
        channel: target.kind().to_owned(),
        trigger: ctx.event_type.clone(),
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
            target.kind(),
            attempts
        );
        EventKind::NotificationFailed(outcome)
    }
}
