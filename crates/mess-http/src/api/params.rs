//! Path and query parameters.
#![allow(missing_docs)] // the `///` comments below are the schema descriptions

use super::*;

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
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Za-z0-9][A-Za-z0-9-]{0,62}$")]
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

/// Query parameters of a thread's GET: a bounded wait for its next change.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Hold the answer until the thread's version is above `since`, at most this many
    /// seconds (0 to 60); then answer the thread as it is (200, never 304).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u32>,
    /// The version already seen (default: the current one, so the answer waits for the
    /// next change). Only with `wait`.
    #[param(minimum = 0)]
    pub since: Option<u64>,
    /// `links`: each attachment as a link to the attachment route (`ETag: "<version>-links"`)
    /// instead of its `data:` URI (`inline`, the default).
    #[param(inline)]
    pub attachments: Option<AttachmentsMode>,
}

/// How a thread's GET shows attachments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentsMode {
    /// `data:` URIs, as the seed's shapes have them.
    Inline,
    /// Links to `.../requests/{ref}/attachments/{n}`.
    Links,
}
