//! Authentication: `Authorization: Bearer mess_{exchange}_{token}`, looked up by the key's
//! hash in memory (never by scanning storage).

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::{Ready, ready};
use mess_api::auth;
use mess_core::Member;

use crate::error::{ApiError, HttpError};
use crate::hub::ExchangeHandle;
use crate::routes::segment;
use crate::state::AppState;

/// A request made with a valid key of the exchange in its path.
#[derive(Clone)]
pub struct Authed {
    /// The exchange.
    pub exchange: Arc<ExchangeHandle>,
    /// The member whose key it is.
    pub member: Arc<Member>,
}

/// Checks the request's key against the exchange named in its path: 401 without a valid
/// key, 403 for a valid key of another exchange, 400 for a malformed exchange id.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Authed, ApiError> {
    let ip = crate::limits::client_ip(req);
    state.guard.auth_failures.attempt(
        ip,
        || check_key(req, state),
        |e| matches!(e, ApiError::Unauthorized(_)),
    )?
}

fn check_key(req: &HttpRequest, state: &AppState) -> Result<Authed, ApiError> {
    let headers = req.headers().get_all(header::AUTHORIZATION);
    let key = auth::bearer(headers.map(|v| v.as_bytes()))?;
    let exchange = state
        .hub
        .exchange(&key.exchange())
        .ok_or(ApiError::Unauthorized("invalid API key"))?;
    let member = auth::member_of(&*exchange, &key, segment(req, "exchange_id"))?;
    Ok(Authed { exchange, member })
}

impl FromRequest for Authed {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => authenticate(req, state).map_err(HttpError),
            None => Err(HttpError(ApiError::Internal)),
        })
    }
}
