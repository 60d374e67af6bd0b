//! What one event sends: each recipient's channels and each member's hook that fires, as
//! deliveries sharing one message context. Pure: the binary's notifier queues them, the
//! Cloudflare Worker sends them with `fetch`.

use std::sync::Arc;

use mess_core::{Channel, Event, EventKind, ExecutorId, Member, Status, Thread, Timestamp};
use serde_json::Value;

use crate::hooks::{hook_request, hook_targets};
use crate::message::{Context, Outgoing, channel_request, withdrawal_request};
use crate::recipients::{is_party, offered, recipients};

/// Where one delivery goes: a member's channel, or a member's hook (its spec as stored).
#[derive(Debug, Clone)]
pub enum Target {
    /// One of the member's notification channels.
    Channel(Channel),
    /// The member's hook for the event's moment.
    Hook(Value),
    /// One of the member's channels, told that an offer it had is no longer open.
    Withdrawal(Channel),
}

impl Target {
    /// The outcome's `channel`: the channel's type, or `hook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Channel(c) | Target::Withdrawal(c) => c.kind(),
            Target::Hook(_) => "hook",
        }
    }

    /// The outcome's `trigger`: the event's type, or `offer_withdrawn`.
    pub fn trigger<'a>(&self, ctx: &'a Context) -> &'a str {
        match self {
            Target::Withdrawal(_) => "offer_withdrawn",
            _ => &ctx.event_type,
        }
    }

    /// The request to send for the context's event, or why there is none (a hook whose
    /// template fills in to a URL that is not allowed), a short reason safe to record.
    pub fn request(&self, ctx: &Context) -> Result<Outgoing, String> {
        self.request_with(ctx, None)
    }

    /// As [`Target::request`], with the recipient's signed claim link (`{PUBLIC_URL}/a/…`)
    /// for a channel that can carry buttons (ntfy, Slack, Google Chat).
    pub fn request_with(&self, ctx: &Context, claim: Option<&str>) -> Result<Outgoing, String> {
        match self {
            Target::Channel(c) => Ok(channel_request(c, ctx, claim)),
            Target::Hook(spec) => hook_request(spec, ctx),
            Target::Withdrawal(c) => {
                withdrawal_request(c, ctx).ok_or_else(|| "this channel cannot withdraw".into())
            }
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
    let withdrawals = withdrawn(event, thread, members).into_iter().flat_map(|m| {
        m.notifications
            .iter()
            .filter(|c| can_withdraw(c))
            .map(move |c| (m.executor_id.clone(), Target::Withdrawal(c.clone())))
    });
    let hooks = hook_targets(event, thread, members, now);
    let hooks = hooks.iter().filter_map(|(m, moment)| {
        let spec = m.hook(*moment)?;
        Some((m.executor_id.clone(), Target::Hook(spec.clone())))
    });
    let targets: Vec<_> = channels.chain(withdrawals).chain(hooks).collect();
    if targets.is_empty() {
        return None;
    }
    let ctx = Arc::new(Context::new(event, thread, public_url));
    Some(Deliveries { ctx, targets })
}

/// The members whose offer of `thread` is withdrawn by `event`: when it leaves `pending`
/// (claimed, cancelled, expired...), everyone it was offered to who is not told of the
/// change anyway (its requestor and assignee) and did not cause it.
fn withdrawn<'a>(
    event: &Event,
    thread: &Thread,
    members: &'a [Arc<Member>],
) -> Vec<&'a Arc<Member>> {
    let left_pending = matches!(&event.kind,
        EventKind::StatusChanged(c) if c.old_status == Status::Pending && c.new_status != Status::Pending);
    if !left_pending {
        return Vec::new();
    }
    members
        .iter()
        .filter(|m| event.actor_id != *m.executor_id.as_str())
        .filter(|m| !is_party(m, thread) && offered(m, thread))
        .collect()
}

/// Whether `channel` can take an offer back: a webhook, or ntfy 2.16+ (`updates: true`).
fn can_withdraw(channel: &Channel) -> bool {
    matches!(
        channel,
        Channel::Webhook { .. }
            | Channel::Ntfy {
                updates: Some(true),
                ..
            }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipients::tests::{changed, created};
    use serde_json::json;

    fn member(id: &str, channel: serde_json::Value) -> Arc<Member> {
        Arc::new(
            serde_json::from_value(json!({
                "executor_id": id, "exchange_id": "home", "display_name": id,
                "capabilities": ["photo:capture"], "notifications": [channel],
                "key_hash": "0".repeat(64),
                "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-02-01T00:00:00Z",
                "last_seen": "2026-02-01T00:00:00Z",
            }))
            .unwrap(),
        )
    }

    fn members() -> Vec<Arc<Member>> {
        vec![
            member(
                "agent",
                json!({"type": "webhook", "url": "https://hooks.example/agent"}),
            ),
            member(
                "phone",
                json!({"type": "webhook", "url": "https://hooks.example/phone"}),
            ),
            member(
                "tablet",
                json!({"type": "ntfy", "topic": "tab", "updates": true}),
            ),
            member("speaker", json!({"type": "ntfy", "topic": "spk"})),
            member(
                "watch",
                json!({"type": "webhook", "url": "https://hooks.example/watch",
                                   "secret": "s"}),
            ),
            member(
                "passer",
                json!({"type": "webhook", "url": "https://hooks.example/passer"}),
            ),
        ]
    }

    fn withdrawals(d: &Deliveries) -> Vec<(&str, Outgoing)> {
        d.targets
            .iter()
            .filter(|(_, t)| matches!(t, Target::Withdrawal(_)))
            .map(|(id, t)| (id.as_str(), t.request(&d.ctx).unwrap()))
            .collect()
    }

    #[test]
    fn a_claim_withdraws_the_offer_where_a_channel_can_and_from_nobody_else() {
        let (_, mut t) = created(mess_core::Priority::Normal, &["photo:capture"]);
        t.passed_by.push("passer".parse().unwrap());
        let claim = changed(&mut t, "phone", Status::Claimed, Some("phone"));
        let d = deliveries(&claim, &Arc::new(t), &members(), claim.ts, None).unwrap();
        let w = withdrawals(&d);
        let who: Vec<&str> = w.iter().map(|(id, _)| *id).collect();
        // Not the requestor or the claimer (told of the change), not ntfy without
        // updates (an old server would notify twice), not who passed.
        assert_eq!(who, ["tablet", "watch"]);
        let ntfy = &w[0].1;
        assert_eq!(
            (ntfy.method.as_str(), ntfy.url.as_str()),
            ("POST", "https://ntfy.sh/tab")
        );
        assert!(
            ntfy.headers
                .contains(&("X-Sequence-ID".into(), "mess-home-2026-02-01-AAAA".into()))
        );
        assert!(
            ntfy.headers
                .iter()
                .any(|(k, v)| k == "Title" && v.starts_with("Taken by phone"))
        );
        let hook = &w[1].1;
        let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(body["event_type"], "offer_withdrawn");
        assert_eq!(body["reason"], "claimed");
        assert!(
            hook.headers
                .iter()
                .any(|(k, _)| k == "X-Mess-Signature-256")
        );
        let (_, target) = d
            .targets
            .iter()
            .find(|(_, t)| matches!(t, Target::Withdrawal(_)))
            .unwrap();
        assert_eq!(target.trigger(&d.ctx), "offer_withdrawn");
    }

    #[test]
    fn a_cancelled_offer_is_cleared_on_ntfy() {
        let (_, mut t) = created(mess_core::Priority::Normal, &["photo:capture"]);
        let cancel = changed(&mut t, "agent", Status::Cancelled, None);
        let d = deliveries(&cancel, &Arc::new(t), &members(), cancel.ts, None).unwrap();
        let w = withdrawals(&d);
        let ntfy = w.iter().find(|(id, _)| *id == "tablet").unwrap();
        assert_eq!(ntfy.1.method.as_str(), "PUT");
        assert_eq!(
            ntfy.1.url,
            "https://ntfy.sh/tab/mess-home-2026-02-01-AAAA/clear"
        );
        assert!(
            w.iter().any(|(id, _)| *id == "phone"),
            "phone was offered it too"
        );
    }

    #[test]
    fn an_offer_carries_its_sequence_id_for_later_updates() {
        let (e, t) = created(mess_core::Priority::Normal, &["photo:capture"]);
        let d = deliveries(&e, &Arc::new(t), &members(), e.ts, None).unwrap();
        let (_, tablet) = d
            .targets
            .iter()
            .find(|(id, _)| id.as_str() == "tablet")
            .unwrap();
        let out = tablet.request(&d.ctx).unwrap();
        assert!(
            out.headers
                .contains(&("X-Sequence-ID".into(), "mess-home-2026-02-01-AAAA".into()))
        );
        assert!(withdrawals(&d).is_empty(), "a creation withdraws nothing");
    }
}
