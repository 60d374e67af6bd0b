//! # mess-http
//!
//! The actix-web host of a MESS exchange: it adapts HTTP to `mess-api`, where every route
//! is decided (parse, authorize, decide, view, the error table), and holds what only a
//! long-running server has: the per-exchange writer task with its group commit, the
//! delivery of answers to actix's worker threads, per-IP rate limits, CORS and security
//! headers, Prometheus metrics, and the OpenAPI document generated from the handlers.
//!
//! It sees storage and notification only through mess-core's ports (`Arc<dyn Storage>`,
//! `Arc<dyn Notifier>`); the `mess-exchange` binary chooses the adapters.
//!
//! # Layout
//! - [`hub`]: every exchange in memory and the per-exchange writer that sequences
//!   commands, appends their events durably (one append per batch, several overlapping),
//!   then publishes.
//! - [`table`]: every route once; the router and the OpenAPI paths are built from it.
//! - [`routes`], [`membership`]: the handlers, each an extractor in and `mess-api`'s answer
//!   out; [`api`]: their documented shapes; [`openapi`]: the spec.
//! - [`auth`]: the bearer-key extractor; [`body`]: JSON bodies within limits;
//!   [`limits`]: registration token, per-IP rate limits and trusted proxies.
//! - [`error`]: `mess-api`'s error table, sent through actix.
//! - [`links`]: `/a/{token}`, the signed links behind notifications' buttons.
//! - [`middleware`]: CORS, headers, JSON for every error, metrics, request ids and the
//!   access log; [`telemetry`]: every metric's name and help, process metrics.
//! - [`app`]: the actix application shared by the server and the tests.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod error;
pub mod feed;
pub mod hub;
pub mod limits;
pub mod links;
pub mod mcp;
pub mod membership;
pub mod middleware;
pub mod openapi;
pub mod replicas;
pub mod routes;
pub mod state;
pub mod table;
pub mod telemetry;
pub mod webapp;

pub use app::{HttpConfig, configure, serve, serve_starting};
pub use error::HttpError;
pub use hub::Hub;
pub use state::AppState;

/// Sends a `mess-api` answer through actix.
pub fn respond(reply: mess_api::Reply) -> actix_web::HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = actix_web::HttpResponse::build(status);
    res.content_type(reply.content_type);
    for header in reply.headers {
        res.insert_header(header);
    }
    res.body(reply.body)
}
