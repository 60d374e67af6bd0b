//! # mess-api
//!
//! Every route of a MESS exchange decided once, with no web framework: the parsing of path,
//! query and body into a `mess-core` command, the authorization, the decision, the
//! response's view and status code, and the one error table. The two hosts only adapt I/O:
//! `mess-http` (actix-web, the binary) and `mess-worker` (a Cloudflare Durable Object).
//!
//! A host hands each route function an [`ExchangePort`] (the exchange's acknowledged
//! state, a way to commit a command durably, a clock) and the request's raw parts, and
//! turns the [`Reply`] or [`ApiError`] it gets back into its own response type.
//!
//! # Layout
//! - [`error`]: [`ApiError`], its status, headers and stable [`ErrorCode`]; [`ErrorBody`].
//! - [`port`]: what a host provides ([`ExchangePort`]) and what a commit returns
//!   ([`Written`]).
//! - [`reply`]: a response as status, content type, headers and body bytes.
//! - [`auth`]: the bearer key, the member it names, the registration token.
//! - [`blobs`]: attachments taken out of bodies as blobs, restored, linked, served.
//! - [`catalog`]: the capability catalog's shape.
//! - [`cors`]: allowed origins, methods and headers.
//! - [`feed`]: the change feed's frames and where a client resumes.
//! - [`links`]: `/a/{token}`, the page and the claim behind a notification's button.
//! - [`idempotency`]: `Idempotency-Key`: scopes, body digests, stored answers.
//! - [`query`]: the listing's query string.
//! - [`routes`]: one function per route.
//! - [`views`]: the JSON shapes of members and threads.
//! - [`webapp`]: the executor's app, embedded: its assets and how each is answered.
#![forbid(unsafe_code)]
// The hosts run each request on one thread (actix's workers, wasm32), so the port's async
// methods carry no `Send` bound: `async fn` in the trait says exactly that.
#![allow(async_fn_in_trait)]

pub mod auth;
pub mod blobs;
pub mod catalog;
pub mod cors;
pub mod error;
pub mod feed;
pub mod idempotency;
pub mod links;
pub mod mcp;
pub mod port;
pub mod query;
pub mod reply;
pub mod routes;
pub mod views;
pub mod webapp;

pub use auth::RegistrationPolicy;
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use port::{ExchangePort, Written};
pub use reply::Reply;

/// The largest request body by default, in bytes (`MAX_BODY_BYTES`; the Worker's fixed
/// limit).
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;
