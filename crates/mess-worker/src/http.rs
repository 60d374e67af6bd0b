//! HTTP plumbing shared by the Worker and the Durable Object: the headers every response
//! carries (CORS, `Cache-Control: no-store`...) and reading request bodies, as the binary
//! does it (`mess-http`'s `middleware.rs`, `body.rs`). The body rules themselves are
//! mess-core's (`mess_core::wire`), shared with the binary.

use mess_api::BODY_LIMIT;
use serde_json::Value;
use worker::{Headers, Request, Response};

use crate::error::ApiError;

use mess_api::cors::{ALLOW_HEADERS, ALLOW_METHODS, CorsOrigins, EXPOSE_HEADERS, MAX_AGE};

/// The `Access-Control-Allow-Origin` for `origin`, by `CORS_ORIGINS` (a comma-separated
/// list, `*` or empty for any).
fn allowed_origin(origins: &str, origin: Option<&str>) -> Option<String> {
    CorsOrigins::parse(origins).allow(origin).map(str::to_owned)
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
        let _ = headers.set("Access-Control-Max-Age", MAX_AGE);
    }
    let _ = headers.set("Vary", "Origin");
    Response::builder()
        .with_status(204)
        .with_headers(headers)
        .empty()
}

/// Adds what every response carries: the security headers, `Cache-Control: no-store` (unless
/// the answer set its own), and CORS for an allowed origin.
pub fn finish(mut res: Response, origin: Option<&str>, origins: &str) -> Response {
    let h = res.headers_mut();
    // Unless the answer says otherwise (the app's assets, an attachment's bytes).
    if !h.has("Cache-Control").unwrap_or(false) {
        let _ = h.set("Cache-Control", "no-store");
    }
    let _ = h.set("X-Content-Type-Options", "nosniff");
    let _ = h.set("X-Frame-Options", "DENY");
    let _ = h.set("Referrer-Policy", "no-referrer");
    if let Some(o) = allowed_origin(origins, origin) {
        let _ = h.set("Access-Control-Allow-Origin", &o);
        let _ = h.set("Access-Control-Expose-Headers", EXPOSE_HEADERS);
        let _ = h.set("Vary", "Origin");
    }
    res
}

/// Whether the client reads HTML (a browser following a notification's link).
pub fn wants_html(req: &Request) -> bool {
    req.headers()
        .get("Accept")
        .ok()
        .flatten()
        .is_some_and(|v| v.contains("text/html"))
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

/// Reads the request's JSON object body within `mess_api::BODY_LIMIT`: 413 past it, 400 for
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
    Ok(mess_core::wire::parse_body(&bytes)?)
}
