//! One function per route: parse, authorize, decide (through the port's commit), view.
//! Authentication is the host's first step ([`crate::auth`]); each function here gets the
//! member it found, and the raw path segments, query string and parsed JSON body.

use std::sync::Arc;

use mess_core::{
    Actor, Block, Command, ExchangeId, ExecutorId, Member, NewRequest, Profile, Registration,
    Status, StatusUpdate, Thread, ThreadRef,
};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::idempotency::idempotent;
use crate::port::{ExchangePort, Written};
use crate::query::{CapabilityQuery, ListQuery, WaitQuery};
use crate::reply::Reply;
use crate::views::{self, RefAndStatus};

/// A thread ref from the path: 400 for characters no ref has, 404 for a ref that cannot
/// exist.
pub fn thread_ref(raw: &str) -> Result<ThreadRef, ApiError> {
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || raw.len() > 74 {
        return Err(ApiError::bad("invalid thread ref"));
    }
    ThreadRef::parse(raw).map_err(|_| ApiError::not_found("Thread"))
}

/// An exchange id from the path (400 when malformed).
pub fn exchange_id(raw: &str) -> Result<ExchangeId, ApiError> {
    Ok(ExchangeId::parse(raw)?)
}

fn actor(me: &Member) -> Actor {
    Actor::Member(me.executor_id.clone())
}

fn thread<P: ExchangePort>(x: &P, r: &ThreadRef) -> Result<Arc<Thread>, ApiError> {
    x.read(|s| s.thread(r).cloned())
        .ok_or_else(|| ApiError::not_found("Thread"))
}

/// A commit whose answer is not the kind its command makes: a bug in the host.
fn unexpected(w: Written) -> ApiError {
    debug_assert!(false, "unexpected write result: {w:?}");
    ApiError::Internal
}

/// `POST /register`: join the exchange; the key is in the answer, once. (The host checks
/// the registration token and its rate limits first.)
pub async fn register<P: ExchangePort>(x: &P, body: &Value) -> Result<Reply, ApiError> {
    let reg = Registration::parse(body)?;
    x.validate(&reg.profile)?;
    let actor = Actor::Member(reg.executor_id.clone());
    match x.commit(actor, Command::Register(reg)).await? {
        Written::Registered { member, api_key } => Ok(Reply::json(
            201,
            &json!({
                "executor_id": member.executor_id,
                "api_key": api_key.expose(),
                "message": "Save this API key - it cannot be retrieved again.",
            }),
        )),
        w => Err(unexpected(w)),
    }
}

/// `GET /requests`: a page of threads, newest-updated first.
pub fn list_requests<P: ExchangePort>(x: &P, query: &str) -> Result<Reply, ApiError> {
    let q = ListQuery::parse(query)?;
    let (page, next, head) = x.read(|s| {
        let (page, next) = s.list(q.status, q.cursor.as_ref(), q.limit);
        (page, next, s.head())
    });
    let body = views::thread_list(&page, next.map(|c| c.encode()), head);
    Ok(Reply::json_bytes(200, body))
}

/// `POST /requests`: a new thread from `me`, once per `Idempotency-Key` (the header's
/// value, if any).
pub async fn create_request<P: ExchangePort>(
    x: &P,
    me: &Member,
    body: Value,
    idempotency_key: Option<&[u8]>,
) -> Result<Reply, ApiError> {
    let run = async |mut body| {
        // The intent is shown in lists, which never restore attachments: it stays inline.
        let blobs = crate::blobs::take(&mut body, &["intent"])?;
        let req = NewRequest::parse(body)?;
        crate::blobs::put(x, &blobs).await?;
        match x.commit(actor(me), Command::Create(req)).await? {
            Written::Thread(t) => Ok(Reply::json(
                201,
                &RefAndStatus {
                    thread_ref: &t.thread_ref,
                    status: t.status,
                },
            )),
            w => Err(unexpected(w)),
        }
    };
    idempotent(
        x,
        &me.executor_id,
        "POST",
        "requests",
        idempotency_key,
        body,
        run,
    )
    .await
}

/// `GET /requests/{ref}`: one thread with its messages, and `ETag: "<version>"`; 304 with
/// no body when `If-None-Match` (the request's header value, if any) names that version.
/// With `?wait=N` (and `since=V`, default the current version), the answer waits until
/// the version is above V or N seconds pass, then is the thread as it is (never a 304).
/// Attachments come as `data:` URIs, or with `?attachments=links` as links to the
/// attachment route (`ETag: "<version>-links"`).
pub async fn get_request<P: ExchangePort>(
    x: &P,
    raw_ref: &str,
    query: &str,
    if_none_match: Option<&[u8]>,
) -> Result<Reply, ApiError> {
    let r = thread_ref(raw_ref)?;
    let wait = WaitQuery::parse(query)?;
    let links = crate::query::AttachmentsQuery::parse(query)?.links;
    let mut t = thread(x, &r)?;
    if let Some(wait) = wait {
        let since = wait.since.unwrap_or(t.version);
        if t.version <= since && !wait.wait.is_zero() {
            x.changed(&r, since, wait.wait).await;
            t = thread(x, &r)?;
        }
    }
    let etag = if links {
        format!("\"{}-links\"", t.version)
    } else {
        format!("\"{}\"", t.version)
    };
    let not_modified = wait.is_none() && if_none_match.is_some_and(|h| etag_matches(h, &etag));
    let mut reply = if not_modified {
        Reply {
            status: 304,
            content_type: crate::reply::JSON.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    } else {
        let body = views::thread_object(b"{", &t);
        let body = if links {
            crate::blobs::as_links(&body, &crate::blobs::link_base(x.id(), r.as_str()))
        } else {
            crate::blobs::restore(x, body).await?
        };
        Reply::json_bytes(200, body)
    };
    reply.headers.push(("ETag", etag));
    Ok(reply)
}

/// Whether an `If-None-Match` value names `etag`: `*`, or a comma-separated list of tags,
/// weak (`W/"3"`) or strong, compared by their opaque part (RFC 9110's weak comparison).
pub(crate) fn etag_matches(header: &[u8], etag: &str) -> bool {
    let Ok(header) = std::str::from_utf8(header) else {
        return false;
    };
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The PATCH `status` value that asks for a revision: never a thread status itself.
const REVISION_REQUESTED: &str = "revision_requested";

/// `{"status": "revision_requested", "reason": "..."}`: the reason is required.
fn revision_command(
    r: ThreadRef,
    mut fields: serde_json::Map<String, Value>,
    window_ms: i64,
) -> Result<Command, ApiError> {
    fields.remove("status");
    let reason = match fields.remove("reason") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        _ => {
            return Err(ApiError::bad(
                "a revision needs a reason: {\"status\": \"revision_requested\", \"reason\": \"...\"}",
            ));
        }
    };
    let mess = match fields.remove("mess") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Block::parse_list(&v)?),
    };
    Ok(Command::RequestRevision {
        thread: r,
        reason,
        window_ms,
        extra: fields,
        mess,
    })
}

/// A PATCH body: `status` (aliases accepted) with the status block's other fields beside
/// it, and/or `mess`.
fn update_command(r: ThreadRef, body: Value, window_ms: i64) -> Result<Command, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad("the body must be a JSON object"));
    };
    if fields.get("status").and_then(Value::as_str) == Some(REVISION_REQUESTED) {
        return revision_command(r, fields, window_ms);
    }
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
    Ok(Command::Update {
        thread: r,
        status: status.map(|to| StatusUpdate { to, extra: fields }),
        mess,
    })
}

/// `PATCH /requests/{ref}`: change the status and/or append a message, once per
/// `Idempotency-Key` (the header's value, if any).
pub async fn update_request<P: ExchangePort>(
    x: &P,
    me: &Member,
    raw_ref: &str,
    body: Value,
    idempotency_key: Option<&[u8]>,
) -> Result<Reply, ApiError> {
    let r = thread_ref(raw_ref)?;
    let route = format!("requests/{r}");
    let run = async |mut body| {
        let blobs = crate::blobs::take(&mut body, &[])?;
        let cmd = update_command(r, body, x.review_window_ms())?;
        crate::blobs::put(x, &blobs).await?;
        match x.commit(actor(me), cmd).await? {
            // With references: what an Idempotency-Key keeps (in memory for a day) stays
            // small; the photos are put back below, for the first answer and every replay.
            Written::Thread(t) => Ok(Reply::json_bytes(200, views::updated_thread(&t))),
            w => Err(unexpected(w)),
        }
    };
    let mut reply = idempotent(
        x,
        &me.executor_id,
        "PATCH",
        &route,
        idempotency_key,
        body,
        run,
    )
    .await?;
    if reply.status == 200 {
        reply.body = crate::blobs::restore(x, reply.body).await?;
    }
    Ok(reply)
}

/// `GET /requests/{ref}/attachments/{name}`: one attachment of the thread (a `data:` URI or
/// a stored blob), as bytes, named by its position (`1`, `2`...) or by the key it stands
/// under. `ETag` is the bytes' SHA-256 (304 to a matching `If-None-Match`); a single
/// `Range` is answered 206 (416 past the end).
pub async fn attachment<P: ExchangePort>(
    x: &P,
    raw_ref: &str,
    name: &str,
    if_none_match: Option<&[u8]>,
    range: Option<&[u8]>,
) -> Result<Reply, ApiError> {
    let t = thread(x, &thread_ref(raw_ref)?)?;
    let a = crate::blobs::attachment(x, &t, name)
        .await?
        .ok_or_else(|| ApiError::not_found("Attachment"))?;
    let mut headers = vec![
        ("Content-Disposition", "attachment".into()),
        ("Accept-Ranges", "bytes".into()),
        ("ETag", a.etag.clone()),
        // The bytes behind a name never change: a client may keep them.
        ("Cache-Control", "private, max-age=86400".into()),
    ];
    if if_none_match.is_some_and(|h| etag_matches(h, &a.etag)) {
        return Ok(Reply {
            status: 304,
            content_type: a.mime,
            headers,
            body: Vec::new(),
        });
    }
    let len = a.bytes.len() as u64;
    let (status, body) = match crate::blobs::range(range, len)? {
        Some((start, end)) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{len}")));
            // Both ends lie within the bytes (`range` clamps them).
            let part = a.bytes[start as usize..=end as usize].to_vec();
            (206, part)
        }
        None => (200, a.bytes.to_vec()),
    };
    Ok(Reply {
        status,
        content_type: a.mime,
        headers,
        body,
    })
}

/// `GET /executors`: every member, by id.
pub fn list_executors<P: ExchangePort>(x: &P) -> Result<Reply, ApiError> {
    let mut members: Vec<Arc<Member>> = x.read(|s| s.members().cloned().collect());
    members.sort_by(|a, b| a.executor_id.cmp(&b.executor_id));
    let views: Vec<Value> = members
        .iter()
        .map(|m| views::executor(m, x.last_seen(m)))
        .collect();
    Ok(Reply::json(200, &json!({ "executors": views })))
}

/// `GET /executors/{id}`: a member's public view; for one's own id, the whole profile with
/// its secrets shown only as set.
pub fn get_executor<P: ExchangePort>(x: &P, me: &Member, raw_id: &str) -> Result<Reply, ApiError> {
    let id = ExecutorId::parse(raw_id)?;
    let member = x
        .read(|s| s.member(&id).cloned())
        .ok_or_else(|| ApiError::not_found("Executor"))?;
    let seen = x.last_seen(&member);
    let view = if member.executor_id == me.executor_id {
        views::own_profile(&member, seen)
    } else {
        views::executor(&member, seen)
    };
    Ok(Reply::json(200, &json!({ "executor": view })))
}

/// `PATCH /executors/{id}`: change one's own profile.
pub async fn update_executor<P: ExchangePort>(
    x: &P,
    me: &Member,
    raw_id: &str,
    body: &Value,
) -> Result<Reply, ApiError> {
    let executor = ExecutorId::parse(raw_id)?;
    let kept;
    let body = if executor == me.executor_id {
        kept = keep_channels(x, me, body)?;
        kept.as_ref().unwrap_or(body)
    } else {
        body
    };
    let profile = Profile::parse(body)?;
    x.validate(&profile)?;
    let cmd = Command::UpdateProfile { executor, profile };
    match x.commit(actor(me), cmd).await? {
        Written::ProfileUpdated(m) => Ok(Reply::json(
            200,
            &json!({ "executor": views::executor(&m, x.last_seen(&m)) }),
        )),
        w => Err(unexpected(w)),
    }
}

/// A profile PATCH's channels with each `{"keep": N}` replaced by the member's stored
/// channel N (0-based, as `GET .../executors/{own id}` lists them): how a client that sees
/// only `"set"` for URLs, topics and secrets keeps a channel unchanged while it edits the
/// list. `None` when the body keeps none; 400 for an N the member does not have.
fn keep_channels<P: ExchangePort>(
    x: &P,
    me: &Member,
    body: &Value,
) -> Result<Option<Value>, ApiError> {
    let Some(Value::Array(items)) = body.get("notifications") else {
        return Ok(None);
    };
    if !items.iter().any(|c| c.get("keep").is_some()) {
        return Ok(None);
    }
    let stored = x
        .read(|s| s.member(&me.executor_id).cloned())
        .map(|m| m.notifications.clone())
        .unwrap_or_default();
    let channels = items
        .iter()
        .map(|c| match c.get("keep") {
            None => Ok(c.clone()),
            Some(n) => n
                .as_u64()
                .and_then(|n| stored.get(usize::try_from(n).ok()?))
                .and_then(|ch| serde_json::to_value(ch).ok())
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "keep: {n} names none of your {} channels (0-based)",
                        stored.len()
                    ))
                }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = body.clone();
    body["notifications"] = Value::Array(channels);
    Ok(Some(body))
}

/// `POST /executors/{id}/rotate-key`: replace one's own key; the new one is shown once.
pub async fn rotate_key<P: ExchangePort>(
    x: &P,
    me: &Member,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let executor = ExecutorId::parse(raw_id)?;
    match x.commit(actor(me), Command::RotateKey { executor }).await? {
        Written::KeyRotated { member, api_key } => Ok(Reply::json(
            200,
            &json!({
                "executor_id": member.executor_id,
                "api_key": api_key.expose(),
                "message": "Save this API key - it cannot be retrieved again. The old key no longer works.",
            }),
        )),
        w => Err(unexpected(w)),
    }
}

/// `DELETE /executors/{id}`: leave the exchange.
pub async fn remove_executor<P: ExchangePort>(
    x: &P,
    me: &Member,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let executor = ExecutorId::parse(raw_id)?;
    // Leaving hands back what one holds: each claimed or active thread goes back to
    // `pending` as the exchange's own move (`reason: member_removed`), before the member
    // goes, so no request waits forever on someone who left. (Only one's own: removing
    // anyone else is refused below, and nothing is released for it.)
    if executor == me.executor_id {
        for thread in x.read(|s| s.held_by(&executor)) {
            let cmd = Command::ReleaseClaim {
                thread,
                executor: executor.clone(),
            };
            match x.commit(mess_core::Actor::Exchange, cmd).await {
                // A conflict: the thread moved on meanwhile, nothing to hand back.
                Ok(_) | Err(ApiError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    match x.commit(actor(me), Command::Remove { executor }).await? {
        Written::Removed(m) => Ok(Reply::json(
            200,
            &json!({ "executor_id": m.executor_id, "removed": true }),
        )),
        w => Err(unexpected(w)),
    }
}

/// `POST /executors/{id}/test-notification`: one test notification to each of one's own
/// channels, and each one's result (`{"results": [{"channel", "ok", "http_status"?,
/// "error"?}]}`, no URL or secret in it); 403 for anyone else's id.
pub async fn test_notification<P: ExchangePort>(
    x: &P,
    me: &Member,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let executor = ExecutorId::parse(raw_id)?;
    if executor != me.executor_id {
        return Err(ApiError::Forbidden(
            "a test notification goes only to your own channels".into(),
        ));
    }
    let results = x.test_notification(me).await?;
    Ok(Reply::json(200, &json!({ "results": results })))
}

/// `GET /capabilities`: the catalog (`CAPABILITIES_FILE` on the binary), by `tag`.
pub fn capabilities(catalog: &[Value], query: &str) -> Result<Reply, ApiError> {
    let q = CapabilityQuery::parse(query)?;
    let items: Vec<&Value> = catalog
        .iter()
        .filter(|c| match &q.tag {
            None => true,
            Some(tag) => c
                .get("tags")
                .and_then(Value::as_array)
                .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag))),
        })
        .collect();
    Ok(Reply::json(200, &json!({ "capabilities": items })))
}

/// `GET /health`: 200 `ok`, or 503 `degraded` while storage does not answer.
pub fn health(storage_ok: bool, storage: &str, default_exchange: &str) -> Reply {
    health_of_replica(storage_ok, storage, default_exchange, None)
}

/// [`health`] of one replica of several on a bucket: with `replica`, its advertised URL
/// and how many exchanges it holds (`"replica": {"url", "owned"}`).
pub fn health_of_replica(
    storage_ok: bool,
    storage: &str,
    default_exchange: &str,
    replica: Option<(&str, usize)>,
) -> Reply {
    let mut body = json!({
        "status": if storage_ok { "ok" } else { "degraded" },
        "service": "mess-exchange",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": storage,
        "exchange_id": default_exchange,
    });
    if let Some((url, owned)) = replica {
        body["replica"] = json!({"url": url, "owned": owned});
    }
    Reply::json(if storage_ok { 200 } else { 503 }, &body)
}

/// `GET /livez`: 200 while the process runs, whatever storage does: a liveness probe
/// restarts the process only when it no longer answers at all.
pub fn livez() -> Reply {
    Reply::json(
        200,
        &json!({
            "status": "alive",
            "service": "mess-exchange",
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// What `/readyz` checks, each `true` when it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The event log has been replayed into memory (false while the server starts).
    pub replayed: bool,
    /// Storage answered a check, which writes and removes a probe, just now.
    pub storage: bool,
    /// The last write before that check (a request's, or an earlier check's) did not fail.
    pub writes: bool,
}

impl Readiness {
    /// While the event log is replayed: nothing else is known yet.
    pub const STARTING: Self = Self {
        replayed: false,
        storage: false,
        writes: false,
    };

    /// Every check passes.
    pub fn ready(self) -> bool {
        self.replayed && self.storage && self.writes
    }
}

/// `GET /readyz`: 200 `ready` when every check of `r` passes, else 503 `not_ready`; both
/// with each check, so the probe's log says which one failed.
pub fn readyz(r: Readiness) -> Reply {
    Reply::json(
        if r.ready() { 200 } else { 503 },
        &json!({
            "status": if r.ready() { "ready" } else { "not_ready" },
            "checks": {
                "replayed": r.replayed,
                "storage": r.storage,
                "writes": r.writes,
            },
        }),
    )
}

/// 503 while an exchange changes hands between replicas (its owner restarting or
/// unreachable, its lease being taken): retried in a second, as any 503.
pub fn changing_hands() -> Reply {
    let mut reply = Reply::json(
        503,
        &ErrorBody::new(
            ErrorCode::StorageUnavailable,
            "this exchange is moving between replicas; try again in a second",
        ),
    );
    reply.headers.push(("Retry-After", "1".into()));
    reply
}

/// Any route but the probes while the event log is replayed: 503 `storage_unavailable`
/// with `Retry-After` (nothing was done; try again).
pub fn starting() -> Reply {
    let mut reply = Reply::json(
        503,
        &ErrorBody::new(
            ErrorCode::StorageUnavailable,
            "the server is starting (replaying the event log); try again",
        ),
    );
    reply.headers.push(("Retry-After", "5".into()));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap_or_default()
    }

    #[test]
    fn readyz_is_200_only_when_every_check_passes_and_names_each() {
        let all = Readiness {
            replayed: true,
            storage: true,
            writes: true,
        };
        let ready = readyz(all);
        assert_eq!(ready.status, 200);
        assert_eq!(body(&ready)["status"], "ready");
        for not in [
            Readiness {
                replayed: false,
                ..all
            },
            Readiness {
                storage: false,
                ..all
            },
            Readiness {
                writes: false,
                ..all
            },
            Readiness::STARTING,
        ] {
            let reply = readyz(not);
            assert_eq!(reply.status, 503, "{not:?}");
            let b = body(&reply);
            assert_eq!(b["status"], "not_ready");
            assert_eq!(b["checks"]["replayed"], not.replayed);
            assert_eq!(b["checks"]["storage"], not.storage);
            assert_eq!(b["checks"]["writes"], not.writes);
        }
    }

    #[test]
    fn livez_is_always_200_and_starting_is_a_json_503_to_retry() {
        let live = livez();
        assert_eq!(
            (live.status, body(&live)["status"].clone()),
            (200, json!("alive"))
        );
        let s = starting();
        assert_eq!(s.status, 503);
        assert_eq!(body(&s)["code"], "storage_unavailable");
        assert!(s.headers.iter().any(|(h, _)| *h == "Retry-After"));
    }

    #[test]
    fn if_none_match_names_a_version_strongly_weakly_in_a_list_or_as_any() {
        for header in [r#""3""#, r#"W/"3""#, r#""1", "3""#, "*"] {
            assert!(etag_matches(header.as_bytes(), r#""3""#), "{header}");
        }
        for header in [r#""2""#, "3", r#""3"x"#, ""] {
            assert!(!etag_matches(header.as_bytes(), r#""3""#), "{header}");
        }
        assert!(!etag_matches(b"\xff", r#""3""#));
    }
}
