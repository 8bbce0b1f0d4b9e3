//! Progress reports, for a progress bar or a job's status.

use std::path::Path;

/// What the transcoder is doing with track `index` of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// Hashing the master (to name the output and skip unchanged masters).
    Hashing,
    /// Decoding and encoding: `frames_done` of the master so far, of
    /// `frames_total` if the container declares it.
    Decoding { frames_done: u64, frames_total: Option<u64>, sample_rate: u32 },
    /// Another pass over the master for `rungs` renditions whose bitrate
    /// was off (pass 2, 3, …; see `docs/transcoder.md`).
    Calibrating { pass: u32, rungs: u32 },
    /// Decoding the renditions back to measure their loudness.
    Measuring,
    /// Writing the tagged files.
    Tagging,
    /// Uploading to the store.
    Publishing,
    /// Audio and manifest are in the store.
    Published,
    /// The store already had this master's ladder; nothing was done.
    Unchanged,
}

/// Receives [`ProgressEvent`]s from the transcoding threads. `()` ignores
/// them.
pub trait Progress: Send + Sync {
    /// Called often (every ~0.2 s of audio while decoding); keep it cheap.
    fn event(&self, track: usize, event: ProgressEvent);

    /// Called once per track before any event, with the master's path.
    fn track(&self, _track: usize, _master: &Path) {}
}

impl Progress for () {
    fn event(&self, _track: usize, _event: ProgressEvent) {}
}
