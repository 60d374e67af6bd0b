//! The Worker's side of `mess-api`'s port: one exchange of a Durable Object as the routes
//! see it, and the platform's clock and randomness (JavaScript's).

use std::rc::Rc;

use mess_api::idempotency::{Answer, Begin, ScopeId};
use mess_api::{ApiError, ExchangePort, Written};
use mess_core::{
    Actor, Clock, Command, DomainError, Entropy, Env, Exchange, ExchangeId, ExecutorId, Member,
    Profile, ThreadRef, Timestamp,
};

use crate::object::Core;

/// Now, from the JavaScript clock (the `time` crate's clock is not available on
/// wasm32-unknown-unknown without its `wasm-bindgen` feature).
pub struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(js_sys::Date::now() as i64)
    }
}

/// Random bytes from the JavaScript crypto API (`crypto.getRandomValues`, a CSPRNG).
pub struct JsEntropy;

impl Entropy for JsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // The Workers runtime always has `crypto`; without it no key could be made safely.
        getrandom::fill(buf).expect("the JavaScript crypto API");
    }
}

/// An `Idempotency-Key` scope: being run (the retries waiting for it), or answered.
pub(crate) enum Slot {
    Running(Vec<futures::channel::oneshot::Sender<()>>),
    Done(Answer),
}

/// One exchange of this object, as `mess-api`'s routes see it.
pub(crate) struct Port<'a> {
    pub(crate) core: &'a Rc<Core>,
    pub(crate) id: ExchangeId,
}

impl ExchangePort for Port<'_> {
    fn id(&self) -> &ExchangeId {
        &self.id
    }

    fn review_window_ms(&self) -> i64 {
        self.core.review_window_ms
    }

    fn now(&self) -> Timestamp {
        JsClock.now()
    }

    fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> R {
        match self.core.exchange.borrow().as_ref() {
            Some(x) => f(x),
            // Routes run after `ensure_loaded`; before it there is nothing to see.
            None => f(&Exchange::new(self.id.clone())),
        }
    }

    fn touch(&self, member: &ExecutorId, now: Timestamp) {
        self.core.last_seen.borrow_mut().insert(member.clone(), now);
    }

    fn last_seen(&self, member: &Member) -> Timestamp {
        self.core.last_seen(member)
    }

    fn validate(&self, profile: &Profile) -> Result<(), DomainError> {
        mess_notify::validate_profile(profile)
    }

    async fn changed(&self, thread: &ThreadRef, since: u64, within: std::time::Duration) {
        use futures::future::{Either, select};
        let deadline = JsClock.now().unix_millis() + within.as_millis() as i64;
        loop {
            if self.read(|x| x.thread(thread).is_some_and(|t| t.version > since)) {
                return;
            }
            let left = deadline - JsClock.now().unix_millis();
            if left <= 0 {
                return;
            }
            let (tx, rx) = futures::channel::oneshot::channel();
            {
                let mut waiters = self.core.waiters.borrow_mut();
                let list = waiters.entry(thread.clone()).or_default();
                // Waits that timed out leave closed senders: drop them as new ones come.
                list.retain(|w| !w.is_canceled());
                list.push(tx);
            }
            let timeout = worker::Delay::from(std::time::Duration::from_millis(left as u64));
            if let Either::Right(_) = select(rx, timeout).await {
                return;
            }
        }
    }

    async fn idempotency_begin(&self, scope: &ScopeId) -> Begin {
        loop {
            let rx = {
                let mut slots = self.core.replays.borrow_mut();
                match slots.get_mut(scope) {
                    Some(Slot::Done(a)) if a.live(JsClock.now()) => {
                        return Begin::Replay(a.clone());
                    }
                    Some(Slot::Running(waiting)) => {
                        let (tx, rx) = futures::channel::oneshot::channel();
                        waiting.push(tx);
                        rx
                    }
                    _ => {
                        slots.insert(scope.clone(), Slot::Running(Vec::new()));
                        return Begin::Run;
                    }
                }
            };
            // Sent or dropped when the first request ends: look again either way.
            let _ = rx.await;
        }
    }

    async fn idempotency_store(&self, answer: Answer) {
        if let Err(e) = crate::store::put_answer(&self.core.bucket, &self.id, &answer).await {
            worker::console_warn!("R2: an idempotent answer not stored: {}", e.0);
        }
        let scope = answer.scope.clone();
        let before = self
            .core
            .replays
            .borrow_mut()
            .insert(scope, Slot::Done(answer));
        wake(before);
    }

    fn idempotency_release(&self, scope: &ScopeId) {
        let before = self.core.replays.borrow_mut().remove(scope);
        wake(before);
    }

    async fn commit(&self, actor: Actor, cmd: Command) -> Result<Written, ApiError> {
        self.core.submit(actor, cmd).await
    }

    async fn put_blob(&self, blob: &mess_core::blob::Blob) -> Result<(), ApiError> {
        crate::store::put_blob(&self.core.bucket, &self.id, &blob.sha256, &blob.bytes)
            .await
            .map_err(|e| {
                worker::console_warn!("R2: an attachment not stored: {}", e.0);
                ApiError::Unavailable
            })
    }

    async fn blob(&self, sha256: &str) -> Result<Option<std::sync::Arc<[u8]>>, ApiError> {
        match crate::store::get_blob(&self.core.bucket, &self.id, sha256).await {
            Ok(bytes) => Ok(bytes.map(Into::into)),
            Err(e) => {
                worker::console_warn!("R2: an attachment not read: {}", e.0);
                Err(ApiError::Unavailable)
            }
        }
    }

    async fn test_notification(
        &self,
        member: &Member,
    ) -> Result<Vec<mess_core::ChannelTest>, ApiError> {
        let public_url = self.core.public_url.as_deref();
        Ok(crate::notify::test(&self.id, member, JsClock.now(), public_url).await)
    }
}

/// Wakes the requests that waited for a scope's first request.
fn wake(slot: Option<Slot>) {
    if let Some(Slot::Running(waiting)) = slot {
        for tx in waiting {
            let _ = tx.send(());
        }
    }
}

/// The decision environment: JavaScript's clock and randomness.
pub(crate) fn env() -> Env<'static> {
    Env {
        clock: &JsClock,
        entropy: &JsEntropy,
    }
}
