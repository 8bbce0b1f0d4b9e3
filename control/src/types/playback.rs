//! Bodies of the playback routes: stream URLs (one track or a queue's
//! next tracks) and players' reports on the POPs they fetched from.

use cadenza_config::ids::{FileId, TrackId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ErrorBody, schema};

/// Most tracks in one `POST /v1/playback/prefetch`.
pub const MAX_PREFETCH: usize = 20;
/// Most reports in one `POST /v1/playback/report`.
pub const MAX_REPORTS: usize = 100;

/// `POST /v1/playback/stream`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    #[schema(value_type = schema::TrackId)]
    pub track_id: TrackId,
    /// Preferred bitrate: 24, 96, 160 or 320. Capped by the tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_quality: Option<u32>,
    /// Older name of `preferred_quality`; giving both is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// `true` forces 24 kbps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_saver: Option<bool>,
    /// The client's region (`[A-Za-z0-9_-]{1,64}`), matched against POP
    /// regions. Default: the `selection.region_header` request header,
    /// else `selection.default_region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `true` adds the selection's reasons (`decision`) to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
}

/// The player's network, as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    Wifi,
    Cellular,
}

/// Where and what to stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamResponse {
    #[schema(value_type = schema::TrackId)]
    pub track_id: TrackId,
    pub quality_kbps: u32,
    /// Unix seconds after which the URLs are refused.
    pub expires_at: u64,
    /// Signed URLs on different POPs, best first: try the next on an
    /// error or a stall.
    pub urls: Vec<StreamUrl>,
    /// Milliseconds the player should wait before its first request to
    /// the URLs: random, up to `playback.release_jitter`, while the album
    /// was released less than `playback.release_window` ago (an album
    /// drop's herd spread out); `0` otherwise.
    #[serde(default)]
    pub start_delay_ms: u32,
    pub file: StreamFile,
    /// Id of the selection decision (also in the control plane's log);
    /// quote it in `POST /v1/playback/report`.
    pub decision_id: String,
    /// The selection's reasons, with `debug: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionView>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamUrl {
    /// CDN name from the registry.
    pub cdn: String,
    /// POP name within the CDN.
    pub pop: String,
    pub url: String,
}

/// Signed URLs are credentials: `Debug` shows the POP only.
impl std::fmt::Debug for StreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamUrl")
            .field("cdn", &self.cdn)
            .field("pop", &self.pop)
            .field("url", &"<signed>")
            .finish()
    }
}

/// The chosen rendition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamFile {
    #[schema(value_type = schema::FileId)]
    pub file_id: FileId,
    pub size: u64,
    pub duration_ms: u64,
    pub sample_rate: u32,
    pub channels: u8,
    /// Playback gain of this file (its own loudness, not the master's) to
    /// −14 LUFS with true peak ≤ −1 dBTP.
    pub gain_db: f64,
    /// Album gain of this file, when the track was ingested with its album;
    /// players in album mode apply it instead of `gain_db`.
    pub album_gain_db: Option<f64>,
    pub mime: String,
    /// Path (on this API) of the file's seek table: time → byte offset of
    /// an Ogg page, so a seek costs one range request.
    pub seek_table: String,
}

/// `GET /v1/files/{file_id}/seek-table`: a rendition's seek index, as the
/// transcoder's manifest has it (one point per second of audio).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeekTable {
    #[schema(value_type = schema::FileId)]
    pub file_id: FileId,
    pub duration_ms: u64,
    /// `[ms, offset]` pairs, ascending: audio at `ms` begins on the Ogg page
    /// at byte `offset`. Fetch from the page at or before the target time.
    pub points: Vec<[u64; 2]>,
}

/// Why the URLs are in this order (`debug: true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub id: String,
    /// The client region the decision used; empty matches every POP.
    pub region: String,
    /// Every POP was down, so down POPs were named anyway.
    pub all_down: bool,
    /// Every POP in the registry, in registry order.
    pub candidates: Vec<CandidateView>,
}

/// One POP in a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CandidateView {
    pub cdn: String,
    pub pop: String,
    pub region: String,
    /// Active probe: `up`, `down` or `unknown` (not probed yet, or never).
    pub state: String,
    /// Share of players' reports without error in the window, when there
    /// are enough of them.
    pub availability: Option<f64>,
    /// Mean reported time to first byte.
    pub ttfb_ms: Option<f64>,
    /// Requests in flight from the POP's `/metrics`.
    pub in_flight: Option<u64>,
    /// `cdn.weight · pop.weight / cost_per_gb`.
    pub weight: f64,
    /// Rendezvous score for this track and region; highest leads.
    pub score: f64,
    /// Position in `urls` (0 = first), if named.
    pub rank: Option<u32>,
    /// Why it was demoted or left out: `down`, `other_region`,
    /// `availability`, `latency`, `overloaded`.
    pub skipped: Option<String>,
}

/// `POST /v1/playback/prefetch`: URLs for the next tracks of a queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefetchRequest {
    /// 1 to 20 tracks, in queue order.
    #[schema(value_type = Vec<schema::TrackId>)]
    pub track_ids: Vec<TrackId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_quality: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_saver: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
}

/// One answer per requested track, in request order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrefetchResponse {
    pub items: Vec<PrefetchItem>,
}

/// A track's stream answer, or why there is none (`not_released`,
/// `track_not_found`, `no_audio`, …: the codes and statuses
/// `POST /v1/playback/stream` would answer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrefetchItem {
    #[schema(value_type = schema::TrackId)]
    pub track_id: TrackId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `POST /v1/playback/report`: what players saw of POPs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// 1 to 100 reports.
    pub reports: Vec<PopReport>,
}

/// One fetch from one POP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PopReport {
    pub cdn: String,
    pub pop: String,
    /// Milliseconds from request to first byte; omit on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<u32>,
    /// Download throughput seen, kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_kbps: Option<u32>,
    /// What went wrong, if anything: `connect`, `timeout`, `http_4xx`,
    /// `http_5xx`, `stall`, `token`, `other`. Absent: the fetch worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReportError>,
    /// The `decision_id` of the stream answer the URL came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
}

/// A failed fetch's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportError {
    Connect,
    Timeout,
    #[serde(rename = "http_4xx")]
    Http4xx,
    #[serde(rename = "http_5xx")]
    Http5xx,
    Stall,
    Token,
    Other,
}

/// What the reports did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportResponse {
    /// Reports counted.
    pub accepted: u32,
    /// Reports naming a CDN or POP the registry does not hold (ignored).
    pub unknown: u32,
}
