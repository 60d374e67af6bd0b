//! The one error table: every refusal -> HTTP status, stable machine-readable code, headers
//! and a JSON body `{"error", "code"}` (plus `from`/`to` on a refused status change).

use mess_core::rules::Conflict;
use mess_core::{DomainError, Status};
use serde::Serialize;

use crate::reply::Reply;

/// What a client can branch on: stable across versions, unlike the `error` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed or out-of-bounds input.
    InvalidRequest,
    /// 401: no valid key (or registration token).
    Unauthorized,
    /// 403: a valid key that may not do this.
    Forbidden,
    /// 404: no such thread, member, attachment or route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the executor id is taken.
    AlreadyRegistered,
    /// 409: the executor id is the exchange's own (`exchange`).
    ReservedId,
    /// 409: the transition table has no such move (`from`, `to`).
    InvalidTransition,
    /// 409: another member holds the claim.
    AlreadyClaimed,
    /// 409: `confirm_before`: the requestor has not confirmed yet.
    ConfirmationRequired,
    /// 410: a feed resume older than what the server keeps (`oldest` says where it starts).
    PositionTooOld,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 416: a `Range` outside the attachment (`Content-Range` gives its length).
    RangeNotSatisfiable,
    /// 422: an `Idempotency-Key` used before with a different body.
    IdempotencyKeyReused,
    /// 429: too many registrations or failed authentications (see `Retry-After`).
    RateLimited,
    /// 501: this host does not serve the route (the Worker's `/mcp`).
    NotImplemented,
    /// 503: storage did not answer; nothing was acknowledged (see `Retry-After`).
    StorageUnavailable,
    /// 500: a bug; the cause is in the server's log.
    Internal,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::AlreadyRegistered
            | ErrorCode::ReservedId
            | ErrorCode::InvalidTransition
            | ErrorCode::AlreadyClaimed
            | ErrorCode::ConfirmationRequired => 409,
            ErrorCode::PositionTooOld => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::NotImplemented => 501,
            ErrorCode::StorageUnavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// The code of an error a host's framework answered by itself (a path that matches no
    /// route, a malformed header...), from its status.
    pub fn for_status(status: u16) -> Self {
        match status {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            413 => ErrorCode::PayloadTooLarge,
            416 => ErrorCode::RangeNotSatisfiable,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::StorageUnavailable,
            400..=499 => ErrorCode::InvalidRequest,
            _ => ErrorCode::Internal,
        }
    }
}

/// Everything a route can answer besides success.
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
    /// 409: the exchange's own id.
    #[error("{0}")]
    ReservedId(String),
    /// 409: a rule of the transition table refused a status change.
    #[error("{message}")]
    Conflict {
        /// Which rule.
        rule: Conflict,
        /// For people.
        message: String,
        /// The thread's status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// 410: the feed no longer holds the position asked for; it starts at `oldest`.
    #[error(
        "the feed no longer holds that position; it starts at {oldest}: read the threads again (GET .../requests), then follow the feed from its head"
    )]
    PositionTooOld {
        /// The oldest position the feed still holds: a resume from `oldest - 1` or later
        /// works.
        oldest: u64,
    },
    /// 413: the body is over the limit (in bytes).
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 416: the `Range` asked for starts past the attachment's end (its length here).
    #[error("the range asked for is outside the attachment, which is {0} bytes long")]
    RangeNotSatisfiable(u64),
    /// 422: the `Idempotency-Key` was used with another body.
    #[error(
        "this Idempotency-Key was already used with a different body: use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// 429: too many requests from this client; retry after this many seconds.
    #[error("too many requests: retry after {0} s")]
    TooManyRequests(u64),
    /// 501: this host does not serve the route; the message says why and what to use.
    #[error("{0}")]
    NotImplemented(&'static str),
    /// 503: storage is unreachable; nothing was acknowledged.
    #[error("storage is unavailable; the write was not acknowledged, try again")]
    Unavailable,
    /// 500: a bug. The body never says more than this; the cause goes to the log.
    #[error("internal server error")]
    Internal,
}

/// The body of every error.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// For a 409 on a status change: the current status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For a 409 on a status change: the status asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// For a 410 `position_too_old`: the oldest feed position still kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
}

impl ErrorBody {
    /// A body with only `error` and `code`.
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            code,
            from: None,
            to: None,
            oldest: None,
        }
    }
}

impl ApiError {
    /// Shorthand for a 400.
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// Shorthand for a 404.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::InvalidRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::AlreadyRegistered(_) => ErrorCode::AlreadyRegistered,
            ApiError::ReservedId(_) => ErrorCode::ReservedId,
            ApiError::Conflict { rule, .. } => match rule {
                Conflict::NoSuchMove => ErrorCode::InvalidTransition,
                Conflict::HeldByAnother => ErrorCode::AlreadyClaimed,
                Conflict::AwaitingConfirmation => ErrorCode::ConfirmationRequired,
            },
            ApiError::PositionTooOld { .. } => ErrorCode::PositionTooOld,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::RangeNotSatisfiable(_) => ErrorCode::RangeNotSatisfiable,
            ApiError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            ApiError::TooManyRequests(_) => ErrorCode::RateLimited,
            ApiError::NotImplemented(_) => ErrorCode::NotImplemented,
            ApiError::Unavailable => ErrorCode::StorageUnavailable,
            ApiError::Internal => ErrorCode::Internal,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code().status()
    }

    /// The headers this error adds: `WWW-Authenticate` on a 401, `Allow` on a 405,
    /// `Retry-After` on a 429 or 503, `Content-Range` on a 416.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::Unauthorized(_) => vec![("WWW-Authenticate", "Bearer".into())],
            ApiError::MethodNotAllowed(allow) => vec![("Allow", (*allow).into())],
            ApiError::TooManyRequests(wait) => vec![("Retry-After", wait.to_string())],
            ApiError::Unavailable => vec![("Retry-After", "5".into())],
            ApiError::RangeNotSatisfiable(len) => vec![("Content-Range", format!("bytes */{len}"))],
            _ => Vec::new(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let (from, to) = match self {
            ApiError::Conflict { from, to, .. } => (Some(from.to_string()), Some(to.to_string())),
            _ => (None, None),
        };
        ErrorBody {
            error: self.to_string(),
            code: self.code(),
            from,
            to,
            oldest: match self {
                ApiError::PositionTooOld { oldest } => Some(*oldest),
                _ => None,
            },
        }
    }

    /// The whole response.
    pub fn reply(&self) -> Reply {
        let mut reply = Reply::json(self.status(), &self.body());
        reply.headers = self.headers();
        reply
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::BadRequest(m),
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::NotFound(m) => ApiError::NotFound(m),
            DomainError::AlreadyRegistered(m) => ApiError::AlreadyRegistered(m),
            DomainError::ReservedId(m) => ApiError::ReservedId(m),
            DomainError::Conflict {
                rule,
                message,
                from,
                to,
            } => ApiError::Conflict {
                rule,
                message,
                from,
                to,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_keeps_its_status_and_spelling() {
        let table = [
            (ErrorCode::InvalidRequest, 400, "invalid_request"),
            (ErrorCode::Unauthorized, 401, "unauthorized"),
            (ErrorCode::Forbidden, 403, "forbidden"),
            (ErrorCode::NotFound, 404, "not_found"),
            (ErrorCode::MethodNotAllowed, 405, "method_not_allowed"),
            (ErrorCode::AlreadyRegistered, 409, "already_registered"),
            (ErrorCode::ReservedId, 409, "reserved_id"),
            (ErrorCode::InvalidTransition, 409, "invalid_transition"),
            (ErrorCode::AlreadyClaimed, 409, "already_claimed"),
            (
                ErrorCode::ConfirmationRequired,
                409,
                "confirmation_required",
            ),
            (ErrorCode::PositionTooOld, 410, "position_too_old"),
            (ErrorCode::PayloadTooLarge, 413, "payload_too_large"),
            (ErrorCode::RangeNotSatisfiable, 416, "range_not_satisfiable"),
            (
                ErrorCode::IdempotencyKeyReused,
                422,
                "idempotency_key_reused",
            ),
            (ErrorCode::RateLimited, 429, "rate_limited"),
            (ErrorCode::NotImplemented, 501, "not_implemented"),
            (ErrorCode::StorageUnavailable, 503, "storage_unavailable"),
            (ErrorCode::Internal, 500, "internal"),
        ];
        for (code, status, name) in table {
            assert_eq!(code.status(), status, "{name}");
            assert_eq!(
                serde_json::to_value(code).expect("serializes"),
                serde_json::Value::String(name.into())
            );
            if ![409, 410, 422, 500, 501].contains(&status) {
                assert_eq!(ErrorCode::for_status(status), code, "{name}");
            }
        }
    }

    #[test]
    fn a_refused_claim_says_from_to_and_already_claimed() {
        let e = ApiError::from(DomainError::Conflict {
            rule: Conflict::HeldByAnother,
            message: "the request is already claimed by another member".into(),
            from: Status::Claimed,
            to: Status::Claimed,
        });
        let reply = e.reply();
        assert_eq!(reply.status, 409);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(body["code"], "already_claimed");
        assert_eq!(body["from"], "claimed");
        assert_eq!(body["to"], "claimed");
        assert_eq!(
            body["error"],
            "the request is already claimed by another member"
        );
    }

    #[test]
    fn a_server_error_says_nothing_more() {
        let reply = ApiError::Internal.reply();
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.body,
            br#"{"error":"internal server error","code":"internal"}"#
        );
    }

    #[test]
    fn headers_follow_the_status() {
        assert_eq!(
            ApiError::Unauthorized("x").headers(),
            vec![("WWW-Authenticate", "Bearer".to_owned())]
        );
        assert_eq!(
            ApiError::MethodNotAllowed("GET").headers(),
            vec![("Allow", "GET".to_owned())]
        );
        assert_eq!(
            ApiError::TooManyRequests(7).headers(),
            vec![("Retry-After", "7".to_owned())]
        );
        assert_eq!(
            ApiError::Unavailable.headers(),
            vec![("Retry-After", "5".to_owned())]
        );
    }
}
