//! The handlers, one per route of the seed (plus health, attachments, capabilities).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use mess_core::mess::data_uris;
use mess_core::{
    Actor, Block, Command, Cursor, ExchangeId, ExecutorId, Member, NewRequest, Profile,
    Registration, Status, StatusUpdate, Thread, ThreadRef,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api;
use crate::auth::Authed;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::hub::Written;
use crate::state::AppState;

/// The default page size of a listing.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page size of a listing.
pub const MAX_LIMIT: usize = 500;

// The hot responses are serialized straight to bytes from these, never through a
// `serde_json::Value` (which copies every field, and parses every stored block again); GET,
// PATCH and list copy each thread's cached JSON (`Thread::summary_json`, `Thread::write_json`).

/// `POST /requests`, and the first fields of `PATCH /requests/{ref}`'s answer.
#[derive(Serialize)]
struct RefAndStatus<'a> {
    #[serde(rename = "ref")]
    thread_ref: &'a ThreadRef,
    status: Status,
}

fn thread_ref(raw: &str) -> Result<ThreadRef, ApiError> {
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || raw.len() > 64 {
        return Err(ApiError::bad("invalid thread ref"));
    }
    ThreadRef::parse(raw).map_err(|_| ApiError::NotFound("Thread not found".into()))
}

fn executor_view(member: &Member, last_seen: mess_core::Timestamp) -> Value {
    json!({
        "id": member.executor_id,
        "display_name": member.display_name,
        "capabilities": member.capabilities,
        "last_seen": last_seen,
        "created_at": member.created_at,
    })
}

/// Register a member (executor) and receive its API key, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/exchanges/{exchange_id}/register",
    tag = "executors",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    request_body = api::RegisterBody,
    responses(
        (status = 201, description = "Registered; save the key", body = api::RegisterResponse),
        (status = 400, description = "Invalid body or id", body = ErrorBody),
        (status = 409, description = "Executor already registered", body = ErrorBody),
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
) -> Result<HttpResponse, ApiError> {
    let exchange = ExchangeId::parse(req.match_info().get("exchange_id").unwrap_or_default())?;
    state.guard.admit_registration(&req, exchange.as_str())?;
    let reg = Registration::parse(&body.0)?;
    state.hub.notifier().validate(&reg.profile)?;
    let actor = Actor::Member(reg.executor_id.clone());
    let handle = state.hub.exchange_or_create(&exchange);
    match handle.submit(actor, Command::Register(reg)).await? {
        Written::Registered { member, api_key } => Ok(HttpResponse::Created().json(json!({
            "executor_id": member.executor_id,
            "api_key": api_key.expose(),
            "message": "Save this API key - it cannot be retrieved again.",
        }))),
        _ => Err(ApiError::Internal),
    }
}

/// Query parameters of a listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only threads with this status (aliases accepted).
    #[param(value_type = Option<api::StatusInput>)]
    status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List threads, newest-updated first.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests",
    tag = "requests",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ListQuery),
    responses(
        (status = 200, description = "A page of threads", body = api::ThreadList),
        (status = 400, description = "Invalid status, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_requests(
    auth: Authed,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    // An empty `status=` or `limit=` is not a status or an integer: 400, as documented.
    let status = query.status.as_deref().map(Status::parse).transpose()?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
            })?,
    };
    let cursor = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Cursor::decode)
        .transpose()?;
    let (page, next) = auth
        .exchange
        .read(|x| x.list(status, cursor.as_ref(), limit));
    // `{"threads":[...],"next_cursor":...}`, each entry the thread's cached summary JSON
    // (exactly what serializing the summaries would write).
    let cursor =
        serde_json::to_string(&next.map(|c| c.encode())).map_err(|_| ApiError::Internal)?;
    let entries: usize = page.iter().map(|t| t.summary_json().len() + 1).sum();
    let mut body = Vec::with_capacity(entries + cursor.len() + 32);
    body.extend_from_slice(b"{\"threads\":[");
    for (n, t) in page.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(t.summary_json().as_bytes());
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    body.extend_from_slice(cursor.as_bytes());
    body.push(b'}');
    Ok(json_response(body))
}

/// Create a request thread.
#[utoipa::path(
    post,
    path = "/api/v1/exchanges/{exchange_id}/requests",
    tag = "requests",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
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
pub async fn create_request(auth: Authed, body: JsonBody) -> Result<HttpResponse, ApiError> {
    let req = NewRequest::parse(body.0)?;
    let actor = Actor::Member(auth.member.executor_id.clone());
    match auth.exchange.submit(actor, Command::Create(req)).await? {
        Written::Thread(t) => Ok(HttpResponse::Created().json(RefAndStatus {
            thread_ref: &t.thread_ref,
            status: t.status,
        })),
        _ => Err(ApiError::Internal),
    }
}

/// Get one thread with its messages.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}",
    tag = "requests",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("ref" = String, Path, description = "The thread ref", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Z0-9]{4,16}$")),
    responses(
        (status = 200, description = "The thread", body = api::ThreadResponse),
        (status = 400, description = "Invalid ref", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 404, description = "Thread not found", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_request(auth: Authed, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let r = thread_ref(req.match_info().get("ref").unwrap_or_default())?;
    let t = auth
        .exchange
        .read(|x| x.thread(&r).cloned())
        .ok_or_else(|| ApiError::NotFound("Thread not found".into()))?;
    Ok(thread_response(b"{", &t))
}

/// A 200 whose JSON object ends with `"thread":` and the thread, its cached head and
/// stored messages copied in (`Thread::write_json`); `open` is the object up to there.
fn thread_response(open: &[u8], t: &Thread) -> HttpResponse {
    let mut body = Vec::with_capacity(open.len() + t.messages.as_json().len() + 512);
    body.extend_from_slice(open);
    body.extend_from_slice(b"\"thread\":");
    t.write_json(&mut body);
    body.push(b'}');
    json_response(body)
}

/// A 200 with a JSON body already written.
fn json_response(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// Change a thread's status and/or append a message.
#[utoipa::path(
    patch,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}",
    tag = "requests",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("ref" = String, Path, description = "The thread ref", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Z0-9]{4,16}$")),
    request_body = api::UpdateBody,
    responses(
        (status = 200, description = "Updated (or an allowed no-op)", body = api::UpdateResponse),
        (status = 400, description = "Invalid status or blocks", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not allowed for this member", body = ErrorBody),
        (status = 404, description = "Thread not found", body = ErrorBody),
        (status = 409, description = "Transition not allowed (from/to), or claimed by another", body = ErrorBody),
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
) -> Result<HttpResponse, ApiError> {
    let r = thread_ref(req.match_info().get("ref").unwrap_or_default())?;
    let mut fields = match body.0 {
        Value::Object(m) => m,
        _ => return Err(ApiError::bad("the body must be a JSON object")),
    };
    let status = match fields.remove("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Status::parse(&s)?),
        Some(_) => return Err(ApiError::bad("status must be a string")),
    };
    let mess = match fields.remove("mess") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Block::parse_list(&v)?),
    };
    if status.is_none() && mess.is_none() {
        return Err(ApiError::bad("send status and/or mess"));
    }
    let status = status.map(|to| StatusUpdate { to, extra: fields });
    let actor = Actor::Member(auth.member.executor_id.clone());
    match auth
        .exchange
        .submit(
            actor,
            Command::Update {
                thread: r,
                status,
                mess,
            },
        )
        .await?
    {
        Written::Thread(t) => {
            // `{"ref":...,"status":...,"thread":...}`.
            let head = serde_json::to_vec(&RefAndStatus {
                thread_ref: &t.thread_ref,
                status: t.status,
            })
            .map_err(|_| ApiError::Internal)?;
            let open = [head.strip_suffix(b"}").unwrap_or(&head), b","].concat();
            Ok(thread_response(&open, &t))
        }
        _ => Err(ApiError::Internal),
    }
}

/// Download an attachment (a `data:` URI in the thread's messages), decoded. Attachments
/// are named by their position in the thread (`1`, `2`, ...) or by the `name`/`filename`
/// beside them.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/requests/{ref}/attachments/{name}",
    tag = "requests",
    params(
        ("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"),
        ("ref" = String, Path, description = "The thread ref", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Z0-9]{4,16}$"),
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
pub async fn get_attachment(auth: Authed, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let r = thread_ref(req.match_info().get("ref").unwrap_or_default())?;
    let name = req.match_info().get("name").unwrap_or_default();
    let t = auth
        .exchange
        .read(|x| x.thread(&r).cloned())
        .ok_or_else(|| ApiError::NotFound("Thread not found".into()))?;
    let not_found = || ApiError::NotFound("Attachment not found".into());
    let mut found = None;
    let mut n = 0usize;
    for m in &t.messages {
        for (label, uri) in data_uris(&m.mess) {
            n += 1;
            if name == n.to_string() || name == label {
                found = Some(uri.to_owned());
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    let uri = found.ok_or_else(not_found)?;
    let (mime, bytes) = mess_core::wire::decode_data_uri(&uri).ok_or_else(not_found)?;
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header(("Content-Disposition", "attachment"))
        .body(bytes))
}

/// List the exchange's members.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/executors",
    tag = "executors",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 200, description = "The members", body = api::ExecutorList),
        (status = 400, description = "Invalid exchange id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Key of another exchange", body = ErrorBody),
        (status = 429, description = "Too many registrations or failed authentications from this client (see Retry-After)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_executors(auth: Authed) -> Result<HttpResponse, ApiError> {
    let mut members: Vec<_> = auth.exchange.read(|x| x.members().cloned().collect());
    members.sort_by(|a, b| a.executor_id.cmp(&b.executor_id));
    let views: Vec<Value> = members
        .iter()
        .map(|m| executor_view(m, auth.exchange.last_seen(m)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "executors": views })))
}

/// Update your own profile.
#[utoipa::path(
    patch,
    path = "/api/v1/exchanges/{exchange_id}/executors/{executor_id}",
    tag = "executors",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("executor_id" = String, Path, description = "Your executor id", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)*\\.?$", max_length = 64)),
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
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let target = ExecutorId::parse(req.match_info().get("executor_id").unwrap_or_default())?;
    let profile = Profile::parse(&body.0)?;
    state.hub.notifier().validate(&profile)?;
    let actor = Actor::Member(auth.member.executor_id.clone());
    let cmd = Command::UpdateProfile {
        executor: target,
        profile,
    };
    match auth.exchange.submit(actor, cmd).await? {
        Written::ProfileUpdated(m) => Ok(HttpResponse::Ok()
            .json(json!({ "executor": executor_view(&m, auth.exchange.last_seen(&m)) }))),
        _ => Err(ApiError::Internal),
    }
}

/// Query parameters of the capability catalog.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CapabilityQuery {
    /// Only capabilities with this tag.
    tag: Option<String>,
}

/// The capability catalog (`CAPABILITIES_FILE`), optionally filtered by tag.
#[utoipa::path(
    get,
    path = "/api/v1/exchanges/{exchange_id}/capabilities",
    tag = "executors",
    params(("exchange_id" = String, Path, description = "The exchange", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), CapabilityQuery),
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
    query: web::Query<CapabilityQuery>,
) -> Result<HttpResponse, ApiError> {
    let items: Vec<&Value> = state
        .capabilities
        .iter()
        .filter(|c| match &query.tag {
            None => true,
            Some(tag) => c
                .get("tags")
                .and_then(Value::as_array)
                .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag))),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "capabilities": items })))
}

/// Liveness and storage state. No authentication.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
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
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "service": "mess-exchange",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": hub.storage_kind(),
        "exchange_id": state.default_exchange,
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(code).json(body)
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
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
