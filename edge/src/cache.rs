//! The memory tier: objects cut into fixed-size slices, cached in moka by
//! (file id, slice index), filled from upstream on a miss.
//!
//! A range request costs the origin only the slices that cover it, never the
//! whole object. Concurrent misses of one slice make one upstream request
//! (moka's entry API runs one initialiser per key; the others wait for it).
//! Objects are immutable and content-addressed, so a cached slice is right
//! forever and nothing is ever revalidated.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cadenza_config::ids::FileId;
use cadenza_origin::{Store, audio_path};
use moka::future::Cache;
use object_store::ObjectStoreExt as _;

use crate::metrics::Metrics;

/// Why a fill failed. Cloned to every waiter of a coalesced fill.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("object not found upstream")]
    NotFound,
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream failed: {0}")]
    Failed(String),
    #[error("upstream returned {got} bytes for a {expected}-byte slice")]
    Short { expected: u64, got: u64 },
}

/// How a slice was obtained, for `X-Cache` and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Already in memory.
    Hit,
    /// This request fetched it.
    Miss,
    /// Another request was fetching it; this one waited for that fetch.
    Coalesced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SliceKey {
    file: FileId,
    index: u64,
}

/// Lengths of objects we have seen: 8 bytes each, so many fit.
const LENGTH_ENTRIES: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub(crate) struct SliceCache {
    slices: Cache<SliceKey, Bytes>,
    lengths: Cache<FileId, u64>,
    slice_size: u64,
    store: Store,
    timeout: Duration,
    metrics: Metrics,
}

impl SliceCache {
    pub(crate) fn new(
        store: Store,
        memory_bytes: u64,
        slice_size: u64,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        let slices = Cache::builder()
            .max_capacity(memory_bytes)
            .weigher(|_k: &SliceKey, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .build();
        Self { slices, lengths: Cache::new(LENGTH_ENTRIES), slice_size, store, timeout, metrics }
    }

    pub(crate) fn slice_size(&self) -> u64 {
        self.slice_size
    }

    /// The object's length (one upstream HEAD the first time).
    pub(crate) async fn len(&self, file: FileId) -> Result<u64, FetchError> {
        if let Some(n) = self.lengths.get(&file).await {
            return Ok(n);
        }
        let entry = self
            .lengths
            .entry(file)
            .or_try_insert_with(async {
                let head = self.upstream("head", self.store.head(&audio_path(&file))).await?;
                Ok::<_, FetchError>(head.size)
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok(entry.into_value())
    }

    /// The bytes of slice `index` of `file` (whose length is `len`).
    pub(crate) async fn slice(
        &self,
        file: FileId,
        index: u64,
        len: u64,
    ) -> Result<(Bytes, Source), FetchError> {
        let key = SliceKey { file, index };
        if let Some(bytes) = self.slices.get(&key).await {
            self.metrics.slice_hits.inc();
            return Ok((bytes, Source::Hit));
        }
        let range = self.slice_range(index, len);
        let entry = self
            .slices
            .entry(key)
            .or_try_insert_with(self.fetch(file, range))
            .await
            .map_err(|e| (*e).clone())?;
        let source = if entry.is_fresh() { Source::Miss } else { Source::Coalesced };
        match source {
            Source::Miss => self.metrics.slice_misses.inc(),
            _ => self.metrics.slice_coalesced.inc(),
        }
        Ok((entry.into_value(), source))
    }

    /// Byte range of slice `index` in an object of `len` bytes.
    pub(crate) fn slice_range(&self, index: u64, len: u64) -> Range<u64> {
        let start = index.saturating_mul(self.slice_size).min(len);
        start..start.saturating_add(self.slice_size).min(len)
    }

    async fn fetch(&self, file: FileId, range: Range<u64>) -> Result<Bytes, FetchError> {
        let expected = range.end - range.start;
        let bytes = self.upstream("range", self.store.get_range(&audio_path(&file), range)).await?;
        self.metrics.origin_bytes.inc_by(bytes.len() as u64);
        if bytes.len() as u64 != expected {
            // Never cache a short read: it would be wrong forever.
            return Err(FetchError::Short { expected, got: bytes.len() as u64 });
        }
        Ok(bytes)
    }

    async fn upstream<T>(
        &self,
        kind: &'static str,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, FetchError> {
        let result = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(FetchError::Timeout(self.timeout)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(object_store::Error::NotFound { .. })) => Err(FetchError::NotFound),
            Ok(Err(e)) => Err(FetchError::Failed(e.to_string())),
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(FetchError::NotFound) => "not_found",
            Err(FetchError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.metrics.origin_requests.with_label_values(&[kind, label]).inc();
        result
    }

    /// Refresh the size gauges (called on each metrics scrape). moka counts
    /// lazily, so settle its pending bookkeeping first.
    pub(crate) async fn update_gauges(&self) {
        self.slices.run_pending_tasks().await;
        self.metrics.memory_bytes.set(i64::try_from(self.slices.weighted_size()).unwrap_or(i64::MAX));
        self.metrics.memory_entries.set(i64::try_from(self.slices.entry_count()).unwrap_or(i64::MAX));
    }
}

/// Shared handle.
pub(crate) type SharedCache = Arc<SliceCache>;
