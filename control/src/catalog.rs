//! Catalog import: turning an [`ImportRequest`] into validated rows.
//!
//! Everything that can be checked without the database is checked here, so
//! a bad batch is refused before a transaction starts. References to
//! entities outside the batch (an album's artists, a track's album) are
//! listed in [`Batch::external_refs`] and checked inside the import
//! transaction by `db::catalog::import`.

use std::collections::HashSet;

use cadenza_config::ids::TrackId;
use cadenza_config::manifest::{Loudness, Manifest};

use crate::error::ApiError;
use crate::types::{AlbumType, ImportAlbum, ImportArtist, ImportRequest, ImportTrack};
use crate::validate::{self, echo};

/// Longest title or name.
const MAX_TITLE: usize = 500;
/// Most artists credited on one album or track.
const MAX_CREDITS: usize = 100;

#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) artists: Vec<ArtistRow>,
    pub(crate) albums: Vec<AlbumRow>,
    pub(crate) tracks: Vec<TrackRow>,
}

#[derive(Debug)]
pub(crate) struct ArtistRow {
    pub(crate) id: String,
    pub(crate) name: String,
}

#[derive(Debug)]
pub(crate) struct AlbumRow {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) album_type: AlbumType,
    pub(crate) release_date: Option<String>,
    pub(crate) release_at_ms: Option<i64>,
    pub(crate) artist_ids: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct TrackRow {
    pub(crate) id: TrackId,
    pub(crate) album_id: String,
    pub(crate) title: String,
    pub(crate) track_number: i64,
    pub(crate) disc_number: i64,
    pub(crate) explicit: bool,
    pub(crate) isrc: Option<String>,
    pub(crate) artist_ids: Vec<String>,
    pub(crate) duration_ms: i64,
    pub(crate) loudness: Loudness,
    /// JSON object text, if given.
    pub(crate) audio_features: Option<String>,
    pub(crate) files: Vec<FileRow>,
}

#[derive(Debug)]
pub(crate) struct FileRow {
    pub(crate) bitrate_kbps: i64,
    pub(crate) file_id: String,
    pub(crate) size: i64,
    pub(crate) duration_ms: i64,
    pub(crate) sample_rate: i64,
    pub(crate) channels: i64,
    pub(crate) achieved_kbps: f64,
    pub(crate) gain_db: f64,
    pub(crate) mime: String,
}

/// A reference to an entity that is not in the batch: the field that made
/// it, the table, and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExternalRef {
    pub(crate) path: String,
    pub(crate) table: RefTable,
    pub(crate) id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefTable {
    Artist,
    Album,
}

impl Batch {
    /// Validate every field of `req`.
    pub(crate) fn validate(req: ImportRequest) -> Result<Self, ApiError> {
        let artists = req
            .artists
            .iter()
            .enumerate()
            .map(|(i, a)| artist(&format!("artists[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        unique(artists.iter().map(|a| a.id.as_str()), "artists")?;
        let albums = req
            .albums
            .iter()
            .enumerate()
            .map(|(i, a)| album(&format!("albums[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        unique(albums.iter().map(|a| a.id.as_str()), "albums")?;
        let tracks = req
            .tracks
            .into_iter()
            .enumerate()
            .map(|(i, t)| track(&format!("tracks[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
        unique(tracks.iter().map(|t| t.id.as_str()), "tracks")?;
        Ok(Self { artists, albums, tracks })
    }

    /// Ids this batch refers to but does not contain, first reference of
    /// each id only.
    pub(crate) fn external_refs(&self) -> Vec<ExternalRef> {
        let artists: HashSet<&str> = self.artists.iter().map(|a| a.id.as_str()).collect();
        let albums: HashSet<&str> = self.albums.iter().map(|a| a.id.as_str()).collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut push = |path: String, table: RefTable, id: &str| {
            if seen.insert((table as u8, id.to_owned())) {
                out.push(ExternalRef { path, table, id: id.to_owned() });
            }
        };
        for (i, a) in self.albums.iter().enumerate() {
            for (j, id) in a.artist_ids.iter().enumerate() {
                if !artists.contains(id.as_str()) {
                    push(format!("albums[{i}].artist_ids[{j}]"), RefTable::Artist, id);
                }
            }
        }
        for (i, t) in self.tracks.iter().enumerate() {
            if !albums.contains(t.album_id.as_str()) {
                push(format!("tracks[{i}].album_id"), RefTable::Album, &t.album_id);
            }
            for (j, id) in t.artist_ids.iter().enumerate() {
                if !artists.contains(id.as_str()) {
                    push(format!("tracks[{i}].artist_ids[{j}]"), RefTable::Artist, id);
                }
            }
        }
        out
    }
}

fn unique<'a>(ids: impl Iterator<Item = &'a str>, list: &str) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(ApiError::invalid(format!(
                "{list}[{i}].id: {} appears twice in the batch",
                echo(id)
            )));
        }
    }
    Ok(())
}

fn credits(path: &str, ids: &[String]) -> Result<Vec<String>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid(format!("{path}: must name at least one artist")));
    }
    if ids.len() > MAX_CREDITS {
        return Err(ApiError::invalid(format!(
            "{path}: must name at most {MAX_CREDITS} artists, got {}",
            ids.len()
        )));
    }
    let out = ids
        .iter()
        .enumerate()
        .map(|(j, id)| validate::id(&format!("{path}[{j}]"), id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    for (j, id) in out.iter().enumerate() {
        if !seen.insert(id) {
            return Err(ApiError::invalid(format!("{path}[{j}]: {} is credited twice", echo(id))));
        }
    }
    Ok(out)
}

fn artist(path: &str, a: &ImportArtist) -> Result<ArtistRow, ApiError> {
    Ok(ArtistRow {
        id: validate::id(&format!("{path}.id"), &a.id)?,
        name: validate::text(&format!("{path}.name"), &a.name, MAX_TITLE)?,
    })
}

fn album(path: &str, a: &ImportAlbum) -> Result<AlbumRow, ApiError> {
    Ok(AlbumRow {
        id: validate::id(&format!("{path}.id"), &a.id)?,
        title: validate::text(&format!("{path}.title"), &a.title, MAX_TITLE)?,
        album_type: a.album_type,
        release_date: a
            .release_date
            .as_deref()
            .map(|d| validate::date(&format!("{path}.release_date"), d))
            .transpose()?,
        release_at_ms: a
            .release_at
            .map(|t| validate::unix_seconds(&format!("{path}.release_at"), t))
            .transpose()?,
        artist_ids: credits(&format!("{path}.artist_ids"), &a.artist_ids)?,
    })
}

fn track(path: &str, t: ImportTrack) -> Result<TrackRow, ApiError> {
    let positive = |field: &str, v: u32| {
        if (1..=10_000).contains(&v) {
            Ok(i64::from(v))
        } else {
            Err(ApiError::invalid(format!("{path}.{field}: must be between 1 and 10000, got {v}")))
        }
    };
    let track_number = positive("track_number", t.track_number)?;
    let disc_number = positive("disc_number", t.disc_number.unwrap_or(1))?;
    let m = &t.manifest;
    let mpath = format!("{path}.manifest");
    check_manifest(&mpath, &t.id, m)?;
    let files = m
        .renditions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rpath = format!("{mpath}.renditions[{i}]");
            Ok(FileRow {
                bitrate_kbps: i64::from(r.bitrate_kbps.kbps()),
                file_id: r.file_id.to_string(),
                size: checked_i64(&format!("{rpath}.size"), r.size, 1)?,
                duration_ms: checked_i64(&format!("{rpath}.duration_ms"), r.duration_ms, 0)?,
                sample_rate: checked_i64(&format!("{rpath}.sample_rate"), u64::from(r.sample_rate), 1)?,
                channels: checked_i64(&format!("{rpath}.channels"), u64::from(r.channels), 1)?,
                achieved_kbps: finite(&format!("{rpath}.achieved_kbps"), r.achieved_kbps)?,
                gain_db: m.loudness.gain_db,
                mime: validate::text(&format!("{rpath}.mime"), &r.mime, 100)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(TrackRow {
        album_id: validate::id(&format!("{path}.album_id"), &t.album_id)?,
        title: validate::text(&format!("{path}.title"), &t.title, MAX_TITLE)?,
        track_number,
        disc_number,
        explicit: t.explicit.unwrap_or(false),
        isrc: t.isrc.as_deref().map(|v| validate::isrc(&format!("{path}.isrc"), v)).transpose()?,
        artist_ids: credits(&format!("{path}.artist_ids"), &t.artist_ids)?,
        duration_ms: checked_i64(&format!("{mpath}.source.duration_ms"), m.source.duration_ms, 0)?,
        loudness: m.loudness,
        audio_features: t.audio_features.map(|f| serde_json::Value::Object(f).to_string()),
        files,
        id: t.id,
    })
}

fn check_manifest(path: &str, id: &TrackId, m: &Manifest) -> Result<(), ApiError> {
    if &m.track_id != id {
        return Err(ApiError::invalid(format!(
            "{path}.track_id: {} does not match the track id {}",
            echo(m.track_id.as_str()),
            echo(id.as_str())
        )));
    }
    m.check().map_err(|reason| ApiError::invalid(format!("{path}.{reason}")))
}

fn checked_i64(path: &str, v: u64, min: u64) -> Result<i64, ApiError> {
    match i64::try_from(v) {
        Ok(n) if v >= min => Ok(n),
        _ => Err(ApiError::invalid(format!("{path}: must be between {min} and {}, got {v}", i64::MAX))),
    }
}

fn finite(path: &str, v: f64) -> Result<f64, ApiError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ApiError::invalid(format!("{path}: must be a finite number, got {v}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use cadenza_config::ids::FileId;
    use cadenza_config::ladder::Rung;
    use cadenza_config::manifest::{MANIFEST_VERSION, Rendition, Source};

    use super::*;

    pub(crate) fn manifest(track: &str, rungs: &[Rung]) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            track_id: track.parse().unwrap(),
            source: Source {
                sha256: "00".repeat(32),
                format: "wav".into(),
                sample_rate: 44_100,
                channels: 2,
                frames: 441_000,
                duration_ms: 10_000,
            },
            loudness: Loudness { integrated_lufs: -18.0, true_peak_dbtp: -2.0, gain_db: 4.0 },
            encoder: "test".into(),
            renditions: rungs
                .iter()
                .map(|r| Rendition {
                    bitrate_kbps: *r,
                    file_id: FileId::of_content(format!("{track}/{r}").as_bytes()),
                    size: u64::from(r.kbps()) * 1250,
                    frames: 441_000,
                    duration_ms: 10_000,
                    achieved_kbps: f64::from(r.kbps()),
                    sample_rate: r.output_rate(44_100),
                    channels: r.channels(),
                    mime: "audio/ogg; codecs=vorbis".into(),
                    seek: vec![],
                })
                .collect(),
        }
    }

    fn request() -> ImportRequest {
        ImportRequest {
            artists: vec![ImportArtist { id: "ar1".into(), name: "Artist".into() }],
            albums: vec![ImportAlbum {
                id: "al1".into(),
                title: "Album".into(),
                album_type: AlbumType::Album,
                release_date: Some("2024-02-29".into()),
                release_at: None,
                artist_ids: vec!["ar1".into()],
            }],
            tracks: vec![ImportTrack {
                id: "t1".parse().unwrap(),
                album_id: "al1".into(),
                title: "Song".into(),
                track_number: 1,
                disc_number: None,
                explicit: None,
                isrc: None,
                artist_ids: vec!["ar1".into(), "ar2".into()],
                manifest: manifest("t1", &[Rung::K96, Rung::K160]),
                audio_features: None,
            }],
        }
    }

    fn message(r: Result<Batch, ApiError>) -> String {
        format!("{:?}", r.unwrap_err())
    }

    #[test]
    fn valid_batch_and_external_refs() {
        let b = Batch::validate(request()).unwrap();
        assert_eq!(b.tracks[0].files.len(), 2);
        assert_eq!(b.tracks[0].duration_ms, 10_000);
        assert_eq!(b.tracks[0].disc_number, 1);
        assert_eq!(
            b.external_refs(),
            vec![ExternalRef {
                path: "tracks[0].artist_ids[1]".into(),
                table: RefTable::Artist,
                id: "ar2".into()
            }]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let mut r = request();
        r.tracks[0].manifest.track_id = "t2".parse().unwrap();
        assert!(message(Batch::validate(r)).contains("tracks[0].manifest.track_id"));

        let mut r = request();
        r.albums[0].release_date = Some("2023-02-29".into());
        assert!(message(Batch::validate(r)).contains("albums[0].release_date"));

        let mut r = request();
        r.artists.push(r.artists[0].clone());
        assert!(message(Batch::validate(r)).contains("artists[1].id"));

        let mut r = request();
        r.tracks[0].artist_ids.clear();
        assert!(message(Batch::validate(r)).contains("tracks[0].artist_ids"));

        let mut r = request();
        r.tracks[0].track_number = 0;
        assert!(message(Batch::validate(r)).contains("tracks[0].track_number"));

        let mut r = request();
        r.tracks[0].manifest.renditions.clear();
        assert!(message(Batch::validate(r)).contains("tracks[0].manifest.renditions"));

        let mut r = request();
        let dup = r.tracks[0].manifest.renditions[0].clone();
        r.tracks[0].manifest.renditions.push(dup);
        assert!(message(Batch::validate(r)).contains("renditions[2].bitrate_kbps"));

        let mut r = request();
        r.tracks[0].manifest.loudness.gain_db = f64::NAN;
        assert!(message(Batch::validate(r)).contains("loudness.gain_db"));

        let mut r = request();
        r.albums[0].release_at = Some(-5);
        assert!(message(Batch::validate(r)).contains("albums[0].release_at"));
    }
}
