//! The library API (user bearer token): what a user saved, by kind —
//! `tracks`, `albums`, `artists` (followed) and `playlists` (followed).
//!
//! | route | answer |
//! |---|---|
//! | `PUT /v1/me/library/{kind}?ids=a,b` | 204; every id must exist (400 naming `ids[i]`); saving again is a no-op |
//! | `DELETE /v1/me/library/{kind}?ids=a,b` | 204; ids not saved are fine |
//! | `GET /v1/me/library/{kind}?limit&offset` | paging of `{added_at, <track/album/artist/playlist>}`, newest first |
//! | `GET /v1/me/library/{kind}/contains?ids=a,b` | `[true, false]`, in the order asked |
//!
//! `ids` holds 1 to 50 comma-separated ids. A playlist the user may not see
//! cannot be saved (400, as if it did not exist) and is not listed while
//! it stays hidden.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::extract::{ApiPath, ApiQuery};
use super::paging::Page;
use super::paging::{IdsQuery, PageQuery};
use super::{AppState, Category};
use crate::auth::AuthUser;
use crate::db::library::{self as db, LibraryKind};
use crate::db::playlists::{PlaylistRow, visible_by_ids};
use crate::error::ApiError;
use crate::types::{Paging, SavedAlbum, SavedArtist, SavedPlaylist, SavedTrack, schema};
use crate::validate::{self, echo};

/// The library routes, merged into the API's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/library/{kind}", get(list).put(save).delete(remove))
        .route("/v1/me/library/{kind}/contains", get(contains))
}

fn kind(path: &str) -> Result<LibraryKind, ApiError> {
    LibraryKind::from_path(path).ok_or_else(|| {
        ApiError::invalid(format!(
            "kind: must be one of tracks, albums, artists, playlists, got {}",
            echo(path)
        ))
    })
}

/// `PUT /v1/me/library/{kind}?ids=`: 204.
#[utoipa::path(put, path = "/v1/me/library/{kind}", tag = "library", security(("bearer" = [])),
    params(("kind" = schema::LibraryKind, Path, description = "What to save, list or check."), IdsQuery),
    responses(
        (status = 204, description = "Saved (saving again keeps the first save)."),
        (status = 400, description = "`invalid_request`: an unknown `kind`, or bad `ids` (the message names `ids[i]`; also an id naming nothing, when saving)."),
    ))]
async fn save(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(k): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> Result<StatusCode, ApiError> {
    state.rate_limit(&user.id, Category::LibraryWrite)?;
    let kind = kind(&k)?;
    db::save(state.db(), &user.id, kind, &q.ids(validate::id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/me/library/{kind}?ids=`: 204.
#[utoipa::path(delete, path = "/v1/me/library/{kind}", tag = "library", security(("bearer" = [])),
    params(("kind" = schema::LibraryKind, Path, description = "What to save, list or check."), IdsQuery),
    responses(
        (status = 204, description = "Removed (ids not saved are fine)."),
        (status = 400, description = "`invalid_request`: an unknown `kind`, or bad `ids` (the message names `ids[i]`; also an id naming nothing, when saving)."),
    ))]
async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(k): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> Result<StatusCode, ApiError> {
    state.rate_limit(&user.id, Category::LibraryWrite)?;
    let kind = kind(&k)?;
    db::remove(state.db(), &user.id, kind, &q.ids(validate::id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/me/library/{kind}/contains?ids=`: one boolean per id.
#[utoipa::path(get, path = "/v1/me/library/{kind}/contains", tag = "library", security(("bearer" = [])),
    params(("kind" = schema::LibraryKind, Path, description = "What to save, list or check."), IdsQuery),
    responses(
        (status = 200, description = "One boolean per id, in the order asked.", body = Vec<bool>),
        (status = 400, description = "`invalid_request`: an unknown `kind`, or bad `ids` (the message names `ids[i]`; also an id naming nothing, when saving)."),
    ))]
async fn contains(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(k): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> Result<Json<Vec<bool>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let kind = kind(&k)?;
    let ids = q.ids(validate::id)?;
    let saved = db::contains(state.db(), &user.id, kind, &ids).await?;
    Ok(Json(ids.iter().map(|id| saved.contains(id)).collect()))
}

/// `GET /v1/me/library/{kind}`: newest first.
#[utoipa::path(get, path = "/v1/me/library/{kind}", tag = "library", security(("bearer" = [])),
    params(("kind" = schema::LibraryKind, Path, description = "What to save, list or check."), PageQuery),
    responses(
        (status = 200, description = "One page of saved items, newest first; the item type follows `kind`.", body = schema::LibraryPage),
        (status = 400, description = "`invalid_request`: an unknown `kind`, a bad `limit` or `offset`."),
    ))]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(k): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Response, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let kind = kind(&k)?;
    let page: Page = q.page()?;
    let (total, entries) = db::list(state.db(), &user.id, kind, page.sql()).await?;
    let ids: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    let at = |ms: i64| ms.div_euclid(1000);
    // An item deleted (or hidden) between the page and its objects is
    // skipped: the next request's total will not count it either.
    let response = match kind {
        LibraryKind::Track => {
            let tracks = state.tracks(&ids).await?;
            let items = entries
                .iter()
                .zip(tracks)
                .filter_map(|((_, ms), t)| t.map(|track| SavedTrack { added_at: at(*ms), track }))
                .collect();
            Json::<Paging<SavedTrack>>(page.paging(&uri, total, items)).into_response()
        }
        LibraryKind::Album => {
            let albums = db::albums_by_ids(state.db(), &ids).await?;
            let items =
                pick(&entries, albums, |added_at, album| SavedAlbum { added_at: at(added_at), album });
            Json::<Paging<SavedAlbum>>(page.paging(&uri, total, items)).into_response()
        }
        LibraryKind::Artist => {
            let artists = db::artists_by_ids(state.db(), &ids).await?;
            let items =
                pick(&entries, artists, |added_at, artist| SavedArtist { added_at: at(added_at), artist });
            Json::<Paging<SavedArtist>>(page.paging(&uri, total, items)).into_response()
        }
        LibraryKind::Playlist => {
            let rows = visible_by_ids(state.db(), &user.id, &ids).await?;
            let mut simple = HashMap::with_capacity(rows.len());
            for (id, row) in rows {
                simple.insert(id, PlaylistRow::simple(&row)?);
            }
            let items = pick(&entries, simple, |added_at, playlist| SavedPlaylist {
                added_at: at(added_at),
                playlist,
            });
            Json::<Paging<SavedPlaylist>>(page.paging(&uri, total, items)).into_response()
        }
    };
    Ok(response)
}

/// The objects of `entries` in order, made by `make`, skipping ids with
/// no object.
fn pick<T, U>(
    entries: &[(String, i64)],
    mut objects: HashMap<String, T>,
    make: impl Fn(i64, T) -> U,
) -> Vec<U> {
    entries.iter().filter_map(|(id, ms)| objects.remove(id).map(|o| make(*ms, o))).collect()
}
