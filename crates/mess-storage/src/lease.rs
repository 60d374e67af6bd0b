//! The pieces of replica ownership that storage itself enforces: lease and seal records,
//! epoch-carrying segment names, which segments count, and the [`LeaseTable`] every write
//! of a replica consults (docs/architecture.md, "Replicas").
//!
//! A replica's event segments are named `{uuid}.jsonl` like any other, but the uuid is a
//! version 8 one carrying the writer's lease **epoch** and a **batch** number (counted
//! from 1 in each epoch). The replica that takes an exchange over writes a **seal** for
//! each earlier epoch: the batches of it that were stored when the new owner looked.
//! Every write the old owner acknowledged is among them (it acknowledged only while its
//! lease was valid, and the new owner looked only after that lease had run out), so a
//! batch the seal leaves out was never acknowledged: replay skips it, and the new owner
//! moves it out of `events/` (to `fenced/`) so that DuckDB reads only what counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use mess_core::ExchangeId;
use serde::{Deserialize, Serialize};

/// Where leases and seals live: `leases/exchange={id}/`.
pub const LEASES: &str = "leases";

/// Where the new owner moves an old epoch's unacknowledged segments (same relative path).
pub const FENCED: &str = "fenced";

/// Where an owner writes the runs of its own batches it merged, for replay to read in
/// their place (`merged/exchange={id}/{YYYY}/{MM}/{DD}/...`): see [`merged_path`].
pub const MERGED: &str = "merged";

/// The merged object of batches `first..=last` (every one of them, all of `epoch`) of the
/// day directory `events_dir` (`events/exchange={id}/{YYYY}/{MM}/{DD}`):
/// `merged/exchange={id}/{YYYY}/{MM}/{DD}/{epoch}-{first}-{last}.jsonl`. It holds their lines
/// as they are. The segments stay in `events/` (DuckDB reads them, never this); replay
/// reads this instead of them, where the epoch's seal counts every batch of the run.
pub fn merged_path(events_dir: &str, epoch: u32, first: u32, last: u32) -> String {
    let rest = events_dir.strip_prefix("events/").unwrap_or(events_dir);
    format!("{MERGED}/{rest}/{epoch:010}-{first:010}-{last:010}.jsonl")
}

/// A merged run, as its path ([`merged_path`]) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRun {
    /// The exchange.
    pub exchange: ExchangeId,
    /// The events day directory of its segments (`events/exchange={id}/{YYYY}/{MM}/{DD}`).
    pub events_dir: String,
    /// The epoch of its batches.
    pub epoch: u32,
    /// Its first batch.
    pub first: u32,
    /// Its last batch.
    pub last: u32,
}

/// The merged run a path names, if it is one.
pub fn merged_of(path: &str) -> Option<MergedRun> {
    let rest = path.strip_prefix(MERGED)?.strip_prefix('/')?;
    let (dir, file) = rest.rsplit_once('/')?;
    let exchange = ExchangeId::parse(dir.strip_prefix("exchange=")?.split('/').next()?).ok()?;
    let mut parts = file.strip_suffix(".jsonl")?.splitn(3, '-');
    let mut next = || parts.next()?.parse::<u32>().ok();
    let (epoch, first, last) = (next()?, next()?, next()?);
    (first <= last).then(|| MergedRun {
        exchange,
        events_dir: format!("events/{dir}"),
        epoch,
        first,
        last,
    })
}

/// `leases/exchange={id}/`.
pub fn leases_prefix(exchange: &ExchangeId) -> String {
    format!("{LEASES}/exchange={exchange}/")
}

/// `leases/exchange={id}/lease.json`: who owns the exchange now.
pub fn lease_path(exchange: &ExchangeId) -> String {
    format!("{LEASES}/exchange={exchange}/lease.json")
}

/// `leases/exchange={id}/seal-{epoch}.json`: which batches of `epoch` count.
pub fn seal_path(exchange: &ExchangeId, epoch: u32) -> String {
    format!("{LEASES}/exchange={exchange}/seal-{epoch:010}.json")
}

/// The exchange and epoch a seal's path names.
pub fn seal_of(path: &str) -> Option<(ExchangeId, u32)> {
    let rest = path.strip_prefix(LEASES)?.strip_prefix("/exchange=")?;
    let (x, file) = rest.split_once('/')?;
    let epoch = file.strip_prefix("seal-")?.strip_suffix(".json")?;
    Some((ExchangeId::parse(x).ok()?, epoch.parse().ok()?))
}

/// The lease object: written create-only by the first owner, then only with `If-Match` on
/// the ETag its writer last saw, so exactly one writer wins each step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The holder's replica id (a uuid, new at each start).
    pub owner: String,
    /// The holder's `ADVERTISE_URL`, where other replicas forward its exchange's requests.
    pub url: String,
    /// The fencing epoch: one more than the previous holder's.
    pub epoch: u32,
    /// The holder's `LEASE_PERIOD`, in milliseconds (for people reading the bucket: other
    /// replicas time a lease by their own clock, never by a stored time).
    pub period_ms: u64,
    /// Given back at a graceful shutdown: anyone may take it at once.
    #[serde(default)]
    pub released: bool,
    /// Counts the holder's writes of the lease, so that every renewal changes the object's
    /// bytes and so its ETag (S3's ETag is a digest of the bytes): a lease whose ETag has
    /// not moved for a period was not renewed.
    #[serde(default)]
    pub beat: u64,
    /// Given back: when the exchange's next timer is due (unix milliseconds), if ever. A
    /// replica's sweep takes it by then; a request takes it whenever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at_ms: Option<i64>,
}

/// A sealed epoch: its batches `1..=through` count, except `missing` (not stored when the
/// seal was made, so never acknowledged; if one lands later it is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The epoch sealed.
    pub epoch: u32,
    /// The highest batch stored when it was sealed (0: none).
    pub through: u32,
    /// Batches below `through` that were not stored.
    #[serde(default)]
    pub missing: Vec<u32>,
}

impl Seal {
    /// The seal of `epoch` whose stored batches are `batches`.
    pub fn of(epoch: u32, batches: impl IntoIterator<Item = u32>) -> Self {
        let mut present: Vec<u32> = batches.into_iter().collect();
        present.sort_unstable();
        present.dedup();
        let through = present.last().copied().unwrap_or(0);
        let missing = (1..through)
            .filter(|b| present.binary_search(b).is_err())
            .collect();
        Self {
            epoch,
            through,
            missing,
        }
    }

    /// Whether batch `batch` of the sealed epoch counts.
    pub fn counts(&self, batch: u32) -> bool {
        batch >= 1 && batch <= self.through && !self.missing.contains(&batch)
    }
}

/// Every seal of a store (or of one exchange), by exchange and epoch.
#[derive(Debug, Default)]
pub struct Seals(HashMap<ExchangeId, BTreeMap<u32, Seal>>);

impl Seals {
    /// Records a seal.
    pub fn insert(&mut self, exchange: ExchangeId, seal: Seal) {
        self.0.entry(exchange).or_default().insert(seal.epoch, seal);
    }

    /// The seals of `exchange`, by epoch.
    pub fn of(&self, exchange: &ExchangeId) -> Option<&BTreeMap<u32, Seal>> {
        self.0.get(exchange)
    }

    /// Whether the segment at `path` (an event object of `exchange`) counts: one written
    /// without a lease always does; one of a sealed epoch only if its seal lists it; one
    /// of an epoch not sealed yet (the current or last owner's) does.
    pub fn counts(&self, exchange: &ExchangeId, path: &str) -> bool {
        match segment_epoch(path) {
            None => true,
            Some((epoch, batch)) => self
                .0
                .get(exchange)
                .and_then(|s| s.get(&epoch))
                .is_none_or(|seal| seal.counts(batch)),
        }
    }
}

/// A segment name carrying `epoch` and `batch`: `{uuid}.jsonl` with a version 8 uuid whose
/// first four bytes are the epoch and bytes 9..13 the batch (big-endian); the rest random.
pub fn segment_name(epoch: u32, batch: u32) -> String {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0..4].copy_from_slice(&epoch.to_be_bytes());
    bytes[9..13].copy_from_slice(&batch.to_be_bytes());
    format!("{}.jsonl", uuid::Uuid::new_v8(bytes))
}

/// The epoch and batch of a segment written under a lease (`None` for any other name).
pub fn segment_epoch(path: &str) -> Option<(u32, u32)> {
    let file = path.rsplit('/').next()?.strip_suffix(".jsonl")?;
    let id = uuid::Uuid::try_parse(file).ok()?;
    if id.get_version_num() != 8 {
        return None;
    }
    let b = id.as_bytes();
    let epoch = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let batch = u32::from_be_bytes([b[9], b[10], b[11], b[12]]);
    Some((epoch, batch))
}

/// A lease this replica holds.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its epoch.
    pub epoch: u32,
    /// The ETag of the lease object as this replica last wrote it.
    pub etag: String,
    /// Until when writes may be acknowledged: the send time of the last successful
    /// write of the lease plus most of a period (another replica takes over only a whole
    /// period after it first saw that version, which was after it was sent).
    pub valid_until: Instant,
    /// The last batch number given out in this epoch.
    pub batch: u32,
}

/// The leases this replica holds: what every write of its storage checks, before (to
/// name its segment) and after (to acknowledge it only if the lease was still held).
#[derive(Debug, Default)]
pub struct LeaseTable {
    held: Mutex<HashMap<ExchangeId, Held>>,
}

impl LeaseTable {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<ExchangeId, Held>) -> R) -> R {
        f(&mut self.held.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether `exchange`'s lease is held and valid now.
    pub fn holds(&self, exchange: &ExchangeId) -> bool {
        let now = Instant::now();
        self.with(|h| h.get(exchange).is_some_and(|l| now < l.valid_until))
    }

    /// The epoch and a fresh batch number for a segment of `exchange`, if its lease is
    /// held and valid now.
    pub fn begin(&self, exchange: &ExchangeId) -> Option<(u32, u32)> {
        let now = Instant::now();
        self.with(|h| {
            let l = h.get_mut(exchange).filter(|l| now < l.valid_until)?;
            l.batch += 1;
            Some((l.epoch, l.batch))
        })
    }

    /// A copy of `exchange`'s lease, if held (valid or not).
    pub fn get(&self, exchange: &ExchangeId) -> Option<Held> {
        self.with(|h| h.get(exchange).cloned())
    }

    /// Records a lease taken or renewed.
    pub fn put(&self, exchange: ExchangeId, held: Held) {
        self.with(|h| {
            h.insert(exchange, held);
        });
    }

    /// Renewed: a new ETag and validity, if the lease is still the one of `epoch`.
    pub fn renewed(&self, exchange: &ExchangeId, epoch: u32, etag: String, until: Instant) {
        self.with(|h| {
            if let Some(l) = h.get_mut(exchange).filter(|l| l.epoch == epoch) {
                l.etag = etag;
                l.valid_until = until;
            }
        });
    }

    /// Forgets a lease (lost or given back).
    pub fn remove(&self, exchange: &ExchangeId) -> Option<Held> {
        self.with(|h| h.remove(exchange))
    }

    /// Every lease held.
    pub fn all(&self) -> Vec<(ExchangeId, Held)> {
        self.with(|h| h.iter().map(|(x, l)| (x.clone(), l.clone())).collect())
    }

    /// How many leases are held.
    pub fn len(&self) -> usize {
        self.with(|h| h.len())
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_path_names_its_day_epoch_and_run() {
        let dir = "events/exchange=home/2026/02/01";
        let path = merged_path(dir, 3, 17, 144);
        assert_eq!(
            path,
            "merged/exchange=home/2026/02/01/0000000003-0000000017-0000000144.jsonl"
        );
        assert_eq!(
            merged_of(&path),
            Some(MergedRun {
                exchange: ExchangeId::parse("home").unwrap(),
                events_dir: dir.to_owned(),
                epoch: 3,
                first: 17,
                last: 144,
            })
        );
        for other in [
            "merged/exchange=home/2026/02/01/3-9-4.jsonl",
            "merged/exchange=home/2026/02/01/x.jsonl",
            "events/exchange=home/2026/02/01/0000000003-0000000017-0000000144.jsonl",
        ] {
            assert_eq!(merged_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_segment_name_carries_its_epoch_and_batch_and_others_carry_none() {
        let name = segment_name(7, 123_456);
        assert!(name.ends_with(".jsonl"));
        let path = format!("events/exchange=home/2026/02/01/{name}");
        assert_eq!(segment_epoch(&path), Some((7, 123_456)));
        let plain = format!(
            "events/exchange=home/2026/02/01/{}.jsonl",
            uuid::Uuid::new_v4()
        );
        assert_eq!(segment_epoch(&plain), None);
        assert_eq!(segment_epoch("events/exchange=home/x.jsonl"), None);
    }

    #[test]
    fn a_seal_counts_what_was_stored_and_nothing_that_came_later() {
        let seal = Seal::of(3, [1, 2, 4, 5]);
        assert_eq!(seal.through, 5);
        assert_eq!(seal.missing, vec![3]);
        assert!(seal.counts(1) && seal.counts(5));
        assert!(!seal.counts(3) && !seal.counts(6) && !seal.counts(0));
        let empty = Seal::of(4, []);
        assert!(!empty.counts(1));
    }

    #[test]
    fn segments_count_by_their_epochs_seal() {
        let home = ExchangeId::parse("home").unwrap();
        let mut seals = Seals::default();
        seals.insert(home.clone(), Seal::of(1, [1, 2]));
        let at = |e, b| format!("events/exchange=home/2026/02/01/{}", segment_name(e, b));
        assert!(seals.counts(&home, &at(1, 2)));
        assert!(!seals.counts(&home, &at(1, 3)), "written after the seal");
        assert!(seals.counts(&home, &at(2, 9)), "the current epoch");
        let plain = format!(
            "events/exchange=home/2026/02/01/{}.jsonl",
            uuid::Uuid::new_v4()
        );
        assert!(seals.counts(&home, &plain));
        let path = seal_path(&home, 12);
        assert_eq!(seal_of(&path), Some((home, 12)));
    }

    #[test]
    fn batches_are_given_only_under_a_valid_lease() {
        let home = ExchangeId::parse("home").unwrap();
        let table = LeaseTable::default();
        assert_eq!(table.begin(&home), None);
        let held = |until| Held {
            epoch: 2,
            etag: "e".into(),
            valid_until: until,
            batch: 0,
        };
        table.put(
            home.clone(),
            held(Instant::now() + std::time::Duration::from_secs(60)),
        );
        assert_eq!(table.begin(&home), Some((2, 1)));
        assert_eq!(table.begin(&home), Some((2, 2)));
        table.put(home.clone(), held(Instant::now()));
        assert!(!table.holds(&home));
        assert_eq!(table.begin(&home), None);
    }
}
