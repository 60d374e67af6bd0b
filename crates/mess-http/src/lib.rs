//! # mess-http
//!
//! The HTTP API of a MESS exchange on actix-web: every route of the contract, bearer-key
//! authentication, JSON errors, CORS and security headers, Prometheus metrics, and the
//! OpenAPI document generated from the handlers.
//!
//! It sees storage and notification only through mess-core's ports (`Arc<dyn Storage>`,
//! `Arc<dyn Notifier>`); the `mess-exchange` binary chooses the adapters.
//!
//! # Layout
//! - [`hub`]: every exchange in memory and the per-exchange writer that sequences
//!   commands, appends their events durably (one append per batch, several overlapping),
//!   then publishes.
//! - [`routes`], [`membership`]: the handlers; [`api`]: their documented shapes; [`openapi`]: the spec.
//! - [`auth`]: the bearer-key extractor; [`body`]: JSON bodies within limits;
//!   [`limits`]: registration token and per-IP rate limits.
//! - [`error`]: the one error enum and its status mapping.
//! - [`middleware`]: CORS, headers, JSON for every error, metrics.
//! - [`app`]: the actix application shared by the server and the tests.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod error;
pub mod hub;
pub mod limits;
pub mod membership;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;

pub use app::{HttpConfig, configure, serve};
pub use hub::Hub;
pub use state::AppState;
