//! Playback events: players report what they play, the control plane
//! counts streams (see [`crate::events`] for the rules and
//! [`crate::db::events`] for how a batch is recorded exactly once).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /v1/events` | user (`events` rate limit) | `{accepted, duplicates, rejected}`; 400 for a malformed body |
//! | `GET /v1/me/history?from_ms&to_ms&limit&offset` | user (`read`) | paging of the user's plays, newest first |
//! | `GET /v1/admin/royalties?from&to&limit&offset` | admin | streams per track per UTC day, with totals |
//! | `POST /v1/admin/popularity/recompute?days` | admin | tracks' popularity from the last `days` days' streams |

use std::collections::HashSet;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::Uri;
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiJson, ApiQuery};
use super::paging::Page;
use super::{AppState, Category};
use crate::auth::{Admin, AuthUser};
use crate::db::events::{self as db, Checked};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::events::{
    Day, MAX_BATCH, MAX_DEVICE_CHARS, MAX_ID_LEN, MAX_POSITION_MS, check_position, check_time, threshold_ms,
};
use crate::types::{
    EventBatch, EventBatchResponse, HistoryItem, Paging, PlayEvent, PopularityResponse, RejectCode,
    RejectedEvent, RoyaltiesResponse,
};
use crate::validate::{self, echo};

/// Largest `POST /v1/events` body: 500 events of a few hundred bytes.
const EVENTS_BODY_LIMIT: usize = 512 * 1024;
/// Longest royalties range, in days.
const MAX_ROYALTY_DAYS: i64 = 366;
/// Default and largest royalties page (an export reads many rows).
const ROYALTY_LIMIT: u32 = 100;
const MAX_ROYALTY_LIMIT: u32 = 1000;
/// Deepest royalties offset.
const MAX_ROYALTY_OFFSET: u32 = 10_000_000;
/// Default and longest popularity window, in days.
const POPULARITY_DAYS: u32 = 28;
const MAX_POPULARITY_DAYS: u32 = 365;

/// The event routes, merged into the API's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(post_events).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT)))
        .route("/v1/me/history", get(history))
        .route("/v1/admin/royalties", get(royalties))
        .route("/v1/admin/popularity/recompute", post(recompute_popularity))
}

/// `POST /v1/events`: record a batch of the user's playback events.
#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    request_body = EventBatch,
    responses(
        (status = 200, description = "What became of each event: `accepted` (stored and committed before this answer), \
            `duplicates` (an event id this user sent before, or earlier in the batch: ignored), and `rejected` \
            (never stored; each with its index and a code: `track_not_found`, `too_late` (over 30 days old), \
            `in_the_future` (over a day ahead), `position_out_of_range`, `play_conflict` (the play id belongs to \
            another track)). A batch with rejected events still commits the others.", body = EventBatchResponse),
        (status = 400, description = "`invalid_request`: the body is malformed (not JSON, a missing or unknown field, \
            more than 500 events, an id that is not 1-64 characters of `[A-Za-z0-9_-]`, a position over 24 h, a bad \
            device); the message names the field. Nothing is stored."),
    ))]
pub(crate) async fn post_events(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(batch): ApiJson<EventBatch>,
) -> Result<Json<EventBatchResponse>, ApiError> {
    state.rate_limit(&user.id, Category::Events)?;
    validate_batch(&batch)?;
    let now = now_ms();

    // An event id repeated inside the batch: the first one stands.
    let mut seen: HashSet<&str> = HashSet::with_capacity(batch.events.len());
    let kept: Vec<(usize, &PlayEvent)> =
        batch.events.iter().enumerate().filter(|(_, e)| seen.insert(e.event_id.as_str())).collect();
    let repeated = (batch.events.len() - kept.len()) as u64;

    let mut tracks: Vec<&str> = kept.iter().map(|(_, e)| e.track_id.as_str()).collect();
    tracks.sort_unstable();
    tracks.dedup();
    let durations = db::durations(state.db(), &tracks).await?;
    let mut checked = Vec::with_capacity(kept.len());
    let mut rejected = Vec::new();
    for (index, e) in kept {
        let track = e.track_id.as_str();
        let Some(&duration) = durations.get(track) else {
            rejected.push(reject(
                index,
                e,
                RejectCode::TrackNotFound,
                format!("track_id: no track {}", echo(track)),
            ));
            continue;
        };
        if let Err(code) = check_time(e.occurred_at_ms, now) {
            let why = if code == RejectCode::TooLate {
                "is more than 30 days before the server's clock"
            } else {
                "is more than a day after the server's clock"
            };
            rejected.push(reject(index, e, code, format!("occurred_at_ms: {} {why}", e.occurred_at_ms)));
            continue;
        }
        let position = i64::try_from(e.position_ms).unwrap_or(i64::MAX);
        if let Err(code) = check_position(position, duration) {
            let message =
                format!("position_ms: {position} is past the end of track {} ({duration} ms)", echo(track));
            rejected.push(reject(index, e, code, message));
            continue;
        }
        checked.push(Checked { index, event: e, threshold_ms: threshold_ms(duration) });
    }
    let refused: Vec<(usize, &str)> =
        rejected.iter().map(|r: &RejectedEvent| (r.index as usize, r.event_id.as_str())).collect();
    let recorded = db::record(state.db(), user.id.as_str(), &checked, &refused, now).await?;
    for index in &recorded.conflicts {
        let e = &batch.events[*index];
        let message = format!("play_id: play {} of this user is a play of another track", echo(&e.play_id));
        rejected.push(reject(*index, e, RejectCode::PlayConflict, message));
    }
    rejected.retain(|r| !recorded.stored.contains(&(r.index as usize)));
    rejected.sort_by_key(|r| r.index);
    let duplicates = repeated + recorded.duplicates + recorded.stored.len() as u64;
    state.metrics().playback_events(
        recorded.accepted,
        duplicates,
        rejected.len() as u64,
        recorded.new_streams,
    );
    Ok(Json(EventBatchResponse { accepted: recorded.accepted, duplicates, rejected }))
}

fn reject(index: usize, e: &PlayEvent, code: RejectCode, message: String) -> RejectedEvent {
    RejectedEvent {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        event_id: e.event_id.clone(),
        code,
        message: format!("events[{index}].{message}"),
    }
}

/// The body's shape: what makes the whole batch a 400.
fn validate_batch(batch: &EventBatch) -> Result<(), ApiError> {
    let n = batch.events.len();
    if !(1..=MAX_BATCH).contains(&n) {
        return Err(ApiError::invalid(format!("events: must hold 1 to {MAX_BATCH} events, got {n}")));
    }
    for (i, e) in batch.events.iter().enumerate() {
        for (field, value) in [("event_id", &e.event_id), ("play_id", &e.play_id)] {
            if !cadenza_config::ids::is_opaque_id(value, MAX_ID_LEN) {
                return Err(ApiError::invalid(format!(
                    "events[{i}].{field}: must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_-], got {}",
                    echo(value)
                )));
            }
        }
        if e.position_ms > MAX_POSITION_MS {
            return Err(ApiError::invalid(format!(
                "events[{i}].position_ms: must be at most {MAX_POSITION_MS} (24 h), got {}",
                e.position_ms
            )));
        }
        if let Some(device) = &e.device {
            let chars = device.chars().count();
            if !(1..=MAX_DEVICE_CHARS).contains(&chars) || device.chars().any(|c| c < ' ' || c == '\x7f') {
                return Err(ApiError::invalid(format!(
                    "events[{i}].device: must be 1-{MAX_DEVICE_CHARS} characters without control characters, got {}",
                    echo(device)
                )));
            }
        }
    }
    Ok(())
}

/// Query of `GET /v1/me/history`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Plays started at or after this instant, unix milliseconds.
    #[param(minimum = 0)]
    from_ms: Option<i64>,
    /// Plays started before this instant, unix milliseconds.
    #[param(minimum = 0)]
    to_ms: Option<i64>,
    /// Plays per page.
    #[param(minimum = 1, maximum = 50, default = 20)]
    limit: Option<u32>,
    /// Index of the first play.
    #[param(maximum = 100_000, default = 0)]
    offset: Option<u32>,
}

/// `GET /v1/me/history`: the user's plays, newest first.
#[utoipa::path(get, path = "/v1/me/history", tag = "events", security(("bearer" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "The user's plays started in `[from_ms, to_ms)`, newest first.", body = Paging<HistoryItem>),
        (status = 400, description = "`invalid_request`: a bad `from_ms`, `to_ms`, `limit` or `offset` (the message names it)."),
    ))]
pub(crate) async fn history(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    uri: Uri,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Paging<HistoryItem>>, ApiError> {
    state.rate_limit(&user.id, Category::Read)?;
    let page = Page::of(q.limit, q.offset)?;
    let from = q.from_ms.unwrap_or(0);
    let to = q.to_ms.unwrap_or(i64::MAX);
    for (name, v) in [("from_ms", from), ("to_ms", to)] {
        if v < 0 {
            return Err(ApiError::invalid(format!("{name}: must not be negative, got {v}")));
        }
    }
    if from > to {
        return Err(ApiError::invalid(format!("from_ms: must not be after to_ms, got {from} > {to}")));
    }
    let (total, items) = db::history(state.db(), user.id.as_str(), (from, to), page.sql()).await?;
    Ok(Json(page.paging(&uri, total, items)))
}

/// Query of `GET /v1/admin/royalties`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RoyaltiesQuery {
    /// First day, `YYYY-MM-DD` (UTC).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-01-01")]
    from: String,
    /// Last day, included; at most 366 days after `from`.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-01-31")]
    to: String,
    /// Rows per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
    /// Index of the first row.
    #[param(maximum = 10_000_000, default = 0)]
    offset: Option<u32>,
}

/// `GET /v1/admin/royalties`: streams per track per UTC day.
#[utoipa::path(get, path = "/v1/admin/royalties", tag = "admin", security(("admin" = [])),
    params(RoyaltiesQuery),
    responses(
        (status = 200, description = "Streams per track per day over `from..=to`, by day then track, and the range's \
            totals. A day's counts can still change while events for it may arrive (30 days).", body = RoyaltiesResponse),
        (status = 400, description = "`invalid_request`: a `from` or `to` that is not a date, `from` after `to`, a range \
            over 366 days, a bad `limit` or `offset` (the message names it)."),
    ))]
pub(crate) async fn royalties(
    State(state): State<AppState>,
    _admin: Admin,
    uri: Uri,
    ApiQuery(q): ApiQuery<RoyaltiesQuery>,
) -> Result<Json<RoyaltiesResponse>, ApiError> {
    let day = |name: &str, value: &str| -> Result<Day, ApiError> {
        validate::date(name, value)?;
        Day::parse(value).ok_or_else(|| ApiError::invalid(format!("{name}: not a date, got {}", echo(value))))
    };
    let (from, to) = (day("from", &q.from)?, day("to", &q.to)?);
    if from > to {
        return Err(ApiError::invalid(format!("from: must not be after to, got {from} > {to}")));
    }
    if to.0 - from.0 >= MAX_ROYALTY_DAYS {
        return Err(ApiError::invalid(format!(
            "to: the range must be at most {MAX_ROYALTY_DAYS} days, got {}",
            to.0 - from.0 + 1
        )));
    }
    let limit = q.limit.unwrap_or(ROYALTY_LIMIT);
    if !(1..=MAX_ROYALTY_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: must be between 1 and {MAX_ROYALTY_LIMIT}, got {limit}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_ROYALTY_OFFSET {
        return Err(ApiError::invalid(format!("offset: must be at most {MAX_ROYALTY_OFFSET}, got {offset}")));
    }
    let page = Page { limit, offset };
    let (rows, total_streams, tracks, items) = db::royalties(state.db(), (from, to), page.sql()).await?;
    Ok(Json(RoyaltiesResponse {
        from: from.to_string(),
        to: to.to_string(),
        total_streams,
        tracks,
        streams: page.paging(&uri, rows, items),
    }))
}

/// Query of `POST /v1/admin/popularity/recompute`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PopularityQuery {
    /// The window: streams of the last `days` UTC days, today included.
    #[param(minimum = 1, maximum = 365, default = 28)]
    days: Option<u32>,
}

/// `POST /v1/admin/popularity/recompute`: set every track's popularity
/// (0-100) from its streams in the window, relative to the most streamed
/// track on a log scale, and its all-time stream count.
#[utoipa::path(post, path = "/v1/admin/popularity/recompute", tag = "admin", security(("admin" = [])),
    params(PopularityQuery),
    responses(
        (status = 200, description = "Done: every track's popularity now follows its streams in the window (tracks \
            without any are 0); search's popularity order follows.", body = PopularityResponse),
        (status = 400, description = "`invalid_request`: `days` is not 1 to 365."),
    ))]
pub(crate) async fn recompute_popularity(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PopularityQuery>,
) -> Result<Json<PopularityResponse>, ApiError> {
    let days = q.days.unwrap_or(POPULARITY_DAYS);
    if !(1..=MAX_POPULARITY_DAYS).contains(&days) {
        return Err(ApiError::invalid(format!(
            "days: must be between 1 and {MAX_POPULARITY_DAYS}, got {days}"
        )));
    }
    let today = Day::of_ms(now_ms());
    let since = Day(today.0 - i64::from(days) + 1);
    let done = db::recompute_popularity(state.db(), since).await?;
    state.catalog_changed();
    tracing::info!(
        days,
        max_streams = done.max_streams,
        tracks = done.tracks_updated,
        "popularity recomputed"
    );
    Ok(Json(PopularityResponse {
        days,
        since: since.to_string(),
        max_streams: done.max_streams,
        tracks_updated: done.tracks_updated,
    }))
}
