//! playlists queries (to be written).
