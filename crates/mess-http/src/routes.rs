//! The handlers, one per route of the seed (plus health, attachments, capabilities): each
//! an actix extractor in and `mess-api`'s answer out. The `#[utoipa::path]` attributes are
//! the OpenAPI document.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use mess_api::routes;

use crate::api;
use crate::auth::Authed;
use crate::body::JsonBody;
use crate::error::{ErrorBody, HttpError};
use crate::respond;
use crate::state::AppState;

/// A segment of the matched path.
pub(crate) fn segment<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.match_info().get(name).unwrap_or_default()
}

/// Register a member (executor) and receive its API key, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/exchanges/{exchange_id}/register",
    params(api::ExchangePath),
    request_body = api::RegisterBody,
    responses(
        (status = 201, description = "Registered; save the key", body = api::RegisterResponse),
        (status = 400, description = "Invalid body or id", body = ErrorBody),
        (status = 409, description = "Executor already registered (code `already_registered`), or the id is the exchange's own, `exchange` (code `reserved_id`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(())
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, HttpError> {
    let exchange = routes::exchange_id(segment(&req, "exchange_id"))?;
    state.guard.admit_registration(&req, exchange.as_str())?;
    let handle = state.hub.exchange_or_create(&exchange);
    Ok(respond(routes::register(&*handle, &body.0).await?))
}

/// List threads, newest-updated first.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests",
    params(api::ExchangePath, api::ListQuery),
    responses(
        (status = 200, description = "A page of threads", body = api::ThreadList),
        (status = 400, description = "Invalid status, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_requests(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    Ok(respond(routes::list_requests(
        &*auth.exchange,
        req.query_string(),
    )?))
}

/// Create a request thread.
#[utoipa::path(
    post,
    path = "/api/v1/exchanges/{exchange_id}/requests",
    params(api::ExchangePath, ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[\x20-\x7E]{1,255}$", description = "1-255 printable ASCII characters: the same key again from the same member within 24 hours gets the first answer again (with Idempotent-Replayed: true) and does nothing new; with a different body, 422"),),
    request_body = api::CreateBody,
    responses(
        (status = 201, description = "Created (or, with Idempotent-Replayed: true, the first answer to this Idempotency-Key)", body = api::CreateResponse),
        (status = 400, description = "Invalid request, or a malformed Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "This Idempotency-Key was used with a different body (code `idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_request(
    auth: Authed,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, HttpError> {
    let key = idempotency_key(&req);
    Ok(respond(
        routes::create_request(&*auth.exchange, &auth.member, body.0, key).await?,
    ))
}

/// The `Idempotency-Key` header's bytes, if sent.
fn idempotency_key(req: &HttpRequest) -> Option<&[u8]> {
    req.headers().get("idempotency-key").map(|v| v.as_bytes())
}

/// Get one thread with its messages.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}",
    params(api::ExchangePath, api::RefPath, api::WaitQuery, ("If-None-Match" = Option<String>, Header, description = "An ETag of this thread from an earlier answer: 304 while the thread is still at that version")),
    responses(
        (status = 200, description = "The thread", body = api::ThreadResponse,
            headers(("ETag" = String, description = "The thread's version, quoted: send it back as If-None-Match to be told 304 when nothing changed"))),
        (status = 304, description = "Not modified: the thread is still at the version If-None-Match names",
            headers(("ETag" = String, description = "The thread's version, quoted"))),
        (status = 400, description = "Invalid ref", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 404, description = "Thread not found", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_request(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let if_none_match = req.headers().get("if-none-match").map(|v| v.as_bytes());
    Ok(respond(
        routes::get_request(
            &*auth.exchange,
            segment(&req, "ref"),
            req.query_string(),
            if_none_match,
        )
        .await?,
    ))
}

/// Change a thread's status and/or append a message.
#[utoipa::path(
    patch,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}",
    params(api::ExchangePath, api::RefPath, ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[\x20-\x7E]{1,255}$", description = "1-255 printable ASCII characters: the same key again from the same member within 24 hours gets the first answer again (with Idempotent-Replayed: true) and does nothing new; with a different body, 422"),),
    request_body = api::UpdateBody,
    responses(
        (status = 200, description = "Updated (or an allowed no-op; or, with Idempotent-Replayed: true, the first answer to this Idempotency-Key)", body = api::UpdateResponse),
        (status = 400, description = "Invalid status or blocks, or a malformed Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not allowed for this member", body = ErrorBody),
        (status = 404, description = "Thread not found", body = ErrorBody),
        (status = 409, description = "Transition not allowed (code `invalid_transition`, with from/to), claimed by another (`already_claimed`), or awaiting the requestor's confirmation (`confirmation_required`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "This Idempotency-Key was used with a different body (code `idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_request(
    auth: Authed,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, HttpError> {
    let r = segment(&req, "ref");
    let key = idempotency_key(&req);
    Ok(respond(
        routes::update_request(&*auth.exchange, &auth.member, r, body.0, key).await?,
    ))
}

/// Follow every change in the exchange as Server-Sent Events.
///
/// One event per stored event, in order: `id` is its position (`pos`), `event` its type,
/// `data` `{"pos", "ref", "version", "status", "actor", "type", "event"}` (`ref`, `version`
/// and `status` null for a member's event; attachments as links). Without a position the
/// stream starts at the head (a list answer's `pos`) and replays nothing; resume with
/// `Last-Event-ID` or `?since=`. A comment line every 15 s keeps proxies open; a consumer
/// more than 1024 events behind is closed (reconnect and resume).
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/events",
    params(
        api::ExchangePath,
        ("since" = Option<u64>, Query, description = "Resume after this position (as Last-Event-ID does)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position: the id of the last event received"),
    ),
    responses(
        (status = 200, description = "The stream (text/event-stream), open until the client or the server closes it", content_type = "text/event-stream", body = String),
        (status = 400, description = "Last-Event-ID or since is not a position", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 410, description = "The position is older than the feed keeps (code `position_too_old`, with `oldest`): read the threads again, then follow from the head", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn events(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let last = req.headers().get("last-event-id").map(|v| v.as_bytes());
    let sub = auth.exchange.feed().subscribe(last, req.query_string())?;
    Ok(HttpResponse::Ok()
        .content_type(mess_api::feed::EVENT_STREAM)
        .insert_header(("Cache-Control", "no-cache"))
        // nginx: pass each event on at once.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(crate::feed::stream(sub)))
}

/// Download an attachment of the thread (a `data:` URI in its messages, or a photo kept
/// as a blob), as bytes. Attachments are named by their position in the thread (`1`, `2`,
/// ...) or by the key they stand under (`image`, `file`...). `ETag` is the SHA-256 of the
/// bytes; a single byte range (`Range: bytes=...`) is answered 206.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}/attachments/{name}",
    params(
        api::ExchangePath,
        api::RefPath,
        ("name" = String, Path, description = "Position (1-based) or name of the attachment"),
        ("Range" = Option<String>, Header, description = "One byte range (bytes=0-1023, bytes=1024-, bytes=-500): answered 206; several ranges are answered whole"),
        ("If-None-Match" = Option<String>, Header, description = "The attachment's ETag from an earlier answer: 304"),
    ),
    responses(
        (status = 200, description = "The bytes, with their own MIME type (the data: URI's)", content_type = "*/*",
            headers(("ETag" = String, description = "The SHA-256 of the bytes, quoted"), ("Accept-Ranges" = String, description = "bytes"))),
        (status = 206, description = "The range asked for", content_type = "*/*",
            headers(("Content-Range" = String, description = "bytes start-end/length"), ("ETag" = String, description = "The SHA-256 of the whole attachment, quoted"))),
        (status = 304, description = "Not modified: the ETag If-None-Match names"),
        (status = 400, description = "Invalid ref", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 404, description = "No such thread or attachment", body = ErrorBody),
        (status = 416, description = "The range starts past the end (Content-Range: bytes */length)", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Storage did not answer (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_attachment(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let header = |name: &str| req.headers().get(name).map(|v| v.as_bytes());
    Ok(respond(
        routes::attachment(
            &*auth.exchange,
            segment(&req, "ref"),
            segment(&req, "name"),
            header("if-none-match"),
            header("range"),
        )
        .await?,
    ))
}

/// List the exchange's members.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/executors",
    params(api::ExchangePath),
    responses(
        (status = 200, description = "The members", body = api::ExecutorList),
        (status = 400, description = "Invalid exchange id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_executors(auth: Authed) -> Result<HttpResponse, HttpError> {
    Ok(respond(routes::list_executors(&*auth.exchange)?))
}

/// One member: its public view; for your own id, your whole profile (channels,
/// preferences, hooks) with every secret in it (URLs, topics, tokens) shown only as `"set"`.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/executors/{executor_id}",
    params(api::ExchangePath, api::ExecutorPath),
    responses(
        (status = 200, description = "The member (the whole profile when it is you)", body = api::ExecutorResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 404, description = "Executor not found", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_executor(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let id = segment(&req, "executor_id");
    Ok(respond(routes::get_executor(
        &*auth.exchange,
        &auth.member,
        id,
    )?))
}

/// Update your own profile.
#[utoipa::path(
    patch,
    path = "/api/v1/exchanges/{exchange_id}/executors/{executor_id}",
    params(api::ExchangePath, api::ExecutorPath),
    request_body = api::ProfileBody,
    responses(
        (status = 200, description = "The updated profile", body = api::ExecutorResponse),
        (status = 400, description = "Invalid body or id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not your profile, or key of another exchange", body = ErrorBody),
        (status = 404, description = "Executor not found", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_executor(
    auth: Authed,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, HttpError> {
    let id = segment(&req, "executor_id");
    Ok(respond(
        routes::update_executor(&*auth.exchange, &auth.member, id, &body.0).await?,
    ))
}

/// The capability catalog (`CAPABILITIES_FILE`), optionally filtered by tag.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/capabilities",
    params(api::ExchangePath, api::CapabilityQuery),
    responses(
        (status = 200, description = "The catalog", body = api::CapabilityList),
        (status = 400, description = "Invalid exchange id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn capabilities(
    _auth: Authed,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    Ok(respond(routes::capabilities(
        &state.capabilities,
        req.query_string(),
    )?))
}

/// Storage state: `ok`, or `degraded` while writes fail (the last one failed and a probe
/// write fails too). No authentication.
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "Healthy", body = api::Health),
        (status = 503, description = "Degraded: storage does not take writes", body = api::Health),
    ),
    security(())
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let hub = &state.hub;
    // Only probe storage when writes have been failing: a healthy server answers at once.
    let ok = hub.storage_ok() || hub.check_storage(Duration::from_secs(2)).await;
    let replica = state
        .replicas
        .as_ref()
        .map(|r| (r.ownership().url(), r.ownership().owned()));
    respond(routes::health_of_replica(
        ok,
        hub.storage_kind().as_str(),
        state.default_exchange.as_str(),
        replica,
    ))
}

/// Liveness: 200 while the process runs, whatever storage does. No authentication.
#[utoipa::path(
    get,
    path = "/livez",
    responses((status = 200, description = "The process answers", body = api::Liveness)),
    security(())
)]
pub async fn livez() -> HttpResponse {
    respond(routes::livez())
}

/// Readiness: 200 when the event log is replayed, storage takes a probe write and the last
/// write before it did not fail; 503 with the failing check otherwise. No authentication.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Ready for traffic", body = api::Readiness),
        (status = 503, description = "Not ready: see `checks`", body = api::Readiness),
    ),
    security(())
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let hub = &state.hub;
    // Read before the probe, which (when it passes) marks storage as writable again: a
    // failed write makes the next answer 503, and the probe's own write the one after.
    let writes = hub.storage_ok();
    let storage = hub.check_storage(Duration::from_secs(2)).await;
    respond(routes::readyz(routes::Readiness {
        // This state exists only once the log is replayed (`serve_starting` answers before).
        replayed: true,
        storage,
        writes,
    }))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
    security(())
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let streams: usize = state
        .hub
        .exchanges()
        .iter()
        .map(|h| h.feed().streams())
        .sum();
    metrics::gauge!("mess_feed_streams").set(streams as f64);
    metrics::gauge!("mess_exchanges").set(state.hub.exchanges().len() as f64);
    metrics::gauge!("mess_storage_ok").set(if state.hub.storage_ok() { 1.0 } else { 0.0 });
    crate::telemetry::record_process();
    for (status, n) in crate::hub::status_totals(&state.hub) {
        metrics::gauge!("mess_threads", "status" => status.as_str()).set(n as f64);
    }
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
