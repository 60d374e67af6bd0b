//! Members: registration, profiles, channels, hooks, executors.
#![allow(missing_docs)] // the `///` comments below are the schema descriptions

use super::*;

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
        /// ntfy 2.16+: offers no longer open to you are updated or cleared in place.
        updates: Option<bool>,
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
                vec![
                    ("topic", topic, true),
                    ("server", url_or_null(), false),
                    (
                        "updates",
                        ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                                Type::Boolean,
                                Type::Null,
                            ]))
                            .description(Some(
                                "The server is ntfy 2.16 or newer: an offer you no longer have \
                                 (taken, cancelled, expired) is updated or cleared in place by \
                                 its sequence id. Off by default: older servers would publish a \
                                 second notification instead.",
                            )),
                        false,
                    ),
                ],
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
    /// Signs each request (`X-Mess-Signature: sha256=<hex>` of the body, and
    /// `X-Mess-Signature-256: t=<unix seconds>,v1=<hex HMAC of "t.body">`). Write-only: read
    /// back as `"set"`.
    #[schema(min_length = 1, max_length = 256)]
    pub secret: Option<String>,
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
    pub on_request_failed: Option<HookDoc>,
    pub on_request_expired: Option<HookDoc>,
    /// The assignee released the claim (back to `pending`).
    pub on_request_released: Option<HookDoc>,
    /// The assignee asked a question (`needs_input`).
    pub on_needs_input: Option<HookDoc>,
    /// A message without a status change, from the other party.
    pub on_message: Option<HookDoc>,
    /// The requestor sent finished work back (`revision_requested`).
    pub on_revision_requested: Option<HookDoc>,
    /// Nobody took the request after it was offered twice (`thread_unclaimed`).
    pub on_request_unclaimed: Option<HookDoc>,
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
    /// Your own profile only: when it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// Your own profile only: your channels, each secret (URL, topic, token) as `"set"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    /// Your own profile only: your notification preferences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<serde_json::Map<String, serde_json::Value>>,
    /// Your own profile only: your hooks by moment, each secret as `"set"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<serde_json::Map<String, serde_json::Value>>,
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

/// How one channel took a test notification (no URL, topic or secret in it).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChannelTestResult {
    /// The channel's type.
    #[schema(example = "ntfy")]
    pub channel: String,
    /// Whether the receiver took it (2xx).
    pub ok: bool,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed (`HTTP 404`, `timed out`, `connection failed`, `destination address not allowed`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Each of the member's channels, in its order, with how its test went.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TestNotificationResponse {
    pub results: Vec<ChannelTestResult>,
}

/// A member that left.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RemovedResponse {
    pub executor_id: String,
    pub removed: bool,
}
