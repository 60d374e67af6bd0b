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
    params(api::ExchangePath),
    request_body = api::CreateBody,
    responses(
        (status = 201, description = "Created", body = api::CreateResponse),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_request(auth: Authed, body: JsonBody) -> Result<HttpResponse, HttpError> {
    Ok(respond(
        routes::create_request(&*auth.exchange, &auth.member, body.0).await?,
    ))
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
    params(api::ExchangePath, api::RefPath),
    request_body = api::UpdateBody,
    responses(
        (status = 200, description = "Updated (or an allowed no-op)", body = api::UpdateResponse),
        (status = 400, description = "Invalid status or blocks", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not allowed for this member", body = ErrorBody),
        (status = 404, description = "Thread not found", body = ErrorBody),
        (status = 409, description = "Transition not allowed (code `invalid_transition`, with from/to), claimed by another (`already_claimed`), or awaiting the requestor's confirmation (`confirmation_required`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
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
    Ok(respond(
        routes::update_request(&*auth.exchange, &auth.member, r, body.0).await?,
    ))
}

/// Download an attachment (a `data:` URI in the thread's messages), decoded. Attachments
/// are named by their position in the thread (`1`, `2`, ...) or by the `name`/`filename`
/// beside them.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}/attachments/{name}",
    params(
        api::ExchangePath,
        api::RefPath,
        ("name" = String, Path, description = "Position (1-based) or name of the attachment"),
    ),
    responses(
        (status = 200, description = "The decoded bytes, with their own MIME type (the data: URI's)", content_type = "*/*"),
        (status = 400, description = "Invalid ref", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 404, description = "No such thread or attachment", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_attachment(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    Ok(respond(routes::attachment(
        &*auth.exchange,
        segment(&req, "ref"),
        segment(&req, "name"),
    )?))
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

/// Liveness and storage state. No authentication.
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "Healthy", body = api::Health),
        (status = 503, description = "Storage unreachable", body = api::Health),
    ),
    security(())
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let hub = &state.hub;
    // Only probe storage when writes have been failing: a healthy server answers at once.
    let ok = hub.storage_ok() || hub.check_storage(Duration::from_secs(2)).await;
    respond(routes::health(
        ok,
        hub.storage_kind().as_str(),
        state.default_exchange.as_str(),
    ))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
    security(())
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
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
