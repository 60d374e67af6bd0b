//! The API's errors, as the binary answers them (`mess-http`'s `error.rs`): one enum, one
//! mapping to HTTP statuses, always a JSON body `{"error": ...}` (plus `from`/`to` on a 409
//! about a status change).

use mess_core::{DomainError, Status};
use serde_json::{Value, json};
use worker::Response;

/// Everything a handler can answer besides success.
#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed or out-of-bounds input.
    BadRequest(String),
    /// 401: no valid key.
    Unauthorized(&'static str),
    /// 403: a valid key that may not do this.
    Forbidden(String),
    /// 404: no such thing.
    NotFound(String),
    /// 405: the path exists, the method does not. Holds the `Allow` header's value.
    MethodNotAllowed(&'static str),
    /// 409: a taken executor id.
    AlreadyRegistered(String),
    /// 409: a move the transition table does not allow.
    Conflict {
        /// For people.
        message: String,
        /// The thread's status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// 413: the body is over the limit.
    PayloadTooLarge(usize),
    /// 503: storage is unreachable; nothing was written.
    Unavailable,
    /// 500: a bug. The body never says more; the cause goes to the log.
    Internal,
}

impl ApiError {
    /// Shorthand for a 400.
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::AlreadyRegistered(_) | ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::AlreadyRegistered(m) => m.clone(),
            ApiError::Unauthorized(m) => (*m).to_owned(),
            ApiError::MethodNotAllowed(_) => "method not allowed".into(),
            ApiError::Conflict { message, .. } => message.clone(),
            ApiError::PayloadTooLarge(n) => format!("request body is larger than {n} bytes"),
            ApiError::Unavailable => {
                "storage is unavailable; nothing was written, try again".into()
            }
            ApiError::Internal => "internal server error".into(),
        }
    }

    /// The JSON response.
    pub fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message() });
        if let ApiError::Conflict { from, to, .. } = &self {
            body["from"] = Value::String(from.to_string());
            body["to"] = Value::String(to.to_string());
        }
        let mut res = crate::http::json(self.status(), &body);
        let h = res.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                let _ = h.set("WWW-Authenticate", "Bearer");
            }
            ApiError::MethodNotAllowed(allow) => {
                let _ = h.set("Allow", allow);
            }
            ApiError::Unavailable => {
                let _ = h.set("Retry-After", "5");
            }
            _ => {}
        }
        res
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
