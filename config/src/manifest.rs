//! A track's manifest: `tracks/<track_id>/manifest.json`.
//!
//! Written by the transcoder after every audio object it names is in the
//! store, so a reader that finds a manifest finds all its files. Read by the
//! control plane when a track is registered, and by tools.
//!
//! Version 2 added, per rendition, the loudness measured on that file (a
//! rendition's own gain: the 24 kbps rung measures several LU below the
//! master), album loudness when a whole album is ingested together, the
//! loudness range, the audio features and the encoder's vendor string.

use serde::{Deserialize, Serialize};

use crate::ids::{FileId, TrackId, is_opaque_id};
use crate::ladder::Rung;

/// Format version of [`Manifest`]; bumped on any incompatible change.
pub const MANIFEST_VERSION: u32 = 2;
/// Length of [`AudioFeatures::timbre`]: the mean of 13 MFCCs, then their
/// standard deviations.
pub const TIMBRE_LEN: usize = 26;

/// The published ladder of one track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`] for manifests this build writes.
    pub version: u32,
    pub track_id: TrackId,
    /// The master this ladder was made from.
    pub source: Source,
    /// Loudness of the master (EBU R128) and the playback gain derived from it.
    pub loudness: Loudness,
    /// Set when the track was ingested together with the rest of its album:
    /// the album it belongs to and the loudness of all its masters as one
    /// programme (EBU R128 over the concatenation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<AlbumLoudness>,
    /// Content descriptors for recommendations, from the same decode.
    pub features: AudioFeatures,
    /// Encoder name and settings; a different value means different bytes.
    pub encoder: String,
    /// The vendor string libvorbis wrote into every file's comment header.
    pub encoder_vendor: String,
    /// One entry per rung, lowest bitrate first.
    pub renditions: Vec<Rendition>,
}

/// What the master was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Lower-case hex SHA-256 of the master file's bytes.
    pub sha256: String,
    /// Container as detected by the decoder (`wav`, `flac`, …).
    pub format: String,
    pub sample_rate: u32,
    pub channels: u8,
    /// Frames (samples per channel) decoded from the master.
    pub frames: u64,
    pub duration_ms: u64,
}

/// Loudness per EBU R128 / ITU-R BS.1770 (and EBU Tech 3342 for the range).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loudness {
    /// Integrated loudness in LUFS.
    pub integrated_lufs: f64,
    /// Loudness range (LRA) in LU.
    pub loudness_range_lu: f64,
    /// True peak in dBTP (4× oversampled below 96 kHz).
    pub true_peak_dbtp: f64,
    /// Gain in dB that brings playback to −14 LUFS without pushing the true
    /// peak above −1 dBTP: `min(−14 − I, −1 − TP)`.
    pub gain_db: f64,
}

/// Album loudness: all the album's tracks measured as one programme.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlbumLoudness {
    /// The album id the tracks were ingested under (`[A-Za-z0-9_-]{1,64}`).
    pub id: String,
    /// Tracks measured together.
    pub tracks: u32,
    /// Which tracks those were: lower-case hex SHA-256 over, for each track
    /// in order, its id, a tab, its master's SHA-256 (hex) and a newline.
    /// Manifests with the same `id` and `members` were measured together;
    /// see [`album_members`].
    pub members: String,
    /// Of the album's masters.
    pub loudness: Loudness,
}

/// [`AlbumLoudness::members`] of an album of `(track id, master SHA-256)`
/// pairs, in order.
pub fn album_members<'a>(tracks: impl IntoIterator<Item = (&'a TrackId, &'a [u8; 32])>) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for (id, sha) in tracks {
        h.update(id.as_str().as_bytes());
        h.update(b"\t");
        h.update(hex::encode(sha).as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Audio features for content-based recommendations. Tempo, energy,
/// brightness, noisiness and timbre are computed on the track mixed to mono
/// at 22.05 kHz (so nothing above 11 kHz counts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioFeatures {
    pub duration_ms: u64,
    /// Of the master, as in [`Manifest::loudness`].
    pub integrated_lufs: f64,
    /// Of the master, as in [`Manifest::loudness`].
    pub loudness_range_lu: f64,
    /// Estimated tempo in beats per minute (30–300); `0` when no beat was
    /// found.
    pub tempo_bpm: f64,
    /// How clearly the tempo stands out, 0–1.
    pub tempo_confidence: f64,
    /// Root-mean-square level of the signal, 0–1 (a full-scale sine is
    /// 0.707).
    pub energy: f64,
    /// Spectral centroid ("brightness") in Hz, magnitude-weighted over the
    /// track.
    pub spectral_centroid_hz: f64,
    /// Sign changes per sample, 0–1 (a tone of f Hz gives 2f / 22 050; white
    /// noise about 0.5).
    pub zero_crossing_rate: f64,
    /// [`TIMBRE_LEN`] numbers: the mean of each of 13 MFCCs over the track,
    /// then each one's standard deviation.
    pub timbre: Vec<f64>,
}

/// One encoded file of the ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// Nominal bitrate: 24, 96, 160 or 320.
    pub bitrate_kbps: Rung,
    pub file_id: FileId,
    /// Bytes of `audio/<file_id>.ogg`.
    pub size: u64,
    /// Frames (samples per channel) in the file: the last page's granule.
    pub frames: u64,
    pub duration_ms: u64,
    /// Size × 8 / duration, in kbit/s.
    pub achieved_kbps: f64,
    pub sample_rate: u32,
    pub channels: u8,
    /// `audio/ogg; codecs=vorbis`
    pub mime: String,
    /// Loudness of this file as decoded, and its playback gain. Players
    /// apply this gain, not the master's.
    pub loudness: Loudness,
    /// This rung of every track of the album measured as one programme;
    /// set when [`Manifest::album`] is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album_loudness: Option<Loudness>,
    /// Seek index: for about every second of audio, the byte offset of the
    /// Ogg page on which audio at `ms` begins. Ascending in both fields; the
    /// first point is the first audio page (after the headers).
    pub seek: Vec<SeekPoint>,
}

/// Time → byte offset of an Ogg page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeekPoint {
    /// Time of the first sample that completes on this page, in ms.
    pub ms: u64,
    /// Byte offset of the page's `OggS` capture pattern.
    pub offset: u64,
}

impl Loudness {
    fn check(&self, field: &str) -> Result<(), String> {
        for (name, v) in [
            ("integrated_lufs", self.integrated_lufs),
            ("loudness_range_lu", self.loudness_range_lu),
            ("true_peak_dbtp", self.true_peak_dbtp),
            ("gain_db", self.gain_db),
        ] {
            if !v.is_finite() {
                return Err(format!("{field}.{name}: {v} is not finite"));
            }
        }
        if self.loudness_range_lu < 0.0 {
            return Err(format!("{field}.loudness_range_lu: {} is negative", self.loudness_range_lu));
        }
        Ok(())
    }
}

impl AudioFeatures {
    fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("integrated_lufs", self.integrated_lufs),
            ("loudness_range_lu", self.loudness_range_lu),
            ("tempo_bpm", self.tempo_bpm),
            ("tempo_confidence", self.tempo_confidence),
            ("energy", self.energy),
            ("spectral_centroid_hz", self.spectral_centroid_hz),
            ("zero_crossing_rate", self.zero_crossing_rate),
        ] {
            if !v.is_finite() {
                return Err(format!("features.{name}: {v} is not finite"));
            }
        }
        if self.timbre.len() != TIMBRE_LEN {
            return Err(format!("features.timbre: {} values, expected {TIMBRE_LEN}", self.timbre.len()));
        }
        if let Some(i) = self.timbre.iter().position(|v| !v.is_finite()) {
            return Err(format!("features.timbre[{i}]: not finite"));
        }
        Ok(())
    }
}

impl Manifest {
    /// Check what the type cannot: the version, at least one rendition,
    /// rungs unique and ascending, finite numbers (JSON has no NaN: a
    /// non-finite value would be written as `null` and never read back),
    /// album loudness on every rendition exactly when the manifest has an
    /// album, and each seek index ascending in both fields. The error names
    /// the field.
    pub fn check(&self) -> Result<(), String> {
        if self.version != MANIFEST_VERSION {
            return Err(format!("version: {} is not {MANIFEST_VERSION}", self.version));
        }
        if self.renditions.is_empty() {
            return Err("renditions: empty".into());
        }
        self.loudness.check("loudness")?;
        if let Some(album) = &self.album {
            if !is_opaque_id(&album.id, 64) {
                return Err("album.id: must be 1-64 characters of [A-Za-z0-9_-]".into());
            }
            if album.members.len() != 64
                || !album.members.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err("album.members: must be 64 lower-case hex digits".into());
            }
            album.loudness.check("album.loudness")?;
        }
        self.features.check()?;
        for (i, r) in self.renditions.iter().enumerate() {
            if i > 0 && self.renditions[i - 1].bitrate_kbps >= r.bitrate_kbps {
                return Err(format!("renditions[{i}].bitrate_kbps: rungs must be unique and ascending"));
            }
            if !r.achieved_kbps.is_finite() {
                return Err(format!("renditions[{i}].achieved_kbps: {} is not finite", r.achieved_kbps));
            }
            if r.size == 0 || r.sample_rate == 0 || r.channels == 0 {
                return Err(format!("renditions[{i}]: size, sample_rate and channels must be positive"));
            }
            r.loudness.check(&format!("renditions[{i}].loudness"))?;
            match (&self.album, &r.album_loudness) {
                (Some(_), Some(l)) => l.check(&format!("renditions[{i}].album_loudness"))?,
                (None, None) => {}
                (Some(_), None) => return Err(format!("renditions[{i}].album_loudness: missing")),
                (None, Some(_)) => {
                    return Err(format!(
                        "renditions[{i}].album_loudness: set, but the manifest has no album"
                    ));
                }
            }
            if r.seek.windows(2).any(|w| w[0].ms >= w[1].ms || w[0].offset >= w[1].offset) {
                return Err(format!("renditions[{i}].seek: not ascending"));
            }
            if r.seek.last().is_some_and(|p| p.offset >= r.size) {
                return Err(format!("renditions[{i}].seek: offset past the end of the file"));
            }
        }
        Ok(())
    }

    /// The rendition for `rung`, if published.
    pub fn rendition(&self, rung: Rung) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.bitrate_kbps == rung)
    }
}

/// A well-formed manifest with made-up numbers, for tests and examples in
/// any crate: one rendition per rung in `rungs` (ascending), no album.
pub fn example(track_id: TrackId, rungs: &[Rung]) -> Manifest {
    let loudness =
        Loudness { integrated_lufs: -18.0, loudness_range_lu: 6.0, true_peak_dbtp: -2.0, gain_db: 1.0 };
    Manifest {
        version: MANIFEST_VERSION,
        track_id,
        source: Source {
            sha256: "00".repeat(32),
            format: "wav".into(),
            sample_rate: 44_100,
            channels: 2,
            frames: 44_100 * 60,
            duration_ms: 60_000,
        },
        loudness,
        album: None,
        features: AudioFeatures {
            duration_ms: 60_000,
            integrated_lufs: -18.0,
            loudness_range_lu: 6.0,
            tempo_bpm: 120.0,
            tempo_confidence: 0.5,
            energy: 0.2,
            spectral_centroid_hz: 1500.0,
            zero_crossing_rate: 0.05,
            timbre: vec![0.0; TIMBRE_LEN],
        },
        encoder: "example".into(),
        encoder_vendor: "example vendor".into(),
        renditions: rungs
            .iter()
            .map(|&rung| {
                let size = u64::from(rung.kbps()) * 125 * 60;
                Rendition {
                    bitrate_kbps: rung,
                    file_id: FileId::of_content(format!("{rung}").as_bytes()),
                    size,
                    frames: u64::from(rung.output_rate(44_100)) * 60,
                    duration_ms: 60_000,
                    achieved_kbps: f64::from(rung.kbps()),
                    sample_rate: rung.output_rate(44_100),
                    channels: rung.channels(),
                    mime: "audio/ogg; codecs=vorbis".into(),
                    loudness: Loudness { gain_db: 1.0 + f64::from(rung.kbps()) / 1000.0, ..loudness },
                    album_loudness: None,
                    seek: vec![
                        SeekPoint { ms: 0, offset: 4000 },
                        SeekPoint { ms: 1000, offset: 4000 + size / 60 },
                    ],
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_unknown_fields_rejected() {
        let m = example("t1".parse().unwrap(), &[Rung::K24, Rung::K96]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert_eq!(m.rendition(Rung::K96).unwrap().size, 96 * 125 * 60);
        assert!(m.rendition(Rung::K320).is_none());
        let extra = json.replacen("{", "{\"surprise\":1,", 1);
        assert!(serde_json::from_str::<Manifest>(&extra).is_err());
        assert_eq!(m.check(), Ok(()));
    }

    #[test]
    fn album_members_name_the_tracks_in_order() {
        let (a, b): (TrackId, TrackId) = ("a".parse().unwrap(), "b".parse().unwrap());
        let (x, y) = ([1u8; 32], [2u8; 32]);
        let ab = album_members([(&a, &x), (&b, &y)]);
        assert_eq!(ab.len(), 64);
        assert_eq!(ab, album_members([(&a, &x), (&b, &y)]));
        assert_ne!(ab, album_members([(&b, &y), (&a, &x)]), "order counts");
        assert_ne!(ab, album_members([(&a, &x), (&b, &x)]), "masters count");
        assert_ne!(ab, album_members([(&a, &x)]));
    }

    #[test]
    fn check_names_the_field() {
        let m = example("t1".parse().unwrap(), &[Rung::K24, Rung::K96]);
        type Break = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Break)> = vec![
            ("version", Box::new(|m| m.version = 1)),
            ("loudness.gain_db", Box::new(|m| m.loudness.gain_db = f64::NAN)),
            ("loudness.loudness_range_lu", Box::new(|m| m.loudness.loudness_range_lu = -1.0)),
            (
                "renditions[1].loudness.true_peak_dbtp",
                Box::new(|m| m.renditions[1].loudness.true_peak_dbtp = f64::INFINITY),
            ),
            ("ascending", Box::new(|m| m.renditions.push(m.renditions[0].clone()))),
            ("seek", Box::new(|m| m.renditions[0].seek.push(SeekPoint { ms: 500, offset: 100 }))),
            ("renditions", Box::new(|m| m.renditions.clear())),
            ("features.timbre", Box::new(|m| m.features.timbre.pop().map(drop).unwrap_or(()))),
            ("features.tempo_bpm", Box::new(|m| m.features.tempo_bpm = f64::NAN)),
            (
                "renditions[0].album_loudness: missing",
                Box::new(|m| {
                    m.album = Some(AlbumLoudness {
                        id: "a1".into(),
                        tracks: 2,
                        members: "0".repeat(64),
                        loudness: m.loudness,
                    })
                }),
            ),
            ("no album", Box::new(|m| m.renditions[0].album_loudness = Some(m.loudness))),
            (
                "album.members",
                Box::new(|m| {
                    m.album = Some(AlbumLoudness {
                        id: "a1".into(),
                        tracks: 2,
                        members: "XYZ".into(),
                        loudness: m.loudness,
                    });
                    for r in &mut m.renditions {
                        r.album_loudness = Some(r.loudness);
                    }
                }),
            ),
            (
                "album.id",
                Box::new(|m| {
                    m.album = Some(AlbumLoudness {
                        id: "a/1".into(),
                        tracks: 2,
                        members: "0".repeat(64),
                        loudness: m.loudness,
                    });
                    for r in &mut m.renditions {
                        r.album_loudness = Some(r.loudness);
                    }
                }),
            ),
        ];
        for (want, break_it) in cases {
            let mut bad = m.clone();
            break_it(&mut bad);
            let err = bad.check().expect_err(want);
            assert!(err.contains(want), "{want}: {err}");
        }
        let mut album = m;
        album.album = Some(AlbumLoudness {
            id: "a1".into(),
            tracks: 2,
            members: "0".repeat(64),
            loudness: album.loudness,
        });
        for r in &mut album.renditions {
            r.album_loudness = Some(r.loudness);
        }
        assert_eq!(album.check(), Ok(()));
    }
}
