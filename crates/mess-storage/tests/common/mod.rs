//! Events and members for the storage tests and the benchmark.
#![allow(dead_code, missing_docs)]

use mess_core::event::{
    MemberSnapshot, MessageAdded, NotificationOutcome, StatusChanged, ThreadCreated,
};
use mess_core::{
    ApiKey, Block, BlockKind, Event, EventKind, ExchangeId, ExecutorId, Member, OsEntropy,
    Preferences, Priority, Status, ThreadRef, Timestamp, testing,
};
use serde_json::json;

/// 2026-02-01T22:00:00.000Z.
pub const T0: i64 = 1_769_983_200_000;

pub fn exchange(id: &str) -> ExchangeId {
    ExchangeId::parse(id).unwrap()
}

pub fn thread(suffix: &str) -> ThreadRef {
    ThreadRef::parse(&format!("2026-02-01-{suffix}")).unwrap()
}

pub fn event(
    exchange_id: &ExchangeId,
    thread_ref: Option<&ThreadRef>,
    seq: u64,
    ts_ms: i64,
    kind: EventKind,
) -> Event {
    let e = testing::event(kind)
        .id(uuid::Uuid::new_v4().to_string())
        .ts(Timestamp::from_unix_millis(ts_ms))
        .exchange(exchange_id)
        .seq(seq);
    match thread_ref {
        Some(t) => e.thread(t),
        None => e.no_thread(),
    }
    .build()
}

pub fn snapshot(id: &str) -> MemberSnapshot {
    MemberSnapshot {
        executor_id: id.parse().unwrap(),
        display_name: format!("{id} display"),
        capabilities: vec!["photo:capture".into()],
        channels: vec!["ntfy".into()],
    }
}

pub fn thread_created() -> EventKind {
    let request = json!({"intent": "Check the front door", "context": ["é ✓ \"quoted\"\n"]});
    EventKind::ThreadCreated(ThreadCreated {
        requestor_id: "claude-agent".parse().unwrap(),
        intent: "Check the front door".into(),
        priority: Priority::Elevated,
        request: request.as_object().unwrap().clone(),
    })
}

pub fn status_changed(old: Status, new: Status) -> EventKind {
    EventKind::StatusChanged(StatusChanged {
        old_status: old,
        new_status: new,
        executor_id: Some("my-phone".parse().unwrap()),
    })
}

pub fn message_added() -> EventKind {
    EventKind::MessageAdded(MessageAdded {
        mess: vec![Block::new(
            BlockKind::Response,
            json!({"re": "2026-02-01-XY1Z", "value": 42}),
        )],
    })
}

pub fn outcome(error: Option<&str>) -> NotificationOutcome {
    NotificationOutcome {
        executor_id: "my-phone".parse().unwrap(),
        channel: "ntfy".into(),
        trigger: "thread_created".into(),
        attempts: 2,
        http_status: Some(503),
        error: error.map(str::to_owned),
    }
}

/// One event of every `EventKind` variant, on `x`, a thread's in `seq` order, each a
/// millisecond after the previous one from `t0`.
pub fn every_kind(x: &ExchangeId, t: &ThreadRef, t0: i64) -> Vec<Event> {
    vec![
        event(
            x,
            None,
            0,
            t0,
            EventKind::ExecutorRegistered(snapshot("my-phone")),
        ),
        event(
            x,
            None,
            0,
            t0 + 1,
            EventKind::ExecutorUpdated(snapshot("my-phone")),
        ),
        event(
            x,
            None,
            0,
            t0 + 1,
            EventKind::ExecutorKeyRotated(snapshot("my-phone")),
        ),
        event(
            x,
            None,
            0,
            t0 + 1,
            EventKind::ExecutorRemoved(snapshot("my-phone")),
        ),
        event(x, Some(t), 1, t0 + 2, thread_created()),
        event(
            x,
            Some(t),
            2,
            t0 + 3,
            status_changed(Status::Pending, Status::Claimed),
        ),
        event(x, Some(t), 3, t0 + 4, message_added()),
        event(
            x,
            Some(t),
            4,
            t0 + 5,
            EventKind::NotificationDelivered(outcome(None)),
        ),
        event(
            x,
            Some(t),
            5,
            t0 + 6,
            EventKind::NotificationFailed(outcome(Some("timeout"))),
        ),
        event(
            x,
            Some(t),
            6,
            t0 + 7,
            EventKind::Other {
                event_type: "from_the_future".into(),
                payload: json!({"a": [1]}),
            },
        ),
    ]
}

pub fn member(x: &ExchangeId, id: &str, name: &str) -> Member {
    let t = Timestamp::from_unix_millis(T0);
    Member {
        executor_id: ExecutorId::parse(id).unwrap(),
        exchange_id: x.clone(),
        display_name: name.into(),
        capabilities: vec!["photo:capture".into()],
        notifications: vec![],
        preferences: Preferences::default(),
        hooks: Default::default(),
        key_hash: ApiKey::generate(x, &OsEntropy).hash(),
        created_at: t,
        updated_at: t,
        last_seen: t,
    }
}
