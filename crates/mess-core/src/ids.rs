//! Validated identifiers: once one exists, it is safe in a path, a hive partition and a key.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DomainError;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// Shared, not copied: a clone is a reference count, so the several indexes that
        /// name one thread hold one string between them.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Parses `s`, or says why it is not a valid
            #[doc = $what]
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                if $check(s) {
                    Ok(Self(Arc::from(s)))
                } else {
                    Err(DomainError::invalid(format!("invalid {}", $what)))
                }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == &*other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == &*other.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// An exchange id: `^[a-z0-9][a-z0-9-]{0,62}$`. No `_` (it separates the parts of an
    /// API key), no `=` (it would break the `exchange=` hive partition), no `/` or `.`.
    ExchangeId, is_exchange_id, "exchange id"
);
string_id!(
    /// A member (executor) id: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, never containing `..`.
    ExecutorId, is_executor_id, "executor id"
);
string_id!(
    /// A thread reference: `YYYY-MM-DD-` (a real date), then a letter or digit and up to 62
    /// more letters, digits or `-`. The exchange makes `YYYY-MM-DD-XXXX` (4 to 16 of
    /// `[A-Z0-9]`); threads imported from MESSE-AF keep their own path-safe refs.
    ThreadRef, is_thread_ref, "thread ref"
);

fn is_exchange_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_executor_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && !s.contains("..")
}

fn is_thread_ref(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 12 || b.len() > 74 || b[4] != b'-' || b[7] != b'-' || b[10] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u16>().unwrap_or(0);
    let (year, month, day) = (num(0..4) as i32, num(5..7) as u8, num(8..10) as u8);
    let Ok(month) = time::Month::try_from(month) else {
        return false;
    };
    time::Date::from_calendar_date(year, month, day).is_ok()
        && b[11].is_ascii_alphanumeric()
        && b[12..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

impl ExecutorId {
    /// The same id in a string of its own: a thread folded at start-up copies its ids
    /// rather than keep the parsed events' allocations alive.
    pub(crate) fn reallocated(&self) -> Self {
        Self(Arc::from(self.as_str()))
    }
}

impl ThreadRef {
    /// Builds a ref from a date and a suffix of `[A-Z0-9]`.
    pub(crate) fn from_parts(date: time::Date, suffix: &str) -> Self {
        Self(Arc::from(format!(
            "{:04}-{:02}-{:02}-{suffix}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_ids_exclude_partition_and_key_separators() {
        for ok in ["home", "office-2", "0", "a-b-c"] {
            assert!(ExchangeId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Home",
            "a_b",
            "a=b",
            "a/b",
            "a.b",
            "-a",
            &"a".repeat(64),
            "ä",
        ] {
            assert!(ExchangeId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn executor_ids_never_traverse() {
        for ok in ["my-phone", "Claude.agent_1", "a", &"a".repeat(64)] {
            assert!(ExecutorId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a..b",
            ".a",
            "a/b",
            "a\\b",
            "a\0",
            "a b",
            &"a".repeat(65),
            "=x",
        ] {
            assert!(ExecutorId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thread_refs_are_real_dates_with_a_suffix() {
        // The exchange's own, and the path-safe refs of imported threads.
        let longest = format!("2026-02-01-a{}", "-".repeat(62));
        for ok in [
            "2026-02-01-XY1Z",
            "2024-02-29-ABCDE",
            "2026-01-20-001",
            "2026-03-04-007-parcel",
            "2026-02-01-x",
            &longest,
        ] {
            assert!(ThreadRef::parse(ok).is_ok(), "{ok}");
        }
        let too_long = format!("{longest}a");
        for bad in [
            "2026-02-01-",
            "2026-02-01--X",
            "2026-02-30-XY1Z",
            "2026-13-01-XY1Z",
            "2026-02-01/XY1Z",
            "2026-02-01-XY_Z",
            "2026-02-01-XY.Z",
            "../../etc/passwd",
            &too_long,
        ] {
            assert!(ThreadRef::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Who acts: a member, or the exchange itself (expiry, notification outcomes), stored and
/// shown as `exchange`, the MESS convention ([`EXCHANGE_ACTOR`](crate::event::EXCHANGE_ACTOR)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A registered member (or, for registration, the id being registered).
    Member(ExecutorId),
    /// The exchange itself.
    Exchange,
}

impl Actor {
    /// Parses a stored or sent actor id: `exchange` (or the legacy `@exchange`) is the
    /// exchange, anything else must be a valid executor id.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        use crate::event::{EXCHANGE_ACTOR, LEGACY_EXCHANGE_ACTOR};
        if s == EXCHANGE_ACTOR || s == LEGACY_EXCHANGE_ACTOR {
            Ok(Actor::Exchange)
        } else {
            ExecutorId::parse(s).map(Actor::Member)
        }
    }

    /// The id as stored: the member's id, or `exchange`.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::Member(m) => m.as_str(),
            Actor::Exchange => crate::event::EXCHANGE_ACTOR,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Actor {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Actor {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
