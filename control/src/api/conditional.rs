//! Conditional GETs for every JSON answer: a middleware gives each `200`
//! JSON response to a `GET` a strong `ETag` (the first 32 hex digits of the
//! SHA-256 of the body, in quotes) and `Cache-Control: private, no-cache`
//! unless the handler set one, and answers a request whose
//! `If-None-Match` lists that tag with a bodiless `304 Not Modified`.
//!
//! Hashing the body rather than versioning rows keeps the tag honest for
//! any answer, whatever it joins: the tag changes exactly when the bytes
//! do. The bodies are small (a page is at most 50 items), so buffering
//! them costs little.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Per-user answers: caches may keep them but must revalidate (cheap: a
/// matching `If-None-Match` gets a bodiless 304).
const CACHE_CONTROL_VALUE: &str = "private, no-cache";
/// Largest body the middleware buffers; larger ones pass untagged.
const MAX_TAGGED_BODY: usize = 16 * 1024 * 1024;

pub(crate) async fn etag(req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let conditions = req.headers().get_all(IF_NONE_MATCH).iter().cloned().collect::<Vec<_>>();
    let response = next.run(req).await;
    if response.status() != StatusCode::OK
        || response.headers().contains_key(ETAG)
        || !is_json(response.headers())
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_TAGGED_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::internal("buffering a response", &e).into_response(),
    };
    let tag = etag_of(&bytes);
    let Ok(tag_value) = HeaderValue::from_str(&tag) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.insert(ETAG, tag_value);
    parts.headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static(CACHE_CONTROL_VALUE));
    if if_none_match(&conditions, &tag) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(CONTENT_TYPE);
        parts.headers.remove(CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

/// A strong entity tag: `"` + 32 hex digits of SHA-256(body) + `"`.
pub(crate) fn etag_of(body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    format!("\"{}\"", &digest[..32])
}

/// Does `If-None-Match` match `etag`? RFC 9110 §13.1.2: `*` matches any
/// current representation; otherwise any listed tag matching by weak
/// comparison (the `W/` prefix is ignored). Several header lines are one
/// list.
fn if_none_match(values: &[HeaderValue], etag: &str) -> bool {
    values
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
        assert!(!if_none_match(&[], &etag));
        for (value, hit) in [
            (etag.clone(), true),
            (format!("W/{etag}"), true),
            (format!("\"other\", {etag}"), true),
            ("*".to_owned(), true),
            ("\"other\"".to_owned(), false),
            (etag.trim_matches('"').to_owned(), false),
        ] {
            let v = [HeaderValue::from_str(&value).unwrap()];
            assert_eq!(if_none_match(&v, &etag), hit, "{value}");
        }
    }
}
