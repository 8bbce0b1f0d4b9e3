//! Admin endpoints (admin bearer token): catalog import, single-entity
//! create/replace, and user creation.

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cadenza_config::ids::{UserId, random_id};

use super::AppState;
use super::extract::{ApiJson, ApiPath};
use crate::auth::{Admin, new_token, token_sha256};
use crate::catalog::Batch;
use crate::db::{catalog, users};
use crate::error::ApiError;
use crate::types::schema;
use crate::types::{
    CreateUserRequest, CreateUserResponse, ImportAlbum, ImportArtist, ImportRequest, ImportResponse,
    ImportTrack,
};
use crate::validate;

/// `POST /v1/admin/import`: validate the whole batch, then upsert it in one
/// transaction. Idempotent.
#[utoipa::path(post, path = "/v1/admin/import", tag = "admin", security(("admin" = [])),
    request_body = ImportRequest,
    responses(
        (status = 200, description = "How many of each entity the batch upserted.", body = ImportResponse),
        (status = 400, description = "`invalid_request`: the message names the bad field, e.g. `tracks[3].album_id`; nothing is imported."),
    ))]
pub(crate) async fn import(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Json<ImportResponse>, ApiError> {
    let batch = Batch::validate(req)?;
    let counts = catalog::import(state.db(), &batch).await?;
    state.catalog_changed();
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
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("admin" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "The user's id and token, shown this once (`Cache-Control: no-store`).", body = CreateUserResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 409, description = "`already_exists`: a user with that id exists."),
    ))]
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

/// `PUT /v1/admin/artists/{id}`, `…/albums/{id}`, `…/tracks/{id}`: create
/// or replace one entity. The body is the entity as an import carries it;
/// its `id` must equal the path's. 201 when created, 200 when it existed
/// (the import's rules apply: what the body leaves out, such as a track's
/// audio or a popularity, is kept).
#[utoipa::path(put, path = "/v1/admin/artists/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = schema::Id, Path, description = "The artist's id; the body's `id` must equal it.")),
    request_body = ImportArtist,
    responses(
        (status = 200, description = "Replaced.", body = ImportResponse),
        (status = 201, description = "Created.", body = ImportResponse),
        (status = 400, description = "`invalid_request`: the message names the field (also when the ids differ)."),
    ))]
pub(crate) async fn put_artist(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ImportArtist>,
) -> Result<Response, ApiError> {
    let body_id = body.id.clone();
    put(&state, "artists", &id, &body_id, ImportRequest { artists: vec![body], ..ImportRequest::default() })
        .await
}

#[utoipa::path(put, path = "/v1/admin/albums/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = schema::Id, Path, description = "The album's id; the body's `id` must equal it.")),
    request_body = ImportAlbum,
    responses(
        (status = 200, description = "Replaced.", body = ImportResponse),
        (status = 201, description = "Created.", body = ImportResponse),
        (status = 400, description = "`invalid_request`: the message names the field (also when the ids differ)."),
    ))]
pub(crate) async fn put_album(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ImportAlbum>,
) -> Result<Response, ApiError> {
    let body_id = body.id.clone();
    put(&state, "albums", &id, &body_id, ImportRequest { albums: vec![body], ..ImportRequest::default() })
        .await
}

#[utoipa::path(put, path = "/v1/admin/tracks/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = schema::Id, Path, description = "The track's id; the body's `id` must equal it.")),
    request_body = ImportTrack,
    responses(
        (status = 200, description = "Replaced.", body = ImportResponse),
        (status = 201, description = "Created.", body = ImportResponse),
        (status = 400, description = "`invalid_request`: the message names the field (also when the ids differ)."),
    ))]
pub(crate) async fn put_track(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ImportTrack>,
) -> Result<Response, ApiError> {
    let body_id = body.id.as_str().to_owned();
    put(&state, "tracks", &id, &body_id, ImportRequest { tracks: vec![body], ..ImportRequest::default() })
        .await
}

fn same_id(path: &str, body: &str) -> Result<(), ApiError> {
    validate::id("id", path)?;
    if path == body {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "id: the body's id {} differs from the path's {}",
            validate::echo(body),
            validate::echo(path)
        )))
    }
}

/// The shared body of the three PUTs: the ids agree, the entity is
/// imported, and the status says whether it is new.
async fn put(
    state: &AppState,
    table: &str,
    path_id: &str,
    body_id: &str,
    req: ImportRequest,
) -> Result<Response, ApiError> {
    same_id(path_id, body_id)?;
    let created = !catalog::exists(state.db(), table, path_id).await?;
    let batch = Batch::validate(req).map_err(|e| {
        e.map_message(|m| m.split_once("].").map_or(m.to_owned(), |(_, rest)| rest.to_owned()))
    })?;
    let counts = catalog::import(state.db(), &batch).await?;
    state.catalog_changed();
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(counts)).into_response())
}
