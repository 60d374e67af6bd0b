//! Threads: creating, updating and reading them; health.
#![allow(missing_docs)] // the `///` comments below are the schema descriptions

use super::*;

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
                    .item(revision())
                    .item(ObjectBuilder::new().schema_type(Type::Null)),
            )
            .property(
                "reason",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .description(Some(
                        "With `revision_requested`: why the work must be done again (required; \
                         not only white space). Other fields go into its status block, `mess` \
                         after it.",
                    )),
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
                    .property("mess", mess_list().min_items(Some(1)))
                    // A message alone, or with a status: a revision needs its reason.
                    .property(
                        "status",
                        utoipa::openapi::schema::OneOfBuilder::new()
                            .item(status_ref())
                            .item(ObjectBuilder::new().schema_type(Type::Null)),
                    ),
            )
            .item(
                ObjectBuilder::new()
                    .required("status")
                    .required("reason")
                    .property("status", revision())
                    .property(
                        "reason",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(r"\S")),
                    ),
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

/// `revision_requested`: a PATCH value only (never a thread's status or a `?status=`
/// filter), by the requestor of a completed or partial thread within the review window.
fn revision() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["revision_requested"]))
        .description(Some(
            "The requestor asks for the work again (with `reason`), within 24 h of `completed` \
             or `partial`: the thread goes back to `in_progress` with the same assignee.",
        ))
}

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
    /// Grows by one for each change a GET would show (1 at creation); compare with `>`.
    #[schema(minimum = 1)]
    pub version: u64,
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
    /// Grows by one for each change a GET would show (1 at creation); compare with `>`.
    #[schema(minimum = 1)]
    pub version: u64,
    pub messages: Vec<MessageDoc>,
}

/// A page of threads, newest-updated first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ThreadList {
    pub threads: Vec<ThreadSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The change feed's head when this page was read: follow `GET .../events?since=<pos>`
    /// to see every change after it.
    pub pos: u64,
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
    /// Only on one replica of several sharing a bucket (`ADVERTISE_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaHealth>,
}

/// One replica of several on a bucket, in `/health`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReplicaHealth {
    /// Its `ADVERTISE_URL`, where the other replicas forward to it.
    pub url: String,
    /// How many exchanges it holds the lease of (serves) now.
    pub owned: u64,
}

/// The process answers (`/livez`).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `alive`.
    pub status: String,
    pub service: String,
    pub version: String,
}

/// Whether to send traffic here (`/readyz`), and why not.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` (200) or `not_ready` (503).
    pub status: String,
    pub checks: ReadinessChecks,
}

/// `/readyz`'s checks, each `true` when it passes.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReadinessChecks {
    /// The event log has been replayed (false while the server starts).
    pub replayed: bool,
    /// Storage took a probe write just now.
    pub storage: bool,
    /// The last write before that probe did not fail.
    pub writes: bool,
}
