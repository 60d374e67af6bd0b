//! What the exchange decides for an operator (`mess-exchange members remove` and
//! `reset-key`): a member's claims taken back, the member removed, a key replaced, each
//! recorded as the exchange's own move.

use mess_core::{Actor, Command, EventKind, ExecutorId, Outcome, Status, ThreadRef};
use serde_json::json;

use crate::harness::*;

fn id(s: &str) -> ExecutorId {
    ExecutorId::parse(s).expect("a valid executor id")
}

fn release(r: &ThreadRef, executor: &str) -> Command {
    Command::ReleaseClaim {
        thread: r.clone(),
        executor: id(executor),
    }
}

#[test]
fn the_exchange_takes_back_a_claim_of_a_member_it_removes_and_the_thread_is_open_again() {
    let (w, r) = given_in(Status::InProgress);
    assert_eq!(w.exchange.held_by(&id(BOB)), std::slice::from_ref(&r));
    assert!(w.exchange.held_by(&id(ALICE)).is_empty());
    let w = w.when(Actor::Exchange, release(&r, BOB)).then_events(vec![
        changed(Status::InProgress, Status::Pending, None),
        message(json!([{"status": {
            "re": r.as_str(),
            "code": "pending",
            "reason": "member_removed",
            "message": "bob was removed from the exchange: the request is open again.",
        }}])),
    ]);
    let t = w.thread(&r);
    assert_eq!(t.status, Status::Pending);
    assert_eq!(t.executor_id, None);
    assert!(w.exchange.held_by(&id(BOB)).is_empty());
    // Anyone may claim it now, Carol included.
    let mut w = w;
    w.run(CAROL, claim(&r));
    assert_eq!(w.thread(&r).executor_id, Some(id(CAROL)));
}

#[test]
fn every_active_status_is_a_claim_the_exchange_takes_back() {
    for status in Status::ACTIVE {
        let (w, r) = given_in(status);
        assert_eq!(
            w.exchange.held_by(&id(BOB)),
            std::slice::from_ref(&r),
            "{status:?}"
        );
        let w = w.when(Actor::Exchange, release(&r, BOB)).then_events(vec![
            changed(status, Status::Pending, None),
            message(json!([{"status": {
                "re": r.as_str(),
                "code": "pending",
                "reason": "member_removed",
                "message": "bob was removed from the exchange: the request is open again.",
            }}])),
        ]);
        assert_eq!(w.thread(&r).status, Status::Pending);
    }
}

#[test]
fn only_the_exchange_releases_a_claim_and_only_one_the_member_holds() {
    let (w, r) = given_claimed();
    let w = w
        .when(ALICE, release(&r, BOB))
        .then_error(Refusal::Forbidden);
    let w = w.when(BOB, release(&r, BOB)).then_error(Refusal::Forbidden);
    let w = w
        .when(Actor::Exchange, release(&r, CAROL))
        .then_error(Refusal::Conflict(Status::Claimed, Status::Pending));
    let (mut w, open) = {
        let mut w = w;
        let open = w.create(ALICE, json!({"intent": "Water the plants"}));
        (w, open)
    };
    w = w
        .when(Actor::Exchange, release(&open, BOB))
        .then_error(Refusal::Conflict(Status::Pending, Status::Pending));
    w.run(BOB, to(&r, Status::Completed));
    w.when(Actor::Exchange, release(&r, BOB))
        .then_error(Refusal::Conflict(Status::Completed, Status::Pending));
}

#[test]
fn the_exchange_removes_any_member_recorded_as_its_own_move() {
    let (w, _) = given_claimed();
    let (w, d) = w
        .when(Actor::Exchange, Command::Remove { executor: id(BOB) })
        .then_ok();
    assert!(matches!(&d.events[0].kind, EventKind::ExecutorRemoved(m) if m.executor_id == id(BOB)));
    assert_eq!(d.events[0].actor_id, Actor::Exchange);
    assert!(w.exchange.member(&id(BOB)).is_none());
    assert!(w.exchange.member(&id(ALICE)).is_some());
}

#[test]
fn the_exchange_resets_a_key_without_counting_it_as_a_sighting_of_the_member() {
    let mut w = given();
    let old = w.register(ALICE);
    let seen = w.exchange.member(&id(ALICE)).expect("registered").last_seen;
    w.minutes_later(30);
    let (w, d) = w
        .when(
            Actor::Exchange,
            Command::RotateKey {
                executor: id(ALICE),
            },
        )
        .then_ok();
    let Outcome::KeyRotated { api_key, member } = &d.outcome else {
        panic!("rotated")
    };
    assert_eq!(d.events[0].actor_id, Actor::Exchange);
    assert!(w.exchange.authenticate(&old).is_none(), "the old key stops");
    assert_eq!(
        w.exchange
            .authenticate(api_key)
            .map(|m| m.executor_id.as_str()),
        Some(ALICE)
    );
    assert_eq!(member.last_seen, seen);
    assert_eq!(member.updated_at, w.now());
}

#[test]
fn removing_or_resetting_a_member_the_exchange_does_not_hold_is_not_found() {
    let w = given().members(&[ALICE]);
    let w = w
        .when(
            Actor::Exchange,
            Command::Remove {
                executor: id("ghost"),
            },
        )
        .then_error(Refusal::NotFound);
    w.when(
        Actor::Exchange,
        Command::RotateKey {
            executor: id("ghost"),
        },
    )
    .then_error(Refusal::NotFound);
}
