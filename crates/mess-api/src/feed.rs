//! The change feed (`GET .../events`, Server-Sent Events): one SSE event per stored event,
//! its `id` the event's exchange-wide `pos`, and where a reconnecting client resumes.
//!
//! The hosts keep the frames (a window of the latest) and stream them; this module decides
//! their bytes and parses the resume position, so both hosts send the same feed.

use std::sync::Arc;
use std::time::Duration;

use mess_core::mess::data_uris;
use mess_core::{Event, EventKind, Thread};
use serde_json::{Value, json};

use crate::error::ApiError;

/// A comment line this often keeps proxies from closing an idle stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The heartbeat's bytes (an SSE comment: clients ignore it).
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The first bytes of every stream: a comment (so that proxies and clients see the stream
/// open at once) and how long a client waits before reconnecting, in milliseconds.
pub const OPENING: &[u8] = b": mess-exchange change feed\nretry: 2000\n\n";

/// The content type of the feed.
pub const EVENT_STREAM: &str = "text/event-stream";

/// One SSE event, ready to send.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its position (the SSE `id`).
    pub pos: u64,
    /// `id: ..\nevent: ..\ndata: ..\n\n`.
    pub bytes: Arc<[u8]>,
}

/// The frame of `e`, given the thread as `e` left it (`None` for a member's event). Its
/// `data` is `{"pos", "ref", "version", "status", "actor", "type", "event"}`, `event`
/// being the stored line with every `data:` URI replaced by the link that serves it.
pub fn frame(e: &Event, thread: Option<&Thread>) -> Frame {
    let mut event = serde_json::to_value(e).unwrap_or(Value::Null);
    if let (Some(t), Some(r)) = (thread, &e.thread_ref) {
        let own = own_attachments(&e.kind);
        if own > 0 {
            // The attachment route numbers a thread's data URIs in order, from 1.
            let total: usize = t.messages.iter().map(|m| data_uris(&m.mess).len()).sum();
            let base = crate::blobs::link_base(&e.exchange_id, r.as_str());
            let mut next = total.saturating_sub(own) + 1;
            links(&mut event["payload"], &base, &mut next);
        }
    }
    let data = json!({
        "pos": e.pos,
        "ref": e.thread_ref,
        "version": thread.map(|t| t.version),
        "status": thread.map(|t| t.status),
        "actor": e.actor_id,
        "type": e.kind.event_type(),
        "event": event,
    });
    let text = format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        e.pos,
        e.kind.event_type(),
        data
    );
    Frame {
        pos: e.pos,
        bytes: text.into_bytes().into(),
    }
}

/// How many `data:` URIs an event brings into its thread.
fn own_attachments(kind: &EventKind) -> usize {
    match kind {
        EventKind::MessageAdded(m) => data_uris(&m.mess).len(),
        EventKind::ThreadCreated(c) => {
            let mut n = 0;
            count(&Value::Object(c.request.clone()), &mut n);
            n
        }
        _ => 0,
    }
}

fn count(v: &Value, n: &mut usize) {
    match v {
        Value::String(s) if mess_core::blob::is_attachment(s) => *n += 1,
        Value::Array(items) => items.iter().for_each(|i| count(i, n)),
        Value::Object(map) => map.values().for_each(|i| count(i, n)),
        _ => {}
    }
}

/// Replaces each `data:` URI under `v`, in document order (the order the attachment route
/// numbers them in), by `base` and its number.
pub(crate) fn links(v: &mut Value, base: &str, next: &mut usize) {
    match v {
        Value::String(s) if mess_core::blob::is_attachment(s) => {
            *s = format!("{base}{next}");
            *next += 1;
        }
        Value::Array(items) => items.iter_mut().for_each(|i| links(i, base, next)),
        Value::Object(map) => map.values_mut().for_each(|i| links(i, base, next)),
        _ => {}
    }
}

/// The most frames a [`Window`] keeps.
pub const WINDOW_FRAMES: usize = 4096;
/// The most bytes a [`Window`] keeps (a message's text can be long).
pub const WINDOW_BYTES: usize = 8 << 20;
/// How far a stream may fall behind before it is closed (it reconnects and resumes from
/// the window): a slow consumer is never buffered without bound.
pub const LAG_FRAMES: usize = 1024;

/// The latest frames of one exchange, for streams that resume: a host keeps one per
/// exchange beside its broadcast of new frames.
#[derive(Debug, Default)]
pub struct Window {
    frames: std::collections::VecDeque<Frame>,
    bytes: usize,
    head: u64,
}

impl Window {
    /// An empty window at `head` (what the log holds: a resume from before it is answered
    /// 410 until frames come).
    pub fn new(head: u64) -> Self {
        Self {
            head,
            ..Self::default()
        }
    }

    /// The position of the latest frame (or where the window started).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Keeps a new frame, dropping the oldest beyond [`WINDOW_FRAMES`] or [`WINDOW_BYTES`].
    pub fn push(&mut self, f: Frame) {
        self.head = self.head.max(f.pos);
        self.bytes += f.bytes.len();
        self.frames.push_back(f);
        while self.frames.len() > WINDOW_FRAMES || self.bytes > WINDOW_BYTES {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.bytes.len();
        }
    }

    /// Where a new stream starts (`Last-Event-ID`, the header's value if any, or
    /// `?since=`): the frames to send first and the position after which the stream goes
    /// on; 400 for a bad position, 410 for one older than the window.
    pub fn start(
        &self,
        last_event_id: Option<&[u8]>,
        query: &str,
    ) -> Result<(Vec<Frame>, u64), ApiError> {
        let oldest = self.frames.front().map_or(self.head + 1, |f| f.pos);
        let after = resume(last_event_id, query)?;
        let backlog = replay_from(after, self.head, oldest, self.frames.iter())?;
        let last = backlog.last().map_or(self.head, |f| f.pos);
        Ok((backlog, last))
    }
}

/// Where a client resumes: after the position in `Last-Event-ID` (the header an SSE client
/// sends when it reconnects) or `?since=`; `None` to start at the head. Anything but a
/// whole number is a 400.
pub fn resume(last_event_id: Option<&[u8]>, query: &str) -> Result<Option<u64>, ApiError> {
    if let Some(raw) = last_event_id {
        let parsed = std::str::from_utf8(raw)
            .ok()
            .map(str::trim)
            .and_then(|s| s.parse::<u64>().ok());
        return parsed.map(Some).ok_or_else(|| {
            ApiError::bad("Last-Event-ID must be a feed position: the id of an event of this feed")
        });
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        since: Option<String>,
    }
    let raw: Raw = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad(format!("invalid query string: {e}")))?;
    raw.since
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad("since must be a feed position (a whole number)"))
        })
        .transpose()
}

/// What a window answers a resume: the frames after it, or 410 with the oldest position it
/// holds. `oldest` is the first position the window holds (`head + 1` when it holds none)
/// and `frames` its frames, oldest first.
fn replay_from<'a>(
    after: Option<u64>,
    head: u64,
    oldest: u64,
    frames: impl DoubleEndedIterator<Item = &'a Frame>,
) -> Result<Vec<Frame>, ApiError> {
    let Some(after) = after else {
        return Ok(Vec::new());
    };
    if after.saturating_add(1) < oldest {
        return Err(ApiError::PositionTooOld { oldest });
    }
    if after >= head {
        return Ok(Vec::new());
    }
    let mut newer: Vec<Frame> = frames
        .rev()
        .take_while(|f| f.pos > after)
        .cloned()
        .collect();
    newer.reverse();
    Ok(newer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_at(pos: u64) -> Frame {
        Frame {
            pos,
            bytes: Arc::from(&b""[..]),
        }
    }

    #[test]
    fn a_resume_is_a_whole_number_from_the_header_or_the_query() {
        assert_eq!(resume(Some(b"42"), "").unwrap(), Some(42));
        assert_eq!(resume(Some(b" 7 "), "since=3").unwrap(), Some(7));
        assert_eq!(resume(None, "since=3").unwrap(), Some(3));
        assert_eq!(resume(None, "").unwrap(), None);
        for bad in [&b"x"[..], b"-1", b"", b"1.5", b"\xff"] {
            assert!(resume(Some(bad), "").is_err(), "{bad:?}");
        }
        assert!(resume(None, "since=abc").is_err());
        assert!(resume(None, "since=1&since=2").is_err());
    }

    #[test]
    fn the_window_answers_what_it_holds_and_410_before_it() {
        let window: Vec<Frame> = (5..=9).map(frame_at).collect();
        let got = |after| replay_from(after, 9, 5, window.iter());
        assert!(got(None).unwrap().is_empty());
        let pos = |v: Vec<Frame>| v.iter().map(|f| f.pos).collect::<Vec<_>>();
        assert_eq!(pos(got(Some(4)).unwrap()), vec![5, 6, 7, 8, 9]);
        assert_eq!(pos(got(Some(7)).unwrap()), vec![8, 9]);
        assert!(got(Some(9)).unwrap().is_empty());
        assert!(got(Some(12)).unwrap().is_empty());
        match got(Some(3)) {
            Err(ApiError::PositionTooOld { oldest }) => assert_eq!(oldest, 5),
            other => panic!("{other:?}"),
        }
        // An empty window after a restart: resuming at the head works, before it is 410.
        let empty: Vec<Frame> = Vec::new();
        assert!(
            replay_from(Some(9), 9, 10, empty.iter())
                .unwrap()
                .is_empty()
        );
        assert!(replay_from(Some(8), 9, 10, empty.iter()).is_err());
    }

    #[test]
    fn links_number_data_uris_in_document_order() {
        let mut v = json!({"a": "data:x", "b": ["data:y", {"c": "data:z"}], "d": "plain"});
        let mut next = 3;
        links(&mut v, "/att/", &mut next);
        assert_eq!(
            v,
            json!({"a": "/att/3", "b": ["/att/4", {"c": "/att/5"}], "d": "plain"})
        );
        assert_eq!(next, 6);
    }
}
