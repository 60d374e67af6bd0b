//! The API's errors are `mess-api`'s one table ([`ApiError`] -> status, code, headers,
//! JSON body); this sends its answers, and every other, as a Worker `Response`.

pub use mess_api::ApiError;
use mess_api::Reply;
use worker::{Headers, Response};

/// A `mess-api` answer as a Worker response.
pub fn respond(reply: Reply) -> Response {
    let headers = Headers::new();
    let _ = headers.set("Content-Type", &reply.content_type);
    for (name, value) in &reply.headers {
        let _ = headers.set(name, value);
    }
    Response::builder()
        .with_status(reply.status)
        .with_headers(headers)
        .fixed(reply.body)
}

/// An error as a Worker response.
pub fn error_response(e: &ApiError) -> Response {
    respond(e.reply())
}
