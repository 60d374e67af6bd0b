//! The API's documented shapes (for OpenAPI). Responses are built from the domain's own
//! serializers; these types describe exactly what they write.
#![allow(missing_docs)] // the `///` comments below are the schema descriptions

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A thread status. Aliases accepted on input: received, in-progress, needs-input,
/// needs-confirmation, rejected, canceled.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    Pending,
    Claimed,
    InProgress,
    Waiting,
    Held,
    Retrying,
    NeedsInput,
    NeedsConfirmation,
    Completed,
    Partial,
    Failed,
    Declined,
    Expired,
    Cancelled,
    Superseded,
    Delegated,
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

/// How urgent a request is.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorityName {
    Background,
    Normal,
    Elevated,
    Urgent,
}

/// A notification channel.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChannelDoc {
    /// `ntfy`, `slack`, `google_chat` or `webhook`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(ntfy|slack|google_chat|webhook)$")]
    pub kind: String,
    /// ntfy: the topic.
    pub topic: Option<String>,
    /// ntfy: the server (default https://ntfy.sh).
    pub server: Option<String>,
    /// slack, google_chat: the incoming webhook URL.
    pub webhook_url: Option<String>,
    /// webhook: where to POST.
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 signing secret (X-Mess-Signature header).
    pub secret: Option<String>,
}

/// Quiet hours, in the member's time zone.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuietHoursDoc {
    pub enabled: Option<bool>,
    /// HH:MM
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// HH:MM
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
}

/// Notification preferences.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PreferencesDoc {
    pub min_priority: Option<PriorityName>,
    pub quiet_hours: Option<QuietHoursDoc>,
    /// IANA time zone (default UTC).
    pub timezone: Option<String>,
}

/// Registration.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub executor_id: String,
    #[schema(min_length = 1, max_length = 256)]
    pub display_name: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub notifications: Option<Vec<ChannelDoc>>,
    pub preferences: Option<PreferencesDoc>,
    /// Lifecycle hooks: `on_request_created`, `on_request_claimed`, ... to templated webhooks.
    pub hooks: Option<serde_json::Map<String, Value>>,
}

/// The key, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub executor_id: String,
    pub api_key: String,
    pub message: String,
}

/// A profile update: any subset of the fields.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProfileBody {
    #[schema(min_length = 1, max_length = 256)]
    pub display_name: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub notifications: Option<Vec<ChannelDoc>>,
    pub preferences: Option<PreferencesDoc>,
    pub hooks: Option<serde_json::Map<String, Value>>,
}

/// A member as others see it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExecutorView {
    pub id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
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
    #[schema(min_length = 1, max_length = 8192, pattern = "\\S")]
    pub intent: String,
    pub context: Option<Vec<Value>>,
    pub priority: Option<PriorityName>,
    pub response_hint: Option<Vec<Value>>,
    /// When it expires if unclaimed (RFC 3339).
    #[schema(format = DateTime)]
    pub needed_by: Option<String>,
    /// Capabilities a member needs to be notified.
    pub requires: Option<Vec<String>>,
    /// When true, completion waits for the requestor's confirmation.
    pub confirm_before: Option<bool>,
    pub constraints: Option<serde_json::Map<String, Value>>,
}

/// The new thread's ref.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreateResponse {
    #[serde(rename = "ref")]
    pub thread_ref: String,
    pub status: StatusName,
}

/// A status change and/or a message.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UpdateBody {
    pub status: Option<StatusInput>,
    /// MESS blocks: single-key objects (request, reply, answer, cancel, status, response,
    /// query, ack, suggestion, followup, v).
    pub mess: Option<Vec<serde_json::Map<String, Value>>>,
    /// Goes into the status block.
    pub message: Option<Value>,
}

/// A thread in a list.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ThreadSummary {
    #[serde(rename = "ref")]
    pub thread_ref: String,
    pub status: StatusName,
    pub intent: String,
    pub requestor_id: String,
    pub executor_id: Option<String>,
    pub priority: PriorityName,
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
    pub status: StatusName,
    pub intent: String,
    pub requestor_id: String,
    pub executor_id: Option<String>,
    pub priority: PriorityName,
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
    pub status: StatusName,
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
