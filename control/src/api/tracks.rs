//! `GET /v1/tracks/{id}`: a track's public metadata.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cadenza_config::ids::TrackId;
use sha2::{Digest, Sha256};

use super::AppState;
use super::extract::ApiPath;
use crate::auth::AuthUser;
use crate::db::catalog;
use crate::error::{ApiError, ErrorKind};
use crate::validate::echo;

/// Per-user answers: caches may keep them but must revalidate (cheap: a
/// matching `If-None-Match` gets a bodiless 304).
const CACHE_CONTROL_VALUE: &str = "private, no-cache";

/// The track as JSON with a strong `ETag` (SHA-256 of the body); a
/// matching `If-None-Match` gets `304 Not Modified`.
pub(crate) async fn get_track(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: TrackId = id.parse().map_err(|e| ApiError::invalid(format!("id: {e}")))?;
    let track = catalog::track(state.db(), &id).await?.ok_or_else(|| {
        ApiError::new(ErrorKind::TrackNotFound, format!("id: no track {}", echo(id.as_str())))
    })?;
    let body = serde_json::to_vec(&track).map_err(|e| ApiError::internal("track json", &e))?;
    let etag = etag_of(&body);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::internal("etag", &e))?;
    let cache = HeaderValue::from_static(CACHE_CONTROL_VALUE);
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag_value), (CACHE_CONTROL, cache)]).into_response());
    }
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ETAG, etag_value),
            (CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

/// A strong entity tag: `"` + 32 hex digits of SHA-256(body) + `"`.
fn etag_of(body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    format!("\"{}\"", &digest[..32])
}

/// Does `If-None-Match` match `etag`? RFC 9110 §13.1.2: `*` matches any
/// current representation; otherwise any listed tag matching by weak
/// comparison (the `W/` prefix is ignored). Several header lines are one
/// list.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_weakly_and_in_lists() {
        let etag = etag_of(b"{}");
        assert_eq!(etag.len(), 34);
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, &etag));
        for (value, hit) in [
            (etag.clone(), true),
            (format!("W/{etag}"), true),
            (format!("\"other\", {etag}"), true),
            ("*".to_owned(), true),
            ("\"other\"".to_owned(), false),
            (etag.trim_matches('"').to_owned(), false),
        ] {
            h.insert(IF_NONE_MATCH, HeaderValue::from_str(&value).unwrap());
            assert_eq!(if_none_match(&h, &etag), hit, "{value}");
        }
    }
}
