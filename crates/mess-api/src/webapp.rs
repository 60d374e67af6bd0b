//! The executor's app (issue 19): a phone-first web app served by the exchange itself at
//! `/`, its assets under `/app/{file}`, decided once for both hosts (the binary's actix
//! adapter and the Worker).
//!
//! The assets (`crates/mess-api/app/`: plain ES modules, no build step, no CDN) are embedded
//! at compile time, so `cargo run` serves the app with no Node and no network. Every answer
//! carries a strict Content-Security-Policy (no inline script or style), an `ETag` (a hash
//! of the bytes, computed at compile time) honoured by `If-None-Match`, and its own
//! `Cache-Control`. No cookie is ever set: the app keeps the member's key in the browser's
//! storage and sends it as the Bearer header, so there is no CSRF surface. The app is not
//! API: it is left out of the OpenAPI document.

use crate::error::ApiError;
use crate::reply::Reply;

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
pub struct Asset {
    /// Its name under `/app/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its `Cache-Control`.
    pub cache: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// A hash of the bytes, for the `ETag`.
    pub etag: u64,
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
        /// Every embedded file.
        pub const ASSETS: &[Asset] = &[
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

/// The asset called `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET`/`HEAD /` (`name` `None`) or `/app/{name}`: the asset, 304 when `if_none_match` (the
/// request's header, if any) names its bytes, 404 for a name that is not one.
pub fn asset(name: Option<&str>, if_none_match: Option<&[u8]>) -> Result<Reply, ApiError> {
    let asset =
        find(name.unwrap_or("index.html")).ok_or_else(|| ApiError::NotFound("Not found".into()))?;
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = if_none_match.is_some_and(|h| crate::routes::etag_matches(h, &etag));
    let mut headers = vec![
        ("ETag", etag),
        ("Cache-Control", asset.cache.to_owned()),
        ("Content-Security-Policy", CSP.to_owned()),
        (
            "Permissions-Policy",
            "camera=(self), geolocation=(self)".to_owned(),
        ),
    ];
    if asset.name == "sw.js" {
        // Registered from /app/ but controls the whole app, `/` included.
        headers.push(("Service-Worker-Allowed", "/".to_owned()));
    }
    Ok(Reply {
        status: if fresh { 304 } else { 200 },
        content_type: asset.content_type.to_owned(),
        headers,
        body: if fresh {
            Vec::new()
        } else {
            asset.body.to_vec()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_asset_is_answered_304_for_its_own_etag_only() {
        let first = asset(None, None).unwrap();
        assert_eq!(first.status, 200);
        assert!(first.content_type.starts_with("text/html"));
        let etag = first
            .headers
            .iter()
            .find(|(k, _)| *k == "ETag")
            .unwrap()
            .1
            .clone();
        let again = asset(None, Some(format!("W/{etag}, \"x\"").as_bytes())).unwrap();
        assert_eq!((again.status, again.body.len()), (304, 0));
        assert_eq!(asset(None, Some(b"\"other\"")).unwrap().status, 200);
        assert!(matches!(
            asset(Some("nope.js"), None),
            Err(ApiError::NotFound(_))
        ));
    }
}
