//! The JSON shapes the routes answer with. Threads are written straight to bytes from their
//! cached JSON (`Thread::summary_json`, `Thread::write_json`), never through a
//! `serde_json::Value` (which would copy every field and parse every stored block again).

use mess_core::{Member, Status, Thread, ThreadRef, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// `POST /requests`'s answer, and the first fields of `PATCH /requests/{ref}`'s.
#[derive(Serialize)]
pub struct RefAndStatus<'a> {
    /// The thread.
    #[serde(rename = "ref")]
    pub thread_ref: &'a ThreadRef,
    /// Its status.
    pub status: Status,
}

/// A member as every member sees it.
pub fn executor(member: &Member, last_seen: Timestamp) -> Value {
    json!({
        "id": member.executor_id,
        "display_name": member.display_name,
        "capabilities": member.capabilities,
        "last_seen": last_seen,
        "created_at": member.created_at,
    })
}

/// A member as it sees itself (`GET .../executors/{own id}`): the public view plus its
/// channels, preferences and hooks, every secret in them shown only as `"set"`.
pub fn own_profile(member: &Member, last_seen: Timestamp) -> Value {
    let mut view = executor(member, last_seen);
    let channels: Vec<Value> = member
        .notifications
        .iter()
        .map(|c| redacted(serde_json::to_value(c).unwrap_or(Value::Null)))
        .collect();
    view["notifications"] = Value::Array(channels);
    view["preferences"] = serde_json::to_value(&member.preferences).unwrap_or(Value::Null);
    view["hooks"] = redacted(Value::Object(member.hooks.clone()));
    view["updated_at"] = serde_json::to_value(member.updated_at).unwrap_or(Value::Null);
    view
}

/// What may be shown of a channel or hook: its kind, its ntfy server, its method and
/// moments; every other string (URLs, topics, secrets, tokens) becomes `"set"`.
fn redacted(v: Value) -> Value {
    const SHOWN: [&str; 4] = ["type", "server", "method", "events"];
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(_) if !SHOWN.contains(&k.as_str()) => "set".into(),
                        other if SHOWN.contains(&k.as_str()) => other,
                        other => redacted(other),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redacted).collect()),
        Value::String(_) => "set".into(),
        other => other,
    }
}

/// A JSON object that ends with `"thread":` and the thread; `open` is the object up to
/// there (`{` and any fields before it, each followed by a comma).
pub fn thread_object(open: &[u8], t: &Thread) -> Vec<u8> {
    let mut body = Vec::with_capacity(open.len() + t.messages.as_json().len() + 512);
    body.extend_from_slice(open);
    body.extend_from_slice(b"\"thread\":");
    t.write_json(&mut body);
    body.push(b'}');
    body
}

/// `{"ref":...,"status":...,"thread":...}`: a PATCH's answer.
pub fn updated_thread(t: &Thread) -> Vec<u8> {
    let mut open = Vec::with_capacity(64);
    open.extend_from_slice(b"{\"ref\":\"");
    open.extend_from_slice(t.thread_ref.as_str().as_bytes());
    open.extend_from_slice(b"\",\"status\":\"");
    open.extend_from_slice(t.status.as_str().as_bytes());
    open.extend_from_slice(b"\",");
    thread_object(&open, t)
}

/// `{"threads":[...],"next_cursor":...,"pos":...}`, each entry the thread's cached summary
/// JSON (exactly what serializing the summaries would write); `pos` is the change feed's
/// head, where a client that has read the list follows the feed from.
pub fn thread_list(page: &[impl AsRef<Thread>], next_cursor: Option<String>, head: u64) -> Vec<u8> {
    let cursor = match next_cursor {
        // A cursor is hex: nothing in it needs escaping.
        Some(c) => format!("\"{c}\""),
        None => "null".to_owned(),
    };
    let entries: usize = page
        .iter()
        .map(|t| t.as_ref().summary_json().len() + 1)
        .sum();
    let mut body = Vec::with_capacity(entries + cursor.len() + 32);
    body.extend_from_slice(b"{\"threads\":[");
    for (n, t) in page.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(t.as_ref().summary_json().as_bytes());
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    body.extend_from_slice(cursor.as_bytes());
    body.extend_from_slice(b",\"pos\":");
    body.extend_from_slice(head.to_string().as_bytes());
    body.push(b'}');
    body
}
