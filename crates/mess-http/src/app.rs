//! The actix application: one `create_app`, shared by the server and the tests.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Resource, Route, web};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::authenticate;
use crate::body::BodyLimit;
use crate::error::{ApiError, HttpError};
use crate::middleware::{self, CorsOrigins};
use crate::openapi::ApiDoc;
use crate::state::AppState;
use crate::table;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest request body, in bytes (`MAX_BODY_BYTES`, default 10 MiB).
    pub body_limit: usize,
    /// Allowed browser origins (`CORS_ORIGINS`).
    pub cors: CorsOrigins,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// The MCP endpoint (one for every worker: its legacy sessions live in it).
    pub mcp: crate::mcp::McpEndpoint,
    /// Trusted proxies and the access log.
    pub requests: middleware::RequestContext,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: mess_api::BODY_LIMIT,
            cors: CorsOrigins::Any,
            shutdown_timeout: Duration::from_secs(30),
            mcp: crate::mcp::McpEndpoint::default(),
            requests: middleware::RequestContext::default(),
        }
    }
}

async fn not_found() -> Result<HttpResponse, HttpError> {
    Err(ApiError::NotFound("Not found".into()).into())
}

/// 405 with `Allow: allow`, for a resource outside an exchange (or `/register`).
pub(crate) fn method_not_allowed(allow: &'static str) -> Route {
    web::to(
        move || async move { Err::<HttpResponse, _>(HttpError(ApiError::MethodNotAllowed(allow))) },
    )
}

/// Under an exchange, authentication comes first: 401 before 404 or 405.
async fn authed_not_found(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authenticate(&req, &state)?;
    Err(ApiError::NotFound("Not found".into()).into())
}

/// 405 with `Allow: allow` under an exchange, after authentication (401 first).
pub(crate) fn authed_method_not_allowed(allow: &'static str) -> Route {
    web::to(
        move |req: HttpRequest, state: web::Data<AppState>| async move {
            authenticate(&req, &state)?;
            Err::<HttpResponse, _>(HttpError(ApiError::MethodNotAllowed(allow)))
        },
    )
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::json())
}

/// A resource whose requests are counted under `route` (its full pattern).
pub(crate) fn metered(
    route: &'static str,
    path: &'static str,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics = std::sync::Arc::new(middleware::RouteMetrics::new(route));
    web::resource(path).wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
        let metrics = std::sync::Arc::clone(&metrics);
        async move { middleware::metrics(&metrics, req, next).await }
    }))
}

/// Registers every route on `cfg` (without the app-wide middleware): the route table's
/// (`table.rs`), then the spec, the docs and the 404 for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The router tries patterns in order, and each one with a dynamic segment is a regex
    // match: the exchange scope (nearly every request) goes first, before the docs'.
    cfg.service(
        table::exchange_scope().default_service(
            web::to(authed_not_found).wrap(from_fn(middleware::metrics_unmatched)),
        ),
    );
    table::top_resources(cfg);
    cfg.service(
        metered("/api/v1/openapi.json", "/api/v1/openapi.json").route(web::get().to(openapi_json)),
    )
    .route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/docs/"))
                .finish()
        }),
    )
    .service(SwaggerUi::new("/docs/{_:.*}").url("/docs/openapi.json", ApiDoc::openapi()))
    // The executor's app at `/` and `/app/{file}` (not API: outside the table and the spec).
    .configure(crate::webapp::configure)
    // The signed links of notifications' buttons (not API either: no Bearer key).
    .configure(crate::links::configure)
    .default_service(web::to(not_found).wrap(from_fn(middleware::metrics_unmatched)));
}

/// The whole application: routes, shared state and middleware.
pub fn create_app(
    state: web::Data<AppState>,
    config: HttpConfig,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(web::Data::new(BodyLimit(config.body_limit)))
        .app_data(web::Data::new(config.cors))
        .app_data(web::Data::new(config.requests))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            HttpError(ApiError::bad(format!("invalid query string: {err}"))).into()
        }))
        .app_data(
            web::PathConfig::default()
                .error_handler(|_, _| HttpError(ApiError::bad("invalid path")).into()),
        )
        // Before the exchange scope, which would take its path.
        .service(config.mcp.clone().scope())
        .configure(configure)
        .wrap(ErrorHandlers::new().default_handler(middleware::json_error))
        .wrap(
            DefaultHeaders::new()
                .add(("Cache-Control", "no-store"))
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "no-referrer")),
        )
        .wrap(from_fn(middleware::cors))
        .wrap(from_fn(middleware::request))
        // Outermost: a request for an exchange another replica owns goes there as it is.
        .wrap(from_fn(crate::replicas::route))
}

/// Serves `listener` while the event log is replayed, before [`serve`] can: `/livez` 200,
/// `/readyz` 503 (not replayed), anything else 503 `storage_unavailable` with
/// `Retry-After`. One worker, no signal handling (the caller stops it: `handle().stop`,
/// then passes a clone of the same listener to [`serve`]; connections made in between
/// wait in the listener's backlog).
pub fn serve_starting(listener: TcpListener) -> std::io::Result<Server> {
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/livez",
                web::get().to(|| async { crate::respond(mess_api::routes::livez()) }),
            )
            .route(
                "/readyz",
                web::get().to(|| async {
                    crate::respond(mess_api::routes::readyz(
                        mess_api::routes::Readiness::STARTING,
                    ))
                }),
            )
            .default_service(web::to(|| async {
                crate::respond(mess_api::routes::starting())
            }))
            .wrap(
                DefaultHeaders::new()
                    .add(("Cache-Control", "no-store"))
                    .add(("X-Content-Type-Options", "nosniff")),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .shutdown_timeout(1)
    .run();
    Ok(server)
}

/// Starts serving on `listener` (bound by the caller: port 0 in tests). The returned
/// server stops gracefully on SIGTERM/SIGINT, finishing in-flight requests.
pub fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    config: HttpConfig,
) -> std::io::Result<Server> {
    let shutdown = config.shutdown_timeout.as_secs();
    // The factory runs once on each worker thread: give it its delivery task there.
    let server = HttpServer::new(move || {
        crate::hub::deliver_on_this_thread();
        create_app(state.clone(), config.clone())
    })
    .listen(listener)?
    .shutdown_timeout(shutdown)
    .run();
    Ok(server)
}
