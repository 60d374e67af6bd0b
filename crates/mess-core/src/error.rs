//! The one error enum of the domain.

use crate::rules::Conflict;
use crate::status::Status;

/// Why the domain refused a command. Each variant maps to exactly one HTTP status and
/// machine-readable code in `mess-api`'s error table (400, 403, 404, 409); the message is
/// safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The input is malformed or out of bounds (400).
    #[error("{0}")]
    Invalid(String),
    /// The member may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thread or member does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The executor id is taken (409).
    #[error("{0}")]
    AlreadyRegistered(String),
    /// The id is the exchange's own (`exchange`) and can never be a member's (409).
    #[error("{0}")]
    ReservedId(String),
    /// A rule of the transition table refused the move (409, with `from` and `to`).
    #[error("{message}")]
    Conflict {
        /// Which rule refused it.
        rule: Conflict,
        /// What went wrong, for people.
        message: String,
        /// The thread's status when the command arrived.
        from: Status,
        /// The status the command asked for.
        to: Status,
    },
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}
