//! The change feed on the Worker (`GET .../events`): the exchange's Durable Object holds
//! each stream open, as the binary's hub does, with the same frames, window and resume
//! rules (`mess_api::feed`). An open stream keeps the object in memory (and billed for
//! its duration) until the client disconnects or falls too far behind.

use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{Either, select};
use mess_api::feed::{EVENT_STREAM, Frame, HEARTBEAT, KEEP_ALIVE, LAG_FRAMES, OPENING};
use worker::{Delay, Response};

use crate::error::ApiError;
use crate::object::Core;

struct State {
    backlog: std::vec::IntoIter<Frame>,
    frames: mpsc::Receiver<Frame>,
    opened: bool,
    /// When the next keep-alive comment is due (JavaScript milliseconds): every 15 s,
    /// whatever else was sent.
    beat_at: i64,
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Opens a stream resuming after `Last-Event-ID` (`last`) or `?since=`.
pub(crate) fn open(
    core: &Rc<Core>,
    last: Option<&[u8]>,
    query: &str,
) -> Result<Response, ApiError> {
    // Synchronous from here to the push: no frame is published in between.
    let (backlog, _) = core.feed.borrow().start(last, query)?;
    let (tx, rx) = mpsc::channel(LAG_FRAMES);
    core.streams.borrow_mut().push(tx);
    let state = State {
        backlog: backlog.into_iter(),
        frames: rx,
        opened: false,
        beat_at: now_ms() + HEARTBEAT.as_millis() as i64,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if !s.opened {
            s.opened = true;
            return Some((Ok::<Vec<u8>, worker::Error>(OPENING.to_vec()), s));
        }
        if let Some(f) = s.backlog.next() {
            return Some((Ok(f.bytes.to_vec()), s));
        }
        let left = (s.beat_at - now_ms()).max(0) as u64;
        match select(s.frames.next(), Delay::from(Duration::from_millis(left))).await {
            Either::Left((Some(f), _)) => Some((Ok(f.bytes.to_vec()), s)),
            // Closed: too far behind (its queue was full), or the object is going away.
            Either::Left((None, _)) => None,
            Either::Right(_) => {
                s.beat_at = now_ms() + HEARTBEAT.as_millis() as i64;
                Some((Ok(KEEP_ALIVE.to_vec()), s))
            }
        }
    });
    let mut res = Response::from_stream(stream).map_err(|_| ApiError::Internal)?;
    let _ = res.headers_mut().set("Content-Type", EVENT_STREAM);
    Ok(res)
}
