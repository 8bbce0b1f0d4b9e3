//! Bodies of the playlists API (to be written).
