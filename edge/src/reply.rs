//! Building responses: the audio headers every answer carries, and the one
//! place that maps an error to its status and reason code.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full};

use crate::cache::FetchError;

/// The body type of every edge response.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// A body that failed after the headers were sent; hyper then aborts the
/// connection, so the client sees a short body, never wrong bytes.
#[derive(Debug, thiserror::Error)]
#[error("response body aborted: {0}")]
pub(crate) struct BodyError(#[from] pub(crate) FetchError);

/// Response header naming why a request was refused.
pub(crate) const REASON_HEADER: &str = "x-cadenza-reason";
/// Response header telling how the first slice was served.
pub(crate) const X_CACHE: &str = "x-cache";

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// `body`, counted in `gauge` until it is sent or dropped: the edge's
/// requests in flight, body included, which the control plane reads from
/// `/metrics` as the POP's load.
pub(crate) fn in_flight(body: Body, gauge: &prometheus::IntGauge) -> Body {
    gauge.inc();
    InFlight { inner: body, gauge: gauge.clone() }.boxed_unsync()
}

struct InFlight {
    inner: Body,
    gauge: prometheus::IntGauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl hyper::body::Body for InFlight {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Everything that can go wrong before the first body byte, with its status
/// and stable reason code. This is the only mapping from error to status.
#[derive(Debug)]
pub(crate) enum Refusal {
    Path(cadenza_config::layout::PathError),
    CorsOrigin,
    MethodNotAllowed,
    Token(cadenza_config::token::TokenError),
    /// A shield's tier route without the right bearer token (the reason).
    Tier(&'static str),
    RangeNotSatisfiable {
        len: u64,
    },
    Upstream(FetchError),
}

impl Refusal {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::Path(e @ cadenza_config::layout::PathError::NotFound) => {
                (StatusCode::NOT_FOUND, e.reason())
            }
            Refusal::Path(e) => (StatusCode::BAD_REQUEST, e.reason()),
            Refusal::CorsOrigin => (StatusCode::FORBIDDEN, "cors_origin_not_allowed"),
            Refusal::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Refusal::Token(e) => (StatusCode::FORBIDDEN, e.reason()),
            Refusal::Tier(reason) => (StatusCode::FORBIDDEN, reason),
            Refusal::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            Refusal::Upstream(FetchError::NotFound) => (StatusCode::NOT_FOUND, "not_found"),
            Refusal::Upstream(FetchError::Timeout(_)) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Refusal::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Path(e) => e.to_string(),
            Refusal::CorsOrigin => "this origin may not read audio from here".into(),
            Refusal::MethodNotAllowed => "only GET, HEAD and OPTIONS are allowed".into(),
            // Token messages say what failed, never anything about the key.
            Refusal::Token(e) => e.to_string(),
            Refusal::Tier("tier_token_missing") => "a bearer tier token is required".into(),
            Refusal::Tier(_) => "wrong tier token".into(),
            Refusal::RangeNotSatisfiable { len } => {
                format!("range not satisfiable for a {len}-byte object")
            }
            Refusal::Upstream(FetchError::NotFound) => "no such audio object".into(),
            Refusal::Upstream(FetchError::Timeout(_)) => "upstream timed out".into(),
            Refusal::Upstream(_) => "upstream failed".into(),
        }
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({
            "error": { "status": status.as_u16(), "code": code, "message": self.message() }
        });
        let mut resp = Response::new(full(body.to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(REASON_HEADER, HeaderValue::from_static(code));
        match self {
            Refusal::RangeNotSatisfiable { len } => {
                h.insert(header::CONTENT_RANGE, value(format!("bytes */{len}")));
                h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            Refusal::MethodNotAllowed => {
                h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
            }
            _ => {}
        }
        // Refusals are per-URL and short-lived; never let a cache keep one.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// Headers of every successful audio response.
pub(crate) fn audio_headers(h: &mut http::HeaderMap, etag: &str) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(cadenza_config::layout::AUDIO_CONTENT_TYPE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(etag.to_owned()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
}

/// A header value from text we built ourselves (digits, hex, ASCII).
pub(crate) fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("edge-built header values are visible ASCII")
}
