//! Decoding a master (WAV, AIFF, FLAC, MP3, AAC or ALAC in MP4, Ogg
//! Vorbis) into planar `f32` chunks as it streams from its file, with
//! symphonia; more than two channels are mixed down to stereo on the way
//! (ITU-R BS.775 weights).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::TranscodeError;

/// Masters longer than this are refused before decoding (3 h).
pub const MAX_DURATION_SECS: u64 = 3 * 3600;
/// Lowest accepted master sample rate, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest accepted master sample rate, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Frames per chunk handed on by [`Source::next_chunk`] (about 0.19 s at
/// 44.1 kHz): big enough that passing chunks between threads costs
/// nothing, small enough that a few in flight are a few hundred KiB.
pub(crate) const CHUNK_FRAMES: usize = 8192;

/// What a master is, known once it is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MasterInfo {
    /// The container: `wav`, `aiff`, `flac`, `mp3`, `mp4` or `ogg`.
    pub(crate) format: &'static str,
    pub(crate) sample_rate: u32,
    /// Channels in the file (before any downmix).
    pub(crate) source_channels: u8,
    /// Channels of the decoded chunks: 1 or 2 (more are mixed down to
    /// stereo while decoding).
    pub(crate) channels: u8,
    /// Frames the container declares, if it does (a hint for progress).
    pub(crate) declared_frames: Option<u64>,
}

/// A master being decoded, chunk by chunk, from its file: only the
/// decoder's state and one chunk are in memory, whatever the length.
///
/// A master is untrusted input, and symphonia can panic on some damaged
/// headers (e.g. an arithmetic overflow on a WAV `fmt ` chunk in debug
/// builds); such a panic is caught and reported as a corrupt master.
pub(crate) struct Source {
    path: PathBuf,
    info: MasterInfo,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    downmix: Option<Downmix>,
    max_frames: u64,
    /// Frames decoded so far.
    frames: u64,
    scratch: Vec<Vec<f32>>,
    /// Decoded frames not yet handed on.
    pending: Vec<Vec<f32>>,
    ended: bool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("frames", &self.frames)
            .finish()
    }
}

impl Source {
    /// Open `path`, probe its container and codec, and check what can be
    /// checked before decoding: rate, channels, declared length.
    pub(crate) fn open(path: &Path) -> Result<Self, TranscodeError> {
        let read = |source| TranscodeError::Read { path: path.to_owned(), source };
        let mut file = File::open(path).map_err(read)?;
        let file_len = file.metadata().map_err(read)?.len();
        let mut magic = [0u8; 12];
        let got = read_prefix(&mut file, &mut magic).map_err(read)?;
        file.seek(SeekFrom::Start(0)).map_err(read)?;
        let magic = &magic[..got];
        let path_buf = path.to_owned();
        guarded(path, move || Self::open_file(path_buf, file, file_len, magic_is_known(magic)))
    }

    fn open_file(
        path: PathBuf,
        file: File,
        file_len: u64,
        known_magic: bool,
    ) -> Result<Self, TranscodeError> {
        let not_audio = |reason: String| TranscodeError::NotAudio { path: path.clone(), reason };
        let unsupported = |reason: String| TranscodeError::Unsupported { path: path.clone(), reason };
        let corrupt = |reason: String| TranscodeError::Corrupt { path: path.clone(), reason };
        if file_len == 0 {
            return Err(not_audio("the file is empty".into()));
        }
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(&ext.to_ascii_lowercase());
        }
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        // A file that starts like a container we know but fails to open is
        // damaged rather than "not audio".
        let reader = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| {
                if known_magic {
                    corrupt(format!("cannot read the container: {e}"))
                } else {
                    not_audio("no wav, aiff, flac, mp3, mp4 or ogg header found".into())
                }
            })?;

        let format = match reader.format_info().short_name {
            "wave" => "wav",
            "aiff" => "aiff",
            "flac" => "flac",
            "mp3" | "mpa" => "mp3",
            "isomp4" => "mp4",
            "ogg" => "ogg",
            other => {
                return Err(unsupported(format!(
                    "{other} masters are not accepted; use wav, aiff, flac, mp3, mp4 (AAC or ALAC) or ogg"
                )));
            }
        };
        let track =
            reader.default_track(TrackType::Audio).ok_or_else(|| not_audio("no audio track".into()))?;
        let track_id = track.id;
        let declared_frames = track.num_frames;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| not_audio("no audio codec parameters".into()))?
            .clone();
        let sample_rate = params.sample_rate.ok_or_else(|| corrupt("no sample rate".into()))?;
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            return Err(unsupported(format!(
                "sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
            )));
        }
        let layout = params.channels.clone().ok_or_else(|| corrupt("no channel layout".into()))?;
        let channels = layout.count();
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(unsupported(format!("{channels} channels; masters may have 1 to {MAX_CHANNELS}")));
        }
        let downmix = (channels > 2).then(|| Downmix::new(&layout)).transpose().map_err(unsupported)?;
        let max_frames = MAX_DURATION_SECS * u64::from(sample_rate);
        if let Some(n) = declared_frames
            && n > max_frames
        {
            return Err(too_long(&path, n, sample_rate));
        }
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| unsupported(format!("codec: {e}")))?;
        let kept = if downmix.is_some() { 2 } else { channels };
        Ok(Self {
            info: MasterInfo {
                format,
                sample_rate,
                source_channels: channels as u8,
                channels: kept as u8,
                declared_frames,
            },
            path,
            reader,
            decoder,
            track_id,
            downmix,
            max_frames,
            frames: 0,
            scratch: Vec::new(),
            pending: (0..kept).map(|_| Vec::with_capacity(CHUNK_FRAMES + 4096)).collect(),
            ended: false,
        })
    }

    pub(crate) fn info(&self) -> &MasterInfo {
        &self.info
    }

    /// Frames decoded so far.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// The next [`CHUNK_FRAMES`] frames (fewer at the end), one plane per
    /// channel; `None` once the master is over and checked whole (declared
    /// length reached, not empty).
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Vec<Vec<f32>>>, TranscodeError> {
        let path = self.path.clone();
        guarded(&path, || self.next_chunk_unguarded())
    }

    fn next_chunk_unguarded(&mut self) -> Result<Option<Vec<Vec<f32>>>, TranscodeError> {
        let unsupported = |reason: String| TranscodeError::Unsupported { path: self.path.clone(), reason };
        let corrupt = |reason: String| TranscodeError::Corrupt { path: self.path.clone(), reason };
        while !self.ended && self.pending[0].len() < CHUNK_FRAMES {
            let packet = match self.reader.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    self.ended = true;
                    break;
                }
                Err(SymError::ResetRequired) => {
                    return Err(unsupported("chained streams are not accepted".into()));
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(corrupt(format!("the file ends mid-stream after {} frames", self.frames)));
                }
                Err(e) => return Err(corrupt(e.to_string())),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = self
                .decoder
                .decode(&packet)
                .map_err(|e| corrupt(format!("undecodable audio after {} frames: {e}", self.frames)))?;
            if buf.spec().channels().count() != usize::from(self.info.source_channels) {
                return Err(corrupt("channel count changes mid-stream".into()));
            }
            buf.copy_to_vecs_planar::<f32>(&mut self.scratch);
            let decoded = self.scratch.first().map_or(0, Vec::len);
            if self.scratch.iter().flatten().any(|s| !s.is_finite()) {
                return Err(corrupt(format!("samples are NaN or infinite after {} frames", self.frames)));
            }
            match &self.downmix {
                Some(mix) => mix.apply(&self.scratch, &mut self.pending),
                None => {
                    for (plane, new) in self.pending.iter_mut().zip(&self.scratch) {
                        plane.extend_from_slice(new);
                    }
                }
            }
            self.frames += decoded as u64;
            if self.frames > self.max_frames {
                return Err(too_long(&self.path, self.frames, self.info.sample_rate));
            }
        }
        if self.pending[0].is_empty() {
            if let Some(n) = self.info.declared_frames
                && self.frames < n
            {
                return Err(corrupt(format!(
                    "the header declares {n} frames but only {} decode",
                    self.frames
                )));
            }
            if self.frames == 0 {
                return Err(TranscodeError::Empty { path: self.path.clone() });
            }
            return Ok(None);
        }
        let take = self.pending[0].len().min(CHUNK_FRAMES);
        let chunk = self
            .pending
            .iter_mut()
            .map(|p| {
                let rest = p.split_off(take);
                std::mem::replace(p, rest)
            })
            .collect();
        Ok(Some(chunk))
    }
}

/// Run `f`, turning a panic inside the decoder into a corrupt-master error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, TranscodeError>) -> Result<T, TranscodeError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(TranscodeError::Corrupt { path: path.to_owned(), reason: "the decoder crashed on it".into() })
    })
}

fn too_long(path: &Path, frames: u64, rate: u32) -> TranscodeError {
    TranscodeError::TooLong {
        path: path.to_owned(),
        seconds: frames / u64::from(rate),
        limit: MAX_DURATION_SECS,
    }
}

/// Does the file start like a container we take?
fn magic_is_known(bytes: &[u8]) -> bool {
    [&b"RIFF"[..], b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3"].iter().any(|m| bytes.starts_with(m))
        || bytes.get(4..8) == Some(b"ftyp")
}

/// Fill `buf` from the start of `file` as far as it goes.
fn read_prefix(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decode a whole master into memory (tests only: the pipeline streams).
#[cfg(test)]
pub(crate) fn decode_all(path: &Path) -> Result<(MasterInfo, Vec<Vec<f32>>), TranscodeError> {
    let mut source = Source::open(path)?;
    let mut planes = vec![Vec::new(); usize::from(source.info().channels)];
    while let Some(chunk) = source.next_chunk()? {
        for (p, c) in planes.iter_mut().zip(chunk) {
            p.extend(c);
        }
    }
    Ok((source.info().clone(), planes))
}

/// Most channels a master may have (7.1).
pub(crate) const MAX_CHANNELS: usize = 8;

/// −3 dB: the weight of a centre or surround channel in a stereo downmix.
const MINUS_3DB: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// A downmix of 3–8 channels to stereo with the ITU-R BS.775 coefficients:
/// front left/right at 1, centre at −3 dB into both, surrounds (side and
/// rear) at −3 dB into their side, a rear centre at −6 dB into both, the
/// LFE dropped. The weights are then scaled so that no output can exceed
/// full scale (the sum of each side's weights is at most 1), as ffmpeg's
/// default rematrix does; the loudness measured afterwards and the
/// manifest's playback gain make up the level.
#[derive(Debug)]
struct Downmix {
    /// Per input channel (in decode order): weight into left, into right.
    weights: Vec<(f32, f32)>,
}

impl Downmix {
    fn new(layout: &symphonia::core::audio::Channels) -> Result<Self, String> {
        use symphonia::core::audio::{Channels, Position};
        let positions: Vec<Position> = match layout {
            Channels::Positioned(mask) => mask.iter().collect(),
            // No positions given: WAVE's default order for the count
            // (L, R, C, LFE, Ls, Rs, Lc, Rc), as players assume.
            Channels::Discrete(n) => (0..*n).map(|i| Position::from_bits_truncate(1 << i)).collect(),
            other => return Err(format!("a {} channel layout cannot be mixed to stereo", describe(other))),
        };
        let weights = positions
            .iter()
            .map(|&p| match p {
                Position::FRONT_LEFT => (1.0, 0.0),
                Position::FRONT_RIGHT => (0.0, 1.0),
                Position::FRONT_CENTER => (MINUS_3DB, MINUS_3DB),
                Position::LFE1 | Position::LFE2 => (0.0, 0.0),
                Position::REAR_LEFT | Position::SIDE_LEFT | Position::FRONT_LEFT_CENTER => (MINUS_3DB, 0.0),
                Position::REAR_RIGHT | Position::SIDE_RIGHT | Position::FRONT_RIGHT_CENTER => {
                    (0.0, MINUS_3DB)
                }
                Position::REAR_CENTER => (0.5, 0.5),
                // Height and wide channels: half into both sides.
                _ => (0.5, 0.5),
            })
            .collect::<Vec<_>>();
        let (left, right) = weights.iter().fold((0.0f32, 0.0f32), |(l, r), w| (l + w.0, r + w.1));
        let scale = 1.0 / left.max(right).max(1.0);
        Ok(Self { weights: weights.into_iter().map(|(l, r)| (l * scale, r * scale)).collect() })
    }

    /// Mix one decoded buffer (`input`, a plane per channel) onto the
    /// stereo `out`.
    fn apply(&self, input: &[Vec<f32>], out: &mut [Vec<f32>]) {
        let frames = input.first().map_or(0, Vec::len);
        let (left, right) = out.split_at_mut(1);
        let (left, right) = (&mut left[0], &mut right[0]);
        let start = left.len();
        left.resize(start + frames, 0.0);
        right.resize(start + frames, 0.0);
        for (plane, &(wl, wr)) in input.iter().zip(&self.weights) {
            for (i, &x) in plane.iter().enumerate() {
                left[start + i] += wl * x;
                right[start + i] += wr * x;
            }
        }
    }
}

fn describe(c: &symphonia::core::audio::Channels) -> &'static str {
    use symphonia::core::audio::Channels;
    match c {
        Channels::Ambisonic(_) => "ambisonic",
        Channels::Custom(_) => "custom-labelled",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn five_one_mixes_to_stereo_with_the_standard_weights_and_never_clips() {
        use symphonia::core::audio::{Channels, Position};
        let layout = Channels::Positioned(
            Position::FRONT_LEFT
                | Position::FRONT_RIGHT
                | Position::FRONT_CENTER
                | Position::LFE1
                | Position::REAR_LEFT
                | Position::REAR_RIGHT,
        );
        let mix = Downmix::new(&layout).unwrap();
        // Each side: 1 + 0.707 + 0.707, scaled to 1.
        let k = 1.0 / (1.0 + 2.0 * MINUS_3DB);
        let w = &mix.weights;
        assert!((w[0].0 - k).abs() < 1e-6 && w[0].1 == 0.0, "front left");
        assert!((w[2].0 - MINUS_3DB * k).abs() < 1e-6 && (w[2].1 - MINUS_3DB * k).abs() < 1e-6, "centre");
        assert_eq!(w[3], (0.0, 0.0), "LFE dropped");
        assert!((w[5].1 - MINUS_3DB * k).abs() < 1e-6 && w[5].0 == 0.0, "rear right");
        // Full scale in every channel at once stays within full scale.
        let input = vec![vec![1.0f32; 4]; 6];
        let mut out = vec![Vec::new(), Vec::new()];
        mix.apply(&input, &mut out);
        assert!(out.iter().flatten().all(|&x| x <= 1.0 + 1e-6), "{out:?}");
        assert!((out[0][0] - 1.0).abs() < 1e-5);
    }

    /// Mutated and truncated masters must give an error or audio, never a
    /// panic (a deterministic mini-fuzz over both decode paths).
    #[test]
    fn damaged_masters_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let planes = synth::render(5, 0, 1).to_vec();
        let wav = dir.path().join("m.wav");
        let flac = dir.path().join("m.flac");
        synth::write_wav(&wav, &planes, 44_100, 16).unwrap();
        synth::write_flac(&flac, &planes, 44_100, 16).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let bad_path = dir.path().join("bad");
        for path in [&wav, &flac] {
            let good = std::fs::read(path).unwrap();
            assert!(decode_all(path).is_ok());
            for i in 0..150 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut bad = good.clone();
                if i % 3 == 0 {
                    bad.truncate((x as usize) % good.len());
                } else {
                    // Mostly hit the headers, where lengths and counts live.
                    let span = if i % 2 == 0 { 128 } else { good.len() };
                    for k in 0..4 {
                        let at = ((x >> (k * 8)) as usize) % span.min(bad.len());
                        bad[at] = (x >> (32 + k * 8)) as u8;
                    }
                }
                let bad_path = bad_path.with_extension(path.extension().unwrap());
                std::fs::write(&bad_path, &bad).unwrap();
                let _ = decode_all(&bad_path);
            }
        }
    }
}
