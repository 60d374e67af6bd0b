//! The API's documented shapes (for OpenAPI). Responses are built from the domain's own
//! serializers; these types describe exactly what they write.
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

/// A notification channel: one of four shapes, no other fields.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelDoc {
    /// ntfy: `POST {server}/{topic}`.
    Ntfy {
        /// 1 to 64 letters, digits, `-` or `_`.
        topic: String,
        /// The ntfy server (default https://ntfy.sh).
        server: Option<String>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The incoming webhook URL.
        webhook_url: String,
    },
    /// A Google Chat incoming webhook.
    GoogleChat {
        /// The incoming webhook URL.
        webhook_url: String,
    },
    /// A generic JSON webhook.
    Webhook {
        /// Where to POST.
        url: String,
        /// HMAC-SHA256 signing secret (X-Mess-Signature header).
        secret: Option<String>,
    },
}

/// One channel shape: `type` is `kind`, the `fields` are its properties, no others.
fn channel(kind: &str, description: &str, fields: Vec<(&str, ObjectBuilder, bool)>) -> Schema {
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([kind])),
        )
        .required("type")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, schema, required) in fields {
        o = o.property(name, schema);
        if required {
            o = o.required(name);
        }
    }
    o.build().into()
}

impl utoipa::PartialSchema for ChannelDoc {
    fn schema() -> RefOr<Schema> {
        let topic = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("1 to 64 letters, digits, `-` or `_`."))
            .pattern(Some("^[A-Za-z0-9_-]{1,64}$"));
        let secret = ObjectBuilder::new()
            .schema_type(string_or_null())
            .description(Some(
                "HMAC-SHA256 signing secret (X-Mess-Signature header).",
            ))
            .min_length(Some(1))
            .max_length(Some(2048))
            .pattern(Some(LINE_PATTERN));
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some(
                "A notification channel: one of four shapes, no other fields.",
            ))
            .item(channel(
                "ntfy",
                "ntfy: `POST {server}/{topic}` (server default https://ntfy.sh).",
                vec![("topic", topic, true), ("server", url_or_null(), false)],
            ))
            .item(channel(
                "slack",
                "A Slack incoming webhook.",
                vec![("webhook_url", url_required(), true)],
            ))
            .item(channel(
                "google_chat",
                "A Google Chat incoming webhook.",
                vec![("webhook_url", url_required(), true)],
            ))
            .item(channel(
                "webhook",
                "A generic JSON webhook.",
                vec![("url", url_required(), true), ("secret", secret, false)],
            ))
            .into()
    }
}

impl ToSchema for ChannelDoc {}

/// Quiet hours, in the member's time zone. Other fields are ignored.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuietHoursDoc {
    /// Default true.
    #[serde(default)]
    pub enabled: bool,
    /// HH:MM
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// HH:MM
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
}

/// Notification preferences. Other fields are kept.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PreferencesDoc {
    pub min_priority: Option<Priority>,
    pub quiet_hours: Option<QuietHoursDoc>,
    /// IANA time zone (default UTC).
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_+/-]{0,63}$")]
    pub timezone: Option<String>,
}

/// An HTTP method for a hook (case-insensitive; default POST).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HookMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// A hook: where and how to call, with `{{variable}}` templates (not in the host).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct HookRequest {
    #[schema(schema_with = url_required)]
    pub url: String,
    pub method: Option<HookMethod>,
    /// At most 32 headers; values are one line.
    #[schema(schema_with = hook_headers)]
    pub headers: Option<serde_json::Map<String, Value>>,
    /// The JSON body (at most 64 KiB), templated.
    pub body: Option<Value>,
}

/// A hook: a URL (POST) or a full request.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookDoc {
    Url(String),
    Request(HookRequest),
}

impl utoipa::PartialSchema for HookDoc {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some("A hook: a URL (POST) or a full request."))
            .item(url_required())
            .item(RefOr::Ref(Ref::from_schema_name("HookRequest")))
            .into()
    }
}

impl ToSchema for HookDoc {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "HookRequest".into(),
            <HookRequest as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// Lifecycle hooks: templated webhooks called at these moments. No other keys.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HooksDoc {
    pub on_request_created: Option<HookDoc>,
    pub on_request_claimed: Option<HookDoc>,
    pub on_request_started: Option<HookDoc>,
    pub on_request_completed: Option<HookDoc>,
    pub on_request_cancelled: Option<HookDoc>,
}

/// Registration. Other fields are ignored.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.?$",
        min_length = 1,
        max_length = 64
    )]
    pub executor_id: String,
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    #[schema(schema_with = capability_list)]
    pub capabilities: Option<Vec<String>>,
    #[schema(max_items = 16)]
    pub notifications: Option<Vec<ChannelDoc>>,
    pub preferences: Option<PreferencesDoc>,
    pub hooks: Option<HooksDoc>,
}

/// The key, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub executor_id: String,
    pub api_key: String,
    pub message: String,
}

/// A profile update: any subset of the fields. Other fields are ignored.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProfileBody {
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    #[schema(schema_with = capability_list)]
    pub capabilities: Option<Vec<String>>,
    #[schema(max_items = 16)]
    pub notifications: Option<Vec<ChannelDoc>>,
    pub preferences: Option<PreferencesDoc>,
    pub hooks: Option<HooksDoc>,
}

/// A member as others see it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExecutorView {
    pub id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
    /// When it was last seen: the later of its latest authenticated request (kept in
    /// memory by the running server) and its latest stored action (registration, profile
    /// change, request, message, status change), which is what remains after a restart.
    #[schema(format = DateTime)]
    pub last_seen: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// The members of an exchange.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExecutorList {
    pub executors: Vec<ExecutorView>,
}

/// The updated profile.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExecutorResponse {
    pub executor: ExecutorView,
}

/// A new request. Every field is kept in the thread's request block, including protocol
/// fields not listed here.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreateBody {
    /// At most 8 KiB (UTF-8); no control characters other than tab and newline.
    #[schema(
        min_length = 1,
        max_length = 8192,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub intent: String,
    pub context: Option<Vec<Value>>,
    pub priority: Option<Priority>,
    /// `response_hints` is accepted as an alias.
    pub response_hint: Option<Vec<Value>>,
    /// When it expires if unclaimed (RFC 3339).
    #[schema(format = DateTime, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")]
    pub needed_by: Option<String>,
    /// Capabilities a member needs to be notified.
    #[schema(schema_with = capability_list)]
    pub requires: Option<Vec<String>>,
    /// When true, completion waits for the requestor's confirmation.
    pub confirm_before: Option<bool>,
    #[schema(schema_with = constraints)]
    pub constraints: Option<serde_json::Map<String, Value>>,
}

fn constraints() -> ObjectBuilder {
    // `timing`, when sent, is an object (or null); its `expires` is the request's deadline.
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property(
            "timing",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                .property(
                    "expires",
                    ObjectBuilder::new()
                        .schema_type(string_or_null())
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::DateTime,
                        )))
                        .pattern(Some(DATE_TIME_PATTERN)),
                ),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
}

/// The new thread's ref.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreateResponse {
    #[serde(rename = "ref")]
    pub thread_ref: String,
    pub status: Status,
}

/// A status change and/or a message: `status` or `mess` (or both) must be sent. Other
/// fields go into the status block (with `message`).
#[derive(Serialize, Deserialize)]
pub struct UpdateBody {
    pub status: Option<StatusInput>,
    pub mess: Option<Vec<serde_json::Map<String, Value>>>,
    pub message: Option<Value>,
}

impl utoipa::PartialSchema for UpdateBody {
    fn schema() -> RefOr<Schema> {
        let status_ref = || RefOr::Ref(Ref::from_schema_name("StatusInput"));
        let fields = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "status",
                utoipa::openapi::schema::OneOfBuilder::new()
                    .item(status_ref())
                    .item(ObjectBuilder::new().schema_type(Type::Null)),
            )
            .property(
                "mess",
                nullable_mess_list().description(Some(
                    "MESS blocks: single-key objects (request, reply, answer, cancel, status, \
                 response, query, ack, suggestion, followup, v).",
                )),
            )
            .property(
                "message",
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .description(Some("Goes into the status block.")),
            );
        let one_of_them = AnyOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .required("status")
                    .property("status", status_ref()),
            )
            .item(
                ObjectBuilder::new()
                    .required("mess")
                    .property("mess", mess_list().min_items(Some(1))),
            );
        AllOfBuilder::new()
            .description(Some(
                "A status change and/or a message: `status` or `mess` (or both) must be sent. \
                 Other fields go into the status block (with `message`).",
            ))
            .item(fields)
            .item(one_of_them)
            .into()
    }
}

impl ToSchema for UpdateBody {}

/// A thread in a list.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ThreadSummary {
    #[serde(rename = "ref")]
    pub thread_ref: String,
    pub status: Status,
    pub intent: String,
    pub requestor_id: String,
    pub executor_id: Option<String>,
    pub priority: Priority,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// One message.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MessageDoc {
    pub from: String,
    #[schema(format = DateTime)]
    pub ts: String,
    pub mess: Vec<serde_json::Map<String, Value>>,
}

/// A thread with its messages.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ThreadDoc {
    #[serde(rename = "ref")]
    pub thread_ref: String,
    pub status: Status,
    pub intent: String,
    pub requestor_id: String,
    pub executor_id: Option<String>,
    pub priority: Priority,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub messages: Vec<MessageDoc>,
}

/// A page of threads, newest-updated first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ThreadList {
    pub threads: Vec<ThreadSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One thread.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ThreadResponse {
    pub thread: ThreadDoc,
}

/// The thread after an update.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UpdateResponse {
    #[serde(rename = "ref")]
    pub thread_ref: String,
    pub status: Status,
    pub thread: ThreadDoc,
}

/// The capability catalog.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CapabilityList {
    pub capabilities: Vec<serde_json::Map<String, Value>>,
}

/// Liveness and storage state.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while storage is unreachable.
    pub status: String,
    pub service: String,
    pub version: String,
    /// `filesystem` or `s3`.
    pub storage: String,
    /// The default exchange.
    pub exchange_id: String,
}

/// A member that left.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RemovedResponse {
    pub executor_id: String,
    pub removed: bool,
}

/// Query parameters of a listing (the handler parses them with `mess_api::query::ListQuery`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only threads with this status (aliases accepted).
    #[param(value_type = Option<StatusInput>)]
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query parameters of the capability catalog (parsed by
/// `mess_api::query::CapabilityQuery`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CapabilityQuery {
    /// Only capabilities with this tag.
    pub tag: Option<String>,
}

/// `{exchange_id}`, in the path of every route under an exchange.
#[derive(utoipa::IntoParams)]
#[into_params(names("exchange_id"), parameter_in = Path)]
pub struct ExchangePath(
    /// The exchange
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub String,
);

/// `{ref}`, a thread's ref.
#[derive(utoipa::IntoParams)]
#[into_params(names("ref"), parameter_in = Path)]
pub struct RefPath(
    /// The thread ref
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Z0-9]{4,16}$")]
    pub String,
);

/// `{executor_id}`, one's own id.
#[derive(utoipa::IntoParams)]
#[into_params(names("executor_id"), parameter_in = Path)]
pub struct ExecutorPath(
    /// Your executor id
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)*\\.?$",
        max_length = 64
    )]
    pub String,
);
