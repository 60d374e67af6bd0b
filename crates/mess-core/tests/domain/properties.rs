//! Property tests: random command sequences keep to the table and lose no message; every
//! parser answers garbage with an error, never a panic.

use std::collections::HashMap;

use mess_core::event::EXCHANGE_ACTOR;
use mess_core::rules::{Roles, Who, transition};
use mess_core::thread::Confirmation;
use mess_core::{
    Actor, ApiKey, Block, Command, Cursor, DomainError, Event, EventKind, ExchangeId, ExecutorId,
    NewRequest, Priority, Profile, Registration, Status, StatusUpdate, Thread, ThreadRef,
    Timestamp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::harness::*;

const MEMBERS: [&str; 3] = ["m0", "m1", "m2"];

/// How a status change's client `mess` begins.
#[derive(Debug, Clone, Copy)]
enum Lead {
    Nothing,
    SameStatusBlock,
    Response,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        by: usize,
        deadline_minutes: Option<u8>,
        confirm_before: bool,
    },
    Claim {
        by: usize,
        t: usize,
    },
    SetStatus {
        by: usize,
        t: usize,
        to: usize,
        lead: Lead,
    },
    /// A move the table allows from the thread's status, by a member the row allows.
    Move {
        t: usize,
        pick: usize,
        lead: Lead,
    },
    Release {
        by: usize,
        t: usize,
    },
    Say {
        by: usize,
        t: usize,
        block: usize,
    },
    Expire {
        t: usize,
    },
    ExpireDue,
    Advance {
        minutes: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let by = 0..MEMBERS.len();
    let t = any::<usize>();
    let lead = prop_oneof![
        Just(Lead::Nothing),
        Just(Lead::SameStatusBlock),
        Just(Lead::Response)
    ];
    prop_oneof![
        1 => (by.clone(), proptest::option::of(0u8..90), any::<bool>()).prop_map(
            |(by, deadline_minutes, confirm_before)| Op::Create { by, deadline_minutes, confirm_before }
        ),
        3 => (by.clone(), t).prop_map(|(by, t)| Op::Claim { by, t }),
        4 => (by.clone(), t, 0..Status::ALL.len(), lead.clone())
            .prop_map(|(by, t, to, lead)| Op::SetStatus { by, t, to, lead }),
        6 => (t, any::<usize>(), lead).prop_map(|(t, pick, lead)| Op::Move { t, pick, lead }),
        1 => (by.clone(), t).prop_map(|(by, t)| Op::Release { by, t }),
        3 => (by, t, 0..SAYINGS.len()).prop_map(|(by, t, block)| Op::Say { by, t, block }),
        1 => t.prop_map(|t| Op::Expire { t }),
        1 => Just(Op::ExpireDue),
        2 => (0u16..120).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

const SAYINGS: [&str; 4] = [
    r#"[{"reply": {"content": ["yes"]}}]"#,
    r#"[{"query": {"q": "which one?"}}]"#,
    r#"[{"ack": {}}, {"followup": {"x": [1, null]}}]"#,
    r#"[{"response": {"content": ["done"]}}]"#,
];

fn lead_blocks(lead: Lead, to: Status) -> Option<Vec<Block>> {
    match lead {
        Lead::Nothing => None,
        Lead::SameStatusBlock => Some(blocks(
            json!([{"status": {"code": to.as_str(), "by": "client"}}]),
        )),
        Lead::Response => Some(blocks(json!([{"response": {"content": ["r"]}}]))),
    }
}

fn member(i: usize) -> Actor {
    Actor::Member(ExecutorId::parse(MEMBERS[i]).expect("valid"))
}

/// The command `op` stands for, on the threads created so far (`None` when it needs a
/// thread and there is none yet).
fn command(w: &World, refs: &[ThreadRef], op: &Op) -> Option<(Actor, Command)> {
    let pick = |t: usize| (!refs.is_empty()).then(|| refs[t % refs.len()].clone());
    let update = |r: ThreadRef, to: Status, mess: Option<Vec<Block>>| Command::Update {
        thread: r,
        status: Some(StatusUpdate {
            to,
            extra: Map::new(),
        }),
        mess,
    };
    Some(match *op {
        Op::Create {
            by,
            deadline_minutes,
            confirm_before,
        } => {
            let mut body = json!({"intent": "do it", "confirm_before": confirm_before});
            if let Some(m) = deadline_minutes {
                let at = Timestamp::from_unix_millis(w.now().unix_millis() + i64::from(m) * 60_000);
                body["needed_by"] = json!(at.to_string());
            }
            // Some with a claim limit of their own (the timer index keys those apart).
            if deadline_minutes.is_none_or(|m| m % 3 == 0) && by % 2 == 0 {
                body["claim_timeout"] = json!("PT10M");
            }
            (member(by), create(body))
        }
        Op::Claim { by, t } => (member(by), claim(&pick(t)?)),
        Op::SetStatus { by, t, to, lead } => {
            let r = pick(t)?;
            let to = Status::ALL[to];
            (member(by), update(r, to, lead_blocks(lead, to)))
        }
        Op::Move {
            t,
            pick: choice,
            lead,
        } => {
            let r = pick(t)?;
            let thread = w.thread(&r);
            let moves: Vec<Status> = Status::ALL
                .into_iter()
                .filter(|s| {
                    transition(thread.status, *s).is_some_and(|row| row.who != Who::Exchange)
                })
                .collect();
            let to = *moves.get(choice % moves.len().max(1))?;
            let who = match transition(thread.status, to).map(|row| row.who) {
                Some(Who::Requestor) => thread.requestor_id.clone(),
                Some(Who::Assignee) => thread.executor_id.clone()?,
                _ => MEMBERS[choice % MEMBERS.len()].parse().expect("valid"),
            };
            (
                who.as_str().into_actor(),
                update(r, to, lead_blocks(lead, to)),
            )
        }
        Op::Release { by, t } => (member(by), update(pick(t)?, Status::Pending, None)),
        Op::Say { by, t, block } => (
            member(by),
            say(
                &pick(t)?,
                serde_json::from_str(SAYINGS[block]).expect("json"),
            ),
        ),
        Op::Expire { t } => (Actor::Exchange, expire(&pick(t)?)),
        Op::ExpireDue | Op::Advance { .. } => return None,
    })
}

fn roles(actor_id: &str, t: &Thread) -> Roles {
    Roles {
        requestor: actor_id == t.requestor_id,
        assignee: t.executor_id.as_ref().map(|e| e.as_str()) == Some(actor_id),
        exchange: actor_id == EXCHANGE_ACTOR,
    }
}

/// Records one event after checking it against the thread it changes.
fn check_and_apply(w: &mut World, e: Event) -> Result<(), TestCaseError> {
    let r = e.thread_ref.clone().expect("a thread event");
    if let EventKind::StatusChanged(c) = &e.kind {
        let t = w.thread(&r);
        prop_assert_eq!(c.old_status, t.status, "old_status is the status before");
        let row = transition(c.old_status, c.new_status);
        prop_assert!(
            row.is_some(),
            "{} -> {} is not in the table",
            c.old_status,
            c.new_status
        );
        let row = row.expect("checked");
        // The exchange also takes back a claim whose limit ran out (protocol.md, Time).
        let timed_out = e.actor_id.as_str() == EXCHANGE_ACTOR
            && c.old_status == Status::Claimed
            && c.new_status == Status::Pending;
        prop_assert!(
            timed_out || roles(e.actor_id.as_str(), &t).may(row.who),
            "{} may not {}",
            e.actor_id,
            row.name
        );
        if c.new_status == Status::Completed && t.confirm_before {
            prop_assert_eq!(t.confirmation, Confirmation::Given);
        }
    }
    w.exchange.apply(&e);
    w.log.push(e);
    Ok(())
}

/// What must hold of every thread after every command.
/// Timer settings to search with: as the random runs fire them, off, and short.
const TIMERS: [mess_core::Timers; 3] = [
    mess_core::Timers {
        claim_timeout_ms: Some(30 * 60_000),
        remind_after_ms: 20 * 60_000,
    },
    mess_core::Timers {
        claim_timeout_ms: None,
        remind_after_ms: 3_600_000,
    },
    mess_core::Timers {
        claim_timeout_ms: Some(60_000),
        remind_after_ms: 60_000,
    },
];

/// The timer index finds exactly what reading every thread finds, now and later, under
/// every setting, and the next time anything is due.
fn timers_agree(x: &mess_core::Exchange, now: Timestamp) -> Result<(), TestCaseError> {
    for timers in TIMERS {
        for minutes in [0i64, 1, 7, 25, 45, 130, 2000] {
            let at = Timestamp::from_unix_millis(now.unix_millis() + minutes * 60_000);
            prop_assert_eq!(
                x.due(at, timers),
                x.due_by_scan(at, timers),
                "at +{}m",
                minutes
            );
        }
        prop_assert_eq!(x.next_due(timers), x.next_due_by_scan(timers));
    }
    Ok(())
}

fn check_invariants(w: &World, added: &HashMap<ThreadRef, usize>) -> Result<(), TestCaseError> {
    let now = w.now();
    timers_agree(&w.exchange, now)?;
    let (all, _) = w.exchange.list(None, None, usize::MAX);
    prop_assert_eq!(all.len(), w.exchange.thread_count());
    prop_assert!(
        all.windows(2).all(|p| p[0].updated_at >= p[1].updated_at),
        "newest first"
    );
    let mut due = w.exchange.due_for_expiry(now);
    due.sort();
    let mut expected_due = Vec::new();
    for t in &all {
        let r = &t.thread_ref;
        prop_assert_eq!(
            t.messages.len(),
            1 + added.get(r).copied().unwrap_or(0),
            "{}",
            r
        );
        let events = w
            .log
            .iter()
            .filter(|e| e.thread_ref.as_ref() == Some(r))
            .count();
        prop_assert_eq!(t.seq, events as u64);
        match t.status.group() {
            mess_core::status::Group::Open => prop_assert_eq!(&t.executor_id, &None),
            mess_core::status::Group::Active => prop_assert!(t.executor_id.is_some()),
            mess_core::status::Group::Terminal => {}
        }
        if matches!(t.status, Status::Pending | Status::Waiting | Status::Held)
            && t.deadline.is_some_and(|d| d <= now)
        {
            expected_due.push(r.clone());
        }
    }
    expected_due.sort();
    prop_assert_eq!(due, expected_due);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w = given().members(&MEMBERS);
    let mut refs: Vec<ThreadRef> = Vec::new();
    let mut added: HashMap<ThreadRef, usize> = HashMap::new();
    // Two threads to start with, so that no sequence is spent waiting for a creation.
    refs.push(w.create(
        MEMBERS[0],
        json!({"intent": "soon", "needed_by": "2026-02-01T22:30:00Z"}),
    ));
    refs.push(w.create(
        MEMBERS[1],
        json!({"intent": "careful", "confirm_before": true}),
    ));
    for op in &ops {
        let cmds: Vec<(Actor, Command)> = match op {
            Op::Advance { minutes } => {
                w.minutes_later(i64::from(*minutes));
                Vec::new()
            }
            Op::ExpireDue => {
                // Every timer the exchange owes (offers again, notices, claims taken
                // back, expiries), as the hosts run them.
                let due = w.exchange.due(w.now(), TIMERS[0]);
                due.into_iter().map(|c| (Actor::Exchange, c)).collect()
            }
            _ => command(&w, &refs, op).into_iter().collect(),
        };
        for (actor, cmd) in cmds {
            let before = match &cmd {
                Command::Update { thread, .. } | Command::Expire { thread } => {
                    Some(w.thread(thread))
                }
                _ => None,
            };
            match w.exchange.decide(&actor, cmd, w.env()) {
                Ok(d) => {
                    if let mess_core::Outcome::Created(r) = &d.outcome {
                        refs.push(r.clone());
                    }
                    for e in d.events {
                        // A pass on an offer records its message too.
                        if let (EventKind::MessageAdded(_) | EventKind::OfferPassed(_), Some(r)) =
                            (&e.kind, &e.thread_ref)
                        {
                            *added.entry(r.clone()).or_default() += 1;
                        }
                        check_and_apply(&mut w, e)?;
                    }
                }
                Err(DomainError::Conflict { from, .. }) => {
                    prop_assert_eq!(Some(from), before.map(|t| t.status), "from is the status");
                }
                Err(DomainError::Forbidden(_)) => prop_assert!(before.is_some()),
                Err(e) => {
                    prop_assert!(!matches!(op, Op::ExpireDue), "a due thread expires: {e:?}");
                    prop_assert!(false, "unexpected error {e:?} for {op:?}");
                }
            }
            check_invariants(&w, &added)?;
        }
    }
    // Folding the stored lines into a fresh exchange gives the same threads, in the same
    // order.
    let lines: Vec<String> = w.log.iter().map(Event::to_line).collect();
    let fresh = given().events(
        lines
            .iter()
            .map(|l| Event::from_line(l).expect("reads back")),
    );
    prop_assert_eq!(fresh.log.as_slice(), w.log.as_slice());
    let (ours, _) = w.exchange.list(None, None, usize::MAX);
    let (theirs, _) = fresh.exchange.list(None, None, usize::MAX);
    prop_assert_eq!(ours, theirs);
    for s in Status::ALL {
        let (ours, _) = w.exchange.list(Some(s), None, usize::MAX);
        prop_assert!(ours.iter().all(|t| t.status == s));
        let (theirs, _) = fresh.exchange.list(Some(s), None, usize::MAX);
        prop_assert_eq!(ours, theirs);
    }
    // The start-up fold (all at once, indexes built at the end) gives the same again.
    let mut bulk = mess_core::Exchange::new(w.exchange.id().clone());
    bulk.apply_all(&w.log);
    let (theirs, _) = bulk.list(None, None, usize::MAX);
    let (ours, _) = w.exchange.list(None, None, usize::MAX);
    prop_assert_eq!(ours, theirs);
    prop_assert_eq!(
        bulk.due_for_expiry(w.now()),
        w.exchange.due_for_expiry(w.now())
    );
    timers_agree(&bulk, w.now())?;
    for timers in TIMERS {
        prop_assert_eq!(bulk.due(w.now(), timers), w.exchange.due(w.now(), timers));
    }
    // Start-up's replay gives the same again, whatever order the lines were stored in (it
    // puts each thread's events back in `seq` order): here, the reverse.
    let mut replay = mess_core::Replay::new();
    for e in w.log.iter().rev() {
        replay.push(e.clone());
    }
    let states = replay.finish([]);
    let replayed = states.get(w.exchange.id());
    let (theirs, _) = replayed.map_or((Vec::new(), None), |x| x.list(None, None, usize::MAX));
    let (ours, _) = w.exchange.list(None, None, usize::MAX);
    prop_assert_eq!(ours, theirs);
    if let Some(x) = replayed {
        prop_assert_eq!(
            x.due_for_expiry(w.now()),
            w.exchange.due_for_expiry(w.now())
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_commands_keep_to_the_table_and_never_drop_a_message(
        ops in vec(op(), 1..80)
    ) {
        run(ops)?;
    }
}

// Parsers: arbitrary strings, and strings shaped like what each parser expects.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9._=/ -]{0,70}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}-[A-Za-z0-9]{0,20}",
        "mess_[a-z0-9_-]{0,10}_[0-9a-fA-F]{0,70}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        "(received|pending|in-progress|in_progress|canceled|normal|urgent|Normal|PENDING)",
    ]
}

const KEYS: [&str; 40] = [
    "intent",
    "priority",
    "context",
    "response_hint",
    "response_hints",
    "requires",
    "confirm_before",
    "needed_by",
    "constraints",
    "timing",
    "expires",
    "display_name",
    "capabilities",
    "notifications",
    "preferences",
    "hooks",
    "type",
    "topic",
    "server",
    "webhook_url",
    "url",
    "secret",
    "min_priority",
    "quiet_hours",
    "start",
    "end",
    "enabled",
    "timezone",
    "executor_id",
    "request",
    "reply",
    "status",
    "response",
    "code",
    "re",
    "ack",
    "v",
    "query",
    "ntfy",
    "",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => proptest::sample::select(&KEYS[..]).prop_map(str::to_owned), 1 => text()]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Floats whose shortest decimal form reads back exactly: without serde_json's
        // `float_roundtrip` feature, other floats may drift by one ulp through a line.
        (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object that has `intent` (often valid) and other known fields.
fn request_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![text().prop_map(Value::String), json_value()],
        vec((key(), json_value()), 0..8),
    )
        .prop_map(|(intent, rest)| {
            let mut obj: Map<String, Value> = rest.into_iter().collect();
            obj.insert("intent".into(), intent);
            Value::Object(obj)
        })
}

/// A list of single-key objects, mostly with known block keys.
fn blocks_like() -> impl Strategy<Value = Value> {
    vec(vec((key(), json_value()), 0..3), 0..5).prop_map(|items| {
        Value::Array(
            items
                .into_iter()
                .map(|kv| Value::Object(kv.into_iter().collect()))
                .collect(),
        )
    })
}

/// A valid stored line to damage.
fn a_line() -> String {
    let (mut w, r) = given_claimed();
    w.run(BOB, say(&r, json!([{"response": {"content": ["ok"]}}])));
    w.log.last().expect("an event").to_line()
}

proptest! {
    #[test]
    fn exchange_id_parse_never_panics(s in text()) {
        if let Ok(id) = ExchangeId::parse(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }

    #[test]
    fn executor_id_parse_never_panics(s in text()) {
        if let Ok(id) = ExecutorId::parse(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert!(!s.contains("..") && !s.contains('/') && s.len() <= 64);
        }
    }

    #[test]
    fn thread_ref_parse_never_panics(s in text()) {
        if let Ok(r) = ThreadRef::parse(&s) {
            prop_assert_eq!(r.as_str(), s.as_str());
            // A date, then a path-safe suffix: 12 to 74 bytes, never a path separator.
            prop_assert!((12..=74).contains(&s.len()));
            prop_assert!(!s.contains('/') && !s.contains(".."));
        }
    }

    #[test]
    fn status_parse_never_panics(s in text()) {
        if let Ok(st) = Status::parse(&s) {
            let aliases = ["received", "in-progress", "needs-input", "needs-confirmation", "rejected", "canceled"];
            prop_assert!(st.as_str() == s || aliases.contains(&s.as_str()));
        }
    }

    #[test]
    fn priority_parse_never_panics(s in text()) {
        if let Ok(p) = Priority::parse(&s) {
            prop_assert_eq!(p.as_str(), s.as_str());
        }
    }

    #[test]
    fn api_key_parse_never_panics(s in text()) {
        if let Some(k) = ApiKey::parse(&s) {
            prop_assert_eq!(k.expose(), s.as_str());
            prop_assert_eq!(format!("mess_{}_", k.exchange()), s[..s.rfind('_').expect("has _") + 1].to_owned());
        }
    }

    #[test]
    fn timestamp_parse_never_panics(s in text()) {
        if let Ok(t) = Timestamp::parse(&s) {
            let _ = t.to_string();
        }
    }

    #[test]
    fn cursor_decode_never_panics(s in text(), ms in any::<i64>()) {
        for candidate in [s.clone(), hex::encode(&s), hex::encode(format!("{ms}.{s}"))] {
            if let Ok(c) = Cursor::decode(&candidate) {
                prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
            }
        }
    }

    #[test]
    fn event_from_line_never_panics(s in text(), v in json_value(), cut in any::<usize>()) {
        let line = a_line();
        let torn = &line[..cut % line.len()];
        prop_assert!(Event::from_line(torn).is_err(), "a torn line never parses");
        for candidate in [s, v.to_string(), line.replace(r#""content":["ok"]"#, &format!(r#""content":{v}"#))] {
            if let Ok(e) = Event::from_line(&candidate) {
                prop_assert_eq!(Event::from_line(&e.to_line()).ok(), Some(e));
            }
        }
    }

    #[test]
    fn new_request_parse_never_panics(v in json_value(), req in request_like()) {
        for body in [v, req] {
            if let Ok(r) = NewRequest::parse(body) {
                prop_assert!(!r.intent.trim().is_empty());
                prop_assert_eq!(Some(&Value::String(r.intent.clone())), r.fields.get("intent"));
            }
        }
    }

    #[test]
    fn profile_parse_never_panics(v in json_value(), obj in request_like()) {
        for body in [v, obj] {
            let _ = Profile::parse(&body);
            let _ = Registration::parse(&body);
        }
    }

    #[test]
    fn block_parse_list_never_panics(v in json_value(), list in blocks_like()) {
        for body in [v, list] {
            if let Ok(blocks) = Block::parse_list(&body) {
                // Kept verbatim: they serialize back to exactly what was parsed.
                prop_assert_eq!(serde_json::to_value(&blocks).expect("json"), body);
            }
        }
    }
}
