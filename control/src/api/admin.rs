//! Admin endpoints (admin bearer token): catalog import and user creation.

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cadenza_config::ids::{UserId, random_id};

use super::AppState;
use super::extract::ApiJson;
use crate::auth::{Admin, new_token, token_sha256};
use crate::catalog::Batch;
use crate::db::{catalog, users};
use crate::error::ApiError;
use crate::types::{CreateUserRequest, CreateUserResponse, ImportRequest, ImportResponse};
use crate::validate;

/// `POST /v1/admin/import`: validate the whole batch, then upsert it in one
/// transaction. Idempotent.
pub(crate) async fn import(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Json<ImportResponse>, ApiError> {
    let batch = Batch::validate(req)?;
    let counts = catalog::import(state.db(), &batch).await?;
    tracing::info!(
        artists = counts.artists,
        albums = counts.albums,
        tracks = counts.tracks,
        "catalog batch imported"
    );
    Ok(Json(counts))
}

/// `POST /v1/admin/users`: 201 with the user's id and a fresh token, shown
/// this once (only its SHA-256 is stored).
pub(crate) async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let display_name = validate::text("display_name", &req.display_name, 200)?;
    let country = validate::country("country", &req.country)?;
    let id = match req.id {
        Some(id) => id,
        None => random_id(22).parse::<UserId>().map_err(|e| ApiError::internal("user id", &e))?,
    };
    let token = new_token();
    users::create(
        state.db(),
        &users::NewUser {
            id: &id,
            display_name: &display_name,
            tier: req.tier,
            country: &country,
            token_sha256: &token_sha256(&token),
        },
    )
    .await?;
    tracing::info!(user = %id, tier = req.tier.as_str(), "user created");
    Ok((
        StatusCode::CREATED,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(CreateUserResponse { id, token }),
    )
        .into_response())
}
