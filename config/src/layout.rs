//! Where things live: object keys in the store and paths on an edge.
//!
//! ```text
//! audio/<file_id>.ogg                 immutable, content-addressed audio
//! tracks/<track_id>/manifest.json     a track's ladder; written last
//! /a/<file_id>.ogg                    the edge path a signed URL names
//! ```

use crate::ids::{FileId, TrackId};

/// Prefix of every audio object key.
pub const AUDIO_PREFIX: &str = "audio/";
/// Prefix of every track manifest key.
pub const TRACKS_PREFIX: &str = "tracks/";
/// Prefix of the edge's audio paths.
pub const EDGE_AUDIO_PREFIX: &str = "/a/";
/// The only container we publish.
pub const AUDIO_EXT: &str = ".ogg";
/// `Content-Type` of every audio object.
pub const AUDIO_CONTENT_TYPE: &str = "audio/ogg";

/// `audio/<file_id>.ogg`
pub fn audio_key(id: &FileId) -> String {
    format!("{AUDIO_PREFIX}{id}{AUDIO_EXT}")
}

/// `tracks/<track_id>/manifest.json`
pub fn manifest_key(track: &TrackId) -> String {
    format!("{TRACKS_PREFIX}{track}/manifest.json")
}

/// `/a/<file_id>.ogg`: the path an edge serves a file under, and the path a
/// URL token signs.
pub fn edge_path(id: &FileId) -> String {
    format!("{EDGE_AUDIO_PREFIX}{id}{AUDIO_EXT}")
}

/// The file id named by an edge path, if the path is exactly
/// `/a/<32 lower-case hex>.ogg` (no dot segments, no encoding, nothing else).
pub fn parse_edge_path(path: &str) -> Option<FileId> {
    path.strip_prefix(EDGE_AUDIO_PREFIX)?.strip_suffix(AUDIO_EXT)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = FileId::of_content(b"x");
        let track: TrackId = "t1".parse().unwrap();
        assert_eq!(audio_key(&id), format!("audio/{id}.ogg"));
        assert_eq!(manifest_key(&track), "tracks/t1/manifest.json");
        assert_eq!(parse_edge_path(&edge_path(&id)), Some(id));
    }

    #[test]
    fn edge_path_parse_is_exact() {
        let id = FileId::of_content(b"x");
        for bad in [
            format!("/a/{id}.ogg/"),
            format!("/a/{id}.OGG"),
            format!("/a//{id}.ogg"),
            format!("/a/../a/{id}.ogg"),
            format!("/b/{id}.ogg"),
            format!("/a/{id}"),
            format!("/a/%61{}.ogg", &id.as_str()[1..]),
        ] {
            assert_eq!(parse_edge_path(&bad), None, "{bad}");
        }
    }
}
