//! One exchange's `Idempotency-Key` answers in memory: stored ones (a day), and the scopes a
//! request is running under, which a retry waits for.

use std::sync::{Arc, Mutex};

use foldhash::HashMap;
use mess_api::idempotency::{Answer, Begin, ScopeId};
use mess_core::Timestamp;
use tokio::sync::Notify;

enum Slot {
    /// A request of this scope is running; retries wait to be notified.
    Running(Arc<Notify>),
    /// Its answer.
    Done(Arc<Answer>),
}

/// The answers of one exchange.
#[derive(Default)]
pub struct Replays {
    slots: Mutex<HashMap<ScopeId, Slot>>,
}

impl Replays {
    /// Answers loaded at start-up.
    pub fn put_loaded(&self, answer: Answer) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(answer.scope.clone(), Slot::Done(Arc::new(answer)));
    }

    /// The stored answer of `scope`, or a reservation ([`Begin::Run`]); waits while another
    /// request of the scope runs.
    pub async fn begin(&self, scope: &ScopeId, now: Timestamp) -> Begin {
        loop {
            let notify = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                match slots.get(scope) {
                    Some(Slot::Done(a)) if a.live(now) => return Begin::Replay(Answer::clone(a)),
                    Some(Slot::Running(n)) => Arc::clone(n),
                    _ => {
                        slots.insert(scope.clone(), Slot::Running(Arc::new(Notify::new())));
                        return Begin::Run;
                    }
                }
            };
            // `end` notifies under the lock, after replacing the slot: a notification sent
            // before this point is seen by the next turn's look at the slot.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let still_running = {
                let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                matches!(slots.get(scope), Some(Slot::Running(n)) if Arc::ptr_eq(n, &notify))
            };
            if still_running {
                notified.await;
            }
        }
    }

    /// Ends a reservation: with its answer, or freed.
    pub fn end(&self, scope: &ScopeId, answer: Option<Answer>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let before = match answer {
            Some(a) => slots.insert(scope.clone(), Slot::Done(Arc::new(a))),
            None => slots.remove(scope),
        };
        if let Some(Slot::Running(n)) = before {
            n.notify_waiters();
        }
    }

    /// Forgets the answers no longer replayed at `now`; returns their scopes.
    pub fn sweep(&self, now: Timestamp) -> Vec<ScopeId> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<ScopeId> = slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Done(a) if !a.live(now)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            slots.remove(k);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(scope: &str, at_ms: i64) -> Answer {
        Answer {
            scope: scope.into(),
            body_digest: "d".into(),
            at_ms,
            status: 201,
            content_type: "application/json".into(),
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_retry_waits_for_the_first_and_gets_its_answer() {
        let r = Arc::new(Replays::default());
        let now = Timestamp::from_unix_millis(1_000);
        let s: ScopeId = "s".into();
        assert!(matches!(r.begin(&s, now).await, Begin::Run));
        let waiting = {
            let (r, s) = (Arc::clone(&r), s.clone());
            tokio::spawn(async move { r.begin(&s, now).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        r.end(&s, Some(answer("s", 1_000)));
        match waiting.await.unwrap() {
            Begin::Replay(a) => assert_eq!(a.status, 201),
            Begin::Run => panic!("the retry ran again"),
        }
    }

    #[tokio::test]
    async fn a_freed_scope_runs_again_and_old_answers_expire() {
        let r = Replays::default();
        let now = Timestamp::from_unix_millis(1_000);
        let s: ScopeId = "s".into();
        assert!(matches!(r.begin(&s, now).await, Begin::Run));
        r.end(&s, None);
        assert!(matches!(r.begin(&s, now).await, Begin::Run));
        r.end(&s, Some(answer("s", 1_000)));
        let day = mess_api::idempotency::RETENTION_MS;
        let later = Timestamp::from_unix_millis(1_000 + day);
        assert!(matches!(
            r.begin(&s, Timestamp::from_unix_millis(day)).await,
            Begin::Replay(_)
        ));
        assert_eq!(r.sweep(later), vec![s.clone()]);
        assert!(matches!(r.begin(&s, later).await, Begin::Run));
    }
}
