//! The playback routes: `POST /v1/playback/stream` (quality, then POPs,
//! then signed URLs), `POST /v1/playback/prefetch` (the same for a queue's
//! next tracks) and `POST /v1/playback/report` (players' outcomes per POP,
//! a passive health signal).

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cadenza_config::ids::{FileId, TrackId, is_opaque_id};
use cadenza_config::ladder::Rung;
use cadenza_config::layout;
use cadenza_config::service::CdnKind;

use super::AppState;
use super::extract::{ApiJson, ApiPath};
use crate::auth::AuthUser;
use crate::cdn::select::{self, Candidate, Params};
use crate::db::users::User;
use crate::db::{catalog, now_ms};
use crate::error::{ApiError, ErrorKind};
use crate::playback::{Preference, pick, target};
use crate::types::{
    CandidateView, Connection, DecisionView, MAX_PREFETCH, MAX_REPORTS, PrefetchItem, PrefetchRequest,
    PrefetchResponse, ReportRequest, ReportResponse, SeekTable, StreamRequest, StreamResponse, StreamUrl,
    schema,
};
use crate::validate::echo;

/// The stream answer (see [`crate::playback`] for the quality rule and
/// [`crate::cdn::select`] for the order of the URLs).
#[utoipa::path(post, path = "/v1/playback/stream", tag = "playback", security(("bearer" = [])),
    request_body = StreamRequest,
    params(("x-client-region" = Option<String>, Header, description = "The client's region as the load balancer saw it (the header's name is `selection.region_header`); the body's `region` wins.")),
    responses(
        (status = 200, description = "The chosen rendition and signed URLs on different POPs, best first (`Cache-Control: no-store`).", body = StreamResponse),
        (status = 400, description = "`invalid_request` (the message names the field), or `invalid_quality`."),
        (status = 403, description = "`not_released`: the album is embargoed until its `release_at`."),
        (status = 404, description = "`track_not_found`."),
        (status = 409, description = "`no_audio`: the track has no published audio."),
        (status = 503, description = "`no_edges`: the registry holds no POP; `unavailable`: the database does not answer."),
    ))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<StreamRequest>,
) -> Result<Response, ApiError> {
    state.rate_limit(&user.id, super::Category::Playback)?;
    if req.quality.is_some() && req.preferred_quality.is_some() {
        return Err(ApiError::invalid("quality: give preferred_quality or quality, not both"));
    }
    let ask = Ask {
        pref: preference(req.preferred_quality.or(req.quality), req.connection, req.data_saver)?,
        region: region(&state, req.region.as_deref(), &headers)?,
        debug: req.debug.unwrap_or(false),
    };
    let body = issue(&state, &user, &req.track_id, &ask).await?;
    Ok(no_store(Json(body)))
}

/// Stream answers for the next tracks of a queue, in one call.
#[utoipa::path(post, path = "/v1/playback/prefetch", tag = "playback", security(("bearer" = [])),
    request_body = PrefetchRequest,
    params(("x-client-region" = Option<String>, Header, description = "As for `/v1/playback/stream`.")),
    responses(
        (status = 200, description = "One item per track in request order: `stream` (as `/v1/playback/stream` answers) or `error` (its status and code). `Cache-Control: no-store`.", body = PrefetchResponse),
        (status = 400, description = "`invalid_request` (no tracks, more than 20, or a bad field), or `invalid_quality`."),
        (status = 503, description = "`unavailable`: the database does not answer."),
    ))]
pub(crate) async fn prefetch(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PrefetchRequest>,
) -> Result<Response, ApiError> {
    state.rate_limit(&user.id, super::Category::Playback)?;
    if req.track_ids.is_empty() || req.track_ids.len() > MAX_PREFETCH {
        return Err(ApiError::invalid(format!(
            "track_ids: give 1 to {MAX_PREFETCH} tracks, got {}",
            req.track_ids.len()
        )));
    }
    let ask = Ask {
        pref: preference(req.preferred_quality, req.connection, req.data_saver)?,
        region: region(&state, req.region.as_deref(), &headers)?,
        debug: req.debug.unwrap_or(false),
    };
    let mut items = Vec::with_capacity(req.track_ids.len());
    for id in &req.track_ids {
        let item = match issue(&state, &user, id, &ask).await {
            Ok(stream) => PrefetchItem { track_id: id.clone(), stream: Some(stream), error: None },
            // The database failing fails the call: the player retries it whole.
            Err(e) if e.body().status >= 500 => return Err(e),
            Err(e) => PrefetchItem { track_id: id.clone(), stream: None, error: Some(e.body()) },
        };
        items.push(item);
    }
    Ok(no_store(Json(PrefetchResponse { items })))
}

/// Players' reports on POPs: errors and time to first byte feed each
/// POP's availability and latency for `health.report_window`.
#[utoipa::path(post, path = "/v1/playback/report", tag = "playback", security(("bearer" = [])),
    request_body = ReportRequest,
    responses(
        (status = 202, description = "Counted; reports naming no known POP are ignored and counted as `unknown`.", body = ReportResponse),
        (status = 400, description = "`invalid_request`: no reports, more than 100, or a bad field."),
    ))]
pub(crate) async fn report(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<ReportRequest>,
) -> Result<Response, ApiError> {
    state.rate_limit(&user.id, super::Category::Playback)?;
    if req.reports.is_empty() || req.reports.len() > MAX_REPORTS {
        return Err(ApiError::invalid(format!(
            "reports: give 1 to {MAX_REPORTS} reports, got {}",
            req.reports.len()
        )));
    }
    for (i, r) in req.reports.iter().enumerate() {
        if r.ttfb_ms.is_some_and(|t| t > 600_000) {
            return Err(ApiError::invalid(format!("reports[{i}].ttfb_ms: must be at most 600000")));
        }
        if r.decision_id.as_ref().is_some_and(|d| !is_opaque_id(d, 64)) {
            return Err(ApiError::invalid(format!("reports[{i}].decision_id: not a decision id")));
        }
    }
    let registry = state.cdns().snapshot();
    let window = state.config().health.report_window.get();
    let now = now_ms();
    let (mut accepted, mut unknown) = (0u32, 0u32);
    for r in &req.reports {
        match registry.find(&r.cdn, &r.pop) {
            Some((_, pop)) => {
                pop.health.record_report(now, window, r.error.is_none(), r.ttfb_ms);
                accepted += 1;
            }
            None => unknown += 1,
        }
    }
    Ok((StatusCode::ACCEPTED, Json(ReportResponse { accepted, unknown })).into_response())
}

/// A rendition's seek table. The file id is a content hash, so the answer
/// never changes: `Cache-Control: private, max-age=31536000, immutable`.
#[utoipa::path(get, path = "/v1/files/{file_id}/seek-table", tag = "playback", security(("bearer" = [])),
    params(("file_id" = schema::FileId, Path, description = "File id from a stream answer.")),
    responses(
        (status = 200, description = "The seek table.", body = SeekTable),
        (status = 400, description = "`invalid_request`: not a file id."),
        (status = 404, description = "`file_not_found`."),
    ))]
pub(crate) async fn seek_table(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(file_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    state.rate_limit(&user.id, super::Category::Read)?;
    let file_id: FileId = file_id.parse().map_err(|e| ApiError::invalid(format!("file_id: {e}")))?;
    let (points, duration_ms) = catalog::seek_table(state.db(), &file_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::FileNotFound, format!("file_id: no file {file_id}")))?;
    let body = SeekTable { file_id, duration_ms: duration_ms.max(0) as u64, points };
    Ok(([(CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"))], Json(body))
        .into_response())
}

/// What one answer is for, besides the track.
struct Ask {
    pref: Preference,
    region: String,
    debug: bool,
}

fn preference(
    quality: Option<u32>,
    connection: Option<Connection>,
    data_saver: Option<bool>,
) -> Result<Preference, ApiError> {
    let quality = quality
        .map(|q| {
            Rung::from_kbps(q).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidQuality,
                    format!("preferred_quality: must be one of 24, 96, 160, 320, got {q}"),
                )
            })
        })
        .transpose()?;
    Ok(Preference { quality, connection, data_saver: data_saver.unwrap_or(false) })
}

/// The client's region: the body's, else the load balancer's header (a
/// malformed header is ignored: it is not the client's fault), else the
/// configured default.
fn region(state: &AppState, body: Option<&str>, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(r) = body {
        if !is_opaque_id(r, 64) {
            return Err(ApiError::invalid(format!(
                "region: must be 1-64 characters of [A-Za-z0-9_-], got {}",
                echo(r)
            )));
        }
        return Ok(r.to_owned());
    }
    let selection = &state.config().selection;
    let from_header = headers
        .get(selection.region_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|r| is_opaque_id(r, 64));
    Ok(from_header.unwrap_or(&selection.default_region).to_owned())
}

fn no_store(body: impl IntoResponse) -> Response {
    ([(CACHE_CONTROL, HeaderValue::from_static("no-store"))], body).into_response()
}

/// One track's stream answer.
async fn issue(state: &AppState, user: &User, id: &TrackId, ask: &Ask) -> Result<StreamResponse, ApiError> {
    let playable = state.playable(id).await?.ok_or_else(|| {
        ApiError::new(ErrorKind::TrackNotFound, format!("track_id: no track {}", echo(id.as_str())))
    })?;
    if let Some(at) = playable.release_at_ms
        && at > now_ms()
    {
        return Err(ApiError::new(
            ErrorKind::NotReleased,
            format!(
                "track_id: track {} is not released until unix time {}",
                echo(id.as_str()),
                at.div_euclid(1000)
            ),
        ));
    }
    let published: Vec<Rung> = playable.files.iter().map(|f| f.rung).collect();
    let rung = pick(target(user.tier, ask.pref), &published).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NoAudio,
            format!("track_id: track {} has no published audio", echo(id.as_str())),
        )
    })?;
    let Some(chosen) = playable.files.iter().find(|f| f.rung == rung) else {
        return Err(ApiError::internal("stream", &"picked rung not published"));
    };

    let config = state.config();
    let registry = state.cdns().snapshot();
    if registry.pop_count() == 0 {
        return Err(ApiError::new(ErrorKind::NoEdges, "cdns: the registry holds no POP"));
    }
    let now = now_ms();
    let window = config.health.report_window.get();
    let min_reports = config.health.min_reports;
    let pops: Vec<(&crate::cdn::Cdn, &crate::cdn::Pop)> = registry.serving_pops().collect();
    let candidates: Vec<Candidate<'_>> = pops
        .iter()
        .map(|(c, p)| {
            let passive = p.health.passive(now, window);
            Candidate {
                cdn: &c.config.name,
                pop: &p.config.name,
                region: &p.config.region,
                weight: p.weight,
                state: p.health.state(),
                availability: passive.availability(min_reports),
                ttfb_ms: passive.ttfb_ms,
                in_flight: p.health.in_flight(),
            }
        })
        .collect();
    let decision = select::select(
        &candidates,
        Params {
            region: &ask.region,
            key: id.as_str(),
            take: config.selection.urls as usize,
            min_availability: config.selection.min_availability,
            latency_slack_ms: config.selection.latency_slack.get().as_secs_f64() * 1e3,
            max_in_flight: config.selection.max_in_flight,
        },
    );

    let exp = cadenza_config::unix_now().saturating_add(config.playback.url_ttl.get().as_secs());
    let path = layout::edge_path(&chosen.file.file_id);
    // cadenza's token covers the path only, so one query serves every edge.
    let cadenza_query = state.keys().sign(&path, &user.id, exp);
    let urls: Vec<StreamUrl> = decision
        .order
        .iter()
        .map(|&i| {
            let (c, p) = pops[i];
            let query = match c.config.kind {
                CdnKind::Cadenza => cadenza_query.clone(),
                CdnKind::NginxSecureLink => {
                    cadenza_config::secure_link::sign_query(c.config.secret.expose(), &path, &user.id, exp)
                }
            };
            StreamUrl {
                cdn: c.config.name.clone(),
                pop: p.config.name.clone(),
                url: format!("{}{path}?{query}", p.config.url),
            }
        })
        .collect();
    let decision_id = new_decision_id();
    state.metrics().stream_answer(rung, urls.first().map(|u| (u.cdn.as_str(), u.pop.as_str())));
    // Never log the URLs: they are credentials until they expire.
    tracing::info!(
        decision = %decision_id,
        track = %id,
        user = %user.id,
        quality_kbps = rung.kbps(),
        region = %ask.region,
        pops = %urls.iter().map(|u| format!("{}/{}", u.cdn, u.pop)).collect::<Vec<_>>().join(","),
        skipped = %candidates
            .iter()
            .zip(&decision.skips)
            .filter_map(|(c, s)| s.map(|s| format!("{}/{}:{}", c.cdn, c.pop, s.as_str())))
            .collect::<Vec<_>>()
            .join(","),
        all_down = decision.all_down,
        "stream issued"
    );
    let view = ask.debug.then(|| DecisionView {
        id: decision_id.clone(),
        region: ask.region.clone(),
        all_down: decision.all_down,
        candidates: candidates
            .iter()
            .enumerate()
            .map(|(i, c)| CandidateView {
                cdn: c.cdn.to_owned(),
                pop: c.pop.to_owned(),
                region: c.region.to_owned(),
                state: c.state.as_str().to_owned(),
                availability: c.availability,
                ttfb_ms: c.ttfb_ms,
                in_flight: c.in_flight,
                weight: c.weight,
                score: decision.scores[i],
                rank: decision.order.iter().position(|&o| o == i).map(|r| r as u32),
                skipped: decision.skips[i].map(|s| s.as_str().to_owned()),
            })
            .collect(),
    });
    Ok(StreamResponse {
        track_id: id.clone(),
        quality_kbps: rung.kbps(),
        expires_at: exp,
        urls,
        start_delay_ms: start_delay_ms(&config.playback, playable.release_at_ms, now),
        file: chosen.file.clone(),
        decision_id,
        decision: view,
    })
}

/// The start-delay hint: uniform in `0..=release_jitter` while the album
/// came out less than `release_window` ago, else 0.
fn start_delay_ms(
    playback: &cadenza_config::service::PlaybackConfig,
    release_at_ms: Option<i64>,
    now: i64,
) -> u32 {
    let jitter = u32::try_from(playback.release_jitter.get().as_millis()).unwrap_or(u32::MAX);
    let window = i64::try_from(playback.release_window.get().as_millis()).unwrap_or(i64::MAX);
    match release_at_ms {
        Some(at) if jitter > 0 && at <= now && now - at < window => rand::random_range(0..=jitter),
        _ => 0,
    }
}

/// 64 random bits in hex: unique enough to find one decision in the logs.
fn new_decision_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
