//! A thread keeps its messages as one JSON buffer (`Messages`): it must serialize exactly as
//! the same list of `Message` values would, however it was folded (event by event,
//! `apply_all`, or start-up's `Replay` in any stored order).

use mess_core::event::{MessageAdded, ThreadCreated};
use mess_core::{
    Block, BlockKind, Event, EventKind, Exchange, ExchangeId, Message, Priority, Replay, ThreadRef,
    Timestamp, testing,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value};

const REF: &str = "2026-02-01-ABCD";

/// Any JSON value, with awkward strings (quotes, escapes, non-ASCII) and numbers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        Just(Value::String(
            "data:image/png;base64,iVBO\"\\\u{1F600}".into()
        )),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec(("\\PC{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn block() -> impl Strategy<Value = Block> {
    (0..BlockKind::ALL.len(), json_value()).prop_map(|(k, v)| Block::new(BlockKind::ALL[k], v))
}

/// A message: (sender, milliseconds after the creation, blocks). Senders are actors: any
/// executor id (`exchange`, the exchange's own, among them).
fn message() -> impl Strategy<Value = (String, i64, Vec<Block>)> {
    (
        "[A-Za-z0-9][A-Za-z0-9_-]{0,9}",
        0i64..10_000_000,
        vec(block(), 0..4),
    )
}

/// An event about `REF`, its `event_id` fixed by `seq` (the builder's default).
fn event(seq: u64, ts: Timestamp, actor: &str, kind: EventKind) -> Event {
    testing::event(kind)
        .thread(REF)
        .actor(actor)
        .seq(seq)
        .ts(ts)
        .build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn compact_messages_serialize_like_the_list_of_messages(
        request in vec(("\\PC{0,6}", json_value()), 0..3),
        messages in vec(message(), 0..12),
        reverse in any::<bool>(),
    ) {
        let t0 = Timestamp::parse("2026-02-01T22:00:00.000Z").expect("valid");
        let mut request: Map<String, Value> = request.into_iter().collect();
        request.insert("intent".into(), Value::String("Is the \"door\" closed?".into()));
        let mut log = vec![event(1, t0, "req-1", EventKind::ThreadCreated(ThreadCreated {
            requestor_id: "req-1".parse().expect("valid"),
            intent: "Is the \"door\" closed?".into(),
            priority: Priority::Normal,
            request: request.clone(),
        }))];
        // The expected messages, as a plain list of `Message` values.
        let mut expected = vec![Message {
            from: "req-1".into(),
            ts: t0,
            mess: vec![Block::new(BlockKind::Request, Value::Object(request))],
        }];
        for (n, (from, after, mess)) in messages.into_iter().enumerate() {
            let ts = Timestamp::from_unix_millis(t0.unix_millis() + after);
            expected.push(Message { from: from.clone(), ts, mess: mess.clone() });
            log.push(event(n as u64 + 2, ts, &from, EventKind::MessageAdded(MessageAdded { mess })));
        }
        let want = serde_json::to_string(&expected).expect("json");
        let r = ThreadRef::parse(REF).expect("valid");

        // Event by event, as the writer does.
        let mut live = Exchange::new(ExchangeId::parse("home").expect("valid"));
        for e in &log {
            live.apply(e);
        }
        let t = live.thread(&r).expect("created");
        prop_assert_eq!(serde_json::to_string(&t.messages).expect("json"), want.clone());
        prop_assert_eq!(t.messages.as_json(), want.as_str());
        prop_assert_eq!(t.messages.len(), expected.len());
        prop_assert_eq!(t.messages.to_vec(), expected.clone());
        prop_assert_eq!((&t.messages).into_iter().last(), expected.last().cloned());
        // The whole GET body holds the same array, verbatim.
        let body = serde_json::to_string(&**t).expect("json");
        prop_assert!(body.ends_with(&format!(",\"messages\":{want}}}")), "{}", body);
        prop_assert_eq!(
            serde_json::to_value(&**t).expect("json")["messages"].clone(),
            serde_json::to_value(&expected).expect("json")
        );

        // The cached forms a list and a GET write are the serde ones, byte for byte.
        prop_assert_eq!(t.summary_json(), serde_json::to_string(&t.summary()).expect("json"));
        let mut written = Vec::new();
        t.write_json(&mut written);
        prop_assert_eq!(String::from_utf8(written).expect("utf-8"), body);

        // All at once.
        let mut bulk = Exchange::new(ExchangeId::parse("home").expect("valid"));
        bulk.apply_all(&log);
        prop_assert_eq!(bulk.thread(&r), Some(t));

        // Start-up's replay, from any stored order (a thread's events are put back in `seq`
        // order), and from the stored lines.
        let mut replay = Replay::new();
        let mut stored: Vec<Event> = log
            .iter()
            .map(|e| Event::from_line(&e.to_line()).expect("reads back"))
            .collect();
        if reverse {
            stored.reverse();
        }
        for e in stored {
            replay.push(e);
        }
        prop_assert_eq!(replay.events(), log.len());
        let states = replay.finish([]);
        let x = states.get(&ExchangeId::parse("home").expect("valid")).expect("an exchange");
        prop_assert_eq!(x.thread(&r), Some(t));
    }
}

#[test]
fn a_changed_thread_never_shows_its_old_cached_list_entry() {
    use mess_core::Status;
    use mess_core::event::StatusChanged;
    let t0 = Timestamp::parse("2026-02-01T22:00:00.000Z").expect("valid");
    let created = event(
        1,
        t0,
        "a",
        EventKind::ThreadCreated(ThreadCreated {
            requestor_id: "a".parse().expect("valid"),
            intent: "x".into(),
            priority: Priority::Normal,
            request: Map::new(),
        }),
    );
    let mut x = Exchange::new(ExchangeId::parse("home").expect("valid"));
    x.apply(&created);
    let r = ThreadRef::parse(REF).expect("valid");
    let mut t = (**x.thread(&r).expect("created")).clone();
    assert!(t.summary_json().contains("\"status\":\"pending\""));
    // Changed in place (no clone in between): the cache must not survive.
    t.apply(&event(
        2,
        t0,
        "b",
        EventKind::StatusChanged(StatusChanged {
            old_status: Status::Pending,
            new_status: Status::Claimed,
            executor_id: Some("b".parse().expect("valid")),
        }),
    ));
    assert!(
        t.summary_json().contains("\"status\":\"claimed\""),
        "{}",
        t.summary_json()
    );
    let mut written = Vec::new();
    t.write_json(&mut written);
    assert_eq!(written, serde_json::to_vec(&t).expect("json"));
}
