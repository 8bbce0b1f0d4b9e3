//! Ingest job queries: registration, the leased claim, heartbeats, and the
//! three ways a lease ends (complete, fail, running out).
//!
//! A lease is known to the database only as the SHA-256 of its token. Every
//! state change a worker asks for is an `UPDATE … WHERE id = $ AND state =
//! 'running' AND lease_sha256 = $`, so a worker whose job was claimed again
//! (a new lease hash) changes nothing and gets 409 `lease_lost`. A lease
//! that ran out is still honoured until another worker claims the job: a
//! slow worker that heartbeats late loses nothing nobody else wanted.
//!
//! # The claim is a compare-and-set
//!
//! [`claim`] reads a few ready candidates (oldest first), then takes one
//! with `UPDATE … WHERE id = $ AND state = $ AND attempts = $ AND <still
//! ready>`. Every claim increments `attempts`, so `(id, attempts, state)`
//! names one generation of a job: if another claimer, a heartbeat or a
//! failure got there first, the update changes 0 rows and the next
//! candidate is tried. This is the same SQL on both databases (the rule of
//! this module: one set of queries) and is atomic on each: SQLite runs one
//! writer at a time, and PostgreSQL re-checks an `UPDATE`'s `WHERE` against
//! the row as committed by a concurrent updater before changing it (READ
//! COMMITTED). `FOR UPDATE SKIP LOCKED` would spare PostgreSQL the losing
//! updates under heavy contention, but needs its own SQL and a transaction
//! per claim; claims are a few per second per worker, far from that.

use cadenza_config::ids::TrackId;
use cadenza_config::ingest::{JobState, JobStatus, JobTrack};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::catalog::{check_refs, import_in};
use super::{Db, get_unsigned, is_unique_violation, now_ms};
use crate::catalog::{Batch, ExternalRef, TrackMeta, TrackRow};
use crate::error::{ApiError, ErrorKind};
use crate::validate::echo;

/// Candidates read per round of [`claim`].
const CLAIM_CANDIDATES: i64 = 8;
/// Rounds of [`claim`] before it gives up and answers "nothing ready";
/// each lost round means other claimers took jobs, so this bounds the
/// work of one request, not progress.
const CLAIM_ROUNDS: usize = 8;
/// Longest `last_error` kept, in characters.
pub(crate) const MAX_ERROR_CHARS: usize = 2000;

/// A job to register.
#[derive(Debug)]
pub(crate) struct NewJob {
    pub(crate) id: String,
    pub(crate) album_id: Option<String>,
    pub(crate) max_attempts: u32,
    pub(crate) tracks: Vec<NewJobTrack>,
}

#[derive(Debug)]
pub(crate) struct NewJobTrack {
    pub(crate) id: TrackId,
    pub(crate) master: String,
    pub(crate) meta: TrackMeta,
}

/// A running job as the holder of its lease sees it, for completion.
#[derive(Debug)]
pub(crate) struct LeasedJob {
    pub(crate) album_id: Option<String>,
    /// In job order.
    pub(crate) tracks: Vec<NewJobTrack>,
}

/// What a [`claim`] did.
#[derive(Debug, Default)]
pub(crate) struct ClaimOutcome {
    /// The job now leased to the caller, if one was ready.
    pub(crate) job: Option<JobStatus>,
    /// Jobs found with an expired lease and no attempts left, marked failed.
    pub(crate) expired: u64,
}

/// How a retryable failure is delayed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) first_ms: u64,
    pub(crate) max_ms: u64,
}

impl Backoff {
    /// `min(first · 2^(attempts−1), max)`, in milliseconds.
    pub(crate) fn after(self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(63);
        self.first_ms.saturating_mul(1_u64 << doublings).min(self.max_ms)
    }
}

/// Insert `job`, queued, after checking `refs` (its album and artists) and
/// that none of its tracks has an unfinished job. One transaction.
pub(crate) async fn create(db: &Db, job: &NewJob, refs: &[ExternalRef]) -> Result<JobStatus, ApiError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    check_refs(&mut tx, refs).await?;
    for (i, t) in job.tracks.iter().enumerate() {
        let busy = sqlx::query(
            "SELECT j.id, j.state FROM ingest_job_tracks t JOIN ingest_jobs j ON j.id = t.job_id
             WHERE t.track_id = $1 AND j.state IN ('queued', 'running') LIMIT 1",
        )
        .bind(t.id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = busy {
            let (other, state): (String, String) = (row.try_get("id")?, row.try_get("state")?);
            return Err(in_progress(&format!(
                "tracks[{i}].id: track {} already has a {state} ingest job {}",
                echo(t.id.as_str()),
                echo(&other)
            )));
        }
    }
    sqlx::query(
        "INSERT INTO ingest_jobs (id, album_id, state, attempts, max_attempts, not_before,
             created_at, updated_at)
         VALUES ($1, $2, 'queued', 0, $3, 0, $4, $4)",
    )
    .bind(&job.id)
    .bind(job.album_id.as_deref())
    .bind(i64::from(job.max_attempts))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for (position, t) in (0_i64..).zip(&job.tracks) {
        let meta = serde_json::to_string(&t.meta).map_err(|e| ApiError::internal("job metadata", &e))?;
        sqlx::query(
            "INSERT INTO ingest_job_tracks (job_id, position, track_id, master, metadata)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&job.id)
        .bind(position)
        .bind(t.id.as_str())
        .bind(&t.master)
        .bind(meta)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            // A concurrent registration won the race for this track (the
            // unique index on unfinished jobs' tracks).
            if is_unique_violation(&e) {
                in_progress(&format!(
                    "tracks: track {} already has a queued or running ingest job",
                    echo(t.id.as_str())
                ))
            } else {
                e.into()
            }
        })?;
    }
    let status = load(&mut tx, &job.id).await?;
    tx.commit().await?;
    status.ok_or_else(|| ApiError::internal("ingest", &"job vanished inside its transaction"))
}

fn in_progress(message: &str) -> ApiError {
    ApiError::new(ErrorKind::IngestInProgress, message)
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorKind::JobNotFound, format!("id: no ingest job {}", echo(id)))
}

fn lease_lost(id: &str, why: &str) -> ApiError {
    ApiError::new(ErrorKind::LeaseLost, format!("lease: not the current lease of job {}: {why}", echo(id)))
}

/// The job's status, or `None`.
pub(crate) async fn status(db: &Db, id: &str) -> Result<Option<JobStatus>, ApiError> {
    let mut conn = db.pool().acquire().await?;
    load(&mut conn, id).await
}

/// Jobs newest first, optionally in one state.
pub(crate) async fn list(
    db: &Db,
    state: Option<JobState>,
    limit: u32,
    offset: u64,
) -> Result<Vec<JobStatus>, ApiError> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut conn = db.pool().acquire().await?;
    let ids: Vec<String> = match state {
        Some(state) => {
            sqlx::query(
                "SELECT id FROM ingest_jobs WHERE state = $1
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            )
            .bind(state.as_str())
            .bind(i64::from(limit))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            sqlx::query("SELECT id FROM ingest_jobs ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2")
                .bind(i64::from(limit))
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?
        }
    }
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        // A job is never deleted, so every listed id loads.
        if let Some(s) = load(&mut conn, &id).await? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Lease the oldest ready job to `worker` until `now + lease_ms` (see the
/// module doc for why this is safe against concurrent claims).
pub(crate) async fn claim(
    db: &Db,
    worker: &str,
    lease_sha256: &str,
    lease_ms: i64,
) -> Result<ClaimOutcome, ApiError> {
    let now = now_ms();
    let mut outcome = ClaimOutcome::default();
    for _ in 0..CLAIM_ROUNDS {
        let candidates = sqlx::query(
            "SELECT id, state, attempts, max_attempts FROM ingest_jobs
             WHERE (state = 'queued' AND not_before <= $1)
                OR (state = 'running' AND lease_expires_at <= $1)
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(now)
        .bind(CLAIM_CANDIDATES)
        .fetch_all(db.pool())
        .await?;
        if candidates.is_empty() {
            return Ok(outcome);
        }
        for row in &candidates {
            let id: String = row.try_get("id")?;
            let state: String = row.try_get("state")?;
            let attempts: i64 = row.try_get("attempts")?;
            let max_attempts: i64 = row.try_get("max_attempts")?;
            if state == "running" && attempts >= max_attempts {
                outcome.expired += u64::from(expire(db, &id, attempts, max_attempts, now).await?);
                continue;
            }
            let taken = sqlx::query(
                "UPDATE ingest_jobs SET state = 'running', attempts = attempts + 1, worker = $1,
                     lease_sha256 = $2, lease_expires_at = $3, not_before = 0, updated_at = $4
                 WHERE id = $5 AND state = $6 AND attempts = $7
                   AND ((state = 'queued' AND not_before <= $4)
                        OR (state = 'running' AND lease_expires_at <= $4))",
            )
            .bind(worker)
            .bind(lease_sha256)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(&id)
            .bind(&state)
            .bind(attempts)
            .execute(db.pool())
            .await?
            .rows_affected();
            if taken == 1 {
                outcome.job = status(db, &id).await?;
                return Ok(outcome);
            }
        }
    }
    Ok(outcome)
}

/// Fail a running job whose lease ran out with no attempts left, if it is
/// still in that state. `true` if this call failed it.
async fn expire(db: &Db, id: &str, attempts: i64, max_attempts: i64, now: i64) -> Result<bool, ApiError> {
    let mut tx = db.begin_write().await?;
    let previous: Option<String> = sqlx::query("SELECT last_error FROM ingest_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("last_error"))
        .transpose()?
        .flatten();
    let mut error = format!(
        "lease expired on attempt {attempts} of {max_attempts}: no attempts left \
         (the worker stopped heartbeating)"
    );
    if let Some(p) = previous {
        error = format!("{error}; earlier: {p}");
    }
    let changed = sqlx::query(
        "UPDATE ingest_jobs SET state = 'failed', lease_sha256 = NULL, lease_expires_at = NULL,
             last_error = $1, updated_at = $2
         WHERE id = $3 AND state = 'running' AND attempts = $4 AND lease_expires_at <= $2",
    )
    .bind(truncate(&error))
    .bind(now)
    .bind(id)
    .bind(attempts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    finish_tracks(&mut tx, id).await?;
    tx.commit().await?;
    tracing::warn!(job = id, attempts, "ingest job failed: lease expired with no attempts left");
    Ok(true)
}

/// Extend the lease to `now + lease_ms`.
pub(crate) async fn heartbeat(
    db: &Db,
    id: &str,
    lease_sha256: &str,
    lease_ms: i64,
) -> Result<JobStatus, ApiError> {
    let now = now_ms();
    let changed = sqlx::query(
        "UPDATE ingest_jobs SET lease_expires_at = $1, updated_at = $2
         WHERE id = $3 AND state = 'running' AND lease_sha256 = $4",
    )
    .bind(now.saturating_add(lease_ms))
    .bind(now)
    .bind(id)
    .bind(lease_sha256)
    .execute(db.pool())
    .await?
    .rows_affected();
    let status = status(db, id).await?.ok_or_else(|| not_found(id))?;
    if changed == 0 {
        return Err(lost(id, &status));
    }
    Ok(status)
}

/// 409 for a lease that does not hold `status`'s job.
fn lost(id: &str, status: &JobStatus) -> ApiError {
    match status.state {
        JobState::Running => lease_lost(id, "the job was claimed again"),
        other => lease_lost(id, &format!("the job is {}", other.as_str())),
    }
}

/// The job's album and tracks with their metadata, if `lease_sha256`
/// holds it now.
pub(crate) async fn leased(db: &Db, id: &str, lease_sha256: &str) -> Result<LeasedJob, ApiError> {
    let mut conn = db.pool().acquire().await?;
    let row = sqlx::query("SELECT album_id, state, lease_sha256 FROM ingest_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| not_found(id))?;
    let state: String = row.try_get("state")?;
    let held: Option<String> = row.try_get("lease_sha256")?;
    if state != "running" {
        return Err(lease_lost(id, &format!("the job is {state}")));
    }
    if held.as_deref() != Some(lease_sha256) {
        return Err(lease_lost(id, "the job was claimed again"));
    }
    let tracks = sqlx::query(
        "SELECT track_id, master, metadata FROM ingest_job_tracks WHERE job_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        let track_id: String = r.try_get("track_id")?;
        let meta: String = r.try_get("metadata")?;
        Ok(NewJobTrack {
            id: track_id.parse().map_err(|e| ApiError::internal("ingest_job_tracks", &e))?,
            master: r.try_get("master")?,
            meta: serde_json::from_str(&meta).map_err(|e| ApiError::internal("job metadata", &e))?,
        })
    })
    .collect::<Result<_, ApiError>>()?;
    Ok(LeasedJob { album_id: row.try_get("album_id")?, tracks })
}

/// Register `tracks` in the catalog and mark the job done, in one
/// transaction, if `lease_sha256` still holds it.
pub(crate) async fn complete(
    db: &Db,
    id: &str,
    lease_sha256: &str,
    tracks: Vec<TrackRow>,
) -> Result<JobStatus, ApiError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    // First, so that on PostgreSQL the row is locked before the catalog is
    // touched: a concurrent claim waits and then finds the job done.
    let changed = sqlx::query(
        "UPDATE ingest_jobs SET state = 'done', lease_sha256 = NULL, lease_expires_at = NULL,
             updated_at = $1
         WHERE id = $2 AND state = 'running' AND lease_sha256 = $3",
    )
    .bind(now)
    .bind(id)
    .bind(lease_sha256)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        drop(tx);
        let status = status(db, id).await?.ok_or_else(|| not_found(id))?;
        return Err(lost(id, &status));
    }
    finish_tracks(&mut tx, id).await?;
    let batch = Batch { artists: Vec::new(), albums: Vec::new(), tracks };
    import_in(&mut tx, db.backend(), &batch, now).await?;
    let status = load(&mut tx, id).await?;
    tx.commit().await?;
    status.ok_or_else(|| ApiError::internal("ingest", &"job vanished inside its transaction"))
}

/// End the lease with a failure: failed at once unless `retryable`, else
/// queued again after `backoff` while attempts remain. `error` is stored
/// truncated to [`MAX_ERROR_CHARS`].
pub(crate) async fn fail(
    db: &Db,
    id: &str,
    lease_sha256: &str,
    error: &str,
    retryable: bool,
    backoff: Backoff,
) -> Result<JobStatus, ApiError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT attempts, max_attempts FROM ingest_jobs
         WHERE id = $1 AND state = 'running' AND lease_sha256 = $2",
    )
    .bind(id)
    .bind(lease_sha256)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        drop(tx);
        let status = status(db, id).await?.ok_or_else(|| not_found(id))?;
        return Err(lost(id, &status));
    };
    let attempts: u32 = get_unsigned(&row, "attempts")?;
    let max_attempts: u32 = get_unsigned(&row, "max_attempts")?;
    let requeue = retryable && attempts < max_attempts;
    let (state, not_before) = if requeue {
        let delay = i64::try_from(backoff.after(attempts)).unwrap_or(i64::MAX);
        (JobState::Queued, now.saturating_add(delay))
    } else {
        (JobState::Failed, 0)
    };
    let changed = sqlx::query(
        "UPDATE ingest_jobs SET state = $1, not_before = $2, last_error = $3,
             lease_sha256 = NULL, lease_expires_at = NULL, updated_at = $4
         WHERE id = $5 AND state = 'running' AND lease_sha256 = $6 AND attempts = $7",
    )
    .bind(state.as_str())
    .bind(not_before)
    .bind(truncate(error))
    .bind(now)
    .bind(id)
    .bind(lease_sha256)
    .bind(i64::from(attempts))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(lease_lost(id, "the job was claimed again"));
    }
    if state == JobState::Failed {
        finish_tracks(&mut tx, id).await?;
    }
    let status = load(&mut tx, id).await?;
    tx.commit().await?;
    status.ok_or_else(|| ApiError::internal("ingest", &"job vanished inside its transaction"))
}

/// Jobs per state, for the metrics gauge.
pub(crate) async fn counts(db: &Db) -> Result<Vec<(JobState, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM ingest_jobs GROUP BY state")
        .fetch_all(db.pool())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let state: String = row.try_get("state")?;
        if let Some(state) = JobState::parse(&state) {
            out.push((state, row.try_get("n")?));
        }
    }
    Ok(out)
}

/// The job's tracks may be ingested again by a new job.
async fn finish_tracks(tx: &mut Transaction<'static, Any>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ingest_job_tracks SET active = FALSE WHERE job_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// At most [`MAX_ERROR_CHARS`] characters of `s`.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Read job `id` and its tracks on `conn`.
async fn load(conn: &mut AnyConnection, id: &str) -> Result<Option<JobStatus>, ApiError> {
    let row = sqlx::query(
        "SELECT id, album_id, state, attempts, max_attempts, worker, lease_expires_at, not_before,
                last_error, created_at, updated_at
         FROM ingest_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let tracks =
        sqlx::query("SELECT track_id, master FROM ingest_job_tracks WHERE job_id = $1 ORDER BY position")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                let track_id: String = r.try_get("track_id")?;
                Ok(JobTrack {
                    track_id: track_id.parse().map_err(|e| ApiError::internal("ingest_job_tracks", &e))?,
                    master: r.try_get("master")?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
    job_status(&row, tracks).map(Some)
}

fn job_status(row: &AnyRow, tracks: Vec<JobTrack>) -> Result<JobStatus, ApiError> {
    let state: String = row.try_get("state")?;
    let state = JobState::parse(&state)
        .ok_or_else(|| ApiError::internal("ingest_jobs", &format!("state {state:?} in db")))?;
    let secs = |ms: i64| u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
    let lease_expires_at: Option<i64> = row.try_get("lease_expires_at")?;
    let not_before: i64 = row.try_get("not_before")?;
    Ok(JobStatus {
        id: row.try_get("id")?,
        state,
        attempts: get_unsigned(row, "attempts")?,
        max_attempts: get_unsigned(row, "max_attempts")?,
        album_id: row.try_get("album_id")?,
        tracks,
        worker: row.try_get("worker")?,
        // Rounded down: a worker renewing by this time is never late.
        lease_expires_at: lease_expires_at.filter(|_| state == JobState::Running).map(secs),
        // Rounded up: the job is not handed out before this second.
        not_before: (state == JobState::Queued && not_before > 0)
            .then(|| secs(not_before.saturating_add(999))),
        last_error: row.try_get("last_error")?,
        created_at: secs(row.try_get("created_at")?),
        updated_at: secs(row.try_get("updated_at")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff { first_ms: 30_000, max_ms: 900_000 };
        let got: Vec<u64> = (1..=7).map(|a| b.after(a)).collect();
        assert_eq!(got, vec![30_000, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000]);
        assert_eq!(b.after(0), 30_000);
        assert_eq!(b.after(u32::MAX), 900_000, "no overflow");
        let huge = Backoff { first_ms: u64::MAX / 2, max_ms: u64::MAX };
        assert_eq!(huge.after(10), u64::MAX, "saturates");
    }

    #[test]
    fn errors_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(MAX_ERROR_CHARS + 5);
        assert_eq!(truncate(&long).chars().count(), MAX_ERROR_CHARS);
    }
}
