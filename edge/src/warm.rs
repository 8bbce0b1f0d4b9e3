//! Warm jobs: a release manager's list of files (and optionally byte
//! ranges) fetched into the cache ahead of demand, through the same
//! single-flight fills listeners use — a warm slice that a listener also
//! wants is one upstream request, and neither waits for the other.
//!
//! Listeners come first. Warm fills are bounded by `warm.max_concurrent`
//! across all jobs (and by a job's own `concurrency`), a job may pace its
//! slice starts to a byte rate (`max_bytes_per_second`), and before each
//! slice a job waits while listeners hold three quarters of the upstream
//! slots (`origin.max_concurrent`).
//!
//! A job belongs to no request: the `POST` returns at once with its id;
//! `GET /admin/warm/<id>` reports per-file state, bytes, errors and an
//! ETA; `DELETE` cancels it (running fills finish, as they belong to no one).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cadenza_config::ids::FileId;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::cache::{FetchError, SharedCache};

/// Files one job may name.
pub(crate) const MAX_FILES: usize = 10_000;
/// Ranges one file entry may name.
pub(crate) const MAX_RANGES: usize = 64;
/// How often a job looks again while listeners hold the upstream slots.
const YIELD_POLL: Duration = Duration::from_millis(20);

/// What a job is asked to warm, validated.
#[derive(Debug)]
pub(crate) struct WarmSpec {
    pub(crate) files: Vec<(FileId, Vec<Range<u64>>)>,
    pub(crate) concurrency: usize,
    pub(crate) max_bytes_per_second: Option<u64>,
}

/// All jobs of one edge.
#[derive(Debug)]
pub(crate) struct Warmer {
    cache: SharedCache,
    /// `warm.max_concurrent`, shared by every job.
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_jobs: usize,
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

impl Warmer {
    pub(crate) fn new(cache: SharedCache, max_concurrent: usize, max_jobs: usize) -> Self {
        Self {
            cache,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_concurrent: max_concurrent.max(1),
            max_jobs: max_jobs.max(1),
            jobs: Mutex::default(),
        }
    }

    /// The default and the most a job may ask for.
    pub(crate) fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Start a job; returns it (its id is in it).
    pub(crate) fn start(&self, spec: WarmSpec) -> Arc<Job> {
        let job = Arc::new(Job {
            id: cadenza_config::ids::random_id(16),
            created: SystemTime::now(),
            started: Instant::now(),
            concurrency: spec.concurrency.clamp(1, self.max_concurrent),
            max_bytes_per_second: spec.max_bytes_per_second,
            files: spec
                .files
                .into_iter()
                .map(|(file, ranges)| FileWarm { file, ranges, state: Mutex::new(FileState::default()) })
                .collect(),
            cancelled: AtomicBool::new(false),
            bytes_done: AtomicU64::new(0),
            bytes_started: AtomicU64::new(0),
            finished: Mutex::new(None),
        });
        {
            let mut jobs = self.lock();
            jobs.push_back(job.clone());
            // Forget the oldest finished jobs beyond the limit (running ones
            // stay: they are still doing something an operator may ask about).
            while jobs.len() > self.max_jobs {
                match jobs.iter().position(|j| j.is_finished()) {
                    Some(i) => drop(jobs.remove(i)),
                    None => break,
                }
            }
        }
        tokio::spawn(run(job.clone(), self.cache.clone(), self.slots.clone()));
        job
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().iter().find(|j| j.id == id).cloned()
    }

    pub(crate) fn list(&self) -> Vec<Arc<Job>> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One warm job.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: String,
    created: SystemTime,
    started: Instant,
    concurrency: usize,
    max_bytes_per_second: Option<u64>,
    files: Vec<FileWarm>,
    cancelled: AtomicBool,
    /// Bytes of slices finished (fetched, or found cached).
    bytes_done: AtomicU64,
    /// Bytes of slices started, for pacing.
    bytes_started: AtomicU64,
    /// When the job ended.
    finished: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct FileWarm {
    file: FileId,
    /// Requested byte ranges; empty means the whole object.
    ranges: Vec<Range<u64>>,
    state: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    phase: Phase,
    bytes_total: Option<u64>,
    bytes_done: u64,
    slices_total: Option<u64>,
    slices_done: u64,
    slices_cached_before: u64,
    error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }
}

impl FileWarm {
    fn lock(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Job {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn is_finished(&self) -> bool {
        self.finished.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The job as `GET /admin/warm/<id>` reports it.
    pub(crate) fn report(&self, with_files: bool) -> Value {
        let now = Instant::now();
        let ended = *self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = ended.unwrap_or(now).saturating_duration_since(self.started);
        let mut files = Vec::new();
        let (mut bytes_total, mut totals_known) = (0u64, true);
        let (mut slices_total, mut slices_done, mut cached_before) = (0u64, 0u64, 0u64);
        let (mut failed, mut cancelled, mut unfinished) = (0usize, 0usize, 0usize);
        for f in &self.files {
            let s = f.lock();
            match s.bytes_total {
                Some(n) => bytes_total += n,
                None => totals_known = false,
            }
            slices_total += s.slices_total.unwrap_or(0);
            slices_done += s.slices_done;
            cached_before += s.slices_cached_before;
            match s.phase {
                Phase::Failed => failed += 1,
                Phase::Cancelled => cancelled += 1,
                Phase::Pending | Phase::Running => unfinished += 1,
                Phase::Done => {}
            }
            if with_files {
                files.push(json!({
                    "file_id": f.file.as_str(),
                    "state": s.phase.name(),
                    "bytes_done": s.bytes_done,
                    "bytes_total": s.bytes_total,
                    "slices_done": s.slices_done,
                    "slices_total": s.slices_total,
                    "slices_already_cached": s.slices_cached_before,
                    "error": s.error,
                }));
            }
        }
        let bytes_done = self.bytes_done.load(Ordering::SeqCst);
        let state = if unfinished > 0 && ended.is_none() {
            "running"
        } else if cancelled > 0 {
            "cancelled"
        } else if failed > 0 {
            "failed"
        } else {
            "done"
        };
        // ETA from the rate so far, once every length is known and bytes move.
        let secs = elapsed.as_secs_f64();
        let eta = (state == "running" && totals_known && bytes_done > 0 && secs > 0.0)
            .then(|| bytes_total.saturating_sub(bytes_done) as f64 / (bytes_done as f64 / secs));
        let created = self.created.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut v = json!({
            "id": self.id,
            "href": format!("/admin/warm/{}", self.id),
            "state": state,
            "created_unix": created,
            "elapsed_seconds": (secs * 1000.0).round() / 1000.0,
            "files_total": self.files.len(),
            "files_failed": failed,
            "bytes_done": bytes_done,
            "bytes_total": totals_known.then_some(bytes_total),
            "slices_done": slices_done,
            "slices_total": slices_total,
            "slices_already_cached": cached_before,
            "eta_seconds": eta.map(|e| (e * 10.0).round() / 10.0),
            "concurrency": self.concurrency,
            "max_bytes_per_second": self.max_bytes_per_second,
        });
        if with_files {
            v["files"] = Value::Array(files);
        }
        v
    }
}

async fn run(job: Arc<Job>, cache: SharedCache, slots: Arc<Semaphore>) {
    let per_job = Arc::new(Semaphore::new(job.concurrency));
    // Lengths first, so totals (and the ETA) are known early.
    let mut plans = Vec::with_capacity(job.files.len());
    for (i, f) in job.files.iter().enumerate() {
        if job.is_cancelled() {
            break;
        }
        match cache.len(f.file).await {
            Ok(len) => match slices_for(&f.ranges, len, cache.slice_size()) {
                Ok((slices, bytes)) => {
                    let mut s = f.lock();
                    s.bytes_total = Some(bytes);
                    s.slices_total = Some(slices.len() as u64);
                    plans.push((i, len, slices));
                }
                Err(e) => fail(f, e),
            },
            Err(e) => fail(f, describe(&e)),
        }
    }
    let mut running = tokio::task::JoinSet::new();
    'files: for (i, len, slices) in plans {
        let f = &job.files[i];
        f.lock().phase = Phase::Running;
        for (index, bytes) in slices {
            if job.is_cancelled() {
                break 'files;
            }
            pace(&job).await;
            yield_to_listeners(&cache).await;
            let slot = slots.clone().acquire_owned().await.expect("semaphore is never closed");
            let mine = per_job.clone().acquire_owned().await.expect("semaphore is never closed");
            // Cancelled while waiting its turn: start nothing more.
            if job.is_cancelled() {
                break 'files;
            }
            job.bytes_started.fetch_add(bytes, Ordering::SeqCst);
            let (job, cache) = (job.clone(), cache.clone());
            running.spawn(async move {
                let result = warm_slice(&cache, job.files[i].file, index, len).await;
                drop((slot, mine));
                let f = &job.files[i];
                let mut s = f.lock();
                match result {
                    Ok(cached_before) => {
                        s.slices_done += 1;
                        s.bytes_done += bytes;
                        s.slices_cached_before += u64::from(cached_before);
                        job.bytes_done.fetch_add(bytes, Ordering::SeqCst);
                    }
                    Err(e) => {
                        s.error.get_or_insert(describe(&e));
                    }
                }
            });
        }
    }
    while running.join_next().await.is_some() {}
    for f in &job.files {
        let mut s = f.lock();
        s.phase = match (s.phase, &s.error) {
            (Phase::Failed, _) | (_, Some(_)) => Phase::Failed,
            _ if s.slices_total.is_some_and(|t| s.slices_done == t) => Phase::Done,
            _ if job.is_cancelled() => Phase::Cancelled,
            _ => Phase::Failed,
        };
    }
    *job.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    tracing::info!(job = %job.id, report = %job.report(false), "warm job finished");
}

fn fail(f: &FileWarm, error: String) {
    let mut s = f.lock();
    s.phase = Phase::Failed;
    s.error = Some(error);
}

fn describe(e: &FetchError) -> String {
    match e {
        FetchError::NotFound => "not found upstream".to_owned(),
        other => other.to_string(),
    }
}

/// Fetch one slice into the cache, through its fill; `true` if it was
/// cached already.
async fn warm_slice(cache: &SharedCache, file: FileId, index: u64, len: u64) -> Result<bool, FetchError> {
    let Some(mut reader) = cache.warm(file, index, len) else {
        return Ok(true);
    };
    loop {
        match reader.next_chunk().await {
            None => return Ok(false),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
        }
    }
}

/// With a byte-rate cap, wait until the bytes started so far fit the rate.
async fn pace(job: &Job) {
    let Some(rate) = job.max_bytes_per_second.filter(|r| *r > 0) else {
        return;
    };
    let started = job.bytes_started.load(Ordering::SeqCst);
    let due = Duration::from_secs_f64(started as f64 / rate as f64);
    let elapsed = job.started.elapsed();
    if due > elapsed {
        tokio::time::sleep(due - elapsed).await;
    }
}

/// Wait while listeners hold three quarters of the upstream slots.
async fn yield_to_listeners(cache: &SharedCache) {
    loop {
        let (free, total) = cache.upstream_slots();
        if free * 4 > total {
            return;
        }
        tokio::time::sleep(YIELD_POLL).await;
    }
}

/// The slices (index, bytes of it wanted) that cover `ranges` of an object
/// of `len` bytes (all of it when `ranges` is empty), and the bytes in all.
fn slices_for(ranges: &[Range<u64>], len: u64, slice: u64) -> Result<(Vec<(u64, u64)>, u64), String> {
    if len == 0 {
        return Ok((Vec::new(), 0));
    }
    let whole = 0..len;
    let wanted = if ranges.is_empty() { std::slice::from_ref(&whole) } else { ranges };
    let mut indices = std::collections::BTreeSet::new();
    for r in wanted {
        if r.start >= len {
            return Err(format!("range starting at byte {} is past the end of a {len}-byte object", r.start));
        }
        let end = r.end.min(len);
        indices.extend(r.start / slice..=(end - 1) / slice);
    }
    let slices: Vec<(u64, u64)> =
        indices.into_iter().map(|i| (i, (i * slice + slice).min(len) - i * slice)).collect();
    let bytes = slices.iter().map(|(_, b)| b).sum();
    Ok((slices, bytes))
}

/// `"a-b"` (inclusive) or `"a-"`, digits only: the byte-range syntax of
/// HTTP without the unit.
pub(crate) fn parse_range(text: &str) -> Option<Range<u64>> {
    let (a, b) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) {
        return None;
    }
    let start: u64 = a.parse().ok()?;
    if b.is_empty() {
        return Some(start..u64::MAX);
    }
    if !digits(b) {
        return None;
    }
    let end: u64 = b.parse().ok()?;
    (end >= start).then(|| start..end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_strictly() {
        assert_eq!(parse_range("0-9"), Some(0..10));
        assert_eq!(parse_range("100-"), Some(100..u64::MAX));
        for bad in ["", "-5", "5", "a-b", "9-0", " 1-2", "1-2 ", "+1-2", "1--2", "1234567890123456789-"] {
            assert_eq!(parse_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one-range lists are the point
    fn slices_cover_the_ranges_once() {
        // 1000-byte object, 100-byte slices.
        let (slices, bytes) = slices_for(&[], 1000, 100).unwrap();
        assert_eq!(slices.len(), 10);
        assert_eq!(bytes, 1000);
        let (slices, bytes) = slices_for(&[0..10, 5..150, 950..u64::MAX], 1000, 100).unwrap();
        assert_eq!(slices, vec![(0, 100), (1, 100), (9, 100)]);
        assert_eq!(bytes, 300);
        let (slices, _) = slices_for(&[990..995], 995, 100).unwrap();
        assert_eq!(slices, vec![(9, 95)], "the last slice is short");
        assert!(slices_for(&[1000..1001], 1000, 100).unwrap_err().contains("past the end"));
        assert_eq!(slices_for(&[], 0, 100).unwrap(), (vec![], 0));
    }
}
