//! `cadenza origin`: a store served over HTTP, read-only.
//!
//! `GET`/`HEAD /audio/<file_id>.ogg` and `/tracks/<track_id>/manifest.json`
//! with single byte ranges (the policy of `cadenza_net::range`). Nothing
//! else: no listing, no writes, no other keys. It is what an edge's
//! `origin.url = "http://…"` points at when the edge cannot reach the store.
//!
//! `GET /metrics` answers Prometheus text: requests by method and status,
//! and the body bytes they were answered with (what an album drop costs
//! the origin, seen from the origin).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cadenza_config::ServiceConfig as _;
use cadenza_config::service::OriginConfig;
use futures_util::TryStreamExt as _;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStoreExt as _};
use tokio::net::TcpListener;

use crate::store::{Store, StoreError, open_store};

type Body = UnsyncBoxBody<Bytes, object_store::Error>;

/// Why the origin server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error(transparent)]
    Config(#[from] cadenza_config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("listener failed: {0}")]
    Serve(std::io::Error),
}

/// An origin server with its listener bound.
#[derive(Debug)]
pub struct OriginServer {
    listener: TcpListener,
    store: Store,
    config: OriginConfig,
}

impl OriginServer {
    /// Check the config, open the store and bind (port 0 picks a free port).
    pub async fn bind(config: OriginConfig) -> Result<Self, OriginError> {
        config.validate()?;
        let store = open_store(&config.store)?;
        Self::bind_store(config, store).await
    }

    /// Serve an already opened store (the dev stack shares one).
    pub async fn bind_store(config: OriginConfig, store: Store) -> Result<Self, OriginError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| OriginError::Bind { addr: config.listen, source })?;
        Ok(Self { listener, store, config })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serve until `shutdown` completes, then drain.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), OriginError> {
        tracing::info!(addr = %self.local_addr(), store = %self.store, "origin serving");
        let store = Arc::new(self.store);
        let metrics = Arc::new(Metrics::new());
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (store, metrics) = (store.clone(), metrics.clone());
            async move {
                if req.uri().path() == "/metrics" && req.method() == Method::GET {
                    return Ok::<_, std::convert::Infallible>(metrics.render());
                }
                let method = if req.method() == Method::HEAD { "HEAD" } else { "GET" };
                let resp = handle(&store, req).await;
                metrics.observe(method, &resp);
                Ok(resp)
            }
        });
        cadenza_net::serve(self.listener, service, cadenza_net::Limits::from(&self.config.http), shutdown)
            .await
            .map_err(OriginError::Serve)
    }
}

/// The origin's counters.
struct Metrics {
    registry: prometheus::Registry,
    requests: prometheus::IntCounterVec,
    bytes: prometheus::IntCounter,
}

impl Metrics {
    fn new() -> Self {
        let registry = prometheus::Registry::new();
        let requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "cadenza_origin_requests_total",
                "Object requests answered, by method and status.",
            ),
            &["method", "status"],
        )
        .expect("valid metric");
        let bytes = prometheus::IntCounter::new(
            "cadenza_origin_response_body_bytes_total",
            "Bytes of object bodies answered (as announced by Content-Length).",
        )
        .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("metric registered once");
        registry.register(Box::new(bytes.clone())).expect("metric registered once");
        Self { registry, requests, bytes }
    }

    fn observe(&self, method: &str, resp: &Response<Body>) {
        self.requests.with_label_values(&[method, resp.status().as_str()]).inc();
        if method == "GET" && resp.status().is_success() {
            let len = resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
            self.bytes.inc_by(len.unwrap_or(0));
        }
    }

    fn render(&self) -> Response<Body> {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics unavailable: {e}\n"));
        let mut resp =
            Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync());
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
        resp
    }
}

/// `cadenza origin`: bind and serve until SIGINT/SIGTERM.
pub async fn run(config: OriginConfig) -> Result<(), OriginError> {
    OriginServer::bind(config).await?.serve(cadenza_net::shutdown_signal()).await
}

/// Is `key` one of the two kinds of object we publish?
fn servable(key: &str) -> bool {
    if let Some(rest) = key.strip_prefix(cadenza_config::layout::AUDIO_PREFIX) {
        return rest
            .strip_suffix(cadenza_config::layout::AUDIO_EXT)
            .is_some_and(|id| id.parse::<cadenza_config::ids::FileId>().is_ok());
    }
    key.strip_prefix(cadenza_config::layout::TRACKS_PREFIX)
        .and_then(|rest| rest.strip_suffix("/manifest.json"))
        .is_some_and(|id| id.parse::<cadenza_config::ids::TrackId>().is_ok())
}

async fn handle<B>(store: &Store, req: Request<B>) -> Response<Body> {
    let key = req.uri().path().trim_start_matches('/');
    if !servable(key) {
        return error(StatusCode::NOT_FOUND, "not_found", "no such object");
    }
    let head_only = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "only GET and HEAD are allowed",
            );
        }
    };
    let path = StorePath::from(key);
    let meta = match store.head(&path).await {
        Ok(m) => m,
        Err(e) => return store_error(&e),
    };
    let selection = match req.headers().get(header::RANGE) {
        None => cadenza_net::range::Selection::Full,
        Some(v) => cadenza_net::range::select(v.as_bytes(), meta.size, 1),
    };
    let (status, range) = match selection {
        // `max_parts` 1: several ranges are answered with the whole object.
        cadenza_net::range::Selection::Full | cadenza_net::range::Selection::Multi(_) => {
            (StatusCode::OK, 0..meta.size)
        }
        cadenza_net::range::Selection::Partial(r) => (StatusCode::PARTIAL_CONTENT, r),
        cadenza_net::range::Selection::Unsatisfiable => {
            let mut resp =
                error(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "range not satisfiable");
            resp.headers_mut().insert(header::CONTENT_RANGE, value(format!("bytes */{}", meta.size)));
            return resp;
        }
    };
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    object_headers(resp.headers_mut(), &meta, key);
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if status == StatusCode::PARTIAL_CONTENT {
        resp.headers_mut().insert(
            header::CONTENT_RANGE,
            value(format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size)),
        );
    }
    if head_only || range.is_empty() {
        return resp;
    }
    let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
    match store.get_opts(&path, options).await {
        Ok(got) => {
            let frames = got.into_stream().map_ok(Frame::data);
            *resp.body_mut() = StreamBody::new(frames).boxed_unsync();
            resp
        }
        Err(e) => store_error(&e),
    }
}

fn object_headers(h: &mut http::HeaderMap, meta: &ObjectMeta, key: &str) {
    let content_type =
        if key.ends_with(".json") { "application/json" } else { cadenza_config::layout::AUDIO_CONTENT_TYPE };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::LAST_MODIFIED, value(httpdate(meta.last_modified.timestamp())));
    if let Some(tag) = meta.e_tag.as_deref() {
        let tag = tag.trim_matches('"');
        if tag.bytes().all(|c| c.is_ascii_graphic() && c != b'"') {
            h.insert(header::ETAG, value(format!("\"{tag}\"")));
        }
    }
}

fn store_error(e: &object_store::Error) -> Response<Body> {
    match e {
        object_store::Error::NotFound { .. } => error(StatusCode::NOT_FOUND, "not_found", "no such object"),
        other => {
            tracing::warn!(error = %other, "store read failed");
            error(StatusCode::BAD_GATEWAY, "store_error", "store read failed")
        }
    }
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    let body =
        format!(r#"{{"error":{{"status":{},"code":"{code}","message":"{message}"}}}}"#, status.as_u16());
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert("x-cadenza-reason", HeaderValue::from_static(code));
    resp
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync()
}

fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("origin-built header values are visible ASCII")
}

/// RFC 9110 §5.6.7 IMF-fixdate for a unix time.
fn httpdate(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(httpdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(httpdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(httpdate(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
    }

    #[test]
    fn only_published_kinds_are_servable() {
        assert!(servable("audio/0123456789abcdef0123456789abcdef.ogg"));
        assert!(servable("tracks/t-1/manifest.json"));
        for bad in [
            "",
            "audio/",
            "audio/x.ogg",
            "tracks/a/b/manifest.json",
            "keys.toml",
            "../etc/passwd",
            "tracks/t/other.json",
        ] {
            assert!(!servable(bad), "{bad}");
        }
    }
}
