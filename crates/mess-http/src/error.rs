//! The API's errors as actix answers them: `mess-api`'s one error table
//! ([`ApiError`] -> status, code, headers, JSON body), wrapped so actix can send it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mess_core::DomainError;

pub use mess_api::{ApiError, ErrorBody, ErrorCode};

use crate::hub::WriteError;

/// An [`ApiError`] on its way out through actix.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HttpError(pub ApiError);

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        crate::respond(self.0.reply())
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<DomainError> for HttpError {
    fn from(e: DomainError) -> Self {
        Self(e.into())
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
