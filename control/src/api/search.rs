//! `GET /v1/search?q=&type=track,artist,album,playlist&limit&offset`: one
//! paging object per type asked for, ranked by [`crate::search`]'s rule
//! (text relevance, then popularity) on both databases. User token,
//! `search` rate limit.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::ApiQuery;
use super::paging::Page;
use super::{AppState, Category};
use crate::auth::AuthUser;
use crate::db::catalog;
use crate::db::search::{Kind, Lexicon};
use crate::error::ApiError;
use crate::search::{MAX_QUERY_CHARS, Query};
use crate::types::{AlbumSimplified, ArtistResponse, Paging, PlaylistHit, SearchResponse, TrackResponse};
use crate::validate::echo;

/// Deepest `offset` of a search: results come from at most
/// [`crate::search::CANDIDATES`] candidates per type.
const MAX_SEARCH_OFFSET: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// The words to find (at most 200 characters, not blank).
    #[param(required = true, min_length = 1, max_length = 200, example = "first light")]
    q: Option<String>,
    /// The types to search, comma-separated, each at most once.
    #[serde(rename = "type")]
    #[param(
        required = true,
        pattern = "^(track|artist|album|playlist)(,(track|artist|album|playlist)){0,3}$",
        example = "track,album"
    )]
    kinds: Option<String>,
    /// Items per type.
    #[param(minimum = 1, maximum = 50, default = 20)]
    limit: Option<u32>,
    /// Index of the first item of each type.
    #[param(maximum = 1000, default = 0)]
    offset: Option<u32>,
}

#[utoipa::path(get, path = "/v1/search", tag = "catalog", security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "One paging object per type asked for.", body = SearchResponse),
        (status = 400, description = "`invalid_request`: `q` empty or too long, an unknown or repeated `type`, a bad `limit`/`offset`."),
    ))]
pub(crate) async fn search(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(params): ApiQuery<SearchQuery>,
    uri: Uri,
) -> Result<Json<SearchResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Search)?;
    let raw = params.q.unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(ApiError::invalid("q: must not be empty"));
    }
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(format!("q: must be at most {MAX_QUERY_CHARS} characters")));
    }
    let kinds = kinds(params.kinds.as_deref())?;
    let page = Page::new(params.limit, params.offset, MAX_SEARCH_OFFSET)?;
    // Nothing searchable (only punctuation): every asked type is empty.
    let query = Query::parse(&raw);
    let lexicon = match &query {
        Some(q) => Some(Lexicon::load(state.db(), q).await?),
        None => None,
    };
    // The types are searched at once, each on its own pooled connection:
    // a search costs the slowest type's time, not the sum.
    let found = futures_util::future::try_join_all(
        kinds.iter().map(|&kind| kind_page(&state, kind, query.as_ref().zip(lexicon.as_ref()), page, &uri)),
    )
    .await?;
    let mut out = SearchResponse::default();
    for result in found {
        match result {
            KindPage::Tracks(p) => out.tracks = Some(p),
            KindPage::Artists(p) => out.artists = Some(p),
            KindPage::Albums(p) => out.albums = Some(p),
            KindPage::Playlists(p) => out.playlists = Some(p),
        }
    }
    Ok(Json(out))
}

/// One type's paging object.
enum KindPage {
    Tracks(Paging<TrackResponse>),
    Artists(Paging<ArtistResponse>),
    Albums(Paging<AlbumSimplified>),
    Playlists(Paging<PlaylistHit>),
}

/// The results of `kind` for `query` (none when nothing is searchable).
async fn kind_page(
    state: &AppState,
    kind: Kind,
    query: Option<(&Query, &Lexicon)>,
    page: Page,
    uri: &Uri,
) -> Result<KindPage, ApiError> {
    let ids = match query {
        Some((q, lexicon)) => catalog::search_ids(state.db(), kind, q, lexicon, page).await?,
        None => catalog::IdPage { total: 0, ids: Vec::new() },
    };
    let db = state.db();
    Ok(match kind {
        Kind::Track => {
            let items = state.tracks(&ids.ids).await?.into_iter().flatten().collect();
            KindPage::Tracks(page.paging(uri, ids.total, items))
        }
        Kind::Artist => {
            let items = catalog::artists_by_ids(db, &ids.ids).await?.into_iter().flatten().collect();
            KindPage::Artists(page.paging(uri, ids.total, items))
        }
        Kind::Album => {
            let items = catalog::albums_by_ids(db, &ids.ids).await?.into_iter().flatten().collect();
            KindPage::Albums(page.paging(uri, ids.total, items))
        }
        Kind::Playlist => {
            KindPage::Playlists(page.paging(uri, ids.total, catalog::playlist_hits(db, &ids.ids).await?))
        }
    })
}

/// `type=track,album`: at least one known type, each once.
fn kinds(raw: Option<&str>) -> Result<Vec<Kind>, ApiError> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(ApiError::invalid("type: must list one or more of track, artist, album, playlist"));
    }
    let mut out = Vec::new();
    for (i, name) in raw.split(',').enumerate() {
        let kind = match name {
            "track" => Kind::Track,
            "artist" => Kind::Artist,
            "album" => Kind::Album,
            "playlist" => Kind::Playlist,
            other => {
                return Err(ApiError::invalid(format!(
                    "type[{i}]: must be track, artist, album or playlist, got {}",
                    echo(other)
                )));
            }
        };
        if out.contains(&kind) {
            return Err(ApiError::invalid(format!("type[{i}]: {name} is listed twice")));
        }
        out.push(kind);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(kinds(Some("track,album")).unwrap(), vec![Kind::Track, Kind::Album]);
        for bad in [None, Some(""), Some("song"), Some("track,track"), Some("track,")] {
            assert!(kinds(bad).is_err(), "{bad:?}");
        }
    }
}
