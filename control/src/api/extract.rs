//! Extractors whose rejections use the API's JSON error shape instead of
//! axum's plain-text defaults.
//!
//! [`ApiJson`] also names *where* a body went wrong: it deserialises through
//! `serde_path_to_error`, so a bad value deep in an import batch is reported
//! as `tracks[3].manifest.renditions[0].bitrate_kbps: …`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};

/// A JSON request body (`Content-Type: application/json`).
#[derive(Debug, Clone)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::invalid("content-type: expected application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorKind::PayloadTooLarge, "body: too large for this route")
            } else {
                ApiError::invalid(format!("body: cannot read: {}", lower_first(&rejection.body_text())))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialise `bytes` as one JSON value of type `T`, naming the path of
/// the first bad field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid(format!("{at}: {}", e.into_inner()))
    })?;
    de.end().map_err(|e| ApiError::invalid(format!("body: {e}")))?;
    Ok(value)
}

/// `application/json` or `application/<anything>+json`, any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Path parameters.
#[derive(Debug, Clone)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(v)| ApiPath(v)).map_err(
            |rejection: PathRejection| {
                ApiError::invalid(format!("path: {}", lower_first(&rejection.body_text())))
            },
        )
    }
}

/// Query-string parameters (`?state=queued&limit=10`); errors name the
/// parameter.
#[derive(Debug, Clone)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state).await.map(|Query(v)| ApiQuery(v)).map_err(
            |rejection: QueryRejection| {
                let text = rejection.body_text();
                let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
                ApiError::invalid(format!("query: {}", lower_first(text)))
            },
        )
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::types::StreamRequest;

    fn message(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn json_errors_name_the_path() {
        let e = parse_json::<StreamRequest>(br#"{"track_id":"a/b"}"#).unwrap_err();
        assert!(message(e).contains("track_id: track id must be"));
        let e = parse_json::<StreamRequest>(br#"{"track_id":"t1","connection":"5g"}"#).unwrap_err();
        assert!(message(e).contains("connection: unknown variant"));
        let e = parse_json::<StreamRequest>(br#"{"track_id":"t1","colour":1}"#).unwrap_err();
        assert!(message(e).contains("unknown field `colour`"));
        let e = parse_json::<StreamRequest>(br#"{}"#).unwrap_err();
        assert!(message(e).contains("body: missing field `track_id`"));
        let e = parse_json::<StreamRequest>(br#"{"track_id":"t1"} {}"#).unwrap_err();
        assert!(message(e).contains("body: trailing characters"));
        assert!(parse_json::<StreamRequest>(br#"{"track_id":"t1","quality":96}"#).is_ok());
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (v, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/vnd.cadenza+json", true),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_json(&h), ok, "{v}");
        }
    }
}
