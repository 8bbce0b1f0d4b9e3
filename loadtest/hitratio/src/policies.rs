//! Reference policies over dense object ids: Bélády's MIN (the offline
//! optimum) and plain LRU. Both count in slices: the trace's slices are all
//! the same size, so the optimum by count is the optimum by bytes.

use std::collections::BinaryHeap;

/// "Never requested again".
const NEVER: u32 = u32::MAX;

/// For each request, the index of the next request for the same id, or
/// [`NEVER`]. One backward pass.
pub(crate) fn next_uses(trace: &[u32], distinct: usize) -> Vec<u32> {
    assert!(trace.len() < NEVER as usize, "trace too long for u32 indices");
    let mut last = vec![NEVER; distinct];
    let mut next = vec![NEVER; trace.len()];
    for (i, &id) in trace.iter().enumerate().rev() {
        next[i] = last[id as usize];
        last[id as usize] = i as u32;
    }
    next
}

/// Hits of Bélády's MIN with bypass for a cache of `capacity` slices: on a
/// miss, the cache keeps whichever of the new slice and its resident slices
/// are wanted soonest, dropping the one wanted furthest in the future (which
/// may be the new slice itself: the tier may decline too, so this is the
/// optimum it is measured against).
///
/// Residents sit in a max-heap keyed by their next use, with lazy deletion:
/// when a resident is hit, its new next use is pushed and the old entry,
/// whose next use is now in the past, is skipped when it surfaces. Next uses
/// are request indices, so each is unique and "in the past" means stale.
pub(crate) fn belady_hits(trace: &[u32], next: &[u32], distinct: usize, capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let mut resident = vec![false; distinct];
    let mut len = 0usize;
    let mut heap: BinaryHeap<(u32, u32)> = BinaryHeap::with_capacity(capacity * 2 + 1024);
    let mut hits = 0u64;
    for (i, (&id, &nu)) in trace.iter().zip(next).enumerate() {
        let now = i as u32;
        if resident[id as usize] {
            hits += 1;
            if nu == NEVER {
                // Never wanted again: the best slice to drop, and dropping it
                // now is as good as later.
                resident[id as usize] = false;
                len -= 1;
            } else {
                heap.push((nu, id));
            }
        } else if nu != NEVER {
            if len < capacity {
                resident[id as usize] = true;
                len += 1;
                heap.push((nu, id));
            } else {
                // Skip stale entries to find the resident wanted furthest off.
                while heap.peek().is_some_and(|&(top, top_id)| top <= now || !resident[top_id as usize]) {
                    heap.pop();
                }
                if let Some(&(far, far_id)) = heap.peek()
                    && far > nu
                {
                    heap.pop();
                    resident[far_id as usize] = false;
                    resident[id as usize] = true;
                    heap.push((nu, id));
                }
            }
        }
        // Stale entries sink (their keys are small): compact now and then so
        // the heap stays near the cache's size.
        if heap.len() > capacity * 4 + 4096 {
            heap.retain(|&(n, id)| n > now && resident[id as usize]);
        }
    }
    hits
}

/// Hits of LRU holding `capacity` slices (every miss is inserted).
pub(crate) fn lru_hits(trace: &[u32], distinct: usize, capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    // An intrusive doubly linked list over ids; `distinct` is the sentinel:
    // its `next` is the most recent, its `prev` the least recent.
    let head = distinct;
    let mut prev = vec![NEVER; distinct + 1];
    let mut next = vec![NEVER; distinct + 1];
    prev[head] = head as u32;
    next[head] = head as u32;
    let mut len = 0usize;
    let mut hits = 0u64;
    for &id in trace {
        let id = id as usize;
        if prev[id] != NEVER {
            hits += 1;
            let (p, n) = (prev[id] as usize, next[id] as usize);
            next[p] = n as u32;
            prev[n] = p as u32;
        } else if len == capacity {
            let lru = prev[head] as usize;
            let p = prev[lru] as usize;
            next[p] = head as u32;
            prev[head] = p as u32;
            prev[lru] = NEVER;
            next[lru] = NEVER;
        } else {
            len += 1;
        }
        let first = next[head] as usize;
        next[id] = first as u32;
        prev[id] = head as u32;
        prev[first] = id as u32;
        next[head] = id as u32;
    }
    hits
}

/// LRU over dense ids, driven call by call (for the disk-tier replay).
#[derive(Debug)]
pub(crate) struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    head: usize,
    len: usize,
    capacity: usize,
}

impl Lru {
    pub(crate) fn new(distinct: usize, capacity: usize) -> Self {
        let head = distinct;
        let mut prev = vec![NEVER; distinct + 1];
        let mut next = vec![NEVER; distinct + 1];
        prev[head] = head as u32;
        next[head] = head as u32;
        Self { prev, next, head, len: 0, capacity: capacity.max(1) }
    }

    /// A hit moves `id` to the front.
    pub(crate) fn get(&mut self, id: u32) -> bool {
        let id = id as usize;
        if self.prev[id] == NEVER {
            return false;
        }
        self.unlink(id);
        self.push_front(id);
        true
    }

    /// Insert a missing `id`, dropping the least recent if full.
    pub(crate) fn insert(&mut self, id: u32) {
        let id = id as usize;
        if self.prev[id] != NEVER {
            return;
        }
        if self.len == self.capacity {
            let lru = self.prev[self.head] as usize;
            self.unlink(lru);
            self.prev[lru] = NEVER;
            self.next[lru] = NEVER;
        } else {
            self.len += 1;
        }
        self.push_front(id);
    }

    fn unlink(&mut self, id: usize) {
        let (p, n) = (self.prev[id] as usize, self.next[id] as usize);
        self.next[p] = n as u32;
        self.prev[n] = p as u32;
    }

    fn push_front(&mut self, id: usize) {
        let first = self.next[self.head] as usize;
        self.next[id] = first as u32;
        self.prev[id] = self.head as u32;
        self.prev[first] = id as u32;
        self.next[self.head] = id as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MIN by brute force: at each miss with a full cache, drop the resident
    /// (or the newcomer) wanted furthest in the future.
    fn brute_min(trace: &[u32], capacity: usize) -> u64 {
        let next_use = |from: usize, id: u32| {
            trace[from + 1..].iter().position(|&x| x == id).map_or(usize::MAX, |p| from + 1 + p)
        };
        let mut cache: Vec<u32> = Vec::new();
        let mut hits = 0;
        for (i, &id) in trace.iter().enumerate() {
            if cache.contains(&id) {
                hits += 1;
                continue;
            }
            if cache.len() < capacity {
                cache.push(id);
                continue;
            }
            let (far_pos, far) = cache
                .iter()
                .enumerate()
                .map(|(pos, &c)| (pos, next_use(i, c)))
                .max_by_key(|&(_, n)| n)
                .unwrap();
            if far > next_use(i, id) {
                cache[far_pos] = id;
            }
        }
        hits
    }

    #[test]
    fn belady_matches_brute_force() {
        for seed in 0..20 {
            let trace = crate::trace::zipf_trace(30, 400, 0.9, seed, 2);
            let next = next_uses(&trace, 30);
            for capacity in [1, 2, 5, 10, 29, 30] {
                assert_eq!(
                    belady_hits(&trace, &next, 30, capacity),
                    brute_min(&trace, capacity),
                    "seed {seed} capacity {capacity}"
                );
            }
        }
    }

    #[test]
    fn lru_on_a_known_trace() {
        // Capacity 2: a b a c b a → hits only on the second a.
        assert_eq!(lru_hits(&[0, 1, 0, 2, 1, 0], 3, 2), 1);
        // Capacity 3 holds everything: 3 hits.
        assert_eq!(lru_hits(&[0, 1, 0, 2, 1, 0], 3, 3), 3);
        // A loop one larger than the cache never hits under LRU.
        let trace: Vec<u32> = (0..100).map(|i| i % 4).collect();
        assert_eq!(lru_hits(&trace, 4, 3), 0);
    }

    #[test]
    fn the_call_by_call_lru_agrees_with_the_replay() {
        let trace = crate::trace::zipf_trace(500, 20_000, 0.9, 4, 1);
        for capacity in [1, 7, 100] {
            let mut lru = Lru::new(500, capacity);
            let hits = trace
                .iter()
                .filter(|&&id| {
                    lru.get(id) || {
                        lru.insert(id);
                        false
                    }
                })
                .count();
            assert_eq!(hits as u64, lru_hits(&trace, 500, capacity), "capacity {capacity}");
        }
    }

    #[test]
    fn belady_never_worse_than_lru() {
        let trace = crate::trace::zipf_trace(1000, 50_000, 0.8, 3, 1);
        let next = next_uses(&trace, 1000);
        for capacity in [1, 10, 100] {
            assert!(belady_hits(&trace, &next, 1000, capacity) >= lru_hits(&trace, 1000, capacity));
        }
    }
}
