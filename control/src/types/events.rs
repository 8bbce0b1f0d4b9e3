//! Bodies of the playback-event API: `POST /v1/events` (players report
//! what they played), `GET /v1/me/history` (a user's plays),
//! `GET /v1/admin/royalties` (streams per track per day) and
//! `POST /v1/admin/popularity/recompute`. The rules are in
//! `docs/events.md` and `crate::events`.

use cadenza_config::ids::TrackId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Paging, schema};

/// `POST /v1/events`: 1 to 500 events, in any order, possibly already
/// sent (an event id seen before is a duplicate, answered and ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    #[schema(min_items = 1, max_items = 500)]
    pub events: Vec<PlayEvent>,
}

/// One thing that happened during a play.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayEvent {
    /// The client's id of this event (a UUID, say), unique per user: the
    /// idempotency key.
    #[schema(value_type = schema::Id)]
    pub event_id: String,
    /// The client's id of the play (one playback of one track), shared by
    /// all its events; unique per user.
    #[schema(value_type = schema::Id)]
    pub play_id: String,
    #[schema(value_type = schema::TrackId)]
    pub track_id: TrackId,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Playhead position in the track when it happened (for a seek: where
    /// it jumped to), milliseconds, at most 24 h.
    #[schema(maximum = 86_400_000)]
    pub position_ms: u64,
    /// When it happened, on the client's clock: unix milliseconds. At most
    /// 30 days ago and at most a day ahead of the server's clock.
    pub occurred_at_ms: i64,
    /// The player's device, 1-64 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f]{1,64}$")]
    pub device: Option<String>,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Start,
    Progress,
    Pause,
    /// `position_ms` is where playback jumped to, so it does not count as
    /// listened.
    Seek,
    Skip,
    Complete,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Progress => "progress",
            EventKind::Pause => "pause",
            EventKind::Seek => "seek",
            EventKind::Skip => "skip",
            EventKind::Complete => "complete",
        }
    }
}

/// Answer to `POST /v1/events`: what became of each event. Every event is
/// one of accepted (stored now), a duplicate (stored before, or earlier in
/// this batch) or rejected (never stored; sending it again is rejected
/// again). Accepted events are committed before this answer is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventBatchResponse {
    pub accepted: u64,
    pub duplicates: u64,
    /// In batch order.
    pub rejected: Vec<RejectedEvent>,
}

/// An event that was not stored, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectedEvent {
    /// Its index in the batch.
    pub index: u32,
    #[schema(value_type = schema::Id)]
    pub event_id: String,
    pub code: RejectCode,
    /// Lower-case text naming the field.
    pub message: String,
}

/// Why an event was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// No such track in the catalog.
    TrackNotFound,
    /// `occurred_at_ms` is more than 30 days ago.
    TooLate,
    /// `occurred_at_ms` is more than a day ahead of the server's clock.
    InTheFuture,
    /// `position_ms` is past the end of the track.
    PositionOutOfRange,
    /// The user's `play_id` already belongs to another track.
    PlayConflict,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::TrackNotFound => "track_not_found",
            RejectCode::TooLate => "too_late",
            RejectCode::InTheFuture => "in_the_future",
            RejectCode::PositionOutOfRange => "position_out_of_range",
            RejectCode::PlayConflict => "play_conflict",
        }
    }
}

/// One play in a user's listening history (`GET /v1/me/history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryItem {
    #[schema(value_type = schema::Id)]
    pub play_id: String,
    #[schema(value_type = schema::TrackId)]
    pub track_id: String,
    /// Earliest and latest client time of its events, unix milliseconds.
    pub started_at_ms: i64,
    pub last_at_ms: i64,
    /// Furthest position reached (seeks aside), milliseconds.
    pub position_ms: u64,
    /// Whether the play counts as a stream.
    pub streamed: bool,
    /// When it reached the stream threshold, unix milliseconds.
    pub streamed_at_ms: Option<i64>,
    /// Events reported for it.
    pub events: u64,
}

/// `GET /v1/admin/royalties`: streams per track per UTC day over
/// `from..=to`, by day then track, with the range's totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoyaltiesResponse {
    /// `YYYY-MM-DD`, as asked.
    pub from: String,
    pub to: String,
    /// Streams of all tracks over the range.
    pub total_streams: u64,
    /// Tracks with at least one stream in the range.
    pub tracks: u64,
    /// One item per track and day with streams.
    pub streams: Paging<DailyStreams>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DailyStreams {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    #[schema(value_type = schema::TrackId)]
    pub track_id: String,
    pub streams: u64,
}

/// Answer to `POST /v1/admin/popularity/recompute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PopularityResponse {
    /// The window: streams of the `days` UTC days ending today.
    pub days: u32,
    /// First day of the window, `YYYY-MM-DD`.
    pub since: String,
    /// Streams of the most streamed track in the window (popularity 100).
    pub max_streams: u64,
    /// Tracks whose popularity or all-time stream count changed.
    pub tracks_updated: u64,
}
