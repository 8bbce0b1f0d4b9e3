//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ErrorKind};
use crate::types::schema;

/// `GET /healthz`: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up.", body = schema::Health)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers; 503 `unavailable` otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The database answers.", body = schema::Health),
        (status = 503, description = "`unavailable`: the database does not answer."),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.db().ping().await {
        Ok(()) => Ok(Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(ErrorKind::Unavailable, "database: not reachable"))
        }
    }
}

/// `GET /metrics`: Prometheus text exposition format 0.0.4. The ingest and
/// warm jobs-by-state gauges are read from the database first (kept as it was if
/// the database does not answer).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.",
        content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match crate::db::ingest::counts(state.db()).await {
        Ok(counts) => state.metrics().set_ingest_jobs(&counts),
        Err(e) => tracing::warn!(error = %e, "ingest job counts for /metrics"),
    }
    match crate::db::warm::counts(state.db()).await {
        Ok(counts) => state.metrics().set_warm_jobs(&counts),
        Err(e) => tracing::warn!(error = %e, "warm job counts for /metrics"),
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics().render())
}
