//! What one event sends: each recipient's channels and each member's hook that fires, as
//! deliveries sharing one message context. Pure: the binary's notifier queues them, the
//! Cloudflare Worker sends them with `fetch`.

use std::sync::Arc;

use mess_core::{Channel, Event, ExecutorId, Member, Thread, Timestamp};
use serde_json::Value;

use crate::hooks::{hook_request, hook_targets};
use crate::message::{Context, Outgoing, channel_request};
use crate::recipients::recipients;

/// Where one delivery goes: a member's channel, or a member's hook (its spec as stored).
#[derive(Debug, Clone)]
pub enum Target {
    /// One of the member's notification channels.
    Channel(Channel),
    /// The member's hook for the event's moment.
    Hook(Value),
}

impl Target {
    /// The outcome's `channel`: the channel's type, or `hook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Channel(c) => c.kind(),
            Target::Hook(_) => "hook",
        }
    }

    /// The request to send for the context's event, or why there is none (a hook whose
    /// template fills in to a URL that is not allowed), a short reason safe to record.
    pub fn request(&self, ctx: &Context) -> Result<Outgoing, String> {
        match self {
            Target::Channel(c) => Ok(channel_request(c, ctx)),
            Target::Hook(spec) => hook_request(spec, ctx),
        }
    }
}

/// One event's deliveries.
#[derive(Debug)]
pub struct Deliveries {
    /// What every message is built from.
    pub ctx: Arc<Context>,
    /// Each delivery, as (the member's id, its target).
    pub targets: Vec<(ExecutorId, Target)>,
}

/// The deliveries `event` on `thread` calls for at `now`: every channel of each
/// [`recipients()`](crate::recipients()) member, then each member's hook that fires.
/// `None` when there is none, so no message is built for nobody.
pub fn deliveries(
    event: &Event,
    thread: &Arc<Thread>,
    members: &[Arc<Member>],
    now: Timestamp,
    public_url: Option<&str>,
) -> Option<Deliveries> {
    let people = recipients(event, thread, members, now);
    let channels = people.iter().flat_map(|m| {
        m.notifications
            .iter()
            .map(move |c| (m.executor_id.clone(), Target::Channel(c.clone())))
    });
    let hooks = hook_targets(event, thread, members, now);
    let hooks = hooks.iter().filter_map(|(m, moment)| {
        let spec = m.hook(*moment)?;
        Some((m.executor_id.clone(), Target::Hook(spec.clone())))
    });
    let targets: Vec<_> = channels.chain(hooks).collect();
    if targets.is_empty() {
        return None;
    }
    let ctx = Arc::new(Context::new(event, thread, public_url));
    Some(Deliveries { ctx, targets })
}
