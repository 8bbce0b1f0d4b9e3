//! Catalog import: turning an [`ImportRequest`] into validated rows.
//!
//! Everything that can be checked without the database is checked here, so
//! a bad batch is refused before a transaction starts. References to
//! entities outside the batch (an album's artists, a track's album) are
//! listed in [`Batch::external_refs`] and checked inside the import
//! transaction by `db::catalog::import`.
//!
//! An ingest job's tracks take the same path: their metadata is validated
//! here when the job is registered ([`TrackMeta::validate`]), and the
//! worker's manifests become [`TrackRow`]s through [`TrackRow::new`], so an
//! ingested track is stored exactly as an imported one.

use std::collections::HashSet;

use cadenza_config::ids::TrackId;
use cadenza_config::manifest::{Loudness, Manifest};
use serde::{Deserialize, Serialize};

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
    pub(crate) popularity: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct AlbumRow {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) album_type: AlbumType,
    pub(crate) release_date: Option<String>,
    pub(crate) release_at_ms: Option<i64>,
    pub(crate) artist_ids: Vec<String>,
    pub(crate) popularity: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct TrackRow {
    pub(crate) id: TrackId,
    pub(crate) meta: TrackMeta,
    pub(crate) duration_ms: i64,
    /// `None`: keep the track's current popularity (0 for a new track).
    pub(crate) popularity: Option<i64>,
    /// `None`: metadata only; the track's audio, if any, is kept.
    pub(crate) audio: Option<TrackAudio>,
}

/// What a manifest brings: loudness, features and the files.
#[derive(Debug)]
pub(crate) struct TrackAudio {
    /// Of the master.
    pub(crate) loudness: Loudness,
    /// JSON object text: the import's `audio_features`, else the manifest's
    /// `features`.
    pub(crate) audio_features: String,
    pub(crate) files: Vec<FileRow>,
}

/// The catalog fields of a track other than what the transcoder measures,
/// validated. An ingest job keeps them (as JSON) until its worker reports
/// the manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrackMeta {
    pub(crate) album_id: String,
    pub(crate) title: String,
    pub(crate) track_number: i64,
    pub(crate) disc_number: i64,
    pub(crate) explicit: bool,
    /// Canonical: 12 characters, upper case, no hyphens.
    pub(crate) isrc: Option<String>,
    pub(crate) artist_ids: Vec<String>,
}

/// A track's metadata fields as a request carries them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetaFields<'a> {
    pub(crate) album_id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) track_number: u32,
    pub(crate) disc_number: Option<u32>,
    pub(crate) explicit: Option<bool>,
    pub(crate) isrc: Option<&'a str>,
    pub(crate) artist_ids: &'a [String],
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
    /// The rendition's own playback gain.
    pub(crate) gain_db: f64,
    pub(crate) album_gain_db: Option<f64>,
    pub(crate) mime: String,
    /// The seek table as JSON `[[ms, offset], …]`.
    pub(crate) seek_json: String,
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
        unique(artists.iter().map(|a| a.id.as_str()), "artists", "batch")?;
        let albums = req
            .albums
            .iter()
            .enumerate()
            .map(|(i, a)| album(&format!("albums[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        unique(albums.iter().map(|a| a.id.as_str()), "albums", "batch")?;
        let tracks = req
            .tracks
            .into_iter()
            .enumerate()
            .map(|(i, t)| track(&format!("tracks[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
        unique(tracks.iter().map(|t| t.id.as_str()), "tracks", "batch")?;
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
            if !albums.contains(t.meta.album_id.as_str()) {
                push(format!("tracks[{i}].album_id"), RefTable::Album, &t.meta.album_id);
            }
            for (j, id) in t.meta.artist_ids.iter().enumerate() {
                if !artists.contains(id.as_str()) {
                    push(format!("tracks[{i}].artist_ids[{j}]"), RefTable::Artist, id);
                }
            }
        }
        out
    }
}

/// Every id appears once: `{list}[i].id: … appears twice in the {what}`.
pub(crate) fn unique<'a>(ids: impl Iterator<Item = &'a str>, list: &str, what: &str) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(ApiError::invalid(format!(
                "{list}[{i}].id: {} appears twice in the {what}",
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
        popularity: popularity(&format!("{path}.popularity"), a.popularity)?,
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
        popularity: popularity(&format!("{path}.popularity"), a.popularity)?,
    })
}

fn popularity(path: &str, p: Option<u32>) -> Result<Option<i64>, ApiError> {
    match p {
        None => Ok(None),
        Some(v) if v <= 100 => Ok(Some(i64::from(v))),
        Some(v) => Err(ApiError::invalid(format!("{path}: must be between 0 and 100, got {v}"))),
    }
}

/// Longest track a catalog entry may declare: the transcoder's 3 h limit.
const MAX_DURATION_MS: u64 = 3 * 3600 * 1000;

fn track(path: &str, t: ImportTrack) -> Result<TrackRow, ApiError> {
    let meta = TrackMeta::validate(
        path,
        MetaFields {
            album_id: &t.album_id,
            title: &t.title,
            track_number: t.track_number,
            disc_number: t.disc_number,
            explicit: t.explicit,
            isrc: t.isrc.as_deref(),
            artist_ids: &t.artist_ids,
        },
    )?;
    let features = t.audio_features.map(|f| serde_json::Value::Object(f).to_string());
    let popularity = popularity(&format!("{path}.popularity"), t.popularity)?;
    let Some(manifest) = &t.manifest else {
        let duration_ms = t.duration_ms.ok_or_else(|| {
            ApiError::invalid(format!("{path}.duration_ms: required when the track has no manifest"))
        })?;
        if duration_ms > MAX_DURATION_MS {
            return Err(ApiError::invalid(format!(
                "{path}.duration_ms: must be at most {MAX_DURATION_MS}, got {duration_ms}"
            )));
        }
        if features.is_some() {
            return Err(ApiError::invalid(format!(
                "{path}.audio_features: only with a manifest (features describe the audio)"
            )));
        }
        let duration_ms = checked_i64(&format!("{path}.duration_ms"), duration_ms, 0)?;
        return Ok(TrackRow { id: t.id, meta, duration_ms, popularity, audio: None });
    };
    let mut row = TrackRow::new(&format!("{path}.manifest"), t.id, meta, manifest, features)?;
    if let Some(d) = t.duration_ms
        && i64::try_from(d).ok() != Some(row.duration_ms)
    {
        return Err(ApiError::invalid(format!(
            "{path}.duration_ms: {d} differs from the manifest's {}",
            row.duration_ms
        )));
    }
    row.popularity = popularity;
    Ok(row)
}

impl TrackMeta {
    /// Validate the fields of the track at `path` (`tracks[3]`); errors
    /// name `{path}.{field}`.
    pub(crate) fn validate(path: &str, f: MetaFields<'_>) -> Result<Self, ApiError> {
        let positive = |field: &str, v: u32| {
            if (1..=10_000).contains(&v) {
                Ok(i64::from(v))
            } else {
                Err(ApiError::invalid(format!("{path}.{field}: must be between 1 and 10000, got {v}")))
            }
        };
        Ok(Self {
            album_id: validate::id(&format!("{path}.album_id"), f.album_id)?,
            title: validate::text(&format!("{path}.title"), f.title, MAX_TITLE)?,
            track_number: positive("track_number", f.track_number)?,
            disc_number: positive("disc_number", f.disc_number.unwrap_or(1))?,
            explicit: f.explicit.unwrap_or(false),
            isrc: f.isrc.map(|v| validate::isrc(&format!("{path}.isrc"), v)).transpose()?,
            artist_ids: credits(&format!("{path}.artist_ids"), f.artist_ids)?,
        })
    }
}

impl TrackRow {
    /// The row of track `id` with `meta`, from its manifest `m` (checked
    /// here; errors name `{mpath}.…`). `features` is JSON object text;
    /// `None` stores the manifest's own.
    pub(crate) fn new(
        mpath: &str,
        id: TrackId,
        meta: TrackMeta,
        m: &Manifest,
        features: Option<String>,
    ) -> Result<Self, ApiError> {
        check_manifest(mpath, &id, m)?;
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
                    gain_db: r.loudness.gain_db,
                    album_gain_db: r.album_loudness.map(|l| l.gain_db),
                    mime: validate::text(&format!("{rpath}.mime"), &r.mime, 100)?,
                    seek_json: seek_json(&r.seek),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let audio_features = match features {
            Some(f) => f,
            None => {
                serde_json::to_string(&m.features).map_err(|e| ApiError::internal("features json", &e))?
            }
        };
        Ok(TrackRow {
            duration_ms: checked_i64(&format!("{mpath}.source.duration_ms"), m.source.duration_ms, 0)?,
            popularity: None,
            audio: Some(TrackAudio { loudness: m.loudness, audio_features, files }),
            meta,
            id,
        })
    }
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

/// A seek table as stored: JSON `[[ms, offset], …]` (a tenth of the size
/// of the manifest's objects; a 3-hour rendition has ~10,800 points).
pub(crate) fn seek_json(points: &[cadenza_config::manifest::SeekPoint]) -> String {
    let pairs: Vec<[u64; 2]> = points.iter().map(|p| [p.ms, p.offset]).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use cadenza_config::ladder::Rung;
    use cadenza_config::manifest::{self, AlbumLoudness};

    use super::*;

    fn manifest(track: &str, rungs: &[Rung]) -> Manifest {
        manifest::example(track.parse().unwrap(), rungs)
    }

    fn request() -> ImportRequest {
        ImportRequest {
            artists: vec![ImportArtist { id: "ar1".into(), name: "Artist".into(), popularity: None }],
            albums: vec![ImportAlbum {
                id: "al1".into(),
                title: "Album".into(),
                album_type: AlbumType::Album,
                release_date: Some("2024-02-29".into()),
                release_at: None,
                artist_ids: vec!["ar1".into()],
                popularity: None,
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
                manifest: Some(manifest("t1", &[Rung::K96, Rung::K160])),
                duration_ms: None,
                popularity: Some(7),
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
        let t = &b.tracks[0];
        let audio = t.audio.as_ref().unwrap();
        assert_eq!(audio.files.len(), 2);
        assert_eq!(t.duration_ms, 60_000);
        assert_eq!(t.popularity, Some(7));
        assert_eq!(t.meta.disc_number, 1);
        // Each file carries its own rendition's gain, not the master's.
        let m = manifest("t1", &[Rung::K96, Rung::K160]);
        assert_eq!(audio.loudness, m.loudness);
        for (f, r) in audio.files.iter().zip(&m.renditions) {
            assert_eq!(f.gain_db, r.loudness.gain_db);
            assert_ne!(f.gain_db, m.loudness.gain_db);
            assert_eq!(f.album_gain_db, None);
        }
        // Without explicit features, the manifest's are stored as an object.
        let features: serde_json::Value = serde_json::from_str(&audio.audio_features).unwrap();
        assert_eq!(features["tempo_bpm"], 120.0);
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
        r.tracks[0].manifest.as_mut().unwrap().track_id = "t2".parse().unwrap();
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
        r.tracks[0].manifest.as_mut().unwrap().renditions.clear();
        assert!(message(Batch::validate(r)).contains("tracks[0].manifest.renditions"));

        let mut r = request();
        let dup = r.tracks[0].manifest.as_mut().unwrap().renditions[0].clone();
        r.tracks[0].manifest.as_mut().unwrap().renditions.push(dup);
        assert!(message(Batch::validate(r)).contains("renditions[2].bitrate_kbps"));

        let mut r = request();
        r.tracks[0].manifest.as_mut().unwrap().loudness.gain_db = f64::NAN;
        assert!(message(Batch::validate(r)).contains("loudness.gain_db"));

        let mut r = request();
        r.albums[0].release_at = Some(-5);
        assert!(message(Batch::validate(r)).contains("albums[0].release_at"));

        let mut r = request();
        r.tracks[0].popularity = Some(101);
        assert!(message(Batch::validate(r)).contains("tracks[0].popularity"));

        let mut r = request();
        r.tracks[0].manifest = None;
        assert!(message(Batch::validate(r)).contains("tracks[0].duration_ms: required"));

        let mut r = request();
        r.tracks[0].duration_ms = Some(1);
        assert!(message(Batch::validate(r)).contains("tracks[0].duration_ms: 1 differs"));
    }

    #[test]
    fn metadata_only_tracks() {
        let mut r = request();
        r.tracks[0].manifest = None;
        r.tracks[0].duration_ms = Some(200_000);
        let b = Batch::validate(r).unwrap();
        assert!(b.tracks[0].audio.is_none());
        assert_eq!(b.tracks[0].duration_ms, 200_000);
    }

    #[test]
    fn album_gain_and_explicit_features() {
        let mut r = request();
        let t = &mut r.tracks[0];
        let m = t.manifest.as_mut().unwrap();
        m.album = Some(AlbumLoudness {
            id: "al1".into(),
            tracks: 2,
            members: "0".repeat(64),
            loudness: m.loudness,
        });
        for (i, rendition) in m.renditions.iter_mut().enumerate() {
            let gain_db = -3.0 - f64::from(u8::try_from(i).unwrap());
            rendition.album_loudness = Some(Loudness { gain_db, ..rendition.loudness });
        }
        t.audio_features = Some(serde_json::json!({"tempo": 99}).as_object().unwrap().clone());
        let b = Batch::validate(r).unwrap();
        let audio = b.tracks[0].audio.as_ref().unwrap();
        let gains: Vec<Option<f64>> = audio.files.iter().map(|f| f.album_gain_db).collect();
        assert_eq!(gains, vec![Some(-3.0), Some(-4.0)]);
        assert_eq!(audio.audio_features, r#"{"tempo":99}"#);
    }

    #[test]
    fn metadata_alone_is_validated_with_its_path() {
        let artists = vec!["ar1".to_owned()];
        let fields = MetaFields {
            album_id: "al1",
            title: "  Song ",
            track_number: 2,
            disc_number: None,
            explicit: None,
            isrc: Some("se-xyz-24-00001"),
            artist_ids: &artists,
        };
        let meta = TrackMeta::validate("tracks[4]", fields).unwrap();
        assert_eq!((meta.title.as_str(), meta.disc_number), ("Song", 1));
        assert_eq!(meta.isrc.as_deref(), Some("SEXYZ2400001"));
        let bad = TrackMeta::validate("tracks[4]", MetaFields { album_id: "a/b", ..fields }).unwrap_err();
        assert!(format!("{bad:?}").contains("tracks[4].album_id"), "{bad:?}");
    }
}
