//! `POST /v1/playback/stream`: pick a quality and sign edge URLs.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use cadenza_config::ladder::Rung;

use super::AppState;
use super::extract::ApiJson;
use crate::auth::AuthUser;
use crate::db::{catalog, now_ms};
use crate::error::{ApiError, ErrorKind};
use crate::playback::{Preference, pick, signed_urls, target};
use crate::types::{StreamRequest, StreamResponse};
use crate::validate::echo;

/// The stream answer (see [`crate::playback`] for the quality rule).
/// Errors: 400 `invalid_quality`, 404 `track_not_found`, 403
/// `not_released`, 409 `no_audio`, 503 `no_edges`.
#[utoipa::path(post, path = "/v1/playback/stream", tag = "playback", security(("bearer" = [])),
    request_body = StreamRequest,
    responses(
        (status = 200, description = "The chosen rendition and one signed URL per edge (`Cache-Control: no-store`).", body = StreamResponse),
        (status = 400, description = "`invalid_request` (the message names the field), or `invalid_quality`."),
        (status = 403, description = "`not_released`: the album is embargoed until its `release_at`."),
        (status = 404, description = "`track_not_found`."),
        (status = 409, description = "`no_audio`: the track has no published audio."),
        (status = 503, description = "`no_edges`: no edge POPs are configured; `unavailable`: the database does not answer."),
    ))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<StreamRequest>,
) -> Result<Response, ApiError> {
    state.rate_limit(&user.id, super::Category::Playback)?;
    let quality = req
        .quality
        .map(|q| {
            Rung::from_kbps(q).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidQuality,
                    format!("quality: must be one of 24, 96, 160, 320, got {q}"),
                )
            })
        })
        .transpose()?;
    let pref =
        Preference { quality, connection: req.connection, data_saver: req.data_saver.unwrap_or(false) };
    let id = &req.track_id;
    let playable = catalog::playable(state.db(), id).await?.ok_or_else(|| {
        ApiError::new(ErrorKind::TrackNotFound, format!("track_id: no track {}", echo(id.as_str())))
    })?;
    if let Some(at) = playable.release_at_ms
        && at > now_ms()
    {
        return Err(ApiError::new(
            ErrorKind::NotReleased,
            format!(
                "track_id: track {} is not released until unix time {}",
                echo(id.as_str()),
                at.div_euclid(1000)
            ),
        ));
    }
    let published: Vec<Rung> = playable.files.iter().map(|f| f.rung).collect();
    let rung = pick(target(user.tier, pref), &published).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NoAudio,
            format!("track_id: track {} has no published audio", echo(id.as_str())),
        )
    })?;
    let Some(chosen) = playable.files.into_iter().find(|f| f.rung == rung) else {
        return Err(ApiError::internal("stream", &"picked rung not published"));
    };
    let config = state.config();
    if config.edges.is_empty() {
        return Err(ApiError::new(ErrorKind::NoEdges, "edges: no edge pops are configured"));
    }
    let exp = cadenza_config::unix_now().saturating_add(config.playback.url_ttl.get().as_secs());
    let urls = signed_urls(&config.edges, state.keys().current(), &chosen.file.file_id, &user.id, exp);
    state.metrics().stream_answer(rung.kbps());
    // Never log the URLs: they are credentials until they expire.
    tracing::info!(track = %id, user = %user.id, quality_kbps = rung.kbps(), "stream issued");
    let body = StreamResponse {
        track_id: id.clone(),
        quality_kbps: rung.kbps(),
        expires_at: exp,
        urls,
        file: chosen.file,
    };
    Ok(([(CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body)).into_response())
}
