//! One audio request: path → method → token → length → conditionals →
//! range → body.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use cadenza_config::layout::{check_edge_path, parse_tier_path};
use cadenza_config::live::LiveKeys;
use cadenza_config::units::Secret;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::body::{BodyPlan, Part};
use crate::cache::{SharedCache, SliceRead, Source};
use crate::cors::Cors;
use crate::metrics::Metrics;
use crate::reply::{self, Body, Refusal, X_CACHE};
use cadenza_net::range::{self, Selection};

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub(crate) struct Edge {
    /// The signing key ring, swapped by a reload ([`crate::keys`]).
    pub(crate) keys: LiveKeys,
    pub(crate) cache: SharedCache,
    pub(crate) metrics: Metrics,
    pub(crate) cors: Cors,
    pub(crate) max_ranges: usize,
    pub(crate) access_log: Sampler,
    /// `tier.token`: when set, this edge is a shield and child edges fill
    /// from it at `/audio/<file_id>.ogg` with this bearer token.
    /// This shield's tier token, and the previous one while it rotates.
    pub(crate) tier_token: Option<(Secret, Option<Secret>)>,
    /// `admin.token`, for the admin API.
    pub(crate) admin_token: Secret,
    pub(crate) name: String,
    /// Hit ratios over recent windows (`/admin/stats`).
    pub(crate) windows: crate::stats::Windows,
    /// Warm jobs (`/admin/warm`).
    pub(crate) warmer: crate::warm::Warmer,
}

/// Answer one request on the public listener.
pub(crate) async fn handle<B>(edge: Arc<Edge>, req: Request<B>) -> Response<Body> {
    let started = Instant::now();
    let mut source = None;
    let mut resp = match answer(&edge, &req, &mut source).await {
        Ok(resp) => resp,
        Err(refusal) => {
            match &refusal {
                Refusal::Token(e) => {
                    edge.metrics.token_rejections.with_label_values(&[e.reason()]).inc();
                }
                Refusal::Path(e) => {
                    edge.metrics.path_rejections.with_label_values(&[e.reason()]).inc();
                }
                Refusal::Tier(reason) => {
                    edge.metrics.token_rejections.with_label_values(&[reason]).inc();
                }
                _ => {}
            }
            refusal.into_response()
        }
    };
    edge.cors.decorate(req.headers(), resp.headers_mut());
    let method = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let cache = source.map_or("none", |s: Source| s.x_cache());
    let status = resp.status();
    edge.metrics.requests.with_label_values(&[method, status.as_str(), cache]).inc();
    if status.is_server_error() || edge.access_log.hit() {
        // Never the query: it carries the signature.
        tracing::info!(
            target: "cadenza_edge::access",
            method,
            path = req.uri().path(),
            version = ?req.version(),
            status = status.as_u16(),
            cache,
            range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).unwrap_or(""),
            bytes = resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or(""),
            reason = resp.headers().get(reply::REASON_HEADER).and_then(|v| v.to_str().ok()).unwrap_or(""),
            ttfb_ms = started.elapsed().as_secs_f64() * 1e3,
            "request",
        );
    }
    resp.map(|body| reply::in_flight(body, &edge.metrics.requests_in_flight))
}

async fn answer<B>(
    edge: &Edge,
    req: &Request<B>,
    source: &mut Option<Source>,
) -> Result<Response<Body>, Refusal> {
    let path = req.uri().path();
    let tier = edge.tier_token.as_ref().and_then(|token| Some((parse_tier_path(path)?, token)));
    let file = match tier {
        // A child edge filling from this shield: the store layout, a bearer
        // token instead of a signed URL.
        Some((file, expected)) => {
            if !matches!(*req.method(), Method::GET | Method::HEAD) {
                return Err(Refusal::MethodNotAllowed);
            }
            check_tier_token(req.headers(), expected)?;
            file
        }
        None => {
            // Path tricks are named before anything else is looked at.
            let file = check_edge_path(path).map_err(Refusal::Path)?;
            match *req.method() {
                Method::GET | Method::HEAD => {}
                Method::OPTIONS => return edge.cors.preflight(req.headers()),
                _ => return Err(Refusal::MethodNotAllowed),
            }
            // The token covers the canonical path; the cache key below is
            // derived from that same verified path, never from the query.
            edge.keys.verify(path, req.uri().query(), cadenza_config::unix_now()).map_err(Refusal::Token)?;
            file
        }
    };

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

    let mut resp = Response::new(reply::empty());
    reply::audio_headers(resp.headers_mut(), &etag);
    let (status, parts) = match selection(headers, &etag, len, edge.max_ranges)? {
        Selection::Partial(r) => {
            let content_range = reply::value(format!("bytes {}-{}/{len}", r.start, r.end - 1));
            resp.headers_mut().insert(header::CONTENT_RANGE, content_range);
            (StatusCode::PARTIAL_CONTENT, vec![Part::Range(r)])
        }
        Selection::Multi(ranges) => {
            let (content_type, parts) = multipart(&ranges, len);
            resp.headers_mut().insert(header::CONTENT_TYPE, content_type);
            (StatusCode::PARTIAL_CONTENT, parts)
        }
        Selection::Full | Selection::Unsatisfiable => (StatusCode::OK, vec![Part::Range(0..len)]),
    };
    *resp.status_mut() = status;
    let length: u64 = parts
        .iter()
        .map(|p| match p {
            Part::Fixed(b) => b.len() as u64,
            Part::Range(r) => r.end - r.start,
        })
        .sum();
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let first = parts.iter().find_map(|p| match p {
        Part::Range(r) if !r.is_empty() => Some(r.clone()),
        _ => None,
    });
    let (Some(first), false) = (first, *req.method() == Method::HEAD) else {
        return Ok(resp);
    };

    // Open the first slice and wait for its first byte before answering, so
    // an upstream failure becomes a status code rather than a broken 200.
    let index = first.start / edge.cache.slice_size();
    let (read, mut got) = edge.cache.open(file, index, len, &first);
    let (read, reopened) = edge.cache.resolve(read, file, index, len, &first).await;
    if let Some(source) = reopened {
        got = source;
    }
    if let SliceRead::Filling(reader) = &read {
        reader.started().await.map_err(Refusal::Upstream)?;
        if reader.reads_disk() {
            got = Source::Disk;
        }
    }
    *source = Some(got);
    resp.headers_mut().insert(X_CACHE, HeaderValue::from_static(got.x_cache()));
    let plan =
        BodyPlan::new(edge.cache.clone(), edge.metrics.clone(), file, len, parts).with_first(index, read);
    *resp.body_mut() = plan.into_body();
    Ok(resp)
}

/// `Authorization: Bearer <tier.token>`, compared in constant time.
fn check_tier_token(headers: &HeaderMap, expected: &(Secret, Option<Secret>)) -> Result<(), Refusal> {
    let (current, previous) = expected;
    match reply::bearer(headers) {
        None => Err(Refusal::Tier("tier_token_missing")),
        // Both compared, so timing does not tell which one matched.
        Some(given) if current.matches(given) | previous.as_ref().is_some_and(|p| p.matches(given)) => Ok(()),
        Some(_) => Err(Refusal::Tier("tier_token_bad")),
    }
}

/// The parts of a `multipart/byteranges` body (RFC 9110 §14.6) and its
/// `Content-Type`.
fn multipart(ranges: &[Range<u64>], len: u64) -> (HeaderValue, Vec<Part>) {
    let boundary = cadenza_config::ids::random_id(24);
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    for (i, r) in ranges.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
            cadenza_config::layout::AUDIO_CONTENT_TYPE,
            r.start,
            r.end - 1,
        );
        parts.push(Part::Fixed(Bytes::from(head)));
        parts.push(Part::Range(r.clone()));
    }
    parts.push(Part::Fixed(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    (reply::value(format!("multipart/byteranges; boundary={boundary}")), parts)
}

/// `If-None-Match` (RFC 9110 §13.1.2): weak comparison; `*` matches.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|list| {
            list.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
        })
    })
}

/// What to send: `Full` without a usable `Range`, or a 416.
fn selection(headers: &HeaderMap, etag: &str, len: u64, max_ranges: usize) -> Result<Selection, Refusal> {
    let Some(range) = headers.get(header::RANGE) else {
        return Ok(Selection::Full);
    };
    // If-Range (RFC 9110 §13.1.5): strong comparison only; a date, a weak
    // tag or a different tag means "send the whole thing".
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
    {
        return Ok(Selection::Full);
    }
    match range::select(range.as_bytes(), len, max_ranges) {
        Selection::Unsatisfiable => Err(Refusal::RangeNotSatisfiable { len }),
        other => Ok(other),
    }
}

/// Picks about one request in `1/fraction`, without locks or randomness on
/// the hot path.
#[derive(Debug)]
pub(crate) struct Sampler {
    every: u64,
    seen: AtomicU64,
}

impl Sampler {
    pub(crate) fn new(fraction: f64) -> Self {
        let every = if fraction <= 0.0 { 0 } else { (1.0 / fraction.min(1.0)).round() as u64 };
        Self { every, seen: AtomicU64::new(0) }
    }

    pub(crate) fn hit(&self) -> bool {
        self.every != 0 && self.seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn sampler_rates() {
        let count = |f: f64| {
            let s = Sampler::new(f);
            (0..1000).filter(|_| s.hit()).count()
        };
        assert_eq!(count(0.0), 0);
        assert_eq!(count(1.0), 1000);
        assert_eq!(count(0.01), 10);
        assert_eq!(count(0.5), 500);
    }

    #[test]
    fn multipart_lengths_add_up() {
        let (ct, parts) = multipart(&[0..10, 20..25], 100);
        let boundary =
            ct.to_str().unwrap().strip_prefix("multipart/byteranges; boundary=").unwrap().to_owned();
        let mut text = String::new();
        for p in &parts {
            match p {
                Part::Fixed(b) => text.push_str(std::str::from_utf8(b).unwrap()),
                Part::Range(r) => text.push_str(&"x".repeat((r.end - r.start) as usize)),
            }
        }
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Type: audio/ogg\r\nContent-Range: bytes 0-9/100\r\n\r\nxxxxxxxxxx\r\n\
                 --{boundary}\r\nContent-Type: audio/ogg\r\nContent-Range: bytes 20-24/100\r\n\r\nxxxxx\r\n\
                 --{boundary}--\r\n"
            )
        );
    }
}
