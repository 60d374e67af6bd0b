//! `ExchangeObject`: one Durable Object per exchange (named by its id). It holds that
//! exchange's `mess_core::Exchange` in memory, rebuilt from R2 when the object starts, and
//! is the only writer of the exchange's objects in R2.
//!
//! Writes follow the binary's hub (`mess-http`'s `hub/writer.rs`), one at a time: under an async
//! lock, `Exchange::decide` against the acknowledged state, the member record (create-only
//! for a registration: checked here, where nothing else writes it) and then the events
//! written to R2, and only then `apply`, the answer and the notifications. Readers see only
//! acknowledged state; a second concurrent claim is decided after the first is stored, so
//! it gets 409: claims are exactly-once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::lock::Mutex;
use mess_api::feed::{Frame, Window};
use mess_api::idempotency::{Answer, ScopeId};
use mess_api::{RegistrationPolicy, Reply, Written, auth, routes};
use mess_core::{
    Actor, ApiKey, Clock, Command, Event, Exchange, ExchangeId, ExecutorId, Member, Outcome,
    Replay, Status, ThreadRef, Timestamp,
};
use worker::{Bucket, Method, Request, Response, State, durable_object};

use mess_core::action_link::{ActionLink, LinkError};

use crate::error::{ApiError, error_response, respond};
use crate::http;
use crate::port::{JsClock, JsEntropy, Port, env};
use crate::{notify, store};

/// Where the object keeps its exchange's id (its only use of Durable Object storage), for
/// an alarm that wakes a restarted object.
const EXCHANGE_KEY: &str = "exchange_id";

/// The exchange's state and what it needs, shared with the work that outlives a request
/// (notifications).
pub(crate) struct Core {
    state: State,
    pub(crate) bucket: Bucket,
    pub(crate) public_url: Option<String>,
    /// The key that signs notifications' claim links (`ACTION_LINK_KEY`), if set.
    action_key: Option<Vec<u8>>,
    cors: String,
    /// `REGISTRATION_TOKEN` / `REGISTRATION_TOKENS`, as on the binary.
    registration: RegistrationPolicy,
    /// The capability catalog (`CAPABILITIES`, JSON), or why the variable is not one.
    catalog: Result<Vec<serde_json::Value>, String>,
    /// The acknowledged state, once loaded.
    pub(crate) exchange: RefCell<Option<Exchange>>,
    pub(crate) last_seen: RefCell<HashMap<ExecutorId, Timestamp>>,
    /// Requests waiting for a thread to change (`?wait=N`), woken after a write is stored.
    pub(crate) waiters: RefCell<HashMap<ThreadRef, Vec<futures::channel::oneshot::Sender<()>>>>,
    /// The change feed: the latest frames, and the open streams (`GET .../events`).
    pub(crate) feed: RefCell<Window>,
    pub(crate) streams: RefCell<Vec<mpsc::Sender<Frame>>>,
    /// `Idempotency-Key` answers (stored in R2 too) and the scopes being run.
    pub(crate) replays: RefCell<HashMap<ScopeId, crate::port::Slot>>,
    /// `CLAIM_TIMEOUT` (an ISO 8601 duration), in milliseconds; `None`: off.
    claim_timeout_ms: Option<i64>,
    /// `OFFER_REMIND_AFTER` (an ISO 8601 duration, default an hour), in milliseconds.
    remind_after_ms: i64,
    /// `REVIEW_WINDOW` (an ISO 8601 duration, default a day), in milliseconds.
    pub(crate) review_window_ms: i64,
    /// Held by every write and by the rebuild.
    lock: Mutex<()>,
}

/// The Durable Object class (`EXCHANGES` binding in wrangler.toml).
#[durable_object]
pub struct ExchangeObject {
    core: Rc<Core>,
}

impl worker::DurableObject for ExchangeObject {
    fn new(state: State, env: worker::Env) -> Self {
        let bucket = env.bucket("BUCKET").expect("the BUCKET R2 binding");
        let public_url = env
            .var("PUBLIC_URL")
            .ok()
            .map(|v| v.to_string())
            .filter(|s| !s.is_empty());
        let cors = http::cors_origins(&env);
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let action_key = crate::action_key(&env);
        let catalog = match var("CAPABILITIES").filter(|c| !c.trim().is_empty()) {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| format!("CAPABILITIES is not valid JSON: {e}"))
                .and_then(|doc| mess_api::catalog::from_document(doc, "CAPABILITIES")),
        };
        let registration = RegistrationPolicy::new(
            var("REGISTRATION_TOKEN"),
            var("REGISTRATION_TOKENS").as_deref(),
        );
        Self {
            core: Rc::new(Core {
                state,
                bucket,
                public_url,
                action_key,
                cors,
                registration,
                catalog,
                exchange: RefCell::new(None),
                last_seen: RefCell::new(HashMap::new()),
                waiters: RefCell::new(HashMap::new()),
                feed: RefCell::new(Window::new(0)),
                streams: RefCell::new(Vec::new()),
                replays: RefCell::new(HashMap::new()),
                claim_timeout_ms: duration_var(var("CLAIM_TIMEOUT"), "CLAIM_TIMEOUT"),
                remind_after_ms: duration_var(var("OFFER_REMIND_AFTER"), "OFFER_REMIND_AFTER")
                    .unwrap_or(60 * 60 * 1000),
                review_window_ms: duration_var(var("REVIEW_WINDOW"), "REVIEW_WINDOW")
                    .unwrap_or(mess_core::exchange::DEFAULT_REVIEW_WINDOW_MS),
                lock: Mutex::new(()),
            }),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let origin = req.headers().get("Origin").ok().flatten();
        let res = match Rc::clone(&self.core).handle(req).await {
            Ok(res) => res,
            Err(e) => {
                if matches!(e, ApiError::Internal | ApiError::Unavailable) {
                    worker::console_error!("request failed: {:?}", e);
                }
                error_response(&e)
            }
        };
        Ok(http::finish(res, origin.as_deref(), &self.core.cors))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // A restarted object learns its exchange from what `schedule_expiry` stored.
        let core = Rc::clone(&self.core);
        let mut id = core.exchange.borrow().as_ref().map(|x| x.id().clone());
        if id.is_none() {
            let stored: Option<String> =
                core.state.storage().get(EXCHANGE_KEY).await.ok().flatten();
            id = stored.and_then(|s| ExchangeId::parse(&s).ok());
        }
        if let Some(id) = id {
            let _ = core.ensure_loaded(&id).await;
            core.expire_due().await;
            // A claim's limit may have moved on (its assignee wrote): wake again then.
            core.schedule_expiry().await;
        }
        Response::empty()
    }
}

/// A duration variable (`CLAIM_TIMEOUT`, `OFFER_REMIND_AFTER`: ISO 8601, 1 s to 7 days), in
/// milliseconds; unset or empty is `None`, an invalid one is logged and `None`.
fn duration_var(value: Option<String>, name: &str) -> Option<i64> {
    let value = value.filter(|v| !v.trim().is_empty())?;
    let value = serde_json::Value::String(value.trim().to_owned());
    mess_core::request::parse_claim_duration(&value, name)
        .map_err(|e| worker::console_error!("{}", e))
        .ok()
}

/// The exchange id a request to the object is about: the path's for a registration, the
/// key's otherwise (the Worker sends each request to the object its key names).
fn parse_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/exchanges/")?;
    let (ex, sub) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    (!ex.is_empty()).then_some((ex, sub))
}

/// The bearer key: 401 without a well-formed one.
pub fn bearer(req: &Request) -> Result<ApiKey, ApiError> {
    // The Fetch API joins repeated headers into one value, which then is no key.
    let header = req.headers().get("Authorization").ok().flatten();
    auth::bearer(header.as_deref().map(str::as_bytes).into_iter())
}

fn unavailable(e: store::StoreError) -> ApiError {
    worker::console_error!("R2: {}", e.0);
    ApiError::Unavailable
}

impl Core {
    /// Rebuilds the state from R2 the first time it is needed.
    async fn ensure_loaded(&self, id: &ExchangeId) -> Result<(), ApiError> {
        if self.exchange.borrow().is_some() {
            return Ok(());
        }
        let _guard = self.lock.lock().await;
        if self.exchange.borrow().is_some() {
            return Ok(());
        }
        let loaded = store::load(&self.bucket, id).await.map_err(unavailable)?;
        // Folded as the binary's start-up folds: each thread's events in `seq` order, and
        // each member last seen at its latest event.
        let mut replay = Replay::new();
        for e in loaded.events {
            replay.push(e);
        }
        let events = replay.events();
        let members = loaded.members.into_iter().filter(|m| m.exchange_id == *id);
        let x = replay
            .finish(members)
            .remove(id)
            .unwrap_or_else(|| Exchange::new(id.clone()));
        if loaded.skipped > 0 {
            worker::console_warn!("{}: skipped {} unreadable event lines", id, loaded.skipped);
        }
        worker::console_log!(
            "{}: rebuilt from R2: {} members, {} events",
            id,
            x.members().count(),
            events
        );
        *self.feed.borrow_mut() = Window::new(x.head());
        *self.exchange.borrow_mut() = Some(x);
        let now = JsClock.now();
        for bytes in store::load_answers(&self.bucket, id)
            .await
            .map_err(unavailable)?
        {
            match serde_json::from_slice::<Answer>(&bytes) {
                Ok(a) if a.live(now) => {
                    let scope = a.scope.clone();
                    self.replays
                        .borrow_mut()
                        .insert(scope, crate::port::Slot::Done(a));
                }
                Ok(a) => store::delete_answer(&self.bucket, id, &a.scope)
                    .await
                    .map_err(unavailable)?,
                Err(_) => worker::console_warn!("{}: skipped an unreadable idempotent answer", id),
            }
        }
        drop(_guard);
        self.schedule_expiry().await;
        Ok(())
    }

    fn read<R>(&self, f: impl FnOnce(&Exchange) -> R) -> Result<R, ApiError> {
        let guard = self.exchange.borrow();
        guard.as_ref().map(f).ok_or(ApiError::Internal)
    }

    pub(crate) fn last_seen(&self, m: &Member) -> Timestamp {
        self.last_seen
            .borrow()
            .get(&m.executor_id)
            .copied()
            .unwrap_or(m.last_seen)
            .max(m.last_seen)
    }

    /// `/a/{token}` (the Worker verified the token and sent it to this exchange's object):
    /// the page of a notification's "Claim" button, or the claim (`POST`).
    async fn action(self: Rc<Self>, req: &Request, token: &str) -> Result<Response, ApiError> {
        let html = http::wants_html(req);
        let now = JsClock.now().unix_millis().div_euclid(1000);
        let link = match self
            .action_key
            .as_deref()
            .map(|key| ActionLink::verify(key, token, now))
        {
            Some(Ok(link)) => link,
            Some(Err(e)) => return Ok(respond(mess_api::links::refused(e, html))),
            None => return Ok(respond(mess_api::links::refused(LinkError::Invalid, html))),
        };
        self.ensure_loaded(&link.exchange).await?;
        self.expire_due().await;
        let x = Port {
            core: &self,
            id: link.exchange.clone(),
        };
        Ok(respond(match req.method() {
            Method::Post => mess_api::links::claim(&x, &link, html).await,
            Method::Get | Method::Head => mess_api::links::preview(&x, &link, token, html),
            _ => return Err(ApiError::MethodNotAllowed("GET, HEAD, POST")),
        }))
    }

    async fn handle(self: Rc<Self>, mut req: Request) -> Result<Response, ApiError> {
        let url = req.url().map_err(|_| ApiError::bad("invalid URL"))?;
        let path = url.path().to_owned();
        if let Some(token) = path.strip_prefix("/a/") {
            return self.action(&req, token).await;
        }
        let query = url.query().unwrap_or_default().to_owned();
        let (path_ex, sub) = parse_path(&path).ok_or(ApiError::NotFound("Not found".into()))?;
        let method = req.method();
        if sub == "/register" {
            let exchange = routes::exchange_id(path_ex)?;
            if method != Method::Post {
                return Err(ApiError::MethodNotAllowed("POST"));
            }
            // The body first, then the token, as on the binary.
            let body = http::json_body(&mut req).await?;
            let header = |name| req.headers().get(name).ok().flatten();
            let (token, authorization) = (header("X-Registration-Token"), header("Authorization"));
            self.registration.check(
                exchange.as_str(),
                token.as_deref().map(str::as_bytes),
                authorization.as_deref().map(str::as_bytes),
            )?;
            self.ensure_loaded(&exchange).await?;
            self.expire_due().await;
            let x = Port {
                core: &self,
                id: exchange,
            };
            return Ok(respond(routes::register(&x, &body).await?));
        }
        // Authentication first: 401 before 400, 404 or 405.
        let key = bearer(&req)?;
        let me = key.exchange();
        self.ensure_loaded(&me).await?;
        let x = Port {
            core: &self,
            id: me,
        };
        let member = auth::member_of(&x, &key, path_ex)?;
        self.expire_due().await;
        let segs: Vec<&str> = sub.split('/').skip(1).collect();
        let reply: Reply = match (segs.as_slice(), method) {
            (["requests"], Method::Get) => routes::list_requests(&x, &query)?,
            (["requests"], Method::Post) => {
                let body = http::json_body(&mut req).await?;
                let key = req.headers().get("Idempotency-Key").ok().flatten();
                routes::create_request(&x, &member, body, key.as_deref().map(str::as_bytes)).await?
            }
            (["requests"], _) => return Err(ApiError::MethodNotAllowed("GET, POST")),
            (["requests", r], Method::Get) if !r.is_empty() => {
                let if_none_match = req.headers().get("If-None-Match").ok().flatten();
                let if_none_match = if_none_match.as_deref().map(str::as_bytes);
                routes::get_request(&x, r, &query, if_none_match).await?
            }
            (["requests", r], Method::Patch) if !r.is_empty() => {
                let body = http::json_body(&mut req).await?;
                let key = req.headers().get("Idempotency-Key").ok().flatten();
                let key = key.as_deref().map(str::as_bytes);
                routes::update_request(&x, &member, r, body, key).await?
            }
            (["requests", r], _) if !r.is_empty() => {
                return Err(ApiError::MethodNotAllowed("GET, PATCH"));
            }
            (["requests", r, "attachments", name], Method::Get)
                if !r.is_empty() && !name.is_empty() =>
            {
                let header = |h: &str| req.headers().get(h).ok().flatten();
                let (inm, range) = (header("If-None-Match"), header("Range"));
                routes::attachment(
                    &x,
                    r,
                    name,
                    inm.as_deref().map(str::as_bytes),
                    range.as_deref().map(str::as_bytes),
                )
                .await?
            }
            (["requests", r, "attachments", name], _) if !r.is_empty() && !name.is_empty() => {
                return Err(ApiError::MethodNotAllowed("GET"));
            }
            (["events"], Method::Get) => {
                let last = req.headers().get("Last-Event-ID").ok().flatten();
                return crate::feed::open(&self, last.as_deref().map(str::as_bytes), &query);
            }
            (["events"], _) => return Err(ApiError::MethodNotAllowed("GET")),
            (["mcp", ..], _) => {
                // Read before answering: workerd breaks the object's connection when a
                // response leaves with the request body still unread.
                let _ = req.bytes().await;
                return Err(ApiError::NotImplemented(
                    "the MCP endpoint is served by the mess-exchange binary only: the official Rust MCP SDK (rmcp) does not build for Cloudflare Workers (wasm32). Use the REST API here (GET .../requests/{ref}?wait=N, GET .../events), or run the binary.",
                ));
            }
            (["executors"], Method::Get) => routes::list_executors(&x)?,
            (["executors"], _) => return Err(ApiError::MethodNotAllowed("GET")),
            (["executors", id], Method::Get) if !id.is_empty() => {
                routes::get_executor(&x, &member, id)?
            }
            (["executors", id], Method::Patch) if !id.is_empty() => {
                let body = http::json_body(&mut req).await?;
                routes::update_executor(&x, &member, id, &body).await?
            }
            (["executors", id], Method::Delete) if !id.is_empty() => {
                routes::remove_executor(&x, &member, id).await?
            }
            (["executors", id], _) if !id.is_empty() => {
                return Err(ApiError::MethodNotAllowed("GET, PATCH, DELETE"));
            }
            (["executors", id, "rotate-key"], Method::Post) if !id.is_empty() => {
                routes::rotate_key(&x, &member, id).await?
            }
            (["executors", id, "rotate-key"], _) if !id.is_empty() => {
                return Err(ApiError::MethodNotAllowed("POST"));
            }
            (["executors", id, "test-notification"], Method::Post) if !id.is_empty() => {
                routes::test_notification(&x, &member, id).await?
            }
            (["executors", id, "test-notification"], _) if !id.is_empty() => {
                return Err(ApiError::MethodNotAllowed("POST"));
            }
            (["capabilities"], Method::Get) => match &self.catalog {
                Ok(catalog) => routes::capabilities(catalog, &query)?,
                Err(e) => {
                    worker::console_error!("{}", e);
                    return Err(ApiError::Internal);
                }
            },
            (["capabilities"], _) => return Err(ApiError::MethodNotAllowed("GET")),
            _ => return Err(ApiError::NotFound("Not found".into())),
        };
        Ok(respond(reply))
    }

    /// Decides, stores and applies one command, then schedules its notifications.
    pub(crate) async fn submit(
        self: &Rc<Self>,
        actor: Actor,
        cmd: Command,
    ) -> Result<Written, ApiError> {
        let guard = self.lock.lock().await;
        let decision = self.read(|x| x.decide(&actor, cmd, env()))??;
        let events = decision.events;
        let written = match decision.outcome {
            Outcome::Created(r) | Outcome::Updated(r, _) => {
                if !events.is_empty() {
                    store::append(&self.bucket, &events)
                        .await
                        .map_err(unavailable)?;
                }
                let (t, frames) = {
                    let mut g = self.exchange.borrow_mut();
                    let x = g.as_mut().ok_or(ApiError::Internal)?;
                    let mut frames = Vec::with_capacity(events.len());
                    for e in &events {
                        x.apply(e);
                        frames.push(mess_api::feed::frame(e, x.thread(&r).map(|t| &**t)));
                    }
                    (x.thread(&r).cloned(), frames)
                };
                self.publish(frames);
                let t = t.ok_or_else(|| ApiError::NotFound("Thread not found".into()))?;
                // Stored and applied: whoever waits for this thread may read it now.
                for tx in self.waiters.borrow_mut().remove(&r).unwrap_or_default() {
                    let _ = tx.send(());
                }
                Written::Thread(t)
            }
            member_change => {
                let written = self.store_member(member_change).await?;
                // The record stands once stored, whatever happens to its events (as the
                // binary's hub does).
                match store::append(&self.bucket, &events).await {
                    Err(e) => worker::console_error!("R2: member events not stored: {}", e.0),
                    Ok(()) => {
                        if let Some(x) = self.exchange.borrow_mut().as_mut() {
                            for e in &events {
                                x.advance(e.pos);
                            }
                        }
                        self.publish(
                            events
                                .iter()
                                .map(|e| mess_api::feed::frame(e, None))
                                .collect(),
                        );
                    }
                }
                written
            }
        };
        drop(guard);
        self.notify(&events);
        // A deadline, or a claim with a time limit (its own, or the exchange's).
        let timed = |t: &mess_core::Thread| {
            t.deadline.is_some()
                || t.status == Status::Pending
                || (t.status == Status::Claimed
                    && (t.claim_timeout_ms.is_some() || self.claim_timeout_ms.is_some()))
        };
        if matches!(written, Written::Thread(ref t) if timed(t)) {
            self.schedule_expiry().await;
        }
        Ok(written)
    }

    async fn store_member(&self, outcome: Outcome) -> Result<Written, ApiError> {
        let b = &self.bucket;
        let written = match outcome {
            Outcome::Registered { member, api_key } => {
                let member = Arc::new(*member);
                // Create-only: nothing else writes this exchange's records, and this runs
                // under the object's write lock.
                if store::member_exists(b, &member)
                    .await
                    .map_err(unavailable)?
                {
                    return Err(ApiError::AlreadyRegistered(format!(
                        "executor {} is already registered",
                        member.executor_id
                    )));
                }
                store::put_member(b, &member).await.map_err(unavailable)?;
                Written::Registered { member, api_key }
            }
            Outcome::ProfileUpdated(member) => {
                let member = Arc::new(*member);
                store::put_member(b, &member).await.map_err(unavailable)?;
                Written::ProfileUpdated(member)
            }
            Outcome::KeyRotated { member, api_key } => {
                let member = Arc::new(*member);
                store::put_member(b, &member).await.map_err(unavailable)?;
                Written::KeyRotated { member, api_key }
            }
            Outcome::Removed(member) => {
                let member = Arc::new(*member);
                store::delete_member(b, &member)
                    .await
                    .map_err(unavailable)?;
                Written::Removed(member)
            }
            Outcome::Created(_) | Outcome::Updated(..) => return Err(ApiError::Internal),
        };
        let mut g = self.exchange.borrow_mut();
        let x = g.as_mut().ok_or(ApiError::Internal)?;
        match &written {
            Written::Removed(m) => x.remove_member(&m.executor_id),
            Written::Registered { member, .. }
            | Written::ProfileUpdated(member)
            | Written::KeyRotated { member, .. } => x.put_member(Arc::clone(member)),
            Written::Thread(_) => {}
        }
        Ok(written)
    }

    /// Queues the notifications and hooks `events` call for, to run after the response.
    fn notify(self: &Rc<Self>, events: &[Event]) {
        let mut jobs = Vec::new();
        {
            let g = self.exchange.borrow();
            let Some(x) = g.as_ref() else { return };
            let members: Vec<Arc<Member>> = x.members().cloned().collect();
            let now = JsClock.now();
            for e in mess_core::notifiable(events) {
                let Some(thread) = e.thread_ref.as_ref().and_then(|r| x.thread(r)) else {
                    continue;
                };
                let public_url = self.public_url.as_deref();
                let Some(mess_notify::Deliveries { ctx, targets }) =
                    mess_notify::deliveries(e, thread, &members, now, public_url)
                else {
                    continue;
                };
                for (executor, target) in targets {
                    jobs.push((e.thread_ref.clone(), executor, target, Arc::clone(&ctx)));
                }
            }
        }
        if jobs.is_empty() {
            return;
        }
        let core = Rc::clone(self);
        self.state.wait_until(async move {
            let key = core.action_key.as_deref();
            let sends = jobs
                .into_iter()
                .map(|(r, executor, target, ctx)| async move {
                    let kind = notify::deliver(&executor, &target, &ctx, key).await;
                    (r, kind)
                });
            let outcomes = futures::future::join_all(sends).await;
            core.record_outcomes(outcomes).await;
        });
    }

    /// Stores notification outcomes as events of their threads (actor `@exchange`).
    async fn record_outcomes(&self, outcomes: Vec<(Option<ThreadRef>, mess_core::EventKind)>) {
        let _guard = self.lock.lock().await;
        let mut events = Vec::new();
        {
            let g = self.exchange.borrow();
            let Some(x) = g.as_ref() else { return };
            let mut seqs: HashMap<ThreadRef, u64> = HashMap::new();
            for (r, kind) in outcomes {
                let seq = match r.as_ref() {
                    Some(r) => {
                        let base = x.thread(r).map_or(0, |t| t.seq);
                        let s = seqs.entry(r.clone()).or_insert(base);
                        *s += 1;
                        *s
                    }
                    None => 0,
                };
                let pos = x.head() + 1 + events.len() as u64;
                events.push(Event {
                    event_id: mess_core::clock::new_uuid(&JsEntropy),
                    ts: JsClock.now(),
                    exchange_id: x.id().clone(),
                    thread_ref: r,
                    actor_id: Actor::Exchange,
                    seq,
                    pos,
                    kind,
                });
            }
        }
        if let Err(e) = store::append(&self.bucket, &events).await {
            worker::console_error!("R2: notification outcomes not stored: {}", e.0);
            return;
        }
        let mut frames = Vec::with_capacity(events.len());
        if let Some(x) = self.exchange.borrow_mut().as_mut() {
            for e in &events {
                x.apply(e);
                let t = e.thread_ref.as_ref().and_then(|r| x.thread(r));
                frames.push(mess_api::feed::frame(e, t.map(|t| &**t)));
            }
        }
        self.publish(frames);
    }

    /// Keeps stored events' frames in the window and sends them to every open stream; a
    /// stream too far behind (its queue full) is closed.
    fn publish(&self, frames: Vec<Frame>) {
        let mut window = self.feed.borrow_mut();
        let mut streams = self.streams.borrow_mut();
        for f in frames {
            window.push(f.clone());
            streams.retain_mut(|s| s.try_send(f.clone()).is_ok());
        }
    }

    /// Expires every thread whose deadline has passed (the binary does it every second; a
    /// Durable Object does it on each request and on its alarm).
    async fn expire_due(self: &Rc<Self>) {
        let Ok(due) = self.read(|x| x.due(JsClock.now(), self.timers())) else {
            return;
        };
        // A conflict means the thread moved on meanwhile: nothing to do.
        for cmd in due {
            let _ = self.submit(Actor::Exchange, cmd).await;
        }
    }

    /// The settings of the exchange's own timers.
    fn timers(&self) -> mess_core::Timers {
        mess_core::Timers {
            claim_timeout_ms: self.claim_timeout_ms,
            remind_after_ms: self.remind_after_ms,
        }
    }

    /// Sets the object's alarm to the next deadline of a thread that may still expire, or
    /// the next claim to run out, whichever comes first.
    async fn schedule_expiry(&self) {
        let next = self.read(|x| x.next_due(self.timers()));
        if let Ok(Some(at)) = next {
            let ms = (at.unix_millis() - JsClock.now().unix_millis()).max(0);
            let storage = self.state.storage();
            let id = self.read(|x| x.id().to_string()).unwrap_or_default();
            if let Err(e) = storage.put(EXCHANGE_KEY, id).await {
                worker::console_warn!("could not store the exchange id: {}", e);
            }
            if let Err(e) = storage.set_alarm(ms).await {
                worker::console_warn!("could not set the expiry alarm: {}", e);
            }
        }
    }
}
