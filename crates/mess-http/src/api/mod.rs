//! The API's documented shapes (for OpenAPI). Responses are built from the domain's own
//! serializers; these types describe exactly what they write.
//!
//! # Layout
//! - here: the schema pieces the others share (MESS blocks, URLs, capabilities), and the
//!   status names accepted on input;
//! - `members`: registration, profiles, channels, hooks, executors;
//! - `threads`: creating, updating and reading threads, and health;
//! - `params`: path and query parameters.
#![allow(missing_docs)] // the `///` comments below are the schema descriptions

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

use mess_core::{BlockKind, Priority, Status};

/// Not blank, no control characters.
pub const LINE_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// A notification URL: http or https, a host name (labels start with a letter), an optional
/// port and path. Link-local addresses and cloud metadata hosts are refused.
pub const URL_PATTERN: &str = r"^https?://[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)*(:[0-9]{1,4})?(/[A-Za-z0-9._~/-]*)?$";
/// An RFC 3339 date-time.
pub const DATE_TIME_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

fn string_or_null() -> SchemaType {
    SchemaType::from_iter([Type::String, Type::Null])
}

/// A capability name: not blank, no control characters, at most 128 characters.
fn capability() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(128))
        .pattern(Some(LINE_PATTERN))
}

/// A list of capabilities (at most 256), or null.
pub fn capability_list() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(capability())
        .max_items(Some(256))
}

/// A MESS block: an object with exactly one key, the block's kind.
pub fn mess_block() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A MESS block: an object with exactly one key (request, reply, answer, cancel, \
             status, response, query, ack, suggestion, followup, v); its value is stored verbatim.",
        ))
        .min_properties(Some(1))
        .max_properties(Some(1))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(BlockKind::ALL.map(BlockKind::as_str))),
        ))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
}

fn mess_list() -> ArrayBuilder {
    ArrayBuilder::new().items(mess_block())
}

fn nullable_mess_list() -> ArrayBuilder {
    mess_list().schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
}

fn url_string(nullable: bool) -> ObjectBuilder {
    let t = if nullable {
        string_or_null()
    } else {
        Type::String.into()
    };
    ObjectBuilder::new()
        .schema_type(t)
        .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
        .max_length(Some(2048))
        .pattern(Some(URL_PATTERN))
}

fn url_required() -> ObjectBuilder {
    url_string(false)
}

fn url_or_null() -> ObjectBuilder {
    url_string(true)
}

/// Hook headers: at most 32, token names, one-line values.
fn hook_headers() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(32))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]*$"))
                .build(),
        )))))
}

/// A status as a client may send it: a canonical name or an alias.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StatusInput {
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "claimed")]
    Claimed,
    #[serde(rename = "in_progress")]
    InProgress,
    #[serde(rename = "waiting")]
    Waiting,
    #[serde(rename = "held")]
    Held,
    #[serde(rename = "retrying")]
    Retrying,
    #[serde(rename = "needs_input")]
    NeedsInput,
    #[serde(rename = "needs_confirmation")]
    NeedsConfirmation,
    #[serde(rename = "completed")]
    Completed,
    #[serde(rename = "partial")]
    Partial,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "declined")]
    Declined,
    #[serde(rename = "expired")]
    Expired,
    #[serde(rename = "cancelled")]
    Cancelled,
    #[serde(rename = "superseded")]
    Superseded,
    #[serde(rename = "delegated")]
    Delegated,
    #[serde(rename = "received")]
    Received,
    #[serde(rename = "in-progress")]
    InProgressAlias,
    #[serde(rename = "needs-input")]
    NeedsInputAlias,
    #[serde(rename = "needs-confirmation")]
    NeedsConfirmationAlias,
    #[serde(rename = "rejected")]
    Rejected,
    #[serde(rename = "canceled")]
    Canceled,
}

mod members;
mod params;
mod threads;

pub use members::*;
pub use params::*;
pub use threads::*;
