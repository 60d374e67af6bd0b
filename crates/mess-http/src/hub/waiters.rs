//! Requests waiting for a thread to change (`GET .../requests/{ref}?wait=N`): each is a
//! oneshot in a map by thread, woken by the writer once a change is published (durable),
//! or by shutdown. A waiter costs its entry and its future: no task, no polling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use foldhash::HashMap;
use mess_core::ThreadRef;
use tokio::sync::oneshot;

/// Each waiting request of a thread: its id and the sender that wakes it.
type ByThread = HashMap<ThreadRef, Vec<(u64, oneshot::Sender<()>)>>;

/// The waiters of one exchange.
#[derive(Default)]
pub(crate) struct Waiters {
    by_thread: Mutex<ByThread>,
    next_id: AtomicU64,
    /// Set at shutdown: a waiter that registers afterwards answers at once.
    closing: AtomicBool,
}

/// Removes its waiter's entry when the wait ends, however it ends (woken, timed out, or
/// the client gone), so a thread nobody changes keeps no dead entries.
struct Registration<'a> {
    waiters: &'a Waiters,
    thread: &'a ThreadRef,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        if let Some(list) = map.get_mut(self.thread) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(self.thread);
            }
        }
        metrics::gauge!("mess_waiters").decrement(1.0);
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, ByThread> {
        self.by_thread.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `changed()` says the thread's version is above what the waiter has seen,
    /// `within` has passed, or shutdown. `changed()` is asked after registering (so a change
    /// published in between is not missed) and after each wake (a wake for a change a GET
    /// does not show, such as a notification outcome, waits on).
    pub(crate) async fn wait(
        &self,
        thread: &ThreadRef,
        within: Duration,
        changed: impl Fn() -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (tx, rx) = oneshot::channel();
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.lock()
                .entry(thread.clone())
                .or_default()
                .push((id, tx));
            metrics::gauge!("mess_waiters").increment(1.0);
            let _registration = Registration {
                waiters: self,
                thread,
                id,
            };
            if self.closing.load(Ordering::Acquire) || changed() {
                return;
            }
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                return;
            }
        }
    }

    /// Wakes every waiter of these threads (after their change is published).
    pub(crate) fn wake<'a>(&self, threads: impl IntoIterator<Item = &'a ThreadRef>) {
        let mut map = self.lock();
        if map.is_empty() {
            return;
        }
        for r in threads {
            if let Some(list) = map.remove(r) {
                for (_, tx) in list {
                    let _ = tx.send(());
                }
            }
        }
    }

    /// Answers every waiter now, and any that comes later at once (shutdown).
    pub(crate) fn wake_all(&self) {
        self.closing.store(true, Ordering::Release);
        for (_, list) in self.lock().drain() {
            for (_, tx) in list {
                let _ = tx.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> ThreadRef {
        ThreadRef::parse("2026-02-01-ABCD").expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_on_a_change_on_its_time_or_at_once_when_already_changed() {
        let w = std::sync::Arc::new(Waiters::default());
        let version = std::sync::Arc::new(AtomicU64::new(1));
        let waiting = {
            let (w, version) = (std::sync::Arc::clone(&w), std::sync::Arc::clone(&version));
            tokio::spawn(async move {
                let newer = || version.load(Ordering::SeqCst) > 1;
                w.wait(&r(), Duration::from_secs(60), newer).await
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(w.lock().get(&r()).map(Vec::len), Some(1));
        let started = tokio::time::Instant::now();
        // A wake without a newer version (a notification outcome): it waits on.
        w.wake([&r()]);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(
            w.lock().get(&r()).map(Vec::len),
            Some(1),
            "registered again"
        );
        version.store(2, Ordering::SeqCst);
        w.wake([&r()]);
        waiting.await.expect("joined");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "woken, not timed out"
        );
        assert!(w.lock().is_empty(), "no entry left behind");

        let started = tokio::time::Instant::now();
        w.wait(&r(), Duration::from_secs(5), || false).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5), "timed out");
        assert!(w.lock().is_empty());

        let started = tokio::time::Instant::now();
        w.wait(&r(), Duration::from_secs(5), || true).await;
        assert!(started.elapsed().is_zero(), "already changed");

        w.wake_all();
        w.wait(&r(), Duration::from_secs(5), || false).await;
        assert!(started.elapsed().is_zero(), "closing answers at once");
    }
}
