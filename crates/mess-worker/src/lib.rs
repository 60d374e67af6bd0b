//! # mess-worker
//!
//! The MESS exchange on Cloudflare Workers: a host of `mess-api`, whose route functions
//! (parsing, authorization, views, status codes, the error table) the binary's actix
//! handlers call too, with every rule from `mess-core` (compiled to wasm32 unchanged). This
//! crate only adapts I/O: Worker requests in, `mess_api::Reply` out, R2 for storage.
//!
//! - The Worker ([`fetch`]) answers `/health`, the executor's app (`/`, `/app/{file}`,
//!   `mess_api::webapp`), CORS preflights and what needs no state
//!   (404 outside the API, 401 without a well-formed key, 405 on `/register`), and sends
//!   everything else to the exchange's Durable Object: the path's exchange for a
//!   registration, the key's exchange otherwise (so a key of another exchange gets 403 from
//!   the object that knows it).
//! - [`object::ExchangeObject`]: one per exchange; holds its state, serialises its writes,
//!   stores events and member records in R2 (the `BUCKET` binding, bucket `mess-exchange`)
//!   in the same layout as the filesystem and S3, and rebuilds from R2 when it starts.
//!
//! Build with `scripts/build-worker.sh`; run with `npm run worker:dev`; see
//! docs/deployment.md ("Cloudflare Workers").
#![forbid(unsafe_code)]

mod error;
mod feed;
mod http;
mod notify;
mod object;
mod port;
mod store;

use mess_api::routes;
use mess_core::ports::StorageKind;
use worker::{Env, Method, Request, Response, event};

pub use object::ExchangeObject;

use crate::error::{ApiError, error_response, respond};

/// The Worker's entry point.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: worker::Context) -> worker::Result<Response> {
    let cors = http::cors_origins(&env);
    if req.method() == Method::Options {
        return Ok(http::preflight(&req, &cors));
    }
    let origin = req.headers().get("Origin").ok().flatten();
    match route(req, &env).await {
        // The object's responses already carry the common headers.
        Ok(Routed::Object(res)) => Ok(res),
        Ok(Routed::Here(res)) => Ok(http::finish(res, origin.as_deref(), &cors)),
        Err(e) => Ok(http::finish(error_response(&e), origin.as_deref(), &cors)),
    }
}

enum Routed {
    Here(Response),
    Object(Response),
}

async fn route(req: Request, env: &Env) -> Result<Routed, ApiError> {
    let url = req.url().map_err(|_| ApiError::bad("invalid URL"))?;
    let path = url.path();
    if path == "/health" {
        return health(&req, env).await.map(Routed::Here);
    }
    if path == "/" || path.starts_with("/app/") {
        return app(&req, path);
    }
    if let Some(token) = path.strip_prefix("/a/") {
        return action(req, env, token).await;
    }
    let Some(rest) = path.strip_prefix("/api/v1/exchanges/") else {
        return Err(ApiError::NotFound("Not found".into()));
    };
    let (exchange, sub) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if exchange.is_empty() {
        return Err(ApiError::NotFound("Not found".into()));
    }
    let target = if sub == "/register" {
        let id = routes::exchange_id(exchange)?;
        if req.method() != Method::Post {
            return Err(ApiError::MethodNotAllowed("POST"));
        }
        id
    } else {
        // Authentication first; the object checks the key itself.
        object::bearer(&req)?.exchange()
    };
    let stub = env
        .durable_object("EXCHANGES")
        .and_then(|ns| ns.get_by_name(target.as_str()))
        .map_err(|e| {
            worker::console_error!("Durable Object binding: {}", e);
            ApiError::Internal
        })?;
    let res = stub.fetch_with_request(req).await.map_err(|e| {
        worker::console_error!("Durable Object {}: {}", target, e);
        ApiError::Unavailable
    })?;
    Ok(Routed::Object(res))
}

/// The key that signs notifications' claim links: the `ACTION_LINK_KEY` secret (at least
/// 32 characters; `npx wrangler secret put ACTION_LINK_KEY`). Without it offers carry no
/// "Claim" button and `/a/` refuses every link. (The binary keeps its key in its storage.)
pub(crate) fn action_key(env: &Env) -> Option<Vec<u8>> {
    let key = env
        .secret("ACTION_LINK_KEY")
        .map(|s| s.to_string())
        .or_else(|_| env.var("ACTION_LINK_KEY").map(|v| v.to_string()))
        .ok()
        .filter(|k| !k.is_empty())?;
    if key.len() < 32 {
        worker::console_error!(
            "ACTION_LINK_KEY is shorter than 32 characters: claim links are off"
        );
        return None;
    }
    Some(key.into_bytes())
}

/// `/a/{token}`: a notification's claim link, verified here and answered by the object of
/// the exchange it names (which verifies it again, and decides).
async fn action(req: Request, env: &Env, token: &str) -> Result<Routed, ApiError> {
    let html = http::wants_html(&req);
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let link =
        match action_key(env).map(|k| mess_core::action_link::ActionLink::verify(&k, token, now)) {
            Some(Ok(link)) => link,
            Some(Err(e)) => return Ok(Routed::Here(respond(mess_api::links::refused(e, html)))),
            None => {
                let e = mess_core::action_link::LinkError::Invalid;
                return Ok(Routed::Here(respond(mess_api::links::refused(e, html))));
            }
        };
    let stub = env
        .durable_object("EXCHANGES")
        .and_then(|ns| ns.get_by_name(link.exchange.as_str()))
        .map_err(|e| {
            worker::console_error!("Durable Object binding: {}", e);
            ApiError::Internal
        })?;
    let res = stub.fetch_with_request(req).await.map_err(|e| {
        worker::console_error!("Durable Object {}: {}", link.exchange, e);
        ApiError::Unavailable
    })?;
    Ok(Routed::Object(res))
}

/// `GET`/`HEAD /` and `/app/{file}`: the executor's app, as the binary serves it.
fn app(req: &Request, path: &str) -> Result<Routed, ApiError> {
    let method = req.method();
    if method != Method::Get && method != Method::Head {
        return Err(ApiError::MethodNotAllowed("GET, HEAD"));
    }
    let name = path.strip_prefix("/app/");
    if name.is_some_and(|n| n.is_empty() || n.contains('/')) {
        return Err(ApiError::NotFound("Not found".into()));
    }
    let inm = req.headers().get("If-None-Match").ok().flatten();
    let mut reply = mess_api::webapp::asset(name, inm.as_deref().map(str::as_bytes))?;
    if method == Method::Head {
        reply.body.clear();
    }
    // Its own Cache-Control (revalidated by ETag) stands: `finish` keeps it.
    Ok(Routed::Here(respond(reply)))
}

/// `GET`/`HEAD /health`: the binary's body, with `"storage": "r2"`; 503 `degraded` when
/// R2 does not answer.
async fn health(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let method = req.method();
    if method != Method::Get && method != Method::Head {
        return Err(ApiError::MethodNotAllowed("GET, HEAD"));
    }
    let ok = match env.bucket("BUCKET") {
        Ok(b) => b.head("health-check").await.is_ok(),
        Err(_) => false,
    };
    let default_exchange = env
        .var("DEFAULT_EXCHANGE")
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "home".into());
    let res = respond(routes::health(
        ok,
        StorageKind::R2.as_str(),
        &default_exchange,
    ));
    let status = res.status_code();
    if method == Method::Head {
        let headers = res.headers().clone();
        return Ok(Response::builder()
            .with_status(status)
            .with_headers(headers)
            .empty());
    }
    Ok(res)
}
