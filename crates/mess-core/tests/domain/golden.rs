//! Golden files for what outlives the code: one stored line per event type (DuckDB views and
//! older data depend on these exact columns), and a folded thread in the API's GET shape.
//! Regenerate with `INSTA_UPDATE=always cargo test -p mess-core`, then review the diff:
//! a changed line is a format change that old data must survive.

use mess_core::event::{
    MemberSnapshot, MessageAdded, NotificationOutcome, StatusChanged, ThreadCreated,
};
use mess_core::{Event, EventKind, Priority, Status, Timestamp, testing};
use serde_json::json;

use crate::harness::*;

const REF: &str = "2026-02-01-XY1Z";

fn event(n: u8, minute: u8, thread: bool, actor: &str, kind: EventKind) -> Event {
    let e = testing::event(kind)
        .id(format!("00000000-0000-4000-8000-0000000000{n:02}"))
        .ts(Timestamp::parse(&format!("2026-02-01T22:{minute:02}:00.123Z")).expect("valid"))
        .actor(actor);
    if thread {
        e.thread(REF).seq(u64::from(n)).build()
    } else {
        e.no_thread().build()
    }
}

/// The line is exactly the golden one, and reads back as the same event.
fn golden(name: &str, e: Event) {
    let line = e.to_line();
    insta::with_settings!({snapshot_path => "../snapshots"}, {
        insta::assert_snapshot!(name, line);
    });
    assert_eq!(Event::from_line(&line).expect("reads back"), e);
    assert_eq!(e.kind.event_type(), name);
}

fn member(id: &str, name: &str) -> MemberSnapshot {
    MemberSnapshot {
        executor_id: id.parse().expect("valid"),
        display_name: name.into(),
        capabilities: vec!["photo:capture".into(), "location:indoor".into()],
        channels: vec!["ntfy".into()],
    }
}

#[test]
fn golden_executor_registered() {
    golden(
        "executor_registered",
        event(
            0,
            0,
            false,
            "my-phone",
            EventKind::ExecutorRegistered(member("my-phone", "My Phone")),
        ),
    );
}

#[test]
fn golden_executor_updated() {
    golden(
        "executor_updated",
        event(
            7,
            1,
            false,
            "my-phone",
            EventKind::ExecutorUpdated(member("my-phone", "Teague Phone")),
        ),
    );
}

#[test]
fn golden_executor_key_rotated() {
    golden(
        "executor_key_rotated",
        event(
            7,
            1,
            false,
            "my-phone",
            EventKind::ExecutorKeyRotated(member("my-phone", "My Phone")),
        ),
    );
}

#[test]
fn golden_executor_removed() {
    golden(
        "executor_removed",
        event(
            7,
            1,
            false,
            "my-phone",
            EventKind::ExecutorRemoved(member("my-phone", "My Phone")),
        ),
    );
}

#[test]
fn golden_thread_created() {
    let request = json!({
        "intent": "Check if the garage door is closed",
        "context": ["User is away from home"],
        "priority": "normal",
        "response_hint": ["image"],
        "needed_by": "2026-02-01T23:00:00Z",
        "x-client": {"kept": true},
    });
    let serde_json::Value::Object(request) = request else {
        unreachable!()
    };
    let kind = EventKind::ThreadCreated(ThreadCreated {
        requestor_id: "claude-agent".parse().expect("valid"),
        intent: "Check if the garage door is closed".into(),
        priority: Priority::Normal,
        request,
    });
    golden("thread_created", event(1, 0, true, "claude-agent", kind));
}

#[test]
fn golden_status_changed() {
    let kind = EventKind::StatusChanged(StatusChanged {
        old_status: Status::Pending,
        new_status: Status::Claimed,
        executor_id: Some("my-phone".parse().expect("valid")),
    });
    golden("status_changed", event(2, 1, true, "my-phone", kind));
}

#[test]
fn golden_message_added() {
    let kind = EventKind::MessageAdded(MessageAdded {
        mess: blocks(json!([
            {"status": {"re": REF, "code": "completed"}},
            {"response": {"content": ["Garage is closed", {"image": "data:image/png;base64,iVBORw0KGgo="}]}},
        ])),
    });
    golden("message_added", event(3, 5, true, "my-phone", kind));
}

#[test]
fn golden_notification_delivered() {
    let kind = EventKind::NotificationDelivered(NotificationOutcome {
        executor_id: "my-phone".parse().expect("valid"),
        channel: "ntfy".into(),
        trigger: "thread_created".into(),
        attempts: 1,
        http_status: Some(200),
        error: None,
    });
    golden(
        "notification_delivered",
        event(4, 0, true, "exchange", kind),
    );
}

#[test]
fn golden_notification_failed() {
    let kind = EventKind::NotificationFailed(NotificationOutcome {
        executor_id: "my-phone".parse().expect("valid"),
        channel: "webhook".into(),
        trigger: "status_changed".into(),
        attempts: 5,
        http_status: None,
        error: Some("timed out after 10s".into()),
    });
    golden("notification_failed", event(5, 2, true, "exchange", kind));
}

#[test]
fn golden_event_of_a_type_from_a_newer_version() {
    let kind = EventKind::Other {
        event_type: "thread_archived".into(),
        payload: json!({"reason": "older than a year", "by": ["policy", 3]}),
    };
    golden("thread_archived", event(6, 9, true, "exchange", kind));
}

/// Create, claim, complete with a response: the seed's GET example, folded from events.
#[test]
fn a_folded_thread_has_the_seeds_get_shape() {
    let mut w = given().members(&["claude-agent", "my-phone"]);
    let r = w.create(
        "claude-agent",
        json!({"intent": "Check if the garage door is closed"}),
    );
    w.minutes_later(1);
    w.run("my-phone", claim(&r));
    w.minutes_later(4);
    w.run(
        "my-phone",
        to_with(
            &r,
            Status::Completed,
            json!({}),
            json!([{"response": {"content": ["Garage is closed"]}}]),
        ),
    );
    let thread = w.thread(&r);
    insta::with_settings!({snapshot_path => "../snapshots"}, {
        insta::assert_json_snapshot!("seed_thread_get", serde_json::to_value(&*thread).expect("json"));
    });
    // The list shows the same head without the messages.
    let summary = serde_json::to_value(thread.summary()).expect("json");
    let mut head = serde_json::to_value(&*thread).expect("json");
    head.as_object_mut().expect("an object").remove("messages");
    assert_eq!(summary, head);
    // Folding the stored lines afresh gives the same thread.
    let lines: Vec<String> = w.log.iter().map(Event::to_line).collect();
    let fresh = given().events(
        lines
            .iter()
            .map(|l| Event::from_line(l).expect("reads back")),
    );
    assert_eq!(fresh.thread(&r), thread);
}

#[test]
fn the_version_counts_commands_a_get_shows_and_not_notification_outcomes() {
    let mut w = given().members(&["claude-agent", "my-phone"]);
    let r = w.create("claude-agent", json!({"intent": "Is the door locked?"}));
    assert_eq!(w.thread(&r).version, 1, "created");
    w.run("my-phone", claim(&r));
    assert_eq!(
        w.thread(&r).version,
        2,
        "a status change and its message: one command"
    );
    let mut t = (*w.thread(&r)).clone();
    let outcome = testing::event(EventKind::NotificationDelivered(NotificationOutcome {
        executor_id: "my-phone".parse().expect("valid"),
        channel: "ntfy".into(),
        trigger: "status_changed".into(),
        attempts: 1,
        http_status: Some(200),
        error: None,
    }))
    .thread(r.as_str())
    .actor("exchange")
    .seq(t.seq + 1)
    .build();
    t.apply(&outcome);
    assert_eq!(t.version, 2, "an outcome changes nothing a GET shows");
}

#[test]
fn the_exchange_recorded_as_at_exchange_reads_as_exchange() {
    // Lines written before the rename stay as they are; reading them gives `exchange`.
    let line = r#"{"event_id":"e5","ts":"2026-02-01T22:02:00.000Z","exchange_id":"home","thread_ref":"2026-02-01-XY1Z","event_type":"status_changed","actor_id":"@exchange","payload":{"old_status":"pending","new_status":"expired","executor_id":null},"seq":5}"#;
    let e = Event::from_line(line).expect("a stored line");
    assert_eq!(e.actor_id, mess_core::Actor::Exchange);
    assert!(e.to_line().contains(r#""actor_id":"exchange""#));
}
