//! A track's manifest: `tracks/<track_id>/manifest.json`.
//!
//! Written by the transcoder after every audio object it names is in the
//! store, so a reader that finds a manifest finds all its files. Read by the
//! control plane when a track is registered, and by tools.

use serde::{Deserialize, Serialize};

use crate::ids::{FileId, TrackId};
use crate::ladder::Rung;

/// Format version of [`Manifest`]; bumped on any incompatible change.
pub const MANIFEST_VERSION: u32 = 1;

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
    /// Encoder name and settings; a different value means different bytes.
    pub encoder: String,
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

/// Loudness per EBU R128 / ITU-R BS.1770.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loudness {
    /// Integrated loudness in LUFS.
    pub integrated_lufs: f64,
    /// True peak in dBTP.
    pub true_peak_dbtp: f64,
    /// Gain in dB that brings playback to −14 LUFS without pushing the true
    /// peak above −1 dBTP.
    pub gain_db: f64,
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

impl Manifest {
    /// Check what the type cannot: the version, at least one rendition,
    /// rungs unique and ascending, finite numbers (JSON has no NaN: a
    /// non-finite value would be written as `null` and never read back),
    /// and each seek index ascending in both fields. The error names the
    /// field.
    pub fn check(&self) -> Result<(), String> {
        if self.version != MANIFEST_VERSION {
            return Err(format!("version: {} is not {MANIFEST_VERSION}", self.version));
        }
        if self.renditions.is_empty() {
            return Err("renditions: empty".into());
        }
        let l = &self.loudness;
        for (name, v) in [
            ("integrated_lufs", l.integrated_lufs),
            ("true_peak_dbtp", l.true_peak_dbtp),
            ("gain_db", l.gain_db),
        ] {
            if !v.is_finite() {
                return Err(format!("loudness.{name}: {v} is not finite"));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_unknown_fields_rejected() {
        let m = Manifest {
            version: MANIFEST_VERSION,
            track_id: "t1".parse().unwrap(),
            source: Source {
                sha256: "00".repeat(32),
                format: "wav".into(),
                sample_rate: 44_100,
                channels: 2,
                frames: 44_100,
                duration_ms: 1000,
            },
            loudness: Loudness { integrated_lufs: -20.0, true_peak_dbtp: -3.0, gain_db: 2.0 },
            encoder: "test".into(),
            renditions: vec![Rendition {
                bitrate_kbps: Rung::K96,
                file_id: FileId::of_content(b"x"),
                size: 12_000,
                frames: 44_100,
                duration_ms: 1000,
                achieved_kbps: 96.0,
                sample_rate: 44_100,
                channels: 2,
                mime: "audio/ogg; codecs=vorbis".into(),
                seek: vec![SeekPoint { ms: 0, offset: 4000 }],
            }],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert_eq!(m.rendition(Rung::K96).unwrap().size, 12_000);
        assert!(m.rendition(Rung::K320).is_none());
        let extra = json.replacen("{", "{\"surprise\":1,", 1);
        assert!(serde_json::from_str::<Manifest>(&extra).is_err());

        assert_eq!(m.check(), Ok(()));
        let mut bad = m.clone();
        bad.loudness.gain_db = f64::NAN;
        assert!(bad.check().unwrap_err().starts_with("loudness.gain_db"));
        let mut bad = m.clone();
        bad.renditions.push(bad.renditions[0].clone());
        assert!(bad.check().unwrap_err().contains("ascending"));
        let mut bad = m.clone();
        bad.renditions[0].seek.push(SeekPoint { ms: 500, offset: 100 });
        assert!(bad.check().unwrap_err().contains("seek"));
        let mut bad = m;
        bad.renditions.clear();
        assert!(bad.check().is_err());
    }
}
