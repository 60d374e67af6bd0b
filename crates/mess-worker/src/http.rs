//! HTTP plumbing shared by the Worker and the Durable Object: JSON responses, the headers
//! every response carries (CORS, `Cache-Control: no-store`...), and request bodies, as the
//! binary does it (`mess-http`'s `middleware.rs`, `body.rs`). The body rules and `data:`
//! URIs themselves are mess-core's (`mess_core::wire`), shared with the binary.

use serde_json::Value;
use worker::{Headers, Request, Response};

use crate::error::ApiError;

/// The largest request body, as the binary's default `MAX_BODY_BYTES` (10 MiB).
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;

const ALLOW_METHODS: &str = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type";

/// A JSON response.
pub fn json(status: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let headers = Headers::new();
    let _ = headers.set("Content-Type", "application/json");
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(bytes)
}

/// Which browser origins may call the API (`CORS_ORIGINS`: a comma-separated list, `*` or
/// empty for any).
fn allowed_origin(origins: &str, origin: Option<&str>) -> Option<String> {
    let list: Vec<&str> = origins
        .split(',')
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .collect();
    if list.is_empty() || list.contains(&"*") {
        return Some("*".into());
    }
    let o = origin?;
    list.contains(&o).then(|| o.to_owned())
}

/// The answer to any `OPTIONS` (a CORS preflight): 204 with the allowed origin, methods and
/// headers.
pub fn preflight(req: &Request, origins: &str) -> Response {
    let origin = req.headers().get("Origin").ok().flatten();
    let headers = Headers::new();
    if let Some(o) = allowed_origin(origins, origin.as_deref()) {
        let _ = headers.set("Access-Control-Allow-Origin", &o);
        let _ = headers.set("Access-Control-Allow-Methods", ALLOW_METHODS);
        let _ = headers.set("Access-Control-Allow-Headers", ALLOW_HEADERS);
        let _ = headers.set("Access-Control-Max-Age", "86400");
    }
    let _ = headers.set("Vary", "Origin");
    Response::builder()
        .with_status(204)
        .with_headers(headers)
        .empty()
}

/// Adds what every response carries: the security headers, `Cache-Control: no-store`, and
/// CORS for an allowed origin.
pub fn finish(mut res: Response, origin: Option<&str>, origins: &str) -> Response {
    let h = res.headers_mut();
    let _ = h.set("Cache-Control", "no-store");
    let _ = h.set("X-Content-Type-Options", "nosniff");
    let _ = h.set("X-Frame-Options", "DENY");
    let _ = h.set("Referrer-Policy", "no-referrer");
    if let Some(o) = allowed_origin(origins, origin) {
        let _ = h.set("Access-Control-Allow-Origin", &o);
        let _ = h.set("Access-Control-Expose-Headers", "Retry-After");
        let _ = h.set("Vary", "Origin");
    }
    res
}

/// The `CORS_ORIGINS` variable (default: any origin).
pub fn cors_origins(env: &worker::Env) -> String {
    env.var("CORS_ORIGINS")
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "*".into())
}

/// JSON when it says so, or says nothing; anything else is refused.
fn is_json(req: &Request) -> bool {
    match req.headers().get("Content-Type") {
        Ok(ct) => mess_core::wire::is_json_content_type(ct.as_deref()),
        Err(_) => false,
    }
}

/// Parses `bytes` as a JSON object body, by mess-core's rules.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    Ok(mess_core::wire::parse_body(bytes)?)
}

/// Reads the request's JSON object body within [`BODY_LIMIT`]: 413 past it, 400 for
/// anything that is not a JSON object.
pub async fn json_body(req: &mut Request) -> Result<Value, ApiError> {
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
    }
    let bytes = req
        .bytes()
        .await
        .map_err(|_| ApiError::bad("could not read the request body"))?;
    if bytes.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
    }
    if !is_json(req) {
        return Err(ApiError::bad("Content-Type must be application/json"));
    }
    parse_body(&bytes)
}
