//! One exchange's writer task: it decides queued commands in batches against its working
//! state, appends each batch's events (several appends overlapping), then publishes,
//! answers and notifies, or rolls back and refuses.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use foldhash::{HashMap, HashSet};
use mess_core::event::EventKind;
use mess_core::{
    Actor, Command, DomainError, Env, Event, Exchange, ExchangeId, Member, Notice, Outcome,
    OutcomeSink, StorageError, Thread, ThreadRef,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::answers::{Answers, Reply};
use super::{ExchangeHandle, Hub, WriteError, Written};

/// The most commands decided into one batch (one append, one sync).
const MAX_BATCH: usize = 512;
/// The most appends of one exchange in flight at once.
const MAX_IN_FLIGHT: usize = 8;

// Sent by value through the writer's bounded queue: boxing the command would cost every
// write an allocation, for no smaller queue (its slots are as large as the largest job).
#[allow(clippy::large_enum_variant)]
pub(super) enum Job {
    Command {
        actor: Actor,
        cmd: Command,
        reply: Reply,
    },
    Outcome {
        thread: Option<ThreadRef>,
        actor: Actor,
        kind: EventKind,
    },
    /// Finish what came before, then stop.
    Stop,
}

struct Sink {
    exchange: Arc<ExchangeHandle>,
}

impl OutcomeSink for Sink {
    fn record(
        &self,
        exchange: ExchangeId,
        thread: Option<ThreadRef>,
        actor: Actor,
        kind: EventKind,
    ) {
        debug_assert_eq!(&exchange, self.exchange.id());
        if self
            .exchange
            .tx
            .try_send(Job::Outcome {
                thread,
                actor,
                kind,
            })
            .is_err()
        {
            tracing::warn!(exchange = %exchange, "dropped a notification outcome: writer queue full");
        }
    }
}

/// One exchange's writer: the only code that changes its state.
pub(super) struct Writer {
    pub(super) hub: Arc<Hub>,
    pub(super) handle: Arc<ExchangeHandle>,
    pub(super) working: Exchange,
}

enum Pending {
    Thread(Reply, ThreadRef),
    /// A member change: its record is already stored, so it stands whatever the log does.
    Member(Reply, Written),
}

/// Commands decided against the working state, waiting for one append.
#[derive(Default)]
struct Group {
    events: Vec<Event>,
    /// Each event's thread as the event left it (`None` for a member's): for its feed frame.
    states: Vec<Option<Arc<Thread>>>,
    touched: HashSet<ThreadRef>,
    pending: Vec<Pending>,
}

/// The thread states and events to announce when an append returns.
type AppendResult = (Result<(), StorageError>, Vec<Event>);

/// A group whose events are being appended.
struct InFlight {
    started: Instant,
    /// Each touched thread as the group left it (later groups change `working`, not these).
    snapshots: HashMap<ThreadRef, Option<Arc<Thread>>>,
    states: Vec<Option<Arc<Thread>>>,
    pending: Vec<Pending>,
    append: std::pin::Pin<Box<dyn std::future::Future<Output = AppendResult> + Send>>,
    /// The append's outcome, once it is in (kept until the groups before it are done).
    result: Option<AppendResult>,
}

/// Polls every append in flight, oldest first (so each is handed to storage in the order
/// it was sealed), and is ready with the oldest one's outcome.
fn oldest_done(
    inflight: &mut VecDeque<InFlight>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<AppendResult> {
    for f in inflight.iter_mut().filter(|f| f.result.is_none()) {
        if let std::task::Poll::Ready(r) = f.append.as_mut().poll(cx) {
            f.result = Some(r);
        }
    }
    match inflight.front_mut().and_then(|f| f.result.take()) {
        Some(r) => std::task::Poll::Ready(r),
        None => std::task::Poll::Pending,
    }
}

impl Writer {
    /// Appends are handed to storage in the order their groups were decided (the log keeps
    /// that order) and answered in that order, each publishing the thread states it left;
    /// while they run, the next group is decided against the working state.
    ///
    /// Appends overlap: up to [`MAX_IN_FLIGHT`], started at least a `1/MAX_IN_FLIGHT` of
    /// the last append's time apart, each carrying what was decided since the one before.
    /// A client then waits for its own sync and little else, and the spacing keeps
    /// batches large enough that syncs do not multiply. The writer never waits for more
    /// clients before an append (group commit's "commit delay"): that wait would add to
    /// every sync, and each create waits for its sync (docs/benchmarks.md).
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut next = Group::default();
        let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(MAX_IN_FLIGHT);
        let mut last_took = Duration::ZERO;
        let mut stopping = false;
        loop {
            let ready = !(next.events.is_empty() && next.pending.is_empty());
            // When the next group may be sealed (now, later, or not until an append returns).
            let seal_at = match inflight.back() {
                _ if !ready => None,
                None => Some(Instant::now()),
                Some(newest) if !stopping && inflight.len() < MAX_IN_FLIGHT => {
                    Some(newest.started + last_took / MAX_IN_FLIGHT as u32)
                }
                Some(_) => None,
            };
            if seal_at.is_some_and(|at| at <= Instant::now()) {
                inflight.push_back(self.seal(std::mem::take(&mut next)));
                continue;
            }
            if stopping && inflight.is_empty() {
                return;
            }
            // Take more commands only while the next group has room: beyond that they
            // wait in the queue, and handlers wait for the queue.
            let room = !stopping && next.pending.len() < MAX_BATCH;
            tokio::select! {
                biased;
                result = std::future::poll_fn(|cx| oldest_done(&mut inflight, cx)), if !inflight.is_empty() => {
                    let done = inflight.pop_front().expect("polled above");
                    if !result.1.is_empty() {
                        last_took = done.started.elapsed();
                    }
                    self.finish(done, result, &mut inflight, &mut next);
                }
                () = tokio::time::sleep_until(seal_at.unwrap_or_else(Instant::now)), if seal_at.is_some() => {}
                n = rx.recv_many(&mut batch, MAX_BATCH), if room => {
                    if n == 0 {
                        stopping = true;
                        continue;
                    }
                    if let Some(at) = batch.iter().position(|j| matches!(j, Job::Stop)) {
                        batch.truncate(at);
                        stopping = true;
                    }
                    for job in batch.drain(..) {
                        self.take(job, &mut next).await;
                    }
                }
            }
        }
    }

    /// Decides one job into `group`, applying its effects to the working state.
    async fn take(&mut self, job: Job, group: &mut Group) {
        match job {
            Job::Command { actor, cmd, reply } => {
                if let Some(p) = self.decide(actor, cmd, reply, group).await {
                    group.pending.push(p);
                }
            }
            Job::Stop => {}
            Job::Outcome {
                thread,
                actor,
                kind,
            } => {
                let seq = thread
                    .as_ref()
                    .and_then(|r| self.working.thread(r))
                    .map_or(0, |t| t.seq + 1);
                let e = Event {
                    event_id: mess_core::clock::new_uuid(self.hub.entropy.as_ref()),
                    ts: self.hub.clock.now(),
                    exchange_id: self.handle.id.clone(),
                    thread_ref: thread.clone(),
                    actor_id: actor,
                    seq,
                    pos: self.working.head() + 1,
                    kind,
                };
                self.working.apply(&e);
                let state = thread
                    .as_ref()
                    .and_then(|r| self.working.thread(r).cloned());
                if let Some(r) = thread {
                    group.touched.insert(r);
                }
                group.events.push(e);
                group.states.push(state);
            }
        }
    }

    /// Starts appending `group`'s events, keeping its threads' states to publish.
    fn seal(&self, group: Group) -> InFlight {
        let snapshots = group
            .touched
            .into_iter()
            .map(|r| {
                let t = self.working.thread(&r).cloned();
                (r, t)
            })
            .collect();
        let storage = Arc::clone(&self.hub.storage);
        let events = group.events;
        tracing::debug!(
            commands = group.pending.len(),
            events = events.len(),
            "append"
        );
        InFlight {
            started: Instant::now(),
            snapshots,
            states: group.states,
            pending: group.pending,
            append: Box::pin(async move {
                if events.is_empty() {
                    return (Ok(()), events);
                }
                let start = Instant::now();
                let result = storage.append(&events).await;
                metrics::histogram!("mess_storage_append_seconds")
                    .record(start.elapsed().as_secs_f64());
                metrics::histogram!("mess_storage_append_events").record(events.len() as f64);
                if result.is_err() {
                    metrics::counter!("mess_storage_append_failures_total").increment(1);
                }
                (result, events)
            }),
            result: None,
        }
    }

    /// The oldest append returned: publish and answer, or roll back and refuse. A failed
    /// append also refuses the groups decided on top of it: those still in flight (their
    /// outcome no longer matters) and `next`.
    fn finish(
        &mut self,
        done: InFlight,
        (result, events): AppendResult,
        inflight: &mut VecDeque<InFlight>,
        next: &mut Group,
    ) {
        if let Err(err) = result {
            self.hub.storage_ok.store(false, Ordering::Relaxed);
            tracing::error!(exchange = %self.handle.id, error = %err, "append failed; the batch is refused");
            let later = std::mem::take(next);
            let mut touched: HashSet<ThreadRef> = done.snapshots.into_keys().collect();
            let mut pending = done.pending;
            for f in inflight.drain(..) {
                touched.extend(f.snapshots.into_keys());
                pending.extend(f.pending);
            }
            touched.extend(later.touched);
            pending.extend(later.pending);
            self.rollback(&touched);
            let mut answers = Answers::default();
            for p in pending {
                match p {
                    Pending::Thread(reply, _) => {
                        answers.push(reply, Err(WriteError::Unavailable(err.clone())));
                    }
                    Pending::Member(reply, written) => answers.push(reply, Ok(written)),
                }
            }
            answers.send();
            return;
        }
        if !events.is_empty() {
            self.hub.storage_ok.store(true, Ordering::Relaxed);
        }
        self.publish(&done.snapshots, events.last().map(|e| e.pos));
        let frames = events
            .iter()
            .zip(&done.states)
            .map(|(e, t)| mess_api::feed::frame(e, t.as_deref()))
            .collect();
        self.handle.feed.publish(frames);
        let mut answers = Answers::default();
        for p in done.pending {
            match p {
                Pending::Thread(reply, r) => {
                    let t = done.snapshots.get(&r).cloned().flatten();
                    let result = t.map(Written::Thread).ok_or_else(|| {
                        WriteError::Domain(DomainError::NotFound("Thread not found".into()))
                    });
                    answers.push(reply, result);
                }
                Pending::Member(reply, written) => answers.push(reply, Ok(written)),
            }
        }
        answers.send();
        self.notify(events, &done.snapshots);
    }

    async fn decide(
        &mut self,
        actor: Actor,
        cmd: Command,
        reply: Reply,
        group: &mut Group,
    ) -> Option<Pending> {
        let env = Env {
            clock: self.hub.clock.as_ref(),
            entropy: self.hub.entropy.as_ref(),
        };
        let decision = match self.working.decide(&actor, cmd, env) {
            Ok(d) => d,
            Err(e) => {
                reply.now(Err(e.into()));
                return None;
            }
        };
        match decision.outcome {
            Outcome::Created(r) | Outcome::Updated(r, _) => {
                for e in &decision.events {
                    self.working.apply(e);
                    group.states.push(self.working.thread(&r).cloned());
                }
                group.events.extend(decision.events);
                group.touched.insert(r.clone());
                Some(Pending::Thread(reply, r))
            }
            member_change => match self.store_member(member_change).await {
                Ok(written) => {
                    for e in &decision.events {
                        self.working.advance(e.pos);
                        group.states.push(None);
                    }
                    group.events.extend(decision.events);
                    Some(Pending::Member(reply, written))
                }
                Err(e) => {
                    reply.now(Err(e));
                    None
                }
            },
        }
    }

    /// Stores a member change (its record first: that is what makes it stand), then
    /// applies it to both states at once: members are durable once their record is.
    async fn store_member(&mut self, outcome: Outcome) -> Result<Written, WriteError> {
        let storage = &self.hub.storage;
        let written = match outcome {
            Outcome::Registered { member, api_key } => {
                let member = Arc::new(*member);
                storage.create_member(&member).await.map_err(|e| match e {
                    StorageError::AlreadyExists => DomainError::AlreadyRegistered(format!(
                        "executor {} is already registered",
                        member.executor_id
                    ))
                    .into(),
                    other => WriteError::Unavailable(other),
                })?;
                Written::Registered { member, api_key }
            }
            Outcome::ProfileUpdated(member) => {
                let member = Arc::new(*member);
                storage
                    .replace_member(&member)
                    .await
                    .map_err(WriteError::Unavailable)?;
                Written::ProfileUpdated(member)
            }
            Outcome::KeyRotated { member, api_key } => {
                let member = Arc::new(*member);
                storage
                    .replace_member(&member)
                    .await
                    .map_err(WriteError::Unavailable)?;
                Written::KeyRotated { member, api_key }
            }
            Outcome::Removed(member) => {
                let member = Arc::new(*member);
                storage
                    .delete_member(&member)
                    .await
                    .map_err(WriteError::Unavailable)?;
                Written::Removed(member)
            }
            Outcome::Created(_) | Outcome::Updated(..) => {
                unreachable!("thread outcomes are handled by decide")
            }
        };
        let mut published = self
            .handle
            .published
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match &written {
            Written::Removed(m) => {
                self.working.remove_member(&m.executor_id);
                published.remove_member(&m.executor_id);
            }
            Written::Registered { member, .. }
            | Written::ProfileUpdated(member)
            | Written::KeyRotated { member, .. } => {
                self.working.put_member(Arc::clone(member));
                published.put_member(Arc::clone(member));
            }
            Written::Thread(_) => {}
        }
        Ok(written)
    }

    fn publish(&self, snapshots: &HashMap<ThreadRef, Option<Arc<Thread>>>, head: Option<u64>) {
        if snapshots.is_empty() && head.is_none() {
            return;
        }
        {
            let mut published = self
                .handle
                .published
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for (r, t) in snapshots {
                published.put_thread(r, t.clone());
            }
            if let Some(head) = head {
                published.advance(head);
            }
        }
        // Durable and visible: whoever waits for these threads may read them now.
        self.handle.waiters.wake(snapshots.keys());
    }

    fn rollback(&mut self, touched: &HashSet<ThreadRef>) {
        let published = self
            .handle
            .published
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for r in touched {
            self.working.put_thread(r, published.thread(r).cloned());
        }
        // Positions decided but not stored are given again.
        self.working.set_head(published.head());
    }

    fn notify(&self, events: Vec<Event>, snapshots: &HashMap<ThreadRef, Option<Arc<Thread>>>) {
        let mut members: Option<Arc<[Arc<Member>]>> = None;
        let keep: Vec<bool> = (0..events.len())
            .map(|i| mess_core::told(&events, i))
            .collect();
        for (e, _) in events.into_iter().zip(keep).filter(|(_, keep)| *keep) {
            let Some(thread) = e
                .thread_ref
                .as_ref()
                .and_then(|r| snapshots.get(r))
                .and_then(Option::as_ref)
            else {
                continue;
            };
            let thread = Arc::clone(thread);
            let members = members.get_or_insert_with(|| self.working.members().cloned().collect());
            self.hub.notifier.notify(Notice {
                exchange_id: self.handle.id.clone(),
                event: e,
                thread,
                members: Arc::clone(members),
                outcomes: Arc::new(Sink {
                    exchange: Arc::clone(&self.handle),
                }),
            });
        }
    }
}
