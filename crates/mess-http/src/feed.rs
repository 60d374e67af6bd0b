//! A change-feed subscription as an SSE response body: the opening comment, the backlog,
//! then each new frame, with a comment line every 15 s; it ends when the client falls too
//! far behind, or the server stops.

use actix_web::web::Bytes;
use futures::Stream;
use mess_api::feed::{HEARTBEAT, KEEP_ALIVE, OPENING};
use tokio::sync::broadcast::error::RecvError;

use crate::hub::Subscription;

struct State {
    sub: Subscription,
    backlog: std::vec::IntoIter<mess_api::feed::Frame>,
    opened: bool,
    beat: tokio::time::Interval,
}

fn bytes(frame: mess_api::feed::Frame) -> Bytes {
    Bytes::from_owner(frame.bytes)
}

/// The stream of `sub`.
pub fn stream(mut sub: Subscription) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let backlog = std::mem::take(&mut sub.backlog).into_iter();
    let start = tokio::time::Instant::now() + HEARTBEAT;
    let state = State {
        sub,
        backlog,
        opened: false,
        beat: tokio::time::interval_at(start, HEARTBEAT),
    };
    futures::stream::unfold(state, |mut s| async move {
        if !s.opened {
            s.opened = true;
            return Some((Ok(Bytes::from_static(OPENING)), s));
        }
        if let Some(f) = s.backlog.next() {
            return Some((Ok(bytes(f)), s));
        }
        if *s.sub.stop.borrow() {
            return None;
        }
        loop {
            tokio::select! {
                r = s.sub.frames.recv() => match r {
                    // Already sent from the backlog.
                    Ok(f) if f.pos <= s.sub.after => continue,
                    Ok(f) => {
                        s.sub.after = f.pos;
                        return Some((Ok(bytes(f)), s));
                    }
                    // Too far behind (or the exchange is gone): close; the client resumes
                    // from the window with Last-Event-ID.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
                _ = s.beat.tick() => return Some((Ok(Bytes::from_static(KEEP_ALIVE)), s)),
                _ = s.sub.stop.changed() => return None,
            }
        }
    })
}
