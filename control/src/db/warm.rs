//! Warm job queries: create, the leased claim of a due job, the holder's
//! progress writes (which renew the lease), finish, cancel, read.
//!
//! As with ingest jobs ([`super::ingest`]), the claim is a compare-and-set
//! on `(id, claims)`: a replica reads a few due candidates, then takes one
//! with `UPDATE … WHERE id = $ AND claims = $ AND <still due>`, which
//! changes no row if another replica got there first. Every write the
//! holder makes names `lease_owner` and `claims`, so a replica whose lease
//! ran out and was taken over changes nothing.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, now_ms};
use crate::error::ApiError;

/// Candidates read per claim.
const CLAIM_CANDIDATES: i64 = 8;
/// Most jobs `GET /v1/admin/warm` lists.
pub(crate) const LIST_LIMIT: i64 = 100;

/// A warm job's row.
#[derive(Debug, Clone)]
pub(crate) struct WarmRow {
    pub(crate) id: String,
    pub(crate) state: String,
    pub(crate) request: String,
    pub(crate) progress: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) start_at: i64,
    pub(crate) deadline_at: Option<i64>,
    pub(crate) claims: i64,
    pub(crate) created_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
}

const COLUMNS: &str =
    "id, state, request, progress, error, start_at, deadline_at, claims, created_at, started_at, finished_at";

fn row(r: &AnyRow) -> Result<WarmRow, sqlx::Error> {
    Ok(WarmRow {
        id: r.try_get("id")?,
        state: r.try_get("state")?,
        request: r.try_get("request")?,
        progress: r.try_get("progress")?,
        error: r.try_get("error")?,
        start_at: r.try_get("start_at")?,
        deadline_at: r.try_get("deadline_at")?,
        claims: r.try_get("claims")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// Insert a scheduled job (`progress`: its plan, if made already).
pub(crate) async fn create(
    db: &Db,
    id: &str,
    request: &str,
    progress: Option<&str>,
    start_at: i64,
    deadline_at: Option<i64>,
) -> Result<WarmRow, ApiError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO warm_jobs (id, state, request, progress, start_at, deadline_at, created_at, updated_at)
         VALUES ($1, 'scheduled', $2, $3, $4, $5, $6, $6)",
    )
    .bind(id)
    .bind(request)
    .bind(progress)
    .bind(start_at)
    .bind(deadline_at)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(get(db, id).await?.expect("the job was just inserted"))
}

pub(crate) async fn get(db: &Db, id: &str) -> Result<Option<WarmRow>, ApiError> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM warm_jobs WHERE id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(row).transpose()?)
}

/// The newest jobs first.
pub(crate) async fn list(db: &Db) -> Result<Vec<WarmRow>, ApiError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM warm_jobs ORDER BY created_at DESC, id LIMIT $1"
    )))
    .bind(LIST_LIMIT)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
}

/// Take one due job (scheduled and past its `start_at`, or running under a
/// lease that ran out) for `owner` until `now + lease_ms`.
pub(crate) async fn claim(db: &Db, owner: &str, lease_ms: i64) -> Result<Option<WarmRow>, sqlx::Error> {
    let now = now_ms();
    let due = "((state = 'scheduled' AND start_at <= $1) OR (state = 'running' AND lease_until < $1))";
    let candidates = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, claims FROM warm_jobs WHERE {due} ORDER BY start_at, id LIMIT {CLAIM_CANDIDATES}"
    )))
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    for c in candidates {
        let (id, claims): (String, i64) = (c.try_get("id")?, c.try_get("claims")?);
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE warm_jobs SET state = 'running', lease_owner = $2, lease_until = $3, claims = claims + 1,
                 started_at = COALESCE(started_at, $1), updated_at = $1
             WHERE id = $4 AND claims = $5 AND {due}"
        )))
        .bind(now)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(&id)
        .bind(claims)
        .execute(db.pool())
        .await?;
        if done.rows_affected() == 1 {
            let r =
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM warm_jobs WHERE id = $1")))
                    .bind(&id)
                    .fetch_one(db.pool())
                    .await?;
            return row(&r).map(Some);
        }
    }
    Ok(None)
}

/// What a holder's write found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Written; the lease runs on.
    Yes,
    /// Cancelled meanwhile (the progress was still written).
    Cancelled,
    /// Another replica holds the job now, or it ended: nothing written.
    Lost,
}

/// Write the run's progress and renew the lease.
pub(crate) async fn progress(
    db: &Db,
    id: &str,
    owner: &str,
    claims: i64,
    progress: &str,
    lease_ms: i64,
) -> Result<Held, sqlx::Error> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE warm_jobs SET progress = $1, lease_until = $2, updated_at = $3
         WHERE id = $4 AND lease_owner = $5 AND claims = $6 AND state = 'running'",
    )
    .bind(progress)
    .bind(now + lease_ms)
    .bind(now)
    .bind(id)
    .bind(owner)
    .bind(claims)
    .execute(db.pool())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Held::Yes);
    }
    // Cancelled while this replica held it: keep the last progress.
    let done = sqlx::query(
        "UPDATE warm_jobs SET progress = $1, updated_at = $2
         WHERE id = $3 AND lease_owner = $4 AND claims = $5 AND state = 'cancelled'",
    )
    .bind(progress)
    .bind(now)
    .bind(id)
    .bind(owner)
    .bind(claims)
    .execute(db.pool())
    .await?;
    Ok(if done.rows_affected() == 1 { Held::Cancelled } else { Held::Lost })
}

/// End a running job (`done` or `failed`) with its last progress.
pub(crate) async fn finish(
    db: &Db,
    id: &str,
    owner: &str,
    claims: i64,
    state: &str,
    progress: Option<&str>,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE warm_jobs SET state = $1, progress = COALESCE($2, progress), error = $3, finished_at = $4,
             updated_at = $4, lease_until = 0
         WHERE id = $5 AND lease_owner = $6 AND claims = $7 AND state = 'running'",
    )
    .bind(state)
    .bind(progress)
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(owner)
    .bind(claims)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancel a scheduled or running job; `false` if it had ended (or does
/// not exist).
pub(crate) async fn cancel(db: &Db, id: &str) -> Result<bool, ApiError> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE warm_jobs SET state = 'cancelled', error = 'cancelled', finished_at = $1, updated_at = $1
         WHERE id = $2 AND state IN ('scheduled', 'running')",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Jobs by state.
pub(crate) async fn counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT state, COUNT(*) AS n FROM warm_jobs GROUP BY state").fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
}

/// One file to warm.
#[derive(Debug, Clone)]
pub(crate) struct FileRow {
    pub(crate) track_id: String,
    pub(crate) kbps: u32,
    pub(crate) file_id: String,
    pub(crate) size: u64,
}

/// The renditions of an album's tracks (disc and track order), of a
/// playlist's tracks (its order, each track once), or of listed tracks;
/// lowest bitrate first within a track.
pub(crate) async fn files_of(db: &Db, what: &Target<'_>) -> Result<Vec<FileRow>, ApiError> {
    let cols = "t.id AS track_id, f.bitrate_kbps, f.file_id, f.size";
    let rows = match what {
        Target::Album(id) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM tracks t JOIN track_files f ON f.track_id = t.id
                 WHERE t.album_id = $1 ORDER BY t.disc_number, t.track_number, t.id, f.bitrate_kbps"
            )))
            .bind(*id)
            .fetch_all(db.pool())
            .await?
        }
        Target::Playlist(id) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM (SELECT track_id, MIN(position) AS first FROM playlist_items
                                     WHERE playlist_id = $1 GROUP BY track_id) p
                 JOIN tracks t ON t.id = p.track_id JOIN track_files f ON f.track_id = t.id
                 ORDER BY p.first, f.bitrate_kbps"
            )))
            .bind(*id)
            .fetch_all(db.pool())
            .await?
        }
        Target::Tracks(ids) => {
            // A few IN lists, then the listed order (a track listed twice
            // comes once, where it is first listed).
            let mut rows = Vec::new();
            for chunk in ids.chunks(super::catalog::IDS_PER_QUERY) {
                let sql = format!(
                    "SELECT {cols} FROM tracks t JOIN track_files f ON f.track_id = t.id
                     WHERE t.id IN ({})",
                    super::catalog::placeholders(1, chunk.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                rows.extend(q.fetch_all(db.pool()).await?);
            }
            let mut first = std::collections::HashMap::new();
            for (i, id) in ids.iter().enumerate() {
                first.entry(id.as_str()).or_insert(i);
            }
            rows.sort_by_cached_key(|r: &AnyRow| {
                let id: String = r.try_get("track_id").unwrap_or_default();
                let kbps: i64 = r.try_get("bitrate_kbps").unwrap_or_default();
                (first.get(id.as_str()).copied().unwrap_or(usize::MAX), kbps)
            });
            rows
        }
    };
    let mut files = Vec::with_capacity(rows.len());
    for r in &rows {
        files.push(FileRow {
            track_id: r.try_get("track_id")?,
            kbps: super::get_unsigned(r, "bitrate_kbps")?,
            file_id: r.try_get("file_id")?,
            size: super::get_unsigned(r, "size")?,
        });
    }
    Ok(files)
}

/// What a warm job names.
#[derive(Debug)]
pub(crate) enum Target<'a> {
    Album(&'a str),
    Playlist(&'a str),
    Tracks(&'a [String]),
}
