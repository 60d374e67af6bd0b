//! One test per row of protocol.md's transition table and per rule about who may make a
//! move. Alice creates the thread (requestor), Bob claims it (assignee), Carol is any other
//! member.

use mess_core::Status::{self, *};
use mess_core::rules::{TRANSITIONS, transition};
use mess_core::{Actor, ThreadRef};
use serde_json::json;

use crate::harness::*;

/// The endings an assignee may choose for active work.
const ENDINGS: [Status; 5] = [Completed, Partial, Failed, Declined, Delegated];

fn terminal() -> impl Iterator<Item = Status> {
    Status::ALL.into_iter().filter(|s| s.is_terminal())
}

/// Every row of the table is exercised below: this keeps that list honest when a row is
/// added.
#[test]
fn the_table_has_the_rows_of_protocol_md() {
    let names: Vec<&str> = TRANSITIONS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "claim",
            "withdraw_pending",
            "expire_pending",
            "progress",
            "finish",
            "release",
            "withdraw_active",
            "complete_partial",
            "expire_waiting",
        ]
    );
}

// pending -> claimed: any member; exactly one wins.

#[test]
fn pending_to_claimed_by_any_member() {
    for member in [ALICE, BOB, CAROL] {
        let (w, r) = given_pending();
        let w = w
            .when(member, claim(&r))
            .then_events(moved(&r, Pending, Claimed, Some(member)));
        assert_eq!(
            w.thread(&r).executor_id.as_ref().map(|e| e.as_str()),
            Some(member)
        );
        assert_eq!(w.thread(&r).status, Claimed);
    }
}

#[test]
fn claim_of_a_thread_held_by_another_member_is_a_conflict() {
    for other in [ALICE, CAROL] {
        let (w, r) = given_claimed();
        w.when(other, claim(&r))
            .then_error(Refusal::Conflict(Claimed, Claimed));
    }
    for from in Status::ACTIVE.into_iter().filter(|s| *s != Claimed) {
        let (w, r) = given_in(from);
        w.when(CAROL, claim(&r))
            .then_error(Refusal::Conflict(from, Claimed));
    }
}

#[test]
fn of_two_claims_decided_on_the_same_state_only_the_first_recorded_wins() {
    let (mut w, r) = given_pending();
    let bob = w.decide(BOB, claim(&r)).expect("bob may claim");
    let carol = w.decide(CAROL, claim(&r)).expect("carol may claim");
    w.record(&bob);
    // The server decides again under the thread's lock: Carol's retry loses.
    assert_ne!(carol.events, bob.events);
    w.when(CAROL, claim(&r))
        .then_error(Refusal::Conflict(Claimed, Claimed));
}

#[test]
fn pending_to_claimed_is_not_for_the_exchange_itself() {
    let (w, r) = given_pending();
    w.when(Actor::Exchange, claim(&r))
        .then_error(Refusal::Forbidden);
}

// pending -> cancelled, superseded: requestor.

#[test]
fn pending_to_cancelled_by_requestor() {
    let (w, r) = given_pending();
    let w = w
        .when(ALICE, to(&r, Cancelled))
        .then_events(moved(&r, Pending, Cancelled, None));
    assert_eq!(w.thread(&r).status, Cancelled);
}

#[test]
fn pending_to_superseded_by_requestor() {
    let (w, r) = given_pending();
    w.when(ALICE, to(&r, Superseded))
        .then_events(moved(&r, Pending, Superseded, None));
}

#[test]
fn pending_to_cancelled_by_other_member_is_forbidden() {
    for to_status in [Cancelled, Superseded] {
        for other in [BOB, CAROL] {
            let (w, r) = given_pending();
            w.when(other, to(&r, to_status))
                .then_error(Refusal::Forbidden);
        }
    }
}

// pending -> expired: the exchange itself, once the deadline passes.

#[test]
fn pending_to_expired_only_by_the_exchange() {
    let (w, r) = given_pending_with(json!({
        "intent": "Check the front door",
        "needed_by": "2026-02-01T23:00:00Z",
    }));
    let w = w
        .when(ALICE, to(&r, Expired))
        .then_error(Refusal::Forbidden);
    let w = w
        .when(CAROL, to(&r, Expired))
        .then_error(Refusal::Forbidden);
    // Before the deadline, even the exchange may not.
    w.minutes_later(59);
    assert!(w.exchange.due_for_expiry(w.now()).is_empty());
    let w = w
        .when(Actor::Exchange, expire(&r))
        .then_error(Refusal::Conflict(Pending, Expired));
    // At the deadline it may, and the thread says so in a message from the exchange.
    w.minutes_later(1);
    assert_eq!(w.exchange.due_for_expiry(w.now()), vec![r.clone()]);
    let w = w
        .when(Actor::Exchange, expire(&r))
        .then_events(moved(&r, Pending, Expired, None));
    let t = w.thread(&r);
    assert_eq!(t.status, Expired);
    assert_eq!(
        t.messages.last().map(|m| m.from),
        Some("exchange".to_owned())
    );
    assert!(w.exchange.due_for_expiry(w.now()).is_empty());
}

#[test]
fn constraints_timing_expires_is_a_deadline_too() {
    let (w, r) = given_pending_with(json!({
        "intent": "Check the front door",
        "constraints": {"timing": {"expires": "2026-02-01T22:30:00Z"}},
    }));
    w.minutes_later(30);
    w.when(Actor::Exchange, expire(&r))
        .then_events(moved(&r, Pending, Expired, None));
}

#[test]
fn a_thread_without_a_deadline_never_expires() {
    let (w, r) = given_pending();
    w.minutes_later(60 * 24 * 365);
    assert!(w.exchange.due_for_expiry(w.now()).is_empty());
    w.when(Actor::Exchange, expire(&r))
        .then_error(Refusal::Conflict(Pending, Expired));
}

// active -> any other active status: assignee.

#[test]
fn active_to_another_active_status_by_assignee() {
    for from in Status::ACTIVE {
        for next in Status::ACTIVE.into_iter().filter(|s| *s != from) {
            let (w, r) = given_in(from);
            let w = w
                .when(BOB, to(&r, next))
                .then_events(moved(&r, from, next, Some(BOB)));
            assert_eq!(
                w.thread(&r).executor_id.as_ref().map(|e| e.as_str()),
                Some(BOB),
                "{from} -> {next}"
            );
        }
    }
}

#[test]
fn active_to_another_active_status_by_others_is_forbidden() {
    for from in Status::ACTIVE {
        for next in Status::ACTIVE.into_iter().filter(|s| *s != from) {
            for other in [ALICE, CAROL] {
                let (w, r) = given_in(from);
                // Asking for `claimed` is a claim, and the thread is held: 409, not 403.
                let expected = if next == Claimed {
                    Refusal::Conflict(from, Claimed)
                } else {
                    Refusal::Forbidden
                };
                w.when(other, to(&r, next)).then_error(expected);
            }
        }
    }
}

// active -> completed, partial, failed, declined, delegated: assignee.

#[test]
fn active_to_each_ending_by_assignee() {
    for from in Status::ACTIVE {
        for end in ENDINGS {
            let (w, r) = given_in(from);
            let w = w
                .when(BOB, to(&r, end))
                .then_events(moved(&r, from, end, Some(BOB)));
            assert_eq!(w.thread(&r).status, end);
        }
    }
}

#[test]
fn active_to_an_ending_by_others_is_forbidden() {
    for from in Status::ACTIVE {
        for end in ENDINGS {
            for other in [ALICE, CAROL] {
                let (w, r) = given_in(from);
                w.when(other, to(&r, end)).then_error(Refusal::Forbidden);
            }
        }
    }
}

// active -> pending: the assignee releases the claim.

#[test]
fn release_to_pending_by_assignee_clears_executor_id() {
    for from in Status::ACTIVE {
        let (w, r) = given_in(from);
        let w = w
            .when(BOB, to(&r, Pending))
            .then_events(moved(&r, from, Pending, None));
        assert_eq!(w.thread(&r).executor_id, None);
        // Released, it is anyone's to claim again.
        w.when(CAROL, claim(&r))
            .then_events(moved(&r, Pending, Claimed, Some(CAROL)));
    }
}

#[test]
fn release_by_others_is_forbidden() {
    for from in Status::ACTIVE {
        for other in [ALICE, CAROL] {
            let (w, r) = given_in(from);
            w.when(other, to(&r, Pending))
                .then_error(Refusal::Forbidden);
        }
    }
}

#[test]
fn a_released_thread_past_its_deadline_expires() {
    let (mut w, r) = given_claimed();
    w.minutes_later(61);
    assert!(
        w.exchange.due_for_expiry(w.now()).is_empty(),
        "claimed work does not expire"
    );
    w.run(BOB, to(&r, Pending));
    assert_eq!(w.exchange.due_for_expiry(w.now()), vec![r.clone()]);
}

// active -> cancelled, superseded: requestor.

#[test]
fn active_to_cancelled_or_superseded_by_requestor() {
    for from in Status::ACTIVE {
        for end in [Cancelled, Superseded] {
            let (w, r) = given_in(from);
            w.when(ALICE, to(&r, end))
                .then_events(moved(&r, from, end, Some(BOB)));
        }
    }
}

#[test]
fn active_to_cancelled_or_superseded_by_others_is_forbidden() {
    for from in Status::ACTIVE {
        for end in [Cancelled, Superseded] {
            for other in [BOB, CAROL] {
                let (w, r) = given_in(from);
                w.when(other, to(&r, end)).then_error(Refusal::Forbidden);
            }
        }
    }
}

// partial -> completed: assignee.

#[test]
fn partial_to_completed_by_assignee() {
    let (w, r) = given_in(Partial);
    w.when(BOB, to(&r, Completed))
        .then_events(moved(&r, Partial, Completed, Some(BOB)));
}

#[test]
fn partial_to_completed_by_others_is_forbidden() {
    for other in [ALICE, CAROL] {
        let (w, r) = given_in(Partial);
        w.when(other, to(&r, Completed))
            .then_error(Refusal::Forbidden);
    }
}

// waiting, held -> expired: the exchange itself.

#[test]
fn waiting_or_held_to_expired_by_the_exchange() {
    for from in [Waiting, Held] {
        let (w, r) = given_in(from);
        let w = w
            .when(Actor::Exchange, expire(&r))
            .then_error(Refusal::Conflict(from, Expired));
        w.minutes_later(60);
        assert_eq!(w.exchange.due_for_expiry(w.now()), vec![r.clone()]);
        let w =
            w.when(Actor::Exchange, expire(&r))
                .then_events(moved(&r, from, Expired, Some(BOB)));
        assert_eq!(w.thread(&r).status, Expired);
    }
}

#[test]
fn waiting_or_held_to_expired_by_a_member_is_forbidden() {
    for from in [Waiting, Held] {
        for member in [ALICE, BOB, CAROL] {
            let (w, r) = given_in(from);
            w.minutes_later(60);
            w.when(member, to(&r, Expired))
                .then_error(Refusal::Forbidden);
        }
    }
}

#[test]
fn other_active_statuses_never_expire() {
    for from in Status::ACTIVE
        .into_iter()
        .filter(|s| !matches!(s, Waiting | Held))
    {
        let (w, r) = given_in(from);
        w.minutes_later(120);
        assert!(w.exchange.due_for_expiry(w.now()).is_empty(), "{from}");
        w.when(Actor::Exchange, expire(&r))
            .then_error(Refusal::Conflict(from, Expired));
    }
}

// terminal -> anything: nobody.

#[test]
fn terminal_to_anything_is_a_conflict() {
    for from in terminal() {
        for next in Status::ALL {
            if from == Partial && next == Completed {
                continue; // the one way out of partial, tested above
            }
            for actor in [ALICE, BOB, CAROL] {
                let (w, r) = given_in(from);
                w.when(actor, to(&r, next))
                    .then_error(Refusal::Conflict(from, next));
            }
        }
        let (w, r) = given_in(from);
        w.minutes_later(120);
        assert!(w.exchange.due_for_expiry(w.now()).is_empty(), "{from}");
        w.when(Actor::Exchange, expire(&r))
            .then_error(Refusal::Conflict(from, Expired));
    }
}

#[test]
fn a_move_the_table_forbids_is_a_conflict_with_from_and_to() {
    let (w, r) = given_pending();
    w.when(ALICE, to(&r, Completed))
        .then_error(Refusal::Conflict(Pending, Completed));
    // Every move outside the table, asked by the member best placed to make it: the table
    // answers first (409), before any permission (403).
    for from in Status::ALL.into_iter().filter(|s| !s.is_terminal()) {
        for next in Status::ALL.into_iter().filter(|n| *n != from) {
            if transition(from, next).is_some() {
                continue;
            }
            let actor = if from == Pending { ALICE } else { BOB };
            let (w, r) = given_in(from);
            w.when(actor, to(&r, next))
                .then_error(Refusal::Conflict(from, next));
        }
    }
}

// A status equal to the current one: a no-op.

#[test]
fn repeat_claim_by_the_assignee_is_a_no_op() {
    let (w, r) = given_claimed();
    let seq = w.thread(&r).seq;
    let w = w.when(BOB, claim(&r)).then_no_events();
    assert_eq!(w.thread(&r).seq, seq);
}

#[test]
fn same_status_by_the_assignee_is_a_no_op() {
    for from in Status::ACTIVE {
        let (w, r) = given_in(from);
        let (_, d) = w.when(BOB, to(&r, from)).then_ok();
        assert!(d.events.is_empty(), "{from}");
        assert_eq!(d.outcome, mess_core::Outcome::Updated(r.clone(), from));
    }
}

#[test]
fn pending_to_pending_is_a_no_op() {
    for member in [ALICE, CAROL] {
        let (w, r) = given_pending();
        w.when(member, to(&r, Pending)).then_no_events();
    }
}

#[test]
fn same_status_by_another_member_on_active_work_is_forbidden() {
    for from in Status::ACTIVE.into_iter().filter(|s| *s != Claimed) {
        for other in [ALICE, CAROL] {
            let (w, r) = given_in(from);
            w.when(other, to(&r, from)).then_error(Refusal::Forbidden);
        }
    }
}

#[test]
fn same_status_with_a_message_appends_only_the_message() {
    let (w, r) = given_in(InProgress);
    let update = to_with(
        &r,
        InProgress,
        json!({}),
        json!([{"response": {"content": ["half"]}}]),
    );
    w.when(BOB, update)
        .then_events(vec![message(json!([{"response": {"content": ["half"]}}]))]);
}

// confirm_before: completed waits for the requestor's reply to needs_confirmation.

fn given_confirm_before() -> (World, ThreadRef) {
    let (mut w, r) = given_pending_with(json!({
        "intent": "Order the groceries",
        "confirm_before": true,
    }));
    w.run(BOB, claim(&r));
    (w, r)
}

#[test]
fn confirm_before_refuses_completed_until_the_requestor_replies() {
    let (w, r) = given_confirm_before();
    let w = w
        .when(BOB, to(&r, Completed))
        .then_error(Refusal::Conflict(Claimed, Completed));
    let w = w.when(BOB, to(&r, NeedsConfirmation)).then_events(moved(
        &r,
        Claimed,
        NeedsConfirmation,
        Some(BOB),
    ));
    let w = w
        .when(BOB, to(&r, Completed))
        .then_error(Refusal::Conflict(NeedsConfirmation, Completed));
    // A block that is not a reply does not confirm, nor does a reply from the assignee.
    let w = w
        .when(ALICE, say(&r, json!([{"query": {"q": "which shop?"}}])))
        .then_ok()
        .0;
    let w = w
        .when(BOB, say(&r, json!([{"reply": {"content": ["yes"]}}])))
        .then_ok()
        .0;
    let w = w
        .when(BOB, to(&r, Completed))
        .then_error(Refusal::Conflict(NeedsConfirmation, Completed));
    let reply = json!([{"reply": {"re": r.as_str(), "content": ["Go ahead"]}}]);
    let w = w
        .when(ALICE, say(&r, reply.clone()))
        .then_events(vec![message(reply)]);
    w.when(BOB, to(&r, Completed))
        .then_events(moved(&r, NeedsConfirmation, Completed, Some(BOB)));
}

#[test]
fn confirm_before_ignores_a_reply_sent_before_needs_confirmation() {
    let (mut w, r) = given_confirm_before();
    w.run(ALICE, say(&r, json!([{"reply": {"content": ["sure"]}}])));
    w.run(BOB, to(&r, NeedsConfirmation));
    w.when(BOB, to(&r, Completed))
        .then_error(Refusal::Conflict(NeedsConfirmation, Completed));
}

#[test]
fn confirm_before_also_guards_partial_to_completed() {
    let (mut w, r) = given_confirm_before();
    w.run(BOB, to(&r, Partial));
    w.when(BOB, to(&r, Completed))
        .then_error(Refusal::Conflict(Partial, Completed));
}

#[test]
fn without_confirm_before_completed_needs_no_confirmation() {
    let (w, r) = given_claimed();
    w.when(BOB, to(&r, Completed))
        .then_events(moved(&r, Claimed, Completed, Some(BOB)));
}

#[test]
fn an_unknown_thread_is_not_found() {
    let (w, _) = given_pending();
    let nowhere = ThreadRef::parse("2026-02-01-NOPE").expect("valid");
    let w = w.when(BOB, claim(&nowhere)).then_error(Refusal::NotFound);
    let w = w
        .when(BOB, say(&nowhere, json!([{"ack": {}}])))
        .then_error(Refusal::NotFound);
    w.when(Actor::Exchange, expire(&nowhere))
        .then_error(Refusal::NotFound);
}
