//! The cadenza transcoder: masters in, published Ogg Vorbis ladders out.
//!
//! ```text
//! master (wav aiff flac mp3 m4a ogg), streamed chunk by chunk (symphonia)
//!   ├─► master loudness (ebur128: I, LRA, true peak)
//!   └─► mix + resample once per output format (rubato) ─► audio features (22.05 kHz mono)
//!         └─► encode 24/96/160/320 kbps in parallel (vorbis_rs) ─► raw files on disk
//!   ─► again for rungs whose bitrate is off (calibrated VBR, 2-3 passes)
//!   ─► decode every rendition back (symphonia) and meter it ─► album loudness, if an album
//!   ─► ReplayGain tags written, pages checked and hashed (our Ogg code) ─► file id
//!   ─► audio/<file_id>.ogg × 4, then tracks/<track_id>/manifest.json
//! ```
//!
//! - [`transcode`] / [`transcode_album`]: the CPU and local-disk part;
//!   returns manifests and files in a work directory.
//! - [`ingest`] / [`ingest_album`]: transcode and publish to a store, audio
//!   first and manifests last; re-ingesting an unchanged master (or album)
//!   is a no-op ([`Outcome::Unchanged`]).
//! - [`run`]: `cadenza transcode` on a list of masters.
//! - [`run_worker`]: `cadenza transcode --worker`, taking ingest jobs from
//!   the control plane under leases ([`cadenza_config::ingest`]).
//! - [`ogg`]: the Ogg page parser, streaming checker and retagger (safe on
//!   arbitrary bytes; fuzzable).
//! - [`synth`]: deterministic demo music written as WAV/FLAC masters.
//!
//! The ladder is [`cadenza_config::ladder::LADDER`]: 96/160/320 kbps stereo
//! at 44.1 kHz (48 kHz masters stay 48 kHz) and 24 kbps as 22.05 kHz mono
//! (`(L + R) / 2`). Each stereo rung is calibrated VBR: encoded in libvorbis'
//! quality mode, measured, and encoded again with a corrected target until
//! its file is within 1.5 % of the nominal bitrate, at ~60 % of the CPU of
//! ABR (see `calibrate.rs`); 24 kbps is ABR. Memory is a few chunks whatever
//! the master's length (every stage is a thread joined to the next by a
//! bounded channel); encoded files live in a work directory, never in memory.
//! Output is deterministic: each file's Ogg serial derives from the master's
//! SHA-256 and the rung. Loudness is measured on the master and on every
//! rendition as decoded; each file's ReplayGain 2.0 tags and each rendition's
//! playback gain (to −14 LUFS, true peak ≤ −1 dBTP) come from its own
//! measurement. The full story is in `docs/transcoder.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cadenza_transcoder::{Options, Outcome, ingest, synth};
//! let dir = std::path::Path::new("/tmp/masters");
//! let tracks = synth::write_demo_album(dir, &synth::DemoTrackSpec::album(1, 1, 20))?;
//! let store = cadenza_origin::open_store("file:///tmp/store")?;
//! let track = "demo-1".parse()?;
//! let report = ingest(&store, &tracks[0].path, &track, &Options::default()).await?;
//! assert_eq!(report.outcome, Outcome::Published);
//! let again = ingest(&store, &tracks[0].path, &track, &Options::default()).await?;
//! assert_eq!(again.outcome, Outcome::Unchanged);
//! # Ok(()) }
//! ```
//!
//! # Known limits
//!
//! - Masters may be WAV (integer or float PCM), AIFF, FLAC, MP3, AAC or ALAC
//!   in MP4, or Ogg Vorbis; 1 to 8 channels (3–8 are mixed down to stereo
//!   with the ITU-R BS.775 weights: centre and surrounds at −3 dB, LFE
//!   dropped, scaled so nothing clips); 8–384 kHz; 400 ms to 3 h. MP3 and
//!   AAC keep their encoder's priming and padding (symphonia does not apply
//!   MP4 edit lists). A WAV whose header declares more data than the file
//!   holds (as streaming writers do) is rejected as truncated.
//! - On unnaturally clean signals (synthetic tones with no noise floor)
//!   libvorbis finds nothing to spend 160 or 320 kbps on; calibration then
//!   asks for the highest target and falls back to ABR, which undershoots
//!   too (up to −17 % in our measurements).
//! - The same master gives the same bytes on the same build and CPU family;
//!   the FFTs pick SIMD code at run time, so another CPU may round
//!   differently (and then name different, equally valid, files).

mod calibrate;
mod decode;
mod encode;
mod error;
mod features;
mod loudness;
pub mod ogg;
mod pipeline;
mod progress;
mod publish;
mod resample;
pub mod synth;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::manifest::Manifest;

pub use decode::{MAX_DURATION_SECS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
pub use encode::encoder_id;
pub use error::TranscodeError;
pub use loudness::{CEILING_DBTP, REPLAYGAIN_REFERENCE_LUFS, TARGET_LUFS, gain_db};
pub use pipeline::RENDITION_MIME;
pub use progress::{Progress, ProgressEvent};
pub use publish::{IngestReport, Outcome, ingest, ingest_album, run};
pub use worker::{WorkerError, run_worker};

/// Where the transcoder keeps its files while it works.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Directory for work files: each run makes (and removes) its own
    /// subdirectory there. Default: the system's temporary directory. Needs
    /// room for about 1.2× the ladder's size (a few MB per track minute).
    pub work_dir: Option<PathBuf>,
}

/// A private directory for one run's files, removed when the last
/// [`Transcoded`] using it is dropped.
#[derive(Debug)]
pub struct WorkDir(tempfile::TempDir);

impl WorkDir {
    /// A fresh directory under `options.work_dir` (or the system's).
    pub fn new(options: &Options) -> Result<Self, TranscodeError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("cadenza-transcode-");
        let dir = match &options.work_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        };
        let parent = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        dir.map(Self).map_err(|source| TranscodeError::Work { path: parent, source })
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A transcoded master: its manifest and every file it names, written to
/// a work directory that lives as long as this value.
#[derive(Clone, Debug)]
pub struct Transcoded {
    pub manifest: Manifest,
    /// In ladder order (lowest bitrate first), as in the manifest.
    pub files: Vec<EncodedFile>,
    work: Arc<WorkDir>,
}

/// One finished rendition on local disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFile {
    pub file_id: FileId,
    pub path: PathBuf,
    pub size: u64,
}

impl Transcoded {
    /// The bytes of file `i` (tests and tools; publishing streams them).
    pub fn read_file(&self, i: usize) -> std::io::Result<Vec<u8>> {
        let file = self.files.get(i).ok_or_else(|| std::io::Error::other(format!("no file {i}")))?;
        std::fs::read(&file.path)
    }

    /// The work directory holding the files.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }
}

/// Decode, measure and encode `master` as the ladder for `track_id`. CPU
/// and local disk only: reads the file, writes its renditions to a fresh
/// work directory under the system's temporary directory. Every output file
/// has been decoded back and checked.
pub fn transcode(master: &Path, track_id: &TrackId) -> Result<Transcoded, TranscodeError> {
    let tracks = [(track_id.clone(), master.to_owned())];
    let mut out = transcode_album(&tracks, None, &Options::default(), &())?;
    out.pop().ok_or_else(|| TranscodeError::Task { path: master.to_owned(), reason: "no output".into() })
}

/// Transcode several masters together. With `album_id`, they are one
/// album: each file also carries `REPLAYGAIN_ALBUM_*` tags and each
/// manifest the album's loudness, measured over all of them. Any failure
/// fails the whole call (an album is published whole or not at all).
pub fn transcode_album(
    tracks: &[(TrackId, PathBuf)],
    album_id: Option<&str>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Transcoded>, TranscodeError> {
    let mut jobs = Vec::with_capacity(tracks.len());
    for (index, (track_id, path)) in tracks.iter().enumerate() {
        progress.event(index, ProgressEvent::Hashing);
        jobs.push(pipeline::Job {
            track_id: track_id.clone(),
            path: path.clone(),
            sha256: pipeline::sha256_file(path)?,
        });
    }
    let work = Arc::new(WorkDir::new(options)?);
    pipeline::transcode_jobs(&jobs, album_id, work, progress)
}
