//! The MCP tools of an exchange (`/api/v1/exchanges/{id}/mcp`), decided once and free of
//! any MCP SDK: their names, descriptions and input schemas, what each does through the
//! port, and how a thread maps to an MCP task (protocol.md, "Agents over MCP"). A host's
//! MCP transport (the binary's `rmcp` adapter) turns [`ToolOutput`] and [`TaskView`] into
//! the protocol's types.

use std::sync::Arc;
use std::time::Duration;

use mess_core::mess::data_uris;
use mess_core::status::Group;
use mess_core::wire::decode_data_uri;
use mess_core::{
    Actor, Block, BlockKind, Command, Member, NewRequest, Status, StatusUpdate, Thread, ThreadRef,
};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::port::{ExchangePort, Written};
use crate::query::MAX_WAIT_SECS;
use crate::routes::thread_ref;

/// The longest a `mess_wait` holds, in seconds, when the caller names no timeout.
pub const DEFAULT_WAIT_SECS: u64 = 50;

/// One tool as `tools/list` shows it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Its name.
    pub name: &'static str,
    /// What it does, written for a model to read.
    pub description: &'static str,
    /// The JSON Schema of its arguments.
    pub input_schema: Value,
}

/// One content item of a tool's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Text for the model.
    Text(String),
    /// An image: its bytes and MIME type.
    Image(Vec<u8>, String),
    /// Audio: its bytes and MIME type.
    Audio(Vec<u8>, String),
    /// Any other file: its bytes, MIME type and a URI naming it.
    Blob(Vec<u8>, String, String),
    /// An image kept as a blob (its SHA-256 and MIME type), read by [`resolve`] into an
    /// [`Content::Image`] before the output is sent.
    Stored(String, String),
}

/// Reads the stored images of `out` ([`Content::Stored`]) into image content; one that
/// cannot be read becomes a line of text saying so.
pub async fn resolve<P: ExchangePort>(x: &P, out: &mut ToolOutput) {
    for item in &mut out.content {
        if let Content::Stored(sha256, mime) = item {
            *item = match x.blob(sha256).await {
                Ok(Some(bytes)) => Content::Image(bytes.to_vec(), std::mem::take(mime)),
                _ => Content::Text("(an attached image could not be read)".into()),
            };
        }
    }
}

/// A tool's answer: content, structured content, and whether it is an error the model
/// should read (bad arguments, a refused move).
#[derive(Debug, Clone, Default)]
pub struct ToolOutput {
    /// The content items.
    pub content: Vec<Content>,
    /// The same answer as JSON.
    pub structured: Option<Value>,
    /// An error result (`isError`).
    pub is_error: bool,
    /// For `mess_request`: the thread created, which a client with the Tasks extension
    /// follows as a task whose id is its ref.
    pub created: Option<ThreadRef>,
}

impl ToolOutput {
    /// An error result saying `msg`.
    pub fn error(msg: impl Into<String>) -> Self {
        Self {
            content: vec![Content::Text(msg.into())],
            is_error: true,
            ..Self::default()
        }
    }

    fn ok(text: String, structured: Value) -> Self {
        Self {
            content: vec![Content::Text(text)],
            structured: Some(structured),
            ..Self::default()
        }
    }
}

impl From<ApiError> for ToolOutput {
    fn from(e: ApiError) -> Self {
        let body = e.body();
        let code = serde_json::to_value(body.code).unwrap_or(Value::Null);
        Self {
            content: vec![Content::Text(format!("{} ({code})", body.error))],
            structured: serde_json::to_value(&body).ok(),
            is_error: true,
            created: None,
        }
    }
}

/// An unknown tool name: a protocol error, not a tool result.
#[derive(Debug)]
pub struct UnknownTool(pub String);

fn ref_arg() -> Value {
    json!({"type": "string", "description": "The request's ref, as mess_request answered it (for example 2026-12-06-K7QX)."})
}

/// Every tool, in the order `tools/list` shows them.
pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "mess_request",
            description: "Ask a human to do something only the physical world can do (check a door, take a photo, fetch a parcel). Posts a request to the exchange; members whose capabilities cover `requires` are notified on their phones. Answers the request's ref at once: a person may take minutes or hours. Then call mess_wait with the ref (repeatedly, each call waits up to 60 s) until the status is completed, failed or cancelled. A client that supports MCP Tasks gets a task to poll instead.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "intent": {"type": "string", "description": "What you need done, in one sentence a person can act on."},
                    "context": {"type": "array", "description": "Background the person needs: strings or content items ({\"type\": \"text\", ...})."},
                    "priority": {"type": "string", "enum": ["background", "normal", "elevated", "urgent"], "description": "How soon; urgent reaches people even in their quiet hours."},
                    "response_hint": {"type": "array", "items": {"type": "string"}, "description": "What the answer should contain, e.g. [\"photo\", \"text\"]."},
                    "needed_by": {"type": "string", "description": "RFC 3339 time after which an unclaimed request expires."},
                    "requires": {"type": "array", "items": {"type": "string"}, "description": "Capabilities a member must have to be offered it (see mess_capabilities)."},
                    "confirm_before": {"type": "boolean", "description": "The person must ask you to confirm before completing."}
                },
                "required": ["intent"]
            }),
        },
        ToolSpec {
            name: "mess_status",
            description: "The current state of one request (with `ref`): status, who holds it, every message. Without `ref`: your requests that are not finished. Never waits; use mess_wait to wait for a change.",
            input_schema: json!({"type": "object", "properties": {"ref": ref_arg()}}),
        },
        ToolSpec {
            name: "mess_wait",
            description: "Wait for a request to change: answers as soon as its version is above `since` (default: the version now, so the next change), or after `timeout_seconds` (at most 60, default 50) with the state as it is. Answers the status, the new messages, and any photos in them as images. A person may take a long time: call it again while the status is pending or active. When the status is needs_input, read the question and answer with mess_answer.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "ref": ref_arg(),
                    "since": {"type": "integer", "minimum": 0, "description": "The version you last saw (each answer tells it)."},
                    "timeout_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECS, "description": "How long to wait at most; keep it under your own tool-call time limit."}
                },
                "required": ["ref"]
            }),
        },
        ToolSpec {
            name: "mess_answer",
            description: "Reply to the person working on your request: answer their question (status needs_input) or confirm (needs_confirmation). The work goes on as soon as the reply is recorded.",
            input_schema: json!({
                "type": "object",
                "properties": {"ref": ref_arg(), "text": {"type": "string", "description": "Your answer."}},
                "required": ["ref", "text"]
            }),
        },
        ToolSpec {
            name: "mess_cancel",
            description: "Cancel a request you made that is not finished yet; whoever holds it is told.",
            input_schema: json!({
                "type": "object",
                "properties": {"ref": ref_arg(), "reason": {"type": "string", "description": "Why, for the person."}},
                "required": ["ref"]
            }),
        },
        ToolSpec {
            name: "mess_fetch",
            description: "One attachment of a request (a photo, audio or file in its messages) as image, audio or blob content. `name` is its position in the thread (1, 2, ...) or the name beside it.",
            input_schema: json!({
                "type": "object",
                "properties": {"ref": ref_arg(), "name": {"type": "string", "description": "1, 2, ... or the attachment's name."}},
                "required": ["ref", "name"]
            }),
        },
        ToolSpec {
            name: "mess_capabilities",
            description: "What people on this exchange can do: the capability catalog, and for each capability how many members offer it and how many have a notification channel (can be reached now). Use it to fill `requires` in mess_request.",
            input_schema: json!({"type": "object", "properties": {}}),
        },
        ToolSpec {
            name: "mess",
            description: "Send raw MESS protocol blocks. With `ref`: append them to that request as one message (for example a reply, a query or a status block). Without `ref`: the first block must be a request block, which creates a request.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "ref": ref_arg(),
                    "mess": {"type": "array", "items": {"type": "object"}, "description": "MESS blocks: single-key objects such as {\"reply\": {...}} or {\"request\": {...}}."}
                },
                "required": ["mess"]
            }),
        },
    ]
}

/// Runs tool `name` for `me` with `args`. Bad arguments and refusals are error results
/// the model can read; an unknown name is `Err`.
pub async fn call<P: ExchangePort>(
    x: &P,
    me: &Member,
    name: &str,
    args: Map<String, Value>,
    catalog: &[Value],
) -> Result<ToolOutput, UnknownTool> {
    let out = match name {
        "mess_request" => request(x, me, args).await,
        "mess_status" => status(x, me, &args),
        "mess_wait" => wait(x, &args).await,
        "mess_answer" => answer(x, me, &args).await,
        "mess_cancel" => cancel(x, me, &args).await,
        "mess_fetch" => fetch(x, &args).await,
        "mess_capabilities" => Ok(capabilities(x, catalog)),
        "mess" => raw(x, me, args).await,
        other => return Err(UnknownTool(other.to_owned())),
    };
    let mut out = out.unwrap_or_else(ToolOutput::from);
    resolve(x, &mut out).await;
    Ok(out)
}

fn arg_str<'a>(args: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad(format!("`{key}` must be a string"))),
    }
}

fn required_str<'a>(args: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    arg_str(args, key)?.ok_or_else(|| ApiError::bad(format!("`{key}` (a string) is required")))
}

fn arg_u64(args: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, ApiError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
            ApiError::bad(format!("`{key}` must be a whole number from 0 to {max}"))
        }),
    }
}

fn the_thread<P: ExchangePort>(x: &P, args: &Map<String, Value>) -> Result<Arc<Thread>, ApiError> {
    let r = thread_ref(required_str(args, "ref")?)?;
    x.read(|s| s.thread(&r).cloned())
        .ok_or_else(|| ApiError::not_found("Thread"))
}

async fn commit_thread<P: ExchangePort>(
    x: &P,
    me: &Member,
    cmd: Command,
) -> Result<Arc<Thread>, ApiError> {
    match x.commit(Actor::Member(me.executor_id.clone()), cmd).await? {
        Written::Thread(t) => Ok(t),
        _ => Err(ApiError::Internal),
    }
}

async fn request<P: ExchangePort>(
    x: &P,
    me: &Member,
    args: Map<String, Value>,
) -> Result<ToolOutput, ApiError> {
    let mut body = Value::Object(args);
    let blobs = crate::blobs::take(&mut body, &["intent"])?;
    let req = NewRequest::parse(body)?;
    crate::blobs::put(x, &blobs).await?;
    let t = commit_thread(x, me, Command::Create(req)).await?;
    let mut out = ToolOutput::ok(
        format!(
            "Request {} is {}. A person will pick it up; call mess_wait with ref {} (since {}) to wait for their answer.",
            t.thread_ref, t.status, t.thread_ref, t.version
        ),
        json!({"ref": t.thread_ref, "status": t.status, "version": t.version}),
    );
    out.created = Some(t.thread_ref.clone());
    Ok(out)
}

fn status<P: ExchangePort>(
    x: &P,
    me: &Member,
    args: &Map<String, Value>,
) -> Result<ToolOutput, ApiError> {
    if arg_str(args, "ref")?.is_some() {
        let t = the_thread(x, args)?;
        return Ok(thread_output(&t, 0));
    }
    let mine: Vec<Arc<Thread>> = x.read(|s| {
        let (page, _) = s.list(None, None, 500);
        page.into_iter()
            .filter(|t| t.requestor_id == me.executor_id && !t.status.is_terminal())
            .collect()
    });
    let lines: Vec<String> = mine
        .iter()
        .map(|t| {
            format!(
                "{} {} (version {}): {}",
                t.thread_ref, t.status, t.version, t.intent
            )
        })
        .collect();
    let text = if lines.is_empty() {
        "You have no open requests.".to_owned()
    } else {
        format!("Your open requests:\n{}", lines.join("\n"))
    };
    let items: Vec<Value> = mine
        .iter()
        .map(|t| json!({"ref": t.thread_ref, "status": t.status, "version": t.version, "intent": t.intent, "executor_id": t.executor_id}))
        .collect();
    Ok(ToolOutput::ok(text, json!({"requests": items})))
}

async fn wait<P: ExchangePort>(x: &P, args: &Map<String, Value>) -> Result<ToolOutput, ApiError> {
    let mut t = the_thread(x, args)?;
    let since = arg_u64(args, "since", u64::MAX)?.unwrap_or(t.version);
    let secs = arg_u64(args, "timeout_seconds", MAX_WAIT_SECS)?.unwrap_or(DEFAULT_WAIT_SECS);
    if t.version <= since && secs > 0 {
        x.changed(&t.thread_ref, since, Duration::from_secs(secs))
            .await;
        t = x
            .read(|s| s.thread(&t.thread_ref).cloned())
            .ok_or_else(|| ApiError::not_found("Thread"))?;
    }
    Ok(thread_output(&t, since))
}

/// The thread as a tool answers it: a summary, the messages after version `since` (all
/// when 0), their images as image content, and the thread as structured content.
fn thread_output(t: &Thread, since: u64) -> ToolOutput {
    let messages: Vec<_> = t.messages.iter().collect();
    // Version v has the request and v - 1 messages after it.
    let new = messages.get(since as usize..).unwrap_or_default();
    let mut text = format!(
        "Request {} ({}) is {} (version {}){}.",
        t.thread_ref,
        t.intent,
        t.status,
        t.version,
        t.executor_id
            .as_ref()
            .map(|e| format!(", held by {e}"))
            .unwrap_or_default()
    );
    if new.is_empty() {
        text.push_str(" No new messages.");
    }
    let mut content = Vec::new();
    for m in new {
        let blocks: Vec<Value> = m
            .mess
            .iter()
            .map(|b| json!({b.kind().as_str(): b.body()}))
            .collect();
        text.push_str(&format!(
            "\n[{} at {}] {}",
            m.from,
            m.ts,
            Value::Array(blocks)
        ));
        for (_, uri) in data_uris(&m.mess) {
            if let Some(r) = mess_core::blob::parse(&uri) {
                if r.mime().starts_with("image/") {
                    content.push(Content::Stored(r.sha256.to_owned(), r.mime().to_owned()));
                }
            } else if let Some((mime, bytes)) = decode_data_uri(&uri)
                && mime.starts_with("image/")
            {
                content.push(Content::Image(bytes, mime));
            }
        }
    }
    if t.status == Status::NeedsInput {
        text.push_str("\nThe person needs an answer: reply with mess_answer.");
    } else if t.status == Status::NeedsConfirmation {
        text.push_str("\nThe person asks you to confirm: reply with mess_answer.");
    } else if !t.status.is_terminal() {
        text.push_str(&format!(
            "\nStill open: call mess_wait again with since {}.",
            t.version
        ));
    }
    content.insert(0, Content::Text(text));
    let mut body = Vec::new();
    t.write_json(&mut body);
    let mut thread: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    strip_data_uris(&mut thread, t);
    ToolOutput {
        content,
        structured: Some(
            json!({"ref": t.thread_ref, "status": t.status, "version": t.version, "thread": thread}),
        ),
        is_error: false,
        created: None,
    }
}

/// Replaces `data:` URIs by their attachment links (as the feed does), so structured
/// content stays small; the images travel as image content.
fn strip_data_uris(v: &mut Value, t: &Thread) {
    let base = format!("content://{}/", t.thread_ref);
    if let Some(messages) = v.get_mut("messages") {
        crate::feed::links(messages, &base, &mut 1);
    }
}

async fn answer<P: ExchangePort>(
    x: &P,
    me: &Member,
    args: &Map<String, Value>,
) -> Result<ToolOutput, ApiError> {
    let t = the_thread(x, args)?;
    let text = required_str(args, "text")?;
    let t = reply(x, me, &t.thread_ref, text).await?;
    Ok(ToolOutput::ok(
        format!(
            "Answered on {}; it is {} (version {}).",
            t.thread_ref, t.status, t.version
        ),
        json!({"ref": t.thread_ref, "status": t.status, "version": t.version}),
    ))
}

/// Sends `text` as a `reply` block on `r` (the requestor's answer to a question or a
/// confirmation).
pub async fn reply<P: ExchangePort>(
    x: &P,
    me: &Member,
    r: &ThreadRef,
    text: &str,
) -> Result<Arc<Thread>, ApiError> {
    let block = Block::parse(&json!({"reply": {"content": [text]}}))?;
    let cmd = Command::Update {
        thread: r.clone(),
        status: None,
        mess: Some(vec![block]),
    };
    commit_thread(x, me, cmd).await
}

async fn cancel<P: ExchangePort>(
    x: &P,
    me: &Member,
    args: &Map<String, Value>,
) -> Result<ToolOutput, ApiError> {
    let t = the_thread(x, args)?;
    let reason = arg_str(args, "reason")?;
    let t = cancel_thread(x, me, &t.thread_ref, reason).await?;
    Ok(ToolOutput::ok(
        format!("Request {} is {}.", t.thread_ref, t.status),
        json!({"ref": t.thread_ref, "status": t.status, "version": t.version}),
    ))
}

/// Cancels `r` for its requestor `me`.
pub async fn cancel_thread<P: ExchangePort>(
    x: &P,
    me: &Member,
    r: &ThreadRef,
    reason: Option<&str>,
) -> Result<Arc<Thread>, ApiError> {
    let mut extra = Map::new();
    if let Some(reason) = reason {
        extra.insert("message".into(), Value::String(reason.to_owned()));
    }
    let cmd = Command::Update {
        thread: r.clone(),
        status: Some(StatusUpdate {
            to: Status::Cancelled,
            extra,
        }),
        mess: None,
    };
    commit_thread(x, me, cmd).await
}

async fn fetch<P: ExchangePort>(x: &P, args: &Map<String, Value>) -> Result<ToolOutput, ApiError> {
    let t = the_thread(x, args)?;
    let name = required_str(args, "name")?;
    let a = crate::blobs::attachment(x, &t, name)
        .await?
        .ok_or_else(|| ApiError::not_found("Attachment"))?;
    let (mime, bytes) = (a.mime, a.bytes.to_vec());
    let uri = format!("content://{}/{name}", t.thread_ref);
    let item = if mime.starts_with("image/") {
        Content::Image(bytes, mime)
    } else if mime.starts_with("audio/") {
        Content::Audio(bytes, mime)
    } else {
        Content::Blob(bytes, mime, uri)
    };
    Ok(ToolOutput {
        content: vec![item],
        ..ToolOutput::default()
    })
}

fn capabilities<P: ExchangePort>(x: &P, catalog: &[Value]) -> ToolOutput {
    let members: Vec<Arc<Member>> = x.read(|s| s.members().cloned().collect());
    let mut names: Vec<String> = catalog
        .iter()
        .filter_map(|c| {
            c.get("id")
                .or_else(|| c.get("name"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
        .collect();
    for m in &members {
        for c in &m.capabilities {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
    }
    let rows: Vec<Value> = names
        .iter()
        .map(|c| {
            let offering: Vec<&Arc<Member>> = members
                .iter()
                .filter(|m| m.capabilities.contains(c))
                .collect();
            let reachable = offering
                .iter()
                .filter(|m| !m.notifications.is_empty())
                .count();
            json!({"capability": c, "members": offering.len(), "reachable": reachable})
        })
        .collect();
    let text = if rows.is_empty() {
        format!(
            "{} members; no capabilities are listed: leave `requires` empty.",
            members.len()
        )
    } else {
        let lines: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}: {} members, {} reachable now",
                    r["capability"].as_str().unwrap_or(""),
                    r["members"],
                    r["reachable"]
                )
            })
            .collect();
        format!("{} members.\n{}", members.len(), lines.join("\n"))
    };
    ToolOutput::ok(
        text,
        json!({"members": members.len(), "capabilities": rows, "catalog": catalog}),
    )
}

async fn raw<P: ExchangePort>(
    x: &P,
    me: &Member,
    args: Map<String, Value>,
) -> Result<ToolOutput, ApiError> {
    let blocks = Block::parse_list(args.get("mess").unwrap_or(&Value::Null))?;
    if let Some(r) = arg_str(&args, "ref")? {
        let mut mess = args.get("mess").cloned().unwrap_or(Value::Null);
        let blobs = crate::blobs::take(&mut mess, &[])?;
        let blocks = Block::parse_list(&mess)?;
        crate::blobs::put(x, &blobs).await?;
        let cmd = Command::Update {
            thread: thread_ref(r)?,
            status: None,
            mess: Some(blocks),
        };
        let t = commit_thread(x, me, cmd).await?;
        return Ok(thread_output(&t, t.version.saturating_sub(1)));
    }
    let Some(first) = blocks.first().filter(|b| b.kind() == BlockKind::Request) else {
        return Err(ApiError::bad(
            "without `ref`, the first block must be a request block",
        ));
    };
    let mut out = request(
        x,
        me,
        match first.body() {
            Value::Object(map) => map,
            _ => return Err(ApiError::bad("the request block must be an object")),
        },
    )
    .await?;
    out.created = None;
    Ok(out)
}

/// An MCP task's status (the Tasks extension's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Pending or being worked on.
    Working,
    /// Waiting for the requestor: a question or a confirmation.
    InputRequired,
    /// Finished (the result says whether it is an error).
    Completed,
    /// Cancelled or superseded.
    Cancelled,
}

/// A thread seen as a task.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// Its status.
    pub status: TaskStatus,
    /// Who holds it, what it waits for, or why it ended.
    pub message: String,
    /// While `InputRequired`: the question, and a key that names it (its version).
    pub question: Option<(String, String)>,
    /// When `Completed`: the result.
    pub result: Option<ToolOutput>,
}

/// The task of thread `t` (protocol.md, "Agents over MCP": Tasks).
pub fn task_view(t: &Thread) -> TaskView {
    let last = t.messages.iter().last();
    let awaiting_requestor = matches!(t.status, Status::NeedsInput | Status::NeedsConfirmation)
        && last
            .as_ref()
            .is_some_and(|m| m.from != t.requestor_id.as_str());
    let holder = t.executor_id.as_ref().map_or_else(
        || "waiting for someone to take it".to_owned(),
        |e| format!("held by {e}"),
    );
    if awaiting_requestor {
        let question = last.map(|m| question_text(&m.mess)).unwrap_or_default();
        return TaskView {
            status: TaskStatus::InputRequired,
            message: format!("{} ({holder}): {question}", t.status),
            question: Some((format!("v{}", t.version), question)),
            result: None,
        };
    }
    let (status, is_error) = match (t.status.group(), t.status) {
        (Group::Terminal, Status::Cancelled | Status::Superseded) => (TaskStatus::Cancelled, false),
        (Group::Terminal, Status::Completed | Status::Partial) => (TaskStatus::Completed, false),
        (Group::Terminal, _) => (TaskStatus::Completed, true),
        _ => (TaskStatus::Working, false),
    };
    let result = (status == TaskStatus::Completed).then(|| {
        let mut out = thread_output(t, 1);
        out.is_error = is_error;
        out
    });
    TaskView {
        status,
        message: format!("{} ({holder})", t.status),
        question: None,
        result,
    }
}

/// The text of a question: the message's status block `message`/`questions`, or its blocks.
fn question_text(blocks: &[Block]) -> String {
    let mut parts = Vec::new();
    for b in blocks {
        let body = b.body();
        for key in ["message", "questions", "question", "content", "text"] {
            match body.get(key) {
                Some(Value::String(s)) => parts.push(s.clone()),
                Some(v @ Value::Array(_)) => parts.push(v.to_string()),
                _ => {}
            }
        }
    }
    if parts.is_empty() {
        let all: Vec<Value> = blocks
            .iter()
            .map(|b| json!({b.kind().as_str(): b.body()}))
            .collect();
        Value::Array(all).to_string()
    } else {
        parts.join("\n")
    }
}
