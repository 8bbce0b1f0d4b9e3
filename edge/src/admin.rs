//! The admin listener: `/healthz`, `/readyz`, `/metrics`. The authenticated
//! admin API (warm, purge, stats) joins it in the edge's part 2.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::handler::Edge;
use crate::reply::{self, Body};

pub(crate) async fn handle<B>(edge: Arc<Edge>, req: Request<B>) -> Response<Body> {
    let (status, content_type, text) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (&Method::GET | &Method::HEAD, "/readyz") => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        (&Method::GET, "/metrics") => {
            edge.cache.update_gauges();
            (StatusCode::OK, "text/plain; version=0.0.4", edge.metrics.render())
        }
        (_, "/healthz" | "/readyz" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            r#"{"error":{"status":405,"code":"method_not_allowed","message":"use GET"}}"#.to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":{"status":404,"code":"not_found","message":"no such admin path"}}"#.to_owned(),
        ),
    };
    let mut resp = Response::new(reply::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
