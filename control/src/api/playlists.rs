//! The playlists API (user bearer token), modelled on Spotify's Web API.
//!
//! | route | who | answer |
//! |---|---|---|
//! | `POST /v1/playlists` | any user | 201 playlist object |
//! | `GET /v1/playlists/{id}?limit&offset` | anyone who may see it | playlist object, one page of items |
//! | `PUT /v1/playlists/{id}` | owner | playlist object (new `snapshot_id`) |
//! | `DELETE /v1/playlists/{id}` | owner | 204 |
//! | `GET /v1/playlists/{id}/items?limit&offset` | anyone who may see it | paging of items |
//! | `POST /v1/playlists/{id}/items` | owner, collaborators | 201 `{snapshot_id}` |
//! | `DELETE /v1/playlists/{id}/items` | owner, collaborators | `{snapshot_id}` |
//! | `PUT /v1/playlists/{id}/items` | owner, collaborators | `{snapshot_id}` (reorder) |
//! | `PUT`/`DELETE /v1/playlists/{id}/collaborators/{user_id}` | owner | 204 |
//! | `GET /v1/me/playlists` | the user | paging of simplified playlists owned or collaborated on |
//! | `GET /v1/users/{user_id}/playlists` | any user | paging of that user's public playlists |
//!
//! A private playlist is seen only by its owner and (while it is
//! collaborative) its collaborators; to anyone else it is 404
//! `playlist_not_found`, exactly like a playlist that does not exist, so
//! ids do not leak. Someone who may see a playlist but not change it gets
//! 403 `forbidden`.
//!
//! Every write on a playlist may carry `If-Match: <snapshot_id>` (quoted
//! or not, a list, or `*`); the item routes also take a `snapshot_id` body
//! field. A snapshot that is not current is 412 `snapshot_mismatch`, and
//! nothing changes: a client that edits by position learns that its view
//! is stale instead of removing the wrong item. Writes without one are
//! serialised and all apply (see `db::playlists`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::IF_MATCH;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post, put};
use cadenza_config::ids::UserId;
use serde::Deserialize;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{Page, PageQuery};
use super::{AppState, Category};
use crate::auth::AuthUser;
use crate::db::playlists::{self as db, DetailChanges, ItemRow, NewPlaylist, PlaylistRow, Removal};
use crate::error::{ApiError, ErrorKind};
use crate::types::schema;
use crate::types::{
    AddItemsRequest, CreatePlaylistRequest, Paging, PlaylistItem, PlaylistResponse, RemoveItemsRequest,
    ReorderItemsRequest, SimplePlaylist, SnapshotResponse, UpdatePlaylistRequest,
};
use crate::validate::{self, echo};

/// Longest playlist name, in characters.
const MAX_NAME: usize = 200;
/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 1000;
/// Most tracks one add names, and most entries (and positions per entry)
/// of one removal: Spotify's 100 per request.
const MAX_PER_REQUEST: usize = 100;

/// The playlists routes, merged into the API's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/playlists", post(create))
        .route("/v1/playlists/{id}", get(view).put(update).delete(delete))
        .route("/v1/playlists/{id}/items", get(items).post(add_items).delete(remove_items).put(reorder))
        .route(
            "/v1/playlists/{id}/collaborators/{user_id}",
            put(add_collaborator).delete(remove_collaborator),
        )
        .route("/v1/me/playlists", get(mine))
        .route("/v1/users/{user_id}/playlists", get(of_user))
}

/// `POST /v1/playlists`: 201 with the new, empty playlist.
#[utoipa::path(post, path = "/v1/playlists", tag = "playlists", security(("bearer" = [])),
    request_body = CreatePlaylistRequest,
    responses(
        (status = 201, description = "The new, empty playlist.", body = PlaylistResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
    ))]
async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<CreatePlaylistRequest>,
) -> Result<(StatusCode, Json<PlaylistResponse>), ApiError> {
    state.rate_limit(&user.id, Category::PlaylistWrite)?;
    let public = req.public.unwrap_or(true);
    let collaborative = req.collaborative.unwrap_or(false);
    if public && collaborative {
        return Err(ApiError::invalid(
            "collaborative: a collaborative playlist cannot be public (set public to false)",
        ));
    }
    let new = NewPlaylist {
        name: validate::text("name", &req.name, MAX_NAME)?,
        description: description(req.description.as_deref())?,
        public,
        collaborative,
    };
    let row = db::create(state.db(), &user.id, &new).await?;
    let page = Page::of(None, None)?;
    let response = full(&row, page.paging(&items_uri(&row.id, None)?, 0, Vec::new()))?;
    Ok((StatusCode::CREATED, Json(response)))
}

/// `GET /v1/playlists/{id}`: the playlist and one page of its items.
#[utoipa::path(get, path = "/v1/playlists/{id}", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), PageQuery),
    responses(
        (status = 200, description = "The playlist and one page of its items.", body = PlaylistResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
    ))]
async fn view(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<PlaylistResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    let page = q.page()?;
    let (row, items) = load(&state, &id, &user.id, page, &items_uri(&id, uri.query())?).await?;
    Ok(Json(full(&row, items)?))
}

/// `GET /v1/playlists/{id}/items`: one page of the items.
#[utoipa::path(get, path = "/v1/playlists/{id}/items", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), PageQuery),
    responses(
        (status = 200, description = "One page of the items.", body = Paging<PlaylistItem>),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
    ))]
async fn items(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<Paging<PlaylistItem>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    let page = q.page()?;
    let (_, items) = load(&state, &id, &user.id, page, &uri).await?;
    Ok(Json(items))
}

/// The playlist and the page `page` of its items (links relative to `uri`).
async fn load(
    state: &AppState,
    id: &str,
    user: &UserId,
    page: Page,
    uri: &Uri,
) -> Result<(PlaylistRow, Paging<PlaylistItem>), ApiError> {
    let (row, rows) = db::view(state.db(), id, user, page.sql()).await?.ok_or_else(|| db::not_found(id))?;
    let items = playlist_items(state, rows).await?;
    let total = u64::try_from(row.item_count).unwrap_or(0);
    Ok((row, page.paging(uri, total, items)))
}

/// Items with their full tracks (loaded in three queries for the page).
async fn playlist_items(state: &AppState, rows: Vec<ItemRow>) -> Result<Vec<PlaylistItem>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.track_id.clone()).collect();
    let tracks = state.tracks(&ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    // A track deleted since the page was read is skipped (its items go
    // with it, by the foreign key).
    for (row, track) in rows.into_iter().zip(tracks) {
        let Some(track) = track else { continue };
        let added_by = match row.added_by {
            Some(u) => Some(u.parse().map_err(|e| ApiError::internal("playlist_items.added_by", &e))?),
            None => None,
        };
        out.push(PlaylistItem {
            position: row.position,
            added_at: row.added_at.div_euclid(1000),
            added_by,
            track,
        });
    }
    Ok(out)
}

/// `/v1/playlists/{id}/items` with `query`: where a playlist's item links
/// point.
fn items_uri(id: &str, query: Option<&str>) -> Result<Uri, ApiError> {
    let text = match query {
        Some(q) => format!("/v1/playlists/{id}/items?{q}"),
        None => format!("/v1/playlists/{id}/items"),
    };
    text.parse().map_err(|e| ApiError::internal("items uri", &e))
}

fn full(row: &PlaylistRow, items: Paging<PlaylistItem>) -> Result<PlaylistResponse, ApiError> {
    Ok(PlaylistResponse {
        id: row.id.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        public: row.public,
        collaborative: row.collaborative,
        owner: row.owner()?,
        snapshot_id: row.snapshot_id(),
        followers: row.followers,
        items,
    })
}

/// A description as stored: trimmed, empty → none.
fn description(value: Option<&str>) -> Result<Option<String>, ApiError> {
    match value {
        Some(d) if !d.trim().is_empty() => Ok(Some(validate::text("description", d, MAX_DESCRIPTION)?)),
        _ => Ok(None),
    }
}

/// The snapshots a write names: each entity tag of `If-Match` (quotes and
/// `W/` dropped; `*` names none) and the body's `snapshot_id`.
fn snapshots(headers: &HeaderMap, body: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for value in headers.get_all(IF_MATCH) {
        let value = value.to_str().map_err(|_| ApiError::invalid("if-match: must be visible ASCII"))?;
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty() && *t != "*") {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            out.push(tag.trim_matches('"').to_owned());
        }
    }
    if let Some(s) = body {
        out.push(s.to_owned());
    }
    Ok(out)
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `PUT /v1/playlists/{id}`: change name, description, public,
/// collaborative (owner only).
#[utoipa::path(put, path = "/v1/playlists/{id}", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    request_body = UpdatePlaylistRequest,
    responses(
        (status = 200, description = "The playlist with its new `snapshot_id`.", body = PlaylistResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdatePlaylistRequest>,
) -> Result<Json<PlaylistResponse>, ApiError> {
    state.rate_limit(&user.id, Category::PlaylistWrite)?;
    let id = validate::id("id", &id)?;
    if req == UpdatePlaylistRequest::default() {
        return Err(ApiError::invalid("body: give at least one of name, description, public, collaborative"));
    }
    let changes = DetailChanges {
        name: req.name.as_deref().map(|n| validate::text("name", n, MAX_NAME)).transpose()?,
        description: req.description.as_deref().map(|d| description(Some(d))).transpose()?,
        public: req.public,
        collaborative: req.collaborative,
    };
    let snapshots = snapshots(&headers, None)?;
    db::update(state.db(), &id, &user.id, &as_strs(&snapshots), changes).await?;
    let page = Page::of(None, None)?;
    let (row, items) = load(&state, &id, &user.id, page, &items_uri(&id, None)?).await?;
    Ok(Json(full(&row, items)?))
}

/// `DELETE /v1/playlists/{id}` (owner only): 204.
#[utoipa::path(delete, path = "/v1/playlists/{id}", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.rate_limit(&user.id, Category::PlaylistWrite)?;
    let id = validate::id("id", &id)?;
    let snapshots = snapshots(&headers, None)?;
    db::delete(state.db(), &id, &user.id, &as_strs(&snapshots)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/playlists/{id}/items`: 201 with the new snapshot.
#[utoipa::path(post, path = "/v1/playlists/{id}/items", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    request_body = AddItemsRequest,
    responses(
        (status = 201, description = "The new snapshot.", body = SnapshotResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn add_items(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AddItemsRequest>,
) -> Result<(StatusCode, Json<SnapshotResponse>), ApiError> {
    state.rate_limit(&user.id, Category::PlaylistWrite)?;
    let id = validate::id("id", &id)?;
    if req.track_ids.is_empty() || req.track_ids.len() > MAX_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "track_ids: must hold 1 to {MAX_PER_REQUEST} track ids, got {}",
            req.track_ids.len()
        )));
    }
    let tracks: Vec<String> = req.track_ids.iter().map(|t| t.as_str().to_owned()).collect();
    let snapshots = snapshots(&headers, req.snapshot_id.as_deref())?;
    let snapshot_id =
        db::add_items(state.db(), &id, &user.id, &as_strs(&snapshots), &tracks, req.position).await?;
    Ok((StatusCode::CREATED, Json(SnapshotResponse { snapshot_id })))
}

/// `DELETE /v1/playlists/{id}/items`: the new snapshot.
#[utoipa::path(delete, path = "/v1/playlists/{id}/items", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    request_body = RemoveItemsRequest,
    responses(
        (status = 200, description = "The new snapshot.", body = SnapshotResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn remove_items(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RemoveItemsRequest>,
) -> Result<Json<SnapshotResponse>, ApiError> {
    state.rate_limit(&user.id, Category::PlaylistWrite)?;
    let id = validate::id("id", &id)?;
    if req.tracks.is_empty() || req.tracks.len() > MAX_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "tracks: must hold 1 to {MAX_PER_REQUEST} entries, got {}",
            req.tracks.len()
        )));
    }
    let mut removals = Vec::with_capacity(req.tracks.len());
    for (i, t) in req.tracks.into_iter().enumerate() {
        if let Some(p) = &t.positions
            && (p.is_empty() || p.len() > MAX_PER_REQUEST)
        {
            return Err(ApiError::invalid(format!(
                "tracks[{i}].positions: must hold 1 to {MAX_PER_REQUEST} positions, got {} (omit it to remove every occurrence)",
                p.len()
            )));
        }
        removals.push(Removal { track_id: t.track_id.as_str().to_owned(), positions: t.positions });
    }
    let snapshots = snapshots(&headers, req.snapshot_id.as_deref())?;
    let snapshot_id = db::remove_items(state.db(), &id, &user.id, &as_strs(&snapshots), &removals).await?;
    Ok(Json(SnapshotResponse { snapshot_id }))
}

/// `PUT /v1/playlists/{id}/items`: reorder; the new snapshot.
#[utoipa::path(put, path = "/v1/playlists/{id}/items", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    request_body = ReorderItemsRequest,
    responses(
        (status = 200, description = "The new snapshot.", body = SnapshotResponse),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`: no such playlist, or one the user may not see."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn reorder(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ReorderItemsRequest>,
) -> Result<Json<SnapshotResponse>, ApiError> {
    state.rate_limit(&user.id, Category::PlaylistWrite)?;
    let id = validate::id("id", &id)?;
    let length = req.range_length.unwrap_or(1);
    if length == 0 {
        return Err(ApiError::invalid("range_length: must be at least 1"));
    }
    let snapshots = snapshots(&headers, req.snapshot_id.as_deref())?;
    let snapshot_id = db::reorder(
        state.db(),
        &id,
        &user.id,
        &as_strs(&snapshots),
        req.range_start,
        req.insert_before,
        length,
    )
    .await?;
    Ok(Json(SnapshotResponse { snapshot_id }))
}

/// Path of the collaborator routes.
#[derive(Debug, Deserialize)]
struct CollaboratorPath {
    id: String,
    user_id: String,
}

/// `PUT /v1/playlists/{id}/collaborators/{user_id}` (owner only): 204.
#[utoipa::path(put, path = "/v1/playlists/{id}/collaborators/{user_id}", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("user_id" = schema::UserId, Path, description = "The collaborator."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    responses(
        (status = 204, description = "The user is a collaborator."),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`, or `user_not_found`."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn add_collaborator(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(path): ApiPath<CollaboratorPath>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    set_collaborator(state, user.id, path, headers, true).await
}

/// `DELETE /v1/playlists/{id}/collaborators/{user_id}` (owner only): 204,
/// also when the user was not a collaborator.
#[utoipa::path(delete, path = "/v1/playlists/{id}/collaborators/{user_id}", tag = "playlists", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Playlist id."), ("user_id" = schema::UserId, Path, description = "The collaborator."), ("If-Match" = Option<String>, Header, description = "Snapshot ids (quoted or not, a list, or `*`): refuse the write with 412 unless one names the current snapshot.")),
    responses(
        (status = 204, description = "The user is not a collaborator (also when they were not one)."),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 403, description = "`forbidden`: the user may see the playlist but not change it."),
        (status = 404, description = "`playlist_not_found`, or `user_not_found`."),
        (status = 412, description = "`snapshot_mismatch`: `If-Match` (or `snapshot_id`) names a snapshot that is not current; nothing changed."),
    ))]
async fn remove_collaborator(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(path): ApiPath<CollaboratorPath>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    set_collaborator(state, user.id, path, headers, false).await
}

async fn set_collaborator(
    state: AppState,
    user: UserId,
    path: CollaboratorPath,
    headers: HeaderMap,
    add: bool,
) -> Result<StatusCode, ApiError> {
    state.rate_limit(&user, Category::PlaylistWrite)?;
    let id = validate::id("id", &path.id)?;
    let collaborator = user_id("user_id", &path.user_id)?;
    let snapshots = snapshots(&headers, None)?;
    db::set_collaborator(state.db(), &id, &user, &as_strs(&snapshots), &collaborator, add).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_id(path: &str, value: &str) -> Result<UserId, ApiError> {
    value.parse().map_err(|_| {
        ApiError::invalid(format!("{path}: must be 1-64 characters of [A-Za-z0-9_-], got {}", echo(value)))
    })
}

/// `GET /v1/me/playlists`: playlists the user owns or collaborates on.
#[utoipa::path(get, path = "/v1/me/playlists", tag = "playlists", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Playlists the user owns or collaborates on.", body = Paging<SimplePlaylist>),
        (status = 400, description = "`invalid_request`: the message names the field."),
    ))]
async fn mine(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<Paging<SimplePlaylist>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let page = q.page()?;
    let (total, rows) = db::of_member(state.db(), &user.id, page.sql()).await?;
    let items = rows.iter().map(PlaylistRow::simple).collect::<Result<_, _>>()?;
    Ok(Json(page.paging(&uri, total, items)))
}

/// `GET /v1/users/{user_id}/playlists`: that user's public playlists.
#[utoipa::path(get, path = "/v1/users/{user_id}/playlists", tag = "playlists", security(("bearer" = [])),
    params(("user_id" = schema::UserId, Path, description = "The owner."), PageQuery),
    responses(
        (status = 200, description = "That user's public playlists.", body = Paging<SimplePlaylist>),
        (status = 400, description = "`invalid_request`: the message names the field."),
        (status = 404, description = "`user_not_found`."),
    ))]
async fn of_user(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(owner): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<Paging<SimplePlaylist>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let owner = user_id("user_id", &owner)?;
    let page = q.page()?;
    if !db::user_exists(state.db(), &owner).await? {
        return Err(ApiError::new(
            ErrorKind::UserNotFound,
            format!("user_id: no user {}", echo(owner.as_str())),
        ));
    }
    let (total, rows) = db::public_of(state.db(), &owner, page.sql()).await?;
    let items = rows.iter().map(PlaylistRow::simple).collect::<Result<_, _>>()?;
    Ok(Json(page.paging(&uri, total, items)))
}
