//! The ingest job queue: registration and status for admins
//! (`/v1/admin/ingest*`), claim, heartbeat, complete and fail for
//! transcoder workers (`/v1/ingest/*`, worker or admin token). The worker
//! bodies are [`cadenza_config::ingest`]'s; see [`crate::db::ingest`] for
//! the lease rules and the claim's compare-and-set.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cadenza_config::ids::{TrackId, is_opaque_id, random_id};
use cadenza_config::ingest::{
    ClaimRequest, CompleteRequest, FailRequest, IngestJob, JobState, JobStatus, LEASE_SECONDS, LeaseRequest,
    MAX_JOB_TRACKS, is_master_key, is_worker_name,
};
use cadenza_config::layout::MASTERS_PREFIX;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::{Admin, Worker, new_token, token_sha256};
use crate::catalog::{ExternalRef, MetaFields, RefTable, TrackMeta, TrackRow, unique};
use crate::db::ingest::{self, Backoff, NewJob, NewJobTrack};
use crate::error::ApiError;
use crate::metrics::IngestEvent;
use crate::types::{IngestJobList, IngestRequest, schema};
use crate::validate::{self, echo};

/// Default and largest page of `GET /v1/admin/ingest`.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// Longest lease token accepted (ours are 43 characters).
const MAX_LEASE_LEN: usize = 128;

/// `POST /v1/admin/ingest`: validate every field, then, in one
/// transaction, check the album and artists exist and no track has an
/// unfinished job, and queue the job. 202 with its status.
#[utoipa::path(post, path = "/v1/admin/ingest", tag = "admin", security(("admin" = [])),
    request_body = IngestRequest,
    responses(
        (status = 202, description = "The job, queued.", body = schema::JobStatus),
        (status = 400, description = "`invalid_request`: the message names the field (also an album or artist not in the catalog)."),
        (status = 409, description = "`ingest_in_progress`: a track already has a queued or running job."),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<IngestRequest>,
) -> Result<Response, ApiError> {
    let (job, refs) = validate_request(req, state.config().ingest.max_attempts)?;
    let status = ingest::create(state.db(), &job, &refs).await?;
    state.metrics().ingest(IngestEvent::Registered, 1);
    tracing::info!(job = %status.id, tracks = status.tracks.len(), album = ?status.album_id, "ingest job queued");
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

fn validate_request(req: IngestRequest, max_attempts: u32) -> Result<(NewJob, Vec<ExternalRef>), ApiError> {
    if !(1..=MAX_JOB_TRACKS).contains(&req.tracks.len()) {
        return Err(ApiError::invalid(format!(
            "tracks: must hold 1 to {MAX_JOB_TRACKS} tracks, got {}",
            req.tracks.len()
        )));
    }
    let album_id = req.album_id.as_deref().map(|a| validate::id("album_id", a)).transpose()?;
    let mut refs = Vec::new();
    let mut push = |path: String, table: RefTable, id: &str| {
        if !refs.iter().any(|r: &ExternalRef| r.table == table && r.id == id) {
            refs.push(ExternalRef { path, table, id: id.to_owned() });
        }
    };
    if let Some(album) = &album_id {
        push("album_id".into(), RefTable::Album, album);
    }
    let mut tracks = Vec::with_capacity(req.tracks.len());
    for (i, t) in req.tracks.into_iter().enumerate() {
        let path = format!("tracks[{i}]");
        let meta = TrackMeta::validate(
            &path,
            MetaFields {
                album_id: &t.album_id,
                title: &t.title,
                track_number: t.track_number,
                disc_number: t.disc_number,
                explicit: t.explicit,
                isrc: t.isrc.as_deref(),
                artist_ids: &t.artist_ids,
            },
        )?;
        if !is_master_key(&t.master) {
            return Err(ApiError::invalid(format!(
                "{path}.master: must be a store key under {MASTERS_PREFIX} of at most 512 characters of \
                 [A-Za-z0-9._/-] with no empty, \".\" or \"..\" segment, got {}",
                echo(&t.master)
            )));
        }
        if let Some(album) = &album_id
            && &meta.album_id != album
        {
            return Err(ApiError::invalid(format!(
                "{path}.album_id: {} is not the job's album_id {}",
                echo(&meta.album_id),
                echo(album)
            )));
        }
        push(format!("{path}.album_id"), RefTable::Album, &meta.album_id);
        for (j, artist) in meta.artist_ids.iter().enumerate() {
            push(format!("{path}.artist_ids[{j}]"), RefTable::Artist, artist);
        }
        tracks.push(NewJobTrack { id: t.id, master: t.master, meta });
    }
    unique(tracks.iter().map(|t| t.id.as_str()), "tracks", "job")?;
    let job = NewJob { id: random_id(22), album_id, max_attempts, tracks };
    Ok((job, refs))
}

/// `GET /v1/admin/ingest/{id}`.
#[utoipa::path(get, path = "/v1/admin/ingest/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = schema::Id, Path, description = "Job id.")),
    responses(
        (status = 200, description = "The job's status.", body = schema::JobStatus),
        (status = 400, description = "`invalid_request`: not a job id."),
        (status = 404, description = "`job_not_found`."),
    ))]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobStatus>, ApiError> {
    let id = job_id(&id)?;
    ingest::status(state.db(), &id).await?.map(Json).ok_or_else(|| ingest::not_found(&id))
}

/// Query of `GET /v1/admin/ingest`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<schema::JobState>)]
    state: Option<String>,
    /// Jobs per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    #[param(default = 0)]
    offset: Option<u64>,
}

/// `GET /v1/admin/ingest?state=&limit=&offset=`: newest first.
#[utoipa::path(get, path = "/v1/admin/ingest", tag = "admin", security(("admin" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Jobs, newest first.", body = IngestJobList),
        (status = 400, description = "`invalid_request`: an unknown `state`, a bad `limit`/`offset`."),
    ))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<IngestJobList>, ApiError> {
    let job_state = q
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "state: must be one of queued, running, done, failed, got {}",
                    echo(s)
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit: must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    let jobs = ingest::list(state.db(), job_state, limit, q.offset.unwrap_or(0)).await?;
    Ok(Json(IngestJobList { jobs }))
}

/// `POST /v1/ingest/claim`: 200 with the oldest ready job, leased to the
/// caller, or 204 when none is ready.
#[utoipa::path(post, path = "/v1/ingest/claim", tag = "ingest", security(("worker" = [])),
    request_body = schema::ClaimRequest,
    responses(
        (status = 200, description = "The oldest ready job, leased to the caller.", body = schema::IngestJob),
        (status = 204, description = "No job is ready."),
        (status = 400, description = "`invalid_request`: a bad `worker` name or `lease_seconds`."),
    ))]
pub(crate) async fn claim(
    State(state): State<AppState>,
    _worker: Worker,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    if !is_worker_name(&req.worker) {
        return Err(ApiError::invalid(format!(
            "worker: must be 1-64 characters of [A-Za-z0-9_.-], got {}",
            echo(&req.worker)
        )));
    }
    let lease_ms = lease_ms(req.lease_seconds)?;
    let lease = new_token();
    let outcome = ingest::claim(state.db(), &req.worker, &token_sha256(&lease), lease_ms).await?;
    state.metrics().ingest(IngestEvent::Failed, outcome.expired);
    let Some(job) = outcome.job else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    state.metrics().ingest(IngestEvent::Claimed, 1);
    tracing::info!(job = %job.id, worker = %req.worker, attempt = job.attempts, "ingest job claimed");
    let Some(lease_expires_at) = job.lease_expires_at else {
        return Err(ApiError::internal("claim", &"claimed job has no lease expiry"));
    };
    Ok(Json(IngestJob {
        id: job.id,
        lease,
        attempt: job.attempts,
        lease_expires_at,
        album_id: job.album_id,
        tracks: job.tracks,
    })
    .into_response())
}

/// `POST /v1/ingest/jobs/{id}/heartbeat`: extend the lease.
#[utoipa::path(post, path = "/v1/ingest/jobs/{id}/heartbeat", tag = "ingest", security(("worker" = [])),
    params(("id" = schema::Id, Path, description = "Job id.")),
    request_body = schema::LeaseRequest,
    responses(
        (status = 200, description = "The job's status, lease extended.", body = schema::JobStatus),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`job_not_found`."),
        (status = 409, description = "`lease_lost`: not the job's current lease (taken over, or finished); nothing changed."),
    ))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    _worker: Worker,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> Result<Json<JobStatus>, ApiError> {
    let id = job_id(&id)?;
    let lease = lease_hash(&req.lease)?;
    let lease_ms = lease_ms(req.lease_seconds)?;
    ingest::heartbeat(state.db(), &id, &lease, lease_ms).await.map(Json)
}

/// `POST /v1/ingest/jobs/{id}/complete`: with the current lease, one
/// manifest per job track; registers the tracks in the catalog and marks
/// the job done in one transaction.
#[utoipa::path(post, path = "/v1/ingest/jobs/{id}/complete", tag = "ingest", security(("worker" = [])),
    params(("id" = schema::Id, Path, description = "Job id.")),
    request_body = schema::CompleteRequest,
    responses(
        (status = 200, description = "The job's status: done, tracks registered in the catalog.", body = schema::JobStatus),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`job_not_found`."),
        (status = 409, description = "`lease_lost`: not the job's current lease (taken over, or finished); nothing changed."),
    ))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    _worker: Worker,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<JobStatus>, ApiError> {
    let id = job_id(&id)?;
    let lease = lease_hash(&req.lease)?;
    // A late worker learns it lost the lease before its manifests are read.
    let job = ingest::leased(state.db(), &id, &lease).await?;
    if req.manifests.len() != job.tracks.len() {
        return Err(ApiError::invalid(format!(
            "manifests: the job has {} tracks, so needs one manifest each, got {}",
            job.tracks.len(),
            req.manifests.len()
        )));
    }
    let mut by_id: HashMap<&TrackId, (&NewJobTrack, bool)> =
        job.tracks.iter().map(|t| (&t.id, (t, false))).collect();
    let mut rows = Vec::with_capacity(req.manifests.len());
    for (i, m) in req.manifests.iter().enumerate() {
        let path = format!("manifests[{i}]");
        let Some((track, seen)) = by_id.get_mut(&m.track_id) else {
            return Err(ApiError::invalid(format!(
                "{path}.track_id: {} is not a track of job {}",
                echo(m.track_id.as_str()),
                echo(&id)
            )));
        };
        if std::mem::replace(seen, true) {
            return Err(ApiError::invalid(format!(
                "{path}.track_id: {} has a manifest already",
                echo(m.track_id.as_str())
            )));
        }
        let row = TrackRow::new(&path, track.id.clone(), track.meta.clone(), m, None)?;
        let album = m.album.as_ref().map(|a| a.id.as_str());
        match (&job.album_id, album) {
            (Some(want), None) => {
                return Err(ApiError::invalid(format!(
                    "{path}.album: missing; job {} ingests album {} together",
                    echo(&id),
                    echo(want)
                )));
            }
            (Some(want), Some(got)) if got != want => {
                return Err(ApiError::invalid(format!(
                    "{path}.album.id: {} is not the job's album {}",
                    echo(got),
                    echo(want)
                )));
            }
            (None, Some(got)) if got != track.meta.album_id => {
                return Err(ApiError::invalid(format!(
                    "{path}.album.id: {} is not the track's album {}",
                    echo(got),
                    echo(&track.meta.album_id)
                )));
            }
            _ => {}
        }
        rows.push(row);
    }
    let status = ingest::complete(state.db(), &id, &lease, rows).await?;
    state.catalog_changed();
    state.metrics().ingest(IngestEvent::Completed, 1);
    tracing::info!(job = %id, tracks = status.tracks.len(), "ingest job done: tracks registered");
    Ok(Json(status))
}

/// `POST /v1/ingest/jobs/{id}/fail`: with the current lease; failed at
/// once unless `retryable`, else queued again after the backoff while
/// attempts remain.
#[utoipa::path(post, path = "/v1/ingest/jobs/{id}/fail", tag = "ingest", security(("worker" = [])),
    params(("id" = schema::Id, Path, description = "Job id.")),
    request_body = schema::FailRequest,
    responses(
        (status = 200, description = "The job's status: failed, or queued again after the backoff.", body = schema::JobStatus),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`job_not_found`."),
        (status = 409, description = "`lease_lost`: not the job's current lease (taken over, or finished); nothing changed."),
    ))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    _worker: Worker,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<FailRequest>,
) -> Result<Json<JobStatus>, ApiError> {
    let id = job_id(&id)?;
    let lease = lease_hash(&req.lease)?;
    let error = req.error.trim();
    if error.is_empty() {
        return Err(ApiError::invalid("error: must not be empty"));
    }
    let config = &state.config().ingest;
    let backoff = Backoff {
        first_ms: millis(config.retry_backoff.get()),
        max_ms: millis(config.max_retry_backoff.get()),
    };
    let status = ingest::fail(state.db(), &id, &lease, error, req.retryable, backoff).await?;
    let event = if status.state == JobState::Queued { IngestEvent::Retried } else { IngestEvent::Failed };
    state.metrics().ingest(event, 1);
    tracing::warn!(
        job = %id,
        retryable = req.retryable,
        state = status.state.as_str(),
        attempt = status.attempts,
        error = %status.last_error.as_deref().unwrap_or_default(),
        "ingest job attempt failed"
    );
    Ok(Json(status))
}

fn job_id(id: &str) -> Result<String, ApiError> {
    validate::id("id", id)
}

/// The stored form of a presented lease token; 400 if it cannot be one.
fn lease_hash(lease: &str) -> Result<String, ApiError> {
    if is_opaque_id(lease, MAX_LEASE_LEN) {
        Ok(token_sha256(lease))
    } else {
        // Never echo it: it may be a real lease, mangled.
        Err(ApiError::invalid(format!("lease: must be 1-{MAX_LEASE_LEN} characters of [A-Za-z0-9_-]")))
    }
}

fn lease_ms(seconds: u32) -> Result<i64, ApiError> {
    if LEASE_SECONDS.contains(&seconds) {
        Ok(i64::from(seconds) * 1000)
    } else {
        Err(ApiError::invalid(format!(
            "lease_seconds: must be between {} and {}, got {seconds}",
            LEASE_SECONDS.start(),
            LEASE_SECONDS.end()
        )))
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
