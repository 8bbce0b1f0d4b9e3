//! The memory tier: whole slices, keyed by (file id, slice index), bounded
//! by a byte budget.
//!
//! This is the one type the edge and the hit-ratio trace tool
//! (`loadtest/hitratio`) both drive, so the ratio measured offline is the
//! ratio the edge gets. Objects are immutable and content-addressed: an
//! entry is right forever, and the only question is which entries to keep.

use bytes::Bytes;
use cadenza_config::ids::FileId;

/// One slice of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceKey {
    pub file: FileId,
    pub index: u64,
}

/// The memory tier. Cheap to clone (a handle).
#[derive(Clone, Debug)]
pub struct MemoryTier {
    slices: moka::sync::Cache<SliceKey, Bytes>,
}

impl MemoryTier {
    /// A tier holding at most `capacity` bytes of slices.
    pub fn new(capacity: u64) -> Self {
        let slices = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|_k: &SliceKey, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .build();
        Self { slices }
    }

    /// The slice, if it is held (counts as an access for the policy).
    pub fn get(&self, key: &SliceKey) -> Option<Bytes> {
        self.slices.get(key)
    }

    /// Offer a freshly filled slice; the policy may decline to keep it.
    pub fn insert(&self, key: SliceKey, bytes: Bytes) {
        self.slices.insert(key, bytes);
    }

    /// Settle pending policy bookkeeping (moka applies it lazily).
    pub fn run_pending_tasks(&self) {
        self.slices.run_pending_tasks();
    }

    /// Bytes held.
    pub fn weighted_size(&self) -> u64 {
        self.slices.weighted_size()
    }

    /// Slices held.
    pub fn entry_count(&self) -> u64 {
        self.slices.entry_count()
    }
}
