//! Slices and fills: objects cut into fixed-size slices, served from the
//! memory tier, filled from upstream on a miss.
//!
//! - A range costs upstream only the slices that cover it, never the whole
//!   object.
//! - **Single flight, read while write.** The first miss of a slice starts
//!   one *fill*: a task of its own that streams the slice from upstream
//!   into a shared buffer. Every request for that slice while the fill runs
//!   — the first one included — reads the buffer as it grows, so each gets
//!   its first byte when upstream sends it, not when the slice completes.
//!   The fill does not belong to any request: a requester that disconnects
//!   does not cancel it, and the waiters never restart it.
//! - A fill that ends short, long, late or failed is never put in the tier;
//!   its readers get the error (the handler turns it into a status before
//!   the headers, or an aborted body after).
//! - Objects are immutable and content-addressed, so a cached slice is right
//!   forever and nothing is revalidated. Lengths are remembered the same
//!   way; a 404 is remembered for `cache.not_found_ttl`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cadenza_config::ids::FileId;
use cadenza_origin::{Store, audio_path};
use futures_util::StreamExt as _;
use moka::future::Cache;
use object_store::{GetOptions, ObjectStoreExt as _};
use tokio::sync::{Notify, Semaphore};

use crate::disk::{DiskRead, DiskTier};
use crate::metrics::Metrics;
use crate::tier::{MemoryTier, SliceKey};

/// Why a fill failed. Cloned to every reader of the fill.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("object not found upstream")]
    NotFound,
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream failed: {0}")]
    Failed(String),
    #[error("upstream sent {got} bytes of a {expected}-byte slice")]
    Short { expected: u64, got: u64 },
    #[error("upstream sent more than the {expected} bytes asked for")]
    Long { expected: u64 },
}

impl FetchError {
    /// Metric label of the upstream result.
    fn label(&self) -> &'static str {
        match self {
            FetchError::NotFound => "not_found",
            FetchError::Timeout(_) => "timeout",
            FetchError::Failed(_) => "error",
            FetchError::Short { .. } => "truncated",
            FetchError::Long { .. } => "oversize",
        }
    }
}

/// How a slice was obtained, for `X-Cache` and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Already in memory.
    Hit,
    /// This request started the fill.
    Miss,
    /// Another request's fill was running; this one reads along.
    Coalesced,
    /// Read (and verified) from the disk tier.
    Disk,
}

impl Source {
    pub(crate) fn x_cache(self) -> &'static str {
        match self {
            Source::Hit => "HIT-MEM",
            Source::Miss => "MISS",
            Source::Coalesced => "COALESCED",
            Source::Disk => "HIT-DISK",
        }
    }
}

/// A slice being read: whole from the tier, chunk by chunk from a fill,
/// or (when only part of it is wanted) that part from the disk tier.
#[derive(Debug)]
pub(crate) enum SliceRead {
    Ready(Bytes),
    Filling(FillReader),
    /// Being read from disk; [`SliceCache::resolve`] turns it into `Part`
    /// (or, if the disk failed it, into a fill from upstream).
    Disk(DiskPart),
    /// Verified bytes from disk, starting at this object offset.
    Part(u64, Bytes),
}

/// Part of a slice to read from the disk tier (when resolved).
#[derive(Debug)]
pub(crate) struct DiskPart {
    key: SliceKey,
    slice_len: u64,
    object_len: u64,
    /// Offsets in the slice.
    part: Range<u64>,
    /// Object offset of the part's first byte.
    start: u64,
}

/// Lengths of objects we have seen: 8 bytes each, so many fit.
const LENGTH_ENTRIES: u64 = 1_000_000;
/// Objects remembered as missing at once.
const MISSING_ENTRIES: u64 = 100_000;

#[derive(Debug)]
pub(crate) struct SliceCache {
    tier: MemoryTier,
    disk: Option<Arc<DiskTier>>,
    lengths: Cache<FileId, u64>,
    /// Objects upstream said it does not have; `None` when not remembered.
    missing: Option<Cache<FileId, ()>>,
    fills: Mutex<HashMap<SliceKey, Arc<Fill>>>,
    slice_size: u64,
    store: Store,
    timeout: Duration,
    /// Upstream requests in flight.
    permits: Semaphore,
    max_concurrent: usize,
    metrics: Metrics,
    /// Held while the gauges are brought up to date.
    gauges: Mutex<()>,
}

/// What a [`SliceCache`] is built from.
#[derive(Debug)]
pub(crate) struct CacheSettings {
    pub(crate) memory_bytes: u64,
    pub(crate) slice_size: u64,
    pub(crate) timeout: Duration,
    pub(crate) max_concurrent: usize,
    pub(crate) not_found_ttl: Duration,
}

impl SliceCache {
    pub(crate) fn new(
        store: Store,
        settings: &CacheSettings,
        disk: Option<Arc<DiskTier>>,
        metrics: Metrics,
    ) -> Self {
        let missing = (!settings.not_found_ttl.is_zero()).then(|| {
            Cache::builder().max_capacity(MISSING_ENTRIES).time_to_live(settings.not_found_ttl).build()
        });
        Self {
            tier: MemoryTier::new(settings.memory_bytes),
            disk,
            lengths: Cache::new(LENGTH_ENTRIES),
            missing,
            fills: Mutex::default(),
            slice_size: settings.slice_size,
            store,
            timeout: settings.timeout,
            permits: Semaphore::new(settings.max_concurrent.max(1)),
            max_concurrent: settings.max_concurrent.max(1),
            metrics,
            gauges: Mutex::default(),
        }
    }

    pub(crate) fn slice_size(&self) -> u64 {
        self.slice_size
    }

    /// The object's length (one upstream HEAD the first time; concurrent
    /// first lookups share it).
    pub(crate) async fn len(&self, file: FileId) -> Result<u64, FetchError> {
        if let Some(n) = self.lengths.get(&file).await {
            return Ok(n);
        }
        if let Some(missing) = &self.missing
            && missing.contains_key(&file)
        {
            self.metrics.negative_hits.inc();
            return Err(FetchError::NotFound);
        }
        // Slices on disk know their object's length: no upstream HEAD.
        if let Some(n) = self.disk.as_ref().and_then(|d| d.object_len(&file)) {
            self.lengths.insert(file, n).await;
            return Ok(n);
        }
        let result = self
            .lengths
            .entry(file)
            .or_try_insert_with(async {
                let head = self
                    .upstream("head", async {
                        let _permit = self.permits.acquire().await.expect("semaphore is never closed");
                        self.store.head(&audio_path(&file)).await.map_err(classify)
                    })
                    .await?;
                Ok::<_, FetchError>(head.size)
            })
            .await;
        match result {
            Ok(entry) => Ok(entry.into_value()),
            Err(e) => {
                if let (FetchError::NotFound, Some(missing)) = (&*e, &self.missing) {
                    missing.insert(file, ()).await;
                }
                Err((*e).clone())
            }
        }
    }

    /// Open slice `index` of `file` (whose length is `len`) for the bytes
    /// of `want` it holds: from memory, by reading along a fill — joining
    /// the running one, or starting it (a fill reads the disk tier before
    /// upstream) — or, when `want` covers only part of the slice and the
    /// disk tier has it, by reading just that part from disk. A part read
    /// from disk is not put in memory: reading the whole slice to send a
    /// piece of it cost 4× for 64 KiB ranges of 256 KiB slices (measured,
    /// `docs/edge.md`); a slice read whole is.
    pub(crate) fn open(
        self: &Arc<Self>,
        file: FileId,
        index: u64,
        len: u64,
        want: &Range<u64>,
    ) -> (SliceRead, Source) {
        let key = SliceKey { file, index };
        if let Some(bytes) = self.tier.get(&key) {
            self.metrics.slice_hits.inc();
            return (SliceRead::Ready(bytes), Source::Hit);
        }
        let mut fills = self.lock_fills();
        if let Some(fill) = fills.get(&key) {
            // A join of a fill that reads the disk is a disk hit; of one
            // that goes upstream, a collapsed miss. Not known yet: counted
            // when it is (the fills lock orders the two).
            match fill.source.load(std::sync::atomic::Ordering::Relaxed) {
                FROM_DISK => self.metrics.slice_disk_hits.inc(),
                FROM_UPSTREAM => self.metrics.slice_coalesced.inc(),
                _ => drop(fill.joined.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            }
            fill.demand.store(true, std::sync::atomic::Ordering::Relaxed);
            return (SliceRead::Filling(FillReader::new(fill.clone())), Source::Coalesced);
        }
        // A fill finishes by putting its slice in the tier and only then
        // leaving `fills`; look again so one that finished between the first
        // look and the lock is not fetched twice.
        if self.tier.contains(&key)
            && let Some(bytes) = self.tier.get(&key)
        {
            self.metrics.slice_hits.inc();
            return (SliceRead::Ready(bytes), Source::Hit);
        }
        let range = self.slice_range(index, len);
        let part = want.start.max(range.start)..want.end.min(range.end);
        if let Some(disk) = &self.disk
            && part != range
            && !part.is_empty()
            && disk.contains(&key)
        {
            drop(fills);
            self.metrics.slice_disk_hits.inc();
            let read = DiskPart {
                key,
                slice_len: range.end - range.start,
                object_len: len,
                part: part.start - range.start..part.end - range.start,
                start: part.start,
            };
            return (SliceRead::Disk(read), Source::Disk);
        }
        let fill = Arc::new(Fill::default());
        fill.demand.store(true, std::sync::atomic::Ordering::Relaxed);
        fills.insert(key, fill.clone());
        drop(fills);
        tokio::spawn(self.clone().run_fill(key, range, len, fill.clone()));
        (SliceRead::Filling(FillReader::new(fill)), Source::Miss)
    }

    /// Wait for a part being read from disk: its bytes, or — if the disk
    /// failed it (the entry is gone now) — the slice opened again, which
    /// fetches it from upstream. Anything else is returned as it is.
    pub(crate) async fn resolve(
        self: &Arc<Self>,
        read: SliceRead,
        file: FileId,
        index: u64,
        len: u64,
        want: &Range<u64>,
    ) -> (SliceRead, Option<Source>) {
        let SliceRead::Disk(part) = read else { return (read, None) };
        let disk = self.disk.as_ref().expect("a disk part comes from the disk tier");
        match disk.read(part.key, part.slice_len, part.object_len, part.part).await {
            DiskRead::Hit(bytes) => (SliceRead::Part(part.start, bytes), None),
            _ => {
                let (read, source) = self.open(file, index, len, want);
                (read, Some(source))
            }
        }
    }

    /// Make sure slice `index` of `file` gets cached, for a warm job:
    /// `None` if it already is, else a reader of the fill (joined or
    /// started) to follow to its end. Unlike [`open`](Self::open) it is not
    /// a lookup: neither the hit-ratio counters nor the tier's popularity
    /// counts see it, so warming does not disguise itself as demand.
    pub(crate) fn warm(self: &Arc<Self>, file: FileId, index: u64, len: u64) -> Option<FillReader> {
        let key = SliceKey { file, index };
        let held = |key: &SliceKey| match &self.disk {
            // The warm target is the disk tier when there is one.
            Some(disk) => disk.contains(key),
            None => self.tier.contains(key),
        };
        if held(&key) {
            return None;
        }
        let mut fills = self.lock_fills();
        if let Some(fill) = fills.get(&key) {
            return Some(FillReader::new(fill.clone()));
        }
        if held(&key) {
            return None;
        }
        let fill = Arc::new(Fill::default());
        fills.insert(key, fill.clone());
        drop(fills);
        let range = self.slice_range(index, len);
        tokio::spawn(self.clone().run_fill(key, range, len, fill.clone()));
        Some(FillReader::new(fill))
    }

    /// Upstream request slots free now (of `origin.max_concurrent`) and in
    /// all, so background work can step aside for listeners.
    pub(crate) fn upstream_slots(&self) -> (usize, usize) {
        (self.permits.available_permits(), self.max_concurrent)
    }

    /// Byte range of slice `index` in an object of `len` bytes.
    pub(crate) fn slice_range(&self, index: u64, len: u64) -> Range<u64> {
        let start = index.saturating_mul(self.slice_size).min(len);
        start..start.saturating_add(self.slice_size).min(len)
    }

    fn lock_fills(&self) -> MutexGuard<'_, HashMap<SliceKey, Arc<Fill>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (single inserts and removes), so a poisoned lock is still usable.
        self.fills.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run_fill(self: Arc<Self>, key: SliceKey, range: Range<u64>, object_len: u64, fill: Arc<Fill>) {
        use std::sync::atomic::Ordering;
        self.metrics.fills_in_flight.inc();
        let demand = fill.demand.load(Ordering::Relaxed);
        // The disk tier first: a verified slice is the whole answer; a bad
        // or missing one is fetched from upstream by this same fill, so its
        // readers never see what failed.
        let mut from_disk = None;
        // (`read` answers `Miss` at once for a slice it does not index.)
        if let Some(disk) = &self.disk
            && let DiskRead::Hit(bytes) =
                disk.read(key, range.end - range.start, object_len, 0..range.end - range.start).await
        {
            fill.from_disk.store(true, Ordering::SeqCst);
            fill.push(bytes.clone());
            from_disk = Some(bytes);
        }
        if demand {
            if from_disk.is_some() { &self.metrics.slice_disk_hits } else { &self.metrics.slice_misses }
                .inc();
        }
        {
            let _fills = self.lock_fills();
            let (source, counter) = match from_disk {
                Some(_) => (FROM_DISK, &self.metrics.slice_disk_hits),
                None => (FROM_UPSTREAM, &self.metrics.slice_coalesced),
            };
            fill.source.store(source, Ordering::Relaxed);
            counter.inc_by(fill.joined.swap(0, Ordering::Relaxed));
        }
        let result = match from_disk {
            Some(bytes) => Ok(bytes),
            None => self.upstream("range", self.stream_slice(key.file, range, &fill)).await,
        };
        {
            // Under the fills lock, so a purge either sees this fill (and
            // marks it first) or runs after its slice is in the tier (and
            // removes it there).
            let mut fills = self.lock_fills();
            if let Ok(bytes) = &result
                && !fill.purged.load(Ordering::SeqCst)
            {
                // A warm fill nobody asked for goes to disk only, so warming
                // does not push demand out of memory.
                if fill.demand.load(Ordering::Relaxed) || self.disk.is_none() {
                    drop(self.tier.insert(key, bytes.clone()));
                }
                if let Some(disk) = &self.disk
                    && !fill.from_disk.load(Ordering::SeqCst)
                {
                    disk.write(key, bytes.clone(), object_len, disk.epoch());
                }
            }
            // Leave the map before telling the readers, so a request that
            // saw this fill fail never joins it again: it starts a fresh
            // one. Only our own entry: after a purge the key may already
            // belong to a newer fill.
            if fills.get(&key).is_some_and(|f| Arc::ptr_eq(f, &fill)) {
                fills.remove(&key);
            }
        }
        fill.finish(result.map(drop));
        self.metrics.fills_in_flight.dec();
    }

    /// Stream one slice from upstream into `fill`; the whole slice on success.
    async fn stream_slice(&self, file: FileId, range: Range<u64>, fill: &Fill) -> Result<Bytes, FetchError> {
        let expected = range.end - range.start;
        let _permit = self.permits.acquire().await.expect("semaphore is never closed");
        let started = Instant::now();
        let options = GetOptions { range: Some(range.clone().into()), ..GetOptions::default() };
        let got = self.store.get_opts(&audio_path(&file), options).await.map_err(classify)?;
        if got.range != range {
            return Err(FetchError::Failed(format!(
                "asked for bytes {range:?}, upstream sent {:?}",
                got.range
            )));
        }
        let mut stream = got.into_stream();
        let mut whole = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            if whole.is_empty() {
                self.metrics.origin_first_byte.observe(started.elapsed().as_secs_f64());
            }
            if (whole.len() + chunk.len()) as u64 > expected {
                return Err(FetchError::Long { expected });
            }
            self.metrics.origin_bytes.inc_by(chunk.len() as u64);
            whole.extend_from_slice(&chunk);
            fill.push(chunk);
        }
        if (whole.len() as u64) < expected {
            // Never cache a short read: it would be wrong forever.
            return Err(FetchError::Short { expected, got: whole.len() as u64 });
        }
        Ok(whole.freeze())
    }

    /// Run one upstream call under the deadline, counting and timing it.
    async fn upstream<T>(
        &self,
        kind: &'static str,
        call: impl Future<Output = Result<T, FetchError>>,
    ) -> Result<T, FetchError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(FetchError::Timeout(self.timeout)),
            Ok(r) => r,
        };
        let label = result.as_ref().map_or_else(FetchError::label, |_| "ok");
        self.metrics.origin_requests.with_label_values(&[kind, label]).inc();
        self.metrics.origin_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        result
    }

    /// Forget everything about `files`: their slices in the tier, their
    /// lengths, remembered 404s, and any fill running for them (which
    /// finishes for the readers it has but caches nothing). The next
    /// request fetches from upstream again. One pass over the fills and one
    /// over the tier, however many files; results in the order given.
    pub(crate) async fn purge(&self, files: &[FileId]) -> Vec<Purged> {
        let set: std::collections::HashSet<FileId> = files.iter().copied().collect();
        let mut detached: HashMap<FileId, u64> = HashMap::new();
        {
            let mut fills = self.lock_fills();
            let running: Vec<SliceKey> = fills.keys().filter(|k| set.contains(&k.file)).copied().collect();
            for key in running {
                if let Some(fill) = fills.remove(&key) {
                    fill.purged.store(true, std::sync::atomic::Ordering::SeqCst);
                    *detached.entry(key.file).or_default() += 1;
                }
            }
            // Under the fills lock too: a fill that ended before this
            // point read the old epoch, so its disk write (if not renamed
            // yet) is dropped; one that ends after sees its mark above.
            if let Some(disk) = &self.disk {
                disk.bump_epoch();
            }
        }
        let on_disk = match &self.disk {
            Some(disk) => disk.purge(files).await,
            None => vec![(0, 0); files.len()],
        };
        let removed = self.tier.remove_files(&set);
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            self.lengths.invalidate(file).await;
            if let Some(missing) = &self.missing {
                missing.invalidate(file).await;
            }
            let (slices, bytes) = removed.get(file).copied().unwrap_or_default();
            out.push(Purged {
                slices,
                bytes,
                fills_detached: detached.get(file).copied().unwrap_or_default(),
                disk_slices: 0,
                disk_bytes: 0,
            });
        }
        for (out, (slices, bytes)) in out.iter_mut().zip(on_disk) {
            out.disk_slices = slices;
            out.disk_bytes = bytes;
        }
        out
    }

    /// The disk tier, if configured.
    pub(crate) fn disk(&self) -> Option<&Arc<DiskTier>> {
        self.disk.as_ref()
    }

    /// The memory tier's byte budget.
    pub(crate) fn memory_capacity(&self) -> u64 {
        self.tier.capacity()
    }

    /// What the tier holds now, for `/admin/stats`.
    pub(crate) fn memory_usage(&self) -> (u64, u64, u64) {
        (self.tier.weighted_size(), self.tier.entry_count(), self.tier.evictions())
    }

    /// Refresh the size gauges (called on each metrics scrape).
    pub(crate) fn update_gauges(&self) {
        self.tier.run_pending_tasks();
        self.metrics.memory_bytes.set(i64::try_from(self.tier.weighted_size()).unwrap_or(i64::MAX));
        self.metrics.memory_entries.set(i64::try_from(self.tier.entry_count()).unwrap_or(i64::MAX));
        // The tier counts evictions itself; bring the counter up to it. The
        // lock keeps two concurrent scrapes from adding the same delta.
        let _one_at_a_time = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        let seen = self.metrics.memory_evictions.get();
        self.metrics.memory_evictions.inc_by(self.tier.evictions().saturating_sub(seen));
        if let Some(disk) = &self.disk {
            disk.update_gauges();
        }
    }
}

fn classify(e: object_store::Error) -> FetchError {
    match e {
        object_store::Error::NotFound { .. } => FetchError::NotFound,
        e => FetchError::Failed(e.to_string()),
    }
}

/// One slice on its way from upstream: the chunks so far and, once the fill
/// ends, how it ended.
#[derive(Debug, Default)]
struct Fill {
    state: Mutex<FillState>,
    /// Woken on every chunk and at the end.
    changed: Notify,
    /// Set (under the fills lock) when the file is purged while this fill
    /// runs: its readers still get their bytes, but the slice never enters
    /// the tier.
    purged: std::sync::atomic::AtomicBool,
    /// A listener asked for this slice (not only a warm job): it goes to
    /// the memory tier as well as the disk.
    demand: std::sync::atomic::AtomicBool,
    /// The bytes came from the disk tier.
    from_disk: std::sync::atomic::AtomicBool,
    /// Where the bytes come from, once known (under the fills lock): 0 not
    /// yet, [`FROM_DISK`], [`FROM_UPSTREAM`].
    source: std::sync::atomic::AtomicU8,
    /// Lookups that joined this fill before its source was known; counted
    /// when it is (under the fills lock).
    joined: std::sync::atomic::AtomicU64,
}

/// [`Fill::source`]: the slice was read from the disk tier.
const FROM_DISK: u8 = 1;
/// [`Fill::source`]: the slice is fetched from upstream.
const FROM_UPSTREAM: u8 = 2;

#[derive(Debug, Default)]
struct FillState {
    chunks: Vec<Bytes>,
    done: Option<Result<(), FetchError>>,
}

impl Fill {
    fn lock(&self) -> MutexGuard<'_, FillState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, chunk: Bytes) {
        self.lock().chunks.push(chunk);
        self.changed.notify_waiters();
    }

    fn finish(&self, result: Result<(), FetchError>) {
        self.lock().done = Some(result);
        self.changed.notify_waiters();
    }

    /// Wait until `ready` has an answer from the state.
    async fn wait<T>(&self, mut ready: impl FnMut(&FillState) -> Option<T>) -> T {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Register before looking, so a change between the look and the
            // wait still wakes us.
            changed.as_mut().enable();
            if let Some(answer) = ready(&self.lock()) {
                return answer;
            }
            changed.await;
        }
    }
}

/// One request's cursor over a fill's chunks.
#[derive(Debug)]
pub(crate) struct FillReader {
    fill: Arc<Fill>,
    next: usize,
}

impl FillReader {
    fn new(fill: Arc<Fill>) -> Self {
        Self { fill, next: 0 }
    }

    /// Wait until the fill has produced a byte or ended: `Err` if it ended
    /// before producing anything usable (so the request can still answer
    /// with a status instead of an aborted body).
    pub(crate) async fn started(&self) -> Result<(), FetchError> {
        self.fill
            .wait(|state| match &state.done {
                _ if !state.chunks.is_empty() => Some(Ok(())),
                Some(done) => Some(done.clone()),
                None => None,
            })
            .await
    }

    /// Whether the slice is being read from the disk tier (known once
    /// [`started`](Self::started) has returned).
    pub(crate) fn reads_disk(&self) -> bool {
        self.fill.from_disk.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The next chunk, `None` at the end of a complete slice, or the error
    /// that ended the fill.
    pub(crate) async fn next_chunk(&mut self) -> Option<Result<Bytes, FetchError>> {
        let next = self.next;
        let item = self
            .fill
            .wait(|state| match (state.chunks.get(next), &state.done) {
                (Some(chunk), _) => Some(Some(Ok(chunk.clone()))),
                (None, Some(Ok(()))) => Some(None),
                (None, Some(Err(e))) => Some(Some(Err(e.clone()))),
                (None, None) => None,
            })
            .await;
        if let Some(Ok(_)) = item {
            self.next += 1;
        }
        item
    }
}

/// What a purge removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Purged {
    pub(crate) slices: u64,
    pub(crate) bytes: u64,
    pub(crate) fills_detached: u64,
    pub(crate) disk_slices: u64,
    pub(crate) disk_bytes: u64,
}

/// Shared handle.
pub(crate) type SharedCache = Arc<SliceCache>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_chunks_as_they_arrive_and_the_end() {
        let fill = Arc::new(Fill::default());
        let mut early = FillReader::new(fill.clone());
        fill.push(Bytes::from_static(b"ab"));
        assert_eq!(early.next_chunk().await.unwrap().unwrap(), "ab");
        let waiting = tokio::spawn(async move {
            let chunk = early.next_chunk().await.unwrap().unwrap();
            (chunk, early.next_chunk().await)
        });
        tokio::task::yield_now().await;
        fill.push(Bytes::from_static(b"cd"));
        fill.finish(Ok(()));
        let (chunk, end) = waiting.await.unwrap();
        assert_eq!(chunk, "cd");
        assert!(end.is_none());
        // A reader that joins late replays from the start.
        let mut late = FillReader::new(fill);
        assert_eq!(late.next_chunk().await.unwrap().unwrap(), "ab");
    }

    #[tokio::test]
    async fn a_failed_fill_reaches_every_reader() {
        let fill = Arc::new(Fill::default());
        let reader = FillReader::new(fill.clone());
        let mut other = FillReader::new(fill.clone());
        let started = tokio::spawn(async move { reader.started().await });
        fill.finish(Err(FetchError::Short { expected: 4, got: 0 }));
        assert_eq!(started.await.unwrap(), Err(FetchError::Short { expected: 4, got: 0 }));
        assert_eq!(other.next_chunk().await, Some(Err(FetchError::Short { expected: 4, got: 0 })));
    }
}
