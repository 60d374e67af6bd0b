//! # mess-notify
//!
//! Notification delivery for mess-exchange: implements mess-core's
//! [`Notifier`](mess_core::Notifier) port over HTTP. When a thread is created or changes
//! status, it picks who to tell (capabilities, `min_priority`, quiet hours in the member's
//! own time zone), queues one delivery per channel and hook, and sends them in the
//! background with timeouts, retries and backoff. Every final outcome is recorded as a
//! `notification_delivered` / `notification_failed` event, never with a URL or secret.
//! A notification never delays or fails the request that caused it.
//!
//! # Layout
//! - [`config`]: [`NotifyConfig`], from `NOTIFY_*` and `PUBLIC_URL`.
//! - [`recipients`](mod@recipients): who is told, and when (pure).
//! - [`message`]: the exact request each channel gets (ntfy, Slack, Google Chat, webhook).
//! - [`hooks`]: members' templated lifecycle webhooks.
//! - [`deliveries`](mod@deliveries): what one event sends, channels and hooks together.
//! - [`profile`]: the checks a member's channels and hooks pass before they are stored.
//! - [`retry`]: when a delivery is tried again, and what its outcome records (pure; both
//!   senders use it).
//! - [`safety`]: URL checks at registration and address checks at send time (SSRF).
//! - [`test_send`]: what each channel gets when its member asks for a test notification.
//! - [`notifier`]: [`HttpNotifier`], its bounded queue, retries and shutdown (feature
//!   `send`, on by default).
//!
//! Without the `send` feature the crate is its pure part, with no tokio or reqwest: who
//! is told and what each channel and hook is sent ([`deliveries()`]) and
//! [`validate_profile`]. The Cloudflare Worker builds it that way for
//! wasm32 and sends the requests with `fetch`.
//!
//! # Use
//! With the `send` feature:
//! ```no_run
//! # #[cfg(feature = "send")] mod example {
//! use std::sync::Arc;
//! use mess_core::Notifier;
//! use mess_notify::{HttpNotifier, NotifyConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = NotifyConfig::from_env()?;
//! let deadline = config.shutdown_deadline;
//! let (notifier, handle) = HttpNotifier::start(config)?;
//! let port: Arc<dyn Notifier> = notifier;
//! // ... serve, handing `port` to the HTTP layer ...
//! let drained = handle.shutdown(deadline).await;
//! # let _ = (port, drained);
//! # Ok(())
//! # }
//! # }
//! ```
#![forbid(unsafe_code)]
// The module docs name the sender's items, which a build without `send` does not have.
#![cfg_attr(not(feature = "send"), allow(rustdoc::broken_intra_doc_links))]

pub mod config;
pub mod deliveries;
pub mod hooks;
pub mod message;
#[cfg(feature = "send")]
pub mod notifier;
pub mod profile;
pub mod recipients;
pub mod retry;
pub mod safety;
pub mod test_send;

pub use config::{ConfigError, NotifyConfig, parse_public_url};
pub use deliveries::{Deliveries, Target, deliveries};
pub use mess_core::member::HookMoment;
#[cfg(feature = "send")]
pub use notifier::{HttpNotifier, NotifierHandle, StartError};
pub use profile::validate_profile;
pub use recipients::{in_quiet_hours, recipients};
pub use test_send::{test_request, test_result};
