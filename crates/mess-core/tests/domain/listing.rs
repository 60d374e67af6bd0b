//! The exchange's list: newest-updated first, a status filter, cursor pagination.

use std::collections::HashSet;

use mess_core::Status::{self, *};
use mess_core::{Cursor, DomainError, ThreadRef};
use serde_json::json;

use crate::harness::*;

/// Alice posts `n` requests, a minute apart; their refs, oldest first.
fn given_threads(n: usize) -> (World, Vec<ThreadRef>) {
    let mut w = given().members(&[ALICE, BOB, CAROL]);
    let refs = (0..n)
        .map(|i| {
            w.minutes_later(1);
            w.create(ALICE, json!({"intent": format!("request {i}")}))
        })
        .collect();
    (w, refs)
}

fn refs_of(w: &World, status: Option<Status>, limit: usize) -> Vec<ThreadRef> {
    let (page, _) = w.exchange.list(status, None, limit);
    page.iter().map(|t| t.thread_ref.clone()).collect()
}

/// Walks every page, handing the cursor through its string form as the API does.
fn walk(w: &World, status: Option<Status>, limit: usize) -> (Vec<ThreadRef>, usize) {
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let (page, next) = w.exchange.list(status, after.as_ref(), limit);
        pages += 1;
        assert!(page.len() <= limit);
        seen.extend(page.iter().map(|t| t.thread_ref.clone()));
        match next {
            Some(c) => after = Some(Cursor::decode(&c.encode()).expect("our own cursor")),
            None => return (seen, pages),
        }
        assert!(pages < 100, "pagination does not end");
    }
}

#[test]
fn listing_is_newest_updated_first() {
    let (w, refs) = given_threads(5);
    let newest_first: Vec<ThreadRef> = refs.iter().rev().cloned().collect();
    assert_eq!(refs_of(&w, None, 100), newest_first);
    let (page, _) = w.exchange.list(None, None, 100);
    assert!(page.windows(2).all(|p| p[0].updated_at >= p[1].updated_at));
}

#[test]
fn an_update_moves_a_thread_to_the_front() {
    let (mut w, refs) = given_threads(5);
    w.minutes_later(1);
    w.run(BOB, claim(&refs[1]));
    assert_eq!(refs_of(&w, None, 1), [refs[1].clone()]);
    // A message alone is an update too.
    w.minutes_later(1);
    w.run(
        CAROL,
        say(&refs[3], json!([{"query": {"q": "which one?"}}])),
    );
    assert_eq!(refs_of(&w, None, 2), [refs[3].clone(), refs[1].clone()]);
    assert_eq!(w.exchange.thread_count(), 5, "moved, not copied");
}

#[test]
fn listing_filters_by_status() {
    let (mut w, refs) = given_threads(6);
    w.run(BOB, claim(&refs[0]));
    w.run(BOB, claim(&refs[2]));
    w.run(BOB, to(&refs[2], Completed));
    w.run(ALICE, to(&refs[4], Cancelled));
    assert_eq!(refs_of(&w, Some(Claimed), 100), [refs[0].clone()]);
    assert_eq!(refs_of(&w, Some(Completed), 100), [refs[2].clone()]);
    assert_eq!(refs_of(&w, Some(Cancelled), 100), [refs[4].clone()]);
    assert_eq!(
        refs_of(&w, Some(Pending), 100),
        [refs[5].clone(), refs[3].clone(), refs[1].clone()]
    );
    assert!(refs_of(&w, Some(Failed), 100).is_empty());
    let mut counts: Vec<(Status, usize)> =
        w.exchange.status_counts().filter(|(_, n)| *n > 0).collect();
    counts.sort();
    assert_eq!(
        counts,
        [(Pending, 3), (Claimed, 1), (Completed, 1), (Cancelled, 1)]
    );
}

#[test]
fn cursor_pagination_walks_every_thread_exactly_once() {
    let (w, refs) = given_threads(7);
    let (seen, pages) = walk(&w, None, 2);
    assert_eq!(pages, 4);
    assert_eq!(seen, refs.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
}

#[test]
fn cursor_pagination_is_exact_when_every_thread_has_the_same_updated_at() {
    let mut w = given().members(&[ALICE]);
    let refs: HashSet<ThreadRef> = (0..7)
        .map(|i| w.create(ALICE, json!({"intent": format!("same instant {i}")})))
        .collect();
    for limit in 1..=8 {
        let (seen, _) = walk(&w, None, limit);
        assert_eq!(seen.len(), 7, "limit {limit}");
        assert_eq!(
            seen.into_iter().collect::<HashSet<_>>(),
            refs,
            "limit {limit}"
        );
    }
}

#[test]
fn cursor_pagination_with_a_status_filter() {
    let (mut w, refs) = given_threads(7);
    for r in refs.iter().step_by(2) {
        w.run(BOB, claim(r));
    }
    let (seen, pages) = walk(&w, Some(Claimed), 2);
    assert_eq!(pages, 2);
    let claimed: Vec<ThreadRef> = refs.iter().step_by(2).rev().cloned().collect();
    assert_eq!(seen, claimed);
}

#[test]
fn a_page_ending_exactly_at_the_last_thread_has_no_cursor() {
    let (w, _) = given_threads(4);
    let (page, next) = w.exchange.list(None, None, 4);
    assert_eq!(page.len(), 4);
    assert_eq!(next, None);
    let (page, next) = w.exchange.list(None, None, 3);
    assert_eq!(page.len(), 3);
    assert!(next.is_some());
}

#[test]
fn a_cursor_that_is_not_ours_is_invalid() {
    for bad in [
        "",
        "zz",
        "00",
        &hex::encode("12.not-a-ref"),
        &hex::encode("x.2026-02-01-ABCD"),
    ] {
        assert!(
            matches!(Cursor::decode(bad), Err(DomainError::Invalid(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_copy_for_deciding_decides_and_applies_alike_but_lists_nothing() {
    let (mut w, refs) = given_threads(3);
    let mut copy = w.exchange.for_deciding();
    assert!(copy.list(None, None, 10).0.is_empty());
    assert_eq!(copy.thread_count(), 3);
    w.minutes_later(1);
    let d = w
        .decide(BOB, claim(&refs[0]))
        .expect("a pending thread can be claimed");
    let again = copy
        .decide(
            &mess_core::Actor::Member(mess_core::ExecutorId::parse(BOB).unwrap()),
            claim(&refs[0]),
            w.env(),
        )
        .expect("the copy decides the same");
    assert_eq!(again.events.len(), d.events.len());
    w.record(&d);
    for e in &d.events {
        copy.apply(e);
    }
    assert_eq!(copy.thread(&refs[0]), w.exchange.thread(&refs[0]));
    assert_eq!(copy.thread(&refs[0]).unwrap().status, Claimed);
    assert!(copy.list(Some(Claimed), None, 10).0.is_empty());
    assert_eq!(refs_of(&w, Some(Claimed), 10), [refs[0].clone()]);
}
