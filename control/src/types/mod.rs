//! The JSON bodies of the HTTP API, public so clients (the dev stack, tools,
//! tests) build and read them with the same types the server uses.
//!
//! Request bodies refuse unknown fields, so a typo (`"relase_at"`) is a 400
//! naming it rather than a silently dropped embargo. Response bodies may
//! grow new fields; readers should ignore what they do not know.
//!
//! The bodies of the worker side of the ingest queue (`/v1/ingest/*`) and
//! the job status are [`cadenza_config::ingest`]'s, shared with the
//! transcoder.

use cadenza_config::ids::{TrackId, UserId};
use cadenza_config::ingest::JobStatus;
use cadenza_config::manifest::Manifest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod cdns;
mod events;
mod library;
mod playback;
mod playlists;
pub(crate) mod schema;
mod warm;

pub use self::cdns::*;
pub use self::events::*;
pub use self::library::*;
pub use self::playback::*;
pub use self::playlists::*;
pub use self::warm::*;

// ---------------------------------------------------------------- admin

/// `GET /v1/admin/signing`, `POST /v1/admin/signing/reload`: the URL-signing
/// key ring by key id (never a secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SigningKeys {
    /// Every key id in the ring, in ring order.
    #[schema(value_type = Vec<schema::KeyId>, min_items = 1)]
    pub keys: Vec<String>,
    /// The key new stream URLs are signed with (`kid=`): `signing.current`,
    /// or the last key.
    #[schema(value_type = schema::KeyId)]
    pub current: String,
}

impl From<cadenza_config::live::RingSummary> for SigningKeys {
    fn from(r: cadenza_config::live::RingSummary) -> Self {
        Self { keys: r.keys, current: r.current }
    }
}

/// `POST /v1/admin/import`: a catalog batch, upserted in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[serde(default)]
    pub artists: Vec<ImportArtist>,
    #[serde(default)]
    pub albums: Vec<ImportAlbum>,
    #[serde(default)]
    pub tracks: Vec<ImportTrack>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportArtist {
    #[schema(value_type = schema::Id)]
    pub id: String,
    pub name: String,
    /// 0-100; kept as it is when absent (new artists start at 0).
    #[schema(maximum = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportAlbum {
    #[schema(value_type = schema::Id)]
    pub id: String,
    pub title: String,
    pub album_type: AlbumType,
    /// `YYYY-MM-DD`, shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// Embargo, unix seconds: no stream URL is issued before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at: Option<i64>,
    /// Credited artists in order; each must be in this batch or the catalog.
    #[schema(value_type = Vec<schema::Id>)]
    pub artist_ids: Vec<String>,
    /// 0-100; kept as it is when absent (new albums start at 0).
    #[schema(maximum = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlbumType {
    Album,
    Single,
    Ep,
    Compilation,
}

impl AlbumType {
    pub fn as_str(self) -> &'static str {
        match self {
            AlbumType::Album => "album",
            AlbumType::Single => "single",
            AlbumType::Ep => "ep",
            AlbumType::Compilation => "compilation",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "album" => AlbumType::Album,
            "single" => AlbumType::Single,
            "ep" => AlbumType::Ep,
            "compilation" => AlbumType::Compilation,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportTrack {
    #[schema(value_type = schema::TrackId)]
    pub id: TrackId,
    /// Must be in this batch or the catalog.
    #[schema(value_type = schema::Id)]
    pub album_id: String,
    pub title: String,
    /// 1-based.
    pub track_number: u32,
    /// 1-based. Default `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disc_number: Option<u32>,
    /// Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit: Option<bool>,
    /// ISO 3901, e.g. `SEXYZ2400001` (hyphens are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// Credited artists in order; each must be in this batch or the catalog.
    #[schema(value_type = Vec<schema::Id>)]
    pub artist_ids: Vec<String>,
    /// The transcoder's manifest; supplies duration, loudness and files.
    /// `manifest.track_id` must equal `id`. Absent for a track whose audio
    /// is not transcoded yet (a label's metadata arrives first): then
    /// `duration_ms` is required, and a re-import keeps the audio, loudness
    /// and features the track already has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Manifest>)]
    pub manifest: Option<Manifest>,
    /// Required without a manifest; with one it must be absent or equal
    /// the manifest's source duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// 0-100; kept as it is when absent (new tracks start at 0).
    #[schema(maximum = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<u32>,
    /// Tempo, energy, … as a JSON object. When absent, the manifest's
    /// `features` are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub audio_features: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /v1/admin/ingest`: masters already uploaded under `masters/`, to be
/// transcoded by a worker and registered in the catalog when it reports
/// their manifests. The album and the artists must already be in the
/// catalog (import them first, with no tracks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// Set to ingest the tracks together as one album (album gain is then
    /// measured over all of them); every track's `album_id` must equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Id>)]
    pub album_id: Option<String>,
    /// 1 to [`cadenza_config::ingest::MAX_JOB_TRACKS`] tracks, unique ids.
    pub tracks: Vec<IngestTrack>,
}

/// One track of an ingest job: its catalog metadata (as in [`ImportTrack`],
/// minus what the transcoder measures) and its master.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestTrack {
    #[schema(value_type = schema::TrackId)]
    pub id: TrackId,
    /// Must be in the catalog.
    #[schema(value_type = schema::Id)]
    pub album_id: String,
    pub title: String,
    /// 1-based.
    pub track_number: u32,
    /// 1-based. Default `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disc_number: Option<u32>,
    /// Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit: Option<bool>,
    /// ISO 3901, e.g. `SEXYZ2400001` (hyphens are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// Credited artists in order; each must be in the catalog.
    #[schema(value_type = Vec<schema::Id>)]
    pub artist_ids: Vec<String>,
    /// Store key of the master, e.g. `masters/label/2026/01.flac`
    /// ([`cadenza_config::ingest::is_master_key`]).
    pub master: String,
}

/// `GET /v1/admin/ingest`: jobs, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IngestJobList {
    #[schema(value_type = Vec<schema::JobStatus>)]
    pub jobs: Vec<JobStatus>,
}

/// One line of `POST /v1/admin/import/jsonl` (JSON Lines): one entity,
/// tagged by its kind, e.g. `{"track":{"id":"t1",…}}`. Lines may come in
/// any order as long as an entity's artists and album come on earlier
/// lines (or are in the catalog already).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ImportLine {
    Artist(ImportArtist),
    Album(ImportAlbum),
    Track(Box<ImportTrack>),
}

/// Answer to a JSON Lines import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BulkImportResponse {
    /// Non-empty lines read.
    pub lines: u64,
    pub artists: u64,
    pub albums: u64,
    pub tracks: u64,
    /// Transactions committed (one per chunk of lines).
    pub transactions: u64,
}

/// Answer to an import: how many of each entity the batch upserted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportResponse {
    pub artists: u64,
    pub albums: u64,
    pub tracks: u64,
}

/// `POST /v1/admin/users`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub display_name: String,
    pub tier: Tier,
    /// ISO 3166-1 alpha-2, e.g. `SE`.
    pub country: String,
    /// Default: a fresh random id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::UserId>)]
    pub id: Option<UserId>,
}

/// Subscription tier; decides the highest quality a user may stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Premium,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Premium => "premium",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "free" => Some(Tier::Free),
            "premium" => Some(Tier::Premium),
            _ => None,
        }
    }
}

/// `201 Created` answer to a user creation. The token is shown once; only
/// its SHA-256 is stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateUserResponse {
    #[schema(value_type = schema::UserId)]
    pub id: UserId,
    pub token: String,
}

impl std::fmt::Debug for CreateUserResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserResponse").field("id", &self.id).field("token", &"<redacted>").finish()
    }
}

// ---------------------------------------------------------------- paging

/// A page of a longer list (Spotify's paging object). `href` is this
/// page's path and query; `next`/`previous` are the neighbouring pages',
/// `null` at the ends. Paths are relative to the API's base URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Paging<T> {
    pub href: String,
    pub items: Vec<T>,
    /// Items asked for: `limit` query parameter, default 20, 1 to 50.
    pub limit: u32,
    /// Index of the first item: `offset` query parameter, default 0.
    pub offset: u32,
    /// Items in the whole list.
    pub total: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
}

// ---------------------------------------------------------------- catalog

/// `GET /v1/tracks/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackResponse {
    #[schema(value_type = schema::TrackId)]
    pub id: TrackId,
    pub title: String,
    pub duration_ms: u64,
    pub track_number: u32,
    pub disc_number: u32,
    pub explicit: bool,
    pub isrc: Option<String>,
    /// 0-100.
    pub popularity: u32,
    pub album: AlbumSummary,
    /// Credited artists, in order.
    pub artists: Vec<ArtistSummary>,
    /// Published bitrates in kbit/s, ascending; empty until the track's
    /// audio is registered.
    pub qualities: Vec<u32>,
    /// Of the master; `null` until the track's audio is registered.
    pub loudness: Option<TrackLoudness>,
}

/// `GET /v1/tracks?ids=`: in the order asked, `null` for unknown ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TracksResponse {
    pub tracks: Vec<Option<TrackResponse>>,
}

/// An album without its tracks (lists, search results, `?ids=`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlbumSimplified {
    pub id: String,
    pub title: String,
    pub album_type: AlbumType,
    pub release_date: Option<String>,
    /// Embargo end in unix seconds, if any: until then the album is shown
    /// (as upcoming) but not streamed.
    pub release_at: Option<i64>,
    /// 0-100.
    pub popularity: u32,
    /// Credited artists, in order.
    pub artists: Vec<ArtistSummary>,
    pub total_tracks: u64,
}

/// `GET /v1/albums/{id}`: the album and the first page of its tracks
/// (`?limit&offset` page them), in disc and track order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlbumResponse {
    #[serde(flatten)]
    pub album: AlbumSimplified,
    pub tracks: Paging<TrackResponse>,
}

/// `GET /v1/albums?ids=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlbumsResponse {
    pub albums: Vec<Option<AlbumSimplified>>,
}

/// `GET /v1/artists/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtistResponse {
    pub id: String,
    pub name: String,
    /// 0-100.
    pub popularity: u32,
}

/// `GET /v1/artists?ids=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtistsResponse {
    pub artists: Vec<Option<ArtistResponse>>,
}

/// A playlist as search finds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaylistHit {
    pub id: String,
    pub name: String,
    pub owner: PlaylistHitOwner,
    pub items_total: u64,
    pub followers: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaylistHitOwner {
    pub id: String,
    pub display_name: String,
}

/// `GET /v1/search`: one paging object per type asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<Paging<TrackResponse>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artists: Option<Paging<ArtistResponse>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub albums: Option<Paging<AlbumSimplified>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlists: Option<Paging<PlaylistHit>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlbumSummary {
    pub id: String,
    pub title: String,
    pub album_type: AlbumType,
    pub release_date: Option<String>,
    /// Embargo end in unix seconds, if any (streams are refused before it).
    pub release_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtistSummary {
    pub id: String,
    pub name: String,
}

/// Of the master.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackLoudness {
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
    /// Playback gain to −14 LUFS with true peak ≤ −1 dBTP.
    pub gain_db: f64,
}

// ---------------------------------------------------------------- playback

// ---------------------------------------------------------------- errors

/// Every error answer: `{"error":{"status":…,"code":"…","message":"…"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    /// Stable snake_case reason, e.g. `track_not_found`.
    pub code: String,
    /// Lower-case text naming the bad field or value.
    pub message: String,
}
