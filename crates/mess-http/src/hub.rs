//! The hub: every exchange's state in memory, and one writer task per exchange that
//! sequences its commands.
//!
//! Writes follow one path: a handler sends a command to the exchange's writer; the
//! writer drains everything queued, decides each command against its *working* state
//! (so a batch sees its own earlier effects: exactly one claim wins), appends all the
//! batch's events in one durable storage call, and only then publishes the changed
//! threads to the *published* state that readers see, answers the handlers and queues
//! notifications. Readers never wait for a write and never see an unacknowledged one.
//! While a batch's append is in flight the writer goes on deciding the next one. Appends
//! are handed to storage, and answered, in the order they were decided (several
//! overlap); each batch publishes the thread states it left, not later ones.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use foldhash::{HashMap, HashSet};
use mess_core::event::EventKind;
use mess_core::{
    Actor, Clock, Command, DomainError, Entropy, Env, Event, Exchange, ExchangeId, ExecutorId,
    Member, Notice, Notifier, Outcome, OutcomeSink, Profile, Status, Storage, StorageError, Thread,
    ThreadRef, Timestamp,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How many commands may wait for one exchange's writer before handlers wait too.
const QUEUE_DEPTH: usize = 4096;
/// The most commands decided into one batch (one append, one sync).
const MAX_BATCH: usize = 512;
/// The most appends of one exchange in flight at once.
const MAX_IN_FLIGHT: usize = 8;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The domain refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Storage failed; nothing was acknowledged.
    #[error("storage unavailable")]
    Unavailable(#[source] StorageError),
    /// The writer is gone (shutting down).
    #[error("the exchange is shutting down")]
    ShuttingDown,
}

pub use mess_api::Written;

enum Job {
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

/// One exchange: its published state, read by handlers, and its writer's queue.
pub struct ExchangeHandle {
    id: ExchangeId,
    published: RwLock<Exchange>,
    last_seen: Mutex<HashMap<ExecutorId, Timestamp>>,
    tx: mpsc::Sender<Job>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
}

/// The routes of `mess-api` see an exchange through this.
impl mess_api::ExchangePort for ExchangeHandle {
    fn id(&self) -> &ExchangeId {
        &self.id
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> R {
        ExchangeHandle::read(self, f)
    }

    fn touch(&self, member: &ExecutorId, now: Timestamp) {
        ExchangeHandle::touch(self, member, now);
    }

    fn last_seen(&self, member: &Member) -> Timestamp {
        ExchangeHandle::last_seen(self, member)
    }

    fn validate(&self, profile: &Profile) -> Result<(), DomainError> {
        self.notifier.validate(profile)
    }

    async fn commit(&self, actor: Actor, cmd: Command) -> Result<Written, mess_api::ApiError> {
        Ok(self.submit(actor, cmd).await?)
    }
}

impl ExchangeHandle {
    /// The exchange's id.
    pub fn id(&self) -> &ExchangeId {
        &self.id
    }

    /// Runs `f` on the published state (briefly: clone out what you need).
    pub fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> R {
        let guard = self.published.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Records that a member was seen now.
    pub fn touch(&self, member: &ExecutorId, now: Timestamp) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        // The hot path (every authenticated request) allocates only on a member's first.
        match seen.get_mut(member) {
            Some(t) => *t = now,
            None => {
                seen.insert(member.clone(), now);
            }
        }
    }

    /// When a member was last seen (falls back to its record).
    pub fn last_seen(&self, member: &Member) -> Timestamp {
        let seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&member.executor_id)
            .copied()
            .unwrap_or(member.last_seen)
            .max(member.last_seen)
    }

    /// Sends a command to the writer and waits until it is durable (or refused).
    pub async fn submit(&self, actor: Actor, cmd: Command) -> Result<Written, WriteError> {
        let (tx, rx) = oneshot::channel();
        let via = DELIVERER.with(|d| d.borrow().clone());
        let reply = Reply { tx, via };
        self.tx
            .send(Job::Command { actor, cmd, reply })
            .await
            .map_err(|_| WriteError::ShuttingDown)?;
        rx.await.map_err(|_| WriteError::ShuttingDown)?
    }
}

/// Every exchange of this server.
pub struct Hub {
    exchanges: RwLock<HashMap<ExchangeId, Arc<ExchangeHandle>>>,
    storage: Arc<dyn Storage>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    storage_ok: AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Hub {
    /// Loads every member and event from `storage` and starts one writer per exchange.
    /// Must be called inside a tokio runtime.
    pub async fn load(
        storage: Arc<dyn Storage>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Arc<Self>, StorageError> {
        let replayed = storage.replay().await?;
        if replayed.skipped_lines > 0 {
            tracing::warn!(
                skipped = replayed.skipped_lines,
                "skipped unreadable event lines at start-up"
            );
        }
        let (states, events) = (replayed.exchanges, replayed.events);
        tracing::info!(exchanges = states.len(), events, "replayed the event log");
        let hub = Arc::new(Self {
            exchanges: RwLock::new(HashMap::default()),
            storage,
            notifier,
            clock,
            entropy,
            storage_ok: AtomicBool::new(true),
            tasks: Mutex::new(Vec::new()),
        });
        for (id, state) in states {
            let handle = hub.spawn_exchange(id.clone(), state);
            hub.exchanges
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, handle);
        }
        Ok(hub)
    }

    fn spawn_exchange(self: &Arc<Self>, id: ExchangeId, state: Exchange) -> Arc<ExchangeHandle> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        // The writer never lists: its copy skips the list indexes.
        let working = state.for_deciding();
        let handle = Arc::new(ExchangeHandle {
            id,
            published: RwLock::new(state),
            last_seen: Mutex::new(HashMap::default()),
            tx,
            clock: Arc::clone(&self.clock),
            notifier: Arc::clone(&self.notifier),
        });
        let writer = Writer {
            hub: Arc::clone(self),
            handle: Arc::clone(&handle),
            working,
        };
        let task = tokio::spawn(writer.run(rx));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        handle
    }

    /// An existing exchange.
    pub fn exchange(&self, id: &ExchangeId) -> Option<Arc<ExchangeHandle>> {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// An exchange, created (empty) if it does not exist yet: registration opens one.
    pub fn exchange_or_create(self: &Arc<Self>, id: &ExchangeId) -> Arc<ExchangeHandle> {
        if let Some(h) = self.exchange(id) {
            return h;
        }
        let mut map = self.exchanges.write().unwrap_or_else(|e| e.into_inner());
        let handle = map
            .entry(id.clone())
            .or_insert_with(|| self.spawn_exchange(id.clone(), Exchange::new(id.clone())));
        Arc::clone(handle)
    }

    /// Every exchange.
    pub fn exchanges(&self) -> Vec<Arc<ExchangeHandle>> {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The storage kind (`filesystem`, `s3`).
    pub fn storage_kind(&self) -> &'static str {
        self.storage.kind()
    }

    /// The notifier (for validating channels before a write).
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.notifier
    }

    /// Whether the last write (or check) reached storage.
    pub fn storage_ok(&self) -> bool {
        self.storage_ok.load(Ordering::Relaxed)
    }

    /// Asks storage whether it answers, within `timeout`; remembers the answer.
    pub async fn check_storage(&self, timeout: Duration) -> bool {
        let ok = matches!(
            tokio::time::timeout(timeout, self.storage.check()).await,
            Ok(Ok(()))
        );
        self.storage_ok.store(ok, Ordering::Relaxed);
        ok
    }

    /// Expires every thread whose deadline has passed. Called periodically.
    pub async fn expire_due(&self) {
        let now = self.clock.now();
        for h in self.exchanges() {
            for r in h.read(|x| x.due_for_expiry(now)) {
                // A conflict means the thread moved on meanwhile: nothing to do.
                let _ = h
                    .submit(Actor::Exchange, Command::Expire { thread: r })
                    .await;
            }
        }
    }

    /// Stops accepting commands and waits for every writer to finish what it has queued.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = self
            .exchanges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, h) in handles {
            let _ = h.tx.send(Job::Stop).await;
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
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
struct Writer {
    hub: Arc<Hub>,
    handle: Arc<ExchangeHandle>,
    working: Exchange,
}

type Answer = Result<Written, WriteError>;
/// An answer with the oneshot it goes to.
type Delivery = (oneshot::Sender<Answer>, Answer);

/// Where a command's answer goes: its handler's oneshot, through the handler thread's
/// delivery task when it has one (see [`deliver_on_this_thread`]).
struct Reply {
    tx: oneshot::Sender<Answer>,
    via: Option<Deliverer>,
}

impl Reply {
    /// Answers now, straight to the handler (a refusal, decided before any append).
    fn now(self, answer: Answer) {
        let _ = self.tx.send(answer);
    }
}

/// A thread's delivery task: it takes a batch's answers for the handlers of its thread
/// and hands each over from there.
#[derive(Clone)]
struct Deliverer(mpsc::UnboundedSender<Vec<Delivery>>);

thread_local! {
    static DELIVERER: std::cell::RefCell<Option<Deliverer>> = const { std::cell::RefCell::new(None) };
}

/// Makes writers answer this thread's handlers through one task on this thread, woken once
/// per batch, instead of waking the thread once per answer: a wake from another thread is
/// a syscall (an `eventfd` write), 4% of a create's CPU. Call it on each actix worker
/// thread, from the app factory (it spawns on the thread's `LocalSet`). Without it,
/// answers go straight to each handler.
pub fn deliver_on_this_thread() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Delivery>>();
    tokio::task::spawn_local(async move {
        while let Some(batch) = rx.recv().await {
            for (reply, answer) in batch {
                let _ = reply.send(answer);
            }
        }
    });
    DELIVERER.with(|d| *d.borrow_mut() = Some(Deliverer(tx)));
}

/// One batch's answers, grouped by the thread whose handlers wait for them.
#[derive(Default)]
struct Answers(Vec<(Deliverer, Vec<Delivery>)>);

impl Answers {
    fn push(&mut self, reply: Reply, answer: Answer) {
        let Some(via) = reply.via else {
            let _ = reply.tx.send(answer);
            return;
        };
        match self.0.iter_mut().find(|(d, _)| d.0.same_channel(&via.0)) {
            Some((_, batch)) => batch.push((reply.tx, answer)),
            None => self.0.push((via, vec![(reply.tx, answer)])),
        }
    }

    /// Hands each thread its answers (straight to the handlers if its task is gone).
    fn send(self) {
        for (via, batch) in self.0 {
            if let Err(mpsc::error::SendError(batch)) = via.0.send(batch) {
                for (tx, answer) in batch {
                    let _ = tx.send(answer);
                }
            }
        }
    }
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
    /// batches large enough that syncs do not multiply. (An earlier writer kept one
    /// append in flight and, after it, waited for the clients it had answered, as group
    /// commit's "commit delay" does: that waiting was added to every sync, and creates ran
    /// 20-25% slower on this machine's disk and on tmpfs; docs/benchmarks.md.)
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
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
                if let Some(p) = self
                    .decide(actor, cmd, reply, &mut group.events, &mut group.touched)
                    .await
                {
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
                    kind,
                };
                self.working.apply(&e);
                if let Some(r) = thread {
                    group.touched.insert(r);
                }
                group.events.push(e);
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
            pending: group.pending,
            append: Box::pin(async move {
                if events.is_empty() {
                    return (Ok(()), events);
                }
                let result = storage.append(&events).await;
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
        self.publish(&done.snapshots);
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
        events: &mut Vec<Event>,
        touched: &mut HashSet<ThreadRef>,
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
                }
                events.extend(decision.events);
                touched.insert(r.clone());
                Some(Pending::Thread(reply, r))
            }
            member_change => match self.store_member(member_change).await {
                Ok(written) => {
                    events.extend(decision.events);
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

    fn publish(&self, snapshots: &HashMap<ThreadRef, Option<Arc<Thread>>>) {
        if snapshots.is_empty() {
            return;
        }
        let mut published = self
            .handle
            .published
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (r, t) in snapshots {
            published.put_thread(r, t.clone());
        }
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
    }

    fn notify(&self, events: Vec<Event>, snapshots: &HashMap<ThreadRef, Option<Arc<Thread>>>) {
        let mut members: Option<Arc<[Arc<Member>]>> = None;
        for e in events {
            if !matches!(
                e.kind,
                EventKind::ThreadCreated(_) | EventKind::StatusChanged(_)
            ) {
                continue;
            }
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

/// Counts threads by status across every exchange (for `/metrics`).
pub fn status_totals(hub: &Hub) -> std::collections::HashMap<Status, usize> {
    let mut totals = std::collections::HashMap::default();
    for h in hub.exchanges() {
        h.read(|x| {
            for (s, n) in x.status_counts() {
                *totals.entry(s).or_insert(0) += n;
            }
        });
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Answer {
        Err(WriteError::ShuttingDown)
    }

    #[tokio::test]
    async fn answers_go_through_their_threads_task_and_straight_when_it_is_gone() {
        let local = tokio::task::LocalSet::new();
        let via = local
            .run_until(async {
                deliver_on_this_thread();
                let via = DELIVERER.with(|d| d.borrow().clone()).expect("registered");
                let (routed, routed_rx) = oneshot::channel();
                let (direct, direct_rx) = oneshot::channel();
                let mut answers = Answers::default();
                answers.push(
                    Reply {
                        tx: routed,
                        via: Some(via.clone()),
                    },
                    refused(),
                );
                answers.push(
                    Reply {
                        tx: direct,
                        via: None,
                    },
                    refused(),
                );
                // The direct one is already answered; the routed one waits for the batch.
                assert!(matches!(direct_rx.await, Ok(Err(WriteError::ShuttingDown))));
                assert_eq!(answers.0.len(), 1, "one batch for the thread");
                answers.send();
                assert!(matches!(routed_rx.await, Ok(Err(WriteError::ShuttingDown))));
                via
            })
            .await;

        // The thread's task is gone with its LocalSet: answers go straight to the handler.
        drop(local);
        assert!(via.0.is_closed());
        let (tx, rx) = oneshot::channel();
        let mut answers = Answers::default();
        answers.push(Reply { tx, via: Some(via) }, refused());
        answers.send();
        assert!(matches!(rx.await, Ok(Err(WriteError::ShuttingDown))));
    }
}
