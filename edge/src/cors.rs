//! CORS for browser players (`[cors]`).
//!
//! With `allow_origins = ["*"]` every response says
//! `Access-Control-Allow-Origin: *` (the URL token is the access control;
//! no credentials are involved). With a list, a request whose `Origin` is
//! on it gets that origin echoed back, `Vary: Origin` is always sent so a
//! shared cache keeps the answers apart, and a preflight from an origin not
//! on the list is refused (`403 cors_origin_not_allowed`). An empty list
//! sends no CORS headers at all.

use http::HeaderMap;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::reply::{self, Body, Refusal};

/// Headers a browser player may read.
const EXPOSED: &str = "Content-Range, Content-Length, Accept-Ranges, ETag, X-Cache, X-Cadenza-Reason";
const METHODS: &str = "GET, HEAD, OPTIONS";
const ALLOWED_HEADERS: &str = "Range, If-Range, If-None-Match";

#[derive(Debug)]
pub(crate) enum Cors {
    Off,
    Any { max_age: HeaderValue },
    List { origins: Vec<HeaderValue>, max_age: HeaderValue },
}

impl Cors {
    pub(crate) fn new(config: &cadenza_config::service::CorsConfig) -> Self {
        let max_age = HeaderValue::from(config.max_age.get().as_secs());
        if config.allow_origins.is_empty() {
            Cors::Off
        } else if config.allow_origins.iter().any(|o| o == "*") {
            Cors::Any { max_age }
        } else {
            let origins =
                config.allow_origins.iter().map(|o| reply::value(o.clone())).collect::<Vec<HeaderValue>>();
            Cors::List { origins, max_age }
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request, if any.
    fn allowed(&self, request: &HeaderMap) -> Option<HeaderValue> {
        match self {
            Cors::Off => None,
            Cors::Any { .. } => Some(HeaderValue::from_static("*")),
            Cors::List { origins, .. } => {
                let origin = request.get(header::ORIGIN)?;
                origins.iter().find(|o| *o == origin).cloned()
            }
        }
    }

    /// Add the CORS headers of a (non-preflight) response.
    pub(crate) fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if let Cors::List { .. } = self {
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = self.allowed(request) {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if !response.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS) {
                response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
            }
        }
    }

    /// Answer an `OPTIONS` preflight (no token needed: it carries none).
    pub(crate) fn preflight(&self, request: &HeaderMap) -> Result<Response<Body>, Refusal> {
        let max_age = match self {
            Cors::Off => None,
            Cors::Any { max_age } | Cors::List { max_age, .. } => Some(max_age.clone()),
        };
        let (Some(max_age), Some(_)) = (max_age, self.allowed(request)) else {
            return Err(Refusal::CorsOrigin);
        };
        let mut resp = Response::new(reply::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, max_age);
        h.insert(header::ALLOW, HeaderValue::from_static(METHODS));
        Ok(resp)
    }
}
