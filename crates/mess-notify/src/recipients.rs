//! Who is told about an event, and when: pure functions of the event, the thread, the
//! members and the time (protocol.md, "Notifications").

use std::collections::HashSet;
use std::sync::Arc;

use jiff::tz::TimeZone;
use mess_core::{Event, EventKind, Member, Preferences, Priority, Thread, Timestamp};

/// The members to notify about `event` on `thread`, each once, in `members` order.
///
/// - `thread_created`: every member but the requestor whose capabilities cover the
///   thread's `requires`, whose `min_priority` the thread meets, and who is not in quiet
///   hours at `now` (an urgent thread ignores quiet hours).
/// - the exchange taking back a claim whose time limit ran out (`status_changed` to
///   `pending` by `exchange`): the requestor, and the members it would be offered to now.
/// - `status_changed`, and `message_added` without a status change: the requestor and the
///   assignee, never the member who made the change or sent the message. They are parties
///   to the thread, so their preferences do not filter them.
/// - Any other event: nobody.
pub fn recipients(
    event: &Event,
    thread: &Thread,
    members: &[Arc<Member>],
    now: Timestamp,
) -> Vec<Arc<Member>> {
    let mut seen = HashSet::new();
    let keep = |m: &Arc<Member>| match &event.kind {
        EventKind::ThreadCreated(_) => {
            m.executor_id != thread.requestor_id && wants_new_thread(m, thread, now)
        }
        // The exchange took back a claim: the request is offered again.
        EventKind::StatusChanged(c) if reoffered(c, &event.actor_id) => {
            m.executor_id == thread.requestor_id || offered_again(m, thread, now)
        }
        EventKind::OfferReminded(_) => offered_again(m, thread, now),
        EventKind::ThreadUnclaimed(_) => m.executor_id == thread.requestor_id,
        EventKind::NeededByPassed(_) => is_party(m, thread),
        EventKind::StatusChanged(_) | EventKind::MessageAdded(_) => {
            event.actor_id != *m.executor_id.as_str() && is_party(m, thread)
        }
        _ => false,
    };
    members
        .iter()
        .filter(|m| keep(m) && seen.insert(m.executor_id.as_str()))
        .cloned()
        .collect()
}

/// True when a status change by `actor` puts active work back to `pending` by the
/// exchange's own hand (a claim whose time limit ran out): it is offered again.
fn reoffered(c: &mess_core::event::StatusChanged, actor: &mess_core::Actor) -> bool {
    *actor == mess_core::Actor::Exchange
        && c.new_status == mess_core::Status::Pending
        && c.old_status.group() == mess_core::status::Group::Active
}

/// True when a pending thread offered again reaches `member`: it would be offered it now,
/// it is not its requestor, and it has not passed on it.
fn offered_again(member: &Member, thread: &Thread, now: Timestamp) -> bool {
    member.executor_id != thread.requestor_id
        && !thread.passed_by.contains(&member.executor_id)
        && wants_new_thread(member, thread, now)
}

/// True when `thread` was offered to `member` (whatever the hour: quiet hours only delay
/// what it is told): not its requestor, not one who passed, its capabilities and
/// `min_priority` fit.
pub fn offered(member: &Member, thread: &Thread) -> bool {
    member.executor_id != thread.requestor_id
        && !thread.passed_by.contains(&member.executor_id)
        && member.covers(&thread.requires)
        && member
            .preferences
            .min_priority
            .is_none_or(|min| thread.priority >= min)
}

/// True when `member` is the thread's requestor or its assignee.
pub fn is_party(member: &Member, thread: &Thread) -> bool {
    let id = &member.executor_id;
    *id == thread.requestor_id || thread.executor_id.as_ref() == Some(id)
}

/// True when `member`'s capabilities and preferences ask to hear of `thread` at `now`
/// (whoever created it).
pub fn wants_new_thread(member: &Member, thread: &Thread, now: Timestamp) -> bool {
    let prefs = &member.preferences;
    member.covers(&thread.requires)
        && prefs.min_priority.is_none_or(|min| thread.priority >= min)
        && (thread.priority == Priority::Urgent || !in_quiet_hours(prefs, now))
}

/// True when `now` falls in the member's quiet hours, read in its own time zone
/// (`preferences.timezone`, UTC when unset or unknown) to the minute: `start` inclusive,
/// `end` exclusive, crossing midnight when `start > end`. Equal bounds are an empty window.
pub fn in_quiet_hours(prefs: &Preferences, now: Timestamp) -> bool {
    let Some(q) = prefs.quiet_hours.as_ref().filter(|q| q.enabled) else {
        return false;
    };
    let Some((start, end)) = q.minutes() else {
        return false;
    };
    let Ok(instant) = jiff::Timestamp::from_millisecond(now.unix_millis()) else {
        return false;
    };
    let tz = prefs
        .timezone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC);
    let local = instant.to_zoned(tz);
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    if start <= end {
        start <= minute && minute < end
    } else {
        minute >= start || minute < end
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mess_core::event::{StatusChanged, ThreadCreated};
    use mess_core::{QuietHours, Status, testing};
    use serde_json::json;

    pub(crate) fn member(id: &str, caps: &[&str], prefs: serde_json::Value) -> Arc<Member> {
        Arc::new(
            serde_json::from_value(json!({
                "executor_id": id, "exchange_id": "home", "display_name": id,
                "capabilities": caps, "preferences": prefs,
                "key_hash": "0".repeat(64),
                "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-02-01T00:00:00Z",
                "last_seen": "2026-02-01T00:00:00Z",
            }))
            .unwrap(),
        )
    }

    pub(crate) fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    pub(crate) fn created(priority: Priority, requires: &[&str]) -> (Event, Thread) {
        let event = testing::event(EventKind::ThreadCreated(ThreadCreated {
            requestor_id: "agent".parse().unwrap(),
            intent: "Check the door".into(),
            priority,
            request: json!({"intent": "Check the door", "priority": priority.as_str(),
                            "requires": requires})
            .as_object()
            .unwrap()
            .clone(),
        }))
        .id("e1")
        .ts(at("2026-02-01T12:00:00Z"))
        .thread("2026-02-01-AAAA")
        .actor("agent")
        .build();
        let thread = Thread::from_created(&event).unwrap();
        (event, thread)
    }

    pub(crate) fn changed(
        thread: &mut Thread,
        actor: &str,
        to: Status,
        assignee: Option<&str>,
    ) -> Event {
        let event = testing::event(EventKind::StatusChanged(StatusChanged {
            old_status: thread.status,
            new_status: to,
            executor_id: assignee.map(|a| a.parse().unwrap()),
        }))
        .id("e2")
        .ts(at("2026-02-01T12:05:00Z"))
        .thread(&thread.thread_ref)
        .actor(actor)
        .seq(2)
        .build();
        thread.apply(&event);
        event
    }

    fn ids(ms: &[Arc<Member>]) -> Vec<&str> {
        ms.iter().map(|m| m.executor_id.as_str()).collect()
    }

    fn quiet(tz: Option<&str>, start: &str, end: &str) -> Preferences {
        Preferences {
            quiet_hours: Some(QuietHours {
                enabled: true,
                start: start.into(),
                end: end.into(),
            }),
            timezone: tz.map(Into::into),
            ..Preferences::default()
        }
    }

    #[test]
    fn a_new_thread_notifies_every_capable_member_but_its_requestor() {
        let (e, t) = created(Priority::Normal, &["photo:capture"]);
        let members = [
            member("agent", &["photo:capture"], json!({})),
            member("phone", &["photo:capture", "location:indoor"], json!({})),
            member("speaker", &["audio:play"], json!({})),
            member("phone", &["photo:capture"], json!({})),
        ];
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["phone"]);
    }

    #[test]
    fn a_claim_taken_back_by_the_exchange_is_offered_again() {
        let (_, mut t) = created(Priority::Normal, &["photo:capture"]);
        changed(&mut t, "phone", Status::Claimed, Some("phone"));
        let back = changed(&mut t, "exchange", Status::Pending, None);
        let members = [
            member("agent", &[], json!({})),
            member("phone", &["photo:capture"], json!({})),
            member("tablet", &["photo:capture"], json!({})),
            member("speaker", &["audio:play"], json!({})),
        ];
        assert_eq!(
            ids(&recipients(&back, &t, &members, back.ts)),
            ["agent", "phone", "tablet"]
        );
        // A release by the assignee itself is no re-offer: the requestor is told.
        let (_, mut t) = created(Priority::Normal, &["photo:capture"]);
        changed(&mut t, "phone", Status::Claimed, Some("phone"));
        let released = changed(&mut t, "phone", Status::Pending, None);
        assert_eq!(
            ids(&recipients(&released, &t, &members, released.ts)),
            ["agent"]
        );
    }

    #[test]
    fn a_reminder_reaches_who_would_take_it_but_not_who_passed_and_unclaimed_the_requestor() {
        use mess_core::event::OfferTimer;
        let (created, mut t) = created(Priority::Normal, &["photo:capture"]);
        t.passed_by.push("tablet".parse().unwrap());
        let timer = || OfferTimer {
            offered_at: created.ts,
        };
        let event = |kind| {
            testing::event(kind)
                .thread(&t.thread_ref)
                .actor("exchange")
                .ts(at("2026-02-01T13:00:00Z"))
                .build()
        };
        let members = [
            member("agent", &["photo:capture"], json!({})),
            member("phone", &["photo:capture"], json!({})),
            member("tablet", &["photo:capture"], json!({})),
        ];
        let reminded = event(EventKind::OfferReminded(timer()));
        assert_eq!(
            ids(&recipients(&reminded, &t, &members, reminded.ts)),
            ["phone"]
        );
        let unclaimed = event(EventKind::ThreadUnclaimed(timer()));
        assert_eq!(
            ids(&recipients(&unclaimed, &t, &members, unclaimed.ts)),
            ["agent"]
        );
    }

    #[test]
    fn a_thread_requiring_nothing_reaches_members_without_capabilities() {
        let (e, t) = created(Priority::Normal, &[]);
        let members = [member("bare", &[], json!({}))];
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["bare"]);
    }

    #[test]
    fn min_priority_filters_lower_priorities() {
        let members = [
            member("any", &[], json!({})),
            member("elevated-up", &[], json!({"min_priority": "elevated"})),
            member("normal-up", &[], json!({"min_priority": "normal"})),
        ];
        let (e, t) = created(Priority::Normal, &[]);
        assert_eq!(
            ids(&recipients(&e, &t, &members, e.ts)),
            ["any", "normal-up"]
        );
        let (e, t) = created(Priority::Elevated, &[]);
        assert_eq!(
            ids(&recipients(&e, &t, &members, e.ts)),
            ["any", "elevated-up", "normal-up"]
        );
        let (e, t) = created(Priority::Background, &[]);
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["any"]);
    }

    #[test]
    fn quiet_hours_hold_back_all_but_urgent_threads() {
        let members = [member(
            "sleeper",
            &[],
            json!({"quiet_hours": {"enabled": true, "start": "22:00", "end": "07:00"}}),
        )];
        let (e, t) = created(Priority::Elevated, &[]);
        assert!(recipients(&e, &t, &members, at("2026-02-01T23:30:00Z")).is_empty());
        assert_eq!(
            recipients(&e, &t, &members, at("2026-02-01T12:00:00Z")).len(),
            1
        );
        let (e, t) = created(Priority::Urgent, &[]);
        assert_eq!(
            recipients(&e, &t, &members, at("2026-02-01T23:30:00Z")).len(),
            1
        );
    }

    #[test]
    fn quiet_hours_cross_midnight_start_inclusive_end_exclusive() {
        let p = quiet(None, "22:00", "07:00");
        for (t, q) in [
            ("2026-02-01T21:59:59Z", false),
            ("2026-02-01T22:00:00Z", true),
            ("2026-02-01T23:59:00Z", true),
            ("2026-02-02T00:00:00Z", true),
            ("2026-02-02T06:59:59Z", true),
            ("2026-02-02T07:00:00Z", false),
            ("2026-02-02T12:00:00Z", false),
        ] {
            assert_eq!(in_quiet_hours(&p, at(t)), q, "{t}");
        }
        let day = quiet(None, "09:00", "17:30");
        assert!(in_quiet_hours(&day, at("2026-02-01T17:29:00Z")));
        assert!(!in_quiet_hours(&day, at("2026-02-01T17:30:00Z")));
        assert!(!in_quiet_hours(&day, at("2026-02-01T08:59:00Z")));
        assert!(!in_quiet_hours(
            &quiet(None, "10:00", "10:00"),
            at("2026-02-01T10:00:00Z")
        ));
    }

    #[test]
    fn quiet_hours_are_read_in_the_members_time_zone() {
        let p = quiet(Some("Europe/Paris"), "22:00", "07:00");
        // 21:30 UTC is 22:30 in Paris in winter (UTC+1).
        assert!(in_quiet_hours(&p, at("2026-02-01T21:30:00Z")));
        // 06:30 UTC is 07:30 in Paris.
        assert!(!in_quiet_hours(&p, at("2026-02-01T06:30:00Z")));
        // Tokyo: 13:00 UTC is 22:00 local.
        let tokyo = quiet(Some("Asia/Tokyo"), "22:00", "07:00");
        assert!(in_quiet_hours(&tokyo, at("2026-02-01T13:00:00Z")));
        assert!(!in_quiet_hours(&tokyo, at("2026-02-01T12:59:00Z")));
    }

    #[test]
    fn quiet_hours_follow_daylight_saving_changes() {
        let ny = quiet(Some("America/New_York"), "22:00", "07:00");
        // 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT.
        // 11:30 UTC is 06:30 EST the day before... and 07:30 EDT after the change.
        assert!(in_quiet_hours(&ny, at("2026-03-07T11:30:00Z")));
        assert!(!in_quiet_hours(&ny, at("2026-03-08T11:30:00Z")));
        // 10:59 UTC on the change day is 06:59 EDT: still quiet; 11:00 UTC is 07:00 EDT.
        assert!(in_quiet_hours(&ny, at("2026-03-08T10:59:00Z")));
        assert!(!in_quiet_hours(&ny, at("2026-03-08T11:00:00Z")));
        // 2026-11-01: clocks fall back from 02:00 EDT to 01:00 EST.
        // 11:30 UTC is 07:30 EDT the day before, and 06:30 EST after the change.
        assert!(!in_quiet_hours(&ny, at("2026-10-31T11:30:00Z")));
        assert!(in_quiet_hours(&ny, at("2026-11-01T11:30:00Z")));
        assert!(!in_quiet_hours(&ny, at("2026-11-01T12:00:00Z")));
        // The evening start moves too: 02:00 UTC is 22:00 EDT on 2026-10-31, 21:00 EST after.
        assert!(in_quiet_hours(&ny, at("2026-11-01T02:00:00Z")));
        assert!(!in_quiet_hours(&ny, at("2026-11-02T02:00:00Z")));
    }

    #[test]
    fn an_unknown_time_zone_falls_back_to_utc_and_disabled_quiet_hours_never_apply() {
        let p = quiet(Some("Mars/Olympus_Mons"), "22:00", "07:00");
        assert!(in_quiet_hours(&p, at("2026-02-01T23:00:00Z")));
        let mut off = quiet(None, "00:00", "23:59");
        off.quiet_hours.as_mut().unwrap().enabled = false;
        assert!(!in_quiet_hours(&off, at("2026-02-01T12:00:00Z")));
        assert!(!in_quiet_hours(
            &Preferences::default(),
            at("2026-02-01T12:00:00Z")
        ));
    }

    #[test]
    fn a_status_change_notifies_requestor_and_assignee_but_never_the_actor() {
        let (_, mut t) = created(Priority::Normal, &["photo:capture"]);
        let members = [
            member("agent", &[], json!({})),
            member("phone", &["photo:capture"], json!({})),
            member("tablet", &["photo:capture"], json!({})),
        ];
        let e = changed(&mut t, "phone", Status::Claimed, Some("phone"));
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["agent"]);
        let e = changed(&mut t, "agent", Status::Cancelled, Some("phone"));
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["phone"]);
        let e = changed(&mut t, "exchange", Status::Expired, Some("phone"));
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["agent", "phone"]);
    }

    #[test]
    fn a_status_change_ignores_preferences_of_the_parties() {
        let (_, mut t) = created(Priority::Background, &[]);
        let members = [member(
            "agent",
            &[],
            json!({"min_priority": "urgent",
                   "quiet_hours": {"enabled": true, "start": "00:00", "end": "23:59"}}),
        )];
        let e = changed(&mut t, "phone", Status::Claimed, Some("phone"));
        assert_eq!(ids(&recipients(&e, &t, &members, e.ts)), ["agent"]);
    }

    #[test]
    fn other_events_notify_nobody() {
        let (mut e, t) = created(Priority::Urgent, &[]);
        e.kind = EventKind::MessageAdded(mess_core::event::MessageAdded { mess: vec![] });
        assert!(recipients(&e, &t, &[member("x", &[], json!({}))], e.ts).is_empty());
    }
}
