//! Request bodies: read within the limit, checked for content type, depth and NULs,
//! parsed as JSON, every failure a JSON 400 or 413.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::StreamExt;
use serde_json::Value;

use crate::error::{ApiError, HttpError};

pub use mess_core::wire::MAX_DEPTH;

/// The body limit, set once at start-up (`MAX_BODY_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON object body, parsed and checked.
#[derive(Debug)]
pub struct JsonBody(pub Value);

/// A body is read as JSON when it says so, or says nothing (some clients send JSON without
/// a Content-Type); a body declared as anything else is refused.
fn is_json(req: &HttpRequest) -> bool {
    match req.headers().get("content-type") {
        None => true,
        Some(ct) => ct
            .to_str()
            .is_ok_and(|ct| mess_core::wire::is_json_content_type(Some(ct))),
    }
}

/// Parses `bytes` as a JSON object body (mess-core's rules: depth, NUL, an object).
pub fn parse(bytes: &[u8]) -> Result<Value, HttpError> {
    Ok(mess_core::wire::parse_body(bytes)?)
}

impl FromRequest for JsonBody {
    type Error = HttpError;
    type Future = futures::future::LocalBoxFuture<'static, Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<BodyLimit>>()
            .map_or(mess_api::BODY_LIMIT, |l| l.0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit).into());
            }
            let mut buf = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| ApiError::bad("could not read the request body"))?;
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit).into());
                }
                buf.extend_from_slice(&chunk);
            }
            if !json {
                return Err(ApiError::bad("Content-Type must be application/json").into());
            }
            parse(&buf).map(JsonBody)
        })
    }
}
