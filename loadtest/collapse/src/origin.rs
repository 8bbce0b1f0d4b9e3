//! A slow origin: a few objects in the object-store layout
//! (`/audio/<file_id>.ogg`), answered the way `cadenza origin` answers them,
//! with every request logged and every body paced so that waiting shows.
//!
//! What the edge's `http://` origin client (object_store's HTTP store)
//! needs, mirrored from `origin/src/server.rs`:
//!
//! - `HEAD`: `200` with `Content-Length` (required), `Last-Modified` and
//!   `ETag` (optional for that client, but `cadenza origin` sends both);
//! - ranged `GET`: `206` with `Content-Range: bytes a-b/len` that equals the
//!   range asked for exactly (anything else is an error, and a `200` to a
//!   ranged request is "range not supported");
//! - `404` for an unknown key (object_store maps it to `NotFound`).
//!
//! Pacing: the status line and headers go out `ttfb` after the request
//! arrives, then the body in `chunk`-byte pieces `interval` apart. The
//! instant each body piece is handed to the connection is recorded, so the
//! tool knows when the origin sent any given byte.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Any valid RFC 9110 date will do; the edge never revalidates.
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

/// How slowly the origin answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    /// Delay before the status line and headers.
    pub(crate) ttfb: Duration,
    /// Bytes per body piece.
    pub(crate) chunk: usize,
    /// Delay between body pieces.
    pub(crate) interval: Duration,
}

/// One request the origin received.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) method: Method,
    /// Store key, e.g. `audio/<id>.ogg`.
    pub(crate) key: String,
    /// Bytes of the object the answer carries (GET only).
    pub(crate) served: Option<Range<u64>>,
    pub(crate) status: u16,
    pub(crate) received: Instant,
    /// Each body piece handed to the connection: (object offset just past
    /// the piece, instant).
    pub(crate) pieces: Vec<(u64, Instant)>,
}

impl Event {
    /// When the origin sent object byte `at`, if this answer carried it.
    pub(crate) fn sent_at(&self, at: u64) -> Option<Instant> {
        if !self.served.as_ref()?.contains(&at) {
            return None;
        }
        self.pieces.iter().find(|(end, _)| *end > at).map(|(_, t)| *t)
    }
}

#[derive(Debug)]
struct State {
    objects: HashMap<String, Bytes>,
    pace: Pace,
    events: Mutex<Vec<Event>>,
}

impl State {
    fn with_events<T>(&self, f: impl FnOnce(&mut Vec<Event>) -> T) -> T {
        f(&mut self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A running origin; serves until the process exits.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Origin {
    /// Serve `objects` (store key → bytes) on 127.0.0.1, a free port.
    pub(crate) async fn start(objects: HashMap<String, Bytes>, pace: Pace) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State { objects, pace, events: Mutex::new(Vec::new()) });
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("collapse: origin accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    // A connection the edge drops mid-body is not our error.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait (at most `limit`) until every GET for `key` has sent its last
    /// byte, or has been going for `limit` (its connection went away).
    pub(crate) async fn settle(&self, key: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let busy = self.state.with_events(|events| {
                events.iter().any(|e| {
                    e.key == key
                        && e.received.elapsed() < limit
                        && e.served
                            .as_ref()
                            .is_some_and(|r| e.pieces.last().is_none_or(|(end, _)| *end < r.end))
                })
            });
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every request received so far for `key`, in arrival order.
    pub(crate) fn events_for(&self, key: &str) -> Vec<Event> {
        self.state.with_events(|events| events.iter().filter(|e| e.key == key).cloned().collect())
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let received = Instant::now();
    let key = req.uri().path().trim_start_matches('/').to_owned();
    let range_header =
        req.headers().get(header::RANGE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let method = req.method().clone();
    let mut event = Event {
        method: method.clone(),
        key: key.clone(),
        served: None,
        status: 0,
        received,
        pieces: Vec::new(),
    };
    let record = |mut event: Event, status: StatusCode| {
        event.status = status.as_u16();
        state.with_events(|events| {
            events.push(event);
            events.len() - 1
        })
    };

    let Some(data) = state.objects.get(&key).cloned() else {
        record(event, StatusCode::NOT_FOUND);
        return status_only(StatusCode::NOT_FOUND, None);
    };
    if method != Method::GET && method != Method::HEAD {
        record(event, StatusCode::METHOD_NOT_ALLOWED);
        return status_only(StatusCode::METHOD_NOT_ALLOWED, None);
    }
    let len = data.len() as u64;
    let (status, range) = match range_header.as_deref() {
        None => (StatusCode::OK, 0..len),
        Some(h) => match parse_range(h, len) {
            Some(r) => (StatusCode::PARTIAL_CONTENT, r),
            None => {
                record(event, StatusCode::RANGE_NOT_SATISFIABLE);
                return status_only(StatusCode::RANGE_NOT_SATISFIABLE, Some(len));
            }
        },
    };
    if method == Method::GET {
        event.served = Some(range.clone());
    }
    let index = record(event, status);

    tokio::time::sleep(state.pace.ttfb).await;

    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::LAST_MODIFIED, HeaderValue::from_static(LAST_MODIFIED));
    let id = key.trim_start_matches("audio/").trim_end_matches(".ogg");
    h.insert(header::ETAG, value(format!("\"{id}\"")));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, value(format!("bytes {}-{}/{len}", range.start, range.end - 1)));
    }
    if method == Method::HEAD || range.is_empty() {
        return resp;
    }
    *resp.body_mut() = paced(state, index, data, range);
    resp
}

/// Bytes `range` of `data` in `pace.chunk` pieces, `pace.interval` apart,
/// recording when each piece is handed over in event `index`.
fn paced(state: Arc<State>, index: usize, data: Bytes, range: Range<u64>) -> Body {
    let start = range.start as usize;
    let bytes = data.slice(start..range.end as usize);
    let pieces =
        futures_util::stream::unfold((state, bytes, 0usize), move |(state, bytes, pos)| async move {
            if pos >= bytes.len() {
                return None;
            }
            if pos > 0 {
                tokio::time::sleep(state.pace.interval).await;
            }
            let end = (pos + state.pace.chunk.max(1)).min(bytes.len());
            let piece = bytes.slice(pos..end);
            let now = Instant::now();
            state.with_events(|events| events[index].pieces.push(((start + end) as u64, now)));
            Some((Ok::<_, Infallible>(Frame::data(piece)), (state, bytes, end)))
        });
    StreamBody::new(pieces).boxed_unsync()
}

/// One byte range (`a-b`, `a-`, `-n`) of an object of `len` bytes; `None`
/// for anything unsatisfiable or that is not a single byte range.
fn parse_range(header: &str, len: u64) -> Option<Range<u64>> {
    let spec = header.strip_prefix("bytes=")?.trim();
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        len.saturating_sub(n)..len
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { len } else { b.parse::<u64>().ok()?.saturating_add(1).min(len) };
        start..end
    };
    (range.start < range.end).then_some(range)
}

fn status_only(status: StatusCode, len: Option<u64>) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    if let Some(len) = len {
        resp.headers_mut().insert(header::CONTENT_RANGE, value(format!("bytes */{len}")));
    }
    resp
}

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("visible ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(0..100));
        assert_eq!(parse_range("bytes=900-", 1000), Some(900..1000));
        assert_eq!(parse_range("bytes=-10", 1000), Some(990..1000));
        assert_eq!(parse_range("bytes=990-5000", 1000), Some(990..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
