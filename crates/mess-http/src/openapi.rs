//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, error, membership, routes};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mess-exchange",
        description = "A self-hosted exchange for the MESS protocol: agents post requests for the physical world, human executors claim and answer them.",
        license(name = "Apache-2.0"),
    ),
    paths(
        routes::register,
        routes::list_requests,
        routes::create_request,
        routes::get_request,
        routes::update_request,
        routes::get_attachment,
        routes::list_executors,
        routes::update_executor,
        membership::rotate_key,
        membership::remove,
        routes::capabilities,
        routes::health,
        routes::metrics,
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorCode,
        api::StatusName,
        api::StatusInput,
        api::PriorityName,
        api::ChannelDoc,
        api::PreferencesDoc,
        api::QuietHoursDoc,
        api::HookMethod,
        api::HookRequest,
        api::HookDoc,
        api::HooksDoc,
        api::RegisterBody,
        api::RegisterResponse,
        api::ProfileBody,
        api::ExecutorView,
        api::ExecutorList,
        api::ExecutorResponse,
        api::RemovedResponse,
        api::CreateBody,
        api::CreateResponse,
        api::UpdateBody,
        api::ThreadSummary,
        api::MessageDoc,
        api::ThreadDoc,
        api::ThreadList,
        api::ThreadResponse,
        api::UpdateResponse,
        api::CapabilityList,
        api::Health,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "requests", description = "Request threads"),
        (name = "executors", description = "Members of an exchange"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mess_{exchange}_{token}")
                    .build(),
            ),
        );
    }
}

/// The document as YAML (what `mess-exchange openapi` prints and `openapi.yaml` holds).
pub fn yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .expect("the OpenAPI document always serializes")
}

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document always serializes")
}
