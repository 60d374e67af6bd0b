//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, error};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mess-exchange",
        description = "A self-hosted exchange for the MESS protocol: agents post requests for the physical world, human executors claim and answer them.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorCode,
        mess_core::Status,
        api::StatusInput,
        mess_core::Priority,
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
        api::ChannelTestResult,
        api::TestNotificationResponse,
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
        api::ReplicaHealth,
        api::Liveness,
        api::Readiness,
        api::ReadinessChecks,
    )),
    modifiers(&RoutePaths, &BearerAuth, &NoNulInKeys),
    tags(
        (name = "requests", description = "Request threads"),
        (name = "executors", description = "Members of an exchange"),
        (name = "operations", description = "Health, probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The paths come from the route table (`table.rs`), the router's own list.
struct RoutePaths;

impl Modify for RoutePaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.paths = crate::table::paths();
    }
}

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

/// Says in the spec what the server does: a NUL in any key of a body is refused (400,
/// mess-core's wire rules), so every object that takes fields beyond its listed ones
/// carries `propertyNames` without NUL. Without it, a body with an unknown field whose name
/// holds a NUL is schema-valid and yet refused.
struct NoNulInKeys;

/// The pattern every property name of an open object matches.
pub const NO_NUL: &str = "^[^\\x00]*$";

impl Modify for NoNulInKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            for schema in components.schemas.values_mut() {
                no_nul_in_keys(schema);
            }
        }
    }
}

fn no_nul_in_keys(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            let is_object = match &o.schema_type {
                SchemaType::Type(t) => *t == Type::Object,
                SchemaType::Array(ts) => ts.contains(&Type::Object),
                SchemaType::AnyValue => false,
            };
            let open = !matches!(
                o.additional_properties.as_deref(),
                Some(AdditionalProperties::FreeForm(false))
            );
            if is_object && open {
                match o.property_names.as_deref_mut() {
                    None => {
                        let names = ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(NO_NUL))
                            .build();
                        o.property_names = Some(Box::new(Schema::Object(names)));
                    }
                    Some(Schema::Object(names)) if names.pattern.is_none() => {
                        names.pattern = Some(NO_NUL.into());
                    }
                    Some(_) => {}
                }
            }
            o.properties.values_mut().for_each(no_nul_in_keys);
            if let Some(AdditionalProperties::RefOr(inner)) = o.additional_properties.as_deref_mut()
            {
                no_nul_in_keys(inner);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                no_nul_in_keys(items);
            }
        }
        Schema::AllOf(x) => x.items.iter_mut().for_each(no_nul_in_keys),
        Schema::AnyOf(x) => x.items.iter_mut().for_each(no_nul_in_keys),
        Schema::OneOf(x) => x.items.iter_mut().for_each(no_nul_in_keys),
        _ => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_take_unknown_fields_say_their_names_hold_no_nul() {
        let spec: serde_json::Value = serde_json::from_str(&json()).expect("JSON");
        let schemas = &spec["components"]["schemas"];
        for name in ["RegisterBody", "ProfileBody", "CreateBody"] {
            assert_eq!(schemas[name]["propertyNames"]["pattern"], NO_NUL, "{name}");
        }
        // A closed object lists every name it takes: nothing to add.
        assert_eq!(schemas["HooksDoc"]["additionalProperties"], false);
        assert!(schemas["HooksDoc"].get("propertyNames").is_none());
    }

    #[test]
    fn every_reference_names_a_schema_the_document_holds() {
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|i| refs(i, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
                _ => {}
            }
        }
        let spec: serde_json::Value = serde_json::from_str(&json()).expect("JSON");
        let mut found = Vec::new();
        refs(&spec, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}: not a schema reference"));
            assert!(
                spec["components"]["schemas"].get(name).is_some(),
                "{r} is not in components (generated clients skip the operation)"
            );
        }
    }
}
