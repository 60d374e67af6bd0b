//! A member's own key and membership: rotate the key, or leave the exchange.

use actix_web::{HttpRequest, HttpResponse};
use mess_api::routes;

use crate::api;
use crate::auth::Authed;
use crate::error::{ErrorBody, HttpError};
use crate::respond;
use crate::routes::segment;

/// Replace your own API key. The old key stops working at once; the new one is shown once.
#[utoipa::path(
    post,
    path = "/api/v1/exchanges/{exchange_id}/executors/{executor_id}/rotate-key",
    params(api::ExchangePath, api::ExecutorPath),
    responses(
        (status = 200, description = "The new key; save it", body = api::RegisterResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not your key, or key of another exchange", body = ErrorBody),
        (status = 404, description = "Executor not found", body = ErrorBody),
        (status = 429, description = "Too many failed authentications", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_key(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let id = segment(&req, "executor_id");
    Ok(respond(
        routes::rotate_key(&*auth.exchange, &auth.member, id).await?,
    ))
}

/// Leave the exchange: your record and key are deleted; threads you took part in stay.
#[utoipa::path(
    delete,
    path = "/api/v1/exchanges/{exchange_id}/executors/{executor_id}",
    params(api::ExchangePath, api::ExecutorPath),
    responses(
        (status = 200, description = "Removed", body = api::RemovedResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not yourself, or key of another exchange", body = ErrorBody),
        (status = 404, description = "Executor not found", body = ErrorBody),
        (status = 429, description = "Too many failed authentications", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let id = segment(&req, "executor_id");
    Ok(respond(
        routes::remove_executor(&*auth.exchange, &auth.member, id).await?,
    ))
}

/// Send one test notification to each of your own channels, and see how each went.
#[utoipa::path(
    post,
    path = "/api/v1/exchanges/{exchange_id}/executors/{executor_id}/test-notification",
    params(api::ExchangePath, api::ExecutorPath),
    responses(
        (status = 200, description = "Each channel's result, in your order (one attempt each; no URL or secret in it)", body = api::TestNotificationResponse),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Not yourself, or key of another exchange", body = ErrorBody),
        (status = 429, description = "Too many failed authentications", body = ErrorBody),
        (status = 501, description = "This host does not send test notifications", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn test_notification(auth: Authed, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let id = segment(&req, "executor_id");
    Ok(respond(
        routes::test_notification(&*auth.exchange, &auth.member, id).await?,
    ))
}
