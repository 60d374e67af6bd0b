//! The executor's app at `/` and `/app/{file}` (decided in `mess_api::webapp`), adapted to
//! actix: answers gzipped for clients that accept them.

use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::HttpError;
pub use mess_api::webapp::CSP;

async fn index(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let inm = req.headers().get("if-none-match").map(|v| v.as_bytes());
    // For HEAD, actix sends the headers (the length included) and drops the body.
    Ok(crate::respond(mess_api::webapp::asset(None, inm)?))
}

async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, HttpError> {
    let inm = req.headers().get("if-none-match").map(|v| v.as_bytes());
    Ok(crate::respond(mess_api::webapp::asset(Some(&name), inm)?))
}

/// Registers `GET /` and `GET /app/{file}` (and their HEADs) on `cfg`. The app's answers
/// are gzipped for clients that accept it (a phone on a slow network loads about a third
/// of the bytes); the API's are not.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .wrap(Compress::default())
            .route(web::get().to(index))
            .route(web::head().to(index))
            .default_service(crate::app::method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/app/{file}")
            .wrap(Compress::default())
            .route(web::get().to(file))
            .route(web::head().to(file))
            .default_service(crate::app::method_not_allowed("GET, HEAD")),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use actix_web::App;
    use actix_web::body::MessageBody;
    use actix_web::http::StatusCode;
    use actix_web::test as web_test;

    use super::*;

    fn header<'a>(res: &'a actix_web::dev::ServiceResponse, name: &str) -> &'a str {
        res.headers().get(name).unwrap().to_str().unwrap()
    }

    #[actix_web::test]
    async fn serves_the_shell_and_its_assets_with_the_policy() {
        let app = web_test::init_service(App::new().configure(configure)).await;

        let res =
            web_test::call_service(&app, web_test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(header(&res, "content-type").starts_with("text/html"));
        assert_eq!(header(&res, "content-security-policy"), CSP);
        assert!(res.headers().get("set-cookie").is_none());
        let etag = header(&res, "etag").to_owned();
        let body = res.into_body().try_into_bytes().unwrap();
        let html = std::str::from_utf8(&body).unwrap();
        assert!(html.contains("/app/app.js"));
        // No inline script or style: every script has a src, and no style attributes.
        assert!(!html.contains("<script>") && !html.contains("style="));

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri("/")
                .insert_header(("If-None-Match", etag.as_str()))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get().uri("/app/app.js").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(header(&res, "content-type").starts_with("text/javascript"));
        assert_eq!(header(&res, "cache-control"), "no-cache");
        assert_eq!(header(&res, "content-security-policy"), CSP);

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get().uri("/app/sw.js").to_request(),
        )
        .await;
        assert_eq!(header(&res, "service-worker-allowed"), "/");

        for (uri, ct) in [
            ("/app/qrcode.mjs", "text/javascript"),
            ("/app/style.css", "text/css"),
            ("/app/manifest.webmanifest", "application/manifest+json"),
            ("/app/icon-192.png", "image/png"),
        ] {
            let res =
                web_test::call_service(&app, web_test::TestRequest::get().uri(uri).to_request())
                    .await;
            assert_eq!(res.status(), StatusCode::OK, "{uri}");
            assert!(header(&res, "content-type").starts_with(ct), "{uri}");
        }

        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get()
                .uri("/app/nope.js")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    #[actix_web::test]
    async fn the_app_is_gzipped_for_clients_that_accept_it() {
        let app = web_test::init_service(App::new().configure(configure)).await;
        let get = |gzip: bool| {
            let mut req = web_test::TestRequest::get().uri("/app/app.js");
            if gzip {
                req = req.insert_header(("Accept-Encoding", "gzip"));
            }
            req.to_request()
        };
        let plain = web_test::call_service(&app, get(false)).await;
        assert!(plain.headers().get("content-encoding").is_none());
        let plain = web_test::read_body(plain).await;
        assert_eq!(plain, mess_api::webapp::find("app.js").unwrap().body);
        let zipped = web_test::call_service(&app, get(true)).await;
        assert_eq!(header(&zipped, "content-encoding"), "gzip");
        assert_eq!(header(&zipped, "content-security-policy"), CSP);
        let zipped = web_test::read_body(zipped).await;
        assert!(zipped.starts_with(&[0x1f, 0x8b]), "a gzip stream");
        assert!(
            zipped.len() * 2 < plain.len(),
            "{} of {}",
            zipped.len(),
            plain.len()
        );
    }
}
