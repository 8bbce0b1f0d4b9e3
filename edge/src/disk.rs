//! The disk tier: slices in files under `disk.path`, every read verified.
//!
//! # Layout
//!
//! ```text
//! <path>/FORMAT                          "cadenza-disk 1 slice=<bytes>"
//! <path>/<ab>/<file_id>.<index>.<len>.<object_len>
//!                                        one slice: header, block CRCs, payload
//! <path>/<ab>/.tmp.<…>                   a write in progress
//! ```
//!
//! `<ab>` is the file id's first two hex digits: 256 directories, each a
//! few thousand entries for a million slices. The name carries everything
//! the index needs, so the start-up rebuild is a walk of the directories
//! with no file opened; the header is checked on every read instead.
//!
//! # Never wrong
//!
//! - A slice is written to a temp file and renamed into place, so a name
//!   that exists always had a complete write behind it. No fsync: a killed
//!   process loses nothing the kernel has (the page cache survives it), and
//!   what a power cut can leave (a renamed file whose blocks never reached
//!   the disk) fails the check below like any other damage.
//! - **Every read is verified before its first byte is served**: the file's
//!   size, the header's magic, format version, file id, slice index, slice
//!   size, object length and slice length, the CRC-32 of the block table,
//!   and the CRC-32 of every 16 KiB block of payload the read returns (so a
//!   64 KiB range reads and checks ~80 KiB, not the whole slice). A file that fails is
//!   deleted, counted (`cadenza_edge_disk_reads_total{result="corrupt"}`),
//!   and the slice is fetched from upstream by the same fill, so its
//!   readers never see the bad bytes.
//! - A `FORMAT` that names another slice size (or format) means every file
//!   cuts objects differently: they are all deleted in the background.
//! - Leftover temp files (a write cut short by a crash) are deleted by the
//!   rebuild.
//!
//! # Faults
//!
//! A write that fails (ENOSPC, EIO, EROFS or any other error) marks the
//! tier **degraded**: a warning is logged, `cadenza_edge_disk_degraded` is
//! 1, and no slice is written until a probe (a slice-sized file written,
//! read back and deleted) succeeds. Probes wait `disk.reprobe_min`,
//! doubling up to `disk.reprobe_max`. Reads go on while degraded; a read
//! that fails is a miss (the fill goes upstream) and its entry is dropped.
//! Listeners never see a disk error.
//!
//! # Policy
//!
//! The index is the memory tier's W-TinyLFU ([`Tier`]) over
//! [`DiskSlot`]s, weighed in bytes on disk; see `docs/edge.md` ("Disk
//! tier") for the measurement behind the choice. What it lets go is
//! deleted.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cadenza_config::ids::FileId;
use tokio::sync::{Notify, Semaphore};

use crate::metrics::Metrics;
use crate::tier::{Entry, SliceKey, Tier};

/// Bytes of the fixed header; the block table follows it.
pub const HEADER_LEN: usize = 72;
/// Payload bytes per CRC-32 in the block table.
pub const BLOCK: u64 = 16 * 1024;

/// Header plus block table for a payload of `len` bytes.
pub fn header_len(len: u64) -> u64 {
    HEADER_LEN as u64 + 4 * len.div_ceil(BLOCK)
}
const MAGIC: &[u8; 8] = b"CDZSLICE";
const VERSION: u32 = 1;
const TMP_PREFIX: &str = ".tmp.";
const FORMAT_FILE: &str = "FORMAT";

/// What the index holds per slice: its payload length and its object's
/// length; with the key they name the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskSlot {
    pub len: u32,
    pub object_len: u64,
}

impl Entry for DiskSlot {
    fn weight(&self) -> u64 {
        u64::from(self.len) + header_len(u64::from(self.len))
    }
}

/// What a [`DiskTier`] is built from.
#[derive(Clone, Debug)]
pub(crate) struct DiskSettings {
    pub(crate) path: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) slice_size: u64,
    pub(crate) max_writes: usize,
    pub(crate) reprobe_min: Duration,
    pub(crate) reprobe_max: Duration,
}

/// Why a disk tier could not be opened at all.
#[derive(Debug, thiserror::Error)]
#[error("disk.path {path}: {source}")]
pub struct DiskError {
    path: String,
    source: io::Error,
}

#[derive(Debug)]
pub(crate) struct DiskTier {
    dir: PathBuf,
    index: Tier<DiskSlot>,
    slice_size: u64,
    writes: Semaphore,
    degraded: AtomicBool,
    /// What degraded it, for `/admin/stats`.
    degraded_reason: Mutex<Option<String>>,
    /// Wakes the prober.
    wake: Arc<Notify>,
    /// Set once the start-up walk has indexed every file.
    ready: AtomicBool,
    /// Entries found by the walk so far, and how long it took.
    rebuilt: AtomicU64,
    rebuild_millis: AtomicU64,
    /// Bumped by every purge; a write renames its file only if no purge
    /// ran since its fill ended. Held across the rename and index insert.
    epoch: Mutex<u64>,
    /// Object lengths of the files with slices on disk (and how many), so
    /// an object on disk is served without asking upstream for its length
    /// — after a restart, even while upstream is down.
    lengths: Mutex<std::collections::HashMap<FileId, (u64, u64)>>,
    metrics: Metrics,
}

/// How a disk read went.
#[derive(Debug)]
pub(crate) enum DiskRead {
    Hit(Bytes),
    /// Not indexed, or gone (evicted, purged, deleted by hand).
    Miss,
    /// Failed verification: deleted, counted.
    Corrupt(String),
    /// The read itself failed: counted, entry dropped.
    Failed(io::Error),
}

impl DiskTier {
    /// Open (creating) the directory and start the background rebuild and
    /// the prober; the tier answers at once, indexing as the walk goes.
    pub(crate) fn open(settings: &DiskSettings, metrics: Metrics) -> Result<Arc<Self>, DiskError> {
        let err = |source| DiskError { path: settings.path.display().to_string(), source };
        fs::create_dir_all(&settings.path).map_err(err)?;
        // A probe or FORMAT write cut short by a crash.
        for entry in fs::read_dir(&settings.path).map_err(err)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        for shard in 0..=255u8 {
            fs::create_dir_all(settings.path.join(format!("{shard:02x}"))).map_err(err)?;
        }
        let format = format!("cadenza-disk {VERSION} slice={}\n", settings.slice_size);
        let format_path = settings.path.join(FORMAT_FILE);
        let wipe = match fs::read_to_string(&format_path) {
            Ok(found) => found != format,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(err(e)),
        };
        if wipe {
            tracing::warn!(path = %settings.path.display(), "disk tier written with another slice size or format: deleting its slices");
        }
        let tmp = settings.path.join(format!("{TMP_PREFIX}{FORMAT_FILE}"));
        fs::write(&tmp, &format).and_then(|()| fs::rename(&tmp, &format_path)).map_err(err)?;

        let tier = Arc::new(Self {
            dir: settings.path.clone(),
            index: Tier::new(settings.max_bytes),
            slice_size: settings.slice_size,
            writes: Semaphore::new(settings.max_writes.max(1)),
            degraded: AtomicBool::new(false),
            degraded_reason: Mutex::new(None),
            wake: Arc::new(Notify::new()),
            ready: AtomicBool::new(false),
            rebuilt: AtomicU64::new(0),
            rebuild_millis: AtomicU64::new(0),
            epoch: Mutex::new(0),
            lengths: Mutex::default(),
            metrics,
        });
        tier.metrics.disk_capacity.set(i64::try_from(settings.max_bytes).unwrap_or(i64::MAX));
        let walker = tier.clone();
        tokio::task::spawn_blocking(move || walker.rebuild(wipe));
        tokio::spawn(probe(
            Arc::downgrade(&tier),
            tier.wake.clone(),
            settings.reprobe_min,
            settings.reprobe_max,
        ));
        Ok(tier)
    }

    /// Whether the slice is indexed (no access counted).
    pub(crate) fn contains(&self, key: &SliceKey) -> bool {
        self.index.contains(key)
    }

    /// The length of `file`, if any of its slices is on disk.
    pub(crate) fn object_len(&self, file: &FileId) -> Option<u64> {
        lock(&self.lengths).get(file).map(|&(len, _)| len)
    }

    /// Read and verify bytes `part` (offsets in the slice) of slice `key`,
    /// `len` bytes of an `object_len`-byte object.
    pub(crate) async fn read(
        self: &Arc<Self>,
        key: SliceKey,
        len: u64,
        object_len: u64,
        part: Range<u64>,
    ) -> DiskRead {
        if self.index.get(&key).is_none() {
            return DiskRead::Miss;
        }
        let slot = DiskSlot { len: len as u32, object_len };
        // In the page cache (the usual case for a hot slice): read right
        // here, no thread handoff. Else on the blocking pool.
        let read = match self.read_file(&key, slot, &part, Wait::No) {
            Some(read) => read,
            None => {
                self.metrics.disk_blocking_reads.inc();
                let this = self.clone();
                tokio::task::spawn_blocking(move || {
                    this.read_file(&key, slot, &part, Wait::Yes).expect("a blocking read always answers")
                })
                .await
                .unwrap_or_else(|e| DiskRead::Failed(io::Error::other(e)))
            }
        };
        let label = match &read {
            DiskRead::Hit(_) => "hit",
            DiskRead::Miss => "missing",
            DiskRead::Corrupt(_) => "corrupt",
            DiskRead::Failed(_) => "error",
        };
        self.metrics.disk_reads.with_label_values(&[label]).inc();
        match &read {
            DiskRead::Hit(_) => {}
            DiskRead::Miss => self.unindex(&key),
            DiskRead::Corrupt(why) => {
                tracing::warn!(file = %key.file, slice = key.index, reason = %why, "corrupt slice on disk deleted; refetching");
            }
            DiskRead::Failed(e) => {
                self.unindex(&key);
                tracing::warn!(file = %key.file, slice = key.index, error = %e, "disk read failed; refetching");
                if is_device_fault(e) {
                    self.degrade("read", e);
                }
            }
        }
        read
    }

    /// Read and verify `part` of a slice file. With [`Wait::No`], `None`
    /// when the bytes are not all in the page cache (nothing is changed:
    /// ask again with [`Wait::Yes`], which always answers). The file is
    /// opened either way: the 256 directories and hot inodes stay in the
    /// kernel's caches (nginx relies on the same for its cache files).
    fn read_file(&self, key: &SliceKey, slot: DiskSlot, part: &Range<u64>, wait: Wait) -> Option<DiskRead> {
        let path = self.path_of(key, slot);
        let len = u64::from(slot.len);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(DiskRead::Miss),
            Err(_) if wait == Wait::No => return None,
            Err(e) => return Some(DiskRead::Failed(e)),
        };
        let head_len = header_len(len);
        // The blocks covering `part`.
        let (first, end) = (part.start / BLOCK, part.end.div_ceil(BLOCK).min(len.div_ceil(BLOCK)));
        let (from, to) = (first * BLOCK, (end * BLOCK).min(len));
        let mut head = vec![0u8; head_len as usize];
        let mut blocks = vec![0u8; (to - from) as usize];
        let read = (|| -> io::Result<Result<(), String>> {
            let size = file.metadata()?.len();
            if size != head_len + len {
                return Ok(Err(format!("file is {size} bytes, expected {}", head_len + len)));
            }
            read_at(&file, &mut head, 0, wait)?;
            read_at(&file, &mut blocks, head_len + from, wait)?;
            Ok(verify(&head, &blocks, first, key, slot, self.slice_size))
        })();
        Some(match read {
            Ok(Ok(())) => DiskRead::Hit(
                Bytes::from(blocks).slice((part.start - from) as usize..(part.end - from) as usize),
            ),
            Ok(Err(why)) => {
                let _ = fs::remove_file(&path);
                self.unindex(key);
                DiskRead::Corrupt(why)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            // A file cut short after the size check reads as EOF: damage.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let _ = fs::remove_file(&path);
                self.unindex(key);
                DiskRead::Corrupt("file ended early".into())
            }
            Err(_) if wait == Wait::No => return None,
            Err(e) => DiskRead::Failed(e),
        })
    }

    /// Index a slice file just renamed or found; delete what the policy
    /// lets go in exchange.
    fn index(&self, key: SliceKey, slot: DiskSlot) {
        if !self.index.contains(&key) {
            lock(&self.lengths).entry(key.file).or_insert((slot.object_len, 0)).1 += 1;
        }
        let evicted = self.index.insert(key, slot);
        self.delete(evicted);
    }

    /// Drop one slice from the index (its file is gone or bad).
    fn unindex(&self, key: &SliceKey) {
        if self.index.remove(key).is_some() {
            self.forget_slice(&key.file);
        }
    }

    fn forget_slice(&self, file: &FileId) {
        let mut lengths = lock(&self.lengths);
        if let Some(entry) = lengths.get_mut(file) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                lengths.remove(file);
            }
        }
    }

    /// The purge epoch now: pass it to [`write`](Self::write).
    pub(crate) fn epoch(&self) -> u64 {
        *lock(&self.epoch)
    }

    /// Write a freshly filled slice in the background, unless the tier is
    /// degraded or all write slots are busy. `epoch` is
    /// [`epoch`](Self::epoch) read when the fill ended, under the fills
    /// lock: if a purge ran since, the slice is not kept.
    pub(crate) fn write(self: &Arc<Self>, key: SliceKey, bytes: Bytes, object_len: u64, epoch: u64) {
        if self.degraded.load(Ordering::SeqCst) {
            self.metrics.disk_writes.with_label_values(&["degraded"]).inc();
            return;
        }
        let Ok(permit) = self.writes.try_acquire() else {
            self.metrics.disk_writes.with_label_values(&["busy"]).inc();
            return;
        };
        permit.forget();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = this.write_blocking(key, &bytes, object_len, epoch);
            this.writes.add_permits(1);
            let label = match result {
                Ok(true) => "ok",
                Ok(false) => "purged",
                Err(e) => {
                    this.degrade("write", &e);
                    "error"
                }
            };
            this.metrics.disk_writes.with_label_values(&[label]).inc();
        });
    }

    /// `Ok(false)`: a purge came first, nothing kept.
    fn write_blocking(&self, key: SliceKey, bytes: &Bytes, object_len: u64, epoch: u64) -> io::Result<bool> {
        let slot = DiskSlot { len: bytes.len() as u32, object_len };
        let shard = self.shard_dir(&key.file);
        let tmp = shard.join(format!(
            "{TMP_PREFIX}{}.{}.{}",
            key.file,
            key.index,
            cadenza_config::ids::random_id(8)
        ));
        let written = (|| {
            let mut file = File::create_new(&tmp)?;
            file.write_all(&header(&key, slot, self.slice_size, bytes))?;
            file.write_all(bytes)?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let current = lock(&self.epoch);
        if *current != epoch {
            drop(current);
            let _ = fs::remove_file(&tmp);
            return Ok(false);
        }
        if let Err(e) = fs::rename(&tmp, self.path_of(&key, slot)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.index(key, slot);
        Ok(true)
    }

    /// Delete what the policy let go.
    fn delete(&self, evicted: Vec<(SliceKey, DiskSlot)>) {
        if evicted.is_empty() {
            return;
        }
        self.metrics.disk_evictions.inc_by(evicted.len() as u64);
        for (key, slot) in evicted {
            self.forget_slice(&key.file);
            let _ = fs::remove_file(self.path_of(&key, slot));
        }
    }

    /// Start a purge: writes whose fill ended before this are dropped
    /// (called under the fills lock, after running fills are marked).
    pub(crate) fn bump_epoch(&self) {
        *lock(&self.epoch) += 1;
    }

    /// Forget `files` (after [`bump_epoch`](Self::bump_epoch)): drop them
    /// from the index and delete every file of theirs in their directories
    /// (including any the start-up walk has not reached yet). Slices and
    /// bytes removed, per file.
    pub(crate) async fn purge(self: &Arc<Self>, files: &[FileId]) -> Vec<(u64, u64)> {
        let set: HashSet<FileId> = files.iter().copied().collect();
        let this = self.clone();
        let files = files.to_vec();
        tokio::task::spawn_blocking(move || {
            drop(this.index.take_files(&set));
            lock(&this.lengths).retain(|file, _| !set.contains(file));
            files
                .iter()
                .map(|file| {
                    let prefix = format!("{file}.");
                    let (mut slices, mut bytes) = (0, 0);
                    if let Ok(entries) = fs::read_dir(this.shard_dir(file)) {
                        for entry in entries.flatten() {
                            let name = entry.file_name();
                            let Some(name) = name.to_str() else { continue };
                            if let Some(rest) = name.strip_prefix(&prefix)
                                && let Some((_, slot)) = parse_rest(rest)
                                && fs::remove_file(entry.path()).is_ok()
                            {
                                slices += 1;
                                bytes += u64::from(slot.len);
                            }
                        }
                    }
                    (slices, bytes)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Walk the directories: index every slice file, delete temp files
    /// (and everything, after a format change).
    fn rebuild(&self, wipe: bool) {
        let started = Instant::now();
        let mut found = 0u64;
        let mut swept = 0u64;
        for shard in 0..=255u8 {
            let prefix = format!("{shard:02x}");
            let Ok(entries) = fs::read_dir(self.dir.join(&prefix)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TMP_PREFIX) || wipe {
                    if fs::remove_file(entry.path()).is_ok() {
                        swept += 1;
                    }
                    continue;
                }
                match parse_name(name) {
                    Some((key, slot))
                        if name.starts_with(&prefix) && u64::from(slot.len) <= self.slice_size =>
                    {
                        // A slice written since start-up is already in;
                        // inserting it again would only count an access.
                        if !self.index.contains(&key) {
                            self.index(key, slot);
                        }
                        found += 1;
                        if found.is_multiple_of(65_536) {
                            self.rebuilt.store(found, Ordering::Relaxed);
                        }
                    }
                    // Not ours: left alone (the directory should hold
                    // nothing else, but deleting an operator's file is not
                    // the cache's call).
                    _ => {}
                }
            }
        }
        let took = started.elapsed();
        self.rebuilt.store(found, Ordering::Relaxed);
        self.rebuild_millis.store(took.as_millis() as u64, Ordering::Relaxed);
        self.ready.store(true, Ordering::SeqCst);
        self.metrics.disk_index_ready.set(1);
        self.metrics.disk_rebuild_seconds.set(took.as_secs_f64());
        tracing::info!(
            path = %self.dir.display(),
            slices = found,
            temp_files_swept = swept,
            seconds = took.as_secs_f64(),
            "disk tier index rebuilt"
        );
    }

    fn degrade(&self, op: &str, e: &io::Error) {
        let reason = format!("{op}: {e}");
        if !self.degraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(path = %self.dir.display(), error = %reason, "disk tier degraded: not writing slices until a probe succeeds");
            self.metrics.disk_degraded.set(1);
            self.metrics.disk_degradations.inc();
            *lock(&self.degraded_reason) = Some(reason);
            self.wake.notify_one();
        }
    }

    /// Write, read back and delete a slice-sized file.
    fn probe_once(&self) -> io::Result<()> {
        let path = self.dir.join(format!("{TMP_PREFIX}probe"));
        let payload = vec![0xa5u8; usize::try_from(self.slice_size).unwrap_or(1 << 20)];
        let result = (|| {
            let mut file = File::create(&path)?;
            file.write_all(&payload)?;
            file.sync_all()?;
            let back = fs::read(&path)?;
            if back != payload {
                return Err(io::Error::other("probe read back different bytes"));
            }
            Ok(())
        })();
        let _ = fs::remove_file(&path);
        result
    }

    fn recover(&self) {
        self.degraded.store(false, Ordering::SeqCst);
        self.metrics.disk_degraded.set(0);
        *lock(&self.degraded_reason) = None;
        tracing::info!(path = %self.dir.display(), "disk tier healthy again: writing slices");
    }

    pub(crate) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// For `/admin/stats`.
    pub(crate) fn status(&self) -> DiskStatus {
        DiskStatus {
            path: self.dir.display().to_string(),
            capacity: self.index.capacity(),
            bytes: self.index.weighted_size(),
            entries: self.index.entry_count(),
            evictions: self.metrics.disk_evictions.get(),
            index_ready: self.ready.load(Ordering::SeqCst),
            indexed_at_start: self.rebuilt.load(Ordering::Relaxed),
            rebuild_millis: self
                .ready
                .load(Ordering::SeqCst)
                .then(|| self.rebuild_millis.load(Ordering::Relaxed)),
            degraded: self.is_degraded(),
            degraded_reason: lock(&self.degraded_reason).clone(),
        }
    }

    /// Refresh the size gauges.
    pub(crate) fn update_gauges(&self) {
        self.metrics.disk_bytes.set(i64::try_from(self.index.weighted_size()).unwrap_or(i64::MAX));
        self.metrics.disk_entries.set(i64::try_from(self.index.entry_count()).unwrap_or(i64::MAX));
    }

    fn shard_dir(&self, file: &FileId) -> PathBuf {
        self.dir.join(&file.as_str()[..2])
    }

    fn path_of(&self, key: &SliceKey, slot: DiskSlot) -> PathBuf {
        self.shard_dir(&key.file).join(format!("{}.{}.{}.{}", key.file, key.index, slot.len, slot.object_len))
    }
}

/// What `/admin/stats` says about the disk tier.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct DiskStatus {
    pub(crate) path: String,
    #[serde(rename = "capacity_bytes")]
    pub(crate) capacity: u64,
    pub(crate) bytes: u64,
    pub(crate) entries: u64,
    pub(crate) evictions: u64,
    pub(crate) index_ready: bool,
    pub(crate) indexed_at_start: u64,
    pub(crate) rebuild_millis: Option<u64>,
    pub(crate) degraded: bool,
    pub(crate) degraded_reason: Option<String>,
}

/// Re-probe a degraded tier with backoff until it is healthy; ends when
/// the tier is dropped.
async fn probe(tier: Weak<DiskTier>, wake: Arc<Notify>, min: Duration, max: Duration) {
    loop {
        wake.notified().await;
        let mut wait = min;
        loop {
            tokio::time::sleep(wait).await;
            let Some(t) = tier.upgrade() else { return };
            let probed = {
                let t = t.clone();
                tokio::task::spawn_blocking(move || t.probe_once()).await
            };
            match probed {
                Ok(Ok(())) => {
                    t.recover();
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(path = %t.dir.display(), error = %e, next_probe_s = (wait * 2).min(max).as_secs_f64(), "disk tier still degraded");
                }
                Err(_) => {}
            }
            wait = (wait * 2).min(max);
        }
    }
}

/// Whether a read may block the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Only what the page cache holds (`preadv2(RWF_NOWAIT)`); anything
    /// else is `WouldBlock`.
    No,
    Yes,
}

/// Fill `buf` from `offset`. With [`Wait::No`], a read the page cache
/// cannot answer whole is `WouldBlock`.
fn read_at(file: &File, buf: &mut [u8], offset: u64, wait: Wait) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    match wait {
        Wait::Yes => file.read_exact_at(buf, offset),
        Wait::No => read_cached(file, buf, offset),
    }
}

#[cfg(target_os = "linux")]
fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use rustix::io::{ReadWriteFlags, preadv2};
    let want = buf.len();
    let got = preadv2(file, &mut [io::IoSliceMut::new(buf)], offset, ReadWriteFlags::NOWAIT)
        .map_err(io::Error::from)?;
    if got == want {
        Ok(())
    } else if got == 0 && want > 0 {
        Err(io::ErrorKind::UnexpectedEof.into())
    } else {
        // Part of it is cached: the blocking read does it all.
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Elsewhere nothing promises not to block: always the blocking pool.
#[cfg(not(target_os = "linux"))]
fn read_cached(_: &File, _: &mut [u8], _: u64) -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Faults that say the device or filesystem is in trouble, not the file.
fn is_device_fault(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::ReadOnlyFilesystem)
        || e.raw_os_error() == Some(5) // EIO
}

/// The header: magic, version, slice size, file id, slice index, object
/// length, slice length, CRC-32 of the block table (integers
/// little-endian); then the block table, the CRC-32 of each [`BLOCK`] of
/// `payload`.
fn header(key: &SliceKey, slot: DiskSlot, slice_size: u64, payload: &[u8]) -> Vec<u8> {
    let table: Vec<u8> =
        payload.chunks(BLOCK as usize).flat_map(|b| crc32fast::hash(b).to_le_bytes()).collect();
    let mut h = vec![0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(slice_size as u32).to_le_bytes());
    h[16..48].copy_from_slice(key.file.as_str().as_bytes());
    h[48..56].copy_from_slice(&key.index.to_le_bytes());
    h[56..64].copy_from_slice(&slot.object_len.to_le_bytes());
    h[64..68].copy_from_slice(&slot.len.to_le_bytes());
    h[68..72].copy_from_slice(&crc32fast::hash(&table).to_le_bytes());
    h.extend_from_slice(&table);
    h
}

/// Check a file's header and block table (`head`) against the slice it
/// should hold, and `blocks` (whole blocks from block `first` on) against
/// their CRCs.
fn verify(
    head: &[u8],
    blocks: &[u8],
    first: u64,
    key: &SliceKey,
    slot: DiskSlot,
    slice_size: u64,
) -> Result<(), String> {
    let (h, table) = head.split_at(HEADER_LEN);
    let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
    if &h[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    if u32_at(8) != VERSION {
        return Err(format!("format version {}", u32_at(8)));
    }
    if u64::from(u32_at(12)) != slice_size {
        return Err(format!("slice size {}", u32_at(12)));
    }
    if &h[16..48] != key.file.as_str().as_bytes() {
        return Err("header names another file".into());
    }
    if u64::from_le_bytes(h[48..56].try_into().expect("8 bytes")) != key.index {
        return Err("header names another slice".into());
    }
    if u64::from_le_bytes(h[56..64].try_into().expect("8 bytes")) != slot.object_len {
        return Err("header names another object length".into());
    }
    if u32_at(64) != slot.len {
        return Err(format!("header says {} bytes", u32_at(64)));
    }
    if crc32fast::hash(table) != u32_at(68) {
        return Err("block table CRC-32 mismatch".into());
    }
    for (i, block) in blocks.chunks(BLOCK as usize).enumerate() {
        let at = (first as usize + i) * 4;
        let want = table.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        if want != Some(crc32fast::hash(block)) {
            return Err(format!("payload block {} CRC-32 mismatch", first as usize + i));
        }
    }
    Ok(())
}

/// `<file_id>.<index>.<len>.<object_len>` → key and slot.
fn parse_name(name: &str) -> Option<(SliceKey, DiskSlot)> {
    let (file, rest) = name.split_once('.')?;
    let file: FileId = file.parse().ok()?;
    let (index, slot) = parse_rest(rest)?;
    Some((SliceKey { file, index }, slot))
}

/// `<index>.<len>.<object_len>`.
fn parse_rest(rest: &str) -> Option<(u64, DiskSlot)> {
    let mut parts = rest.split('.');
    let (index, len, object_len) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if parts.next().is_some() || !digits(index) || !digits(len) || !digits(object_len) {
        return None;
    }
    Some((index.parse().ok()?, DiskSlot { len: len.parse().ok()?, object_len: object_len.parse().ok()? }))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SliceKey {
        SliceKey { file: FileId::of_content(b"x"), index: 3 }
    }

    #[test]
    fn a_file_verifies_only_against_the_slice_it_was_written_for() {
        let payload: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let slot = DiskSlot { len: payload.len() as u32, object_len: 1_000_000 };
        let head = header(&key(), slot, 262_144, &payload);
        assert_eq!(head.len() as u64, header_len(payload.len() as u64));
        let ok = |head: &[u8], blocks: &[u8], first, k: &SliceKey, slot, size| {
            verify(head, blocks, first, k, slot, size)
        };
        assert_eq!(ok(&head, &payload, 0, &key(), slot, 262_144), Ok(()));
        // A part: blocks 1 and 2 alone.
        assert_eq!(ok(&head, &payload[16_384..], 1, &key(), slot, 262_144), Ok(()));
        let other_slice = SliceKey { index: 4, ..key() };
        assert!(ok(&head, &payload, 0, &other_slice, slot, 262_144).unwrap_err().contains("another slice"));
        let other_file = SliceKey { file: FileId::of_content(b"y"), ..key() };
        assert!(ok(&head, &payload, 0, &other_file, slot, 262_144).unwrap_err().contains("another file"));
        let other_object = DiskSlot { object_len: 999_999, ..slot };
        assert!(ok(&head, &payload, 0, &key(), other_object, 262_144).unwrap_err().contains("object length"));
        assert!(ok(&head, &payload, 0, &key(), slot, 1 << 20).unwrap_err().contains("slice size"));
        // Every single flipped bit anywhere in the header or payload is caught.
        for at in 0..head.len() {
            for bit in 0..8 {
                let mut bad = head.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    ok(&bad, &payload, 0, &key(), slot, 262_144).is_err(),
                    "bit {bit} of header byte {at}"
                );
            }
        }
        for at in (0..payload.len()).step_by(97) {
            let mut bad = payload.clone();
            bad[at] ^= 0x10;
            assert!(ok(&head, &bad, 0, &key(), slot, 262_144).is_err(), "payload byte {at}");
        }
        // Damage in block 0 does not fail a read of blocks 1 and 2 (it is
        // caught when block 0 is read).
        let mut bad = payload.clone();
        bad[5] ^= 1;
        assert_eq!(ok(&head, &bad[16_384..], 1, &key(), slot, 262_144), Ok(()));
        assert!(ok(&head, &bad[..16_384], 0, &key(), slot, 262_144).unwrap_err().contains("block 0"));
    }

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        let k = key();
        let slot = DiskSlot { len: 1234, object_len: 99_999 };
        let name = format!("{}.{}.{}.{}", k.file, k.index, slot.len, slot.object_len);
        assert_eq!(parse_name(&name), Some((k, slot)));
        for bad in [
            "".to_owned(),
            "x.1.2.3".to_owned(),
            format!("{}.1.2", k.file),
            format!("{}.1.2.3.4", k.file),
            format!("{}.1.-2.3", k.file),
            format!("{}..2.3", k.file),
        ] {
            assert_eq!(parse_name(&bad), None, "{bad}");
        }
    }
}
