//! The one error type of the crate.

use std::path::PathBuf;

use cadenza_config::ids::TrackId;
use cadenza_config::ladder::Rung;

/// Why a master could not be transcoded or published.
///
/// Every message names the master file and what was wrong with it. Variants
/// split "the input is bad" ([`TranscodeError::is_bad_input`]: fix the file,
/// retrying will not help) from failures of this machine or the store.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The master could not be read from disk.
    #[error("cannot read master {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not an audio file any decoder recognises.
    #[error("master {} is not a recognised audio file: {reason}", path.display())]
    NotAudio { path: PathBuf, reason: String },
    /// Audio, but a kind this transcoder does not take (container, codec,
    /// channel layout, sample rate).
    #[error("master {} is not supported: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// The file is damaged or cut short.
    #[error("master {} is corrupt or truncated: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The master decodes to zero frames.
    #[error("master {} contains no audio", path.display())]
    Empty { path: PathBuf },
    /// Every sample is zero, or so quiet that everything is below the
    /// −70 LUFS absolute gate: there is nothing to measure or to hear.
    #[error("master {} is silent: digital silence or everything below -70 LUFS", path.display())]
    Silent { path: PathBuf },
    /// Longer than [`crate::MAX_DURATION_SECS`].
    #[error(
        "master {} lasts {seconds} s, longer than the {limit} s limit",
        path.display()
    )]
    TooLong { path: PathBuf, seconds: u64, limit: u64 },
    /// Resampling failed (a bug or an absurd rate, never a network problem).
    #[error("resampling master {} from {from} Hz to {to} Hz failed: {reason}", path.display())]
    Resample { path: PathBuf, from: u32, to: u32, reason: String },
    /// The Vorbis encoder refused or failed.
    #[error("encoding master {} at {rung} kbps failed: {reason}", path.display())]
    Encode { path: PathBuf, rung: Rung, reason: String },
    /// Our own check of an encoded file failed; nothing was published.
    #[error("the {rung} kbps rendition of master {} is invalid: {reason}", path.display())]
    BadOutput { path: PathBuf, rung: Rung, reason: String },
    /// The same track id twice in one call.
    #[error("track {track} is given twice: {} and {}", first.display(), second.display())]
    DuplicateTrack { track: TrackId, first: PathBuf, second: PathBuf },
    /// The store could not be opened (the message names its URL).
    #[error("opening the transcoder's store: {0}")]
    OpenStore(#[source] Box<cadenza_origin::StoreError>),
    /// Reading or writing the store failed.
    #[error("publishing master {} as track {track}: {source}", path.display())]
    Store {
        path: PathBuf,
        track: TrackId,
        #[source]
        source: Box<cadenza_origin::StoreError>,
    },
    /// Reading or writing a work file failed (disk full, permissions).
    #[error("transcoder work file {}: {source}", path.display())]
    Work {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The blocking transcode task panicked or was cancelled.
    #[error("transcoding master {} did not finish: {reason}", path.display())]
    Task { path: PathBuf, reason: String },
}

impl TranscodeError {
    /// True when the master itself is at fault: retrying the same file will
    /// fail the same way.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            TranscodeError::Read { .. }
                | TranscodeError::NotAudio { .. }
                | TranscodeError::Unsupported { .. }
                | TranscodeError::Corrupt { .. }
                | TranscodeError::Empty { .. }
                | TranscodeError::Silent { .. }
                | TranscodeError::TooLong { .. }
                | TranscodeError::DuplicateTrack { .. }
        )
    }
}
