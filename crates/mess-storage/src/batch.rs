//! Group commit: concurrent appends to one segment share one write and one sync.
//!
//! Each caller adds its lines to the segment's queue and waits. The first caller to find
//! no flush running spawns one; the flush takes everything queued, hands it to the
//! [`Sink`] (one write + one fdatasync, or one PUT), wakes every caller whose lines it
//! carried with the outcome, and loops until the queue is empty. The flush runs as its own
//! task, so a caller that stops waiting (a dropped request) never strands the others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use mess_core::{ExchangeId, StorageError};
use tokio::sync::oneshot;

use crate::layout::Day;

/// The queue of every (exchange, day) a process writes to.
pub(crate) type Queues<S> = Mutex<HashMap<(ExchangeId, Day), Arc<Batcher<S>>>>;

/// The queue of (`exchange`, `day`), made with `make` on first use.
///
/// When a new day starts for an exchange, its queues older than yesterday are let go, so
/// that open segments do not pile up; a late event for such a day gets a new queue (and so
/// a new segment).
pub(crate) fn queue_for<S: Sink>(
    queues: &Queues<S>,
    exchange: &ExchangeId,
    day: Day,
    make: impl FnOnce() -> S,
) -> Arc<Batcher<S>> {
    let mut queues = queues.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(q) = queues.get(&(exchange.clone(), day)) {
        return Arc::clone(q);
    }
    if let Some(cutoff) = day.previous_day() {
        queues.retain(|(x, d), _| x != exchange || *d >= cutoff);
    }
    let q = Arc::new(Batcher::new(make()));
    queues.insert((exchange.clone(), day), Arc::clone(&q));
    q
}

/// Where a batch goes: one call per batch, durable when it returns `Ok`.
pub(crate) trait Sink: Send + Sync + 'static {
    /// Writes `bytes` (whole lines) durably.
    fn flush(
        self: Arc<Self>,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

type Waiter = oneshot::Sender<Result<(), StorageError>>;

#[derive(Default)]
struct Queue {
    /// The lines of every waiting call, in arrival order, each call's contiguous.
    bytes: Vec<u8>,
    /// Who to wake when `bytes` is durable.
    waiters: Vec<Waiter>,
    /// True while a flush task owns the sink; only that task writes.
    flushing: bool,
}

/// One segment's queue in front of its sink.
pub(crate) struct Batcher<S> {
    sink: Arc<S>,
    queue: Mutex<Queue>,
}

impl<S: Sink> Batcher<S> {
    pub(crate) fn new(sink: S) -> Self {
        Self {
            sink: Arc::new(sink),
            queue: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent at every await point, so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `bytes` and waits until they are durable (or the batch carrying them failed).
    pub(crate) async fn submit(self: &Arc<Self>, bytes: &[u8]) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.lock();
            q.bytes.extend_from_slice(bytes);
            q.waiters.push(tx);
            !std::mem::replace(&mut q.flushing, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).run());
        }
        rx.await.unwrap_or_else(|_| {
            Err(StorageError::Unavailable(
                "the segment writer stopped".into(),
            ))
        })
    }

    async fn run(self: Arc<Self>) {
        let guard = FlushGuard(&self);
        loop {
            let (bytes, waiters) = {
                let mut q = self.lock();
                if q.waiters.is_empty() {
                    q.flushing = false;
                    std::mem::forget(guard);
                    return;
                }
                (std::mem::take(&mut q.bytes), std::mem::take(&mut q.waiters))
            };
            let result = Arc::clone(&self.sink).flush(bytes).await;
            for w in waiters {
                // A caller that stopped waiting is fine: its lines are written anyway.
                let _ = w.send(result.clone());
            }
        }
    }
}

/// If a flush task ends abnormally (a panic, a runtime shutting down), fail the queued
/// calls and let the next caller start a new flush instead of waiting forever.
struct FlushGuard<'a, S>(&'a Batcher<S>);

impl<S> Drop for FlushGuard<'_, S> {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.flushing = false;
        q.bytes.clear();
        for w in q.waiters.drain(..) {
            let _ = w.send(Err(StorageError::Unavailable(
                "the segment writer stopped".into(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Counting {
        flushes: AtomicUsize,
        written: Mutex<Vec<u8>>,
    }

    impl Sink for Counting {
        async fn flush(self: Arc<Self>, bytes: Vec<u8>) -> Result<(), StorageError> {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.flushes.fetch_add(1, Ordering::SeqCst);
            self.written.lock().unwrap().extend_from_slice(&bytes);
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_calls_share_flushes_and_stay_whole() {
        let b = Arc::new(Batcher::new(Counting::default()));
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let b = Arc::clone(&b);
                tokio::spawn(async move { b.submit(&[b'a' + i % 26, b'\n']).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let flushes = b.sink.flushes.load(Ordering::SeqCst);
        assert!(flushes < 64, "{flushes} flushes for 64 calls");
        assert_eq!(b.sink.written.lock().unwrap().len(), 128);
        assert!(!b.lock().flushing);
    }
}
