//! The route table: every documented route once. Both the router ([`exchange_scope`],
//! [`top_resources`]) and the
//! OpenAPI document ([`paths`]) are generated from it, so a route cannot be served without
//! being documented, or documented without being served; each resource's `Allow` header
//! (the 405 for any other method) is generated from the same list.

use actix_web::web;
use utoipa::openapi::path::{HttpMethod, PathItem, Paths, PathsBuilder};

use crate::app::{authed_method_not_allowed, metered, method_not_allowed};
use crate::{membership, routes};

/// `GET` -> `web::get()`...
macro_rules! method {
    (GET) => {
        web::get()
    };
    (HEAD) => {
        web::head()
    };
    (POST) => {
        web::post()
    };
    (PATCH) => {
        web::patch()
    };
    (DELETE) => {
        web::delete()
    };
}

/// `GET` -> `HttpMethod::Get`...
macro_rules! http_method {
    (GET) => {
        HttpMethod::Get
    };
    (HEAD) => {
        HttpMethod::Head
    };
    (POST) => {
        HttpMethod::Post
    };
    (PATCH) => {
        HttpMethod::Patch
    };
    (DELETE) => {
        HttpMethod::Delete
    };
}

/// Adds a handler's documented operation (its `#[utoipa::path]`) under `tag`.
fn documented<P: utoipa::Path>(paths: PathsBuilder, tag: &str) -> PathsBuilder {
    let mut operation = P::operation();
    operation.tags = Some(vec![tag.to_owned()]);
    paths.path(
        P::path(),
        PathItem::from_http_methods(P::methods(), operation),
    )
}

/// Why a row of the table and its handler's `#[utoipa::path]` disagree, if they do. A
/// `HEAD` row is served by its `GET` handler, as HTTP has it, and documented as the `GET`.
fn disagreement<P: utoipa::Path>(
    path: &str,
    (method, name): (HttpMethod, &str),
    handler: &str,
) -> Option<String> {
    let documented = P::methods();
    let method_ok = documented.contains(&method)
        || (method == HttpMethod::Head && documented.contains(&HttpMethod::Get));
    (P::path() != path || !method_ok).then(|| {
        format!(
            "{handler}: the table serves {name} {path}, its #[utoipa::path] says {} {}",
            serde_json::to_string(&documented).unwrap_or_default(),
            P::path()
        )
    })
}

/// The `Allow` value of a resource: its methods, comma-separated.
macro_rules! allow {
    ($first:ident $(, $rest:ident)*) => {
        concat!(stringify!($first) $(, ", ", stringify!($rest))*)
    };
}

/// The 405 of a resource: after authentication under an exchange (`auth`), at once for
/// what needs no key (`open`).
macro_rules! not_allowed {
    (auth, $allow:expr) => {
        authed_method_not_allowed($allow)
    };
    (open, $allow:expr) => {
        method_not_allowed($allow)
    };
}

macro_rules! route_table {
    (
        exchange $scope:literal {
            $( $path:literal ($guard:ident) [$tag:literal] { $( $m:ident => $module:ident :: $handler:ident ),+ } )*
        }
        top {
            $( $tpath:literal [$ttag:literal] { $( $tm:ident => $tmodule:ident :: $thandler:ident ),+ } )*
        }
    ) => {
        /// The exchange scope with the table's resources in it, each metered under its full
        /// pattern.
        pub fn exchange_scope() -> actix_web::Scope {
            web::scope($scope)
            $(
                .service(
                    metered(concat!($scope, $path), $path)
                        $( .route(method!($m).to($module::$handler)) )+
                        .default_service(not_allowed!($guard, allow!($($m),+))),
                )
            )*
        }

        /// Registers the table's resources outside the exchange scope on `cfg`.
        pub fn top_resources(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    metered($tpath, $tpath)
                        $( .route(method!($tm).to($tmodule::$thandler)) )+
                        .default_service(method_not_allowed(allow!($($tm),+))),
                );
            )*
        }

        /// The OpenAPI paths of the table, from each handler's `#[utoipa::path]`, tagged
        /// by its row.
        pub fn paths() -> Paths {
            let paths = PathsBuilder::new();
            pastey::paste! {
                $( $( let paths = documented::<$module::[<__path_ $handler>]>(paths, $tag); )+ )*
                $( $( let paths = documented::<$tmodule::[<__path_ $thandler>]>(paths, $ttag); )+ )*
            }
            paths.build()
        }

        /// Every row whose path or method is not what its handler documents (none, or the
        /// table and the spec would disagree; a test checks).
        pub fn disagreements() -> Vec<String> {
            let mut found = Vec::new();
            pastey::paste! {
                $( $( found.extend(disagreement::<$module::[<__path_ $handler>]>(
                    concat!($scope, $path), (http_method!($m), stringify!($m)), stringify!($handler),
                )); )+ )*
                $( $( found.extend(disagreement::<$tmodule::[<__path_ $thandler>]>(
                    $tpath, (http_method!($tm), stringify!($tm)), stringify!($thandler),
                )); )+ )*
            }
            found
        }
    };
}

route_table! {
    exchange "/api/v1/exchanges/{exchange_id}" {
        "/register" (open) ["executors"] { POST => routes::register }
        "/requests" (auth) ["requests"] {
            GET => routes::list_requests, POST => routes::create_request
        }
        "/requests/{ref}" (auth) ["requests"] {
            GET => routes::get_request, PATCH => routes::update_request
        }
        "/requests/{ref}/attachments/{name}" (auth) ["requests"] { GET => routes::get_attachment }
        "/events" (auth) ["requests"] { GET => routes::events }
        "/executors" (auth) ["executors"] { GET => routes::list_executors }
        "/executors/{executor_id}" (auth) ["executors"] {
            GET => routes::get_executor, PATCH => routes::update_executor, DELETE => membership::remove
        }
        "/executors/{executor_id}/rotate-key" (auth) ["executors"] {
            POST => membership::rotate_key
        }
        "/executors/{executor_id}/test-notification" (auth) ["executors"] {
            POST => membership::test_notification
        }
        "/capabilities" (auth) ["executors"] { GET => routes::capabilities }
    }
    top {
        "/health" ["operations"] { GET => routes::health, HEAD => routes::health }
        "/livez" ["operations"] { GET => routes::livez, HEAD => routes::livez }
        "/readyz" ["operations"] { GET => routes::readyz, HEAD => routes::readyz }
        "/metrics" ["operations"] { GET => routes::metrics }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_row_of_the_table_is_what_its_handler_documents() {
        assert_eq!(super::disagreements(), Vec::<String>::new());
    }
}
