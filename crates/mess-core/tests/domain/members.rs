//! Registration, profile updates and key authentication.

use mess_core::clock::OsEntropy;
use mess_core::event::MemberSnapshot;
use mess_core::{ApiKey, EventKind, ExchangeId, ExecutorId, Outcome, Registration};
use serde_json::json;

use crate::harness::*;

fn snapshot(id: &str, name: &str, capabilities: &[&str], channels: &[&str]) -> MemberSnapshot {
    MemberSnapshot {
        executor_id: id.parse().expect("valid"),
        display_name: name.into(),
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn registration_records_a_member_and_hands_out_its_key_once() {
    let body = json!({
        "executor_id": "my-phone", "display_name": "My Phone",
        "capabilities": ["photo:capture", "location:indoor"],
        "notifications": [{"type": "ntfy", "topic": "mess-home"}],
    });
    let reg = Registration::parse(&body).expect("the seed's registration");
    let (w, d) = given()
        .when("my-phone", mess_core::Command::Register(reg))
        .then_ok();
    assert_eq!(
        d.events.iter().map(|e| &e.kind).collect::<Vec<_>>(),
        [&EventKind::ExecutorRegistered(snapshot(
            "my-phone",
            "My Phone",
            &["photo:capture", "location:indoor"],
            &["ntfy"],
        ))]
    );
    let Outcome::Registered { member, api_key } = d.outcome else {
        panic!("registered")
    };
    assert!(api_key.expose().starts_with("mess_home_"));
    assert_eq!(member.key_hash, api_key.hash(), "only the hash is kept");
    assert_eq!(member.created_at, w.now());
    let stored = w.exchange.member(&member.executor_id).expect("stored");
    assert_eq!(stored.display_name, "My Phone");
    // The key is not in the event nor the stored record.
    let line = d.events[0].to_line();
    let record = serde_json::to_string(&**stored).expect("json");
    let secret = &api_key.expose()["mess_home_".len()..];
    assert!(!line.contains(secret) && !record.contains(secret));
}

#[test]
fn a_member_without_a_display_name_is_named_by_its_id() {
    let (w, d) = given()
        .when("claude-agent", register("claude-agent"))
        .then_ok();
    assert_eq!(
        d.events[0].kind,
        EventKind::ExecutorRegistered(snapshot("claude-agent", "claude-agent", &[], &[]))
    );
    let id = ExecutorId::parse("claude-agent").expect("valid");
    assert_eq!(
        w.exchange.member(&id).expect("stored").display_name,
        "claude-agent"
    );
}

#[test]
fn registering_twice_is_already_registered() {
    let w = given().members(&[ALICE]);
    w.when(ALICE, register(ALICE))
        .then_error(Refusal::AlreadyRegistered);
}

#[test]
fn updating_ones_own_profile_records_executor_updated() {
    let mut w = given();
    let key = w.register(ALICE);
    w.minutes_later(5);
    let update = update_profile(
        ALICE,
        json!({"display_name": "Alice", "capabilities": ["photo:capture"],
               "notifications": [{"type": "slack", "webhook_url": "https://hooks.slack.com/x"}]}),
    );
    let (w, d) = w.when(ALICE, update).then_ok();
    assert_eq!(
        d.events[0].kind,
        EventKind::ExecutorUpdated(snapshot(ALICE, "Alice", &["photo:capture"], &["slack"]))
    );
    assert!(
        !d.events[0].to_line().contains("hooks.slack.com"),
        "no secrets in events"
    );
    let me = w.exchange.authenticate(&key).expect("the key still works");
    assert_eq!(me.display_name, "Alice");
    assert_eq!(me.updated_at, w.now());
    assert!(me.created_at < me.updated_at);
}

#[test]
fn updating_someone_elses_profile_is_forbidden() {
    let w = given().members(&[ALICE, BOB]);
    w.when(
        BOB,
        update_profile(ALICE, json!({"display_name": "Mallory"})),
    )
    .then_error(Refusal::Forbidden);
}

#[test]
fn updating_an_unknown_member_is_not_found() {
    let w = given().members(&[ALICE]);
    w.when(
        "ghost",
        update_profile("ghost", json!({"display_name": "Boo"})),
    )
    .then_error(Refusal::NotFound);
}

#[test]
fn the_registered_key_authenticates_its_member() {
    let mut w = given();
    let alice = w.register(ALICE);
    let bob = w.register(BOB);
    assert_eq!(
        w.exchange
            .authenticate(&alice)
            .map(|m| m.executor_id.as_str()),
        Some(ALICE)
    );
    assert_eq!(
        w.exchange
            .authenticate(&bob)
            .map(|m| m.executor_id.as_str()),
        Some(BOB)
    );
    // A key presented by a client is parsed first, then authenticated the same way.
    let presented = ApiKey::parse(alice.expose()).expect("a well-formed key");
    assert_eq!(
        w.exchange
            .authenticate(&presented)
            .map(|m| m.executor_id.as_str()),
        Some(ALICE)
    );
}

#[test]
fn another_key_authenticates_nobody() {
    let mut w = given();
    w.register(ALICE);
    let home = ExchangeId::parse("home").expect("valid");
    let office = ExchangeId::parse("office").expect("valid");
    assert!(
        w.exchange
            .authenticate(&ApiKey::generate(&home, &OsEntropy))
            .is_none()
    );
    assert!(
        w.exchange
            .authenticate(&ApiKey::generate(&office, &OsEntropy))
            .is_none()
    );
    let forged = ApiKey::parse(&format!("mess_home_{}", "0".repeat(64))).expect("well-formed");
    assert!(w.exchange.authenticate(&forged).is_none());
}

fn rotate(id: &str) -> mess_core::Command {
    mess_core::Command::RotateKey {
        executor: ExecutorId::parse(id).expect("id"),
    }
}

fn remove(id: &str) -> mess_core::Command {
    mess_core::Command::Remove {
        executor: ExecutorId::parse(id).expect("id"),
    }
}

#[test]
fn rotating_ones_own_key_replaces_it_at_once() {
    let mut w = given();
    let old = w.register(ALICE);
    let (w, d) = w.when(ALICE, rotate(ALICE)).then_ok();
    let Outcome::KeyRotated { api_key, .. } = &d.outcome else {
        panic!("rotated")
    };
    assert!(matches!(d.events[0].kind, EventKind::ExecutorKeyRotated(_)));
    assert!(
        w.exchange.authenticate(&old).is_none(),
        "the old key stops working"
    );
    assert_eq!(
        w.exchange
            .authenticate(api_key)
            .map(|m| m.executor_id.as_str()),
        Some(ALICE)
    );
}

#[test]
fn rotating_someone_elses_key_is_forbidden() {
    given()
        .members(&[ALICE, BOB])
        .when(BOB, rotate(ALICE))
        .then_error(Refusal::Forbidden);
}

#[test]
fn removing_oneself_forgets_the_member_and_its_key() {
    let mut w = given();
    let key = w.register(ALICE);
    let (w, d) = w.when(ALICE, remove(ALICE)).then_ok();
    assert!(matches!(d.events[0].kind, EventKind::ExecutorRemoved(_)));
    assert!(
        w.exchange
            .member(&ExecutorId::parse(ALICE).expect("id"))
            .is_none()
    );
    assert!(w.exchange.authenticate(&key).is_none());
}

#[test]
fn removing_someone_else_is_forbidden() {
    given()
        .members(&[ALICE, BOB])
        .when(BOB, remove(ALICE))
        .then_error(Refusal::Forbidden);
}

#[test]
fn registering_the_exchanges_own_id_is_refused_as_reserved() {
    given()
        .when("exchange", register("exchange"))
        .then_error(Refusal::ReservedId);
}
