//! One audio request: path → token → length → conditionals → range → slices.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cadenza_config::ids::FileId;
use cadenza_config::layout::parse_edge_path;
use cadenza_config::token::Verifier;
use futures_util::stream;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;

use crate::cache::{SharedCache, Source};
use crate::metrics::Metrics;
use crate::reply::{self, Body, BodyError, Refusal, X_CACHE};
use cadenza_net::range::{self, Selection};

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub(crate) struct Edge {
    pub(crate) verifier: Verifier,
    pub(crate) cache: SharedCache,
    pub(crate) metrics: Metrics,
}

/// Answer one request on the public listener.
pub(crate) async fn handle<B>(edge: Arc<Edge>, req: Request<B>) -> Response<Body> {
    let resp = match answer(&edge, &req).await {
        Ok(resp) => resp,
        Err(refusal) => {
            if let Refusal::Token(e) = &refusal {
                edge.metrics.token_rejections.with_label_values(&[e.reason()]).inc();
                tracing::debug!(reason = e.reason(), path = req.uri().path(), "token refused");
            }
            refusal.into_response()
        }
    };
    let method = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    edge.metrics.requests.with_label_values(&[method, resp.status().as_str()]).inc();
    resp
}

async fn answer<B>(edge: &Edge, req: &Request<B>) -> Result<Response<Body>, Refusal> {
    let path = req.uri().path();
    let file = parse_edge_path(path).ok_or(Refusal::NotFound)?;
    match *req.method() {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => return Ok(preflight()),
        _ => return Err(Refusal::MethodNotAllowed),
    }
    // The token covers the canonical path; the cache key below is derived
    // from that same verified path, never from the query.
    edge.verifier.verify(path, req.uri().query(), cadenza_config::unix_now()).map_err(Refusal::Token)?;

    let len = edge.cache.len(file).await.map_err(Refusal::Upstream)?;
    let etag = format!("\"{file}\"");
    let headers = req.headers();

    if if_none_match(headers, &etag) {
        let mut resp = Response::new(reply::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        reply::audio_headers(resp.headers_mut(), &etag);
        resp.headers_mut().remove(header::CONTENT_TYPE);
        return Ok(resp);
    }

    let wanted = requested_range(headers, &etag, len)?;
    let (status, range) = match wanted {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, 0..len),
    };
    let mut resp = Response::new(reply::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    reply::audio_headers(h, &etag);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            reply::value(format!("bytes {}-{}/{len}", range.start, range.end - 1)),
        );
    }
    if *req.method() == Method::HEAD || range.is_empty() {
        return Ok(resp);
    }

    // Fetch the first slice before answering, so an upstream failure becomes
    // a status code rather than a truncated 200.
    let size = edge.cache.slice_size();
    let first = range.start / size;
    let last = (range.end - 1) / size;
    let (bytes, source) = edge.cache.slice(file, first, len).await.map_err(Refusal::Upstream)?;
    resp.headers_mut().insert(
        X_CACHE,
        HeaderValue::from_static(match source {
            Source::Hit => "HIT-MEM",
            Source::Miss => "MISS",
            Source::Coalesced => "COALESCED",
        }),
    );
    let head = cut(&bytes, edge.cache.slice_range(first, len), &range);
    edge.metrics.response_bytes.inc_by(head.len() as u64);
    *resp.body_mut() = body(edge, file, len, range, head, first + 1..last + 1);
    Ok(resp)
}

/// The part of slice `bytes` (covering `slice`) that lies inside `want`.
fn cut(bytes: &Bytes, slice: Range<u64>, want: &Range<u64>) -> Bytes {
    let from = want.start.max(slice.start) - slice.start;
    let to = want.end.min(slice.end) - slice.start;
    bytes.slice(from as usize..to as usize)
}

/// The response body: `head`, then each remaining slice as it is fetched.
fn body(edge: &Edge, file: FileId, len: u64, want: Range<u64>, head: Bytes, rest: Range<u64>) -> Body {
    let cache = edge.cache.clone();
    let metrics = edge.metrics.clone();
    let first = stream::once(async move { Ok::<_, BodyError>(Frame::data(head)) });
    let others = stream::unfold((rest, cache, metrics), move |(mut indices, cache, metrics)| {
        let want = want.clone();
        async move {
            let index = indices.next()?;
            let item = match cache.slice(file, index, len).await {
                Ok((bytes, _)) => {
                    let part = cut(&bytes, cache.slice_range(index, len), &want);
                    metrics.response_bytes.inc_by(part.len() as u64);
                    Ok(Frame::data(part))
                }
                Err(e) => {
                    tracing::warn!(%file, slice = index, error = %e, "fill failed mid-response; aborting");
                    // End the stream after the error.
                    indices = u64::MAX..u64::MAX;
                    Err(BodyError(e))
                }
            };
            Some((item, (indices, cache, metrics)))
        }
    });
    use futures_util::StreamExt as _;
    StreamBody::new(first.chain(others)).boxed_unsync()
}

/// `If-None-Match` (RFC 9110 §13.1.2): weak comparison; `*` matches.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|list| {
            list.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
        })
    })
}

/// The single range to serve, `None` for the whole object, or a 416.
fn requested_range(headers: &HeaderMap, etag: &str, len: u64) -> Result<Option<Range<u64>>, Refusal> {
    let Some(range) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    // If-Range (RFC 9110 §13.1.5): strong comparison only; a date or a
    // different tag means "send the whole thing".
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
    {
        return Ok(None);
    }
    match range::select(range.as_bytes(), len) {
        Selection::Full => Ok(None),
        Selection::Partial(r) => Ok(Some(r)),
        Selection::Unsatisfiable => Err(Refusal::RangeNotSatisfiable { len }),
    }
}

/// CORS preflight for browser players.
fn preflight() -> Response<Body> {
    let mut resp = Response::new(reply::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-Range, If-None-Match"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_takes_the_intersection() {
        let b = Bytes::from_static(b"0123456789");
        assert_eq!(&cut(&b, 10..20, &(12..15))[..], b"234");
        assert_eq!(&cut(&b, 10..20, &(0..100))[..], b"0123456789");
        assert_eq!(&cut(&b, 10..20, &(15..100))[..], b"56789");
        assert_eq!(&cut(&b, 10..20, &(0..11))[..], b"0");
    }

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        let tag = "\"abc\"";
        assert!(!if_none_match(&h, tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"abc\""));
        assert!(if_none_match(&h, tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!if_none_match(&h, tag));
    }
}
