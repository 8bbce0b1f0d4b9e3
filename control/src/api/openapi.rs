//! `GET /openapi.json`: the OpenAPI 3.1 document of this API.
//!
//! The operations come from the handlers' `#[utoipa::path]` annotations
//! and the schemas from the body types' `ToSchema` derives, so a schema
//! follows the serde type it describes (renames, optional fields,
//! `deny_unknown_fields` as `additionalProperties: false`). What whole
//! classes of operations share because a layer or an extractor does it,
//! not the handler, is added here once ([`conventions`]) instead of on
//! every handler, where it would be forgotten on the next one:
//!
//! - the auth extractors: 401 on every authenticated operation, 403 on the
//!   admin and worker ones, 429 with `Retry-After` on the user ones (the
//!   rate limits), 503 `unavailable` wherever the database is asked;
//! - the conditional-GET middleware: `ETag` and `Cache-Control` on every
//!   JSON 200 of a GET, `If-None-Match`, and the bodiless 304;
//! - [`super::extract::ApiJson`]: 400 and 413 on every JSON request body;
//! - the error shape: every 4xx/5xx answer is an `ErrorResponse`.
//!
//! `control/tests/openapi.rs` holds the document to the router (every
//! route documented, every documented operation routed) and to real
//! answers (status documented, body valid against the schema).

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::{
    admin, bulk, catalog, cdns, events, health, ingest, library, playback, playlists, search, signing,
    tracks, warm,
};
use crate::types::{
    AlbumResponse, AlbumSimplified, AlbumsResponse, ArtistResponse, ArtistsResponse, BulkImportResponse,
    CdnList, CdnSpec, CdnView, CreatePlaylistRequest, CreateUserRequest, CreateUserResponse, DailyStreams,
    ErrorResponse, EventBatch, EventBatchResponse, HistoryItem, ImportLine, ImportRequest, ImportResponse,
    IngestJobList, IngestRequest, Paging, PlaylistItem, PlaylistResponse, PopularityResponse,
    PrefetchRequest, PrefetchResponse, ReportRequest, ReportResponse, RoyaltiesResponse, SearchResponse,
    SeekTable, SigningKeys, SimplePlaylist, SnapshotResponse, StreamRequest, StreamResponse, TrackResponse,
    TracksResponse, WarmJob, WarmJobList, WarmRequest, schema,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cadenza control plane",
        description = "Catalog, users, playlists, libraries, playback decisions and the ingest job queue. \
            Every error is `{\"error\":{\"status\",\"code\",\"message\"}}`; request bodies refuse unknown fields.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        openapi,
        catalog::tracks,
        tracks::get_track,
        catalog::albums,
        catalog::album,
        catalog::album_tracks,
        catalog::artists,
        catalog::artist,
        catalog::artist_albums,
        catalog::artist_top_tracks,
        catalog::audio_features,
        search::search,
        playback::stream,
        playback::prefetch,
        playback::report,
        playback::seek_table,
        cdns::list_cdns,
        cdns::get_cdn,
        cdns::put_cdn,
        cdns::delete_cdn,
        signing::keys,
        signing::reload,
        admin::import,
        bulk::import_jsonl,
        admin::put_artist,
        admin::put_album,
        admin::put_track,
        admin::create_user,
        ingest::register,
        ingest::list_jobs,
        ingest::get_job,
        warm::start_warm,
        warm::list_warm_jobs,
        warm::get_warm_job,
        warm::cancel_warm_job,
        ingest::claim,
        ingest::heartbeat,
        ingest::complete,
        ingest::fail,
        playlists::create,
        playlists::view,
        playlists::update,
        playlists::delete,
        playlists::items,
        playlists::add_items,
        playlists::remove_items,
        playlists::reorder,
        playlists::add_collaborator,
        playlists::remove_collaborator,
        playlists::mine,
        playlists::of_user,
        library::list,
        library::save,
        library::remove,
        library::contains,
        events::post_events,
        events::history,
        events::royalties,
        events::recompute_popularity,
    ),
    components(schemas(
        ErrorResponse,
        ImportLine,
        Paging<TrackResponse>,
        Paging<AlbumSimplified>,
        Paging<PlaylistItem>,
        Paging<SimplePlaylist>,
        Paging<HistoryItem>,
        Paging<DailyStreams>,
        AlbumResponse,
        AlbumsResponse,
        ArtistResponse,
        ArtistsResponse,
        BulkImportResponse,
        CreatePlaylistRequest,
        CreateUserRequest,
        CreateUserResponse,
        EventBatch,
        EventBatchResponse,
        ImportRequest,
        ImportResponse,
        IngestJobList,
        IngestRequest,
        PlaylistResponse,
        PopularityResponse,
        RoyaltiesResponse,
        SearchResponse,
        SnapshotResponse,
        StreamRequest,
        StreamResponse,
        PrefetchRequest,
        PrefetchResponse,
        ReportRequest,
        ReportResponse,
        SeekTable,
        CdnList,
        CdnSpec,
        CdnView,
        SigningKeys,
        TracksResponse,
        WarmRequest,
        WarmJob,
        WarmJobList,
        schema::JobStatus,
        schema::IngestJob,
        // Named only by parameters, which the generator does not follow.
        schema::LibraryKind,
        schema::JobState,
        schema::Id,
        schema::TrackId,
        schema::UserId,
    )),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document; no auth."),
        (name = "catalog", description = "Tracks, albums, artists, search (user token, `read`/`search` rate limits)."),
        (name = "playback", description = "Quality and signed edge URLs (user token, `playback` rate limit)."),
        (name = "playlists", description = "Playlists with snapshot ids (user token, `read`/`playlist_write` rate limits)."),
        (name = "library", description = "A user's saved items (user token, `read`/`library_write` rate limits)."),
        (name = "events", description = "Playback events and listening history (user token, `events`/`read` rate limits)."),
        (name = "admin", description = "Catalog, users, ingest jobs, warm jobs, royalties and popularity, the CDN registry and the URL-signing keys (admin token)."),
        (name = "ingest", description = "The transcoder workers' side of the job queue (worker or admin token)."),
    ),
)]
struct ApiDoc;

/// This document, as served.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_bytes().clone())
}

/// Built once: the document is the same for the life of the process.
fn document_bytes() -> &'static Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| Bytes::from(serde_json::to_vec(&document()).unwrap_or_default()))
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    conventions(&mut doc);
    doc
}

const JSON: &str = "application/json";

/// Add what operations share through layers and extractors (see the
/// module docs).
fn conventions(doc: &mut Value) {
    let Some(root) = doc.as_object_mut() else { return };
    let components = root.entry("components").or_insert_with(|| json!({}));
    if let Some(components) = components.as_object_mut() {
        components.insert(
            "securitySchemes".into(),
            json!({
                "bearer": {"type": "http", "scheme": "bearer",
                    "description": "A user's API token (`POST /v1/admin/users`, `cadenza control user create`)."},
                "admin": {"type": "http", "scheme": "bearer",
                    "description": "The configured `admin_token`."},
                "worker": {"type": "http", "scheme": "bearer",
                    "description": "`ingest.worker_token`, or the admin token."},
            }),
        );
        // An empty page is a page of every kind: `oneOf` would refuse it.
        if let Some(page) = components.get_mut("schemas").and_then(|s| s.get_mut("LibraryPage"))
            && let Some(page) = page.as_object_mut()
            && let Some(one_of) = page.remove("oneOf")
        {
            page.insert("anyOf".into(), one_of);
        }
    }
    let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if let Some(op) = op.as_object_mut() {
                operation(method, op);
            }
        }
    }
}

fn operation(method: &str, op: &mut Map<String, Value>) {
    let scheme = op
        .get("security")
        .and_then(|s| s.get(0))
        .and_then(Value::as_object)
        .and_then(|s| s.keys().next().cloned());
    let json_body = op.get("requestBody").and_then(|b| b.get("content")).and_then(|c| c.get(JSON)).is_some();
    let json_ok = op
        .get("responses")
        .and_then(|r| r.get("200"))
        .and_then(|r| r.get("content"))
        .and_then(|c| c.get(JSON))
        .is_some();
    if method == "get" && json_ok {
        let params = op.entry("parameters").or_insert_with(|| json!([]));
        if let Some(params) = params.as_array_mut() {
            params.push(json!({
                "name": "If-None-Match", "in": "header", "required": false,
                "description": "Entity tags from earlier answers (`*` for any): a match is a bodiless 304.",
                "schema": {"type": "string"},
            }));
        }
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    let mut add = |status: &str, response: Value| {
        responses.entry(status).or_insert(response);
    };
    if json_body {
        add(
            "400",
            error(
                "`invalid_request`: the body is not JSON of the documented shape (the message names the field).",
            ),
        );
        add("413", error("`payload_too_large`: the body is over the route's limit."));
    }
    match scheme.as_deref() {
        Some("bearer") => {
            add("401", unauthorized());
            add(
                "429",
                with_headers(
                    error(
                        "`rate_limited`: over the user's budget for this kind of request; on `/v1/playback/stream` and `/prefetch` also `overloaded`: the process already works on `playback.max_in_flight` of them.",
                    ),
                    json!({"Retry-After": {"description": "Whole seconds to wait.", "required": true,
                    "schema": {"type": "integer", "minimum": 1}}}),
                ),
            );
            add("503", error("`unavailable`: the database does not answer; a retry may help."));
        }
        Some(_) => {
            add("401", unauthorized());
            add("403", error("`forbidden`: a bearer token that is not the one this route takes."));
            add("503", error("`unavailable`: the database does not answer; a retry may help."));
        }
        None => {}
    }
    if method == "get" && json_ok {
        let etag = json!({"description": "Strong entity tag of the body: 32 hex digits of its SHA-256, quoted.",
            "required": true, "schema": {"type": "string", "pattern": "^\"[0-9a-f]{32}\"$"}});
        if let Some(ok) = responses.get_mut("200").and_then(Value::as_object_mut) {
            let headers = ok.entry("headers").or_insert_with(|| json!({}));
            if let Some(headers) = headers.as_object_mut() {
                headers.insert("ETag".into(), etag.clone());
                headers.insert(
                    "Cache-Control".into(),
                    json!({"description": "`private, no-cache` unless the route sets its own.",
                        "schema": {"type": "string"}}),
                );
            }
        }
        responses.entry("304").or_insert(json!({
            "description": "Not modified: `If-None-Match` names the current entity tag. No body.",
            "headers": {"ETag": etag},
        }));
    }
    // Every error answer has the one error shape.
    for (status, response) in responses.iter_mut() {
        if (status.starts_with('4') || status.starts_with('5'))
            && let Some(response) = response.as_object_mut()
        {
            response.entry("content").or_insert_with(error_content);
        }
    }
}

fn error_content() -> Value {
    json!({JSON: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": error_content()})
}

fn unauthorized() -> Value {
    with_headers(
        error("`unauthorized`: no bearer token, a malformed one, or an unknown or revoked one."),
        json!({"WWW-Authenticate": {"description": "The bearer challenge (RFC 6750).", "schema": {"type": "string"}}}),
    )
}

fn with_headers(mut response: Value, headers: Value) -> Value {
    if let Some(r) = response.as_object_mut() {
        r.insert("headers".into(), headers);
    }
    response
}
