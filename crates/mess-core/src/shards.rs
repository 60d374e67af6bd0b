//! A hash map in fixed shards, so that growing it never copies every entry at once.

use std::hash::{BuildHasher, Hash};

use foldhash::HashMap;
use foldhash::fast::RandomState;

/// How many shards (a power of two: the shard is the top bits of the key's hash).
const SHARDS: usize = 64;

/// A `HashMap` split into [`SHARDS`] maps by the key's hash. A `HashMap` grows by doubling,
/// copying every entry while the caller waits; an exchange's threads map crossing 458k
/// threads held its writer (and, in the published copy, every reader behind the write
/// lock) for tens of milliseconds. Here one shard doubles at a time: 1/64 of the entries.
#[derive(Debug, Clone)]
pub(crate) struct ShardedMap<K, V> {
    hasher: RandomState,
    shards: Box<[HashMap<K, V>]>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            hasher: RandomState::default(),
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn shard(&self, k: &K) -> usize {
        (self.hasher.hash_one(k) >> (u64::BITS - SHARDS.trailing_zeros())) as usize
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.shards[self.shard(k)].get(k)
    }

    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.shards[self.shard(k)].contains_key(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        let i = self.shard(&k);
        let old = self.shards[i].insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.shard(k);
        let old = self.shards[i].remove(k);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.shards.iter_mut().for_each(HashMap::clear);
        self.len = 0;
    }

    /// Room for about `n` more entries in all (hashes spread evenly over the shards).
    pub(crate) fn reserve(&mut self, n: usize) {
        let each = n.div_ceil(SHARDS);
        self.shards.iter_mut().for_each(|s| s.reserve(each));
    }
}

impl<K, V> IntoIterator for ShardedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<HashMap<K, V>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.shards.into_vec().into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of inserts and removes leaves it as a plain `HashMap` would be.
        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec((any::<bool>(), 0u16..300, any::<u32>()), 0..2000)) {
            let mut sharded = ShardedMap::default();
            let mut plain = std::collections::HashMap::new();
            for (insert, k, v) in ops {
                if insert {
                    prop_assert_eq!(sharded.insert(k, v), plain.insert(k, v));
                } else {
                    prop_assert_eq!(sharded.remove(&k), plain.remove(&k));
                }
                prop_assert_eq!(sharded.len(), plain.len());
            }
            for k in 0u16..300 {
                prop_assert_eq!(sharded.get(&k), plain.get(&k));
                prop_assert_eq!(sharded.contains_key(&k), plain.contains_key(&k));
            }
            let mut cloned = sharded.clone();
            cloned.clear();
            prop_assert_eq!(cloned.len(), 0);
            prop_assert_eq!(sharded.len(), plain.len());
            let mut all: Vec<(u16, u32)> = sharded.into_iter().collect();
            let mut want: Vec<(u16, u32)> = plain.into_iter().collect();
            all.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut m = ShardedMap::default();
        for k in 0..10_000u32 {
            m.insert(k, ());
        }
        assert!(m.shards.iter().all(|s| !s.is_empty()));
        assert!(m.shards.iter().all(|s| s.len() < 10_000 / SHARDS * 2));
    }
}
