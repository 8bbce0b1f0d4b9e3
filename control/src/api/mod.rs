//! The HTTP API: routes, shared state, and the request-metrics layer.
//!
//! | route | auth | handler |
//! |---|---|---|
//! | `GET /healthz` | none | process is up |
//! | `GET /readyz` | none | database answers `SELECT 1` |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /openapi.json` | none | [`openapi::openapi`]: the OpenAPI 3.1 document of all of this |
//! | `GET /v1/tracks?ids=` | user | [`catalog::tracks`] |
//! | `GET /v1/tracks/{id}` | user | [`tracks::get_track`] |
//! | `GET /v1/albums?ids=` | user | [`catalog::albums`] |
//! | `GET /v1/albums/{id}` | user | [`catalog::album`] (`?limit=&offset=` of its tracks) |
//! | `GET /v1/albums/{id}/tracks` | user | [`catalog::album_tracks`] |
//! | `GET /v1/artists?ids=` | user | [`catalog::artists`] |
//! | `GET /v1/artists/{id}` | user | [`catalog::artist`] |
//! | `GET /v1/artists/{id}/albums` | user | [`catalog::artist_albums`] |
//! | `GET /v1/artists/{id}/top-tracks` | user | [`catalog::artist_top_tracks`] |
//! | `GET /v1/audio-features/{id}` | user | [`catalog::audio_features`] |
//! | `GET /v1/search` | user | [`search::search`] (`?q=&type=&limit=&offset=`) |
//! | `POST /v1/playback/stream` | user | [`playback::stream`]: quality, POPs (`crate::cdn::select`), signed URLs |
//! | `POST /v1/playback/prefetch` | user | [`playback::prefetch`]: the same for up to 20 tracks |
//! | `POST /v1/playback/report` | user | [`playback::report`]: players' outcomes per POP |
//! | `GET /v1/files/{file_id}/seek-table` | user | [`playback::seek_table`]: a rendition's time → byte index |
//! | `GET /v1/admin/cdns` | admin | [`cdns::list_cdns`]: the registry with each POP's health |
//! | `GET`/`PUT`/`DELETE /v1/admin/cdns/{name}` | admin | [`cdns::get_cdn`], [`cdns::put_cdn`] (201 created, 200 replaced), [`cdns::delete_cdn`] |
//! | `GET /v1/admin/signing` | admin | [`signing::keys`]: the signing key ids and the current one |
//! | `POST /v1/admin/signing/reload` | admin | [`signing::reload`]: read `[signing]` again (as SIGHUP does) |
//! | `/v1/playlists…`, `/v1/me/playlists`, `/v1/users/{user_id}/playlists` | user | [`playlists`] (its table) |
//! | `PUT`/`DELETE`/`GET /v1/me/library/{kind}`, `GET …/contains` | user | [`library`] (its table) |
//! | `POST /v1/events`, `GET /v1/me/history` | user | [`events`] (its table): playback events, listening history |
//! | `GET /v1/admin/royalties`, `POST /v1/admin/popularity/recompute` | admin | [`events`]: streams per track per day, popularity |
//! | `POST /v1/admin/import` | admin | [`admin::import`] |
//! | `POST /v1/admin/import/jsonl` | admin | [`bulk::import_jsonl`]: JSON Lines, streamed |
//! | `PUT /v1/admin/{artists,albums,tracks}/{id}` | admin | [`admin::put_artist`], [`admin::put_album`], [`admin::put_track`]: 201 created, 200 replaced |
//! | `POST /v1/admin/users` | admin | [`admin::create_user`] |
//! | `POST /v1/admin/ingest` | admin | [`ingest::register`]: 202, job queued |
//! | `GET /v1/admin/ingest` | admin | [`ingest::list_jobs`] (`?state=&limit=&offset=`) |
//! | `GET /v1/admin/ingest/{id}` | admin | [`ingest::get_job`] |
//! | `POST /v1/ingest/claim` | worker | [`ingest::claim`]: 200 leased job, or 204 |
//! | `POST /v1/ingest/jobs/{id}/heartbeat` | worker | [`ingest::heartbeat`] |
//! | `POST /v1/ingest/jobs/{id}/complete` | worker | [`ingest::complete`] |
//! | `POST /v1/ingest/jobs/{id}/fail` | worker | [`ingest::fail`] |
//!
//! "worker" is `ingest.worker_token` or the admin token; the worker token
//! opens nothing else. Unknown routes and methods answer with the JSON
//! error shape too.

mod admin;
mod bulk;
mod catalog;
mod cdns;
mod conditional;
mod events;
mod extract;
mod health;
mod ingest;
mod library;
mod openapi;
pub(crate) mod paging;
mod playback;
mod playlists;
pub(crate) mod ratelimit;
mod search;
mod shed;
mod signing;
mod tracks;
mod warm;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use cadenza_config::ids::{TrackId, UserId};
use cadenza_config::live::LiveKeys;
use cadenza_config::service::ControlConfig;

pub(crate) use self::ratelimit::Category;
use self::ratelimit::RateLimiters;
pub(crate) use self::signing::reload_keys as reload_signing_keys;
use crate::cdn::Cdns;
use crate::db::Db;
use crate::db::catalog::{Playable, playable, tracks_by_ids};
use crate::db::users::{self, User};
use crate::error::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use crate::ttl_cache::TtlCache;
use crate::types::TrackResponse;
use crate::validate::echo;

/// Largest request body outside the import route.
const BODY_LIMIT: usize = 64 * 1024;
/// Largest import batch: manifests carry seek tables, so an album is a few
/// hundred KiB; this allows a few hundred albums per batch. Also the limit
/// of an ingest completion (up to 200 manifests).
const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// What every handler shares. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Inner>);

struct Inner {
    db: Db,
    config: ControlConfig,
    /// The URL-signing key ring; a reload swaps it ([`signing`]).
    keys: LiveKeys,
    metrics: Metrics,
    limits: RateLimiters,
    /// Token SHA-256 → user, for `cache.token_ttl`; `None` when 0.
    tokens: Option<TtlCache<User>>,
    /// Track id → public view, for `cache.catalog_ttl`; `None` when 0.
    tracks: Option<TtlCache<TrackResponse>>,
    /// Track id → embargo and files, for `cache.playback_ttl`; `None` when
    /// 0. Unknown tracks are not cached.
    playable: Option<TtlCache<Arc<Playable>>>,
    /// The CDN registry and each POP's health.
    cdns: Cdns,
    /// Stream and prefetch requests in progress ([`shed`]).
    playback_in_flight: std::sync::atomic::AtomicU32,
}

/// By hand: the config's `database.url` may hold a password.
impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .field("listen", &self.config.listen)
            .field("edges", &self.config.edges)
            .field("signing_keys", &self.keys.summary())
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub(crate) fn new(db: Db, config: ControlConfig, keys: LiveKeys) -> Self {
        let limits = RateLimiters::new(&config.rate_limits);
        let tokens = TtlCache::new(config.cache.token_ttl.get(), 100_000);
        let tracks = TtlCache::new(config.cache.catalog_ttl.get(), config.cache.catalog_capacity);
        let playable = TtlCache::new(config.cache.playback_ttl.get(), config.cache.catalog_capacity);
        let cdns = Cdns::new(&config);
        let metrics = Metrics::new();
        metrics.signing_current_key(&keys.summary().current);
        Self(Arc::new(Inner {
            db,
            config,
            keys,
            metrics,
            limits,
            tokens,
            tracks,
            playable,
            cdns,
            playback_in_flight: std::sync::atomic::AtomicU32::new(0),
        }))
    }

    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    pub(crate) fn config(&self) -> &ControlConfig {
        &self.0.config
    }

    pub(crate) fn keys(&self) -> &LiveKeys {
        &self.0.keys
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub(crate) fn cdns(&self) -> &Cdns {
        &self.0.cdns
    }

    pub(crate) fn playback_in_flight(&self) -> &std::sync::atomic::AtomicU32 {
        &self.0.playback_in_flight
    }

    /// A track's embargo and files, from the catalog cache or the database.
    pub(crate) async fn playable(&self, id: &TrackId) -> Result<Option<Arc<Playable>>, ApiError> {
        if let Some(cache) = &self.0.playable
            && let Some(p) = cache.get(id.as_str())
        {
            return Ok(Some(p));
        }
        let Some(p) = playable(&self.0.db, id).await? else { return Ok(None) };
        let p = Arc::new(p);
        if let Some(cache) = &self.0.playable {
            cache.insert(id.as_str().to_owned(), p.clone());
        }
        Ok(Some(p))
    }

    /// Spend one request of `user`'s budget in `category`, or a 429.
    pub(crate) fn rate_limit(&self, user: &UserId, category: Category) -> Result<(), ApiError> {
        let checked = self.0.limits.check(user.as_str(), category);
        if checked.is_err() {
            self.0.metrics.rate_limited(category.as_str());
        }
        checked
    }

    pub(crate) fn limiters(&self) -> &RateLimiters {
        &self.0.limits
    }

    /// The user of the token whose SHA-256 is `sha`, from the token cache
    /// or the database.
    pub(crate) async fn user_of_token(&self, sha: &str) -> Result<Option<User>, ApiError> {
        if let Some(cache) = &self.0.tokens
            && let Some(user) = cache.get(sha)
        {
            return Ok(Some(user));
        }
        let user = users::by_token(&self.0.db, sha).await?;
        if let (Some(cache), Some(u)) = (&self.0.tokens, &user) {
            cache.insert(sha.to_owned(), u.clone());
        }
        Ok(user)
    }

    /// The public views of tracks `ids` (in order, `None` for unknown
    /// ids), from the catalog cache where it has them.
    pub(crate) async fn tracks(&self, ids: &[String]) -> Result<Vec<Option<TrackResponse>>, ApiError> {
        let Some(cache) = &self.0.tracks else {
            return tracks_by_ids(&self.0.db, ids).await;
        };
        let mut out: Vec<Option<TrackResponse>> = ids.iter().map(|id| cache.get(id)).collect();
        let missing: Vec<String> =
            ids.iter().zip(&out).filter(|(_, t)| t.is_none()).map(|(id, _)| id.clone()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let loaded = tracks_by_ids(&self.0.db, &missing).await?;
        let mut found: std::collections::HashMap<&str, TrackResponse> = std::collections::HashMap::new();
        for (id, t) in missing.iter().zip(loaded) {
            if let Some(t) = t {
                cache.insert(id.clone(), t.clone());
                found.insert(id.as_str(), t);
            }
        }
        for (slot, id) in out.iter_mut().zip(ids) {
            if slot.is_none() {
                *slot = found.get(id.as_str()).cloned();
            }
        }
        Ok(out)
    }

    /// This process changed the catalog: forget every cached track.
    pub(crate) fn catalog_changed(&self) {
        if let Some(cache) = &self.0.tracks {
            cache.clear();
        }
        if let Some(cache) = &self.0.playable {
            cache.clear();
        }
    }
}

/// The whole API as one router.
pub(crate) fn router(state: AppState) -> Router {
    let shed = middleware::from_fn_with_state(state.clone(), shed::shed);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route("/v1/tracks", get(catalog::tracks))
        .route("/v1/tracks/{id}", get(tracks::get_track))
        .route("/v1/albums", get(catalog::albums))
        .route("/v1/albums/{id}", get(catalog::album))
        .route("/v1/albums/{id}/tracks", get(catalog::album_tracks))
        .route("/v1/artists", get(catalog::artists))
        .route("/v1/artists/{id}", get(catalog::artist))
        .route("/v1/artists/{id}/albums", get(catalog::artist_albums))
        .route("/v1/artists/{id}/top-tracks", get(catalog::artist_top_tracks))
        .route("/v1/audio-features/{id}", get(catalog::audio_features))
        .route("/v1/search", get(search::search))
        .route("/v1/playback/stream", post(playback::stream).layer(shed.clone()))
        .route("/v1/playback/prefetch", post(playback::prefetch).layer(shed))
        .route("/v1/playback/report", post(playback::report))
        .route("/v1/files/{file_id}/seek-table", get(playback::seek_table))
        .route("/v1/admin/cdns", get(cdns::list_cdns))
        .route("/v1/admin/cdns/{name}", get(cdns::get_cdn).put(cdns::put_cdn).delete(cdns::delete_cdn))
        .route("/v1/admin/signing", get(signing::keys))
        .route("/v1/admin/signing/reload", post(signing::reload))
        .route("/v1/admin/import", post(admin::import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)))
        .route("/v1/admin/import/jsonl", post(bulk::import_jsonl).layer(DefaultBodyLimit::disable()))
        .route("/v1/admin/artists/{id}", put(admin::put_artist))
        .route("/v1/admin/albums/{id}", put(admin::put_album))
        .route("/v1/admin/tracks/{id}", put(admin::put_track).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)))
        .route("/v1/admin/users", post(admin::create_user))
        .route("/v1/admin/ingest", post(ingest::register).get(ingest::list_jobs))
        .route("/v1/admin/ingest/{id}", get(ingest::get_job))
        .route("/v1/admin/warm", post(warm::start_warm).get(warm::list_warm_jobs))
        .route("/v1/admin/warm/{id}", get(warm::get_warm_job).delete(warm::cancel_warm_job))
        .route("/v1/ingest/claim", post(ingest::claim))
        .route("/v1/ingest/jobs/{id}/heartbeat", post(ingest::heartbeat))
        .route(
            "/v1/ingest/jobs/{id}/complete",
            post(ingest::complete).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/v1/ingest/jobs/{id}/fail", post(ingest::fail))
        .merge(playlists::routes())
        .merge(library::routes())
        .merge(events::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(conditional::etag))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no route for path {}", echo(uri.path())))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("method {} is not allowed on path {}", echo(method.as_str()), echo(uri.path())),
    )
}

/// Count and time every request by its route template.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // MatchedPath is an Arc<str>: cloning it allocates nothing.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status();
    state.metrics().observe_request(route, status.as_str(), elapsed.as_secs_f64());
    tracing::debug!(%method, route, status = status.as_u16(), elapsed_ms = elapsed.as_millis(), "request");
    response
}
