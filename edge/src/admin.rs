//! The admin listener: `/healthz`, `/readyz`, `/metrics` (open, for probes
//! and scrapers), and the admin API behind `Authorization: Bearer
//! <admin.token>`:
//!
//! - `POST /admin/purge` `{"file_ids": ["<32 hex>", …]}` — forget files
//!   (takedowns, bad encodes): their slices, length, remembered 404 and
//!   running fills; the next request refetches.
//! - `POST /admin/warm` — start a warm job (see [`crate::warm`]);
//!   `GET /admin/warm` lists jobs, `GET /admin/warm/<id>` reports one,
//!   `DELETE /admin/warm/<id>` cancels it.
//! - `GET /admin/stats` — tier sizes, fills, hit ratios over the last
//!   minute, five minutes and hour, bytes served and fetched.
//! - `GET /admin/keys` — the signing key ids this edge accepts and the
//!   current one (never a secret); `POST /admin/keys/reload` reads
//!   `[signing]` again, as SIGHUP does, and answers the same, or 500
//!   `signing_reload_failed` naming the file or key (the ring in use stays).
//!
//! Errors are the JSON shape every cadenza service uses.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cadenza_config::ids::FileId;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::json;

use crate::handler::Edge;
use crate::reply::{self, Body};
use crate::stats::{Sample, WINDOWS};

/// Largest admin request body.
const MAX_BODY: usize = 1 << 20;
/// Most files one purge names.
const MAX_PURGE: usize = 10_000;

pub(crate) async fn handle<B>(edge: Arc<Edge>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    let result = match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => Ok(text("ok\n")),
        (&Method::GET | &Method::HEAD, "/readyz") => Ok(text("ready\n")),
        (&Method::GET, "/metrics") => {
            edge.cache.update_gauges();
            let mut resp = text(edge.metrics.render());
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            Ok(resp)
        }
        (_, "/healthz" | "/readyz" | "/metrics") => Err(AdminError::method("GET")),
        (_, p) if p.starts_with("/admin/") => match authorize(&edge, &req) {
            Err(e) => Err(e),
            Ok(()) => match (req.method(), p) {
                (&Method::POST, "/admin/purge") => purge(&edge, req).await,
                (_, "/admin/purge") => Err(AdminError::method("POST")),
                (&Method::GET, "/admin/stats") => Ok(stats(&edge)),
                (_, "/admin/stats") => Err(AdminError::method("GET")),
                (&Method::GET, "/admin/keys") => {
                    Ok(json_response(StatusCode::OK, json!(edge.keys.summary())))
                }
                (_, "/admin/keys") => Err(AdminError::method("GET")),
                (&Method::POST, "/admin/keys/reload") => {
                    match crate::keys::reload(&edge, "admin API").await {
                        Ok(summary) => Ok(json_response(StatusCode::OK, json!(summary))),
                        Err(e) => Err(AdminError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "signing_reload_failed",
                            format!(
                                "{e}; keeping the key ring in use ({})",
                                edge.keys.summary().keys.join(", ")
                            ),
                        )),
                    }
                }
                (_, "/admin/keys/reload") => Err(AdminError::method("POST")),
                (&Method::POST, "/admin/warm") => start_warm(&edge, req).await,
                (&Method::GET, "/admin/warm") => Ok(json_response(
                    StatusCode::OK,
                    json!({ "jobs": edge.warmer.list().iter().map(|j| j.report(false)).collect::<Vec<_>>() }),
                )),
                (_, "/admin/warm") => Err(AdminError::method("GET, POST")),
                (method, p) if p.starts_with("/admin/warm/") => {
                    let id = &p["/admin/warm/".len()..];
                    match (edge.warmer.get(id), method) {
                        (None, _) => Err(AdminError::new(
                            StatusCode::NOT_FOUND,
                            "warm_job_not_found",
                            format!("no warm job {id:?}"),
                        )),
                        (Some(job), &Method::GET) => Ok(json_response(StatusCode::OK, job.report(true))),
                        (Some(job), &Method::DELETE) => {
                            job.cancel();
                            Ok(json_response(StatusCode::ACCEPTED, job.report(true)))
                        }
                        (Some(_), _) => Err(AdminError::method("GET, DELETE")),
                    }
                }
                _ => Err(AdminError::not_found()),
            },
        },
        _ => Err(AdminError::not_found()),
    };
    let mut resp = result.unwrap_or_else(AdminError::into_response);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn authorize<B>(edge: &Edge, req: &Request<B>) -> Result<(), AdminError> {
    match reply::bearer(req.headers()) {
        None => Err(AdminError::new(
            StatusCode::UNAUTHORIZED,
            "admin_token_missing",
            "send Authorization: Bearer <admin.token>",
        )),
        Some(t) if edge.admin_token.matches(t) => Ok(()),
        Some(_) => Err(AdminError::new(StatusCode::FORBIDDEN, "admin_token_bad", "wrong admin token")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    file_ids: Vec<String>,
}

async fn purge<B>(edge: &Edge, req: Request<B>) -> Result<Response<Body>, AdminError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = read_body(req).await?;
    let request: PurgeRequest = serde_json::from_slice(&body)
        .map_err(|e| AdminError::bad_request("bad_json", format!("purge body: {e}")))?;
    if request.file_ids.is_empty() || request.file_ids.len() > MAX_PURGE {
        return Err(AdminError::bad_request(
            "bad_file_ids",
            format!("file_ids: give 1 to {MAX_PURGE} file ids, not {}", request.file_ids.len()),
        ));
    }
    let mut files = Vec::with_capacity(request.file_ids.len());
    for (i, id) in request.file_ids.iter().enumerate() {
        let file: FileId = id
            .parse()
            .map_err(|e| AdminError::bad_request("bad_file_ids", format!("file_ids[{i}] = {id:?}: {e}")))?;
        files.push(file);
    }
    // A file named twice is purged (and reported) once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(*f));
    let results = edge.cache.purge(&files).await;
    let mut purged = Vec::with_capacity(files.len());
    for (file, p) in files.into_iter().zip(results) {
        tracing::info!(%file, slices = p.slices, bytes = p.bytes, disk_slices = p.disk_slices, fills = p.fills_detached, "purged");
        purged.push(json!({
            "file_id": file.as_str(),
            "slices": p.slices,
            "bytes": p.bytes,
            "disk_slices": p.disk_slices,
            "disk_bytes": p.disk_bytes,
            "fills_detached": p.fills_detached,
        }));
    }
    Ok(json_response(StatusCode::OK, json!({ "purged": purged })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmRequest {
    /// Whole files.
    #[serde(default)]
    file_ids: Vec<String>,
    /// Files with byte ranges (`"0-1048575"`, `"5000000-"`).
    #[serde(default)]
    files: Vec<WarmFile>,
    /// Slices this job fetches at once (at most `warm.max_concurrent`).
    concurrency: Option<usize>,
    /// Pace the job's slice starts to this many bytes per second.
    max_bytes_per_second: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmFile {
    file_id: String,
    #[serde(default)]
    ranges: Vec<String>,
}

async fn start_warm<B>(edge: &Edge, req: Request<B>) -> Result<Response<Body>, AdminError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use crate::warm::{MAX_FILES, MAX_RANGES, WarmSpec, parse_range};
    let body = read_body(req).await?;
    let request: WarmRequest = serde_json::from_slice(&body)
        .map_err(|e| AdminError::bad_request("bad_json", format!("warm body: {e}")))?;
    let count = request.file_ids.len() + request.files.len();
    if count == 0 || count > MAX_FILES {
        return Err(AdminError::bad_request(
            "bad_files",
            format!("file_ids and files: give 1 to {MAX_FILES} files in all, not {count}"),
        ));
    }
    let parse_id = |at: String, id: &str| {
        id.parse::<FileId>().map_err(|e| AdminError::bad_request("bad_files", format!("{at} = {id:?}: {e}")))
    };
    let mut files = Vec::with_capacity(count);
    for (i, id) in request.file_ids.iter().enumerate() {
        files.push((parse_id(format!("file_ids[{i}]"), id)?, Vec::new()));
    }
    for (i, f) in request.files.iter().enumerate() {
        let file = parse_id(format!("files[{i}].file_id"), &f.file_id)?;
        if f.ranges.len() > MAX_RANGES {
            return Err(AdminError::bad_request(
                "bad_files",
                format!("files[{i}].ranges: at most {MAX_RANGES} ranges, not {}", f.ranges.len()),
            ));
        }
        let mut ranges = Vec::with_capacity(f.ranges.len());
        for (j, r) in f.ranges.iter().enumerate() {
            ranges.push(parse_range(r).ok_or_else(|| {
                AdminError::bad_request(
                    "bad_files",
                    format!("files[{i}].ranges[{j}] = {r:?}: must be \"first-last\" or \"first-\" in bytes, first <= last"),
                )
            })?);
        }
        files.push((file, ranges));
    }
    let max = edge.warmer.max_concurrent();
    let concurrency = request.concurrency.unwrap_or(max);
    if !(1..=max).contains(&concurrency) {
        return Err(AdminError::bad_request(
            "bad_concurrency",
            format!("concurrency: must be between 1 and warm.max_concurrent ({max}), not {concurrency}"),
        ));
    }
    if request.max_bytes_per_second == Some(0) {
        return Err(AdminError::bad_request("bad_rate", "max_bytes_per_second: must be positive".to_owned()));
    }
    let job = edge.warmer.start(WarmSpec {
        files,
        concurrency,
        max_bytes_per_second: request.max_bytes_per_second,
    });
    tracing::info!(job = %job.id, files = count, concurrency, "warm job started");
    let mut resp = json_response(StatusCode::ACCEPTED, job.report(false));
    if let Ok(location) = HeaderValue::from_str(&format!("/admin/warm/{}", job.id)) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

fn stats(edge: &Edge) -> Response<Body> {
    let now = Instant::now();
    let current = Sample::read(&edge.metrics);
    let mut hit_ratio = serde_json::Map::new();
    for (name, span) in WINDOWS {
        let w = edge.windows.over(now, span, current);
        let d = w.delta;
        hit_ratio.insert(
            name.to_owned(),
            json!({
                "seconds": w.covered.as_secs(),
                "lookups": d.lookups(),
                "hits": d.hits,
                "disk_hits": d.disk_hits,
                "misses": d.misses,
                "coalesced": d.coalesced,
                "ratio": w.hit_ratio(),
                "memory_ratio": w.memory_hit_ratio(),
                "served_bytes": d.served_bytes,
                "origin_bytes": d.origin_bytes,
            }),
        );
    }
    let (bytes, entries, evictions) = edge.cache.memory_usage();
    let disk = edge.cache.disk().map(|d| d.status());
    let degraded = disk.as_ref().is_some_and(|d| d.degraded);
    json_response(
        StatusCode::OK,
        json!({
            "edge": edge.name,
            "uptime_seconds": edge.windows.uptime(now).as_secs(),
            "memory": {
                "bytes": bytes,
                "capacity_bytes": edge.cache.memory_capacity(),
                "entries": entries,
                "evictions": evictions,
            },
            // null without a disk tier.
            "disk": disk,
            "degraded": degraded,
            "fills_in_flight": edge.metrics.fills_in_flight.get(),
            "hit_ratio": hit_ratio,
            "totals": {
                "served_bytes": current.served_bytes,
                "origin_bytes": current.origin_bytes,
            },
        }),
    )
}

async fn read_body<B>(req: Request<B>) -> Result<Bytes, AdminError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(AdminError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("admin request bodies are at most {MAX_BODY} bytes"),
        )),
        Err(e) => Err(AdminError::bad_request("bad_body", format!("reading the body: {e}"))),
    }
}

fn text(body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(reply::full(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(reply::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An admin API refusal: status, stable code, message.
#[derive(Debug)]
struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
    allow: Option<&'static str>,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), allow: None }
    }

    fn bad_request(code: &'static str, message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such admin path")
    }

    fn method(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("use {allow}"))
        }
    }

    fn into_response(self) -> Response<Body> {
        let mut resp = json_response(
            self.status,
            json!({ "error": { "status": self.status.as_u16(), "code": self.code, "message": self.message } }),
        );
        if let Some(allow) = self.allow {
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}
