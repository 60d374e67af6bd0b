//! Time and randomness, injected so that every rule can be tested exactly.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[cfg(feature = "os")]
use rand::RngExt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::error::DomainError;

/// A UTC instant with millisecond precision, written as RFC 3339 with a `Z`
/// (`2026-02-01T22:00:00.000Z`), which DuckDB reads as a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// From a `time` instant (truncated to the millisecond).
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        Self((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// As a `time` instant in UTC.
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses any RFC 3339 date-time (any offset), as clients send in `needed_by`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| DomainError::invalid("timestamps must be RFC 3339 date-times"))
    }

    /// The UTC calendar date.
    pub fn date(self) -> time::Date {
        self.to_datetime().date()
    }
}

impl Timestamp {
    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf` without going through `fmt` (every
    /// response carries several of these); `None` outside years 0000-9999.
    fn write_rfc3339(self, buf: &mut [u8; 24]) -> Option<&str> {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let put = |buf: &mut [u8; 24], at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        *buf = *b"0000-00-00T00:00:00.000Z";
        put(buf, 0, 4, year);
        put(buf, 5, 2, month);
        put(buf, 8, 2, day);
        put(buf, 11, 2, sod / 3600);
        put(buf, 14, 2, sod / 60 % 60);
        put(buf, 17, 2, sod % 60);
        put(buf, 20, 3, ms);
        std::str::from_utf8(buf).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.write_rfc3339(&mut [0; 24]) {
            return f.write_str(s);
        }
        let dt = self.to_datetime().to_offset(UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.write_rfc3339(&mut [0; 24]) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to: for exact tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(AtomicI64::new(t.unix_millis()))
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.unix_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Where random bytes come from: event ids, ref suffixes and API keys.
pub trait Entropy: Send + Sync {
    /// Fills `buf` with random bytes. For API keys this must be a CSPRNG.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG (through `rand`'s thread-local ChaCha generator,
/// seeded and reseeded from the OS). Feature `os` (on by default).
#[cfg(feature = "os")]
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

#[cfg(feature = "os")]
impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        rand::rng().fill(buf);
    }
}

/// Deterministic bytes from a counter: for exact tests, never for keys in production.
#[derive(Debug, Default)]
pub struct CountingEntropy(AtomicU64);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (n.rotate_left(i as u32 * 7) as u8).wrapping_add(i as u8);
        }
    }
}

/// Replays a fixed list of byte patterns, then repeats the last: to force collisions.
#[derive(Debug)]
pub struct ScriptedEntropy(Mutex<Vec<u8>>);

impl ScriptedEntropy {
    /// Each call to `fill` takes the next seed byte and fills the buffer with it.
    pub fn new(seeds: Vec<u8>) -> Self {
        Self(Mutex::new(seeds))
    }
}

impl Entropy for ScriptedEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let mut seeds = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let seed = if seeds.len() > 1 {
            seeds.remove(0)
        } else {
            seeds.first().copied().unwrap_or(0)
        };
        buf.fill(seed);
    }
}

/// A fresh UUID v4 from `entropy`, as a hyphenated string.
pub fn new_uuid(entropy: &dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_utc_with_millis_and_parse_any_offset() {
        let t = Timestamp::parse("2026-02-01T23:00:00.5+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-02-01T22:00:00.500Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }

    /// The formatting `time` does, which the fast path must match exactly.
    fn by_time(t: Timestamp) -> String {
        let dt = t.to_datetime().to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }

    #[test]
    fn the_fast_format_matches_time_at_the_edges() {
        // 0000-01-01, before the epoch, leap days, 9999-12-31T23:59:59.999.
        for ms in [
            -62_167_219_200_000_i64,
            -1,
            0,
            951_782_400_000,
            4_107_456_000_000,
            253_402_300_799_999,
        ] {
            let t = Timestamp(ms);
            assert_eq!(t.to_string(), by_time(t), "{ms}");
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", by_time(t))
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_format_matches_time(ms in -62_167_219_200_000_i64..253_402_300_800_000) {
            let t = Timestamp(ms);
            proptest::prop_assert_eq!(t.to_string(), by_time(t));
        }
    }
}

/// An ISO 8601 duration (`PT15M`, `P1DT2H`, `PT90S`, `P2W`) in milliseconds: weeks, days,
/// hours, minutes and seconds (fractions of seconds allowed); no years or months (their
/// length depends on the calendar). `None` for anything else.
pub fn parse_iso_duration(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut read = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() || (c == '.' && !number.contains('.')) {
                number.push(c);
                continue;
            }
            // Units in order, each at most once.
            let (_, ms) = allowed.by_ref().find(|(u, _)| *u == c)?;
            if number.is_empty() || (number.contains('.') && c != 'S') {
                return None;
            }
            total += number.parse::<f64>().ok()? * ms;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    read(date, &[('W', 604_800_000.0), ('D', 86_400_000.0)])?;
    if let Some(t) = time {
        read(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    }
    (total.is_finite() && total < 1e15).then_some(total.round() as i64)
}

#[cfg(test)]
mod duration_tests {
    use super::parse_iso_duration as d;

    #[test]
    fn iso_durations_in_milliseconds() {
        assert_eq!(d("PT15M"), Some(900_000));
        assert_eq!(d("PT1S"), Some(1_000));
        assert_eq!(d("PT1.5S"), Some(1_500));
        assert_eq!(d("P1DT2H"), Some(93_600_000));
        assert_eq!(d("P7D"), Some(604_800_000));
        assert_eq!(d("P2W"), Some(1_209_600_000));
        for bad in [
            "", "P", "PT", "15M", "PT15", "P1M", "P1Y", "PTM", "PT1H1H", "PT1M1H", "PT1.5M",
            "pt15m", "P1DT",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }
}
