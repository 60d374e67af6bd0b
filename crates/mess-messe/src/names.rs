//! Names that come from files: thread refs, actor ids and timestamps, each checked or
//! mapped deterministically (the same input always gives the same result, so a second
//! import finds what the first one wrote).

use mess_core::{Actor, ExecutorId, ThreadRef, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

/// A MESSE-AF ref this exchange keeps as it is (protocol.md):
/// `^\d{4}-\d{2}-\d{2}-[A-Za-z0-9][A-Za-z0-9-]{0,62}$`. Such a ref is also safe as a file
/// and folder name, which is why nothing else is ever used to build a path.
pub fn is_path_safe_ref(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() >= 12
        && b.len() <= 11 + 63
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'-'
        && b[11].is_ascii_alphanumeric()
        && b[12..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The ref a thread gets here: `source` itself when this exchange's `ThreadRef` takes it;
/// otherwise one minted on the same date (the thread's creation date when the ref's own
/// is not a real date): the letters and digits after the date, upper-cased, padded with
/// `0` to 4 (`2026-01-20-001` becomes `2026-01-20-0001`). `attempt` > 0 (a collision
/// with another thread) gives a variant with a hash of the source in it instead.
pub fn target_ref(source: &str, created: Timestamp, attempt: u32) -> ThreadRef {
    if attempt == 0
        && let Ok(r) = ThreadRef::parse(source)
    {
        return r;
    }
    let date = source
        .get(..10)
        .and_then(|d| {
            ThreadRef::parse(&format!("{d}-AAAA"))
                .ok()
                .map(|_| d.to_owned())
        })
        .unwrap_or_else(|| {
            let d = created.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        });
    let tail: String = source
        .get(11..)
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let mut suffix = format!("{tail:0>4}");
    if attempt > 0 || suffix.len() > 16 {
        suffix.truncate(10);
        suffix.push_str(&hash32(&format!("{source}#{attempt}"), 6));
    }
    ThreadRef::parse(&format!("{date}-{suffix}")).unwrap_or_else(|_| {
        // Cannot happen: a real date and 4 to 16 of [A-Z0-9]. Still, never panic on input.
        ThreadRef::parse(&format!("{date}-{}", hash32(source, 8)))
            .unwrap_or_else(|_| ThreadRef::parse("1970-01-01-0000").expect("valid"))
    })
}

/// `n` characters of `[A-Z2-7]` (base32) from the SHA-256 of `s`.
fn hash32(s: &str, n: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    Sha256::digest(s.as_bytes())
        .iter()
        .take(n)
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect()
}

/// A member id for an actor named in a file: itself when valid; otherwise its allowed
/// characters (others become `-`), cut to 55, then `-` and 8 hex digits of its SHA-256,
/// so two different foreign names never meet. The `bool` says whether it was mapped.
pub fn executor_id(raw: &str) -> (ExecutorId, bool) {
    if let Ok(id) = ExecutorId::parse(raw) {
        return (id, false);
    }
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("..") {
        s = s.replace("..", ".");
    }
    let s = s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let s: String = s.chars().take(55).collect();
    let hex: String = Sha256::digest(raw.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let id = if s.is_empty() {
        format!("imported-{hex}")
    } else {
        format!("{s}-{hex}")
    };
    (
        ExecutorId::parse(&id)
            .unwrap_or_else(|_| ExecutorId::parse(&format!("imported-{hex}")).expect("a valid id")),
        true,
    )
}

/// The actor of a message: `exchange` (or the legacy `@exchange`) is the exchange itself,
/// anything else a member id as [`executor_id`] gives it.
pub fn actor(raw: &str) -> (Actor, bool) {
    match Actor::parse(raw) {
        Ok(a) => (a, false),
        Err(_) => {
            let (id, mapped) = executor_id(raw);
            (Actor::Member(id), mapped)
        }
    }
}

/// A timestamp as the MESS writers spell them: RFC 3339 with any offset, the YAML 1.1
/// forms (a space instead of `T`, a space before the zone, no zone meaning UTC, a date
/// alone), and integers of epoch seconds (PHP) or milliseconds (past year 5000 as seconds).
pub fn timestamp(v: &Value) -> Option<Timestamp> {
    match v {
        Value::Number(n) => {
            let x = n.as_i64()?;
            let ms = if x.abs() > 100_000_000_000 {
                x
            } else {
                x.checked_mul(1000)?
            };
            Some(Timestamp::from_unix_millis(ms))
        }
        Value::String(s) => parse_time(s.trim()),
        _ => None,
    }
}

fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(Timestamp::from_datetime(t));
    }
    if !s.is_ascii() || s.len() < 10 {
        return None;
    }
    let mut t = if s.len() == 10 {
        format!("{s}T00:00:00")
    } else {
        let (date, rest) = s.split_at(10);
        let rest = rest.trim_start_matches([' ', 'T', 't']);
        format!("{date}T{rest}")
    };
    t.make_ascii_uppercase();
    // `2026-03-04T09:00:00 +01:00` / `... Z`: no space before the zone.
    if let Some(i) = t.rfind(' ') {
        t.remove(i);
    }
    let zone_at = t[19.min(t.len())..]
        .find(['Z', 'z', '+', '-'])
        .map(|i| i + 19);
    match zone_at {
        None => t.push('Z'),
        Some(i) => {
            let zone = t[i..].to_owned();
            // `+01` and `+0100` as `+01:00`.
            if zone.len() == 3 {
                t.push_str(":00");
            } else if zone.len() == 5 && !zone.contains(':') {
                t.insert(i + 3, ':');
            }
        }
    }
    time::OffsetDateTime::parse(&t, &Rfc3339)
        .ok()
        .map(Timestamp::from_datetime)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_spelling_of_one_instant_is_the_same_instant() {
        let want = Timestamp::parse("2026-03-04T17:00:00.000Z").unwrap();
        for v in [
            json!("2026-03-04T17:00:00Z"),
            json!("2026-03-04T09:00:00-08:00"),
            json!("2026-03-04 17:00:00"),
            json!("2026-03-04 17:00:00 Z"),
            json!("2026-03-04 18:00:00 +01:00"),
            json!("2026-03-04T18:00:00+0100"),
            json!("2026-03-04t17:00:00.000z"),
            json!(1_772_643_600),
            json!(1_772_643_600_000_i64),
        ] {
            assert_eq!(timestamp(&v), Some(want), "{v}");
        }
        assert_eq!(
            timestamp(&json!("2026-03-04")),
            Some(Timestamp::parse("2026-03-04T00:00:00Z").unwrap())
        );
        for bad in [
            json!("yesterday"),
            json!("2026-13-01"),
            json!(true),
            json!(1.5),
        ] {
            assert_eq!(timestamp(&bad), None, "{bad}");
        }
    }

    #[test]
    fn refs_are_kept_when_valid_and_minted_the_same_way_every_time_otherwise() {
        let created = Timestamp::parse("2026-01-20T10:00:00Z").unwrap();
        assert_eq!(target_ref("2026-01-20-AB12", created, 0), "2026-01-20-AB12");
        for source in [
            "2026-01-20-001",
            "2026-02-01-003-check-fridge",
            "2026-02-30-x",
        ] {
            assert!(is_path_safe_ref(source), "{source}");
            let a = target_ref(source, created, 0);
            assert_eq!(a, target_ref(source, created, 0));
            assert_ne!(a, target_ref(source, created, 1));
        }
        if ThreadRef::parse("2026-01-20-001").is_err() {
            assert_eq!(target_ref("2026-01-20-001", created, 0), "2026-01-20-0001");
            assert_eq!(
                target_ref("2026-02-30-x", created, 0),
                "2026-01-20-000X",
                "not a real date: the creation date"
            );
        }
        for bad in [
            "X/../../Y",
            "2026-01-20-",
            "2026-01-20--a",
            "2026-01-20-a_b",
            "",
        ] {
            assert!(!is_path_safe_ref(bad), "{bad}");
        }
    }

    #[test]
    fn foreign_actors_map_to_valid_distinct_ids() {
        assert_eq!(
            executor_id("porch-cam"),
            (ExecutorId::parse("porch-cam").unwrap(), false)
        );
        let (a, mapped) = executor_id("Jane Doe <jane@example.com>");
        assert!(mapped);
        assert!(a.as_str().starts_with("Jane-Doe--jane-example.com-"), "{a}");
        assert_eq!(executor_id("Jane Doe <jane@example.com>").0, a);
        assert_ne!(executor_id("a b").0, executor_id("a-b").0);
        for raw in ["..", "", "@@@", &"é".repeat(100), "../etc"] {
            let (id, mapped) = executor_id(raw);
            assert!(mapped, "{raw}");
            assert!(ExecutorId::parse(id.as_str()).is_ok());
        }
        assert_eq!(actor("exchange").0, Actor::Exchange);
        assert_eq!(actor("@exchange").0, Actor::Exchange);
    }
}
