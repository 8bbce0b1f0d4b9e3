//! Bodies of the playlists API (`/v1/playlists/*`, `/v1/me/playlists`,
//! `/v1/users/{id}/playlists`), modelled on Spotify's Web API so its
//! clients' habits carry over: a playlist object with its first page of
//! items, item writes that answer with a `snapshot_id`, and Spotify's
//! reorder semantics.
//!
//! A `snapshot_id` names one version of a playlist: it changes with every
//! change (details or items) and stays the same between changes. A write may
//! name the snapshot it was computed against (`If-Match` header, or the
//! `snapshot_id` field of the item routes); when that is no longer current
//! the write is refused with 412 `snapshot_mismatch` and changes nothing.

use cadenza_config::ids::{TrackId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Paging, TrackResponse, schema};

/// `POST /v1/playlists`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaylistRequest {
    /// 1-200 characters (trimmed).
    pub name: String,
    /// At most 1,000 characters; empty means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default `true`. Private playlists are seen only by their owner and
    /// collaborators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Default `false`. A collaborative playlist may not be public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaborative: Option<bool>,
}

/// `PUT /v1/playlists/{id}`: the fields to change (at least one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlaylistRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `""` removes the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaborative: Option<bool>,
}

/// Who owns a playlist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlaylistOwner {
    #[schema(value_type = schema::UserId)]
    pub id: UserId,
    pub display_name: String,
}

/// `GET /v1/playlists/{id}`: the playlist with one page of its items
/// (`?limit=&offset=` of the request, default the first 20).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaylistResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub public: bool,
    pub collaborative: bool,
    pub owner: PlaylistOwner,
    /// This version of the playlist; see the module docs.
    pub snapshot_id: String,
    /// Users who saved the playlist to their library.
    pub followers: u64,
    /// `items.total` is the playlist's length.
    pub items: Paging<PlaylistItem>,
}

/// A playlist in a list (`/v1/me/playlists`, a library): no items, only
/// their number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SimplePlaylist {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub public: bool,
    pub collaborative: bool,
    pub owner: PlaylistOwner,
    pub snapshot_id: String,
    pub followers: u64,
    pub items_total: u64,
}

/// One entry of a playlist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlaylistItem {
    /// 0-based index in the playlist.
    pub position: u32,
    /// Unix seconds.
    pub added_at: i64,
    /// The user who added it; `null` once that user is deleted.
    #[schema(value_type = Option<schema::UserId>)]
    pub added_by: Option<UserId>,
    pub track: TrackResponse,
}

/// `POST /v1/playlists/{id}/items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemsRequest {
    /// 1 to 100 tracks, added in this order; repeats allowed.
    #[schema(value_type = Vec<schema::TrackId>, min_items = 1, max_items = 100)]
    pub track_ids: Vec<TrackId>,
    /// Insert before the item at this index (0 = at the start); at most the
    /// playlist's length. Default: append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Refuse the change (412) unless this is the current snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

/// `DELETE /v1/playlists/{id}/items`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveItemsRequest {
    /// 1 to 100 entries.
    pub tracks: Vec<RemoveTrack>,
    /// Refuse the change (412) unless this is the current snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

/// What to remove of one track.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveTrack {
    #[schema(value_type = schema::TrackId)]
    pub track_id: TrackId,
    /// Remove exactly the items at these indexes (each must hold
    /// `track_id`). Absent: remove every occurrence of the track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<u32>>,
}

/// `PUT /v1/playlists/{id}/items`: move the items
/// `[range_start, range_start + range_length)` to just before the item
/// that was at `insert_before` (both in the numbering before the move;
/// `insert_before` = the length moves them to the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderItemsRequest {
    pub range_start: u32,
    pub insert_before: u32,
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_length: Option<u32>,
    /// Refuse the change (412) unless this is the current snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

/// Answer to an item write: the playlist's new snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotResponse {
    pub snapshot_id: String,
}
