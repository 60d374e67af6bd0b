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
use mess_core::{EventKind, ExecutorId};
use mess_notify::Target;
use mess_notify::message::{Context, Outgoing};
use mess_notify::retry::{self, Attempt, RetryPolicy};
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// How the Worker retries: the binary's rules (`mess_notify::retry`), with fewer and shorter
/// attempts, since a Worker's `wait_until` lasts about 30 s after the response (the
/// binary: 5 attempts, up to a minute apart).
const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_backoff: Duration::from_millis(500),
    max_backoff: Duration::from_secs(4),
};
const TIMEOUT: Duration = Duration::from_secs(10);

async fn send_once(out: &Outgoing) -> Attempt {
    let fail = |error: &str| Attempt::Fail {
        status: None,
        error: error.into(),
    };
    let headers = Headers::new();
    for (k, v) in &out.headers {
        if headers.set(k, v).is_err() {
            return fail("invalid header");
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(out.method.to_string()))
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(js_sys::Uint8Array::from(out.body.as_slice()).into()));
    let req = match Request::new_with_init(&out.url, &init) {
        Ok(r) => r,
        Err(_) => return fail("invalid request"),
    };
    let fetch = Fetch::Request(req);
    let send = Box::pin(fetch.send());
    let timeout = Box::pin(Delay::from(TIMEOUT));
    match select(send, timeout).await {
        Either::Right(_) => Attempt::no_answer("timed out"),
        Either::Left((Err(_), _)) => Attempt::no_answer("connection failed"),
        Either::Left((Ok(res), _)) => {
            let retry_after = res
                .headers()
                .get("Retry-After")
                .ok()
                .flatten()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Attempt::of_status(res.status_code(), retry_after)
        }
    }
}

/// Sends `target`'s request for the context's event (retrying what is worth retrying, by
/// `mess_notify::retry`) and returns the outcome event's kind. With the action-link key,
/// an offer carries its signed "Claim" link (`mess_notify::message::claim_link`).
pub async fn deliver(
    executor_id: &ExecutorId,
    target: &Target,
    ctx: &Context,
    action_key: Option<&[u8]>,
) -> EventKind {
    let claim = action_key
        .and_then(|key| mess_notify::message::claim_link(key, &ctx.exchange_id, executor_id, ctx));
    let request = target.request_with(ctx, claim.as_deref());
    let delivery = retry::deliver(
        &RETRY,
        &request,
        send_once,
        |wait, _, _| Delay::from(wait),
        js_sys::Math::random,
    )
    .await;
    if !delivery.delivered {
        worker::console_warn!(
            "notification failed: exchange {} thread {} executor {} channel {} after {} attempts",
            ctx.exchange_id,
            ctx.thread.thread_ref,
            executor_id,
            target.kind(),
            delivery.attempts
        );
    }
    delivery.outcome(executor_id.clone(), target.kind(), target.trigger(ctx))
}

/// "Send me a test": one attempt at each of `member`'s channels, all at once, and each
/// channel's result in the member's order.
pub async fn test(
    exchange: &mess_core::ExchangeId,
    member: &mess_core::Member,
    now: mess_core::Timestamp,
    public_url: Option<&str>,
) -> Vec<mess_core::ChannelTest> {
    let sends = member.notifications.iter().map(|channel| async move {
        let out =
            mess_notify::test_request(channel, exchange, &member.executor_id, now, public_url);
        mess_notify::test_result(channel, send_once(&out).await)
    });
    futures::future::join_all(sends).await
}
