//! Any replica answers: a request for an exchange is served here when this replica holds
//! its lease, forwarded to the replica that does otherwise, and makes this replica take the
//! lease when nobody holds a live one (docs/architecture.md, "Replicas").
//!
//! Served here means checked twice: the lease is held when the request starts, and still
//! held when its answer is ready (else the answer is a 503, never a possibly stale read
//! or an unacknowledged write). Forwarded requests are proxied as they are, streams
//! (the feed, held requests) included; the owner answers with `X-Mess-Replica`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use foldhash::HashMap;
use futures::{StreamExt, TryStreamExt};
use mess_core::{ExchangeId, Located, Ownership};

use crate::hub::Hub;
use crate::state::AppState;

/// Names the replica that served an exchange's request (its `ADVERTISE_URL`).
pub const REPLICA_HEADER: &str = "x-mess-replica";

/// Marks a request one replica forwarded to another: never forwarded again.
const FORWARDED_HEADER: &str = "x-mess-forwarded-by";

/// On a 503 to a forwarded request: this replica is not the exchange's owner (it gave it
/// back, or never held it) and did nothing with the request, so the forwarding replica
/// reads the lease again and sends it where it belongs.
const NOT_OWNER_HEADER: &str = "x-mess-not-owner";

/// How long a request waits for an exchange changing hands (a forward refused while the
/// owner restarts, a lease being taken) before it is answered 503.
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

/// How many lease periods apart (on average) a replica looks for exchanges no live lease
/// covers ([`Forwarding::sweep`]): each look reads every such lease once (a GET each).
pub const SWEEP_PERIODS: u32 = 6;

/// How many lease periods an exchange held here may go without a request before it is
/// given back ([`Forwarding::hand_back_idle`]): ten minutes with the default `PT10S`.
pub const IDLE_PERIODS: u32 = 60;

/// How long the owner has to start answering a request that is not held. A paused or
/// partitioned owner is given up on sooner, when its lease moves; this bounds a live
/// owner that is slow, such as one still reading an exchange it has just taken.
const FORWARD_ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Headers that belong to one connection, not to the request or answer forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// This replica's side of forwarding: who owns what, and the client that forwards.
pub struct Forwarding {
    ownership: Arc<dyn Ownership>,
    client: reqwest::Client,
    /// One lease taking at a time per exchange: the requests behind it wait, then are
    /// served here.
    taking: Mutex<HashMap<ExchangeId, Arc<tokio::sync::Mutex<()>>>>,
    /// When each exchange held here was last asked for (or taken).
    used: Mutex<HashMap<ExchangeId, std::time::Instant>>,
}

impl Forwarding {
    /// Forwarding for `ownership`.
    pub fn new(ownership: Arc<dyn Ownership>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("replica forwarding client: {e}"))?;
        Ok(Self {
            ownership,
            client,
            taking: Mutex::new(HashMap::default()),
            used: Mutex::new(HashMap::default()),
        })
    }

    /// The port this forwards by.
    pub fn ownership(&self) -> &Arc<dyn Ownership> {
        &self.ownership
    }

    /// Takes over exchanges nobody holds a live lease on, at most a quarter of them (at
    /// least one) per call, in random order: run every few lease periods by each replica,
    /// so that the exchanges of a replica that died are served again (their timers fire)
    /// even when no request comes for them, and so that they spread over the replicas.
    /// One given back idle is taken only when its next timer is near. Returns how many it
    /// took.
    pub async fn sweep(&self, hub: &Arc<Hub>) -> usize {
        let mut free: Vec<ExchangeId> = match self.ownership.exchanges().await {
            Ok(all) => all
                .into_iter()
                .filter(|x| !self.ownership.holds(x))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the exchanges to sweep");
                return 0;
            }
        };
        rand::seq::SliceRandom::shuffle(free.as_mut_slice(), &mut rand::rng());
        let limit = (free.len() / 4).max(1);
        // Timers due before the sweep after next (sweeps are jittered up to 1.5 apart).
        let within = self.ownership.period() * SWEEP_PERIODS * 3;
        let mut took = 0;
        for x in free {
            if took >= limit {
                break;
            }
            match self.locate_as(hub, &x, Some(within)).await {
                Ok(Where::Here) => took += 1,
                Ok(Where::There(_) | Where::Idle) => {}
                Err(e) => tracing::debug!(exchange = %x, error = %e, "sweep: could not take"),
            }
        }
        took
    }

    /// Hands every exchange over (graceful shutdown): takes no more, and for each one held
    /// lets its writer finish what it has queued, then gives its lease back, so that
    /// another replica serves it at once (requests forwarded here meanwhile wait for that,
    /// then go there).
    pub async fn hand_over(&self, hub: &Arc<Hub>) {
        self.ownership.drain();
        let held: Vec<ExchangeId> = hub.exchanges().iter().map(|h| h.id().clone()).collect();
        futures::stream::iter(held)
            .for_each_concurrent(16, |x| async move {
                // Under the exchange's gate: a request meanwhile waits for the release
                // (else, finding the state gone, it would drop the lease unreleased, and the
                // others would wait a whole period to take it).
                let gate = self.gate(&x);
                let _one = gate.lock().await;
                let wake_at = hub.next_due(&x);
                hub.hand_back(&x).await;
                self.ownership.release(&x, wake_at).await;
            })
            .await;
        self.ownership.release_all().await;
    }

    /// Renews every lease held here, and stops serving each exchange whose lease was lost,
    /// unless it was taken again meanwhile: under the exchange's gate, so that a lease
    /// taken anew and its state just read back are never dropped, and in a task of its
    /// own, so that a taking in progress never delays the next renewal.
    pub async fn renew(self: &Arc<Self>, hub: &Arc<Hub>) {
        for lost in self.ownership.renew().await {
            let (this, hub) = (Arc::clone(self), Arc::clone(hub));
            tokio::spawn(async move {
                let gate = this.gate(&lost);
                let _one = gate.lock().await;
                if !this.ownership.holds(&lost) {
                    hub.drop_exchange(&lost);
                }
            });
        }
    }

    /// Runs [`Forwarding::sweep`] every [`SWEEP_PERIODS`] lease periods or so (jittered,
    /// so that replicas started together take turns) until aborted.
    pub fn spawn_sweeps(self: &Arc<Self>, hub: Arc<Hub>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let every = this.ownership.period() * SWEEP_PERIODS;
            loop {
                let jitter = rand::random_range(0.5..1.5);
                tokio::time::sleep(every.mul_f64(jitter)).await;
                let gave = this.hand_back_idle(&hub).await;
                if gave > 0 {
                    tracing::info!(gave, "gave idle exchanges back");
                }
                let took = this.sweep(&hub).await;
                if took > 0 {
                    tracing::info!(took, "took over exchanges no replica held");
                }
            }
        })
    }

    fn gate(&self, exchange: &ExchangeId) -> Arc<tokio::sync::Mutex<()>> {
        let mut taking = self.taking.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(taking.entry(exchange.clone()).or_default())
    }

    fn touch(&self, exchange: &ExchangeId) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.insert(exchange.clone(), std::time::Instant::now());
    }

    /// Gives back the exchanges held here that nobody asked for in [`IDLE_PERIODS`]
    /// lease periods, each with when its next timer is due: it is then in no replica's
    /// memory until a request comes, or until a sweep takes it in time for that timer.
    /// Returns how many it gave back.
    async fn hand_back_idle(&self, hub: &Arc<Hub>) -> usize {
        let idle_after = self.ownership.period() * IDLE_PERIODS;
        let idle: Vec<ExchangeId> = {
            let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            hub.exchanges()
                .iter()
                .map(|h| h.id().clone())
                .filter(|x| used.get(x).is_none_or(|at| at.elapsed() >= idle_after))
                .collect()
        };
        let mut gave = 0;
        for x in idle {
            let gate = self.gate(&x);
            let _one = gate.lock().await;
            let still_idle = {
                let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
                used.get(&x).is_none_or(|at| at.elapsed() >= idle_after)
            };
            if !still_idle || !self.ownership.holds(&x) {
                continue;
            }
            let wake_at = hub.next_due(&x);
            hub.hand_back(&x).await;
            self.ownership.release(&x, wake_at).await;
            self.used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&x);
            gave += 1;
        }
        gave
    }

    /// Where `exchange` is served; a lease just taken is loaded into the hub before any
    /// request is served from it.
    async fn locate(&self, hub: &Arc<Hub>, exchange: &ExchangeId) -> Result<Where, String> {
        if self.ownership.holds(exchange) && hub.exchange(exchange).is_some() {
            return Ok(Where::Here);
        }
        self.locate_as(hub, exchange, None).await
    }

    /// [`Forwarding::locate`]; with `due_within`, for the sweep ([`Ownership::locate_due`]).
    async fn locate_as(
        &self,
        hub: &Arc<Hub>,
        exchange: &ExchangeId,
        due_within: Option<Duration>,
    ) -> Result<Where, String> {
        let gate = self.gate(exchange);
        let _one = gate.lock().await;
        if !self.ownership.holds(exchange) {
            // A state whose lease lapsed, or one dropped: its writer ends (what it has
            // queued is refused, or stored in its own epoch if the lease is renewed
            // meanwhile) before the lease may be taken anew here. Else that writer,
            // deciding on its own state, would write under the new epoch beside the
            // writer of the state read back.
            hub.hand_back(exchange).await;
        }
        let locate = || async {
            match due_within {
                Some(within) => self.ownership.locate_due(exchange, within).await,
                None => self.ownership.locate(exchange).await,
            }
        };
        let mut located = locate().await;
        if matches!(located, Ok(Located::Here)) && hub.exchange(exchange).is_none() {
            // Held, but its state was dropped (a lease that lapsed and was renewed after):
            // take it anew, so that it is read back under a new epoch.
            self.ownership.abandon(exchange);
            hub.settle(exchange).await;
            located = locate().await;
        }
        match located {
            Ok(Located::Here) => {
                if hub.exchange(exchange).is_some() {
                    Ok(Where::Here)
                } else {
                    Err(format!("exchange {exchange} is held here but not loaded"))
                }
            }
            Ok(Located::Taken(taken)) => {
                tracing::info!(exchange = %exchange, events = taken.events, "serving an exchange taken over");
                hub.adopt(*taken);
                self.touch(exchange);
                Ok(Where::Here)
            }
            Ok(Located::Idle) => Ok(Where::Idle),
            Ok(Located::There(url)) => {
                hub.drop_exchange(exchange);
                Ok(Where::There(url))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends the request to the owner at `url`. `None` when no connection could be made
    /// (nothing was sent: it may go elsewhere); a 503 when the owner took the request but
    /// did not answer in time (it may still act on it, as on any 503).
    async fn forward(
        &self,
        exchange: &ExchangeId,
        url: &str,
        head: &actix_web::HttpRequest,
        body: &web::Bytes,
    ) -> Option<HttpResponse> {
        let target = format!(
            "{}{}",
            url.trim_end_matches('/'),
            head.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let method = reqwest::Method::from_bytes(head.method().as_str().as_bytes()).ok()?;
        let mut out = self.client.request(method, &target);
        let mut chain: Vec<String> = Vec::new();
        for (name, value) in head.headers() {
            if name == "x-forwarded-for" {
                chain.extend(value.to_str().ok().map(str::to_owned));
            } else if !HOP_BY_HOP.contains(&name.as_str()) && name != "content-length" {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        out = out.header(FORWARDED_HEADER, self.ownership.url());
        // The client as this replica saw it, after whatever proxies it came through.
        if let Some(peer) = head.peer_addr() {
            chain.push(peer.ip().to_string());
        }
        if !chain.is_empty() {
            out = out.header("x-forwarded-for", chain.join(", "));
        }
        let send = tokio::time::timeout(answer_within(head), out.body(body.clone()).send());
        // A paused or cut-off owner never answers: stop waiting once its lease has moved.
        let moved = async {
            loop {
                tokio::time::sleep(self.ownership.period() / 2).await;
                if self.ownership.moved(exchange, url).await {
                    break;
                }
            }
        };
        let sent = tokio::select! {
            sent = send => sent,
            () = moved => {
                tracing::warn!(owner = url, "the owner lost its lease before answering a forwarded request");
                return Some(unavailable("the owner lost its lease"));
            }
        };
        let answer = match sent {
            Ok(Ok(answer)) if answer.headers().contains_key(NOT_OWNER_HEADER) => {
                tracing::debug!(
                    owner = url,
                    "the replica named in the lease is not the owner any more"
                );
                self.ownership.forget(exchange);
                return None;
            }
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_connect() => {
                tracing::debug!(owner = url, error = %e, "could not reach the owner");
                return None;
            }
            Ok(Err(e)) => {
                tracing::warn!(owner = url, error = %e, "the owner did not answer a forwarded request");
                return Some(unavailable("the owner failed to answer"));
            }
            Err(_) => {
                tracing::warn!(
                    owner = url,
                    "the owner did not answer a forwarded request in time"
                );
                return Some(unavailable("the owner did not answer in time"));
            }
        };
        let status = actix_web::http::StatusCode::from_u16(answer.status().as_u16()).ok()?;
        let mut back = HttpResponse::build(status);
        for (name, value) in answer.headers() {
            if HOP_BY_HOP.contains(&name.as_str()) || name == "content-length" {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_str().as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                back.append_header((n, v));
            }
        }
        let stream = answer
            .bytes_stream()
            .map_err(|e| actix_web::error::ErrorBadGateway(e.to_string()));
        Some(back.streaming(stream))
    }
}

/// How long the owner has to start answering a forwarded request: a request that may be
/// held (`?wait=`, an MCP call waiting for a person) gets the longest hold and some more.
fn answer_within(head: &actix_web::HttpRequest) -> Duration {
    let holds = head.query_string().contains("wait=") || head.path().contains("/mcp");
    if holds {
        Duration::from_secs(mess_api::query::MAX_WAIT_SECS + 15)
    } else {
        FORWARD_ANSWER_WITHIN
    }
}

enum Where {
    Here,
    There(String),
    /// Given back idle, nothing due soon: left (the sweep's answer only).
    Idle,
}

/// The exchange a request is for: `/api/v1/exchanges/{id}/…`, or the one a claim link
/// (`/a/{token}`) names (its signature is checked by the owner).
fn exchange_of(path: &str) -> Option<ExchangeId> {
    if let Some(rest) = path.strip_prefix("/api/v1/exchanges/") {
        return ExchangeId::parse(rest.split('/').next()?).ok();
    }
    let token = path.strip_prefix("/a/")?;
    mess_core::action_link::ActionLink::exchange_of(token)
}

/// The 503 that tells a forwarding replica this one is not the owner ([`NOT_OWNER_HEADER`]).
fn not_owner() -> HttpResponse {
    let mut res = unavailable("forwarded to a replica that is not the owner");
    res.headers_mut().insert(
        HeaderName::from_static(NOT_OWNER_HEADER),
        HeaderValue::from_static("1"),
    );
    res
}

/// The 503 a client retries.
fn unavailable(why: &str) -> HttpResponse {
    tracing::debug!(why, "answered 503 while an exchange changes hands");
    crate::respond(mess_api::routes::changing_hands())
}

/// The middleware: serve here, forward, or take (see the module's documentation).
pub async fn route(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let (Some(fwd), Some(exchange)) = (state.replicas.clone(), exchange_of(req.path())) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let forwarded = req.headers().contains_key(FORWARDED_HEADER);
    let started = std::time::Instant::now();
    let mut body: Option<web::Bytes> = None;
    loop {
        // Handing over, this replica serves only what it still holds: a request forwarded
        // here for anything else (one it was still taking, say) goes back at once, rather
        // than wait behind a taking that will not be kept.
        if forwarded && fwd.ownership.draining() && !fwd.ownership.holds(&exchange) {
            return Ok(req.into_response(not_owner()));
        }
        match fwd.locate(&state.hub, &exchange).await {
            Ok(Where::Here) => {
                if let Some(bytes) = body.take() {
                    req.set_payload(actix_web::dev::Payload::from(bytes));
                }
                let served_by = state.hub.exchange(&exchange);
                let mut res = next.call(req).await?.map_into_boxed_body();
                let same_state = match (&served_by, state.hub.exchange(&exchange)) {
                    (Some(before), Some(after)) => Arc::ptr_eq(before, &after),
                    _ => false,
                };
                if !fwd.ownership.holds(&exchange) || !same_state {
                    // The lease ran out while this was served, or the exchange's state was
                    // dropped or read back anew meanwhile (a request may then have found no
                    // exchange, and no member): its answer cannot be trusted. (The state
                    // stays: a renewal may still find the lease untouched; if another
                    // replica took it, the renewal drops it.)
                    let (req, _) = res.into_parts();
                    return Ok(ServiceResponse::new(
                        req,
                        unavailable("lease lost while serving"),
                    ));
                }
                fwd.touch(&exchange);
                if let Ok(v) = HeaderValue::from_str(fwd.ownership.url()) {
                    res.headers_mut()
                        .insert(HeaderName::from_static(REPLICA_HEADER), v);
                }
                return Ok(res);
            }
            // An earlier life of this replica (same address) held it: wait for it to lapse.
            // No address: an operator command (compact, members) holds it for a moment.
            Ok(Where::There(url)) if url == fwd.ownership.url() || url.is_empty() => {}
            // Forwarded here, but this replica does not serve it (any more): the forwarding
            // replica is told so at once, and looks again.
            _ if forwarded => return Ok(req.into_response(not_owner())),
            Ok(Where::There(url)) => {
                if body.is_none() {
                    let limit = state_body_limit(&req);
                    body = Some(read_body(&mut req, limit).await?);
                }
                let bytes = body.as_ref().cloned().unwrap_or_default();
                if let Some(res) = fwd.forward(&exchange, &url, req.request(), &bytes).await {
                    return Ok(req.into_response(res));
                }
            }
            // Only the sweep is told to leave an exchange; a request takes it.
            Ok(Where::Idle) => {}
            Err(e) => {
                tracing::warn!(exchange = %exchange, error = %e, "could not find the owner of an exchange");
            }
        }
        if started.elapsed() >= HANDOVER_WAIT {
            return Ok(req.into_response(unavailable("the owner cannot be reached")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn state_body_limit(req: &ServiceRequest) -> usize {
    req.app_data::<web::Data<crate::body::BodyLimit>>()
        .map_or(10 << 20, |l| l.0)
}

/// The request's body, at most `limit` bytes (more is 413, as the owner would answer).
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, actix_web::Error> {
    let mut payload = req.take_payload();
    let mut out = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(crate::error::HttpError(mess_api::ApiError::PayloadTooLarge(limit)).into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}
