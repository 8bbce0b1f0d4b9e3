//! `POST /v1/admin/warm` and the job it makes: see [`crate::warm`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Admin;
use crate::db::{now_ms, warm as store};
use crate::error::{ApiError, ErrorKind};
use crate::types::{WarmJob, WarmJobList, WarmRequest};
use crate::validate::echo;
use crate::warm;

/// Start a warm job, or schedule one (`start_at`, `before_release`).
#[utoipa::path(post, path = "/v1/admin/warm", tag = "admin", security(("admin" = [])),
    request_body = WarmRequest,
    responses(
        (status = 202, description = "The job, scheduled; `Location` is its URL. A job due now is planned at once (its files and POPs are in the answer) and runs within `warm.poll_interval`.", body = WarmJob),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`album_not_found`, `track_not_found` or `playlist_not_found`."),
        (status = 422, description = "`nothing_to_warm` (no published audio at those rungs), `no_warmable_pops` (no healthy POP with an admin token matches), `deadline_unreachable` (the origin budget cannot move the bytes in time)."),
    ))]
pub(crate) async fn start_warm(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<WarmRequest>,
) -> Result<Response, ApiError> {
    let (start_at, deadline) = warm::validate(&state, &req).await?;
    // A job due now is planned now, so a request that cannot run fails
    // here and not in the background. A scheduled one is planned when it
    // starts (its audio may still be on the way).
    let plan = if start_at <= now_ms() { Some(warm::plan(&state, &req).await?) } else { None };
    if let (Some(run), Some(deadline)) = (&plan, deadline)
        && let Some(secs) = run.seconds_at_budget(req.origin_bytes_per_second)
        && start_at.max(now_ms()) as f64 + secs * 1000.0 > deadline as f64
    {
        return Err(ApiError::new(
            ErrorKind::DeadlineUnreachable,
            format!(
                "deadline_at: moving {} bytes from the origin at origin_bytes_per_second takes {secs:.0} s, past the deadline",
                run.pops.iter().filter(|p| p.view.parent.is_none()).map(|p| p.view.bytes_total).sum::<u64>()
            ),
        ));
    }
    let id = cadenza_config::ids::random_id(16);
    let request = serde_json::to_string(&req).expect("a request serialises");
    let progress = plan.as_ref().map(|p| serde_json::to_string(p).expect("a run serialises"));
    let row = store::create(state.db(), &id, &request, progress.as_deref(), start_at, deadline).await?;
    let job = warm::view(&row, true);
    tracing::info!(job = %id, files = job.files_total, pops = job.pops.len(), start_at, "warm job created");
    let mut resp = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/admin/warm/{id}")) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

/// The newest warm jobs, without per-file detail.
#[utoipa::path(get, path = "/v1/admin/warm", tag = "admin", security(("admin" = [])),
    responses((status = 200, description = "The newest 100 jobs, newest first.", body = WarmJobList)))]
pub(crate) async fn list_warm_jobs(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<WarmJobList>, ApiError> {
    let rows = store::list(state.db()).await?;
    Ok(Json(WarmJobList { jobs: rows.iter().map(|r| warm::view(r, false)).collect() }))
}

/// One warm job: per POP and per file state, bytes, errors, ETA.
#[utoipa::path(get, path = "/v1/admin/warm/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job.", body = WarmJob),
        (status = 404, description = "`warm_job_not_found`."),
    ))]
pub(crate) async fn get_warm_job(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WarmJob>, ApiError> {
    let row = store::get(state.db(), &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(warm::view(&row, true)))
}

/// Cancel a scheduled or running job: the POPs' jobs are cancelled within
/// `warm.poll_interval` (slices already fetched stay cached).
#[utoipa::path(delete, path = "/v1/admin/warm/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancelled.", body = WarmJob),
        (status = 404, description = "`warm_job_not_found`."),
        (status = 409, description = "`warm_job_ended`: it is done, failed or cancelled already."),
    ))]
pub(crate) async fn cancel_warm_job(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    if !store::cancel(state.db(), &id).await? {
        let row = store::get(state.db(), &id).await?.ok_or_else(|| not_found(&id))?;
        return Err(ApiError::new(
            ErrorKind::WarmJobEnded,
            format!("id: warm job {} is {} already", echo(&id), row.state),
        ));
    }
    tracing::info!(job = %id, "warm job cancelled");
    let row = store::get(state.db(), &id).await?.ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::ACCEPTED, Json(warm::view(&row, true))).into_response())
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorKind::WarmJobNotFound, format!("id: no warm job {}", echo(id)))
}
