//! The catalog reads: tracks, albums, artists, audio features (user
//! token, `read` rate limit). Every answer is JSON; the conditional-GET
//! middleware adds the `ETag`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/tracks?ids=a,b` | `{"tracks":[track \| null, …]}` (1-50 ids) |
//! | `GET /v1/albums/{id}` | album + first page of its tracks (`?limit&offset`) |
//! | `GET /v1/albums?ids=` | `{"albums":[album \| null, …]}` |
//! | `GET /v1/albums/{id}/tracks` | paging object of tracks |
//! | `GET /v1/artists/{id}` | artist |
//! | `GET /v1/artists?ids=` | `{"artists":[artist \| null, …]}` |
//! | `GET /v1/artists/{id}/albums` | paging object of albums, newest first |
//! | `GET /v1/artists/{id}/top-tracks` | `{"tracks":[…]}`, 10 most popular |
//! | `GET /v1/audio-features/{id}` | the transcoder's features of the track |

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use cadenza_config::ids::TrackId;

use super::extract::{ApiPath, ApiQuery};
use super::paging::{IdsQuery, Page, PageQuery};
use super::{AppState, Category};
use crate::auth::AuthUser;
use crate::db::catalog;
use crate::error::{ApiError, ErrorKind};
use crate::types::schema;
use crate::types::{
    AlbumResponse, AlbumSimplified, AlbumsResponse, ArtistResponse, ArtistsResponse, Paging, TrackResponse,
    TracksResponse,
};
use crate::validate::{self, echo};

fn track_id(path: &str, id: &str) -> Result<String, ApiError> {
    id.parse::<TrackId>()
        .map(|t| t.as_str().to_owned())
        .map_err(|e| ApiError::invalid(format!("{path}: {e}")))
}

#[utoipa::path(get, path = "/v1/tracks", tag = "catalog", security(("bearer" = [])),
    params(IdsQuery),
    responses(
        (status = 200, description = "Tracks in the order asked, `null` for unknown ids.", body = TracksResponse),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
    ))]
pub(crate) async fn tracks(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> Result<Json<TracksResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let ids = q.ids(track_id)?;
    Ok(Json(TracksResponse { tracks: state.tracks(&ids).await? }))
}

#[utoipa::path(get, path = "/v1/albums/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Album id."), PageQuery),
    responses(
        (status = 200, description = "The album and one page of its tracks, in disc and track order.", body = AlbumResponse),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
        (status = 404, description = "`album_not_found`."),
    ))]
pub(crate) async fn album(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<AlbumResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    let page = q.page()?;
    let album = catalog::albums_by_ids(state.db(), std::slice::from_ref(&id))
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| album_not_found(&id))?;
    let tracks = album_tracks_page(&state, &id, page, &uri).await?;
    Ok(Json(AlbumResponse { album, tracks }))
}

#[utoipa::path(get, path = "/v1/albums/{id}/tracks", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Album id."), PageQuery),
    responses(
        (status = 200, description = "One page of the album's tracks.", body = Paging<TrackResponse>),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
        (status = 404, description = "`album_not_found`."),
    ))]
pub(crate) async fn album_tracks(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<Paging<TrackResponse>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    let page = q.page()?;
    let exists = catalog::albums_by_ids(state.db(), std::slice::from_ref(&id)).await?.pop().flatten();
    if exists.is_none() {
        return Err(album_not_found(&id));
    }
    Ok(Json(album_tracks_page(&state, &id, page, &uri).await?))
}

async fn album_tracks_page(
    state: &AppState,
    id: &str,
    page: Page,
    uri: &Uri,
) -> Result<Paging<TrackResponse>, ApiError> {
    let ids = catalog::album_track_ids(state.db(), id, page).await?;
    let tracks = state.tracks(&ids.ids).await?.into_iter().flatten().collect();
    Ok(page.paging(uri, ids.total, tracks))
}

#[utoipa::path(get, path = "/v1/albums", tag = "catalog", security(("bearer" = [])),
    params(IdsQuery),
    responses(
        (status = 200, description = "Albums in the order asked, `null` for unknown ids.", body = AlbumsResponse),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
    ))]
pub(crate) async fn albums(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> Result<Json<AlbumsResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let ids = q.ids(validate::id)?;
    Ok(Json(AlbumsResponse { albums: catalog::albums_by_ids(state.db(), &ids).await? }))
}

#[utoipa::path(get, path = "/v1/artists/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Artist id.")),
    responses(
        (status = 200, description = "The artist.", body = ArtistResponse),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
        (status = 404, description = "`artist_not_found`."),
    ))]
pub(crate) async fn artist(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ArtistResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    let artist = artist_or_404(&state, &id).await?;
    Ok(Json(artist))
}

async fn artist_or_404(state: &AppState, id: &str) -> Result<ArtistResponse, ApiError> {
    catalog::artists_by_ids(state.db(), &[id.to_owned()])
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| ApiError::new(ErrorKind::ArtistNotFound, format!("id: no artist {}", echo(id))))
}

#[utoipa::path(get, path = "/v1/artists", tag = "catalog", security(("bearer" = [])),
    params(IdsQuery),
    responses(
        (status = 200, description = "Artists in the order asked, `null` for unknown ids.", body = ArtistsResponse),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
    ))]
pub(crate) async fn artists(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<IdsQuery>,
) -> Result<Json<ArtistsResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let ids = q.ids(validate::id)?;
    Ok(Json(ArtistsResponse { artists: catalog::artists_by_ids(state.db(), &ids).await? }))
}

#[utoipa::path(get, path = "/v1/artists/{id}/albums", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Artist id."), PageQuery),
    responses(
        (status = 200, description = "One page of the artist's albums, newest first.", body = Paging<AlbumSimplified>),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
        (status = 404, description = "`artist_not_found`."),
    ))]
pub(crate) async fn artist_albums(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    uri: Uri,
) -> Result<Json<Paging<AlbumSimplified>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    let page = q.page()?;
    artist_or_404(&state, &id).await?;
    let ids = catalog::artist_album_ids(state.db(), &id, page).await?;
    let albums = catalog::albums_by_ids(state.db(), &ids.ids).await?.into_iter().flatten().collect();
    Ok(Json(page.paging(&uri, ids.total, albums)))
}

#[utoipa::path(get, path = "/v1/artists/{id}/top-tracks", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::Id, Path, description = "Artist id.")),
    responses(
        (status = 200, description = "The artist's 10 most popular tracks.", body = TracksResponse),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
        (status = 404, description = "`artist_not_found`."),
    ))]
pub(crate) async fn artist_top_tracks(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TracksResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = validate::id("id", &id)?;
    artist_or_404(&state, &id).await?;
    let ids = catalog::artist_top_track_ids(state.db(), &id).await?;
    Ok(Json(TracksResponse { tracks: state.tracks(&ids).await? }))
}

/// `GET /v1/audio-features/{id}`: the features the transcoder measured
/// (tempo, energy, brightness, timbre …); 404 `track_not_found`, or 404
/// `not_analysed` for a track whose audio is not transcoded yet.
#[utoipa::path(get, path = "/v1/audio-features/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = schema::TrackId, Path, description = "Track id.")),
    responses(
        (status = 200, description = "The features the transcoder measured (tempo, energy, brightness, timbre …) as one JSON object.", body = Object),
        (status = 400, description = "`invalid_request`: a bad id or query parameter (the message names it)."),
        (status = 404, description = "`track_not_found`, or `not_analysed` for a track whose audio is not transcoded yet."),
    ))]
pub(crate) async fn audio_features(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let id = track_id("id", &id)?;
    match catalog::audio_features(state.db(), &id).await? {
        None => Err(ApiError::new(ErrorKind::TrackNotFound, format!("id: no track {}", echo(&id)))),
        Some(None) => Err(ApiError::new(
            ErrorKind::NotAnalysed,
            format!("id: track {} has no audio features yet", echo(&id)),
        )),
        Some(Some(v)) => Ok(Json(v)),
    }
}

fn album_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorKind::AlbumNotFound, format!("id: no album {}", echo(id)))
}
