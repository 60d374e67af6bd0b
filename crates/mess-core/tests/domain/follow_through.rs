//! protocol.md's quick actions and revisions: a status path in one PATCH (all or nothing,
//! one `status_changed` per step), passing on an offer (`offer_passed`, the thread stays
//! pending), and `revision_requested` within the review window.

use mess_core::Status::*;
use mess_core::event::MessageAdded;
use mess_core::{Actor, Command, EventKind, ThreadRef};
use serde_json::json;

use crate::harness::*;

fn revision(r: &ThreadRef, reason: &str) -> Command {
    Command::RequestRevision {
        thread: r.clone(),
        reason: reason.into(),
        window_ms: mess_core::exchange::DEFAULT_REVIEW_WINDOW_MS,
        extra: Default::default(),
        mess: None,
    }
}

#[test]
fn a_path_claims_and_completes_in_one_patch_one_event_per_step_one_message() {
    let (w, r) = given_pending();
    let mess = json!([status_block(&r, Claimed), status_block(&r, Completed),
                      {"response": {"content": ["closed"]}}]);
    let w = w
        .when(BOB, to_with(&r, Completed, json!({}), mess.clone()))
        .then_events(vec![
            changed(Pending, Claimed, Some(BOB)),
            changed(Claimed, Completed, Some(BOB)),
            message(mess),
        ]);
    let t = w.thread(&r);
    assert_eq!(t.status, Completed);
    assert_eq!(t.executor_id.as_ref().map(|e| e.as_str()), Some(BOB));
    assert_eq!(t.version, 2, "one message for the whole path");
}

#[test]
fn a_path_to_a_question_claims_then_asks() {
    let (w, r) = given_pending();
    let mess = json!([status_block(&r, Claimed),
                      {"status": {"re": r.as_str(), "code": "needs_input", "message": "Which door?"}}]);
    w.when(CAROL, to_with(&r, NeedsInput, json!({}), mess.clone()))
        .then_events(vec![
            changed(Pending, Claimed, Some(CAROL)),
            changed(Claimed, NeedsInput, Some(CAROL)),
            message(mess),
        ]);
}

#[test]
fn a_path_with_a_step_the_table_refuses_changes_nothing() {
    // pending -> in_progress is not a row: the whole path is refused, the claim too.
    let (w, r) = given_pending();
    let mess = json!([status_block(&r, InProgress), status_block(&r, Completed)]);
    let w = w
        .when(BOB, to_with(&r, Completed, json!({}), mess))
        .then_error(Refusal::Conflict(Pending, InProgress));
    assert_eq!(w.thread(&r).status, Pending);
    assert!(w.thread(&r).executor_id.is_none());
}

#[test]
fn a_path_that_does_not_end_at_the_status_sent_is_invalid() {
    let (w, r) = given_pending();
    let mess = json!([status_block(&r, Claimed), status_block(&r, Completed)]);
    w.when(BOB, to_with(&r, Claimed, json!({}), mess))
        .then_error(Refusal::Invalid);
}

#[test]
fn a_path_on_a_thread_someone_else_holds_is_already_claimed() {
    let (w, r) = given_claimed();
    let mess = json!([status_block(&r, Claimed), status_block(&r, Completed)]);
    w.when(CAROL, to_with(&r, Completed, json!({}), mess))
        .then_error(Refusal::Conflict(Claimed, Claimed));
}

#[test]
fn passing_on_an_offer_records_the_message_and_the_thread_stays_pending() {
    let (w, r) = given_pending();
    let version = w.thread(&r).version;
    let w = w
        .when(CAROL, to(&r, Declined))
        .then_events(vec![EventKind::OfferPassed(MessageAdded {
            mess: blocks(json!([status_block(&r, Declined)])),
        })]);
    let t = w.thread(&r);
    assert_eq!(t.status, Pending);
    assert!(t.executor_id.is_none());
    assert_eq!(t.version, version + 1, "the message is part of the thread");
    // Someone else can still take it.
    w.when(BOB, claim(&r))
        .then_events(moved(&r, Pending, Claimed, Some(BOB)));
}

#[test]
fn the_requestor_cannot_pass_on_its_own_request() {
    let (w, r) = given_pending();
    w.when(ALICE, to(&r, Declined))
        .then_error(Refusal::Conflict(Pending, Declined));
}

#[test]
fn a_revision_sends_completed_work_back_to_the_same_assignee() {
    for done in [Completed, Partial] {
        let (w, r) = given_in(done);
        let w = w
            .when(ALICE, revision(&r, "the photo is blurry"))
            .then_events(vec![
                changed(done, InProgress, Some(BOB)),
                message(
                    json!([{"status": {"re": r.as_str(), "code": "revision_requested",
                                        "reason": "the photo is blurry"}}]),
                ),
            ]);
        let t = w.thread(&r);
        assert_eq!(t.status, InProgress);
        assert_eq!(t.executor_id.as_ref().map(|e| e.as_str()), Some(BOB));
        assert!(t.finished_at.is_none());
    }
}

#[test]
fn only_the_requestor_may_ask_for_a_revision() {
    for who in [BOB, CAROL] {
        let (w, r) = given_in(Completed);
        w.when(who, revision(&r, "again"))
            .then_error(Refusal::Forbidden);
    }
}

#[test]
fn a_revision_of_unfinished_or_failed_work_is_a_conflict() {
    for status in [Pending, Claimed, InProgress, Failed, Cancelled] {
        let (w, r) = given_in(status);
        w.when(ALICE, revision(&r, "again"))
            .then_error(Refusal::Conflict(status, InProgress));
    }
}

#[test]
fn a_revision_after_the_review_window_is_a_conflict() {
    let (w, r) = given_in(Completed);
    w.minutes_later(24 * 60 + 1);
    w.when(ALICE, revision(&r, "too late"))
        .then_error(Refusal::Conflict(Completed, InProgress));
}

#[test]
fn offer_passed_and_revisions_fold_the_same_at_replay() {
    let (mut w, r) = given_pending();
    w.run(CAROL, to(&r, Declined));
    w.run(BOB, claim(&r));
    w.run(BOB, to(&r, Completed));
    w.run(ALICE, revision(&r, "once more"));
    let live = w.thread(&r);
    let mut replayed = mess_core::Exchange::new(w.exchange.id().clone());
    replayed.apply_all(&w.log);
    let folded = replayed.thread(&r).expect("the thread");
    assert_eq!(**folded, *live);
    assert_eq!(folded.status, InProgress);
    assert_eq!(folded.version, 5);
}

fn run_out(w: &World, r: &ThreadRef, default_ms: Option<i64>) -> bool {
    w.exchange.claims_run_out(w.now(), default_ms).contains(r)
}

fn timeout(r: &ThreadRef, default_ms: Option<i64>) -> Command {
    Command::TimeoutClaim {
        thread: r.clone(),
        default_ms,
    }
}

#[test]
fn a_claim_with_no_word_from_its_assignee_goes_back_to_pending_after_its_limit() {
    let (mut w, r) =
        given_pending_with(json!({"intent": "Check the door", "claim_timeout": "PT15M"}));
    w.run(BOB, claim(&r));
    w.minutes_later(14);
    assert!(!run_out(&w, &r, None));
    w = w
        .when(Actor::Exchange, timeout(&r, None))
        .then_error(Refusal::Conflict(Claimed, Pending));
    w.minutes_later(2);
    assert!(run_out(&w, &r, None));
    let (w, d) = w.when(Actor::Exchange, timeout(&r, None)).then_ok();
    assert_eq!(d.events[0].kind, changed(Claimed, Pending, None));
    let EventKind::MessageAdded(m) = &d.events[1].kind else {
        panic!("a status message")
    };
    let block = m.mess[0].body();
    assert_eq!(block["code"], "pending");
    assert_eq!(block["reason"], "claim_timeout");
    let t = w.thread(&r);
    assert_eq!(t.status, Pending);
    assert!(t.executor_id.is_none());
    assert!(!run_out(&w, &r, None));
}

#[test]
fn a_message_from_the_assignee_restarts_the_limit_and_an_estimate_extends_it() {
    let (mut w, r) =
        given_pending_with(json!({"intent": "Check the door", "claim_timeout": "PT15M"}));
    w.run(BOB, claim(&r));
    w.minutes_later(10);
    w.run(BOB, say(&r, json!([{"reply": {"content": ["on my way"]}}])));
    w.minutes_later(10);
    assert!(
        !run_out(&w, &r, None),
        "the message moved the limit to minute 25"
    );
    w.minutes_later(6);
    assert!(run_out(&w, &r, None));

    let (mut w, r) =
        given_pending_with(json!({"intent": "Check the door", "claim_timeout": "PT15M"}));
    w.run(
        BOB,
        to_with(&r, Claimed, json!({"estimate": "PT1H"}), json!([])),
    );
    w.minutes_later(59);
    assert!(
        !run_out(&w, &r, None),
        "the estimate is longer than the limit"
    );
    w.minutes_later(2);
    assert!(run_out(&w, &r, None));
}

#[test]
fn the_exchange_wide_limit_applies_to_requests_without_their_own() {
    let (mut w, r) = given_pending();
    w.run(BOB, claim(&r));
    w.minutes_later(31);
    assert!(!run_out(&w, &r, None), "off unless set");
    assert!(run_out(&w, &r, Some(30 * 60 * 1000)));
    // The limit is derived from the log: a replayed exchange finds the same.
    let mut replayed = mess_core::Exchange::new(w.exchange.id().clone());
    replayed.apply_all(&w.log);
    assert_eq!(
        replayed.claims_run_out(w.now(), Some(30 * 60 * 1000)),
        vec![r.clone()]
    );
}

#[test]
fn a_claim_timeout_must_be_an_iso_duration_from_a_second_to_a_week() {
    for bad in [json!("15 minutes"), json!("PT0S"), json!("P8D"), json!(900)] {
        let body = json!({"intent": "x", "claim_timeout": bad});
        assert!(mess_core::NewRequest::parse(body).is_err(), "{bad}");
    }
    assert!(mess_core::NewRequest::parse(json!({"intent": "x", "claim_timeout": "P7D"})).is_ok());
}

const HOUR: i64 = 60 * 60 * 1000;

fn offers(w: &World) -> Vec<(ThreadRef, mess_core::OfferStep)> {
    w.exchange.offers_due(w.now(), HOUR)
}

fn offer_step(r: &ThreadRef, step: mess_core::OfferStep) -> Command {
    Command::OfferStep {
        thread: r.clone(),
        step,
        remind_after_ms: HOUR,
    }
}

#[test]
fn an_offer_nobody_takes_is_made_once_more_then_its_requestor_is_told() {
    use mess_core::OfferStep::*;
    let (w, r) = given_pending();
    w.minutes_later(59);
    assert!(offers(&w).is_empty());
    w.minutes_later(1);
    assert_eq!(offers(&w), vec![(r.clone(), Remind)]);
    let w = w
        .when(Actor::Exchange, offer_step(&r, Unclaimed))
        .then_error(Refusal::Conflict(Pending, Pending));
    let (w, d) = w.when(Actor::Exchange, offer_step(&r, Remind)).then_ok();
    assert!(matches!(d.events[0].kind, EventKind::OfferReminded(_)));
    assert!(offers(&w).is_empty(), "reminded once");
    assert_eq!(w.thread(&r).version, 1, "a reminder is not a message");
    w.minutes_later(60);
    assert_eq!(offers(&w), vec![(r.clone(), Unclaimed)]);
    let (w, d) = w.when(Actor::Exchange, offer_step(&r, Unclaimed)).then_ok();
    assert!(matches!(d.events[0].kind, EventKind::ThreadUnclaimed(_)));
    assert!(offers(&w).is_empty(), "told once");
    // Derived from the log: a replayed exchange has nothing more to do either.
    let mut replayed = mess_core::Exchange::new(w.exchange.id().clone());
    replayed.apply_all(&w.log);
    assert!(replayed.offers_due(w.now(), HOUR).is_empty());
    assert!(replayed.thread(&r).is_some_and(|t| t.unclaimed_told));
}

#[test]
fn with_needed_by_the_reminder_comes_at_half_the_time_to_it() {
    // needed_by is 2 h after T0: the reminder comes after 1 h, not the exchange's 4 h.
    let (w, r) = given_pending_with(
        json!({"intent": "Check the door", "needed_by": "2026-02-02T00:00:00Z"}),
    );
    w.minutes_later(59);
    assert!(w.exchange.offers_due(w.now(), 4 * HOUR).is_empty());
    w.minutes_later(1);
    assert_eq!(
        w.exchange.offers_due(w.now(), 4 * HOUR),
        vec![(r.clone(), mess_core::OfferStep::Remind)]
    );
}

#[test]
fn a_claim_stops_the_reminders_and_a_release_starts_them_again() {
    let (mut w, r) = given_pending();
    w.minutes_later(30);
    w.run(BOB, claim(&r));
    w.minutes_later(60);
    assert!(offers(&w).is_empty(), "claimed: nothing to remind");
    w.run(BOB, to(&r, Pending));
    w.minutes_later(59);
    assert!(offers(&w).is_empty(), "offered again from the release");
    w.minutes_later(1);
    assert_eq!(offers(&w).len(), 1);
}

#[test]
fn a_member_who_passed_is_remembered_on_the_thread() {
    let (mut w, r) = given_pending();
    w.run(CAROL, to(&r, Declined));
    let t = w.thread(&r);
    assert_eq!(
        t.passed_by.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        [CAROL]
    );
}

#[test]
fn the_review_window_is_the_exchanges_setting() {
    let (w, r) = given_in(Completed);
    w.minutes_later(2);
    let short = Command::RequestRevision {
        thread: r.clone(),
        reason: "again".into(),
        window_ms: 60_000,
        extra: Default::default(),
        mess: None,
    };
    let w = w
        .when(ALICE, short)
        .then_error(Refusal::Conflict(Completed, InProgress));
    w.when(ALICE, revision(&r, "again")).then_events(vec![
        changed(Completed, InProgress, Some(BOB)),
        message(
            json!([{"status": {"re": r.as_str(), "code": "revision_requested",
                                        "reason": "again"}}]),
        ),
    ]);
}

#[test]
fn active_work_past_its_deadline_is_never_expired_both_sides_are_told_once() {
    // needed_by is 30 minutes after T0.
    let (mut w, r) = given_pending_with(
        json!({"intent": "Check the door", "needed_by": "2026-02-01T22:30:00Z"}),
    );
    w.run(BOB, claim(&r));
    w.minutes_later(29);
    assert!(w.exchange.deadlines_passed(w.now()).is_empty());
    w.minutes_later(1);
    // Exactly at the deadline.
    assert_eq!(w.exchange.deadlines_passed(w.now()), vec![r.clone()]);
    assert!(
        w.exchange.due_for_expiry(w.now()).is_empty(),
        "active: never expired"
    );
    let tell = Command::TellDeadlinePassed { thread: r.clone() };
    let (w, d) = w.when(Actor::Exchange, tell.clone()).then_ok();
    assert!(matches!(d.events[0].kind, EventKind::NeededByPassed(_)));
    assert!(w.exchange.deadlines_passed(w.now()).is_empty(), "told once");
    assert_eq!(w.thread(&r).status, Claimed);
    let w = w
        .when(Actor::Exchange, tell)
        .then_error(Refusal::Conflict(Claimed, Claimed));
    // Derived from the log: a replay does not tell again.
    let mut replayed = mess_core::Exchange::new(w.exchange.id().clone());
    replayed.apply_all(&w.log);
    assert!(replayed.deadlines_passed(w.now()).is_empty());
}

#[test]
fn the_exchange_owes_its_timers_in_one_list_an_unclaimed_report_before_the_expiry() {
    // needed_by 30 min after T0: reminded at 15 min, reported and expired at 30.
    let (mut w, r) = given_pending_with(
        json!({"intent": "Check the door", "needed_by": "2026-02-01T22:30:00Z"}),
    );
    let timers = mess_core::Timers {
        claim_timeout_ms: None,
        remind_after_ms: HOUR,
    };
    let at = |minutes: i64| {
        mess_core::Timestamp::from_unix_millis(w.now().unix_millis() + minutes * 60_000)
    };
    assert_eq!(w.exchange.next_due(timers), Some(at(15)));
    w.minutes_later(15);
    w.run(
        Actor::Exchange,
        offer_step(&r, mess_core::OfferStep::Remind),
    );
    w.minutes_later(15);
    let due: Vec<&'static str> = w
        .exchange
        .due(w.now(), timers)
        .iter()
        .map(|c| match c {
            Command::OfferStep { .. } => "offer",
            Command::Expire { .. } => "expire",
            _ => "other",
        })
        .collect();
    assert_eq!(due, ["offer", "expire"]);
}
