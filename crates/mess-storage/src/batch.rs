//! Group commit: concurrent appends to one segment share one write and one sync, and
//! syncs overlap.
//!
//! Each caller adds its lines to the segment's queue and waits. The first caller to find
//! no flush task running spawns one; the task takes everything queued and hands it to the
//! [`Sink`] (one write + one fdatasync, or one PUT). As soon as the sink has *placed* those
//! bytes (written them to the file, or named their object), the task may take the next
//! batch, so a slow sync does not hold up the write behind it: up to [`MAX_SYNCS`]
//! batches are syncing at once. Callers are answered in batch order, each when its own
//! sync is done; if a sync fails, every batch placed after it and still syncing fails too
//! (its bytes follow the failed ones). The task runs on its own, so a caller that stops
//! waiting (a dropped request) never strands the others.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use mess_core::{ExchangeId, StorageError};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::layout::Day;

/// The most batches of one segment syncing at once.
pub(crate) const MAX_SYNCS: usize = 8;

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
    /// Writes `bytes` (whole lines) durably. Calls start one at a time, in queue order;
    /// the sink sends `placed` once the bytes have their place (a later call's bytes will
    /// come after them), and the next call may start then, while this one still syncs.
    /// A call that fails before placing its bytes may just drop `placed`.
    fn flush(
        self: Arc<Self>,
        bytes: Vec<u8>,
        placed: oneshot::Sender<()>,
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
    /// Wakes the flush task when lines arrive while it waits for a sync.
    more: Notify,
}

/// A batch whose sync is running, and who waits for it.
struct Syncing {
    flush: JoinHandle<Result<(), StorageError>>,
    waiters: Vec<Waiter>,
}

impl<S: Sink> Batcher<S> {
    /// Where this queue's batches go.
    pub(crate) fn sink(&self) -> &Arc<S> {
        &self.sink
    }

    pub(crate) fn new(sink: S) -> Self {
        Self {
            sink: Arc::new(sink),
            queue: Mutex::default(),
            more: Notify::new(),
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
        } else {
            self.more.notify_one();
        }
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    async fn run(self: Arc<Self>) {
        let guard = FlushGuard(&self);
        let mut syncing: VecDeque<Syncing> = VecDeque::with_capacity(MAX_SYNCS);
        // After a failed sync: the error, and how many batches placed before it was known
        // (still syncing) fail with it.
        let mut poisoned: Option<(StorageError, usize)> = None;
        loop {
            if syncing.len() < MAX_SYNCS {
                let next = {
                    let mut q = self.lock();
                    if !q.waiters.is_empty() {
                        Some((std::mem::take(&mut q.bytes), std::mem::take(&mut q.waiters)))
                    } else if syncing.is_empty() {
                        q.flushing = false;
                        std::mem::forget(guard);
                        return;
                    } else {
                        None
                    }
                };
                if let Some((bytes, waiters)) = next {
                    let (placed, is_placed) = oneshot::channel();
                    let flush = tokio::spawn(Arc::clone(&self.sink).flush(bytes, placed));
                    // A dropped `placed` means the flush failed before writing: go on either way.
                    let _ = is_placed.await;
                    syncing.push_back(Syncing { flush, waiters });
                    continue;
                }
            }
            let room = syncing.len() < MAX_SYNCS;
            let oldest = syncing.front_mut().expect("not empty: checked above");
            tokio::select! {
                biased;
                joined = &mut oldest.flush => {
                    let done = syncing.pop_front().expect("not empty: polled above");
                    let mut result = joined.unwrap_or_else(|e| {
                        Err(StorageError::Unavailable(format!("segment writer: {e}")))
                    });
                    if let Some((err, left)) = poisoned.as_mut().filter(|(_, left)| *left > 0) {
                        *left -= 1;
                        result = Err(err.clone());
                    } else if let Err(err) = &result {
                        poisoned = Some((err.clone(), syncing.len()));
                    }
                    for w in done.waiters {
                        // A caller that stopped waiting is fine: its lines are written anyway.
                        let _ = w.send(result.clone());
                    }
                }
                () = self.more.notified(), if room => {}
            }
        }
    }
}

fn stopped() -> StorageError {
    StorageError::Unavailable("the segment writer stopped".into())
}

/// If a flush task ends abnormally (a panic, a runtime shutting down), fail the queued
/// calls and let the next caller start a new flush instead of waiting forever. (Calls
/// whose batch was syncing fail through their dropped waiters.)
struct FlushGuard<'a, S>(&'a Batcher<S>);

impl<S> Drop for FlushGuard<'_, S> {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.flushing = false;
        q.bytes.clear();
        for w in q.waiters.drain(..) {
            let _ = w.send(Err(stopped()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Writes in order, then "syncs" for `sync` (failing the calls listed in `fail`).
    #[derive(Default)]
    struct Recording {
        sync: Duration,
        fail: Vec<usize>,
        calls: AtomicUsize,
        syncing: AtomicUsize,
        most_syncing: AtomicUsize,
        written: Mutex<Vec<u8>>,
    }

    impl Sink for Recording {
        async fn flush(
            self: Arc<Self>,
            bytes: Vec<u8>,
            placed: oneshot::Sender<()>,
        ) -> Result<(), StorageError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            self.written.lock().unwrap().extend_from_slice(&bytes);
            let now = self.syncing.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_syncing.fetch_max(now, Ordering::SeqCst);
            let _ = placed.send(());
            // Earlier calls take longer: later syncs finish first.
            tokio::time::sleep(self.sync * (4 - call.min(3)) as u32).await;
            self.syncing.fetch_sub(1, Ordering::SeqCst);
            if self.fail.contains(&call) {
                Err(StorageError::Unavailable(format!("sync {call} failed")))
            } else {
                Ok(())
            }
        }
    }

    fn batcher(sync_ms: u64, fail: Vec<usize>) -> Arc<Batcher<Recording>> {
        Arc::new(Batcher::new(Recording {
            sync: Duration::from_millis(sync_ms),
            fail,
            ..Recording::default()
        }))
    }

    /// Submits `line` and returns the task answering it.
    fn submit(
        b: &Arc<Batcher<Recording>>,
        line: &'static [u8],
    ) -> JoinHandle<Result<(), StorageError>> {
        let b = Arc::clone(b);
        tokio::spawn(async move { b.submit(line).await })
    }

    /// Waits until the sink has been called `n` times.
    async fn calls(b: &Batcher<Recording>, n: usize) {
        while b.sink.calls.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_calls_share_flushes_and_stay_whole() {
        let b = batcher(2, vec![]);
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let b = Arc::clone(&b);
                tokio::spawn(async move { b.submit(&[b'a' + i % 26, b'\n']).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let flushes = b.sink.calls.load(Ordering::SeqCst);
        assert!(flushes < 64, "{flushes} flushes for 64 calls");
        assert_eq!(b.sink.written.lock().unwrap().len(), 128);
        assert!(!b.lock().flushing);
    }

    #[tokio::test]
    async fn syncs_overlap_and_bytes_keep_the_submitted_order() {
        let b = batcher(20, vec![]);
        let first = submit(&b, b"1\n");
        calls(&b, 1).await;
        let second = submit(&b, b"2\n");
        calls(&b, 2).await;
        let third = submit(&b, b"3\n");
        for t in [first, second, third] {
            t.await.unwrap().unwrap();
        }
        assert_eq!(b.sink.written.lock().unwrap().as_slice(), b"1\n2\n3\n");
        let most = b.sink.most_syncing.load(Ordering::SeqCst);
        assert!(most >= 2, "at most {most} syncs at once");
        assert!(!b.lock().flushing);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_batches_placed_behind_it_and_not_later_ones() {
        // Call 0 fails after the later call 1 has synced: call 1 must fail with it.
        let b = batcher(10, vec![0]);
        let first = submit(&b, b"1\n");
        calls(&b, 1).await;
        let second = submit(&b, b"2\n");
        let err = first.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sync 0 failed"), "{err}");
        let err = second.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sync 0 failed"), "{err}");
        // A batch placed after the failure was known stands on its own.
        submit(&b, b"3\n").await.unwrap().unwrap();
    }
}
