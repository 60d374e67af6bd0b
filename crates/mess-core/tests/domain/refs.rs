//! Thread refs: `YYYY-MM-DD-XXXX` on the clock's UTC date, and never a collision.

use std::collections::HashSet;

use mess_core::clock::ScriptedEntropy;
use mess_core::{Event, ThreadRef, Timestamp};
use serde_json::json;

use crate::harness::*;

fn suffix(r: &ThreadRef) -> &str {
    &r.as_str()["YYYY-MM-DD-".len()..]
}

#[test]
fn refs_are_the_utc_date_then_four_characters() {
    let mut w = given().members(&[ALICE]);
    for (now, date) in [
        ("2026-02-01T23:59:59.999Z", "2026-02-01"),
        ("2026-02-01T23:30:00-05:00", "2026-02-02"), // already the 2nd in UTC
        ("2026-02-02T00:30:00+01:00", "2026-02-01"), // still the 1st in UTC
        ("2024-02-29T12:00:00Z", "2024-02-29"),
    ] {
        w.clock.set(Timestamp::parse(now).expect("valid"));
        let r = w.create(ALICE, json!({"intent": "x"}));
        assert!(r.as_str().starts_with(&format!("{date}-")), "{r} at {now}");
        assert_eq!(suffix(&r).len(), 4, "{r}");
        assert!(
            suffix(&r)
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            "{r}"
        );
        assert_eq!(ThreadRef::parse(r.as_str()).as_ref(), Ok(&r));
    }
}

#[test]
fn refs_never_collide_even_when_the_entropy_repeats_itself() {
    // Every draw is the same byte: every first choice of suffix collides.
    let mut w = World::with_entropy(Box::new(ScriptedEntropy::new(vec![7]))).members(&[ALICE]);
    let refs: Vec<ThreadRef> = (0..200)
        .map(|i| w.create(ALICE, json!({"intent": format!("request {i}")})))
        .collect();
    assert_eq!(refs.iter().collect::<HashSet<_>>().len(), 200, "unique");
    assert_eq!(suffix(&refs[0]).len(), 4);
    assert_eq!(
        suffix(&refs[1]).len(),
        5,
        "a collision lengthens the suffix"
    );
    for r in &refs {
        assert!(r.as_str().starts_with("2026-02-01-"), "{r}");
        // Still a ref the grammar accepts, so its events can be read back.
        assert_eq!(ThreadRef::parse(r.as_str()).as_ref(), Ok(r));
    }
    for e in &w.log {
        assert_eq!(Event::from_line(&e.to_line()).ok().as_ref(), Some(e));
    }
    assert_eq!(w.exchange.thread_count(), 200);
}

#[test]
fn the_same_draw_on_another_day_is_another_ref() {
    let mut w = World::with_entropy(Box::new(ScriptedEntropy::new(vec![7]))).members(&[ALICE]);
    let first = w.create(ALICE, json!({"intent": "x"}));
    w.minutes_later(24 * 60);
    let next_day = w.create(ALICE, json!({"intent": "x"}));
    assert_eq!(suffix(&first), suffix(&next_day));
    assert_ne!(first, next_day);
}
