//! Bodies of the library API (`/v1/me/library/{kind}`): what a user saved,
//! newest first, each with when it was saved — Spotify's "saved tracks /
//! albums / followed artists / playlists", behind one route shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AlbumType, ArtistSummary, SimplePlaylist, TrackResponse};

/// A saved track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SavedTrack {
    /// Unix seconds.
    pub added_at: i64,
    pub track: TrackResponse,
}

/// A saved album.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SavedAlbum {
    /// Unix seconds.
    pub added_at: i64,
    pub album: LibraryAlbum,
}

/// A saved (followed) artist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SavedArtist {
    /// Unix seconds.
    pub added_at: i64,
    pub artist: LibraryArtist,
}

/// A saved (followed) playlist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SavedPlaylist {
    /// Unix seconds.
    pub added_at: i64,
    pub playlist: SimplePlaylist,
}

/// An album as a library lists it: enough to draw a grid cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LibraryAlbum {
    pub id: String,
    pub title: String,
    pub album_type: AlbumType,
    pub release_date: Option<String>,
    /// Embargo end in unix seconds, if any.
    pub release_at: Option<i64>,
    /// Credited artists, in order.
    pub artists: Vec<ArtistSummary>,
}

/// An artist as a library lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LibraryArtist {
    pub id: String,
    pub name: String,
    /// 0-100.
    pub popularity: u32,
}
