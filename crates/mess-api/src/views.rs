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

/// `{"threads":[...],"next_cursor":...}`, each entry the thread's cached summary JSON
/// (exactly what serializing the summaries would write).
pub fn thread_list(page: &[impl AsRef<Thread>], next_cursor: Option<String>) -> Vec<u8> {
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
    body.push(b'}');
    body
}
