//! The control plane's in-process caches (tokens, track views, playable
//! tracks): bounded, and each entry expires a fixed time after it was
//! stored.
//!
//! Built on `quick_cache` rather than `moka` (which the edge uses for
//! its file lengths). On the stream-URL path two lookups run per request, and
//! moka's were 11 % of the control plane's CPU at 5,000 req/s
//! (`loadtest/README.md`, "Stream URLs: where the time went"): every read
//! is recorded for its eviction policy and housekeeping, and its
//! concurrent hash table probes through pointers. quick_cache takes a
//! shard's read lock and looks the key up in a flat table; its eviction
//! (S3-FIFO) needs no per-read bookkeeping beyond a counter. The TTL is
//! checked on read: an expired entry is a miss and is removed then, or
//! evicted by capacity before.

use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

pub(crate) struct TtlCache<V> {
    entries: Cache<String, (Instant, V)>,
    ttl: Duration,
}

impl<V: Clone> TtlCache<V> {
    /// A cache of at most about `capacity` entries living `ttl`; `None`
    /// when `ttl` is zero (caching off).
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Option<Self> {
        let capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        (!ttl.is_zero()).then(|| Self { entries: Cache::new(capacity), ttl })
    }

    /// The value stored under `key` less than the TTL ago.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let (stored, value) = self.entries.get(key)?;
        if stored.elapsed() < self.ttl {
            return Some(value);
        }
        // Only this expired entry: a fresher one stored meanwhile stays.
        self.entries.remove_if(key, |(at, _)| *at == stored);
        None
    }

    pub(crate) fn insert(&self, key: String, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    /// Forget every entry.
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl_and_clear_empties() {
        assert!(TtlCache::<u32>::new(Duration::ZERO, 10).is_none());
        let cache = TtlCache::new(Duration::from_millis(200), 10).unwrap();
        cache.insert("a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get("a"), None, "expired");
        cache.insert("a".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(2), "stored again after expiry");
        cache.clear();
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn capacity_bounds_the_entries() {
        let cache = TtlCache::new(Duration::from_secs(60), 100).unwrap();
        for i in 0..10_000 {
            cache.insert(format!("k{i}"), i);
        }
        let kept = (0..10_000).filter(|i| cache.get(&format!("k{i}")).is_some()).count();
        assert!(kept > 0 && kept <= 200, "kept {kept}");
    }
}
