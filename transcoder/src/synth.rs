//! Demo music: deterministic, pleasant-ish stereo masters for the dev stack
//! and for tests.
//!
//! Each track is a short piece in a major key: a four-chord progression on
//! an additive-synth pad, a plucked bass line, a bell-like arpeggio, and a
//! kick/snare/hat pattern whose noise comes from a seeded PRNG, over a faint
//! noise floor like any real recording's. Everything is
//! derived from `(seed, index, seconds)` with plain IEEE arithmetic (our own
//! sine and exponential, no libm), so the same inputs give the same samples
//! on every platform. Odd-numbered tracks are written as 24-bit WAV,
//! even-numbered ones as 16-bit FLAC, so both decode paths get exercised.
//!
//! ```no_run
//! use cadenza_transcoder::synth::{DemoTrackSpec, write_demo_album};
//! let specs = DemoTrackSpec::album(7, 4, 30);
//! let tracks = write_demo_album(std::path::Path::new("/tmp/demo"), &specs).unwrap();
//! assert_eq!(tracks[1].format, "flac");
//! ```

use std::path::{Path, PathBuf};

mod music;
mod write;

pub use music::render;
pub use write::{write_flac, write_wav};

/// Sample rate of every demo track.
pub const DEMO_RATE: u32 = 44_100;
/// Longest demo track [`render`] accepts, in seconds.
pub const MAX_DEMO_SECONDS: u32 = 600;

/// One track to synthesise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoTrackSpec {
    pub title: String,
    /// Length in seconds, 1 to [`MAX_DEMO_SECONDS`].
    pub seconds: u32,
    /// Together with the track's index, determines every sample.
    pub seed: u64,
}

impl DemoTrackSpec {
    /// `count` tracks of `seconds` each with titles derived from `seed`.
    pub fn album(seed: u64, count: usize, seconds: u32) -> Vec<Self> {
        const FIRST: [&str; 12] = [
            "Amber", "Quiet", "Silver", "Northern", "Paper", "Velvet", "Lantern", "Distant", "Copper",
            "Morning", "Hollow", "Golden",
        ];
        const SECOND: [&str; 12] = [
            "Harbor", "Static", "Orchard", "Signal", "Tides", "Avenue", "Meridian", "Echoes", "Garden",
            "Relay", "Current", "Skyline",
        ];
        let mut rng = music::SplitMix64::new(seed ^ 0x7469_746c_6573);
        (0..count)
            .map(|_| {
                let a = FIRST[rng.below(FIRST.len())];
                let b = SECOND[rng.below(SECOND.len())];
                DemoTrackSpec { title: format!("{a} {b}"), seconds, seed }
            })
            .collect()
    }
}

/// A track written by [`write_demo_album`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoTrack {
    /// 0-based position on the album.
    pub index: usize,
    pub path: PathBuf,
    pub title: String,
    /// `wav` or `flac`.
    pub format: &'static str,
    pub seconds: u32,
}

/// Why a demo track could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("demo track {title:?}: {reason}")]
    Spec { title: String, reason: String },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
}

/// Synthesise `tracks` into `dir` (created if missing) as
/// `NN-title-slug.wav|flac`: track `i` (0-based) is rendered from
/// `(spec.seed, i, spec.seconds)`; odd-numbered tracks (1st, 3rd, …) are
/// 24-bit WAV, even-numbered ones 16-bit FLAC. Existing files are replaced.
pub fn write_demo_album(dir: &Path, tracks: &[DemoTrackSpec]) -> Result<Vec<DemoTrack>, SynthError> {
    std::fs::create_dir_all(dir).map_err(|source| SynthError::Io { path: dir.to_owned(), source })?;
    let mut out = Vec::with_capacity(tracks.len());
    for (index, spec) in tracks.iter().enumerate() {
        if spec.seconds == 0 || spec.seconds > MAX_DEMO_SECONDS {
            return Err(SynthError::Spec {
                title: spec.title.clone(),
                reason: format!("length {} s is outside 1-{MAX_DEMO_SECONDS} s", spec.seconds),
            });
        }
        let format = if index % 2 == 0 { "wav" } else { "flac" };
        let path = dir.join(format!("{:02}-{}.{format}", index + 1, slug(&spec.title)));
        let planes = render(spec.seed, index, spec.seconds);
        if format == "wav" {
            write_wav(&path, &planes, DEMO_RATE, 24)?;
        } else {
            write_flac(&path, &planes, DEMO_RATE, 16)?;
        }
        out.push(DemoTrack { index, path, title: spec.title.clone(), format, seconds: spec.seconds });
    }
    Ok(out)
}

/// `Amber Harbor!` → `amber-harbor`; never empty.
fn slug(title: &str) -> String {
    let mut s = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_owned();
    if s.is_empty() { "track".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Amber Harbor"), "amber-harbor");
        assert_eq!(slug("  ¡Hola!  Mundo.. "), "hola-mundo");
        assert_eq!(slug("ü"), "track");
    }

    #[test]
    fn album_titles_are_deterministic() {
        let a = DemoTrackSpec::album(1, 5, 10);
        assert_eq!(a, DemoTrackSpec::album(1, 5, 10));
        assert_ne!(a, DemoTrackSpec::album(2, 5, 10));
        assert!(a.iter().all(|t| t.seconds == 10 && t.title.contains(' ')));
    }

    #[test]
    fn writes_wav_and_flac_alternately() {
        let dir = tempfile::tempdir().unwrap();
        let specs = DemoTrackSpec::album(3, 3, 1);
        let tracks = write_demo_album(dir.path(), &specs).unwrap();
        let formats: Vec<_> = tracks.iter().map(|t| t.format).collect();
        assert_eq!(formats, ["wav", "flac", "wav"]);
        let first = std::fs::read(&tracks[0].path).unwrap();
        assert_eq!(&first[..4], b"RIFF");
        assert_eq!(&std::fs::read(&tracks[1].path).unwrap()[..4], b"fLaC");
        // Rewriting gives the same bytes.
        let again = write_demo_album(dir.path(), &specs).unwrap();
        assert_eq!(std::fs::read(&again[0].path).unwrap(), first);

        let bad = [DemoTrackSpec { title: "x".into(), seconds: 0, seed: 0 }];
        assert!(matches!(write_demo_album(dir.path(), &bad), Err(SynthError::Spec { .. })));
    }
}
