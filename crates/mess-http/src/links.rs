//! `/a/{token}`: the signed one-tap links of notifications (a claim from ntfy's button, a
//! confirm page from Slack's), adapted to actix; `mess_api::links` decides. Outside the API
//! prefix and the OpenAPI document: the token is the credential, there is no Bearer key.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use mess_core::action_link::{ActionLink, LinkError};

use crate::respond;
use crate::state::AppState;

/// Whether the client reads HTML (a browser following a link or posting the form).
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// `GET`/`HEAD` (what the link would do) and `POST` (do it) of `/a/{token}`.
async fn action(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let html = wants_html(&req);
    let ip = crate::limits::client_ip(&req);
    let Some(key) = state.hub.action_key() else {
        return respond(mess_api::links::refused(LinkError::Invalid, html));
    };
    let now = state.hub.now().unix_millis().div_euclid(1000);
    // Guessing tokens counts as failing to authenticate (and is as futile: 128-bit tags).
    let link = match state.guard.auth_failures.attempt(
        ip,
        || ActionLink::verify(key, &token, now),
        |e| *e == LinkError::Invalid,
    ) {
        Ok(Ok(link)) => link,
        Ok(Err(e)) => return respond(mess_api::links::refused(e, html)),
        Err(e) => return actix_web::ResponseError::error_response(&crate::error::HttpError(e)),
    };
    let Some(x) = state.hub.exchange(&link.exchange) else {
        return respond(mess_api::links::refused(LinkError::Invalid, html));
    };
    if req.method() == Method::POST {
        respond(mess_api::links::claim(&*x, &link, html).await)
    } else {
        respond(mess_api::links::preview(&*x, &link, &token, html))
    }
}

/// Registers `/a/{token}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/a/{token}")
            .route(web::get().to(action))
            .route(web::head().to(action))
            .route(web::post().to(action))
            .default_service(crate::app::method_not_allowed("GET, HEAD, POST")),
    );
}
