//! HTTP plumbing shared by the Worker and the Durable Object: JSON responses, the headers
//! every response carries (CORS, `Cache-Control: no-store`...), request bodies and `data:`
//! URIs, each as the binary does it (`mess-http`'s `middleware.rs`, `body.rs`,
//! `datauri.rs`).

use base64::Engine;
use serde_json::Value;
use worker::{Headers, Request, Response};

use crate::error::ApiError;

/// The largest request body, as the binary's default `MAX_BODY_BYTES` (10 MiB).
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;
/// The deepest nesting a body may have.
pub const MAX_DEPTH: usize = 32;

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

fn depth_ok(v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::Array(a) => a.iter().all(|i| depth_ok(i, depth + 1)),
        Value::Object(o) => o.values().all(|i| depth_ok(i, depth + 1)),
        _ => true,
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// JSON when it says so, or says nothing; anything else is refused.
fn is_json(req: &Request) -> bool {
    let Ok(Some(ct)) = req.headers().get("Content-Type") else {
        return true;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses `bytes` as a JSON object body.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad(format!("malformed JSON: {e}"))
        } else {
            ApiError::bad("malformed JSON")
        }
    })?;
    if !v.is_object() {
        return Err(ApiError::bad("the body must be a JSON object"));
    }
    if !depth_ok(&v, 0) {
        return Err(ApiError::bad(format!(
            "JSON nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if has_nul(&v) {
        return Err(ApiError::bad("strings must not contain NUL characters"));
    }
    Ok(v)
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

/// Decodes `data:[<mediatype>][;base64],<data>` into its MIME type and bytes.
pub fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let (mime, base64) = match meta.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (meta, false),
    };
    let mime = if mime.is_empty() {
        "text/plain;charset=US-ASCII"
    } else {
        mime
    };
    if !mime.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return None;
    }
    let bytes = if base64 {
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(compact.as_bytes()))
            .ok()?
    } else {
        percent_decode(data)
    };
    Some((mime.to_owned(), bytes))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
