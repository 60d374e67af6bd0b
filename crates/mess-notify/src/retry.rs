//! When a delivery is tried again and what its outcome records: one set of rules for both
//! senders, the binary's (reqwest on tokio, `notifier`) and the Cloudflare Worker's
//! (`fetch`). Each brings only its way to send one request, to wait, and to draw jitter.

use std::future::Future;
use std::time::Duration;

use mess_core::event::NotificationOutcome;
use mess_core::{EventKind, ExecutorId};

use crate::message::Outgoing;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx.
    Delivered(u16),
    /// Worth another attempt: 5xx, 429, a timeout, a failed connection. `after` is the
    /// receiver's `Retry-After`, when it gave one.
    Again {
        /// The HTTP status, if there was an answer.
        status: Option<u16>,
        /// What went wrong (no URL, token or secret in it).
        error: String,
        /// How long the receiver asked us to wait.
        after: Option<Duration>,
    },
    /// Final: 3xx (redirects are not followed), other 4xx, a refused destination.
    Fail {
        /// The HTTP status, if there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

impl Attempt {
    /// The verdict on an HTTP answer with `status` (and the `Retry-After` of a 429).
    pub fn of_status(status: u16, retry_after: Option<Duration>) -> Self {
        let error = format!("HTTP {status}");
        match status {
            200..=299 => Attempt::Delivered(status),
            429 => Attempt::Again {
                status: Some(status),
                error,
                after: retry_after,
            },
            500..=599 => Attempt::Again {
                status: Some(status),
                error,
                after: None,
            },
            300..=399 => Attempt::Fail {
                status: Some(status),
                error: format!("HTTP {status}: redirects are not followed"),
            },
            _ => Attempt::Fail {
                status: Some(status),
                error,
            },
        }
    }

    /// No answer: a timeout or a failed connection, worth another attempt.
    pub fn no_answer(error: &str) -> Self {
        Attempt::Again {
            status: None,
            error: error.to_owned(),
            after: None,
        }
    }
}

/// How many attempts, and how long between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per delivery, the first included (at least 1).
    pub max_attempts: u32,
    /// The first retry's delay; doubled each attempt.
    pub base_backoff: Duration,
    /// The longest wait between two attempts, `Retry-After` included.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after `attempts` failed ones: the receiver's `after` if it gave one, else
    /// exponential backoff (`base * 2^(attempts-1)`), half of it fixed and half scaled by
    /// `jitter` (0.0 to 1.0); capped at `max_backoff` either way.
    pub fn wait(&self, attempts: u32, after: Option<Duration>, jitter: f64) -> Duration {
        let wait = after.unwrap_or_else(|| {
            let exp = self
                .base_backoff
                .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
                .min(self.max_backoff);
            let half = exp / 2;
            half + half.mul_f64(jitter.clamp(0.0, 1.0))
        });
        wait.min(self.max_backoff)
    }
}

/// How a delivery ended, after every attempt it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Whether the receiver took it (2xx).
    pub delivered: bool,
    /// Attempts made (0 when no request could be built).
    pub attempts: u32,
    /// The last HTTP status, if any.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Delivery {
    /// The event that records it: `notification_delivered` or `notification_failed`.
    pub fn outcome(self, executor_id: ExecutorId, channel: &str, trigger: &str) -> EventKind {
        let outcome = NotificationOutcome {
            executor_id,
            channel: channel.to_owned(),
            trigger: trigger.to_owned(),
            attempts: self.attempts,
            http_status: self.status,
            error: self.error,
        };
        if self.delivered {
            EventKind::NotificationDelivered(outcome)
        } else {
            EventKind::NotificationFailed(outcome)
        }
    }
}

/// Delivers `request` by `policy`: `send` makes one attempt, `sleep` waits (it is told the
/// attempts so far and the last error, to log them), `jitter` draws from 0.0 to 1.0. A
/// request that could not be built (`Err`: a hook whose template fills in to a refused URL)
/// fails without an attempt.
pub async fn deliver<'a, S, SF, W, WF>(
    policy: &RetryPolicy,
    request: &'a Result<Outgoing, String>,
    mut send: S,
    mut sleep: W,
    mut jitter: impl FnMut() -> f64,
) -> Delivery
where
    S: FnMut(&'a Outgoing) -> SF,
    SF: Future<Output = Attempt>,
    W: FnMut(Duration, u32, &str) -> WF,
    WF: Future<Output = ()>,
{
    let out = match request {
        Ok(out) => out,
        Err(error) => {
            return Delivery {
                delivered: false,
                attempts: 0,
                status: None,
                error: Some(error.clone()),
            };
        }
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, error, after) = match send(out).await {
            Attempt::Delivered(s) => {
                return Delivery {
                    delivered: true,
                    attempts,
                    status: Some(s),
                    error: None,
                };
            }
            Attempt::Fail { status, error } => {
                return Delivery {
                    delivered: false,
                    attempts,
                    status,
                    error: Some(error),
                };
            }
            Attempt::Again {
                status,
                error,
                after,
            } => (status, error, after),
        };
        if attempts >= policy.max_attempts.max(1) {
            return Delivery {
                delivered: false,
                attempts,
                status,
                error: Some(error),
            };
        }
        sleep(policy.wait(attempts, after, jitter()), attempts, &error).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::future::ready;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(60),
    };

    fn out() -> Outgoing {
        Outgoing {
            method: http::Method::POST,
            url: "https://hooks.example/x".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Runs a future that never waits (the test's send and sleep are ready at once).
    fn now<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the test's futures are always ready"),
        }
    }

    #[test]
    fn statuses_decide_whether_to_try_again() {
        assert_eq!(Attempt::of_status(204, None), Attempt::Delivered(204));
        assert!(matches!(
            Attempt::of_status(503, None),
            Attempt::Again { .. }
        ));
        assert!(matches!(
            Attempt::of_status(429, Some(Duration::from_secs(7))),
            Attempt::Again { after: Some(a), .. } if a == Duration::from_secs(7)
        ));
        assert!(matches!(
            Attempt::of_status(302, None),
            Attempt::Fail { error, .. } if error.contains("redirects")
        ));
        assert!(matches!(
            Attempt::of_status(404, None),
            Attempt::Fail { .. }
        ));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(POLICY.wait(1, None, 0.0), Duration::from_millis(250));
        assert_eq!(POLICY.wait(1, None, 1.0), Duration::from_millis(500));
        assert_eq!(POLICY.wait(3, None, 1.0), Duration::from_secs(2));
        assert_eq!(POLICY.wait(30, None, 1.0), Duration::from_secs(60));
        assert_eq!(
            POLICY.wait(1, Some(Duration::from_secs(600)), 0.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_delivery_retries_what_is_worth_it_up_to_the_limit() {
        let answers = RefCell::new(vec![
            Attempt::no_answer("timed out"),
            Attempt::of_status(500, None),
            Attempt::of_status(201, None),
        ]);
        let waits = RefCell::new(Vec::new());
        let request = Ok(out());
        let d = now(deliver(
            &POLICY,
            &request,
            |_| ready(answers.borrow_mut().remove(0)),
            |w, _, _| {
                waits.borrow_mut().push(w);
                ready(())
            },
            || 0.0,
        ));
        assert_eq!((d.delivered, d.attempts, d.status), (true, 3, Some(201)));
        assert_eq!(
            *waits.borrow(),
            [Duration::from_millis(250), Duration::from_millis(500)]
        );

        let d = now(deliver(
            &POLICY,
            &request,
            |_| ready(Attempt::of_status(503, None)),
            |_, _, _| ready(()),
            || 0.5,
        ));
        assert_eq!((d.delivered, d.attempts), (false, 3));
        assert_eq!(d.error.as_deref(), Some("HTTP 503"));

        let refused = Err("refused".into());
        let d = now(deliver(
            &POLICY,
            &refused,
            |_| -> std::future::Ready<Attempt> { panic!("never sent") },
            |_, _, _| ready(()),
            || 0.0,
        ));
        assert_eq!((d.delivered, d.attempts), (false, 0));
        let kind = d.outcome(
            ExecutorId::parse("phone").expect("valid"),
            "hook",
            "thread_created",
        );
        assert!(matches!(kind, EventKind::NotificationFailed(o) if o.attempts == 0));
    }
}
