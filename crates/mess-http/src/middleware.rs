//! Middleware: CORS, JSON for every error, security headers, request metrics.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{Error, HttpResponse, web};

use crate::error::ErrorBody;

/// Which browser origins may call the API (`CORS_ORIGINS`).
#[derive(Debug, Clone)]
pub enum CorsOrigins {
    /// `*`: any origin (keys are bearer tokens, never cookies, so this is safe).
    Any,
    /// Only these origins.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses a comma-separated list; `*` (or empty) means any.
    pub fn parse(s: &str) -> Self {
        let list: Vec<String> = s
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|o| o == "*") {
            CorsOrigins::Any
        } else {
            CorsOrigins::List(list)
        }
    }

    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match (self, origin) {
            (CorsOrigins::Any, _) => Some(HeaderValue::from_static("*")),
            (CorsOrigins::List(list), Some(o)) => {
                let s = o.to_str().ok()?;
                list.iter().any(|a| a == s).then(|| o.clone())
            }
            (CorsOrigins::List(_), None) => None,
        }
    }
}

const ALLOW_METHODS: &str = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type";

/// Answers every `OPTIONS` (a CORS preflight) with 204 and the allowed origins, methods and
/// headers; adds `Access-Control-Allow-Origin` to other responses for allowed origins.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let origins = req
        .app_data::<web::Data<CorsOrigins>>()
        .map(|d| d.get_ref().clone());
    let origins = origins.unwrap_or(CorsOrigins::Any);
    let allowed = origins.allow(req.headers().get(header::ORIGIN));
    if req.method() == actix_web::http::Method::OPTIONS {
        let mut res = HttpResponse::NoContent();
        if let Some(o) = &allowed {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
        }
        res.insert_header((header::VARY, "Origin"));
        return Ok(req.into_response(res.finish()));
    }
    let mut res = next.call(req).await?;
    if let Some(o) = allowed {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res.map_into_boxed_body())
}

/// Counts requests by route pattern, method and status, with a latency histogram.
pub async fn metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    Ok(res)
}

/// Turns any error response that is not JSON yet (from actix itself: a bad percent-encoding,
/// an unparsable header...) into `{"error": "..."}`. 5xx bodies stay opaque.
pub fn json_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = if status.is_server_error() {
        "internal server error".to_owned()
    } else {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    };
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), "non-JSON server error replaced");
    }
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.insert_header((name.clone(), value.clone()));
        }
    }
    let new = new.json(ErrorBody {
        error: message,
        from: None,
        to: None,
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}
