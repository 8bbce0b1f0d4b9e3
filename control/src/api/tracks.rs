//! `GET /v1/tracks/{id}`: a track's public metadata.

use axum::Json;
use axum::extract::State;
use cadenza_config::ids::TrackId;

use super::AppState;
use super::extract::ApiPath;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorKind};
use crate::types::{TrackResponse, schema};
use crate::validate::echo;

/// The track as JSON (the `ETag`/`304` handling is the conditional-GET
/// middleware's).
#[utoipa::path(get, path = "/v1/tracks/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::TrackId, Path, description = "Track id.")),
    responses(
        (status = 200, description = "The track.", body = TrackResponse),
        (status = 400, description = "`invalid_request`: not a track id."),
        (status = 404, description = "`track_not_found`."),
    ))]
pub(crate) async fn get_track(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TrackResponse>, ApiError> {
    state.rate_limit(&user.id, super::Category::Read)?;
    let id: TrackId = id.parse().map_err(|e| ApiError::invalid(format!("id: {e}")))?;
    let track = state.tracks(&[id.as_str().to_owned()]).await?.pop().flatten().ok_or_else(|| {
        ApiError::new(ErrorKind::TrackNotFound, format!("id: no track {}", echo(id.as_str())))
    })?;
    Ok(Json(track))
}
