//! The delivery queue: [`HttpNotifier`] queues, a dispatcher task sends with bounded
//! concurrency, retries, and records every outcome.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use mess_core::{
    Actor, ChannelTest, DomainError, ExchangeId, ExecutorId, Member, Notice, Notifier, OutcomeSink,
    Profile, TestSend, ThreadRef, Timestamp,
};
use rand::RngExt;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::NotifyConfig;
use crate::deliveries::{Deliveries, Target, deliveries};
use crate::message::{Context, Outgoing};
use crate::profile::validate_profile;
use crate::retry::{self, Attempt, Delivery, RetryPolicy};
use crate::safety::{GuardedResolver, Policy, Refused};
use crate::test_send::{test_request, test_result};

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("could not build the notification HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Sends notifications over HTTP: ntfy, Slack, Google Chat, webhooks and hooks.
///
/// [`Notifier::notify`] picks the recipients and queues one delivery per (recipient,
/// channel) and per hook; it never blocks and never fails. A full queue drops the delivery
/// (`mess_notifications_dropped_total`, a warning in the log).
pub struct HttpNotifier {
    /// The queue's sending side; `None` once shutdown began (later notices are dropped).
    tx: RwLock<Option<mpsc::Sender<Job>>>,
    public_url: Option<String>,
    /// The dispatcher's client and rules, for test notifications sent outside the queue.
    shared: Arc<Shared>,
}

/// Stops the notifier: see [`NotifierHandle::shutdown`].
#[must_use = "dropping the handle leaves deliveries to be cut off when the runtime stops"]
pub struct NotifierHandle {
    notifier: Arc<HttpNotifier>,
    dispatcher: JoinHandle<()>,
}

/// One delivery: a channel or a hook of one member, for one notice.
struct Job {
    ctx: Arc<Context>,
    exchange: ExchangeId,
    thread_ref: ThreadRef,
    executor_id: ExecutorId,
    target: Target,
    outcomes: Arc<dyn OutcomeSink>,
}

/// What the dispatcher's deliveries share.
struct Shared {
    client: reqwest::Client,
    policy: Policy,
    retry: RetryPolicy,
    /// Signs the claim links of offers.
    action_key: Option<Vec<u8>>,
}

impl HttpNotifier {
    /// Starts the dispatcher on the current tokio runtime (call it inside one) and returns
    /// the notifier to hand to the server as `Arc<dyn Notifier>`, and the handle that shuts
    /// it down.
    pub fn start(config: NotifyConfig) -> Result<(Arc<HttpNotifier>, NotifierHandle), StartError> {
        let policy = Policy {
            allow_private: config.allow_private,
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout.min(config.timeout))
            // A redirect could lead anywhere, a refused range included: a 3xx is a failure.
            .redirect(reqwest::redirect::Policy::none())
            // Through a proxy, the resolver would check the proxy, not the destination.
            .no_proxy()
            .dns_resolver(GuardedResolver::new(policy))
            .user_agent(concat!("mess-exchange/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let shared = Arc::new(Shared {
            client,
            policy,
            retry: RetryPolicy {
                max_attempts: config.max_attempts.max(1),
                base_backoff: config.base_backoff,
                max_backoff: config.max_backoff,
            },
            action_key: config.action_key.clone(),
        });
        let (tx, rx) = mpsc::channel(config.queue_size.max(1));
        let dispatcher = tokio::spawn(dispatch(rx, Arc::clone(&shared), config.concurrency.max(1)));
        let notifier = Arc::new(HttpNotifier {
            shared,
            tx: RwLock::new(Some(tx)),
            public_url: config
                .public_url
                .map(|u| u.trim_end_matches('/').to_owned()),
        });
        Ok((
            Arc::clone(&notifier),
            NotifierHandle {
                notifier,
                dispatcher,
            },
        ))
    }

    fn enqueue(&self, job: Job) {
        let tx = self.tx.read().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = tx.as_ref() else {
            tracing::debug!(executor_id = %job.executor_id, "notifier shut down: delivery dropped");
            return;
        };
        match tx.try_send(job) {
            Ok(()) => metrics::gauge!("mess_notify_queue_depth").increment(1.0),
            Err(e) => {
                let job = match e {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                metrics::counter!("mess_notifications_dropped_total").increment(1);
                tracing::warn!(
                    exchange_id = %job.exchange,
                    thread_ref = %job.thread_ref,
                    executor_id = %job.executor_id,
                    channel = job.target.kind(),
                    "notification queue full: delivery dropped"
                );
            }
        }
    }
}

impl Notifier for HttpNotifier {
    fn validate(&self, profile: &Profile) -> Result<(), DomainError> {
        validate_profile(profile)
    }

    fn send_test(&self, exchange: &ExchangeId, member: &Member, now: Timestamp) -> TestSend {
        // One attempt per channel, all at once: the answer waits at most one timeout.
        let sends: Vec<_> = member
            .notifications
            .iter()
            .map(|channel| {
                let out = test_request(
                    channel,
                    exchange,
                    &member.executor_id,
                    now,
                    self.public_url.as_deref(),
                );
                let shared = Arc::clone(&self.shared);
                let channel = channel.clone();
                tokio::spawn(async move { test_result(&channel, send_once(&shared, &out).await) })
            })
            .collect();
        let kinds: Vec<&'static str> = member.notifications.iter().map(|c| c.kind()).collect();
        Box::pin(async move {
            let mut results = Vec::with_capacity(sends.len());
            for (send, kind) in sends.into_iter().zip(kinds) {
                results.push(send.await.unwrap_or_else(|_| {
                    ChannelTest::failed(kind, None, "the test could not be sent")
                }));
            }
            results
        })
    }

    fn notify(&self, notice: Notice) {
        let Some(thread_ref) = notice.event.thread_ref.clone() else {
            return;
        };
        // At the event's own time: what the exchange's clock said when it happened.
        let Some(Deliveries { ctx, targets }) = deliveries(
            &notice.event,
            &notice.thread,
            &notice.members,
            notice.event.ts,
            self.public_url.as_deref(),
        ) else {
            return;
        };
        for (executor_id, target) in targets {
            self.enqueue(Job {
                ctx: Arc::clone(&ctx),
                exchange: notice.exchange_id.clone(),
                thread_ref: thread_ref.clone(),
                executor_id,
                target,
                outcomes: Arc::clone(&notice.outcomes),
            });
        }
    }
}

impl NotifierHandle {
    /// Closes the queue (later notices are dropped) and waits up to `deadline` for queued
    /// and in-flight deliveries to finish, retries included. Returns `true` when everything
    /// finished; otherwise the rest is abandoned (logged) and `false` is returned.
    pub async fn shutdown(mut self, deadline: Duration) -> bool {
        self.notifier
            .tx
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match tokio::time::timeout(deadline, &mut self.dispatcher).await {
            Ok(_) => true,
            Err(_) => {
                self.dispatcher.abort();
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "notifications still pending at shutdown were abandoned"
                );
                false
            }
        }
    }
}

/// Takes jobs off the queue and runs each as its own task, at most `concurrency` at once,
/// until the queue is closed and drained.
async fn dispatch(mut rx: mpsc::Receiver<Job>, shared: Arc<Shared>, concurrency: usize) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    while let Some(job) = rx.recv().await {
        metrics::gauge!("mess_notify_queue_depth").decrement(1.0);
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        while tasks.try_join_next().is_some() {}
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            deliver(&shared, job).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn deliver(shared: &Shared, job: Job) {
    let claim = shared
        .action_key
        .as_deref()
        .and_then(|key| crate::message::claim_link(key, &job.exchange, &job.executor_id, &job.ctx));
    let request = job.target.request_with(&job.ctx, claim.as_deref());
    let delivery = retry::deliver(
        &shared.retry,
        &request,
        |out| send_once(shared, out),
        |wait, attempts, error| {
            tracing::debug!(
                executor_id = %job.executor_id,
                channel = job.target.kind(),
                attempts,
                error,
                wait_ms = wait.as_millis() as u64,
                "notification send failed, retrying"
            );
            tokio::time::sleep(wait)
        },
        || rand::rng().random_range(0.0..=1.0),
    )
    .await;
    record(&job, delivery);
}

async fn send_once(shared: &Shared, out: &Outgoing) -> Attempt {
    let refused = || Attempt::Fail {
        status: None,
        error: Refused.to_string(),
    };
    let Ok(url) = shared.policy.check_url(&out.url) else {
        return refused();
    };
    let mut request = shared
        .client
        .request(out.method.clone(), url)
        .body(out.body.clone());
    for (name, value) in &out.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => request = request.header(n, v),
            _ => {
                return Attempt::Fail {
                    status: None,
                    error: "invalid header".into(),
                };
            }
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if caused_by_refusal(&e) => return refused(),
        Err(e) => {
            let error = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            return Attempt::no_answer(error);
        }
    };
    let code = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Attempt::of_status(code, retry_after)
}

/// True when the guarded resolver refused the destination (somewhere in the error chain).
fn caused_by_refusal(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<Refused>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

fn record(job: &Job, delivery: Delivery) {
    let channel = job.target.kind();
    let label = if delivery.delivered {
        "delivered"
    } else {
        "failed"
    };
    metrics::counter!("mess_notifications_total", "channel" => channel, "outcome" => label)
        .increment(1);
    let attempts = delivery.attempts;
    if delivery.delivered {
        tracing::debug!(executor_id = %job.executor_id, channel, attempts, "notification delivered");
    } else {
        tracing::warn!(
            exchange_id = %job.exchange,
            thread_ref = %job.thread_ref,
            executor_id = %job.executor_id,
            channel,
            attempts,
            http_status = delivery.status,
            error = delivery.error.as_deref().unwrap_or_default(),
            "notification failed"
        );
    }
    let kind = delivery.outcome(
        job.executor_id.clone(),
        channel,
        job.target.trigger(&job.ctx),
    );
    job.outcomes.record(
        job.exchange.clone(),
        Some(job.thread_ref.clone()),
        Actor::Exchange,
        kind,
    );
}
