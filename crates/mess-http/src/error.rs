//! The API's errors: one enum, one exhaustive mapping to HTTP statuses, always JSON.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mess_core::{DomainError, Status};
use serde::Serialize;

use crate::hub::WriteError;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or out-of-bounds input.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: a valid key that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not. Holds the `Allow` header's value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 409: a taken executor id.
    #[error("{0}")]
    AlreadyRegistered(String),
    /// 409: a move the transition table does not allow.
    #[error("{message}")]
    Conflict {
        /// For people.
        message: String,
        /// The thread's status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// 413: the body is over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 429: too many registrations or failed authentications from this client.
    #[error("too many requests: retry after {0} s")]
    TooManyRequests(u64),
    /// 503: storage is unreachable; nothing was written.
    #[error("storage is unavailable; the write was not acknowledged, try again")]
    Unavailable,
    /// 500: a bug. The body never says more than this; the cause goes to the log.
    #[error("internal server error")]
    Internal,
}

/// The body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// For a 409 on a status change: the current status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For a 409 on a status change: the status asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl ApiError {
    /// Shorthand for a 400.
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyRegistered(_) | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (from, to) = match self {
            ApiError::Conflict { from, to, .. } => (Some(from.to_string()), Some(to.to_string())),
            _ => (None, None),
        };
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            res.insert_header(("Allow", *allow));
        }
        if matches!(self, ApiError::Unavailable) {
            res.insert_header(("Retry-After", "5"));
        }
        if let ApiError::TooManyRequests(wait) = self {
            res.insert_header(("Retry-After", wait.to_string()));
        }
        res.json(ErrorBody {
            error: self.to_string(),
            from,
            to,
        })
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::BadRequest(m),
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::NotFound(m) => ApiError::NotFound(m),
            DomainError::AlreadyRegistered(m) => ApiError::AlreadyRegistered(m),
            DomainError::Conflict { message, from, to } => ApiError::Conflict { message, from, to },
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Domain(d) => d.into(),
            WriteError::Unavailable(_) | WriteError::ShuttingDown => ApiError::Unavailable,
        }
    }
}
