//! Request bodies: read within the limit, checked for content type, depth and NULs,
//! parsed as JSON, every failure a JSON 400 or 413.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::StreamExt;
use serde_json::Value;

use crate::error::ApiError;

/// The deepest nesting a body may have.
pub const MAX_DEPTH: usize = 32;

/// The body limit, set once at start-up (`MAX_BODY_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON object body, parsed and checked.
#[derive(Debug)]
pub struct JsonBody(pub Value);

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

/// A body is read as JSON when it says so, or says nothing (some clients send JSON without
/// a Content-Type); a body declared as anything else is refused.
fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req.headers().get("content-type") else {
        return true;
    };
    let Ok(ct) = ct.to_str() else {
        return false;
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
pub fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
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

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = futures::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<BodyLimit>>()
            .map_or(10 * 1024 * 1024, |l| l.0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let mut buf = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| ApiError::bad("could not read the request body"))?;
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            if !json {
                return Err(ApiError::bad("Content-Type must be application/json"));
            }
            parse(&buf).map(JsonBody)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_and_nul_are_refused() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(br#"{"intent":"a\u0000b"}"#).is_err());
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{").is_err());
        assert!(parse(br#"{"intent":"ok"}"#).is_ok());
    }
}
