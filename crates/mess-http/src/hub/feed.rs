//! One exchange's change feed: a window of its latest frames, for resuming, and a
//! broadcast of each new one to the open streams.

use std::sync::Mutex;

use mess_api::ApiError;
use mess_api::feed::{Frame, LAG_FRAMES, Window};
use tokio::sync::{broadcast, watch};

/// What a new stream gets: the frames to send first, then what the receiver brings, and a
/// signal that the server is stopping.
pub struct Subscription {
    /// Frames from the window, oldest first.
    pub backlog: Vec<Frame>,
    /// The position of the last frame in `backlog`, or where the stream starts.
    pub after: u64,
    /// Every frame published from now on.
    pub frames: broadcast::Receiver<Frame>,
    /// Changes to `true` when the server stops.
    pub stop: watch::Receiver<bool>,
}

/// One exchange's feed.
pub struct Feed {
    window: Mutex<Window>,
    tx: broadcast::Sender<Frame>,
    stop: watch::Sender<bool>,
}

impl Feed {
    /// An empty feed whose head is `head`.
    pub fn new(head: u64) -> Self {
        Self {
            window: Mutex::new(Window::new(head)),
            tx: broadcast::channel(LAG_FRAMES).0,
            stop: watch::channel(false).0,
        }
    }

    /// Publishes durable events' frames, in order.
    pub fn publish(&self, frames: Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        for f in frames {
            w.push(f.clone());
            // No receiver is no error: nobody is following.
            let _ = self.tx.send(f);
        }
    }

    /// Opens a stream resuming after `Last-Event-ID`/`?since=` ([`Window::start`]).
    pub fn subscribe(
        &self,
        last_event_id: Option<&[u8]>,
        query: &str,
    ) -> Result<Subscription, ApiError> {
        // Under the lock that `publish` takes: no frame falls between backlog and receiver.
        let w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let (backlog, after) = w.start(last_event_id, query)?;
        Ok(Subscription {
            backlog,
            after,
            frames: self.tx.subscribe(),
            stop: self.stop.subscribe(),
        })
    }

    /// How many streams are open.
    pub fn streams(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Ends every stream (the server is stopping).
    pub fn close(&self) {
        self.stop.send_replace(true);
    }
}
