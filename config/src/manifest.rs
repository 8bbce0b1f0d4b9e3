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
    }
}
