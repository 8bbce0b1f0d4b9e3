//! The cadenza transcoder: a master in, a published Ogg Vorbis ladder out.
//!
//! ```text
//! master (wav aiff flac mp3 m4a ogg) ─► decode (symphonia) ─► loudness (ebur128, EBU R128)
//!   ─► mix + resample once per output format (rubato)
//!   ─► encode 24/96/160/320 kbps in parallel (vorbis_rs, ABR)
//!   ─► check every file with our own Ogg parser (CRCs, granules, seek index)
//!   ─► audio/<file_id>.ogg × 4, then tracks/<track_id>/manifest.json
//! ```
//!
//! - [`transcode`]: the CPU part only; returns the manifest and the bytes.
//! - [`ingest`]: transcode and publish to a store, audio first and the
//!   manifest last; re-ingesting an unchanged master is a no-op
//!   ([`Outcome::Unchanged`]).
//! - [`run`]: `cadenza transcode` — open the configured store and ingest a
//!   list of masters.
//! - [`ogg`]: the Ogg page parser (safe on arbitrary bytes; fuzzable).
//! - [`synth`]: deterministic demo music written as WAV/FLAC masters.
//!
//! The ladder is [`cadenza_config::ladder::LADDER`]: 96/160/320 kbps stereo
//! at 44.1 kHz (48 kHz masters stay 48 kHz; any other rate is resampled to
//! 44.1 kHz) and 24 kbps as 22.05 kHz mono (`(L + R) / 2`). Output is
//! deterministic: the Ogg serial of each file is derived from the master's
//! SHA-256 and the rung, so the same master always gives byte-identical
//! files and therefore the same content-addressed file ids. Each file carries
//! ReplayGain 2.0 track gain/peak tags; the manifest carries the master's
//! integrated loudness, true peak, and the playback gain to −14 LUFS capped
//! so the true peak stays ≤ −1 dBTP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cadenza_transcoder::{Outcome, ingest, synth};
//! let dir = std::path::Path::new("/tmp/masters");
//! let tracks = synth::write_demo_album(dir, &synth::DemoTrackSpec::album(1, 1, 20))?;
//! let store = cadenza_origin::open_store("file:///tmp/store")?;
//! let track = "demo-1".parse()?;
//! let report = ingest(&store, &tracks[0].path, &track, 0).await?;
//! assert_eq!(report.outcome, Outcome::Published);
//! let again = ingest(&store, &tracks[0].path, &track, 0).await?;
//! assert_eq!(again.outcome, Outcome::Unchanged);
//! # Ok(()) }
//! ```
//!
//! # Known limits
//!
//! - The whole master is decoded into memory as planar `f32` (about 21 MB
//!   per stereo minute at 44.1 kHz), plus one resampled copy per output
//!   format. Fine for songs; masters are capped at [`MAX_DURATION_SECS`]
//!   (3 h), but a long or high-rate master needs that much memory
//!   (streaming decode is a later issue).
//! - Masters may be WAV (integer or float PCM), AIFF, FLAC, MP3, AAC or ALAC
//!   in MP4, or Ogg Vorbis; 1 to 8 channels (3–8 are mixed down to stereo
//!   with the ITU-R BS.775 weights: centre and surrounds at −3 dB, LFE
//!   dropped, scaled so nothing clips); 8–384 kHz; at least 400 ms long (one
//!   loudness gating block). MP3 and AAC keep their encoder's priming and
//!   padding (symphonia does not apply MP4 edit lists). A WAV whose header
//!   declares more data than the file holds (as streaming writers do) is
//!   rejected as truncated.
//! - Loudness is measured once, on the master; the ReplayGain tags of every
//!   rendition carry the master's values.
//! - libvorbis' ABR mode holds the nominal bitrate on real material, but on
//!   unnaturally clean signals (synthetic tones with no noise floor) it
//!   undershoots at 160 and 320 kbps, up to −17 % in our measurements.
//! - No audio features (tempo, key, …) yet.

mod decode;
mod encode;
mod error;
mod loudness;
pub mod ogg;
mod pipeline;
mod publish;
mod resample;
pub mod synth;

use std::path::Path;

use bytes::Bytes;
use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::manifest::Manifest;

pub use decode::{MAX_DURATION_SECS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
pub use encode::encoder_id;
pub use error::TranscodeError;
pub use loudness::{CEILING_DBTP, REPLAYGAIN_REFERENCE_LUFS, TARGET_LUFS, gain_db};
pub use pipeline::RENDITION_MIME;
pub use publish::{IngestReport, Outcome, ingest, run};

/// A transcoded master: its manifest and the bytes of every file it names,
/// in ladder order (lowest bitrate first).
#[derive(Clone, Debug, PartialEq)]
pub struct Transcoded {
    pub manifest: Manifest,
    pub files: Vec<(FileId, Bytes)>,
}

/// Decode, measure and encode `master` as the ladder for `track_id`, using up
/// to `threads` encoder threads (`0` = one per rung). CPU only: reads the
/// file, writes nothing. Every output file has passed our own Ogg check.
pub fn transcode(master: &Path, track_id: &TrackId, threads: usize) -> Result<Transcoded, TranscodeError> {
    let bytes =
        std::fs::read(master).map_err(|source| TranscodeError::Read { path: master.to_owned(), source })?;
    pipeline::transcode_bytes(master, Bytes::from(bytes), track_id, threads)
}
