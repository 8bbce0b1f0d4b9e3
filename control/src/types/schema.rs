//! OpenAPI schemas of the wire types the API borrows from
//! [`cadenza_config`] (ids, the manifest, the ingest worker bodies).
//!
//! `cadenza_config` stays free of the OpenAPI generator, so these
//! stand-ins describe its serde shapes field for field; nothing here is
//! ever built or (de)serialised. They cannot drift silently: the
//! `openapi` integration test validates real job statuses, claimed jobs
//! and manifests (made by `cadenza_config`'s own types) against the
//! served document, and every `deny_unknown_fields` there shows up as
//! `additionalProperties: false` here.

#![allow(dead_code)] // stand-ins: only their schemas are used

use utoipa::ToSchema;

/// An opaque id: 1-64 characters of `[A-Za-z0-9_-]`.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64, example = "t1")]
pub(crate) struct Id(String);

/// A track's id: 1-64 characters of `[A-Za-z0-9_-]`.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64, example = "t1")]
pub(crate) struct TrackId(String);

/// A user's id: 1-64 characters of `[A-Za-z0-9_-]`.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64, example = "ana")]
pub(crate) struct UserId(String);

/// A URL-signing key's id (`kid=`): 1-32 characters of `[A-Za-z0-9_-]`.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,32}$", min_length = 1, max_length = 32, example = "k2")]
pub(crate) struct KeyId(String);

/// An audio file's id: the first 32 lower-case hex digits of the SHA-256
/// of its bytes.
#[derive(ToSchema)]
#[schema(pattern = "^[0-9a-f]{32}$", min_length = 32, max_length = 32)]
pub(crate) struct FileId(String);

/// A track's manifest (`tracks/<track_id>/manifest.json`), version 2:
/// the published ladder and what the transcoder measured.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// Always 2 for manifests this build writes.
    version: u32,
    #[schema(value_type = TrackId)]
    track_id: String,
    source: Source,
    loudness: Loudness,
    /// Set when the track was ingested together with the rest of its album.
    #[serde(default)]
    album: Option<AlbumLoudness>,
    features: AudioFeatures,
    encoder: String,
    encoder_vendor: String,
    /// One entry per rung, lowest bitrate first.
    renditions: Vec<Rendition>,
}

/// What the master was.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Source {
    /// Lower-case hex SHA-256 of the master file's bytes.
    sha256: String,
    /// Container as detected by the decoder (`wav`, `flac`, …).
    format: String,
    sample_rate: u32,
    channels: u8,
    frames: u64,
    duration_ms: u64,
}

/// Loudness per EBU R128 / ITU-R BS.1770.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Loudness {
    integrated_lufs: f64,
    loudness_range_lu: f64,
    true_peak_dbtp: f64,
    /// Gain to −14 LUFS with true peak ≤ −1 dBTP.
    gain_db: f64,
}

/// Album loudness: all the album's tracks measured as one programme.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlbumLoudness {
    #[schema(value_type = Id)]
    id: String,
    tracks: u32,
    /// Lower-case hex SHA-256 naming the tracks measured together.
    members: String,
    loudness: Loudness,
}

/// Audio features for content-based recommendations.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AudioFeatures {
    duration_ms: u64,
    integrated_lufs: f64,
    loudness_range_lu: f64,
    tempo_bpm: f64,
    tempo_confidence: f64,
    energy: f64,
    spectral_centroid_hz: f64,
    zero_crossing_rate: f64,
    /// 26 numbers: the mean of each of 13 MFCCs, then their standard
    /// deviations.
    timbre: Vec<f64>,
}

/// One encoded file of the ladder.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rendition {
    /// Nominal bitrate: 24, 96, 160 or 320.
    #[schema(value_type = u32)]
    bitrate_kbps: u32,
    #[schema(value_type = FileId)]
    file_id: String,
    size: u64,
    frames: u64,
    duration_ms: u64,
    achieved_kbps: f64,
    sample_rate: u32,
    channels: u8,
    mime: String,
    loudness: Loudness,
    #[serde(default)]
    album_loudness: Option<Loudness>,
    seek: Vec<SeekPoint>,
}

/// Time → byte offset of an Ogg page.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeekPoint {
    ms: u64,
    offset: u64,
}

/// `POST /v1/ingest/claim`: the oldest ready job, please.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimRequest {
    /// The worker's name (`[A-Za-z0-9_.-]{1,64}`).
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    worker: String,
    /// How long the lease lasts without a heartbeat.
    #[schema(minimum = 10, maximum = 3600)]
    lease_seconds: u32,
}

/// A claimed job: what to transcode and the lease that proves the claim.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestJob {
    id: String,
    /// Opaque token of this claim; every later call for the job carries it.
    lease: String,
    /// 1 for the first claim, then one more per claim.
    attempt: u32,
    /// Unix seconds when the lease runs out unless renewed.
    lease_expires_at: u64,
    #[serde(default)]
    album_id: Option<String>,
    tracks: Vec<JobTrack>,
}

/// One master of a job.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobTrack {
    #[schema(value_type = TrackId)]
    track_id: String,
    /// Store key of the master, under `masters/`.
    master: String,
}

/// `POST /v1/ingest/jobs/{id}/heartbeat`: extend the lease.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseRequest {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    lease: String,
    #[schema(minimum = 10, maximum = 3600)]
    lease_seconds: u32,
}

/// `POST /v1/ingest/jobs/{id}/complete`: one manifest per job track.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteRequest {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    lease: String,
    manifests: Vec<Manifest>,
}

/// `POST /v1/ingest/jobs/{id}/fail`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailRequest {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    lease: String,
    /// What went wrong (at most 2,000 characters kept); not blank.
    error: String,
    /// `false`: the job fails at once; `true`: queued again after a backoff
    /// while attempts remain.
    retryable: bool,
}

/// Where a job is.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

/// A job as the control plane sees it (times in unix seconds).
#[derive(ToSchema)]
pub(crate) struct JobStatus {
    id: String,
    state: JobState,
    /// Claims so far.
    attempts: u32,
    max_attempts: u32,
    #[serde(default)]
    album_id: Option<String>,
    tracks: Vec<JobTrack>,
    /// The worker holding (or that last held) the lease.
    #[serde(default)]
    worker: Option<String>,
    #[serde(default)]
    lease_expires_at: Option<u64>,
    /// Before this a queued job is not handed out (backoff).
    #[serde(default)]
    not_before: Option<u64>,
    #[serde(default)]
    last_error: Option<String>,
    created_at: u64,
    updated_at: u64,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(ToSchema)]
pub(crate) struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    #[schema(example = "ok")]
    status: String,
}

/// What a library holds.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LibraryKind {
    Tracks,
    Albums,
    Artists,
    Playlists,
}

/// A page of a library: the item type follows the `{kind}` of the path
/// (the generator makes this `oneOf`; the document turns it into `anyOf`,
/// since an empty page is a page of every kind).
#[derive(ToSchema)]
#[serde(untagged)]
pub(crate) enum LibraryPage {
    Tracks(super::Paging<super::SavedTrack>),
    Albums(super::Paging<super::SavedAlbum>),
    Artists(super::Paging<super::SavedArtist>),
    Playlists(super::Paging<super::SavedPlaylist>),
}
