//! Middleware: CORS, JSON for every error, request metrics, the request id, client
//! address and access log.

use std::sync::{LazyLock, OnceLock};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{Error, HttpResponse, web};
use metrics::{Counter, Histogram, SharedString};

use crate::error::{ErrorBody, ErrorCode};

pub use mess_api::cors::CorsOrigins;
use mess_api::cors::{ALLOW_HEADERS, ALLOW_METHODS, EXPOSE_HEADERS, MAX_AGE};

/// The `Access-Control-Allow-Origin` value for this request, if its origin is allowed.
fn allowed(origins: &CorsOrigins, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    match origin {
        None => origins.allow(None).map(HeaderValue::from_static),
        Some(o) => {
            let allowed = origins.allow(Some(o.to_str().ok()?))?;
            if allowed == "*" {
                Some(HeaderValue::from_static("*"))
            } else {
                Some(o.clone())
            }
        }
    }
}

/// Answers every `OPTIONS` (a CORS preflight) with 204 and the allowed origins, methods and
/// headers; adds `Access-Control-Allow-Origin` to other responses for allowed origins.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let origin = req.headers().get(header::ORIGIN);
    let allowed = match req.app_data::<web::Data<CorsOrigins>>() {
        Some(origins) => allowed(origins, origin),
        None => allowed(&CorsOrigins::Any, None),
    };
    if req.method() == actix_web::http::Method::OPTIONS {
        let mut res = HttpResponse::NoContent();
        if let Some(o) = &allowed {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE));
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
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res.map_into_boxed_body())
}

/// What the request middleware needs: which proxies to believe and whether to log each
/// request.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `TRUSTED_PROXIES`.
    pub proxies: crate::limits::TrustedProxies,
    /// `ACCESS_LOG`: one `info` line per request (probes and `/metrics` at `debug`).
    pub access_log: bool,
}

/// The request id header, accepted from the client or generated.
pub const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The client's `X-Request-Id` when it is a sane token (1 to 128 of `A-Z a-z 0-9 - _ . : /
/// + =`), else a new random one (16 hex digits).
fn request_id(sent: Option<&HeaderValue>) -> String {
    let ok = |v: &&HeaderValue| {
        let b = v.as_bytes();
        (1..=128).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=".contains(c))
    };
    match sent.filter(ok).and_then(|v| v.to_str().ok()) {
        Some(id) => id.to_owned(),
        None => format!("{:016x}", rand::random::<u64>()),
    }
}

/// Paths that probes and scrapers call every few seconds: their access lines are `debug`.
fn is_probe(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/health" | "/metrics")
}

/// Every request: its id (`X-Request-Id`, accepted or generated, returned, and on every
/// log line of the request through an `info` span), its client address (through a
/// trusted proxy's `X-Forwarded-For`: [`crate::limits::TrustedProxies`]), and one access
/// line when it ends.
pub async fn request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    use actix_web::HttpMessage;
    use tracing::Instrument;
    let start = Instant::now();
    let context = req.app_data::<web::Data<RequestContext>>();
    let access_log = context.is_some_and(|c| c.access_log);
    let peer = req.peer_addr().map(|a| a.ip());
    // Behind trusted proxies the client is found once here, for the rate limits
    // (`limits::client_ip`) and the log; otherwise it is the peer, which they read as is.
    let client = match context {
        Some(c) if !c.proxies.is_empty() => {
            let client = c.proxies.client(
                peer,
                req.headers()
                    .get_all("x-forwarded-for")
                    .map(HeaderValue::as_bytes)
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            req.extensions_mut().insert(crate::limits::ClientIp(client));
            client
        }
        _ => peer,
    };
    let id = request_id(req.headers().get(&REQUEST_ID));
    // Kept only for the access line.
    let logged = access_log.then(|| (req.method().clone(), req.path().to_owned()));
    let span = tracing::info_span!("request", id = %id);
    // An `Err` here is rare (the error handlers turn errors into responses inside): it
    // goes on without the id header. (The request cannot be cloned to build a response
    // from it: the router needs it unshared.)
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some((method, path)) = logged {
        let status = res.status().as_u16();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let client = client.map(|ip| ip.to_string()).unwrap_or_default();
        let _enter = span.enter();
        if is_probe(&path) {
            tracing::debug!(target: "access", %method, %path, status, ms, %client, "request");
        } else {
            tracing::info!(target: "access", %method, %path, status, ms, %client, "request");
        }
    }
    Ok(res)
}

/// The request metrics of one route, with their handles registered on first use: the hot
/// path is an atomic add and a histogram push, not a registry lookup by labels, which costs
/// a measurable share of a GET (docs/benchmarks.md).
pub struct RouteMetrics {
    route: &'static str,
    duration: OnceLock<Histogram>,
    /// By method (the last row for `other`), then status.
    counts: [[OnceLock<Counter>; STATUSES.len()]; METHODS.len() + 1],
}

impl RouteMetrics {
    /// The metrics of `route` (its full pattern).
    pub fn new(route: &'static str) -> Self {
        Self {
            route,
            duration: OnceLock::new(),
            counts: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }

    fn record(&self, method: &Method, status: StatusCode, start: Instant) {
        let m = METHODS
            .iter()
            .position(|(known, _)| known == method)
            .unwrap_or(METHODS.len());
        let method = METHODS.get(m).map_or("other", |(_, label)| label);
        match STATUSES.iter().position(|k| *k == status.as_str()) {
            Some(s) => self.counts[m][s]
                .get_or_init(|| counter(self.route, method, SharedString::const_str(STATUSES[s])))
                .increment(1),
            // A code outside the table keeps its digits (rare: registered each time).
            None => counter(
                self.route,
                method,
                SharedString::from(status.as_str().to_owned()),
            )
            .increment(1),
        }
        self.duration
            .get_or_init(
                || metrics::histogram!("http_request_duration_seconds", "route" => self.route),
            )
            .record(start.elapsed().as_secs_f64());
    }
}

fn counter(route: &'static str, method: &'static str, status: SharedString) -> Counter {
    metrics::counter!("http_requests_total", "route" => route, "method" => method, "status" => status)
}

/// Counts requests by route pattern, method and status, with a latency histogram. Each
/// resource is wrapped with its own [`RouteMetrics`] (see `app::metered`), so the hot path
/// never matches the path again to find its route, and every label is a static string.
pub async fn metrics<B: MessageBody + 'static>(
    route: &RouteMetrics,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await?;
    route.record(&method, res.status(), start);
    Ok(res)
}

/// Counts requests that matched no resource (label `route="unmatched"`).
pub async fn metrics_unmatched<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    static UNMATCHED: LazyLock<RouteMetrics> = LazyLock::new(|| RouteMetrics::new("unmatched"));
    metrics(&UNMATCHED, req, next).await
}

/// The method labels; any other method is counted as `other`.
const METHODS: [(Method, &str); 7] = [
    (Method::GET, "GET"),
    (Method::POST, "POST"),
    (Method::PATCH, "PATCH"),
    (Method::DELETE, "DELETE"),
    (Method::HEAD, "HEAD"),
    (Method::OPTIONS, "OPTIONS"),
    (Method::PUT, "PUT"),
];

/// The status labels with a handle of their own.
const STATUSES: [&str; 17] = [
    "200", "201", "204", "304", "308", "400", "401", "403", "404", "405", "409", "413", "415",
    "422", "429", "500", "503",
];

/// Turns any error response that is not JSON yet (from actix itself: a bad percent-encoding,
/// an unparsable header...) into `{"error": "..."}`. 5xx bodies stay opaque. Our own HTML
/// pages stay pages.
pub fn json_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON already, or one of our own pages (the refusals of `/a/{token}` for a browser):
    // actix's own errors are plain text.
    let ours = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if ours {
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
    let new = new.json(ErrorBody::new(
        ErrorCode::for_status(status.as_u16()),
        message,
    ));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}
