//! The executor's app (issue 19): a phone-first web app served by the exchange itself at
//! `/`, its assets under `/app/{file}`.
//!
//! The assets (`crates/mess-http/app/`: plain ES modules, no build step, no CDN) are
//! embedded in the binary at compile time, so `cargo run` serves the app with no Node and no
//! network. Every answer carries a strict Content-Security-Policy (no inline script or
//! style), an `ETag` (a hash of the bytes, computed at compile time) honoured by
//! `If-None-Match`, and its own `Cache-Control` (the app-wide `no-store` default does not
//! overwrite a header a handler set). No cookie is ever set: the app keeps the member's key
//! in the browser's storage and sends it as the Bearer header, so there is no CSRF surface.
//! The app is not API: it is left out of the OpenAPI document.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{ApiError, HttpError};

/// The policy of every page and asset of the app.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
    script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

/// Revalidate every time (answered 304 while unchanged): the names carry no hash, so a
/// new binary's assets are seen at once. The service worker keeps them for offline starts.
const REVALIDATE: &str = "no-cache";
/// Icons change rarely.
const ICON_CACHE: &str = "public, max-age=86400";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    cache: &'static str,
    body: &'static [u8],
    etag: u64,
}

/// FNV-1a, 64 bits: an ETag needs to change with the bytes, not to resist an attacker.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! assets {
    ($( $name:literal => $ct:expr, $cache:expr; )*) => {
        const ASSETS: &[Asset] = &[
            $( Asset {
                name: $name,
                content_type: $ct,
                cache: $cache,
                body: include_bytes!(concat!("../app/", $name)),
                etag: fnv1a(include_bytes!(concat!("../app/", $name))),
            }, )*
        ];
    };
}

const JS: &str = "text/javascript; charset=utf-8";

assets! {
    "index.html" => "text/html; charset=utf-8", REVALIDATE;
    "app.js" => JS, REVALIDATE;
    "api.js" => JS, REVALIDATE;
    "feed.js" => JS, REVALIDATE;
    "dom.js" => JS, REVALIDATE;
    "photos.js" => JS, REVALIDATE;
    // Adding a device by QR code, imported by app.js only when used.
    "device.js" => JS, REVALIDATE;
    // The QR encoder of "Add another device": npm `qrcode-generator` 2.0.4's
    // `dist/qrcode.mjs` (MIT, Kazuhiko Arase), unchanged; loaded by a dynamic import only
    // when that screen opens, so it adds nothing to the first load.
    "qrcode.mjs" => JS, REVALIDATE;
    "sw.js" => JS, REVALIDATE;
    "style.css" => "text/css; charset=utf-8", REVALIDATE;
    "manifest.webmanifest" => "application/manifest+json", REVALIDATE;
    "icon.svg" => "image/svg+xml", ICON_CACHE;
    "icon-192.png" => "image/png", ICON_CACHE;
    "icon-512.png" => "image/png", ICON_CACHE;
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The asset's answer: 304 when the client holds these bytes, else 200 with them.
fn serve(req: &HttpRequest, asset: &'static Asset) -> HttpResponse {
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, asset.cache))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header(("Permissions-Policy", "camera=(self), geolocation=(self)"));
    if asset.name == "sw.js" {
        // Registered from /app/ but controls the whole app, `/` included.
        res.insert_header(("Service-Worker-Allowed", HeaderValue::from_static("/")));
    }
    if fresh {
        return res.finish();
    }
    // For HEAD, actix sends the headers (the length included) and drops the body.
    res.content_type(asset.content_type).body(asset.body)
}

async fn index(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let asset = find("index.html").ok_or_else(|| ApiError::NotFound("Not found".into()))?;
    Ok(serve(&req, asset))
}

async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, HttpError> {
    let asset = find(&name).ok_or_else(|| ApiError::NotFound("Not found".into()))?;
    Ok(serve(&req, asset))
}

/// Registers `GET /` and `GET /app/{file}` (and their HEADs) on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(index))
            .route(web::head().to(index))
            .default_service(crate::app::method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/app/{file}")
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

    #[test]
    fn every_asset_is_named_once_and_not_empty() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(
                ASSETS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }
}
