//! Who may append messages, and the message a status change records.

use mess_core::Status::{self, *};
use mess_core::{BlockKind, Command};
use serde_json::json;

use crate::harness::*;

const QUESTION: &str = r#"[{"query": {"q": "Which door?", "x-client": {"kept": [1, 2]}}}]"#;

fn question() -> serde_json::Value {
    serde_json::from_str(QUESTION).expect("valid json")
}

#[test]
fn requestor_and_assignee_may_append_messages_at_any_time() {
    for status in [
        Pending, Claimed, InProgress, NeedsInput, Completed, Failed, Cancelled, Expired,
    ] {
        for member in [ALICE, BOB] {
            let (w, r) = given_in(status);
            if member == BOB && w.thread(&r).executor_id.as_ref().map(|e| e.as_str()) != Some(BOB) {
                continue; // never claimed: Bob has no role on it
            }
            let w = w
                .when(member, say(&r, question()))
                .then_events(vec![message(question())]);
            let t = w.thread(&r);
            assert_eq!(t.status, status, "a message never changes the status");
            let last = t.messages.last().expect("a message");
            assert_eq!(last.from, member);
            assert_eq!(serde_json::to_value(&last.mess).expect("json"), question());
        }
    }
}

#[test]
fn any_member_may_ask_a_question_on_a_pending_thread() {
    for member in [BOB, CAROL] {
        let (w, r) = given_pending();
        w.when(member, say(&r, question()))
            .then_events(vec![message(question())]);
    }
}

#[test]
fn other_members_may_not_append_to_a_thread_that_is_not_pending() {
    for status in Status::ALL.into_iter().filter(|s| *s != Pending) {
        let (w, r) = given_in(status);
        w.when(CAROL, say(&r, question()))
            .then_error(Refusal::Forbidden);
    }
}

#[test]
fn a_released_thread_is_open_to_questions_again() {
    let (mut w, r) = given_claimed();
    w.run(BOB, to(&r, Pending));
    w.when(CAROL, say(&r, question()))
        .then_events(vec![message(question())]);
}

#[test]
fn an_update_with_nothing_in_it_is_invalid() {
    let (w, r) = given_claimed();
    let nothing = Command::Update {
        thread: r.clone(),
        status: None,
        mess: None,
    };
    let w = w.when(BOB, nothing).then_error(Refusal::Invalid);
    w.when(BOB, say(&r, json!([]))).then_error(Refusal::Invalid);
}

#[test]
fn a_status_change_appends_one_message_led_by_a_status_block() {
    let (w, r) = given_claimed();
    let update = to_with(
        &r,
        InProgress,
        json!({"message": "On my way", "estimate": "5m", "code": "ignored", "re": "ignored"}),
        json!([{"response": {"content": ["Leaving now"]}}]),
    );
    let expected = json!([
        {"status": {"re": r.as_str(), "code": "in_progress", "message": "On my way", "estimate": "5m"}},
        {"response": {"content": ["Leaving now"]}},
    ]);
    let w = w.when(BOB, update).then_events(vec![
        changed(Claimed, InProgress, Some(BOB)),
        message(expected.clone()),
    ]);
    let t = w.thread(&r);
    let last = t.messages.last().expect("a message");
    // Field order is kept too: `re`, `code`, then the client's fields.
    assert_eq!(
        serde_json::to_string(&last.mess).expect("json"),
        expected.to_string()
    );
}

#[test]
fn a_client_status_block_of_the_new_code_is_kept_exactly_and_nothing_is_added() {
    let (w, r) = given_claimed();
    let mess = json!([
        {"status": {"code": "completed", "re": r.as_str(), "note": "client's own"}},
        {"response": {"content": ["Garage is closed"]}},
    ]);
    let update = to_with(&r, Completed, json!({"message": "not used"}), mess.clone());
    w.when(BOB, update)
        .then_events(vec![changed(Claimed, Completed, Some(BOB)), message(mess)]);
}

#[test]
fn a_client_status_block_of_another_code_gets_the_new_one_in_front() {
    let (w, r) = given_claimed();
    let mess = json!([{"status": {"code": "in_progress"}}, {"response": {"content": ["done"]}}]);
    let update = to_with(&r, Completed, json!({}), mess);
    w.when(BOB, update).then_events(vec![
        changed(Claimed, Completed, Some(BOB)),
        message(json!([
            status_block(&r, Completed),
            {"status": {"code": "in_progress"}},
            {"response": {"content": ["done"]}},
        ])),
    ]);
}

#[test]
fn a_claim_records_who_claimed_in_a_status_message() {
    let (w, r) = given_pending();
    let w = w
        .when(BOB, claim(&r))
        .then_events(moved(&r, Pending, Claimed, Some(BOB)));
    let t = w.thread(&r);
    assert_eq!(t.messages.len(), 2);
    let messages = t.messages.to_vec();
    assert_eq!(messages[1].from, BOB);
    assert_eq!(messages[1].mess[0].kind(), BlockKind::Status);
    assert_eq!(t.updated_at, w.now());
}

#[test]
fn create_records_the_request_block_with_every_field_the_client_sent() {
    let body = json!({
        "intent": "Check the front door",
        "context": ["left at 9"],
        "priority": "elevated",
        "response_hints": ["image"],
        "requires": ["photo:capture"],
        "constraints": {"timing": {"expires": "2026-02-02T00:00:00Z"}},
        "needed_by": "2026-02-01T23:00:00Z",
        "confirm_before": false,
        "precision": "exact",
        "compensation": {"amount": 1, "currency": "EUR"},
        "id": "client-42",
        "x-future": {"nested": [true, null]},
    });
    let mut w = given().members(&[ALICE]);
    let r = w.create(ALICE, body.clone());
    let t = w.thread(&r);
    assert_eq!(t.priority, mess_core::Priority::Elevated);
    assert_eq!(t.requires, vec!["photo:capture"]);
    assert_eq!(t.messages.len(), 1);
    let first = &t.messages.to_vec()[0];
    assert_eq!(first.from, ALICE);
    let mut expected = body;
    let hints = expected
        .as_object_mut()
        .and_then(|o| o.remove("response_hints"));
    expected["response_hint"] = hints.expect("sent");
    assert_eq!(
        serde_json::to_value(&first.mess).expect("json"),
        json!([{"request": expected}])
    );
}

#[test]
fn the_exchange_itself_cannot_create_requests() {
    let w = given();
    w.when(mess_core::Actor::Exchange, create(json!({"intent": "x"})))
        .then_error(Refusal::Forbidden);
}
