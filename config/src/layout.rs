//! Where things live: object keys in the store and paths on an edge.
//!
//! ```text
//! audio/<file_id>.ogg                 immutable, content-addressed audio
//! tracks/<track_id>/manifest.json     a track's ladder; written last
//! masters/…                           masters uploaded for ingest jobs
//! /a/<file_id>.ogg                    the edge path a signed URL names
//! ```

use crate::ids::{FileId, TrackId};

/// Prefix of every audio object key.
pub const AUDIO_PREFIX: &str = "audio/";
/// Prefix of the masters the control plane's ingest jobs name. The
/// transcoder reads them; nothing else does.
pub const MASTERS_PREFIX: &str = "masters/";
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

/// The file id named by a shield edge's tier path: exactly
/// `/audio/<32 lower-case hex>.ogg`, the store key a child edge's object
/// store client asks for.
pub fn parse_tier_path(path: &str) -> Option<FileId> {
    path.strip_prefix('/')?.strip_prefix(AUDIO_PREFIX)?.strip_suffix(AUDIO_EXT)?.parse().ok()
}

/// Why a request path is not an edge audio path. Each has a stable reason
/// code, answered in `X-Cadenza-Reason` and counted by reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Longer than any audio path could be.
    #[error("path too long")]
    TooLong,
    /// A NUL byte, raw or as `%00`.
    #[error("path contains NUL")]
    Nul,
    /// Any `%` escape: audio paths never need one, and `%2e`, `%2f`, `%5c`,
    /// `%25` are how traversal hides from naive filters.
    #[error("path contains percent-encoding")]
    PercentEncoded,
    /// A backslash, which some stacks treat as a separator.
    #[error("path contains a backslash")]
    Backslash,
    /// A `.` or `..` segment.
    #[error("path contains a dot segment")]
    DotSegment,
    /// `//`: an empty segment.
    #[error("path contains an empty segment")]
    EmptySegment,
    /// Under `/a/` but the name is not 32 lower-case hex digits.
    #[error("file id is not 32 lower-case hex digits")]
    BadFileId,
    /// Under `/a/` with a valid id but not `.ogg`.
    #[error("wrong file extension")]
    BadExtension,
    /// Some other path, well formed: nothing lives there.
    #[error("no such path")]
    NotFound,
}

impl PathError {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::TooLong => "path_too_long",
            PathError::Nul => "path_nul",
            PathError::PercentEncoded => "path_percent_encoded",
            PathError::Backslash => "path_backslash",
            PathError::DotSegment => "path_dot_segment",
            PathError::EmptySegment => "path_empty_segment",
            PathError::BadFileId => "path_bad_file_id",
            PathError::BadExtension => "path_bad_extension",
            PathError::NotFound => "not_found",
        }
    }

    /// Every reason, for pre-registering metric labels.
    pub const ALL: [PathError; 9] = [
        PathError::TooLong,
        PathError::Nul,
        PathError::PercentEncoded,
        PathError::Backslash,
        PathError::DotSegment,
        PathError::EmptySegment,
        PathError::BadFileId,
        PathError::BadExtension,
        PathError::NotFound,
    ];
}

/// Longest request path [`check_edge_path`] looks at.
pub const MAX_EDGE_PATH: usize = 256;

/// Classify a raw (still percent-encoded) request path: the file id of an
/// exact `/a/<32 lower-case hex>.ogg`, or why not. Tricks are named before
/// anything else is looked at, wherever in the path they appear.
pub fn check_edge_path(path: &str) -> Result<FileId, PathError> {
    if let Some(id) = parse_edge_path(path) {
        return Ok(id);
    }
    if path.len() > MAX_EDGE_PATH {
        return Err(PathError::TooLong);
    }
    let lower = path.to_ascii_lowercase();
    if path.contains('\0') || lower.contains("%00") {
        return Err(PathError::Nul);
    }
    if path.contains('%') {
        return Err(PathError::PercentEncoded);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    let segments = path.strip_prefix('/').unwrap_or(path).split('/');
    if segments.clone().any(|s| s == "." || s == "..") {
        return Err(PathError::DotSegment);
    }
    if path.contains("//") {
        return Err(PathError::EmptySegment);
    }
    let Some(name) = path.strip_prefix(EDGE_AUDIO_PREFIX) else {
        return Err(PathError::NotFound);
    };
    let (stem, ext) = match name.split_once('.') {
        Some((stem, ext)) => (stem, Some(ext)),
        None => (name, None),
    };
    if stem.parse::<FileId>().is_err() {
        return Err(PathError::BadFileId);
    }
    if ext != Some(&AUDIO_EXT[1..]) {
        return Err(PathError::BadExtension);
    }
    // A valid id and extension, yet not exact: something trails (`/x`).
    Err(PathError::NotFound)
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
        assert_eq!(parse_tier_path(&format!("/{}", audio_key(&id))), Some(id));
        assert_eq!(parse_tier_path(&format!("/{}/", audio_key(&id))), None);
        assert_eq!(parse_tier_path(&edge_path(&id)), None);
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

    #[test]
    fn path_tricks_are_named() {
        let id = FileId::of_content(b"x");
        let tail = &id.as_str()[1..];
        assert_eq!(check_edge_path(&format!("/a/{id}.ogg")), Ok(id));
        for (path, want) in [
            (format!("/a/../a/{id}.ogg"), PathError::DotSegment),
            (format!("/a/./{id}.ogg"), PathError::DotSegment),
            (format!("/a/{id}.ogg/.."), PathError::DotSegment),
            (format!("/a//{id}.ogg"), PathError::EmptySegment),
            (format!("//a/{id}.ogg"), PathError::EmptySegment),
            (format!("/a/%2e%2e/{id}.ogg"), PathError::PercentEncoded),
            (format!("/a/%2E%2E%2f{id}.ogg"), PathError::PercentEncoded),
            (format!("/a/..%5c{id}.ogg"), PathError::PercentEncoded),
            (format!("/a/%252e{id}.ogg"), PathError::PercentEncoded),
            (format!("/a/%61{tail}.ogg"), PathError::PercentEncoded),
            (format!("/a/{id}.ogg%00.mp3"), PathError::Nul),
            (format!("/a/{id}\0.ogg"), PathError::Nul),
            (format!("/a/..\\{id}.ogg"), PathError::Backslash),
            (format!("/a/{}.ogg", id.as_str().to_uppercase()), PathError::BadFileId),
            (format!("/a/{tail}.ogg"), PathError::BadFileId),
            (format!("/a/{tail}g.ogg"), PathError::BadFileId),
            ("/a/.ogg".to_owned(), PathError::BadFileId),
            (format!("/a/{id}.mp3"), PathError::BadExtension),
            (format!("/a/{id}.OGG"), PathError::BadExtension),
            (format!("/a/{id}"), PathError::BadExtension),
            (format!("/a/{id}.ogg.ogg"), PathError::BadExtension),
            (format!("/a/{id}.ogg/"), PathError::BadExtension),
            (format!("/b/{id}.ogg"), PathError::NotFound),
            ("/".to_owned(), PathError::NotFound),
            (format!("/a/{}", "x".repeat(300)), PathError::TooLong),
        ] {
            assert_eq!(check_edge_path(&path), Err(want), "{path}");
        }
    }
}
