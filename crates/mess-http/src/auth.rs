//! Authentication: `Authorization: Bearer mess_{exchange}_{token}`, looked up by the key's
//! hash in memory (never by scanning storage).

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::{Ready, ready};
use mess_core::{ApiKey, ExchangeId, Member};

use crate::error::ApiError;
use crate::hub::ExchangeHandle;
use crate::state::AppState;

/// A request made with a valid key of the exchange in its path.
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
    state.guard.auth_failures.check(ip)?;
    let result = check_key(req, state);
    if matches!(result, Err(ApiError::Unauthorized(_))) {
        // Count the failure; the next attempt past the limit gets 429.
        let _ = state.guard.auth_failures.take(ip);
    }
    result
}

fn check_key(req: &HttpRequest, state: &AppState) -> Result<Authed, ApiError> {
    let mut headers = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION);
    let header = headers.next().ok_or(ApiError::Unauthorized(
        "missing API key: send Authorization: Bearer <key>",
    ))?;
    // Two keys are ambiguous (a proxy may check one, we the other): refuse both.
    if headers.next().is_some() {
        return Err(ApiError::Unauthorized(
            "send exactly one Authorization header",
        ));
    }
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(
            "send the API key as Authorization: Bearer <key>",
        ))?;
    let key = ApiKey::parse(token).ok_or(ApiError::Unauthorized("invalid API key"))?;
    let handle = state
        .hub
        .exchange(&key.exchange())
        .ok_or(ApiError::Unauthorized("invalid API key"))?;
    let member = handle
        .read(|x| x.authenticate(&key).cloned())
        .ok_or(ApiError::Unauthorized("invalid API key"))?;
    let path_exchange = req.match_info().get("exchange_id").unwrap_or_default();
    let path_exchange = ExchangeId::parse(path_exchange).map_err(ApiError::from)?;
    if path_exchange != *handle.id() {
        return Err(ApiError::Forbidden(
            "this API key belongs to another exchange".into(),
        ));
    }
    handle.touch(&member.executor_id, state.hub.now());
    Ok(Authed {
        exchange: handle,
        member,
    })
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => authenticate(req, state),
            None => Err(ApiError::Internal),
        })
    }
}
