//! The memory tier: whole slices, keyed by (file id, slice index), bounded
//! by a byte budget.
//!
//! This is the one type the edge and the hit-ratio trace tool
//! (`loadtest/hitratio`) both drive, so the ratio measured offline is the
//! ratio the edge gets. Objects are immutable and content-addressed: an
//! entry is right forever, and the only question is which entries to keep.
//!
//! # Policy: W-TinyLFU
//!
//! The policy is Caffeine's W-TinyLFU, written here rather than taken from
//! moka: moka 0.12 offers TinyLFU without an admission window, or LRU, and
//! neither reaches the target on the Zipf traces of
//! `loadtest/hit-ratio.sh` (10 M requests over 1 M slices, cache of 1 % of
//! the slices, hit ratio as a share of Bélády's optimum; target 80 % at
//! α = 0.8 and 92 % at α = 1.0):
//!
//! | policy | α = 0.8 | α = 1.0 |
//! |---|---|---|
//! | LRU | 53.7 % | 81.4 % |
//! | moka 0.12 default (TinyLFU) | 63.7 % | 86.4 % |
//! | this W-TinyLFU | 80.3 % | 93.3 % |
//!
//! (No online policy can do much better on such a trace: always holding
//! the truly most popular slices would score 83.9 % and 94.6 %.)
//!
//! - A **window**, an LRU of 1 % of the budget, takes every new slice, so a
//!   slice that is requested again soon after its first fill is kept even if
//!   it has no history.
//! - The **main** space, 99 % of the budget, is a segmented LRU: a slice
//!   leaving the window enters *probation*; a hit there promotes it to
//!   *protected* (80 % of main), whose overflow is demoted back to probation.
//! - **Admission**: a slice leaving the window when main is full competes
//!   with probation's least recently used slice; the one with the higher
//!   estimated frequency stays. Ties go to the resident (a one-hit wonder
//!   never displaces anything), except that a warm candidate wins a tie one
//!   time in 128 so that colliding keys cannot pin the cache.
//! - **Frequency** is estimated by a count-min sketch of 4-bit counters
//!   (four rows, four 64-bit words per slice the budget holds), all halved
//!   after twenty increments per slice, so popularity ages. Every hit and
//!   every insert counts once.
//! - Nothing is deferred: each call applies its own bookkeeping, so
//!   `run_pending_tasks` has nothing to do.
//!
//! Weights are bytes (`Bytes::len`): the last slice of an object is shorter
//! than the others, and a slice leaving the window may need to displace
//! several victims, competing with each in turn. After every insert the tier
//! holds at most its budget; a slice larger than the whole budget is not
//! kept.
//!
//! Concurrency: the budget is split into up to 16 shards of at least
//! 64 MiB, each a W-TinyLFU behind its own mutex, held for a hash lookup and
//! a few pointer swaps (no I/O; the API is sync, so never across an await;
//! evicted slices are freed after the lock is released). A key always maps
//! to the same shard. Sharding costs nothing measurable in hit ratio at
//! these sizes. Measured with `cadenza-hitratio --throughput` (2 cores,
//! every miss followed by an insert): about 2.5 M requests/s at α = 0.8 and
//! 3.2 M/s at α = 1.0 on one thread, the same or a little more on two, where
//! moka managed 0.8 and 1.2 M/s. The edge makes one lookup per slice a
//! response touches, so even 100 Gbit/s of 256 KiB slices is ~50 k/s.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use cadenza_config::ids::FileId;

/// One slice of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceKey {
    pub file: FileId,
    pub index: u64,
}

/// What a tier holds per slice: the bytes themselves (the memory tier) or
/// a note of where they are (the disk tier's index). The policy weighs
/// entries in bytes of audio.
pub trait Entry: Clone + Default {
    /// Bytes of audio this entry stands for.
    fn weight(&self) -> u64;
}

impl Entry for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

/// A W-TinyLFU tier over entries `V`. Cheap to clone (a handle).
pub struct Tier<V> {
    /// Independent policies, each with an equal share of the budget; a key
    /// always goes to the same one.
    shards: Arc<[Mutex<Policy<V>>]>,
    hasher: RandomState,
}

impl<V> Clone for Tier<V> {
    fn clone(&self) -> Self {
        Self { shards: self.shards.clone(), hasher: self.hasher.clone() }
    }
}

/// The memory tier: whole slices.
pub type MemoryTier = Tier<Bytes>;

impl<V: Entry> fmt::Debug for Tier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTier")
            .field("shards", &self.shards.len())
            .field("weighted_size", &self.weighted_size())
            .field("entry_count", &self.entry_count())
            .field("evictions", &self.evictions())
            .finish()
    }
}

impl<V: Entry> Tier<V> {
    /// A tier holding at most `capacity` bytes of slices.
    pub fn new(capacity: u64) -> Self {
        let count = shard_count(capacity);
        let shards = (0..count).map(|_| Mutex::new(Policy::new(capacity / count as u64))).collect();
        Self { shards, hasher: RandomState::new() }
    }

    /// The slice, if it is held (counts as an access for the policy).
    pub fn get(&self, key: &SliceKey) -> Option<V> {
        self.shard(self.hash(key)).get(key)
    }

    /// Whether the slice is held, without counting an access (the policy
    /// does not see it).
    pub fn contains(&self, key: &SliceKey) -> bool {
        self.shard(self.hash(key)).map.contains_key(key)
    }

    /// Offer a freshly filled slice; the policy may decline to keep it.
    /// Returns what it let go to stay within the budget — possibly this
    /// very slice — released after the lock is (a replaced entry of the
    /// same key is not among them).
    pub fn insert(&self, key: SliceKey, value: V) -> Vec<(SliceKey, V)> {
        let hash = self.hash(&key);
        self.shard(hash).insert(key, hash, value)
    }

    /// Drop one slice, if held (not counted as an eviction).
    pub fn remove(&self, key: &SliceKey) -> Option<V> {
        let mut policy = self.shard(self.hash(key));
        let idx = *policy.map.get(key)?;
        let mut dropped = Vec::new();
        policy.unlink(idx);
        policy.forget(idx, &mut dropped);
        dropped.pop().map(|(_, v)| v)
    }

    /// Drop every slice of the `files` (a purge: takedowns, bad encodes).
    /// Not counted as evictions. Returns, per file that had any, the slices
    /// and bytes dropped.
    ///
    /// One walk over every shard's index however many files are named:
    /// O(slices held), for an operator's occasional purge, so the hot path
    /// keeps no per-file index.
    pub fn remove_files(&self, files: &HashSet<FileId>) -> HashMap<FileId, (u64, u64)> {
        let mut removed: HashMap<FileId, (u64, u64)> = HashMap::new();
        for (key, value) in self.take_files(files) {
            let count = removed.entry(key.file).or_default();
            count.0 += 1;
            count.1 += value.weight();
        }
        removed
    }

    /// Drop every slice of the `files` and hand them back (the disk tier
    /// deletes their files). One walk over every shard's index.
    pub fn take_files(&self, files: &HashSet<FileId>) -> Vec<(SliceKey, V)> {
        let mut dropped = Vec::new();
        for shard in self.shards.iter() {
            let mut policy = lock(shard);
            let held: Vec<u32> =
                policy.map.iter().filter(|(k, _)| files.contains(&k.file)).map(|(_, &idx)| idx).collect();
            for idx in held {
                policy.unlink(idx);
                policy.forget(idx, &mut dropped);
            }
        }
        dropped
    }

    /// Settle pending policy bookkeeping. This policy applies everything
    /// synchronously, so there is nothing to settle; kept so callers need
    /// not know which policy they drive.
    pub fn run_pending_tasks(&self) {}

    /// The byte budget.
    pub fn capacity(&self) -> u64 {
        self.sum(|p| p.capacity)
    }

    /// Bytes held.
    pub fn weighted_size(&self) -> u64 {
        self.sum(|p| p.weighted_size())
    }

    /// Slices held.
    pub fn entry_count(&self) -> u64 {
        self.sum(|p| p.map.len() as u64)
    }

    /// Slices dropped to stay within the byte budget since the tier was
    /// made (displaced residents and window slices refused admission alike).
    pub fn evictions(&self) -> u64 {
        self.sum(|p| p.evictions)
    }

    fn hash(&self, key: &SliceKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Policy<V>> {
        // The top bits pick the shard; the sketch mixes all of them.
        let index = (hash >> 32) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    fn sum(&self, f: impl Fn(&Policy<V>) -> u64) -> u64 {
        self.shards.iter().map(|shard| f(&lock(shard))).sum()
    }
}

fn lock<V>(shard: &Mutex<Policy<V>>) -> MutexGuard<'_, Policy<V>> {
    // The policy never panics between two consistent states on a path that
    // can be reached; if it somehow did, serving from the cache beats taking
    // the edge down.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shards: enough that threads rarely wait for each other, few enough that
/// each holds many slices (the policy's choices get worse as shards get
/// small, and a slice must fit in one shard's share). Up to
/// [`MAX_SHARDS`], with at least [`MIN_SHARD_BYTES`] each; a power of two.
fn shard_count(capacity: u64) -> usize {
    let by_budget = usize::try_from(capacity / MIN_SHARD_BYTES).unwrap_or(usize::MAX);
    let count = by_budget.clamp(1, MAX_SHARDS);
    1 << count.ilog2()
}

/// The most shards.
const MAX_SHARDS: usize = 16;
/// The smallest share of the budget a shard gets (4 of the largest slices,
/// `cache.slice` ≤ 16 MiB; 256 of the default 256 KiB ones).
const MIN_SHARD_BYTES: u64 = 64 << 20;
/// Share of the budget for the admission window.
const WINDOW_PERCENT: u64 = 1;
/// Share of the main space for its protected segment.
const PROTECTED_PERCENT: u64 = 80;
/// Counter words (sixteen 4-bit counters each) per slice the budget holds:
/// four rather than Caffeine's one, so that the many slices seen a few times
/// collide less (32 bytes per 256 KiB slice). Measured: 80.3 % of optimum at
/// α = 0.8 against 78.7 % with one word and a sample of 10.
const SKETCH_WORDS_PER_SLICE: usize = 4;
/// Counters are halved after this many increments per slice the budget
/// holds (Caffeine: 10). Longer memory helps a steady popularity (40: 81.4 %
/// at α = 0.8) but forgets a shift more slowly; 20 adapts as fast as 10 when
/// the whole popularity order is reshuffled every 100 cache sizes of
/// requests (`cadenza-hitratio --phases 10`).
const SKETCH_SAMPLE_PER_SLICE: u64 = 20;
/// The most slices the sketch is sized for ahead of their arrival (1 Mi
/// slices, 32 MiB of counters; 256 GiB of 256 KiB slices); it grows past
/// that only as slices actually arrive.
const MAX_EXPECTED_SLICES: u64 = 1 << 20;
/// The fewest slices the sketch is sized for.
const MIN_SKETCH_SLICES: usize = 64;
/// "No node" in the intrusive lists.
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

#[derive(Debug)]
struct Node<V> {
    key: SliceKey,
    value: V,
    hash: u64,
    weight: u64,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
    queue: Queue,
}

/// An intrusive doubly linked list over `Policy::nodes`: head is the most
/// recently used, tail the least.
#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
    weight: u64,
}

impl List {
    const EMPTY: Self = Self { head: NIL, tail: NIL, weight: 0 };
}

#[derive(Debug)]
struct Policy<V> {
    capacity: u64,
    max_window: u64,
    max_protected: u64,
    map: HashMap<SliceKey, u32, RandomState>,
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    lists: [List; 3],
    sketch: Sketch,
    /// The largest slice offered so far, for sizing the sketch.
    max_weight: u64,
    evictions: u64,
    /// xorshift state for the 1-in-128 tie break.
    random: u64,
}

impl<V: Entry> Policy<V> {
    fn new(capacity: u64) -> Self {
        let max_window = capacity * WINDOW_PERCENT / 100;
        let max_protected = (capacity - max_window) / 100 * PROTECTED_PERCENT;
        let map: HashMap<SliceKey, u32, RandomState> = HashMap::default();
        // Seeded from the map's random keys: a different stream per shard.
        let random = map.hasher().hash_one(0x5eed_u64) | 1;
        Self {
            capacity,
            max_window,
            max_protected,
            map,
            nodes: Vec::new(),
            free: Vec::new(),
            lists: [List::EMPTY; 3],
            sketch: Sketch::new(MIN_SKETCH_SLICES),
            max_weight: 0,
            evictions: 0,
            random,
        }
    }

    fn weighted_size(&self) -> u64 {
        self.lists.iter().map(|l| l.weight).sum()
    }

    fn get(&mut self, key: &SliceKey) -> Option<V> {
        let idx = *self.map.get(key)?;
        let hash = self.nodes[idx as usize].hash;
        self.sketch.increment(hash);
        self.touch(idx);
        Some(self.nodes[idx as usize].value.clone())
    }

    /// Returns what was let go, for the caller to drop outside the lock.
    fn insert(&mut self, key: SliceKey, hash: u64, value: V) -> Vec<(SliceKey, V)> {
        let weight = value.weight();
        let mut dropped = Vec::new();
        if let Some(&idx) = self.map.get(&key) {
            // A second fill of a held slice (two fills raced): same bytes,
            // as objects are immutable; keep the newer and count the access.
            let node = &mut self.nodes[idx as usize];
            let old_weight = std::mem::replace(&mut node.weight, weight);
            // Same key, same bytes: the old entry is simply replaced.
            node.value = value;
            let (hash, queue) = (node.hash, node.queue);
            let list = &mut self.lists[queue as usize];
            list.weight = list.weight - old_weight + weight;
            if weight > self.capacity {
                self.remove(idx, &mut dropped);
                return dropped;
            }
            self.sketch.increment(hash);
            self.touch(idx);
            self.fit(&mut dropped);
            return dropped;
        }
        if weight > self.capacity {
            dropped.push((key, value));
            return dropped;
        }
        self.max_weight = self.max_weight.max(weight);
        self.size_sketch(self.map.len());
        self.sketch.increment(hash);
        let node = Node { key, value, hash, weight, prev: NIL, next: NIL, queue: Queue::Window };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.nodes[idx as usize] = node;
                idx
            }
            None => {
                let idx = u32::try_from(self.nodes.len()).expect("fewer than 2^32 slices in memory");
                self.nodes.push(node);
                idx
            }
        };
        self.map.insert(key, idx);
        self.push_front(Queue::Window, idx);
        self.fit(&mut dropped);
        dropped
    }

    /// Size the sketch for the slices the budget will hold: as many as fit
    /// if all weigh as much as the largest seen so far (the edge's slices
    /// are one size but for each object's last, and a player's first request
    /// is often for that last one), and at least the `held` ones (before
    /// this insert: a full tier holds one more only until `fit`). Resizing
    /// restarts the counts, so it happens only when the estimate doubles or
    /// halves: in practice during the first few fills, and if slices turn
    /// out smaller than the largest.
    fn size_sketch(&mut self, held: usize) {
        let fit = self.capacity / self.max_weight.max(1);
        let expected = usize::try_from(fit.min(MAX_EXPECTED_SLICES))
            .unwrap_or(usize::MAX)
            .max(held)
            .max(MIN_SKETCH_SLICES);
        let sized = self.sketch.entries();
        if expected > sized {
            self.sketch = Sketch::new(expected.max(sized * 2));
        } else if expected * 2 <= sized {
            self.sketch = Sketch::new(expected);
        }
    }

    /// A hit: move the slice up its queue.
    fn touch(&mut self, idx: u32) {
        match self.nodes[idx as usize].queue {
            Queue::Window => {
                self.unlink(idx);
                self.push_front(Queue::Window, idx);
            }
            Queue::Probation => {
                self.unlink(idx);
                self.push_front(Queue::Protected, idx);
                // Protected overflow goes back to probation, most recent end.
                while self.lists[Queue::Protected as usize].weight > self.max_protected {
                    let tail = self.lists[Queue::Protected as usize].tail;
                    if tail == idx {
                        break;
                    }
                    self.unlink(tail);
                    self.push_front(Queue::Probation, tail);
                }
            }
            Queue::Protected => {
                self.unlink(idx);
                self.push_front(Queue::Protected, idx);
            }
        }
    }

    /// Bring the tier back within its budget after an insert.
    fn fit(&mut self, dropped: &mut Vec<(SliceKey, V)>) {
        // Slices beyond the window's share leave it, oldest first, and must
        // earn a place in main. The newest slice always stays in the window,
        // so a budget whose 1 % is less than a slice still has a window of one.
        loop {
            let window = self.lists[Queue::Window as usize];
            if window.weight <= self.max_window || window.head == window.tail {
                break;
            }
            let candidate = window.tail;
            self.unlink(candidate);
            self.admit(candidate, dropped);
        }
        // Whatever still does not fit (the newest slice is over the window's
        // share, or a replacement grew): drop from main's cold end.
        while self.weighted_size() > self.capacity {
            let victim = self.coldest();
            if victim == NIL {
                break;
            }
            self.remove(victim, dropped);
        }
    }

    /// `candidate` has left the window (unlinked): place it in probation if
    /// it fits, or if it wins against main's coldest slices, one at a time.
    fn admit(&mut self, candidate: u32, dropped: &mut Vec<(SliceKey, V)>) {
        let weight = self.nodes[candidate as usize].weight;
        let freq = self.sketch.frequency(self.nodes[candidate as usize].hash);
        loop {
            if self.weighted_size() + weight <= self.capacity {
                self.push_front(Queue::Probation, candidate);
                return;
            }
            let victim = self.main_victim();
            if victim == NIL {
                break;
            }
            let victim_freq = self.sketch.frequency(self.nodes[victim as usize].hash);
            if freq > victim_freq || (freq >= 6 && self.one_in_128()) {
                self.remove(victim, dropped);
            } else {
                break;
            }
        }
        // Refused: it was held (in the window), so this is an eviction.
        self.evictions += 1;
        self.forget(candidate, dropped);
    }

    /// Main's least valuable slice: probation's oldest, else protected's.
    fn main_victim(&self) -> u32 {
        let probation = self.lists[Queue::Probation as usize].tail;
        if probation != NIL { probation } else { self.lists[Queue::Protected as usize].tail }
    }

    /// The slice to drop without a contest: main's victim, else the
    /// window's oldest.
    fn coldest(&self) -> u32 {
        let victim = self.main_victim();
        if victim != NIL { victim } else { self.lists[Queue::Window as usize].tail }
    }

    fn one_in_128(&mut self) -> bool {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x & 127 == 0
    }

    /// Evict a linked slice.
    fn remove(&mut self, idx: u32, dropped: &mut Vec<(SliceKey, V)>) {
        self.unlink(idx);
        self.evictions += 1;
        self.forget(idx, dropped);
    }

    /// Free an unlinked node.
    fn forget(&mut self, idx: u32, dropped: &mut Vec<(SliceKey, V)>) {
        let node = &mut self.nodes[idx as usize];
        dropped.push((node.key, std::mem::take(&mut node.value)));
        self.map.remove(&node.key);
        self.free.push(idx);
    }

    fn unlink(&mut self, idx: u32) {
        let Node { prev, next, queue, weight, .. } = self.nodes[idx as usize];
        let list = &mut self.lists[queue as usize];
        if prev == NIL {
            list.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        list.weight -= weight;
    }

    fn push_front(&mut self, queue: Queue, idx: u32) {
        let list = &mut self.lists[queue as usize];
        let old_head = list.head;
        list.head = idx;
        if old_head == NIL {
            list.tail = idx;
        } else {
            self.nodes[old_head as usize].prev = idx;
        }
        list.weight += self.nodes[idx as usize].weight;
        let node = &mut self.nodes[idx as usize];
        node.prev = NIL;
        node.next = old_head;
        node.queue = queue;
    }
}

/// A count-min sketch of 4-bit counters: each 64-bit word holds sixteen;
/// a key uses one counter in each of four words (Caffeine's layout).
#[derive(Debug)]
struct Sketch {
    table: Vec<u64>,
    /// Increments since the last halving, and how many trigger the next.
    additions: u64,
    sample: u64,
    entries: usize,
}

const SEEDS: [u64; 4] =
    [0xc3a5_c85c_97cb_3127, 0xb492_b66f_be98_f273, 0x9ae1_6a3b_2f90_404f, 0xcbf2_9ce4_8422_2325];

impl Sketch {
    /// A sketch for about `entries` slices.
    fn new(entries: usize) -> Self {
        Self {
            table: vec![0; (entries * SKETCH_WORDS_PER_SLICE).next_power_of_two()],
            additions: 0,
            sample: SKETCH_SAMPLE_PER_SLICE * entries as u64,
            entries,
        }
    }

    /// How many slices it is sized for.
    fn entries(&self) -> usize {
        self.entries
    }

    /// The word and bit offset of `key`'s counter in row `row`.
    fn slot(&self, hash: u64, row: usize) -> (usize, u32) {
        let mut x = hash.wrapping_add(SEEDS[row]).wrapping_mul(SEEDS[row]);
        x = x.wrapping_add(x >> 32);
        let offset = (((hash & 3) << 2) as u32 + row as u32) << 2;
        (x as usize & (self.table.len() - 1), offset)
    }

    fn frequency(&self, hash: u64) -> u64 {
        (0..4)
            .map(|row| {
                let (word, offset) = self.slot(hash, row);
                (self.table[word] >> offset) & 0xf
            })
            .min()
            .unwrap_or(0)
    }

    fn increment(&mut self, hash: u64) {
        let mut added = false;
        for row in 0..4 {
            let (word, offset) = self.slot(hash, row);
            let mask = 0xf << offset;
            if self.table[word] & mask != mask {
                self.table[word] += 1 << offset;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample {
                self.age();
            }
        }
    }

    /// Halve every counter.
    fn age(&mut self) {
        let mut odd = 0u64;
        for word in &mut self.table {
            odd += u64::from((*word & 0x1111_1111_1111_1111).count_ones());
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions = (self.additions - odd / 4) / 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> SliceKey {
        SliceKey { file: FileId::of_content(&(n / 16).to_le_bytes()), index: n % 16 }
    }

    fn slice(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    /// Lists, weights and map agree, in every shard.
    fn check(tier: &MemoryTier) {
        for shard in tier.shards.iter() {
            let p = lock(shard);
            let mut count = 0;
            for (q, list) in p.lists.iter().enumerate() {
                let (mut weight, mut idx, mut prev) = (0, list.head, NIL);
                while idx != NIL {
                    let node = &p.nodes[idx as usize];
                    assert_eq!(node.queue as usize, q);
                    assert_eq!(node.prev, prev);
                    assert_eq!(p.map[&node.key], idx);
                    weight += node.weight;
                    count += 1;
                    (prev, idx) = (idx, node.next);
                }
                assert_eq!(list.tail, prev);
                assert_eq!(list.weight, weight);
            }
            assert_eq!(count, p.map.len());
            assert!(p.weighted_size() <= p.capacity, "{} > {}", p.weighted_size(), p.capacity);
        }
    }

    /// The policy of a tier small enough to have one shard.
    fn only(tier: &MemoryTier) -> MutexGuard<'_, Policy<Bytes>> {
        assert_eq!(tier.shards.len(), 1);
        lock(&tier.shards[0])
    }

    #[test]
    fn remove_file_drops_every_slice_of_that_file_only() {
        let tier = MemoryTier::new(256 << 20);
        // Files 0 and 1, 16 slices each (keys 0..32), spread over shards.
        for n in 0..32 {
            tier.insert(key(n), slice(1000));
        }
        check(&tier);
        let held = tier.entry_count();
        let evictions = tier.evictions();
        let file0 = key(0).file;
        let unknown = FileId::of_content(b"never held");
        let removed = tier.remove_files(&HashSet::from([file0, unknown]));
        assert_eq!(removed, HashMap::from([(file0, (16, 16_000))]));
        check(&tier);
        assert_eq!(tier.entry_count(), held - 16);
        assert!((0..16).all(|n| !tier.contains(&key(n))));
        assert!((16..32).all(|n| tier.contains(&key(n))), "the other file is untouched");
        assert_eq!(tier.evictions(), evictions, "a purge is not an eviction");
        assert!(tier.remove_files(&HashSet::from([file0])).is_empty());
        // The freed nodes are reused.
        tier.insert(key(3), slice(1000));
        check(&tier);
        assert!(tier.contains(&key(3)));
    }

    #[test]
    fn get_after_insert() {
        let tier = MemoryTier::new(1 << 20);
        assert_eq!(tier.get(&key(1)), None);
        tier.insert(key(1), Bytes::from_static(b"slice one"));
        assert_eq!(tier.get(&key(1)).as_deref(), Some(&b"slice one"[..]));
        assert_eq!(tier.get(&key(2)), None);
        assert!(tier.contains(&key(1)) && !tier.contains(&key(2)));
        assert_eq!((tier.entry_count(), tier.weighted_size(), tier.evictions()), (1, 9, 0));
        tier.insert(key(1), Bytes::from_static(b"slice one!"));
        assert_eq!((tier.entry_count(), tier.weighted_size()), (1, 10));
        check(&tier);
    }

    #[test]
    fn budget_holds_with_uneven_weights() {
        // 64 KiB slices with a short last slice per object, a budget of ten
        // and a half slices: never over, whatever is inserted or hit.
        let budget = 10 * 65_536 + 32_768;
        let tier = MemoryTier::new(budget);
        let mut rng = 1u64;
        let mut inserted = 0u64;
        for i in 0..20_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = rng % 200;
            let len = if n % 16 == 15 { 1 + (rng >> 32) as usize % 65_536 } else { 65_536 };
            if tier.get(&key(n)).is_none() {
                tier.insert(key(n), slice(len));
                inserted += 1;
            }
            assert!(tier.weighted_size() <= budget, "step {i}: {} > {budget}", tier.weighted_size());
            if i % 1000 == 0 {
                check(&tier);
            }
        }
        check(&tier);
        assert!(tier.entry_count() >= 10);
        assert_eq!(tier.evictions(), inserted - tier.entry_count());
    }

    #[test]
    fn too_big_is_declined_and_small_budgets_keep_the_newest() {
        let tier = MemoryTier::new(100);
        tier.insert(key(1), slice(101));
        assert_eq!((tier.entry_count(), tier.evictions()), (0, 0));
        // The window's 1 % is under one slice: the newest slice is held anyway.
        tier.insert(key(1), slice(60));
        tier.insert(key(2), slice(60));
        assert!(tier.get(&key(2)).is_some());
        assert_eq!(tier.weighted_size(), 60);
        assert_eq!(tier.evictions(), 1);
        check(&tier);
    }

    #[test]
    fn evictions_count_what_was_dropped_for_size() {
        let tier = MemoryTier::new(10 * 1000);
        for n in 0..100 {
            tier.insert(key(n), slice(1000));
        }
        assert_eq!(tier.entry_count(), 10);
        assert_eq!(tier.evictions(), 90);
        check(&tier);
    }

    #[test]
    fn frequency_beats_recency_for_a_scan() {
        // 100 hot slices, each hit many times, in a tier of 200; then a scan
        // of 10 000 slices seen once each. LRU would keep only the scan.
        let tier = MemoryTier::new(200 * 1000);
        for _ in 0..20 {
            for n in 0..100 {
                if tier.get(&key(n)).is_none() {
                    tier.insert(key(n), slice(1000));
                }
            }
        }
        for n in 1_000..11_000 {
            if tier.get(&key(n)).is_none() {
                tier.insert(key(n), slice(1000));
            }
        }
        let kept = (0..100).filter(|&n| tier.get(&key(n)).is_some()).count();
        assert!(kept >= 95, "only {kept} of 100 hot slices survived the scan");
        check(&tier);
    }

    #[test]
    fn sketch_sized_by_the_largest_slice() {
        let tier = MemoryTier::new(1000 * 65_536);
        // A player's first request is often for an object's short last slice.
        tier.insert(key(15), slice(100));
        assert_eq!(only(&tier).sketch.entries(), 655_360);
        tier.insert(key(0), slice(65_536));
        assert_eq!(only(&tier).sketch.entries(), 1000);
        tier.insert(key(1), slice(65_536));
        tier.insert(key(14), slice(200));
        assert_eq!(only(&tier).sketch.entries(), 1000);
        // Full, it stays sized for what fits.
        for n in 16..3000 {
            tier.insert(key(n * 16), slice(65_536));
        }
        assert_eq!(tier.entry_count(), 1000);
        assert_eq!(only(&tier).sketch.entries(), 1000);
        // Smaller slices than expected: it grows with them.
        for n in 0..3000 {
            tier.insert(key(n * 16 + 1), slice(1000));
        }
        let held = tier.entry_count() as usize;
        assert!(held > 1000);
        assert!(only(&tier).sketch.entries() >= held);
        // Tiny budgets do not resize on every insert.
        let tier = MemoryTier::new(100);
        tier.insert(key(1), slice(60));
        tier.insert(key(2), slice(60));
        assert_eq!(only(&tier).sketch.entries(), MIN_SKETCH_SLICES);
    }

    #[test]
    fn shards_split_the_budget() {
        assert_eq!(shard_count(1), 1);
        assert_eq!(shard_count(127 << 20), 1);
        assert_eq!(shard_count(256 << 20), 4);
        assert_eq!(shard_count(700 << 20), 8);
        assert_eq!(shard_count(1 << 40), 16);
        let budget = (256 << 20) + 3;
        let tier = MemoryTier::new(budget);
        assert_eq!(tier.shards.len(), 4);
        for n in 0..3000 {
            if tier.get(&key(n)).is_none() {
                tier.insert(key(n), slice(256 << 10));
            }
        }
        check(&tier);
        assert!(tier.weighted_size() <= budget);
        // Full but for what the shards' rounding leaves.
        assert!(tier.entry_count() >= 1020, "{}", tier.entry_count());
        assert_eq!(tier.evictions(), 3000 - tier.entry_count());
        assert!(tier.contains(&key(2999)));
    }

    #[test]
    fn sketch_counts_and_ages() {
        let mut sketch = Sketch::new(1024);
        let h = RandomState::new().hash_one(42u64);
        for _ in 0..20 {
            sketch.increment(h);
        }
        assert_eq!(sketch.frequency(h), 15);
        sketch.age();
        assert_eq!(sketch.frequency(h), 7);
        assert_eq!(sketch.frequency(h ^ 0xdead_beef_0000), 0);
    }

    #[test]
    fn shared_between_threads() {
        let tier = MemoryTier::new(50 * 1000);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let tier = tier.clone();
                s.spawn(move || {
                    for i in 0..5_000u64 {
                        let n = (i * 7 + t) % 300;
                        if tier.get(&key(n)).is_none() {
                            tier.insert(key(n), slice(1000));
                        }
                    }
                });
            }
        });
        check(&tier);
        assert_eq!(tier.entry_count(), 50);
    }
}
