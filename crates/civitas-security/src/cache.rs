//! A small time-bounded cache with a lock-free read path.
//!
//! Entries live in shards; each shard is an immutable map behind an `ArcSwap`, so a read
//! is an atomic load and a hash look-up. An insert copies its shard (misses are rare and
//! shards are small); a shard over capacity first drops expired entries and then, if
//! still full, is cleared — a cache, not a store, so forgetting is always safe.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

const SHARDS: usize = 32;

pub(crate) struct TtlCache<K, V> {
    shards: Vec<ArcSwap<HashMap<K, (V, Instant)>>>,
    hasher: RandomState,
    ttl: Duration,
    shard_capacity: usize,
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// A cache keeping entries at most `ttl` and about `capacity` of them.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> TtlCache<K, V> {
        TtlCache {
            shards: (0..SHARDS).map(|_| ArcSwap::from_pointee(HashMap::new())).collect(),
            hasher: RandomState::new(),
            ttl,
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &K) -> &ArcSwap<HashMap<K, (V, Instant)>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The value for `key` if it is still fresh at `now`.
    pub(crate) fn get(&self, key: &K, now: Instant) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let shard = self.shard(key).load();
        match shard.get(key) {
            Some((v, until)) if *until > now => Some(v.clone()),
            _ => None,
        }
    }

    /// Remembers `value` until `now + ttl`, or until `not_after` if that is sooner.
    pub(crate) fn insert(&self, key: K, value: V, now: Instant, not_after: Option<Instant>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut until = now + self.ttl;
        if let Some(limit) = not_after {
            until = until.min(limit);
        }
        let cap = self.shard_capacity;
        self.shard(&key).rcu(|old| {
            let mut map: HashMap<K, (V, Instant)> = if old.len() >= cap {
                old.iter().filter(|(_, (_, u))| *u > now).map(|(k, v)| (k.clone(), v.clone())).collect()
            } else {
                HashMap::clone(old)
            };
            if map.len() >= cap {
                map.clear();
            }
            map.insert(key.clone(), (value.clone(), until));
            Arc::new(map)
        });
    }

    /// Forgets everything (after a revocation, a key rotation, a policy reload).
    pub(crate) fn clear(&self) {
        for s in &self.shards {
            s.store(Arc::new(HashMap::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let c: TtlCache<u32, u32> = TtlCache::new(Duration::from_secs(2), 64);
        let t0 = Instant::now();
        c.insert(1, 10, t0, None);
        assert_eq!(c.get(&1, t0), Some(10));
        assert_eq!(c.get(&1, t0 + Duration::from_secs(3)), None);
        c.insert(2, 20, t0, Some(t0 + Duration::from_millis(500)));
        assert_eq!(c.get(&2, t0 + Duration::from_secs(1)), None, "not_after caps the ttl");
        for i in 0..10_000 {
            c.insert(i, i, t0, None);
        }
        let total: usize = c.shards.iter().map(|s| s.load().len()).sum();
        assert!(total <= 64 + SHARDS, "{total} entries kept");
        c.clear();
        assert_eq!(c.get(&9_999, t0), None);
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let c: TtlCache<u32, u32> = TtlCache::new(Duration::ZERO, 64);
        c.insert(1, 1, Instant::now(), None);
        assert_eq!(c.get(&1, Instant::now()), None);
    }
}
